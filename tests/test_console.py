"""The console of ``harness run``: only the harness's own lines, on a pipe (not a terminal).

One small real run in a fresh process with a local pool worker (the driver and a spawned
worker both import TensorFlow and MLflow, create a store and fit), its stdout and stderr
captured as CI would.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

SPEC = """\
name = "console"
seeds = [0]
models = ["correlated_gaussian"]
families = ["mean_field", "full_rank"]
[fit]
num_steps = 20
elbo_sample_size = 1000
jit_compile = false
"""
# What library logs look like: TensorFlow/absl/XLA/CUDA (C++ and Python), MLflow's store
# set-up, Python warnings (arviz, retracing, deprecations).
NOISE = re.compile(
    r"WARNING|INFO|Warning|^[IWE]\d{4} |cuda|cuInit|absl|tensorflow|retracing|oneDNN"
    r"|alembic|mlflow\.store",
    re.IGNORECASE,
)
# The harness's own stderr lines.
OWN_STDERR = re.compile(
    r"^(experiment console: 2 cells|\[[12]/2\] correlated_gaussian/.*"
    r"|converged: \d of 2 ok cells; .*|  NOT converged correlated_gaussian/.*)$"
)


@pytest.mark.slow
def test_a_normal_run_prints_only_the_harness_lines(tmp_path):
    (tmp_path / "console.toml").write_text(SPEC)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "MLFLOW_"))}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "run",
            "console.toml",
            "--workers",
            "1",
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
        ],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    err = [line for line in done.stderr.splitlines() if line.strip()]
    assert all(OWN_STDERR.match(line) for line in err), done.stderr
    # One line per cell (not a terminal: no progress bar), each with its quality metric.
    cells = [line for line in err if line.startswith("[")]
    assert len(cells) == 2 and all(" ok " in c and "wasserstein_1 " in c for c in cells)
    out = done.stdout.splitlines()
    assert not [line for line in out if NOISE.search(line)], done.stdout
    assert any(line.startswith("MLflow parent run: ") for line in out)
    assert any(line.startswith("figure: ") for line in out)


def _progress(done: int, total: int, status: str, reason: str = ""):
    from types import SimpleNamespace

    cell = SimpleNamespace(run_name=f"model/family/{done}", cell_id=f"id{done}")
    result = SimpleNamespace(
        cell=cell,
        status=status,
        reason=reason,
        metrics={"wasserstein_1": 0.25, "fit_seconds": 1.5} if status == "ok" else {},
        fit_mode="graph",
    )
    return SimpleNamespace(done=done, total=total, eta_seconds=10.0 * (total - done), result=result)


def test_live_progress_bar_counts_cells_and_failures(capsys):
    """The terminal bar (rich): cells done of all, failures so far, and a line per failed cell."""
    from harness import cli

    with cli._LiveProgress() as bar:
        bar(_progress(1, 3, "ok"))
        bar(_progress(2, 3, "diverged", "loss not finite at step 12"))
        bar(_progress(3, 3, "error", "ValueError: bad\ntraceback"))
    err = capsys.readouterr().err
    assert "3/3" in err and "1 diverged, 1 error" in err
    assert "model/family/2" in err and "loss not finite at step 12" in err
    assert "ValueError: bad" in err and "traceback" not in err
    assert "model/family/1" not in err  # ok cells only move the bar


def test_line_progress_shows_each_cells_quality_metric(capsys):
    from harness import cli

    with cli._LineProgress() as lines:
        lines(_progress(1, 2, "ok"))
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "[1/2] model/family/1                       ok       wasserstein_1 0.25  fit 1.50s  graph"
        "  (ETA 0:10)"
    ]
    # A cell that logged its time to result (compilation included) shows that instead.
    progress = _progress(2, 2, "ok")
    progress.result.metrics["time_to_result_seconds"] = 4.5
    with cli._LineProgress() as lines:
        lines(progress)
    assert "wasserstein_1 0.25  4.50s to result  graph" in capsys.readouterr().err
