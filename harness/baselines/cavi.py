"""The ``cavi`` baseline: coordinate-ascent VI with closed-form updates (Bishop, 2006, §10.1).

Model (normal-inverse-gamma linear regression, the data contract of
:mod:`harness.models.linear_regression_unknown_noise`; ``Model.data`` holds ``x``, ``y``,
``mean0``, ``precision0`` (``Λ₀``), ``a0``, ``b0``; the event is ``[w_1 … w_p, σ²]``)::

    σ² ~ InvGamma(a₀, b₀),   w | σ² ~ N(m₀, σ² Λ₀⁻¹),   y | w, σ² ~ N(X w, σ² I_n)

Mean-field factorisation ``q(w) q(σ²)`` (Bishop §10.3 treats the known-noise analogue; Drugowitsch,
"Variational Bayesian inference for linear and logistic regression", 2013, this model).  With
``Λ_n = Λ₀ + XᵀX``, ``h = Λ₀ m₀ + Xᵀy`` and ``E[1/σ²] = a/b`` the coordinate updates are::

    q(w)  = N(μ, S):        μ = Λ_n⁻¹ h,   S = (a/b)⁻¹ Λ_n⁻¹
    q(σ²) = InvGamma(a, b):  a = a₀ + (n + p)/2,
                             b = b₀ + ½ (yᵀy + m₀ᵀΛ₀m₀ − 2μᵀh + μᵀΛ_nμ + tr(Λ_n S))

With ``factorize_weights = true``, q(w) is itself factorised, ``Π_i N(μ_i, s_i²)`` (the family of
the gradient ``mean_field`` surrogate, up to q(σ²) being inverse-gamma rather than log-normal):
``s_i² = (a/b)⁻¹ / (Λ_n)_ii`` and one Gauss–Seidel sweep ``μ_i = (h_i − Σ_{j≠i} (Λ_n)_ij μ_j) /
(Λ_n)_ii`` per update.

The ELBO is computed in closed form after each sweep, on the same target and the same space as
the harness's Monte Carlo ELBO: ``E_q[log p(y, w, σ²)] + H[q]`` with q a density over ``(w, σ²)``,
the model's constrained scale (the KL, hence the ELBO, is the same on the unconstrained scale
when target and q both carry the log-Jacobian of ``σ² = exp(u)``).  It never decreases.
"""

from __future__ import annotations

import math
import time

import numpy as np
from scipy.special import digamma, gammaln

from harness.baselines.base import BaselineFit

_DATA_KEYS = ("x", "y", "mean0", "precision0", "a0", "b0")


def supports_cavi(model) -> bool:
    """CAVI applies to normal-inverse-gamma linear regression (``Model.data`` with ``x``, ``y``,
    ``mean0``, ``precision0``, ``a0``, ``b0`` and an event ``[w, σ²]``)."""
    data = getattr(model, "data", None)
    return (
        data is not None
        and all(k in data for k in _DATA_KEYS)
        and model.dimension == np.shape(data["x"])[1] + 1
    )


def _elbo(mean, covariance, a, b, *, x, y, mean0, precision0, a0, b0, precision_n, h):
    """Closed-form ELBO of q(w) = N(mean, covariance), q(σ²) = InvGamma(a, b)."""
    n, p = x.shape
    expected_precision = a / b
    expected_log_variance = math.log(b) - digamma(a)
    quadratic = (
        y @ y
        + mean0 @ precision0 @ mean0
        - 2 * mean @ h
        + mean @ precision_n @ mean
        + np.sum(precision_n * covariance)
    )
    expected_log_joint = (
        -0.5 * (n + p) * math.log(2 * math.pi)
        + 0.5 * np.linalg.slogdet(precision0)[1]
        + a0 * math.log(b0)
        - gammaln(a0)
        - (0.5 * (n + p) + a0 + 1) * expected_log_variance
        - expected_precision * (b0 + 0.5 * quadratic)
    )
    entropy_w = 0.5 * (p * (1 + math.log(2 * math.pi)) + np.linalg.slogdet(covariance)[1])
    entropy_variance = a + math.log(b) + gammaln(a) - (1 + a) * digamma(a)
    return float(expected_log_joint + entropy_w + entropy_variance)


