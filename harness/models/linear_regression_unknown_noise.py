"""Bayesian linear regression with unknown noise: normal-inverse-gamma conjugate posterior.

Generative model (same design ``X`` as :mod:`harness.models.linear_regression`; ``Λ₀ = I/τ²``)::

    σ² ~ InvGamma(a₀, b₀)
    w | σ² ~ N(0, σ² Λ₀⁻¹)
    y | w, σ² ~ N(X w, σ² I_n)

The event is ``[w_1, …, w_p, σ²]``; the event-space bijector is the identity on ``w`` and
``exp`` on the variance, so the unconstrained coordinate is ``log σ²``.

Posterior (Murphy, "Conjugate Bayesian analysis of the Gaussian distribution", 2007, §9;
O'Hagan & Forster, *Kendall's Advanced Theory of Statistics* 2B, §9)::

    Λ_n = Λ₀ + XᵀX,   m_n = Λ_n⁻¹ Xᵀy,   a_n = a₀ + n/2,   b_n = b₀ + ½ (yᵀy − m_nᵀ Λ_n m_n)
    σ² | y ~ InvGamma(a_n, b_n)            E = b_n/(a_n−1),  Var = b_n²/((a_n−1)²(a_n−2))
    w | y ~ t_{2a_n}(m_n, (b_n/a_n) Λ_n⁻¹)  E = m_n,  Cov = b_n/(a_n−1) Λ_n⁻¹

and ``log Z = −(n/2) log 2π + ½ log|Λ₀|/|Λ_n| + a₀ log b₀ − a_n log b_n + log Γ(a_n)/Γ(a₀)``.
The reference states moments of the *constrained* quantities (``w`` and ``σ²``, not
``log σ²``).  The posterior is not Gaussian, so the reference carries no covariance (a Gaussian
KL against it would not be the KL to the posterior); exact draws are stored instead.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from scipy.special import gammaln

from harness.models.base import Model, Reference
from harness.models.linear_regression import design_matrix

tfb = tfp.bijectors
tfd = tfp.distributions

_DATA_SEED = 20_240_631
_REFERENCE_DRAWS = 20_000
_REFERENCE_DRAW_SEED = 20_240_632


def linear_regression_unknown_noise(
    num_features: int = 5,
    num_observations: int = 50,
    prior_scale: float = 1.0,
    a0: float = 3.0,
    b0: float = 2.0,
    dtype: str = "float32",
) -> Model:
    """Build normal-inverse-gamma linear regression on data simulated from seed ``20240631``.

    The defaults ``a0 = 3, b0 = 2`` give the noise variance a prior mean of 1 with finite
    variance (``a0 > 2``).

    Args:
      num_features: Number of weights ``p`` (intercept included); the event has ``p + 1``
        coordinates.
      num_observations: Number of observations ``n``.
      prior_scale: τ: prior scale of every weight relative to the noise scale (``Λ₀ = I/τ²``).
      a0: Inverse-gamma shape of the noise-variance prior.
      b0: Inverse-gamma scale of the noise-variance prior.
      dtype: ``float32`` or ``float64``.
    """
    if num_features < 1 or num_observations < 1:
        raise ValueError(
            f"num_features and num_observations must be >= 1, got {num_features}, "
            f"{num_observations}"
        )
    rng = np.random.default_rng(_DATA_SEED)
    x = design_matrix(rng, num_observations, num_features)
    _, y = _simulate_data(rng, x, prior_scale, a0, b0)
    return _build(x, y, prior_scale, a0, b0, dtype)


def _simulate_data(rng, x, prior_scale, a0, b0):
    variance = b0 / rng.gamma(a0)
    w = rng.normal(0.0, np.sqrt(variance) * prior_scale, x.shape[1])
    y = x @ w + np.sqrt(variance) * rng.normal(size=x.shape[0])
    return np.append(w, variance), y


def posterior(
    x: np.ndarray, y: np.ndarray, mean0: np.ndarray, precision0: np.ndarray, a0: float, b0: float
) -> dict[str, np.ndarray | float]:
    """Normal-inverse-gamma posterior parameters ``mean, precision, a, b`` and ``log_normalizer``.

    Args:
      x: Design ``[n, p]``.
      y: Targets ``[n]``.
      mean0: Prior mean of the weights ``[p]``.
      precision0: Prior precision of the weights relative to σ², ``Λ₀`` ``[p, p]``.
      a0: Prior inverse-gamma shape.
      b0: Prior inverse-gamma scale.
    """
    n = x.shape[0]
    precision = precision0 + x.T @ x
    mean = np.linalg.solve(precision, precision0 @ mean0 + x.T @ y)
    a = a0 + n / 2
    b = b0 + 0.5 * (y @ y + mean0 @ precision0 @ mean0 - mean @ precision @ mean)
    log_normalizer = (
        -0.5 * n * np.log(2 * np.pi)
        + 0.5 * (np.linalg.slogdet(precision0)[1] - np.linalg.slogdet(precision)[1])
        + a0 * np.log(b0)
        - a * np.log(b)
        + gammaln(a)
        - gammaln(a0)
    )
    return {
        "mean": mean,
        "precision": precision,
        "a": a,
        "b": b,
        "log_normalizer": float(log_normalizer),
    }


def _build(x, y, prior_scale, a0, b0, dtype) -> Model:
    n, p = x.shape
    tf_dtype = tf.as_dtype(dtype)
    mean0, precision0 = np.zeros(p), np.eye(p) / prior_scale**2
    post = posterior(x, y, mean0, precision0, a0, b0)
    a, b = post["a"], post["b"]
    scale_matrix = np.linalg.inv(post["precision"])
    scale_matrix = 0.5 * (scale_matrix + scale_matrix.T)
    variance_mean = b / (a - 1)
    variance_std = b / ((a - 1) * np.sqrt(a - 2))
    mean = np.append(post["mean"], variance_mean)
    std = np.append(np.sqrt(variance_mean * np.diag(scale_matrix)), variance_std)
    rng = np.random.default_rng(_REFERENCE_DRAW_SEED)
    variance_draws = b / rng.gamma(a, size=_REFERENCE_DRAWS)
    w_draws = post["mean"] + np.sqrt(variance_draws)[:, None] * rng.multivariate_normal(
        np.zeros(p), scale_matrix, size=_REFERENCE_DRAWS
    )
    reference = Reference(
        mean=mean,
        standard_deviation=std,
        mean_standard_error=np.zeros(p + 1),
        standard_deviation_standard_error=np.zeros(p + 1),
        kind="analytic",
        log_normalizer=post["log_normalizer"],
        draws=np.concatenate([w_draws, variance_draws[:, None]], axis=1),
        provenance=(
            f"closed form: normal-inverse-gamma posterior (Murphy 2007 §9), n={n}, "
            f"p={p}, tau={prior_scale}, a0={a0}, b0={b0}; moments of w and sigma^2 "
            f"(constrained); draws: numpy default_rng({_REFERENCE_DRAW_SEED}), "
            f"sigma^2 = b/Gamma(a), w | sigma^2 ~ N(m, sigma^2 Lambda^-1), "
            f"n={_REFERENCE_DRAWS}"
        ),
    )

    x_t, y_t = tf.constant(x, tf_dtype), tf.constant(y, tf_dtype)
    tau = tf.constant(prior_scale, tf_dtype)
    a0_t, b0_t = tf.constant(a0, tf_dtype), tf.constant(b0, tf_dtype)

    def log_likelihood(z):
        z = tf.convert_to_tensor(z, tf_dtype)
        w, variance = z[..., :p], z[..., p]
        predicted = tf.einsum("...p,np->...n", w, x_t)
        return tf.reduce_sum(
            tfd.Normal(predicted, tf.sqrt(variance)[..., tf.newaxis]).log_prob(y_t), axis=-1
        )

    def prior_log_prob(z):
        z = tf.convert_to_tensor(z, tf_dtype)
        w, variance = z[..., :p], z[..., p]
        return tfd.InverseGamma(a0_t, b0_t).log_prob(variance) + tf.reduce_sum(
            tfd.Normal(tf.zeros([], tf_dtype), tau * tf.sqrt(variance)[..., tf.newaxis]).log_prob(
                w
            ),
            axis=-1,
        )

    def unnormalized_log_prob(z):
        return prior_log_prob(z) + log_likelihood(z)

    joint = tfd.JointDistributionSequential(
        [
            tfd.Sample(tfd.InverseGamma(a0_t, b0_t), [1]),
            lambda variance: tfd.Independent(
                tfd.Normal(tf.zeros([p], tf_dtype), tau * tf.sqrt(variance)), 1
            ),
        ]
    )
    # [variance [1], w [p]] -> [w, variance] -> one vector [p + 1].
    prior = tfd.TransformedDistribution(
        joint,
        tfb.Chain([tfb.Invert(tfb.Split([p, 1])), tfb.Restructure([1, 0])]),
        name="normal_inverse_gamma_prior",
    )

    def simulate(seed):
        true_params, y_new = _simulate_data(np.random.default_rng(seed), x, prior_scale, a0, b0)
        return true_params, _build(x, y_new, prior_scale, a0, b0, dtype)

    return Model(
        name="linear_regression_unknown_noise",
        pretty_name=f"Linear regression, unknown noise (p={p})",
        dimension=p + 1,
        dtype=tf_dtype,
        default_event_space_bijector=tfb.Blockwise([tfb.Identity(), tfb.Exp()], block_sizes=[p, 1]),
        unnormalized_log_prob=unnormalized_log_prob,
        reference=reference,
        description=f"linear regression, unknown noise (NIG prior), n={n}; exact marginals, log Z",
        log_likelihood=log_likelihood,
        prior_distribution=prior,
        simulate=simulate,
        data={
            "x": x,
            "y": y,
            "mean0": mean0,
            "precision0": precision0,
            "a0": np.float64(a0),
            "b0": np.float64(b0),
        },
    )
