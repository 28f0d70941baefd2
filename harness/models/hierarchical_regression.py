"""Hierarchical linear regression on the UCI wine data (shipped in the package).

Alcohol content of 178 wines regressed on four standardized chemical measurements, with an
intercept per cultivar (three cultivars) drawn from a common normal (varying intercepts,
non-centered; Gelman & Hill, *Data Analysis Using Regression and Multilevel/Hierarchical
Models*, 2007, ch. 12)::

    μ ~ N(0, 1);   τ ~ HalfNormal(1);   η_g ~ N(0, 1)          g = 1..3
    β_k ~ N(0, 1)                                              k = 1..4
    σ ~ HalfNormal(1)
    alcohol_i ~ N(μ + τ η_{g(i)} + x_i · β, σ)

``alcohol`` is standardized; the predictors are malic acid, magnesium, color intensity and
proline (standardized).  With only three groups the group scale τ is weakly identified and its
posterior is skewed: a hard case for Gaussian families.  The event is
``[μ, τ, η_1..3, β_1..4, σ]`` (10 coordinates); τ and σ map through ``exp``.

Reference: NUTS run by ``harness reference hierarchical_regression_wine``
(``harness/data/references/hierarchical_regression_wine.npz``).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from harness.models.base import Model, nuts_reference
from harness.models.datasets import load_csv, standardize

tfb = tfp.bijectors
tfd = tfp.distributions

PREDICTORS = ("malic_acid", "magnesium", "color_intensity", "proline")
NUM_GROUPS = 3


def hierarchical_regression_wine(dtype: str = "float32") -> Model:
    """Build the varying-intercept regression of wine alcohol content (d = 10).

    Args:
      dtype: ``float32`` or ``float64``.
    """
    columns = load_csv("wine")
    x = standardize(np.stack([columns[p] for p in PREDICTORS], axis=1))
    y = standardize(columns["alcohol"])
    group = columns["cultivar"].astype(np.int32)
    return _build(
        x, y, group, dtype, nuts_reference("hierarchical_regression_wine", missing_ok=True)
    )


def _build(x: np.ndarray, y: np.ndarray, group: np.ndarray, dtype: str, reference) -> Model:
    k = x.shape[1]
    tf_dtype = tf.as_dtype(dtype)
    x_t, y_t = tf.constant(x, tf_dtype), tf.constant(y, tf_dtype)
    one_hot = tf.constant(np.eye(NUM_GROUPS)[group], tf_dtype)  # [n, groups]
    half_normal = tfd.HalfNormal(tf.constant(1.0, tf_dtype))
    standard = tfd.Normal(tf.constant(0.0, tf_dtype), tf.constant(1.0, tf_dtype))

    def split(z):
        z = tf.convert_to_tensor(z, tf_dtype)
        return (
            z[..., 0],
            z[..., 1],
            z[..., 2 : 2 + NUM_GROUPS],
            z[..., 2 + NUM_GROUPS : 2 + NUM_GROUPS + k],
            z[..., -1],
        )

    def prior_log_prob(z):
        mu, tau, eta, beta, sigma = split(z)
        return (
            standard.log_prob(mu)
            + half_normal.log_prob(tau)
            + tf.reduce_sum(standard.log_prob(eta), -1)
            + tf.reduce_sum(standard.log_prob(beta), -1)
            + half_normal.log_prob(sigma)
        )

    def log_likelihood(z):
        mu, tau, eta, beta, sigma = split(z)
        intercepts = mu[..., tf.newaxis] + tau[..., tf.newaxis] * eta  # [..., groups]
        predicted = tf.einsum("...g,ng->...n", intercepts, one_hot) + tf.einsum(
            "...k,nk->...n", beta, x_t
        )
        return tf.reduce_sum(tfd.Normal(predicted, sigma[..., tf.newaxis]).log_prob(y_t), -1)

    def unnormalized_log_prob(z):
        return prior_log_prob(z) + log_likelihood(z)

    def simulate(seed):
        # Parameters from the prior, alcohol for the same wines' predictors; no reference.
        rng = np.random.default_rng(seed)
        mu, tau = rng.normal(), abs(rng.normal())
        eta, beta, sigma = rng.normal(size=NUM_GROUPS), rng.normal(size=k), abs(rng.normal())
        alcohol = rng.normal(mu + tau * eta[group] + x @ beta, sigma)
        truth = np.concatenate([[mu, tau], eta, beta, [sigma]])
        return truth, _build(x, alcohol, group, dtype, None)

    d = 3 + NUM_GROUPS + k
    return Model(
        name="hierarchical_regression_wine",
        pretty_name="Hierarchical regression (wine)",
        dimension=d,
        dtype=tf_dtype,
        default_event_space_bijector=tfb.Blockwise(
            [tfb.Identity(), tfb.Exp(), tfb.Identity(), tfb.Exp()],
            block_sizes=[1, 1, NUM_GROUPS + k, 1],
        ),
        unnormalized_log_prob=unnormalized_log_prob,
        reference=reference,
        description="varying intercepts by cultivar, 178 wines x 4 predictors; NUTS reference",
        log_likelihood=log_likelihood,
        simulate=simulate,
        data={"x": x, "y": y, "group": group.astype(np.float64)},
    )
