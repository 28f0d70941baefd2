"""Reliability: divergent fits and failing cells are results; the journal keeps results safe.

Real fits, a real sqlite MLflow store; the test models below are registered with monkeypatch
and run in-process (``--executor serial``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.tracking import MlflowClient

from harness import cli, journal, report, tracking
from harness.fit import FitResult
from harness.models import MODELS
from harness.models.base import Model, exact_reference
from harness.spec import Cell, FitSettings

# Posterior metrics that must be absent (never faked) when a fit diverged.
POSTERIOR_METRICS = (
    "elbo",
    "elbo_standard_error",
    "khat",
    "mean_z_error_max",
    "mean_z_error_rms",
    "std_ratio_geomean",
    "coverage_90",
    "wasserstein_1",
)


def _gaussian_test_model(name: str, log_prob_fn, mode: float) -> Model:
    import tensorflow_probability as tfp

    dimension = 2
    return Model(
        name=name,
        pretty_name=name,
        dimension=dimension,
        dtype=np.float32,
        default_event_space_bijector=tfp.bijectors.Identity(),
        unnormalized_log_prob=log_prob_fn,
        reference=exact_reference(
            np.full(dimension, mode), np.eye(dimension), provenance="closed form: N(mode·1, I)"
        ),
    )


def nan_beyond_three() -> Model:
    """Target N(10·1, I) whose log density is NaN wherever a coordinate exceeds 3.

    A fit starting at q = N(0, 0.1²I) moves its mean towards 10 (about ``learning_rate`` per
    Adam step), so its particles enter the NaN region after a few dozen steps: the loss becomes
    NaN part-way through the fit.
    """
    import tensorflow as tf

    def log_prob(x):
        density = -0.5 * tf.reduce_sum(tf.square(x - 10.0), axis=-1)
        return tf.where(tf.reduce_any(x > 3.0, axis=-1), tf.constant(np.nan, x.dtype), density)

    return _gaussian_test_model("nan_beyond_three", log_prob, 10.0)


def nan_on_large_batches() -> Model:
    """Target N(0, I) whose log density is NaN on batches of more than 64 points.

    The fit's batches (``sample_size`` particles) are finite, the evaluation's fresh draws
    (``elbo_sample_size`` ≥ 1000) are not: the fitted surrogate's log weights are non-finite.
    """
    import tensorflow as tf

    def log_prob(x):
        density = -0.5 * tf.reduce_sum(tf.square(x), axis=-1)
        return tf.where(tf.shape(x)[0] > 64, tf.constant(np.nan, x.dtype), density)

    return _gaussian_test_model("nan_on_large_batches", log_prob, 0.0)


def raises_on_build() -> Model:
    """A model whose factory raises: its cell must end as ``error``."""
    raise RuntimeError("this model cannot be built")


@pytest.fixture
def test_models(monkeypatch):
    for factory in (nan_beyond_three, nan_on_large_batches, raises_on_build):
        monkeypatch.setitem(MODELS, factory.__name__, factory)


SPEC = """
name = "reliability"
models = [{models}]
families = ["mean_field"]
[fit]
num_steps = 60
sample_size = 4
learning_rate = 0.1
elbo_sample_size = 1000
num_draws_kept = 10
initialization = "uniform"
"""


def _serial_run(path, uri, tmp_path) -> list[str]:
    """``harness run`` arguments of a serial sweep of ``path`` into ``uri``."""
    return [
        "run",
        str(path),
        "--tracking-uri",
        uri,
        "--executor",
        "serial",
        "--results-dir",
        str(tmp_path / "results"),
    ]


def test_a_sweep_where_every_cell_errors_reports_what_it_can(
    test_models, write_spec, tracking_uri, tmp_path, capsys
):
    """No cell ok: cells.csv is written, the report says why, exit 1, no traceback; every run
    ends in a final state."""
    path = write_spec(SPEC.format(models='"raises_on_build"'))
    args = _serial_run(path, tracking_uri, tmp_path)
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "report incomplete: no cell finished ok (1 error)" in err
    table = pd.read_csv(tmp_path / "results" / "reliability" / "cells.csv")
    assert list(table["status"]) == ["error"]
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("reliability")
    statuses = {r.info.status for r in client.search_runs([experiment.experiment_id])}
    assert statuses == {"FAILED"}, "the parent run and the cell's run end FAILED"
    out = tmp_path / "report"
    code = cli.main(["report", str(path), "--tracking-uri", tracking_uri, "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.err
    assert "no cell finished ok (1 error): only cells.csv written" in captured.err
    assert sorted(p.name for p in out.iterdir()) == ["cells.csv"]
    assert not list((tmp_path / "results").rglob("*.lock"))


def _cell_runs(uri: str, experiment: str) -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    return [r for r in runs if "harness.cell_id" in r.data.tags]


@pytest.mark.slow
def test_divergence_is_a_result_and_errors_end_the_sweep_with_exit_1(
    test_models, write_spec, tracking_uri, tmp_path, capsys
):
    models = '"nan_beyond_three", "nan_on_large_batches", "correlated_gaussian"'
    path = write_spec(SPEC.format(models=models))
    args = _serial_run(path, tracking_uri, tmp_path)
    assert cli.main(args) == 0, "diverged cells alone must exit 0"
    assert "2 cells diverged" in capsys.readouterr().err
    client = MlflowClient(tracking_uri)
    runs = {r.data.tags["harness.model"]: r for r in _cell_runs(tracking_uri, "reliability")}
    assert set(runs) == {"nan_beyond_three", "nan_on_large_batches", "correlated_gaussian"}

    drift = runs["nan_beyond_three"]
    tags = drift.data.tags
    assert drift.info.status == "FINISHED"
    assert tags["harness.status"] == "diverged"
    step = int(tags["harness.diverged_step"])
    assert 0 < step < 60
    assert tags["harness.reason"] == f"loss became nan at step {step}"
    history = client.get_metric_history(drift.info.run_id, "loss")
    steps = [m.step for m in history]
    assert steps[:step] == list(range(step)) and step not in steps, "non-finite losses are absent"
    assert all(np.isfinite(m.value) for m in history)
    for metric in POSTERIOR_METRICS:
        assert metric not in drift.data.metrics, metric
    assert drift.data.metrics["num_steps_run"] >= step + 1

    evaluation = runs["nan_on_large_batches"]
    tags = evaluation.data.tags
    assert tags["harness.status"] == "diverged"
    assert tags["harness.diverged_step"] == "60"
    assert "non-finite draws or log densities" in tags["harness.reason"]
    for metric in POSTERIOR_METRICS:
        assert metric not in evaluation.data.metrics, metric
    assert len(client.get_metric_history(evaluation.info.run_id, "loss")) == 60

    ok = runs["correlated_gaussian"]
    assert ok.data.tags["harness.status"] == "ok"
    assert "harness.diverged_step" not in ok.data.tags
    assert np.isfinite(ok.data.metrics["elbo"])

    # The same experiment with a cell that raises: the finished cells are skipped, the new one
    # ends as `error` with its traceback, the sweep still ends, and the exit code is 1.
    models += ', "raises_on_build"'
    path.write_text(SPEC.format(models=models))
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert "skipped 3 cells" in err
    assert "1 cells failed:" in err and "raises_on_build/mean_field/0" in err
    assert "RuntimeError: this model cannot be built" in err
    runs = _cell_runs(tracking_uri, "reliability")
    assert len(runs) == 4
    failed = next(r for r in runs if r.data.tags["harness.model"] == "raises_on_build")
    assert failed.info.status == "FAILED"
    assert failed.data.tags["harness.status"] == "error"
    assert failed.data.tags["harness.reason"] == "RuntimeError: this model cannot be built"
    trace = client.download_artifacts(failed.info.run_id, "traceback.txt", str(tmp_path))
    text = open(trace).read()
    assert "Traceback (most recent call last)" in text and "raise RuntimeError" in text
    parents = [
        r
        for r in client.search_runs([failed.info.experiment_id])
        if r.data.tags.get("harness.kind") == "sweep"
    ]
    assert sorted(p.info.status for p in parents) == ["FAILED", "FINISHED"]


# --- journal -------------------------------------------------------------------------------------


def _result(seed: int, status: str = "diverged") -> FitResult:
    cell = Cell(
        "journaled",
        "correlated_gaussian",
        (("dimension", 2),),
        "mean_field",
        (("initial_scale", 0.1),),
        FitSettings(num_steps=4),
        seed,
    )
    return FitResult(
        cell=cell,
        status=status,
        reason="loss became nan at step 2",
        losses=np.array([1.5, 0.25, np.nan, np.inf]),
        loss_seconds=np.array([0.1, 0.2, 0.3, 0.4]),
        compile_seconds=float("nan"),
        fit_seconds=0.4,
        num_steps_run=4,
        metrics={"fit_seconds": 0.4},
        draws=np.random.default_rng(seed).normal(size=(50, 2)).astype(np.float32),
        fit_mode="xla",
        device="CPU",
        started_at=1.7e9,
        traceback="",
        diverged_step=2,
    )


def _assert_same(a: FitResult, b: FitResult) -> None:
    for field in dataclasses.fields(FitResult):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y, equal_nan=True), field.name
        elif isinstance(x, float) and np.isnan(x):
            assert np.isnan(y), field.name
        else:
            assert x == y, field.name


def test_journal_round_trip_is_exact_and_ignores_a_torn_last_line(tmp_path):
    path = journal.journal_path(tmp_path, "journaled")
    first = journal.append_result(path, _result(0), parent_run_id="p1")
    journal.append_sweep_end(path, parent_run_id="p1", status="FINISHED")
    with open(path, "a") as f:  # a crash in the middle of writing a line
        f.write(json.dumps({"version": journal.FORMAT_VERSION, "entry_id": "x"})[:20])
    entries = journal.read(path)
    assert [e.kind for e in entries] == ["cell", "sweep_end"]
    assert entries[0].entry_id == first.entry_id and entries[0].parent_run_id == "p1"
    _assert_same(entries[0].result, _result(0))
    assert entries[0].result.cell.cell_id == _result(0).cell.cell_id
    for line in path.read_text().splitlines()[:2]:
        json.loads(line)  # strict JSON: NaN and Inf are encoded, not written bare
    assert journal.remove(path, [first.entry_id]) == 1
    assert [e.kind for e in journal.read(path)] == ["sweep_end"]
    assert journal.remove(path, [entries[1].entry_id]) == 0
    assert not path.exists()


def test_sync_replays_idempotently(tmp_path, tracking_uri, capsys):
    client = MlflowClient(tracking_uri)
    experiment_id = client.create_experiment("journaled")
    parent = client.create_run(experiment_id, tags={"harness.kind": "sweep"}).info.run_id
    path = journal.journal_path(tmp_path / "results", "journaled")
    for seed in range(2):
        journal.append_result(path, _result(seed), parent_run_id=parent)
    journal.append_result(path, _result(2, status="error"), parent_run_id="no-such-run")
    journal.append_sweep_end(path, parent_run_id=parent, status="FINISHED")
    saved = path.read_text()
    args = [
        "sync",
        "--experiment",
        "journaled",
        "--tracking-uri",
        tracking_uri,
        "--results-dir",
        str(tmp_path / "results"),
    ]
    assert cli.main(args) == 0
    assert "replayed 3, already in MLflow 0, left 0" in capsys.readouterr().out
    assert not path.exists()
    # A replay interrupted after writing to MLflow but before removing its lines: again.
    path.write_text(saved)
    assert cli.main(args) == 0
    assert "replayed 0, already in MLflow 3, left 0" in capsys.readouterr().out
    assert cli.main(args) == 0
    runs = _cell_runs(tracking_uri, "journaled")
    assert sorted(r.data.tags["harness.seed"] for r in runs) == ["0", "1", "2"]
    by_seed = {r.data.tags["harness.seed"]: r for r in runs}
    assert by_seed["0"].info.status == "FINISHED"
    assert by_seed["0"].data.tags["mlflow.parentRunId"] == parent
    assert by_seed["0"].data.tags["harness.diverged_step"] == "2"
    assert by_seed["2"].info.status == "FAILED"
    assert "mlflow.parentRunId" not in by_seed["2"].data.tags  # its parent never existed
    history = client.get_metric_history(by_seed["0"].info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 1.5), (1, 0.25)]
    assert client.get_run(parent).info.status == "FINISHED"


def test_an_entry_the_store_rejects_stays_in_the_journal_and_does_not_block_others(
    tmp_path, tracking_uri, capsys
):
    path = journal.journal_path(tmp_path / "results", "journaled")
    rejected = _result(1)
    # MLflow refuses param keys over 250 characters: the store rejects this entry (HTTP 400
    # semantics), which no retry can fix.
    cell = dataclasses.replace(rejected.cell, model_args=(("dimension", 2), ("k" * 300, 1)))
    kept = journal.append_result(path, dataclasses.replace(rejected, cell=cell), parent_run_id="")
    journal.append_result(path, _result(0), parent_run_id="")
    args = [
        "sync",
        "--experiment",
        "journaled",
        "--tracking-uri",
        tracking_uri,
        "--results-dir",
        str(tmp_path / "results"),
    ]
    assert cli.main(args) == 1
    captured = capsys.readouterr()
    assert "replayed 1, already in MLflow 0, left 1" in captured.out
    assert "not replayed: correlated_gaussian/mean_field/1: MlflowException" in captured.err
    assert [e.entry_id for e in journal.read(path)] == [kept.entry_id]
    runs = _cell_runs(tracking_uri, "journaled")
    finished = [r for r in runs if r.info.status == "FINISHED"]
    assert [r.data.tags["harness.seed"] for r in finished] == ["0"]
    assert {r.info.status for r in runs} == {"FINISHED", "FAILED"}, "no run is left RUNNING"


def test_sync_rejects_a_path_as_experiment_name(tmp_path, capsys):
    for name in ("../x", "a/b", "/etc", ".."):
        assert (
            cli.main(["sync", "--experiment", name, "--results-dir", str(tmp_path / "results")])
            == 2
        )
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--experiment" in err and "no path" in err
    assert not (tmp_path / "results").exists()


def test_with_retries_backs_off_then_gives_up(monkeypatch):
    monkeypatch.setattr(
        tracking, "RETRY", tracking.RetryPolicy(attempts=3, first_delay=0.05, max_seconds=5.0)
    )
    calls = []

    def flaky(fail_times):
        calls.append(time.monotonic())
        if len(calls) <= fail_times:
            raise mlflow.exceptions.MlflowException(
                "API request to http://127.0.0.1:1/api failed with exception refused"
            )
        return "done"

    assert tracking.with_retries(flaky, 2) == "done"
    gaps = np.diff(calls)
    assert len(calls) == 3 and gaps[0] >= 0.05 and gaps[1] >= 0.1  # doubling backoff
    calls.clear()
    with pytest.raises(tracking.TrackingUnavailable, match="failed 3 times"):
        tracking.with_retries(flaky, 5)
    assert len(calls) == 3
    calls.clear()

    def rejected():
        calls.append(1)
        raise mlflow.exceptions.MlflowException("bad value", error_code=INVALID_PARAMETER_VALUE)

    with pytest.raises(mlflow.exceptions.MlflowException, match="bad value"):
        tracking.with_retries(rejected)
    assert len(calls) == 1, "a rejected request is not retried"


# --- a real tracking server that goes down mid-sweep ---------------------------------------------


class TrackingServer:
    """``mlflow server`` on 127.0.0.1 (sqlite backend) in its own process group."""

    START_SECONDS = 180  # bound on start-up (imports are slow on a loaded machine)

    def __init__(self, folder):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.folder = folder
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
                "--backend-store-uri",
                f"sqlite:///{self.folder / 'server.db'}",
                "--artifacts-destination",
                str(self.folder / "artifacts"),
            ],
            cwd=self.folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # No background job runner: one process less to start on a small machine.
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            start_new_session=True,
        )
        deadline = time.monotonic() + self.START_SECONDS
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "mlflow server exited during start-up"
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"mlflow server not up after {self.START_SECONDS} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


@pytest.fixture
def server(tmp_path):
    server = TrackingServer(tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.slow
def test_server_down_mid_sweep_results_journaled_then_synced_once(
    server, monkeypatch, write_spec, tmp_path, capsys
):
    # Fail fast: two attempts 0.2 s apart, 5 s per request (the defaults take ~10 s per call).
    monkeypatch.setattr(
        tracking,
        "RETRY",
        tracking.RetryPolicy(attempts=2, first_delay=0.2, max_seconds=3.0, request_timeout=5),
    )
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def stops_server(dimension: int = 2) -> Model:
        """correlated_gaussian, but building it stops the tracking server (the 2nd cell)."""
        server.stop()
        return MODELS["correlated_gaussian"](dimension=dimension)

    monkeypatch.setitem(MODELS, "stops_server", stops_server)
    server.start()
    path = write_spec(SPEC.format(models='"correlated_gaussian", "stops_server", "banana"'))
    args = [
        "run",
        str(path),
        "--tracking-uri",
        server.uri,
        "--executor",
        "serial",
        "--results-dir",
        str(tmp_path / "results"),
    ]
    journal_file = journal.journal_path(tmp_path / "results", "reliability")

    assert cli.main(args) == 1, "results that are only in the journal exit 1"
    err = capsys.readouterr().err
    assert "2 results kept in" in err and str(journal_file) in err and "harness sync" in err
    entries = journal.read(journal_file)
    assert [e.kind for e in entries] == ["cell", "cell", "sweep_end"]
    assert [e.result.cell.model for e in entries[:2]] == ["stops_server", "banana"]
    assert all(e.result.status == "ok" and e.result.draws is not None for e in entries[:2])

    # Still down: a new sweep refuses to start (nothing fitted), the journal is kept.
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert "nothing was run" in err and "[1/" not in err
    assert len(journal.read(journal_file)) == 3

    # Back again: the next run replays the journal first, then finds every cell done.  (The
    # same replay by `harness sync` is tested above on a sqlite store.)
    server.start()
    assert cli.main(args) == 0
    err = capsys.readouterr().err
    assert "replayed 2 journaled results" in err and "skipped 3 cells" in err
    assert not journal_file.exists()
    sync = [
        "sync",
        str(path),
        "--tracking-uri",
        server.uri,
        "--results-dir",
        str(tmp_path / "results"),
    ]
    assert cli.main(sync) == 0  # nothing left: a no-op
    assert "replayed 0, already in MLflow 0, left 0" in capsys.readouterr().out

    client = MlflowClient(server.uri)
    experiment = client.get_experiment_by_name("reliability")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    cells = [r for r in runs if "harness.cell_id" in r.data.tags]
    assert sorted(r.data.tags["harness.model"] for r in cells) == [
        "banana",
        "correlated_gaussian",
        "stops_server",
    ]
    assert {r.info.status for r in runs} == {"FINISHED"}
    first_parent = entries[2].parent_run_id
    assert all(r.data.tags["mlflow.parentRunId"] == first_parent for r in cells)
    replayed = [r for r in cells if "harness.journal_entry" in r.data.tags]
    assert len(replayed) == 2
    for run in replayed:
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert "loss_trace.csv" in artifacts
        assert len(client.get_metric_history(run.info.run_id, "loss")) == 60
        assert np.isfinite(run.data.metrics["elbo"])


# --- determinism -----------------------------------------------------------------------------------

# A 5-d target and the default 4,096 evaluation draws: tensors large enough that Eigen splits
# their reductions by thread, which made serial (2 intra-op threads on 2 cores) and a pool of 2
# (1 thread each) differ in the last bits of IAF's metrics before intra-op threads were fixed.
DETERMINISM_SPEC = """
name = "determinism"
seeds = [0, 1]
models = ["correlated_gaussian"]
families = ["mean_field", "iaf"]
[fit]
num_steps = 30
stopping = "budget"
learning_rate = 0.01
sample_size = 8
num_draws_kept = 10
"""
# Wall-clock and memory measurements differ between runs by nature; everything else must not.
TIMING_COLUMNS = re.compile(r"seconds|per_second|memory|start_time")


def _sweep_table_and_losses(path, folder, executor_args):
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    assert (
        cli.main(
            [
                "run",
                str(path),
                "--tracking-uri",
                uri,
                "--results-dir",
                str(folder / "results"),
                *executor_args,
            ]
        )
        == 0
    )
    table = pd.read_csv(folder / "results" / "determinism" / "cells.csv")
    table = table.sort_values("cell_id").reset_index(drop=True)
    client = MlflowClient(uri)
    losses = {
        cell_id: [
            m.value for m in sorted(client.get_metric_history(run_id, "loss"), key=lambda m: m.step)
        ]
        for cell_id, run_id in zip(table["cell_id"], table["run_id"], strict=True)
    }
    return table, losses


@pytest.mark.slow
def test_same_spec_gives_bit_identical_results_serial_and_through_the_pool(write_spec, tmp_path):
    path = write_spec(DETERMINISM_SPEC)
    serial, serial_losses = _sweep_table_and_losses(path, tmp_path / "a", ["--executor", "serial"])
    pooled, pooled_losses = _sweep_table_and_losses(path, tmp_path / "b", ["--workers", "2"])
    assert len(serial) == 4 and list(serial["cell_id"]) == list(pooled["cell_id"])
    assert set(serial["status"]) == {"ok"}
    numeric = [
        c
        for c in serial.select_dtypes("number").columns
        if not TIMING_COLUMNS.search(c) and c in pooled
    ]
    assert {"elbo", "khat", "mean_z_error_rms", "seed"} <= set(numeric)
    for column in numeric:
        np.testing.assert_array_equal(
            serial[column].to_numpy(), pooled[column].to_numpy(), err_msg=column
        )
    assert serial_losses == pooled_losses
    assert all(len(v) == 30 for v in serial_losses.values())


# --- names that look like paths -------------------------------------------------------------------


def test_file_stem_never_leaves_its_folder():
    for name in ("../x", "a/b", "/etc/passwd", "..", "path/to/file.py:attr", "C:\\x", ".hidden"):
        stem = report.file_stem(name)
        assert "/" not in stem and "\\" not in stem and not stem.startswith(".") and stem
        assert (Path("root") / stem).resolve().parent == Path("root").resolve()
    assert report.file_stem("banana") == "banana"
    assert report.file_stem("a/b") != report.file_stem("a_b")


@pytest.mark.slow
def test_a_user_model_path_as_model_name_writes_only_inside_results(monkeypatch, tmp_path):
    # A user model's name is a path: absolute, with '..' and separators.
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    (zoo / "m.py").write_text(
        "from harness.models import MODELS\n\n\n"
        "def target():\n"
        "    return MODELS['correlated_gaussian'](dimension=2)\n"
    )
    name = f"{zoo}/../zoo/m.py:target"
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(models=json.dumps(name)).replace("60", "10"))
    work = tmp_path / "work"
    (work / "store").mkdir(parents=True)
    monkeypatch.chdir(work)
    uri = f"sqlite:///{work / 'store' / 'mlflow.db'}"
    assert (
        cli.main(
            [
                "run",
                str(spec),
                "--tracking-uri",
                uri,
                "--executor",
                "serial",
                "--results-dir",
                "results",
            ]
        )
        == 0
    )
    written = {p.relative_to(work) for p in work.rglob("*") if p.is_file()}
    assert {p.parts[0] for p in written} == {"results", "store"}
    assert {p.parts[1] for p in written if p.parts[0] == "results"} == {"reliability"}
    assert sorted(p.name for p in zoo.iterdir() if p.is_file()) == ["m.py"]
    figures = {p.name for p in (work / "results" / "reliability" / "figures").iterdir()}
    assert f"marginals_{report.file_stem(name)}.png" in figures
    run = _cell_runs(uri, "reliability")[0]
    assert run.data.tags["harness.model"] == name
    assert "/" not in run.info.run_name.split("/mean_field/")[0]
