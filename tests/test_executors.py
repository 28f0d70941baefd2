"""Executors: the spawn pool and Ray give the same results as the serial path; compiled
loops are shared between seeds without changing results."""

from __future__ import annotations

import numpy as np
import pytest

from harness import executors, fit
from harness.engines import svi
from harness.spec import Cell, FitSettings

SETTINGS = FitSettings(
    num_steps=20,
    sample_size=4,
    elbo_sample_size=1000,
    num_draws_kept=50,
    learning_rate=0.01,
    initialization="uniform",
)


def _cells():
    return [
        Cell("executors", model, (), family, (), SETTINGS, seed)
        for model in ("banana",)
        for family in ("mean_field", "full_rank")
        for seed in (0, 1, 2)
    ]


def _by_id(results):
    return {r.cell.cell_id: r for r in results}


@pytest.fixture(scope="module")
def serial():
    svi._LAST_COMPILED = None
    return _by_id(executors.run_serial(_cells()))


def _assert_same(results, serial):
    assert set(results) == set(serial)
    for cell_id, result in results.items():
        assert result.status == "ok", result.reason
        np.testing.assert_array_equal(result.losses, serial[cell_id].losses)
        assert result.metrics["elbo"] == serial[cell_id].metrics["elbo"]
        np.testing.assert_array_equal(result.draws, serial[cell_id].draws)


@pytest.mark.slow
def test_local_pool_matches_serial(serial):
    _assert_same(_by_id(executors.run_local(_cells(), workers=2)), serial)


@pytest.mark.slow
def test_ray_matches_serial(serial):
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        _assert_same(_by_id(executors.run_ray(_cells())), serial)
    finally:
        ray.shutdown()


def test_shared_compiled_loop_gives_the_same_fit_as_a_fresh_one():
    first, second = _cells()[3:5]  # full_rank seeds 0 and 1: same compile key
    svi._LAST_COMPILED = None
    fresh = fit.fit(second)
    svi._LAST_COMPILED = None
    fit.fit(first)
    shared = fit.fit(second)
    assert svi._LAST_COMPILED.key == second.compile_key
    np.testing.assert_array_equal(shared.losses, fresh.losses)
    assert shared.metrics["elbo"] == fresh.metrics["elbo"]
    # The shared loop skipped compilation.
    assert shared.metrics["compile_seconds"] < 0.5 * fresh.metrics["compile_seconds"]


def test_group_cells_keeps_seeds_together_and_fills_workers():
    cells = _cells()
    groups = executors.group_cells(cells, workers=1)
    assert sorted(len(g) for g in groups) == [3, 3]
    assert all(len({c.compile_key for c in g}) == 1 for g in groups)
    split = executors.group_cells(cells, workers=4)
    assert len(split) == 4 and sum(len(g) for g in split) == len(cells)


@pytest.mark.slow
def test_vectorized_replicates_agree_in_distribution_with_separate_fits():
    """Paired by seed (same initial values), the final loss level of a vectorized replicate and
    of a separate fit differ only by optimisation noise: a paired z-test across seeds."""
    import dataclasses

    settings = dataclasses.replace(
        SETTINGS, num_steps=400, sample_size=8, elbo_sample_size=2000, vectorize_seeds=True
    )
    cells = [
        Cell("vectorized", "correlated_gaussian", (), "full_rank", (), settings, seed)
        for seed in range(8)
    ]
    batched = fit.fit_group(cells)
    separate = [fit.fit(cell) for cell in cells]
    assert all(r.status == "ok" for r in batched + separate)
    assert [r.cell for r in batched] == cells
    assert {r.fit_mode for r in batched} == {"xla"}
    # Independent replicates: no two seeds give the same trace.
    assert len({r.losses.tobytes() for r in batched}) == len(cells)
    for metric in ("elbo", "kl_divergence"):
        d = np.array(
            [b.metrics[metric] - s.metrics[metric] for b, s in zip(batched, separate, strict=True)]
        )
        assert abs(d.mean()) <= 4 * d.std(ddof=1) / np.sqrt(d.size) + 1e-12, (metric, d)
    tail = slice(-100, None)
    d = np.array(
        [
            b.losses[tail].mean() - s.losses[tail].mean()
            for b, s in zip(batched, separate, strict=True)
        ]
    )
    assert abs(d.mean()) <= 4 * d.std(ddof=1) / np.sqrt(d.size), d


@pytest.mark.slow
def test_vectorize_seeds_falls_back_to_one_by_one_for_families_without_batches():
    import dataclasses

    settings = dataclasses.replace(SETTINGS, vectorize_seeds=True)
    cells = [Cell("vectorized", "banana", (), "iaf", (), settings, seed) for seed in (0, 1)]
    svi._LAST_COMPILED = None
    results = fit.fit_group(cells)
    np.testing.assert_array_equal(results[1].losses, fit.fit(cells[1]).losses)


KILLER = '''
"""A model that kills any worker process that builds it (the driver's contract check passes)."""
import multiprocessing
import os

from harness.models.correlated_gaussian import correlated_gaussian


def model():
    if multiprocessing.parent_process() is not None:
        os._exit(9)
    return correlated_gaussian(dimension=2)
'''


