"""Calibration of a surrogate posterior against a reference: z-errors, std ratios, coverage,
Wasserstein-1 and PSIS k̂.  Pure NumPy/SciPy functions on draws ``[n, d]``.

Every function returns NaN (which :func:`harness.metrics.summary.posterior_metrics` drops, so the
metric is absent) when its value is undefined: non-finite draws, too few draws, or a reference
standard deviation that is not positive.  A one-dimensional ``[n]`` array is read as ``[n, 1]``.
"""

from __future__ import annotations

import numpy as np
from arviz_stats.base import array_stats
from scipy import stats


def _draws(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(x.shape[0], -1) if x.ndim != 2 else x


def _positive(std) -> np.ndarray | None:
    std = np.atleast_1d(np.asarray(std, dtype=np.float64))
    return std if np.all(np.isfinite(std)) and np.all(std > 0) else None


def mean_z_error(q_draws: np.ndarray, reference_mean, reference_std) -> tuple[float, float]:
    """Standardized error of q's mean, ``(E_q[z] − mean_ref) / std_ref`` per coordinate.

    An effect size in reference standard deviations (not a z-test): 0.1 means q's mean is a
    tenth of a posterior sd off.

    Returns:
      ``(mean_z_error_max, mean_z_error_rms)`` over coordinates (max of absolute values).
    """
    q, std = _draws(q_draws), _positive(reference_std)
    if std is None or q.shape[0] < 1 or not np.all(np.isfinite(q)):
        return float("nan"), float("nan")
    z = (np.mean(q, axis=0) - reference_mean) / std
    return float(np.max(np.abs(z))), float(np.sqrt(np.mean(z**2)))


def std_ratio(q_draws: np.ndarray, reference_std) -> tuple[float, float]:
    """q's std ÷ reference std per coordinate: ``(geometric mean, minimum)``.

    Below 1 means q understates uncertainty (mean-field's typical failure).  A coordinate on
    which q has collapsed (constant draws) has ratio 0, which makes both values 0.
    """
    q, std = _draws(q_draws), _positive(reference_std)
    if std is None or q.shape[0] < 2 or not np.all(np.isfinite(q)):
        return float("nan"), float("nan")
    ratio = np.std(q, axis=0, ddof=1) / std
    with np.errstate(divide="ignore"):  # log 0 = −inf → geometric mean 0, as it should be
        geomean = np.exp(np.mean(np.log(ratio)))
    return float(geomean), float(np.min(ratio))


def coverage(
    q_draws: np.ndarray,
    level: float,
    *,
    reference_draws=None,
    reference_mean=None,
    reference_std=None,
) -> float:
    """Reference mass inside q's central ``level`` interval, averaged over coordinates.

    q's interval is between its empirical ``(1 − level)/2`` and ``(1 + level)/2`` quantiles.
    The reference mass is the fraction of reference draws inside it when draws are given (any
    order; each column sorted ascending, as ``Reference.sorted_draws``, is fastest), else
    the mass of the Gaussian with the reference's mean and std (exact for Gaussian posteriors,
    an approximation otherwise).  A calibrated q gives ``level``; an overconfident q gives less.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"coverage level must be in (0, 1), got {level}")
    q = _draws(q_draws)
    if q.shape[0] < 2 or not np.all(np.isfinite(q)):
        return float("nan")
    alpha = (1.0 - level) / 2.0
    lower, upper = np.quantile(q, [alpha, 1.0 - alpha], axis=0)
    if reference_draws is not None:
        ref = _sorted_columns(reference_draws)
        if not np.all(np.isfinite(ref)):
            return float("nan")
        inside = [
            np.searchsorted(col, hi, side="right") - np.searchsorted(col, lo, side="left")
            for col, lo, hi in zip(ref.T, lower, upper, strict=True)
        ]
        return float(np.mean(inside) / ref.shape[0])
    std = _positive(reference_std)
    if std is None:
        return float("nan")
    mass = stats.norm.cdf(upper, reference_mean, std) - stats.norm.cdf(lower, reference_mean, std)
    return float(np.mean(mass))


def wasserstein_1(q_draws: np.ndarray, reference_draws: np.ndarray, reference_std) -> float:
    """Mean over coordinates of the 1-d Wasserstein-1 distance between q's and the reference's
    marginals, both divided by the reference std (so 0.1 means "a tenth of a posterior sd").

    ``reference_draws`` may be in any order; with each column sorted ascending (as
    ``Reference.sorted_draws``) no sorting of the reference is repeated.
    """
    q, std = _sorted_columns(q_draws), _positive(reference_std)
    ref = _sorted_columns(reference_draws)
    if (
        std is None
        or q.shape[0] < 1
        or ref.shape[0] < 1
        or not np.all(np.isfinite(q))
        or not np.all(np.isfinite(ref))
    ):
        return float("nan")
    return float(np.mean(_w1_sorted(q, ref) / std))


def _sorted_columns(x) -> np.ndarray:
    """Draws ``[n, d]`` with each column sorted ascending.  A stable sort finds sorted input
    in linear time, so presorted draws cost a pass, not a sort."""
    return np.sort(_draws(x), axis=0, kind="stable")


def _w1_sorted(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Per-column W1 between two empirical distributions given column-sorted draws ``u``
    ``[n, d]`` and ``v`` ``[m, d]``: ``∫₀¹ |Q_u(t) − Q_v(t)| dt`` with Q the quantile functions.

    Both quantile functions are steps on the grids ``k/n`` and ``j/m``; on each piece of the
    merged grid they are constant, so the integral is a sum over ``n + m − 1`` pieces — the
    same value as ``scipy.stats.wasserstein_distance`` (unweighted), in linear time.
    """
    n, m = u.shape[0], v.shape[0]
    # Breakpoints as integers k·m and j·n on the scale n·m, merged; a piece starting at e
    # lies in [k·m, (k+1)·m) with k = e // m (u's step) and j = e // n (v's step).
    edges = np.sort(np.concatenate([np.arange(n + 1) * m, np.arange(1, m) * n]), kind="stable")
    starts, widths = edges[:-1], np.diff(edges)
    keep = widths > 0
    starts, widths = starts[keep], widths[keep] / (n * m)
    # [d, pieces]; np.take on contiguous rows is several times faster than fancy indexing.
    u_rows, v_rows = np.ascontiguousarray(u.T), np.ascontiguousarray(v.T)
    gaps = np.abs(np.take(u_rows, starts // m, axis=1) - np.take(v_rows, starts // n, axis=1))
    return gaps @ widths


def khat(log_weights: np.ndarray) -> float:
    """PSIS Pareto k̂ of the importance ratios p̃/q (Vehtari et al., 2024), via arviz-stats.

    < 0.5: q is good for importance sampling; 0.5–0.7: usable; > 0.7: unreliable.  NaN when the
    weights are not finite, too few, or all equal in the tail (q exactly proportional to p̃).
    """
    w = np.asarray(log_weights, dtype=np.float64).ravel()
    if not np.all(np.isfinite(w)):
        return float("nan")
    # arviz-stats' psislw is built for PSIS-LOO: it takes log *likelihoods* and smooths the
    # weights 1/likelihood, i.e. it negates its input.  Pass −log w so it smooths w itself.
    try:
        # Near-equal tail weights (q ≈ p̃, e.g. an exact Gaussian fit) make the tail fit divide
        # by ~0; the result is then NaN (undefined), not a warning.
        with np.errstate(divide="ignore", invalid="ignore"):
            _, k = array_stats.psislw(-w)
    except ValueError:
        # Too few draws for a tail (n < ~25), or identical tail weights: k̂ is undefined.
        return float("nan")
    return float(np.asarray(k))


def khat_band(k: float) -> str:
    """Reliability band of a k̂ value: ``good`` (< 0.5), ``usable`` (< 0.7) or ``unreliable``."""
    if not np.isfinite(k):
        return "undefined"
    return "good" if k < 0.5 else "usable" if k < 0.7 else "unreliable"
