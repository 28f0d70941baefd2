"""Mode coverage: how q's mass spreads over a multimodal target's known modes.

For a target that is a known mixture ``Σ_m π_m N(μ_m, Σ_m)`` (a reference with
:class:`harness.models.base.Modes`), each draw of q is assigned to the mode of highest
responsibility ``π_m N(z; μ_m, Σ_m)``, and ``q̂_m`` is the share of q's draws assigned to mode m.
Mode-coverage evaluation follows Blessing, Jia, Esslinger, Vargas and Neumann, "Beyond ELBOs: A
Large-Scale Evaluation of Variational Methods for Sampling" (ICML 2024), whose entropic mode
coverage is the entropy of ``q̂`` normalised by log M; for targets with *unequal* weights that
is maximised by a q spreading its mass evenly, not by the target itself, so we compare ``q̂`` with
the target's weights ``π`` instead (see docs/multimodal.md):

* ``mode_fraction_recovered``: the fraction of the M modes holding at least
  :data:`RECOVERY_THRESHOLD` of their target weight in q (``q̂_m ≥ 0.1 π_m``).  1 when q is the
  target (up to Monte Carlo error), 1/M for a Gaussian on one mode;
* ``mode_weight_tv``: the total-variation distance ``½ Σ_m |q̂_m − π_m|`` between q's and the
  target's mode weights: 0 when q weighs every mode as the target does, ``1 − π_m`` for a q on
  mode m alone.

Pure NumPy: arrays in, floats out.  The catalog entries compute them through
:func:`fraction_recovered` and :func:`weight_tv` (a :class:`harness.metrics.catalog.PosteriorSample`
in, None for a model without modes).
"""

from __future__ import annotations

import numpy as np

# A mode counts as recovered when q holds at least this fraction of its target weight.  A
# tenth separates a mode q has (≈ π_m) from the tails of a Gaussian sitting on a neighbouring
# mode 5 sds away (~10⁻³ of q's mass), and a mode of weight 0.067 needs q̂ ≥ 0.0067: 27 of the
# 4,096 evaluation draws at the threshold (a Monte Carlo sd of 5 draws).
RECOVERY_THRESHOLD = 0.1


def assign_modes(draws: np.ndarray, modes) -> np.ndarray:
    """Index ``[n]`` of the mode of highest responsibility for each draw ``[n, d]``."""
    draws = np.asarray(draws, np.float64)
    factors = np.linalg.cholesky(np.asarray(modes.covariances, np.float64))  # [M, d, d]
    log_resp = []
    for weight, mean, factor in zip(modes.weights, modes.means, factors, strict=True):
        white = np.linalg.solve(factor, (draws - mean).T)  # [d, n]
        log_resp.append(
            np.log(weight) - np.sum(np.log(np.diag(factor))) - 0.5 * np.sum(white**2, axis=0)
        )
    return np.argmax(np.stack(log_resp), axis=0)


def mode_shares(draws: np.ndarray, modes) -> np.ndarray:
    """``q̂``: the share of ``draws`` assigned to each mode, ``[M]``."""
    counts = np.bincount(assign_modes(draws, modes), minlength=modes.num_modes)
    return counts / max(1, counts.sum())


def mode_metrics(draws: np.ndarray, modes) -> dict[str, float]:
    """``mode_fraction_recovered`` and ``mode_weight_tv`` of q's ``draws`` (see the module
    docstring)."""
    shares = mode_shares(draws, modes)
    weights = np.asarray(modes.weights, np.float64)
    return {
        "mode_fraction_recovered": float(np.mean(shares >= RECOVERY_THRESHOLD * weights)),
        "mode_weight_tv": float(0.5 * np.sum(np.abs(shares - weights))),
    }


def _modes(sample):
    reference = sample.model.reference
    return None if reference is None else reference.modes


def fraction_recovered(sample) -> float | None:
    """``mode_fraction_recovered`` of a catalog :class:`~harness.metrics.catalog.PosteriorSample`."""
    modes = _modes(sample)
    return None if modes is None else mode_metrics(sample.draws, modes)["mode_fraction_recovered"]


def weight_tv(sample) -> float | None:
    """``mode_weight_tv`` of a catalog :class:`~harness.metrics.catalog.PosteriorSample`."""
    modes = _modes(sample)
    return None if modes is None else mode_metrics(sample.draws, modes)["mode_weight_tv"]
