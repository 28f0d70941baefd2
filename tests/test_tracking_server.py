"""Against a real ``mlflow server``: a sweep logs through HTTP, MlflowClient and ``harness
report`` read it back (artifacts proxied by the server); ``harness ui`` serves /health.

Servers listen on 127.0.0.1 on a free port, are waited for with a bounded poll of /health and
are always stopped (their whole process group) in teardown.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from harness import cli, report

BIN = Path(sys.executable).parent
START_SECONDS = 180  # an MLflow server starts in ~5 s; a loaded 2-core machine needs more
SPEC = """\
name = "served"
seeds = [0, 1]
models = ["correlated_gaussian", "conjugate_normal_mean"]  # the second conditions on data
families = ["mean_field"]
[fit]
num_steps = 10
elbo_sample_size = 1000
jit_compile = false  # graph mode: no XLA compilation, the cheapest fit per cell
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read().decode()


@contextlib.contextmanager
def _serving(command: list[str], port: int, log: Path, cwd: Path, env=None):
    """Start ``command`` in its own process group; yield its base URL once /health answers."""
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env, start_new_session=True
        )
        try:
            deadline = time.monotonic() + START_SECONDS
            while True:
                if process.poll() is not None:
                    raise AssertionError(
                        f"server exited with {process.returncode}: {log.read_text()[-2000:]}"
                    )
                try:
                    if _get(url + "/health") == (200, "OK"):
                        break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"no /health after {START_SECONDS} s: {log.read_text()[-2000:]}"
                    )
                time.sleep(0.5)
            yield url
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=15)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server")
    port = _free_port()
    command = [
        str(BIN / "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{tmp / 'server.db'}",
        "--artifacts-destination",
        str(tmp / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    with _serving(command, port, tmp / "server.log", tmp) as url:
        yield url, tmp


@pytest.mark.slow
def test_sweep_and_report_round_trip_through_a_tracking_server(server):
    url, tmp = server
    spec = tmp / "served.toml"
    spec.write_text(SPEC)
    assert (
        cli.main(
            [
                "run",
                str(spec),
                "--tracking-uri",
                url,
                "--executor",
                "serial",
                "--results-dir",
                str(tmp / "results"),
            ]
        )
        == 0
    )

    client = MlflowClient(url)
    experiment = client.get_experiment_by_name("served")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    cells = [r for r in runs if "harness.cell_id" in r.data.tags]
    assert len(cells) == 4 and all(r.info.status == "FINISHED" for r in cells)
    # The dashboard opens the model-training view, not the GenAI one.
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert "wasserstein_1" in experiment.tags["mlflow.note.content"]
    parent = next(r for r in runs if r.data.tags.get("harness.kind") == "sweep")
    # 10 steps: the convergence rule cannot judge them (tag harness.converged = false).
    unconverged = sum(r.data.tags.get("harness.converged") == "false" for r in cells)
    _assert_parent_holds_the_report(client, parent, tmp / "results" / "served", unconverged)
    for run in cells:
        tags = run.data.tags
        assert "harness.loss_curve" not in tags  # curves live in loss_curves.json / history
        # One-line verdict: status, k̂ band and the quality metric.
        note = tags["mlflow.note.content"]
        assert note.startswith("**ok**") and "k̂" in note and "\n" not in note
        assert tags["harness.khat_band"] in note
        inputs = client.get_run(run.info.run_id).inputs.dataset_inputs
        if tags["harness.model"] == "conjugate_normal_mean":
            assert [d.dataset.name for d in inputs] == ["conjugate_normal_mean"]
            assert len(inputs[0].dataset.digest) >= 8
            assert inputs[0].tags[0].value == "training"
        else:
            assert inputs == []
    with tempfile.TemporaryDirectory() as folder:
        path = client.download_artifacts(parent.info.run_id, "loss_curves.json", folder)
        curves = json.loads(Path(path).read_text())
    assert set(curves) == {r.info.run_id for r in cells}
    for run in cells:
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"cell.png", "draws.npz", "loss_trace.csv"} <= artifacts
        history = [m for m in client.get_metric_history(run.info.run_id, "loss")]
        # Every step run (at most num_steps = 10; a fit may stop early) is in the history.
        steps = int(run.data.metrics["num_steps_run"])
        assert 1 <= steps <= 10 and [m.step for m in history] == list(range(steps))
        assert np.allclose(curves[run.info.run_id]["loss"], [m.value for m in history], rtol=1e-6)
    # Artifacts went through the server into its own artifact folder, not a local one.
    assert list((tmp / "artifacts").rglob("cell.png"))

    out = tmp / "report"
    assert (
        cli.main(["report", "--experiment", "served", "--tracking-uri", url, "--out", str(out)])
        == 0
    )
    table = pd.read_csv(out / "cells.csv")
    assert sorted(table["run_id"]) == sorted(r.info.run_id for r in cells)
    # `harness report` replaced the parent run's report with its own.
    _assert_parent_holds_the_report(client, parent, out, unconverged)
    for run in cells:
        row = table[table["run_id"] == run.info.run_id].iloc[0]
        assert row["elbo"] == pytest.approx(run.data.metrics["elbo"], rel=1e-12)
    q, reference = report.overlay_draws(table, "correlated_gaussian", url)
    assert q["mean_field"].shape[1] == 5 and reference["draws"].shape[1] == 5
    for name in (
        "quality_vs_speed",
        "elbo_vs_time",
        "khat",
        "std_ratio",
        "marginals_conjugate_normal_mean",  # the first model (by name)
    ):
        assert (out / "figures" / f"{name}.png").stat().st_size > 5000, name


def _assert_parent_holds_the_report(client, parent, out: Path, unconverged: int) -> None:
    """The parent run's report/ artifacts are the files of the report in ``out`` (same
    bytes), with the summary as an MLflow table and the summary in its description."""
    run_id = parent.info.run_id
    local = sorted(
        p.relative_to(out).as_posix()
        for p in out.rglob("*")
        if p.is_file() and p.suffix in (".csv", ".md", ".tex", ".png", ".pdf")
    )
    assert {"cells.csv", "summary.csv", "tables/summary.md", "tables/summary.tex"} <= set(local)
    assert {"figures/quality_vs_gradients.pdf", "figures/quality_vs_speed.png"} <= set(local)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(client.download_artifacts(run_id, "report", tmp))
        logged = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        assert set(local) <= set(logged) and "summary_table.json" in logged
        for name in ("cells.csv", "tables/summary.md", "figures/khat.png"):
            assert (folder / name).read_bytes() == (out / name).read_bytes(), name
        table = json.loads((folder / "summary_table.json").read_text())
        assert len(table["data"]) == 2 and "cells_ok" in table["columns"]
    note = client.get_run(run_id).data.tags["mlflow.note.content"]
    assert note.startswith(f"**4 cells**: 4 ok, 0 diverged, {unconverged} unconverged, 0 error")
    assert "Best per model" in note and "| Model | Family | Seeds |" in note


@pytest.mark.slow
def test_harness_ui_serves_the_local_default_store(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    command = [str(BIN / "harness"), "ui", "--port", str(port)]
    with _serving(command, port, tmp_path / "ui.log", tmp_path, env) as url:
        # The first API call of a fresh store can take seconds on a loaded machine.
        status, body = _get(
            url + "/api/2.0/mlflow/experiments/get-by-name?experiment_name=Default", timeout=60
        )
        assert status == 200 and '"name": "Default"' in body.replace('":"', '": "')
    # The printed link opens MLflow's model-training view (the UI starts in GenAI).
    assert f"{url}/#/experiments?workflowType=machine_learning" in (tmp_path / "ui.log").read_text()
    # The default store is results/mlflow.db under the folder it was started in.
    assert (tmp_path / "results" / "mlflow.db").is_file()
    assert (tmp_path / "results" / "mlartifacts").is_dir()
