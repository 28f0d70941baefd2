"""Calibration of a surrogate posterior against a reference: z-errors, std ratios, coverage,
Wasserstein-1 and PSIS k̂.  Pure NumPy/SciPy functions on draws ``[n, d]``."""

from __future__ import annotations

import numpy as np
from scipy import stats


def mean_z_error(q_draws: np.ndarray, reference_mean, reference_std) -> tuple[float, float]:
    """Standardized error of q's mean, ``(E_q[z] − mean_ref) / std_ref`` per coordinate.

    Returns:
      ``(mean_z_error_max, mean_z_error_rms)`` over coordinates (max of absolute values).
    """
    z = (np.mean(q_draws, axis=0) - reference_mean) / reference_std
    return float(np.max(np.abs(z))), float(np.sqrt(np.mean(z**2)))


def std_ratio(q_draws: np.ndarray, reference_std) -> tuple[float, float]:
    """q's std ÷ reference std per coordinate: ``(geometric mean, minimum)``.

    Below 1 means q understates uncertainty (mean-field's typical failure).
    """
    ratio = np.std(q_draws, axis=0, ddof=1) / reference_std
    return float(np.exp(np.mean(np.log(ratio)))), float(np.min(ratio))


def coverage(q_draws: np.ndarray, level: float, *, reference_draws=None, reference_mean=None,
             reference_std=None) -> float:
    """Reference mass inside q's central ``level`` interval, averaged over coordinates.

    Uses reference draws when given, else the Gaussian with the reference's mean and std.
    A calibrated q gives ``level``; an overconfident q gives less.
    """
    alpha = (1.0 - level) / 2.0
    lower, upper = np.quantile(q_draws, [alpha, 1.0 - alpha], axis=0)
    if reference_draws is not None:
        inside = (reference_draws >= lower) & (reference_draws <= upper)
        return float(np.mean(inside))
    mass = (stats.norm.cdf(upper, reference_mean, reference_std)
            - stats.norm.cdf(lower, reference_mean, reference_std))
    return float(np.mean(mass))


def wasserstein_1(q_draws: np.ndarray, reference_draws: np.ndarray, reference_std) -> float:
    """Mean over coordinates of the 1-d Wasserstein-1 distance between q's and the reference's
    marginals, both divided by the reference std (so 0.1 means "a tenth of a posterior sd")."""
    return float(np.mean([
        stats.wasserstein_distance(q_draws[:, i] / s, reference_draws[:, i] / s)
        for i, s in enumerate(np.asarray(reference_std))]))


def khat(log_weights: np.ndarray) -> float:
    """PSIS Pareto k̂ of the importance ratios p̃/q (Vehtari et al., 2024), via arviz-stats.

    < 0.5: q is good for importance sampling; 0.5–0.7: usable; > 0.7: unreliable.
    """
    from arviz_stats.base import array_stats

    w = np.asarray(log_weights, dtype=np.float64).ravel()
    if not np.all(np.isfinite(w)):
        return float("nan")
    # arviz-stats' psislw is built for PSIS-LOO: it takes log *likelihoods* and smooths the
    # weights 1/likelihood, i.e. it negates its input.  Pass −log w so it smooths w itself.
    _, k = array_stats.psislw(-w)
    return float(np.asarray(k))


def khat_band(k: float) -> str:
    """Reliability band of a k̂ value: ``good`` (< 0.5), ``usable`` (< 0.7) or ``unreliable``."""
    if not np.isfinite(k):
        return "undefined"
    return "good" if k < 0.5 else "usable" if k < 0.7 else "unreliable"
