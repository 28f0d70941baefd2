"""Run variational simulation-based calibration (VSBC) for one model × family.

For each of M simulations: draw true parameters and a fresh data set from the model's
simulator (``Model.simulate``), fit the family to the simulated model with the cell's fit
settings (through :func:`harness.fit.fit`, the same loop as a sweep), and record
``Pr_q(θ < θ_true)`` per coordinate.  The statistics are in :mod:`harness.metrics.vsbc`.
Pure: returns a record; logging and figures are the caller's (``harness vsbc``).

Fits run one after another in this process; each simulated data set compiles its own loop
(the data are constants of the compiled function), so budget a few seconds per simulation.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable

import numpy as np

from harness.fit import fit
from harness.metrics import vsbc as vsbc_metrics
from harness.records import Cell, FitResult


@dataclasses.dataclass(frozen=True)
class VsbcResult:
    """Outcome of a VSBC run.

    Attributes:
      cell: The cell whose model, family and fit settings were used (its seed is the base).
      true_params: ``[M, d]`` simulated true parameters of the fits that succeeded.
      probabilities: ``[M, d]`` ``Pr_q(θ_i < θ_true_i)`` of those fits.
      pvalues: ``[d]`` asymmetry-test p-values per coordinate.
      summary: :func:`harness.metrics.vsbc.summary` plus ``num_simulations``,
        ``num_failed`` and ``fit_seconds`` (total over fits).
      failures: ``(simulation index, reason)`` of fits that did not finish ``ok``.
    """

    cell: Cell
    true_params: np.ndarray
    probabilities: np.ndarray
    pvalues: np.ndarray
    summary: dict[str, float]
    failures: tuple[tuple[int, str], ...] = ()


def simulation_seed(cell: Cell, index: int) -> int:
    """Seed of simulation ``index``: derived from the cell's identity, so runs reproduce."""
    digest = hashlib.sha256(f"vsbc:{cell.cell_id}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def run(
    cell: Cell, num_simulations: int, *, on_progress: Callable[[int, FitResult], None] | None = None
) -> VsbcResult:
    """Simulate, fit and test ``num_simulations`` times.

    Args:
      cell: Model (with args), family (with hyperparameters) and fit settings to use.
      num_simulations: M, at least 2 (the asymmetry test's power grows with M; Yao et al.
        use several hundred, 50–100 already shows a clear bias).
      on_progress: Called with ``(index, result)`` after each fit.

    Raises:
      ValueError: when the model has no simulator or M < 2 (before anything is fitted).
      RuntimeError: when fewer than 2 fits finish ``ok``.
    """
    from harness.models import build_model

    if num_simulations < 2:
        raise ValueError(f"VSBC needs at least 2 simulations, got {num_simulations}")
    model = build_model(cell.model, **dict(cell.model_args))
    if model.simulate is None:
        raise ValueError(
            f"model '{cell.model}' has no simulator (Model.simulate), so VSBC cannot run on it"
        )
    truths, probabilities, failures, fit_seconds = [], [], [], 0.0
    for index in range(num_simulations):
        true_params, simulated = model.simulate(simulation_seed(cell, index))
        result = fit(dataclasses.replace(cell, seed=cell.seed + index), model=simulated)
        if on_progress is not None:
            on_progress(index, result)
        if result.status != "ok" or result.draws is None:
            failures.append((index, result.reason or result.status))
            continue
        fit_seconds += result.fit_seconds
        truths.append(np.asarray(true_params, np.float64).ravel())
        probabilities.append(vsbc_metrics.probabilities(result.draws, true_params))
    if len(probabilities) < 2:
        raise RuntimeError(
            f"only {len(probabilities)} of {num_simulations} VSBC fits succeeded: "
            + "; ".join(reason for _, reason in failures[:3])
        )
    p = np.stack(probabilities)
    pvalues = vsbc_metrics.asymmetry_pvalues(p)
    summary = vsbc_metrics.summary(pvalues)
    summary.update(
        num_simulations=float(len(probabilities)),
        num_failed=float(len(failures)),
        fit_seconds=fit_seconds,
    )
    return VsbcResult(
        cell=cell,
        true_params=np.stack(truths),
        probabilities=p,
        pvalues=pvalues,
        summary=summary,
        failures=tuple(failures),
    )
