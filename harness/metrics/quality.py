"""Quality of a surrogate posterior: ELBO, importance-weighted ELBO, exact KL, log Z error.

The estimators take NumPy arrays of log weights ``log p̃(z) − log q(z)`` for draws ``z ~ q``
(p̃ the unnormalized target) and return plain floats; undefined values are NaN.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

# Fewest groups of K draws behind an iw_elbo estimate: with 32 groups the standard error across
# groups is itself known to about ±13 % (1/sqrt(2·31)), enough to compare bounds.
IW_MIN_GROUPS = 32


def elbo(log_weights: np.ndarray) -> tuple[float, float]:
    """Monte Carlo ELBO ``E_q[log p̃ − log q]`` and its standard error.

    Returns:
      ``(elbo, elbo_standard_error)``; non-finite weights give ``(nan, nan)``.
    """
    w = np.asarray(log_weights, dtype=np.float64).ravel()
    if w.size < 2 or not np.all(np.isfinite(w)):
        return float("nan"), float("nan")
    return float(w.mean()), float(w.std(ddof=1) / np.sqrt(w.size))


def iw_elbo(log_weights: np.ndarray, importance_sample_size: int) -> tuple[float, float]:
    """Importance-weighted ELBO (Burda et al., 2016) with K = ``importance_sample_size``.

    The draws are split into ``n // K`` independent groups of K (a remainder is dropped); each
    group gives ``log (1/K) Σ_k w_k`` and the estimate is their mean, with the standard error
    across groups.  Its expectation is ≥ the ELBO's, increases with K and tends to log Z.

    Returns:
      ``(iw_elbo, iw_elbo_standard_error)``; NaN with fewer than 2 groups or non-finite weights.
    """
    w = np.asarray(log_weights, dtype=np.float64).ravel()
    k = int(importance_sample_size)
    if k < 1:
        return float("nan"), float("nan")
    groups = w.size // k
    if groups < 2 or not np.all(np.isfinite(w)):
        return float("nan"), float("nan")
    bounds = logsumexp(w[: groups * k].reshape(groups, k), axis=1) - np.log(k)
    return float(bounds.mean()), float(bounds.std(ddof=1) / np.sqrt(groups))


def iw_draws_needed(elbo_sample_size: int, importance_sample_size: int) -> int:
    """Fresh draws to evaluate: the ELBO's, topped up to :data:`IW_MIN_GROUPS` groups of K."""
    return max(int(elbo_sample_size), IW_MIN_GROUPS * int(importance_sample_size))


def elbo_likelihood_kl(log_likelihood: np.ndarray, kl_to_prior: float) -> tuple[float, float]:
    """The ELBO in its second form, ``E_q[log p(x | z)] − KL(q(z) ‖ p(z))``.

    With the KL exact (analytic), only the expected log likelihood is a Monte Carlo average;
    its standard error is the estimate's.  Equal in expectation to :func:`elbo` of
    ``log p(x, z) − log q(z)`` on the same draws: a check of the model's prior/likelihood split
    and of the Monte Carlo ELBO.

    Args:
      log_likelihood: ``log p(x | z)`` for draws ``z ~ q``, ``[n]``.
      kl_to_prior: Exact ``KL(q ‖ prior)`` in nats.

    Returns:
      ``(elbo_likelihood_kl, elbo_likelihood_kl_standard_error)``; NaN when undefined.
    """
    ll = np.asarray(log_likelihood, dtype=np.float64).ravel()
    if ll.size < 2 or not np.all(np.isfinite(ll)) or not np.isfinite(kl_to_prior):
        return float("nan"), float("nan")
    return float(ll.mean() - kl_to_prior), float(ll.std(ddof=1) / np.sqrt(ll.size))


def gaussian_kl(mean_q, cov_q, mean_p, cov_p) -> float:
    """Exact KL(N(mean_q, cov_q) ‖ N(mean_p, cov_p)) in nats; NaN if a covariance is not
    positive definite."""
    mean_q = np.atleast_1d(np.asarray(mean_q, np.float64))
    mean_p = np.atleast_1d(np.asarray(mean_p, np.float64))
    d = mean_q.size
    cov_q = np.asarray(cov_q, np.float64).reshape(d, d)
    cov_p = np.asarray(cov_p, np.float64).reshape(d, d)
    try:
        chol_p = np.linalg.cholesky(cov_p)
        chol_q = np.linalg.cholesky(cov_q)
    except np.linalg.LinAlgError:
        return float("nan")
    solve = np.linalg.solve
    # tr(Σp⁻¹ Σq) = ‖Lp⁻¹ Lq‖²_F; log det Σ = 2 Σ log diag L.
    trace = np.sum(solve(chol_p, chol_q) ** 2)
    diff = solve(chol_p, mean_p - mean_q)
    logdet_p = 2 * np.sum(np.log(np.diag(chol_p)))
    logdet_q = 2 * np.sum(np.log(np.diag(chol_q)))
    return float(0.5 * (trace + diff @ diff - d + logdet_p - logdet_q))
