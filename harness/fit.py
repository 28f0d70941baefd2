"""Fit one cell: ``fit(cell) -> FitResult``.  Pure: no logging, no files, no printing.

The dispatch layer: build the cell's model (or take the one passed in), pick the engine of its
family's kind (:mod:`harness.engines`), and turn an exception into a ``status = error``
result.  :func:`fit_group` fits the cells of one compiled group (cells that differ only in
seed), as one vectorized batch where the settings ask for it and the family allows it.
Importing this module imports no TensorFlow.
"""

from __future__ import annotations

import time

from harness.records import Cell, FitResult

# The model of the last cell fitted in this process, keyed by (name, arguments): the cells of a
# group share it, and with it the compiled loop the SVI engine keeps.
_LAST_MODEL: tuple[str, object] | None = None


def fit(cell: Cell, model=None) -> FitResult:
    """Fit one cell and compute its metrics; exceptions become ``status = error`` results.

    Args:
      cell: The cell to fit.
      model: The :class:`~harness.models.base.Model` to fit instead of building
        ``cell.model`` from the registry (e.g. a model on simulated data, for VSBC).  Such a
        fit neither reuses nor leaves behind a compiled loop for other cells.
    """
    started = time.time()
    try:
        reuse = model is None
        model = _model(cell) if model is None else model
        return _engine_of(cell, model).run(cell, model, _family(cell), started, reuse=reuse)
    except Exception as e:  # noqa: BLE001 - a failing cell is a result, the sweep goes on
        from harness.engines.common import error_result

        return error_result(cell, started, e)


def fit_group(cells: list[Cell]) -> list[FitResult]:
    """Fit cells that differ only in seed (one :attr:`Cell.compile_key`): as one vectorized
    batch when their settings ask for it and the family allows it (``Family.batchable``),
    else one after another in this process, reusing the compiled loop."""
    if (
        len(cells) > 1
        and cells[0].fit.vectorize_seeds
        and len({c.compile_key for c in cells}) == 1
        and getattr(_family(cells[0]), "batchable", False)
    ):
        return fit_replicates(cells)
    return [fit(cell) for cell in cells]


def fit_replicates(cells: list[Cell]) -> list[FitResult]:
    """Fit cells that differ only in seed as one batch of independent surrogates (see
    :func:`harness.engines.svi.run_replicates`); a failing batch is an error result for each
    of its cells."""
    started = time.time()
    try:
        from harness.engines import svi

        return svi.run_replicates(cells, _model(cells[0]), _family(cells[0]), started)
    except Exception as e:  # noqa: BLE001 - a failing batch is a result for each of its cells
        from harness.engines.common import error_result

        return [error_result(cell, started, e) for cell in cells]


def _family(cell: Cell):
    from harness.families import FAMILIES

    return FAMILIES[cell.family]


def _model(cell: Cell):
    """The registry's model of the cell, shared with the previous cell when it is the same."""
    import json

    from harness.models import build_model

    global _LAST_MODEL
    key = json.dumps([cell.model, dict(cell.model_args)], sort_keys=True, default=str)
    if _LAST_MODEL is None or _LAST_MODEL[0] != key:
        _LAST_MODEL = (key, build_model(cell.model, **dict(cell.model_args)))
    return _LAST_MODEL[1]


def _engine_of(cell: Cell, model):
    """The engine of the cell's family kind; an amortized model takes the amortized engine
    whatever the family (which then says why the pair does not fit)."""
    from harness.engines import engine

    kind = _family(cell).kind
    if getattr(model, "kind", "posterior") == "amortized":
        kind = "amortized"
    return engine(kind)