def build_cavi(
    model, *, seed, num_sweeps: int = 100, tolerance: float = 1e-10, factorize_weights: bool = False
) -> BaselineFit:
    """Coordinate-ascent VI for normal-inverse-gamma linear regression.

    Starts from ``q(σ²)`` = the prior and ``μ = m₀``; each sweep updates ``q(w)`` then ``q(σ²)``
    and records the ELBO.  Deterministic: ``seed`` is unused.

    Args:
      model: A model that :func:`supports_cavi`.
      seed: Unused (CAVI is deterministic); accepted for the family contract.
      num_sweeps: Maximum number of sweeps.
      tolerance: Stop when a sweep raises the ELBO by less than this (nats, relative to
        ``max(1, |ELBO|)``).
      factorize_weights: Factorise q(w) over the weights too (see the module docstring).

    Returns:
      A :class:`BaselineFit` with the fitted ``q(w) q(σ²)`` as a distribution over the model's
      flat event and the per-sweep ``losses`` (−ELBO).

    Raises:
      ValueError: when the model is not normal-inverse-gamma linear regression.
    """
    import tensorflow as tf
    import tensorflow_probability as tfp

    tfd = tfp.distributions
    del seed
    if not supports_cavi(model):
        raise ValueError(
            f"cavi supports normal-inverse-gamma linear regression only (Model.data "
            f"with {', '.join(_DATA_KEYS)}); {model.name} is not"
        )
    t0 = time.perf_counter()
    data = {k: np.asarray(model.data[k], np.float64) for k in _DATA_KEYS}
    x, y, mean0, precision0 = data["x"], data["y"], data["mean0"], data["precision0"]
    a0, b0 = float(data["a0"]), float(data["b0"])
    n, p = x.shape
    precision_n = precision0 + x.T @ x
    h = precision0 @ mean0 + x.T @ y
    diagonal = np.diag(precision_n)
    a, b = a0 + 0.5 * (n + p), b0
    expected_precision = a0 / b0  # E[1/σ²] under the prior, the starting q(σ²)
    mean = mean0.copy()
    elbos = []
    converged = False
    for _ in range(num_sweeps):
        if factorize_weights:
            for i in range(p):
                mean[i] += (h[i] - precision_n[i] @ mean) / diagonal[i]
            covariance = np.diag(1.0 / (expected_precision * diagonal))
        else:
            mean = np.linalg.solve(precision_n, h)
            covariance = np.linalg.inv(precision_n) / expected_precision
        b = b0 + 0.5 * (
            y @ y
            + mean0 @ precision0 @ mean0
            - 2 * mean @ h
            + mean @ precision_n @ mean
            + np.sum(precision_n * covariance)
        )
        expected_precision = a / b
        elbos.append(_elbo(mean, covariance, a, b, **data, precision_n=precision_n, h=h))
        if len(elbos) > 1 and elbos[-1] - elbos[-2] < tolerance * max(1.0, abs(elbos[-1])):
            converged = True
            break
    fit_seconds = time.perf_counter() - t0

    dtype = model.dtype
    q = tfd.Blockwise(
        [
            tfd.MultivariateNormalTriL(
                tf.constant(mean, dtype), tf.constant(np.linalg.cholesky(covariance), dtype)
            ),
            tfd.Sample(tfd.InverseGamma(tf.constant(a, dtype), tf.constant(b, dtype)), [1]),
        ],
        name="cavi_surrogate",
    )
    return BaselineFit(
        surrogate_posterior=q,
        losses=-np.array(elbos),
        fit_seconds=fit_seconds,
        num_steps_run=len(elbos),
        mode="numpy",
        converged=converged,
        convergence_reason=(
            f"ELBO changed by < {tolerance:g} (relative) after {len(elbos)} sweeps"
            if converged
            else f"sweep limit {num_sweeps} reached; the ELBO still changed by "
            f"{elbos[-1] - elbos[-2]:.3g} nats"
        ),
    )
