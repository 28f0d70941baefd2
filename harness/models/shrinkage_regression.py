"""Linear regression on 27 strongly correlated predictors with a heavy-tailed global scale.

Mean smoothness of 569 breast-cancer tumours (``harness/data/breast_cancer.csv``, see
:mod:`harness.models.datasets`) regressed on every other feature of the data set (27: the
mean, standard error and worst value of radius, texture, perimeter, area, compactness,
concavity, concave points, symmetry and fractal dimension; the two other smoothness columns
are left out because they measure the response itself), response and predictors
standardized::

    α ~ N(0, 1)
    τ ~ HalfCauchy(0, 1)                 global scale of the coefficients
    β_j | τ ~ N(0, τ²)                   j = 1..27
    σ ~ HalfNormal(1)
    smoothness_i ~ N(α + x_i · β, σ)

The half-Cauchy global scale is the usual heavy-tailed default for a scale of many
coefficients (Gelman, "Prior distributions for variance parameters in hierarchical models",
Bayesian Analysis 2006; Polson & Scott, "On the half-Cauchy prior for a global scale
parameter", Bayesian Analysis 2012); the noise scale is unknown and, with the response
standardized, a unit half-normal is weakly informative.

Why it is hard (an ordinary posterior): the predictors are strongly collinear (radius,
perimeter and area, and their mean and worst values, correlate at > 0.9; the condition
number of the standardized design is ≈ 300): the posterior correlation matrix has condition
number ≈ 3,500 (pairwise correlations up to −0.91), its sds range from 0.017 to 0.29, and the
coefficients share a global scale whose prior has no finite mean (posterior τ ≈ 0.37 ± 0.07).  The event is
``[α, β_1..27, τ, σ]`` (30 coordinates); τ and σ map through ``exp``.

Reference: NUTS run by ``harness reference shrinkage_regression_breast_cancer``
(``harness/data/references/shrinkage_regression_breast_cancer.npz``).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from harness.models.base import Model, nuts_reference
from harness.models.datasets import load_csv, standardize

tfb = tfp.bijectors
tfd = tfp.distributions

RESPONSE = "mean_smoothness"
# Columns that are not predictors: the class label and the response's own measurement.
_EXCLUDED = ("benign", "mean_smoothness", "smoothness_error", "worst_smoothness")


def shrinkage_regression_breast_cancer(dtype: str = "float32") -> Model:
    """Build the half-Cauchy shrinkage regression of tumour smoothness (d = 30).

    Args:
      dtype: ``float32`` or ``float64``.
    """
    columns = load_csv("breast_cancer")
    predictors = [c for c in columns if c not in _EXCLUDED]
    x = standardize(np.stack([columns[p] for p in predictors], axis=1))
    y = standardize(columns[RESPONSE])
    return _build(
        x, y, dtype, nuts_reference("shrinkage_regression_breast_cancer", missing_ok=True)
    )


def _build(x: np.ndarray, y: np.ndarray, dtype: str, reference) -> Model:
    k = x.shape[1]
    tf_dtype = tf.as_dtype(dtype)
    x_t, y_t = tf.constant(x, tf_dtype), tf.constant(y, tf_dtype)
    zero, one = tf.constant(0.0, tf_dtype), tf.constant(1.0, tf_dtype)
    standard = tfd.Normal(zero, one)
    global_scale_prior = tfd.HalfCauchy(zero, one)
    noise_prior = tfd.HalfNormal(one)

    def split(z):
        z = tf.convert_to_tensor(z, tf_dtype)
        return z[..., 0], z[..., 1 : 1 + k], z[..., 1 + k], z[..., 2 + k]

    def prior_log_prob(z):
        intercept, slopes, tau, sigma = split(z)
        return (
            standard.log_prob(intercept)
            + global_scale_prior.log_prob(tau)
            + tf.reduce_sum(tfd.Normal(zero, tau[..., tf.newaxis]).log_prob(slopes), -1)
            + noise_prior.log_prob(sigma)
        )

    def log_likelihood(z):
        intercept, slopes, _, sigma = split(z)
        predicted = intercept[..., tf.newaxis] + tf.einsum("...k,nk->...n", slopes, x_t)
        return tf.reduce_sum(tfd.Normal(predicted, sigma[..., tf.newaxis]).log_prob(y_t), -1)

    def unnormalized_log_prob(z):
        return prior_log_prob(z) + log_likelihood(z)

    def simulate(seed):
        # Parameters from the prior, responses for the same tumours; no reference.
        rng = np.random.default_rng(seed)
        intercept = rng.normal()
        tau = abs(rng.standard_cauchy())
        slopes = rng.normal(0.0, tau, size=k)
        sigma = abs(rng.normal())
        fresh = rng.normal(intercept + x @ slopes, sigma)
        truth = np.concatenate([[intercept], slopes, [tau, sigma]])
        return truth, _build(x, fresh, dtype, None)

    return Model(
        name="shrinkage_regression_breast_cancer",
        pretty_name="Shrinkage regression (breast cancer)",
        dimension=k + 3,
        dtype=tf_dtype,
        default_event_space_bijector=tfb.Blockwise(
            [tfb.Identity(), tfb.Exp()], block_sizes=[k + 1, 2]
        ),
        unnormalized_log_prob=unnormalized_log_prob,
        reference=reference,
        description=(
            "smoothness on 27 collinear standardized features, 569 tumours; half-Cauchy "
            "global scale; NUTS reference"
        ),
        log_likelihood=log_likelihood,
        simulate=simulate,
        data={"x": x, "y": y},
    )
