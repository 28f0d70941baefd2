"""What a cell costs: the four parts of ``time_to_result_seconds`` on real small fits.

Compilation, the initialisation's search, the optimisation and the evaluation add up to the
time to result for an SVI cell, an SAA cell and a baseline (Laplace); a cell that reuses a
compiled loop is charged the compilation a standalone fit pays; the loss curve starts at the
optimisation's start (after the mode search), as the ELBO-vs-time figure draws it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from harness import run_content
from harness.engines.common import COST_PARTS
from harness.figures import elbo_vs_time
from harness.fit import fit
from harness.spec import Cell, FitSettings

# Graph mode (tracing, no XLA compilation: the cheapest compile), the default mode search and
# learning-rate pilots, 200 steps of a 5-dimensional Gaussian: about a second a cell.
SETTINGS = FitSettings(num_steps=200, elbo_sample_size=1000, num_draws_kept=100, jit_compile=False)


def _cell(family: str, seed: int = 0, settings: FitSettings = SETTINGS) -> Cell:
    return Cell("test", "correlated_gaussian", (), family, (), settings, seed)


def _assert_parts_add_up(metrics: dict[str, float]) -> None:
    parts = [metrics[name] for name in COST_PARTS]
    assert all(p >= 0 for p in parts), dict(zip(COST_PARTS, parts, strict=True))
    # Sums of the logged floats: equal to rounding.
    assert metrics["time_to_result_seconds"] == pytest.approx(sum(parts), rel=1e-12)


@pytest.fixture(scope="module")
def svi():
    """Two seeds of one SVI cell in one process: the second reuses the compiled loop."""
    return fit(_cell("mean_field", seed=0)), fit(_cell("mean_field", seed=1))


def test_svi_cell_parts_add_up_to_the_time_to_result(svi):
    first, second = svi
    for result in svi:
        assert result.status == "ok", result.reason
        m = result.metrics
        _assert_parts_add_up(m)
        assert m["initialization_seconds"] > 0  # the mode search ran (shared, charged to each)
        assert m["optimization_seconds"] > 0 and m["evaluation_seconds"] > 0
        # fit_seconds keeps its meaning: initialisation + optimisation, compilation excluded.
        assert m["fit_seconds"] == pytest.approx(
            m["initialization_seconds"] + m["optimization_seconds"], rel=1e-12
        )
    assert first.metrics["compile_seconds_standalone"] == pytest.approx(
        first.metrics["compile_seconds"], rel=1e-12
    )
    # The second seed compiled (almost) nothing, but a standalone fit of it would: it is
    # charged the first one's compilation, so seeds are comparable on the time axis.
    assert second.metrics.get("compile_seconds", 0.0) < 0.5 * first.metrics["compile_seconds"]
    assert second.metrics["compile_seconds_standalone"] == pytest.approx(
        first.metrics["compile_seconds_standalone"], rel=1e-12
    )


def test_loss_curve_starts_at_the_start_of_the_optimisation(svi):
    result = svi[0]
    m = result.metrics
    seconds = result.loss_seconds
    assert seconds.shape == result.losses.shape and np.all(np.diff(seconds) >= 0)
    # The clock starts with the optimisation: the first kept step is dated after the losing
    # pilots only, well before the mode search's duration, and the last at its end.
    assert 0 < seconds[0] < m["initialization_seconds"]
    assert seconds[-1] == pytest.approx(m["optimization_seconds"], rel=1e-9)
    if "seconds_to_converge" in m:  # still the fit time: initialisation included
        assert m["initialization_seconds"] < m["seconds_to_converge"] <= m["fit_seconds"]
    # The ELBO-vs-time figure's curve, from the loss curve the run logs, spans the same range.
    curve = run_content.loss_curve_record(result.losses, seconds)
    histories = pd.DataFrame({"run_id": "r0", **curve})
    table = pd.DataFrame(
        {
            "model": ["correlated_gaussian"],
            "family": ["mean_field"],
            "seed": [0],
            "status": ["ok"],
            "run_id": ["r0"],
        }
    )
    (panel,) = elbo_vs_time.prepare(table, histories).panels
    (line,) = panel.curves
    assert line.time[0] < m["initialization_seconds"]
    assert line.time[-1] == pytest.approx(m["optimization_seconds"], rel=1e-4)


def test_saa_cell_parts_add_up_to_the_time_to_result():
    result = fit(_cell("mean_field", settings=dataclasses.replace(SETTINGS, optimizer="saa")))
    assert result.status == "ok", result.reason
    _assert_parts_add_up(result.metrics)
    assert result.metrics["optimization_seconds"] > 0
    assert result.loss_seconds[0] < result.metrics["initialization_seconds"]


def test_laplace_cell_parts_add_up_to_the_time_to_result():
    result = fit(_cell("laplace"))
    assert result.status == "ok", result.reason
    m = result.metrics
    _assert_parts_add_up(m)
    # The method is the optimisation (its mode search and Hessian); its tracing the compile.
    assert m["initialization_seconds"] == 0
    assert m["optimization_seconds"] == m["fit_seconds"] > 0
    assert m["compile_seconds_standalone"] == m["compile_seconds"] > 0
    assert m["evaluation_seconds"] > 0
