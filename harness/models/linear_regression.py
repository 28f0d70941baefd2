"""Bayesian linear regression with known noise: exact Gaussian posterior and log normalizer.

Generative model (design ``X`` is ``n × p``: an intercept column and ``p − 1`` standard normal
features with AR(1) correlation 0.5, so the posterior is correlated)::

    w ~ N(0, τ² I_p)
    y | w ~ N(X w, σ² I_n)               (known noise scale σ)

Posterior (Bishop, *Pattern Recognition and Machine Learning*, 2006, eqs. 3.50-3.51)::

    Σ_n = (I/τ² + XᵀX/σ²)⁻¹,   m_n = Σ_n Xᵀy / σ²

and the log normalizer is ``log Z = log N(y; 0, σ² I + τ² X Xᵀ)`` (Bishop eq. 3.86).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from harness.models.base import Model, exact_reference

tfb = tfp.bijectors
tfd = tfp.distributions

# Fixed seed of the simulated data set (design, true weights from the prior, targets).
_DATA_SEED = 20_240_621
_REFERENCE_DRAWS = 20_000
_REFERENCE_DRAW_SEED = 20_240_622
# Correlation between neighbouring features: enough to make the posterior visibly correlated
# (mean-field understates it), small enough that the problem is well conditioned.
FEATURE_CORRELATION = 0.5


def design_matrix(rng: np.random.Generator, num_observations: int, num_features: int) -> np.ndarray:
    """Intercept column plus ``num_features − 1`` AR(1)-correlated standard normal features."""
    k = num_features - 1
    lags = np.abs(np.subtract.outer(np.arange(k), np.arange(k)))
    features = (
        rng.multivariate_normal(np.zeros(k), FEATURE_CORRELATION**lags, size=num_observations)
        if k
        else np.zeros((num_observations, 0))
    )
    return np.concatenate([np.ones((num_observations, 1)), features], axis=1)


def linear_regression(
    num_features: int = 5,
    num_observations: int = 50,
    noise_scale: float = 1.0,
    prior_scale: float = 1.0,
    dtype: str = "float32",
) -> Model:
    """Build Bayesian linear regression (known noise) on data simulated from seed ``20240621``.

    Args:
      num_features: Number of weights ``p`` (intercept included).
      num_observations: Number of observations ``n``.
      noise_scale: Known observation noise scale σ.
      prior_scale: Prior scale τ of every weight (prior mean 0).
      dtype: ``float32`` or ``float64``.
    """
    if num_features < 1 or num_observations < 1:
        raise ValueError(
            f"num_features and num_observations must be >= 1, got {num_features}, "
            f"{num_observations}"
        )
    rng = np.random.default_rng(_DATA_SEED)
    x = design_matrix(rng, num_observations, num_features)
    w = rng.normal(0.0, prior_scale, num_features)
    y = x @ w + noise_scale * rng.normal(size=num_observations)
    return _build(x, y, noise_scale, prior_scale, dtype)


def conjugate_posterior(
    x: np.ndarray, y: np.ndarray, noise_scale: float, prior_scales: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """``(mean, covariance, log Z)`` of the Gaussian posterior of ``y ~ N(x w, σ² I)`` with
    ``w ~ N(0, diag(prior_scales²))``, in float64 (Bishop 2006, eqs. 3.50-3.51 and 3.86).  The
    mean is a solve with the precision, not a product with its inverse, so that it stays
    accurate on ill-conditioned designs (calendar_regression: condition number ~10¹⁰)."""
    n = x.shape[0]
    precision = np.diag(np.asarray(prior_scales, np.float64) ** -2.0) + x.T @ x / noise_scale**2
    cov = np.linalg.inv(precision)
    cov = 0.5 * (cov + cov.T)
    mean = np.linalg.solve(precision, x.T @ y / noise_scale**2)
    marginal_cov = noise_scale**2 * np.eye(n) + x @ np.diag(np.asarray(prior_scales) ** 2) @ x.T
    _, logdet = np.linalg.slogdet(marginal_cov)
    log_normalizer = -0.5 * (n * np.log(2 * np.pi) + logdet + y @ np.linalg.solve(marginal_cov, y))
    return mean, cov, float(log_normalizer)


def _build(
    x: np.ndarray, y: np.ndarray, noise_scale: float, prior_scale: float, dtype: str
) -> Model:
    n, p = x.shape
    tf_dtype = tf.as_dtype(dtype)
    mean, cov, log_normalizer = conjugate_posterior(x, y, noise_scale, np.full(p, prior_scale))
    draws = np.random.default_rng(_REFERENCE_DRAW_SEED).multivariate_normal(
        mean, cov, size=_REFERENCE_DRAWS
    )
    reference = exact_reference(
        mean,
        cov,
        log_normalizer=float(log_normalizer),
        draws=draws,
        provenance=(
            f"closed form: Gaussian posterior of linear regression (Bishop 2006 eqs. "
            f"3.50-3.51, 3.86), n={n}, p={p}, sigma={noise_scale}, tau={prior_scale}; "
            f"draws: numpy default_rng({_REFERENCE_DRAW_SEED}).multivariate_normal, "
            f"n={_REFERENCE_DRAWS}"
        ),
    )
    x_t, y_t = tf.constant(x, tf_dtype), tf.constant(y, tf_dtype)
    prior = tfd.MultivariateNormalDiag(
        loc=tf.zeros([p], tf_dtype), scale_diag=tf.fill([p], tf.constant(prior_scale, tf_dtype))
    )
    noise = tf.constant(noise_scale, tf_dtype)

    def log_likelihood(w):
        predicted = tf.einsum("...p,np->...n", tf.convert_to_tensor(w, tf_dtype), x_t)
        return tf.reduce_sum(tfd.Normal(predicted, noise).log_prob(y_t), axis=-1)

    def unnormalized_log_prob(w):
        return prior.log_prob(w) + log_likelihood(w)

    def simulate(seed):
        rng = np.random.default_rng(seed)
        w_true = rng.normal(0.0, prior_scale, p)
        y_new = x @ w_true + noise_scale * rng.normal(size=n)
        return w_true, _build(x, y_new, noise_scale, prior_scale, dtype)

    return Model(
        name="linear_regression",
        pretty_name=f"Linear regression (p={p})",
        dimension=p,
        dtype=tf_dtype,
        default_event_space_bijector=tfb.Identity(),
        unnormalized_log_prob=unnormalized_log_prob,
        reference=reference,
        description=f"Bayesian linear regression, known noise, n={n}; exact posterior and log Z",
        log_likelihood=log_likelihood,
        prior_distribution=prior,
        simulate=simulate,
        data={
            "x": x,
            "y": y,
            "noise_scale": np.float64(noise_scale),
            "mean0": np.zeros(p),
            "precision0": np.eye(p) / prior_scale**2,
        },
    )
