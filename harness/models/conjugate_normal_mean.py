"""Conjugate normal mean: the simplest model with data and an exact posterior.

Generative model (``d`` independent coordinates, ``n`` observations each)::

    μ_k ~ N(0, τ²)                       k = 1..d       (prior scale τ)
    y_jk | μ ~ N(μ_k, σ²)                j = 1..n       (known noise scale σ)

Posterior (Gelman et al., *Bayesian Data Analysis*, 3rd ed., §2.5)::

    μ_k | y ~ N(m_k, s²),   1/s² = 1/τ² + n/σ²,   m_k = s² · Σ_j y_jk / σ²

and the log normalizer is the log marginal likelihood
``log Z = Σ_k log N(y_·k; 0, σ² I + τ² 11ᵀ)``.  The unnormalized log density is the full joint
``log p(μ) + log p(y | μ)``.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from harness.models.base import Model, exact_reference

tfb = tfp.bijectors
tfd = tfp.distributions

# Fixed seed of the simulated data set (true means drawn from the prior, then observations).
_DATA_SEED = 20_240_611
# Exact posterior draws stored with the reference (quantile error ≈ 0.01 sd), fixed seed.
_REFERENCE_DRAWS = 20_000
_REFERENCE_DRAW_SEED = 20_240_612


def conjugate_normal_mean(
    dimension: int = 3,
    num_observations: int = 20,
    noise_scale: float = 1.0,
    prior_scale: float = 2.0,
    dtype: str = "float32",
) -> Model:
    """Build the conjugate normal-mean model on data simulated from seed ``20240611``.

    Args:
      dimension: Number of independent means ``d``.
      num_observations: Observations per mean ``n``.
      noise_scale: Known observation noise scale σ.
      prior_scale: Prior scale τ of each mean (prior mean 0).
      dtype: ``float32`` or ``float64``.
    """
    if dimension < 1 or num_observations < 1:
        raise ValueError(
            f"dimension and num_observations must be >= 1, got {dimension}, {num_observations}"
        )
    rng = np.random.default_rng(_DATA_SEED)
    true_mean = rng.normal(0.0, prior_scale, dimension)
    y = true_mean + noise_scale * rng.normal(size=(num_observations, dimension))
    return _build(y, noise_scale, prior_scale, dtype)


def _build(y: np.ndarray, noise_scale: float, prior_scale: float, dtype: str) -> Model:
    n, d = y.shape
    tf_dtype = tf.as_dtype(dtype)
    post_var = 1.0 / (1.0 / prior_scale**2 + n / noise_scale**2)
    post_mean = post_var * y.sum(axis=0) / noise_scale**2
    cov = np.eye(d) * post_var
    marginal_cov = noise_scale**2 * np.eye(n) + prior_scale**2 * np.ones((n, n))
    _, logdet = np.linalg.slogdet(marginal_cov)
    quad = np.einsum("jk,ji,ik->", y, np.linalg.inv(marginal_cov), y)
    log_normalizer = -0.5 * (d * (n * np.log(2 * np.pi) + logdet) + quad)
    draws = np.random.default_rng(_REFERENCE_DRAW_SEED).multivariate_normal(
        post_mean, cov, size=_REFERENCE_DRAWS
    )
    reference = exact_reference(
        post_mean,
        cov,
        log_normalizer=float(log_normalizer),
        draws=draws,
        provenance=(
            f"closed form: normal-normal conjugate posterior, n={n}, d={d}, "
            f"sigma={noise_scale}, tau={prior_scale}; draws: numpy default_rng("
            f"{_REFERENCE_DRAW_SEED}).multivariate_normal, n={_REFERENCE_DRAWS}"
        ),
    )
    y_t = tf.constant(y, tf_dtype)
    prior = tfd.MultivariateNormalDiag(
        loc=tf.zeros([d], tf_dtype), scale_diag=tf.fill([d], tf.constant(prior_scale, tf_dtype))
    )
    noise = tf.constant(noise_scale, tf_dtype)

    def log_likelihood(mu):
        mu = tf.convert_to_tensor(mu, tf_dtype)
        return tf.reduce_sum(tfd.Normal(mu[..., tf.newaxis, :], noise).log_prob(y_t), axis=[-2, -1])

    def unnormalized_log_prob(mu):
        return prior.log_prob(mu) + log_likelihood(mu)

    def simulate(seed):
        rng = np.random.default_rng(seed)
        true_mean = rng.normal(0.0, prior_scale, d)
        y_new = true_mean + noise_scale * rng.normal(size=(n, d))
        return true_mean, _build(y_new, noise_scale, prior_scale, dtype)

    return Model(
        name="conjugate_normal_mean",
        pretty_name=f"Conjugate normal mean (d={d})",
        dimension=d,
        dtype=tf_dtype,
        default_event_space_bijector=tfb.Identity(),
        unnormalized_log_prob=unnormalized_log_prob,
        reference=reference,
        description=f"{d} normal means, known noise, {n} obs each; exact posterior and log Z",
        log_likelihood=log_likelihood,
        prior_distribution=prior,
        simulate=simulate,
        data={
            "y": y,
            "noise_scale": np.float64(noise_scale),
            "mean0": np.zeros(d),
            "precision0": np.eye(d) / prior_scale**2,
        },
    )