@pytest.mark.slow
def test_worker_crash_is_that_cells_failure_and_the_pool_carries_on(
    write_spec, tracking_uri, tmp_path, capsys
):
    from mlflow.tracking import MlflowClient

    from harness import cli

    (tmp_path / "killer.py").write_text(KILLER)
    spec = write_spec(
        'name = "crash"\nseeds = [0, 1]\n'
        'models = ["banana", "killer.py:model"]\nfamilies = ["mean_field"]\n'
        "[fit]\nnum_steps = 10\nelbo_sample_size = 1000\n"
    )
    code = cli.main(
        [
            "run",
            str(spec),
            "--workers",
            "2",
            "--tracking-uri",
            tracking_uri,
            "--results-dir",
            str(tmp_path / "results"),
        ]
    )
    assert code == 1
    assert "worker process died" in capsys.readouterr().err
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("crash").experiment_id])
    cells = {r.data.tags["mlflow.runName"]: r for r in runs if "harness.cell_id" in r.data.tags}
    assert len(cells) == 4
    for seed in (0, 1):
        assert cells[f"banana/mean_field/{seed}"].data.tags["harness.status"] == "ok"
        killed = [
            r
            for name, r in cells.items()
            if name.endswith(f"mean_field/{seed}") and not name.startswith("banana")
        ]
        assert killed[0].data.tags["harness.status"] == "error"
        assert killed[0].info.status == "FAILED"


def test_pool_and_spec_modules_import_without_tensorflow():
    """The CLI starts its worker pool before it checks the spec: importing the pool (and the
    spec's module) must not import TensorFlow, or the driver would pay for it first."""
    import subprocess
    import sys

    code = (
        "import sys, harness.executors, harness.spec, harness.fit; "
        "print(sorted(m for m in ('tensorflow', 'tensorflow_probability', 'mlflow') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_cells_bound_reads_the_grid_size_from_the_toml_alone(tmp_path):
    from harness import spec

    path = tmp_path / "grid.toml"
    path.write_text(
        'name = "grid"\nseeds = [0, 1, 2]\nmodels = ["banana", "eight_schools"]\n'
        'families = ["mean_field", {name = "iaf", hidden_units = 8}]\n'
        "[fit]\nnum_steps = [10, 20]\nsample_size = 2\n"
    )
    assert spec.cells_bound(path) == len(spec.load(path).cells()) == 24
    overrides = ["seeds=[0]", 'families=["mean_field"]']
    assert spec.cells_bound(path, overrides) == len(spec.load(path, overrides).cells()) == 4
    path.write_text("name = \n")
    assert spec.cells_bound(path) is None
    assert spec.cells_bound(tmp_path / "missing.toml") is None


def test_bad_spec_leaves_no_worker_behind(tmp_path, capsys):
    """The pool starts before the spec is checked; on bad input its workers are killed, not
    waited for."""
    import multiprocessing

    from harness import cli, spec

    path = tmp_path / "bad.toml"
    path.write_text('name = "bad"\nmodels = ["nope"]\nfamilies = ["mean_field"]\n')
    assert spec.cells_bound(path) == 1  # readable: the early pool does start
    code = cli.main(["run", str(path), "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"])
    assert code == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    assert multiprocessing.active_children() == []


def test_aborted_pool_kills_its_workers_instead_of_waiting():
    import signal

    pool = executors.LocalPool(2)
    processes = list(pool._pool._processes.values())
    assert len(processes) == 2
    pool.close(abort=True)
    assert [p.exitcode for p in processes] == [-signal.SIGKILL] * 2


def _learning_rate_cells(n: int) -> list[Cell]:
    """``n`` cells that differ in learning rate: ``n`` groups, each traced anew in a worker."""
    settings = [
        FitSettings(
            num_steps=10,
            sample_size=2,
            elbo_sample_size=1000,
            num_draws_kept=10,
            jit_compile=False,  # graph mode: the cheapest trace that still grows the worker
            learning_rate=0.001 * (i + 1),
            stopping="budget",
            learning_rate_schedule="constant",
            initialization="uniform",
        )
        for i in range(n)
    ]
    return [Cell("memory", "banana", (), "mean_field", (), s, 0) for s in settings]


@pytest.mark.slow
@pytest.mark.chaos
def test_a_worker_fitting_30_learning_rates_stays_under_its_memory_ceiling():
    """Each newly traced group leaves ~10-20 MB in a worker for good; past the ceiling the
    pool's workers are replaced, and results do not change.  (Slow: 30 traces and a few
    TensorFlow imports, ~1-3 min on 2 busy cores.)"""
    cells = _learning_rate_cells(30)
    with executors.LocalPool(1, max_groups_per_worker=None, memory_ceiling_mb=None) as pool:
        warm = list(pool.run(cells[:1]))
        (pid,) = list(pool._pool._processes)
        baseline = executors.resident_memory_mb(pid)
        assert baseline > 100, "a worker with TensorFlow imported"
        # Room for ~5 more groups, then a fresh worker.
        pool.memory_ceiling_mb = ceiling = baseline + 80
        results, resident = list(warm), []
        for result in pool.run(cells[1:]):
            results.append(result)
            # Every worker's memory as each result arrives (before the pool checks it), those
            # of retired pools finishing their queued group included.
            pids = [p for x in (*pool._retired, pool._pool) for p in list(x._processes or {})]
            resident.append(max(executors.resident_memory_mb(p) for p in pids or [0]))
        replacements = pool.replacements
    assert [r.status for r in results] == ["ok"] * 30
    assert replacements >= 2, "the ceiling was never reached: the test proves nothing"
    # Checked after each group: a worker overshoots by at most the growth of the group it
    # was fitting and the one queued to it.
    assert max(resident) < ceiling + 60, (resident, ceiling)
    # The cells fitted after replacements equal fits in a fresh worker, bit for bit.
    again = _by_id(executors.run_local([cells[0], cells[-1]], workers=1))
    for result in (results[0], results[-1]):
        twin = again[result.cell.cell_id]
        np.testing.assert_array_equal(result.losses, twin.losses)
        assert result.metrics["elbo"] == twin.metrics["elbo"]
