"""Straight-line regression on an uncentred calendar year: exact Gaussian posterior.

An annual series of 71 years, 1950–2020 (a temperature anomaly in °C, simulated from the fixed
seed ``19500101``: a trend of 0.015 °C per year through 0.1 °C in 1985 plus N(0, 0.1²)
noise), regressed on the year as a user writes it, the year left uncentred::

    α ~ N(0, 200²)                       intercept: the anomaly in year 0 (°C)
    β ~ N(0, 0.1²)                       trend (°C per year)
    y_t | α, β ~ N(α + β t, σ²)          t = 1950..2020, known noise σ = 0.1 °C

The prior scales are wide independent normals on the uncentred coefficients (a trend of
±10 °C per century; ±200 °C at year 0 covers ``1985 · 0.1``); the data dominate them.

Posterior (conjugate, Bishop, *Pattern Recognition and Machine Learning*, 2006, eqs.
3.50–3.51, with the prior precision ``Λ₀ = diag(1/200², 1/0.1²)``)::

    Σ_n = (Λ₀ + XᵀX/σ²)⁻¹,   m_n = Σ_n Xᵀy / σ²,   X = [1, t]

and ``log Z = log N(y; 0, σ² I + X Λ₀⁻¹ Xᵀ)`` (Bishop eq. 3.86).  The event is ``[α, β]``
(identity bijector).

Why it is hard (an ordinary posterior, exactly Gaussian): the years sit ~1985 from zero and
spread only ±20, so α ≈ −29.8 (sd 1.15) and β ≈ 0.0150 (sd 5.8·10⁻⁴) are correlated at
−0.99995: the posterior is a ridge whose width across is 10⁻² of its marginal sds, and its
covariance has condition number ≈ 4·10¹⁰.  In float32 the residuals ``y − α − β t`` cancel two
numbers of size 30 (round-off ~2·10⁻⁶, 2·10⁻⁵ of σ), which is enough to make finite-difference
Hessians of float32 gradients indefinite and to hide the last steps to the mode
(``docs/convergence.md``).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from harness.models.base import Model, exact_reference
from harness.models.linear_regression import conjugate_posterior

tfb = tfp.bijectors
tfd = tfp.distributions

FIRST_YEAR, LAST_YEAR = 1950, 2020
# Fixed seed of the simulated series (its noise), and of the reference draws.
_DATA_SEED = 19_500_101
_REFERENCE_DRAWS = 20_000
_REFERENCE_DRAW_SEED = 19_500_102
# The simulated truth: 0.1 °C in 1985 and 0.015 °C per year (about the observed warming rate
# of global mean temperature since 1950), N(0, 0.1²) year-to-year noise.
_TRUE_LEVEL_1985, _TRUE_TREND = 0.1, 0.015
NOISE_SCALE = 0.1
# Prior sds of (α, β): wide against the data (see the module docstring).
PRIOR_SCALES = (200.0, 0.1)


def series() -> tuple[np.ndarray, np.ndarray]:
    """The shipped series: years ``[71]`` (1950–2020) and the anomaly ``[71]`` (°C)."""
    years = np.arange(FIRST_YEAR, LAST_YEAR + 1, dtype=np.float64)
    noise = np.random.default_rng(_DATA_SEED).normal(size=years.size)
    return years, _TRUE_LEVEL_1985 + _TRUE_TREND * (years - 1985) + NOISE_SCALE * noise


def calendar_regression(dtype: str = "float32") -> Model:
    """Build the regression of an annual series on the uncentred year (d = 2).

    Args:
      dtype: ``float32`` or ``float64``.
    """
    years, y = series()
    return _build(np.column_stack([np.ones_like(years), years]), y, dtype)


def _build(x: np.ndarray, y: np.ndarray, dtype: str) -> Model:
    n, p = x.shape
    tf_dtype = tf.as_dtype(dtype)
    prior_scales = np.asarray(PRIOR_SCALES, np.float64)
    # The posterior in float64 (condition number ~10¹⁰: still ~10⁻⁶ relative accuracy).
    mean, cov, log_normalizer = conjugate_posterior(x, y, NOISE_SCALE, prior_scales)
    draws = np.random.default_rng(_REFERENCE_DRAW_SEED).multivariate_normal(
        mean, cov, size=_REFERENCE_DRAWS
    )
    reference = exact_reference(
        mean,
        cov,
        log_normalizer=float(log_normalizer),
        draws=draws,
        provenance=(
            "closed form: Gaussian posterior of linear regression (Bishop 2006 eqs. "
            f"3.50-3.51, 3.86), n={n}, sigma={NOISE_SCALE}, prior sds {PRIOR_SCALES}; "
            f"draws: numpy default_rng({_REFERENCE_DRAW_SEED}).multivariate_normal, "
            f"n={_REFERENCE_DRAWS}"
        ),
    )
    x_t, y_t = tf.constant(x, tf_dtype), tf.constant(y, tf_dtype)
    prior = tfd.MultivariateNormalDiag(
        loc=tf.zeros([p], tf_dtype), scale_diag=tf.constant(prior_scales, tf_dtype)
    )
    noise = tf.constant(NOISE_SCALE, tf_dtype)

    def log_likelihood(w):
        predicted = tf.einsum("...p,np->...n", tf.convert_to_tensor(w, tf_dtype), x_t)
        return tf.reduce_sum(tfd.Normal(predicted, noise).log_prob(y_t), axis=-1)

    def unnormalized_log_prob(w):
        return prior.log_prob(w) + log_likelihood(w)

    def simulate(seed):
        rng = np.random.default_rng(seed)
        w_true = rng.normal(0.0, prior_scales)
        y_new = x @ w_true + NOISE_SCALE * rng.normal(size=n)
        return w_true, _build(x, y_new, dtype)

    return Model(
        name="calendar_regression",
        pretty_name="Calendar-year regression",
        dimension=p,
        dtype=tf_dtype,
        default_event_space_bijector=tfb.Identity(),
        unnormalized_log_prob=unnormalized_log_prob,
        reference=reference,
        description=(
            "annual series on the uncentred year 1950-2020, known noise; intercept-slope "
            "correlation -0.99995; exact posterior and log Z"
        ),
        log_likelihood=log_likelihood,
        prior_distribution=prior,
        simulate=simulate,
        data={
            "x": x,
            "y": y,
            "noise_scale": np.float64(NOISE_SCALE),
            "mean0": np.zeros(p),
            "precision0": np.diag(prior_scales**-2.0),
        },
    )
