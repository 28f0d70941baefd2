"""Variational simulation-based calibration (VSBC; Yao, Vehtari, Simpson & Gelman, 2018,
"Yes, but did it work?: Evaluating variational inference", ICML).

For M data sets simulated from the prior predictive (true parameters θ⁽ʲ⁾ ~ p(θ), data
y⁽ʲ⁾ ~ p(y | θ⁽ʲ⁾)), fit q⁽ʲ⁾ and compute per coordinate i

    p_ij = Pr_{q⁽ʲ⁾}(θ_i < θ⁽ʲ⁾_i).

If every q⁽ʲ⁾ were the exact posterior, p_·i would be uniform on (0, 1).  VSBC tests the weaker
property that variational approximations should keep: p_·i is *symmetric* about ½.  A q whose
marginal is biased (shifted) puts p_·i mostly on one side.  The test is the two-sample
Kolmogorov–Smirnov test of p_·i against 1 − p_·i (as in the paper; the two samples are not
independent, so the p-value is a screening statistic, conservative under symmetry).

Pure NumPy/SciPy functions; the simulations and fits are run by :mod:`harness.vsbc`.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

# Family-wise level for the Bonferroni verdict over coordinates.
DEFAULT_LEVEL = 0.05


def probabilities(q_draws: np.ndarray, true_params: np.ndarray) -> np.ndarray:
    """``Pr_q(θ_i < θ_true_i)`` per coordinate from draws of q (ties count one half).

    Args:
      q_draws: Draws from one fitted q, ``[n, d]``.
      true_params: The parameters the data were simulated from, ``[d]``.

    Returns:
      ``[d]`` probabilities in [0, 1].
    """
    q = np.asarray(q_draws, dtype=np.float64)
    q = q.reshape(q.shape[0], -1)
    truth = np.asarray(true_params, dtype=np.float64).reshape(1, -1)
    if truth.shape[1] != q.shape[1]:
        raise ValueError(f"true_params has {truth.shape[1]} coordinates, draws have {q.shape[1]}")
    return np.mean(q < truth, axis=0) + 0.5 * np.mean(q == truth, axis=0)


def asymmetry_pvalues(p: np.ndarray) -> np.ndarray:
    """KS two-sample p-value of ``p_·i`` against ``1 − p_·i`` for each coordinate.

    Args:
      p: ``[M, d]`` probabilities from :func:`probabilities` of M simulations.

    Returns:
      ``[d]`` p-values; small means q's marginal is asymmetric (biased) in that coordinate.
    """
    p = np.asarray(p, dtype=np.float64)
    p = p.reshape(p.shape[0], -1)
    if p.shape[0] < 2:
        raise ValueError(f"VSBC needs at least 2 simulations, got {p.shape[0]}")
    return np.array([stats.ks_2samp(p[:, i], 1.0 - p[:, i]).pvalue for i in range(p.shape[1])])


def summary(pvalues: np.ndarray, level: float = DEFAULT_LEVEL) -> dict[str, float]:
    """Summary over coordinates: the smallest p-value, its Bonferroni adjustment and verdict.

    Returns:
      ``vsbc_min_pvalue``; ``vsbc_bonferroni_pvalue`` = min(1, d · min p-value);
      ``vsbc_num_asymmetric`` = coordinates with p-value < level / d; ``vsbc_symmetric`` = 1.0
      when the Bonferroni p-value is ≥ ``level``, else 0.0.
    """
    pvalues = np.asarray(pvalues, dtype=np.float64).ravel()
    d = pvalues.size
    smallest = float(np.min(pvalues))
    bonferroni = min(1.0, d * smallest)
    return {
        "vsbc_min_pvalue": smallest,
        "vsbc_bonferroni_pvalue": bonferroni,
        "vsbc_num_asymmetric": float(np.sum(pvalues < level / d)),
        "vsbc_symmetric": float(bonferroni >= level),
    }
