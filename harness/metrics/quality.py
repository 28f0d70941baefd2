"""Quality of a surrogate posterior: ELBO, importance-weighted ELBO, exact KL, log Z error.

All functions take NumPy arrays of log weights ``log p̃(z) − log q(z)`` for draws ``z ~ q``
(p̃ the unnormalized target) and return plain floats.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp


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

    The draws are split into ``n // K`` independent groups of K; each group gives
    ``log (1/K) Σ_k w_k`` and the estimate is their mean (standard error across groups).
    """
    w = np.asarray(log_weights, dtype=np.float64).ravel()
    k = int(importance_sample_size)
    groups = w.size // k
    if k < 1 or groups < 2 or not np.all(np.isfinite(w)):
        return float("nan"), float("nan")
    bounds = logsumexp(w[: groups * k].reshape(groups, k), axis=1) - np.log(k)
    return float(bounds.mean()), float(bounds.std(ddof=1) / np.sqrt(groups))


def gaussian_kl(mean_q, cov_q, mean_p, cov_p) -> float:
    """Exact KL(N(mean_q, cov_q) ‖ N(mean_p, cov_p)) in nats."""
    mean_q, mean_p = np.asarray(mean_q, np.float64), np.asarray(mean_p, np.float64)
    cov_q, cov_p = np.asarray(cov_q, np.float64), np.asarray(cov_p, np.float64)
    d = mean_q.size
    chol_p = np.linalg.cholesky(cov_p)
    solve = np.linalg.solve
    trace = np.trace(solve(chol_p.T, solve(chol_p, cov_q)))
    diff = solve(chol_p, mean_p - mean_q)
    _, logdet_p = np.linalg.slogdet(cov_p)
    _, logdet_q = np.linalg.slogdet(cov_q)
    return float(0.5 * (trace + diff @ diff - d + logdet_p - logdet_q))
