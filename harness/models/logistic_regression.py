"""Bayesian logistic regression on the Wisconsin breast-cancer data (shipped in the package).

Generative model (569 tumours; ``X`` = intercept column and eight standardized features)::

    w ~ N(0, I_9)
    benign_i | w ~ Bernoulli(logit = X_i · w)

Features (``harness/data/breast_cancer.csv``, see :mod:`harness.models.datasets`): the "mean"
measurements radius, texture, smoothness, compactness, concavity, concave points, symmetry and
fractal dimension.  Perimeter and area are left out: they are (nearly) functions of the radius
(correlation > 0.99) and would make the posterior almost degenerate.  With standardized
features a unit normal prior is weakly informative: a prior coefficient beyond ±2 would mean
that one standard deviation of a single feature changes the odds more than e²≈7-fold.

Reference: NUTS run by ``harness reference logistic_regression_breast_cancer``
(``harness/data/references/logistic_regression_breast_cancer.npz``).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from harness.models.base import Model, nuts_reference
from harness.models.datasets import load_csv, standardize

tfb = tfp.bijectors
tfd = tfp.distributions

FEATURES = (
    "mean_radius",
    "mean_texture",
    "mean_smoothness",
    "mean_compactness",
    "mean_concavity",
    "mean_concave_points",
    "mean_symmetry",
    "mean_fractal_dimension",
)


def logistic_regression_breast_cancer(dtype: str = "float32") -> Model:
    """Build logistic regression of tumour class on eight standardized features (d = 9).

    Args:
      dtype: ``float32`` or ``float64``.
    """
    columns = load_csv("breast_cancer")
    features = standardize(np.stack([columns[f] for f in FEATURES], axis=1))
    x = np.concatenate([np.ones((features.shape[0], 1)), features], axis=1)
    return _build(
        x,
        columns["benign"],
        dtype,
        nuts_reference("logistic_regression_breast_cancer", missing_ok=True),
    )


def _build(x: np.ndarray, y: np.ndarray, dtype: str, reference) -> Model:
    tf_dtype = tf.as_dtype(dtype)
    d = x.shape[1]
    x_t, y_t = tf.constant(x, tf_dtype), tf.constant(y, tf_dtype)
    prior = tfd.MultivariateNormalDiag(
        loc=tf.zeros([d], tf_dtype), scale_diag=tf.ones([d], tf_dtype)
    )

    def log_likelihood(w):
        logits = tf.einsum("...p,np->...n", tf.convert_to_tensor(w, tf_dtype), x_t)
        return tf.reduce_sum(tfd.Bernoulli(logits=logits, dtype=tf_dtype).log_prob(y_t), axis=-1)

    def unnormalized_log_prob(w):
        return prior.log_prob(w) + log_likelihood(w)

    def simulate(seed):
        # Weights from the prior, labels for the same tumours' features; no reference.
        rng = np.random.default_rng(seed)
        w = rng.normal(size=d)
        labels = (rng.uniform(size=x.shape[0]) < 1 / (1 + np.exp(-x @ w))).astype(np.float64)
        return w, _build(x, labels, dtype, None)

    return Model(
        name="logistic_regression_breast_cancer",
        pretty_name="Logistic regression (breast cancer)",
        dimension=d,
        dtype=tf_dtype,
        default_event_space_bijector=tfb.Identity(),
        unnormalized_log_prob=unnormalized_log_prob,
        reference=reference,
        description="logistic regression, 569 tumours x 8 features + intercept; NUTS reference",
        log_likelihood=log_likelihood,
        prior_distribution=prior,
        simulate=simulate,
        data={"x": x, "y": y, "mean0": np.zeros(d), "precision0": np.eye(d)},
    )
