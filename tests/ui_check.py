"""Real-browser check of the MLflow dashboard (``make ui-check``): what a reviewer sees.

Runs the quickstart (``--set fit.num_steps=...`` keeps it short) into a fresh store, starts
``harness ui`` on it, and opens the experiment page and one cell run's page in headless
Chromium.  Screenshots go to ``results/ui_check/``.  Fails (exit 1, one line per problem)
when the experiment opens in MLflow's GenAI view, when the runs or the parent run's report
are missing, or when the cell run's page lacks its verdict and metrics.

Needs the Debian package ``chromium`` (``.ci/run`` installs it).  Usage::

    python -m tests.ui_check [--steps N] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from mlflow.tracking import MlflowClient

from tests.test_tracking_server import _free_port, _serving

REPO = Path(__file__).resolve().parents[1]
# Chromium as a test browser: no sandbox (root in CI), no GPU, no network beyond localhost, no
# first-run or background traffic, a throw-away profile.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1600,1000",
    # The dashboard is a single-page app: give its scripts time to fetch and render.
    "--virtual-time-budget=30000",
)
# Text of MLflow 3's GenAI experiment view (traces, evaluation of LLM apps), lower case.
GENAI_MARKERS = ("detect issues in your traces", "token usage", "observability")
# MLflow 3's UI keeps a per-browser switch between its GenAI and Model training views (local
# storage, GenAI when unset); this URL parameter selects the model-training view, as the links
# `harness ui` prints do.
VIEW = "?workflowType=machine_learning"


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("ui-check: chromium not found (Debian package 'chromium')")


def _ui(cwd: Path, port: int, log: Path):
    """``harness ui`` on the default store under ``cwd``, served until the block ends."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [sys.executable, "-m", "harness.cli", "ui", "--port", str(port)]
    return _serving(command, port, log, cwd, env)


def _browse(url: str, screenshot: Path) -> str:
    """The page's DOM after its scripts ran; a screenshot of it to ``screenshot``."""
    chromium = _chromium()
    texts = []
    for extra in ([f"--screenshot={screenshot}"], ["--dump-dom"]):
        with tempfile.TemporaryDirectory() as profile:
            done = subprocess.run(
                [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url],
                capture_output=True,
                text=True,
                timeout=300,
            )
        if done.returncode != 0:
            raise SystemExit(f"ui-check: chromium failed on {url}: {done.stderr[-1000:]}")
        texts.append(done.stdout)
    return texts[1]


def _text(dom: str) -> str:
    """The visible text of a dumped DOM (tags removed, so split text still matches)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", dom))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="fit.num_steps of the quickstart")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "ui_check")
    parser.add_argument(
        "--workdir",
        type=Path,
        help="folder of the store (default: a temporary one); a store already there is reused",
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        return _check(work, args)


def _check(work: Path, args) -> int:
    problems = []
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("MLFLOW_TRACKING_URI", None)
    if not (work / "results" / "mlflow.db").is_file():
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "harness.cli",
                "run",
                str(REPO / "experiments" / "quickstart.toml"),
                "--set",
                f"fit.num_steps={args.steps}",
            ],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if run.returncode != 0:
            raise SystemExit(f"ui-check: quickstart failed: {run.stderr[-2000:]}")
    with _ui(work, _free_port(), args.out / "ui.log") as url:
        client = MlflowClient(url)
        experiment_id = client.get_experiment_by_name("quickstart").experiment_id
        runs = client.search_runs([experiment_id], max_results=500)
        cells = [r for r in runs if "harness.cell_id" in r.data.tags]
        parent = next((r for r in runs if r.data.tags.get("harness.kind") == "sweep"), None)
        if not cells or parent is None:
            raise SystemExit(f"ui-check: the store has {len(cells)} cell runs, no parent run")

        page = _browse(f"{url}/#/experiments/{experiment_id}{VIEW}", args.out / "experiment.png")
        (args.out / "experiment.html").write_text(page)
        page = _text(page)
        problems += [
            f"experiment page shows GenAI view ({m!r})" for m in GENAI_MARKERS if m in page.lower()
        ]
        parent_name = parent.info.run_name
        if parent_name not in page:
            problems.append(f"experiment page does not list the parent run {parent_name!r}")
        if "Model training" not in page or f"{len(runs)} matching runs" not in page:
            problems.append(f"experiment page is not the runs table of {len(runs)} runs")

        cell = cells[0]
        cell_tags, cell_id = cell.data.tags, cell.info.run_id
        page = _browse(
            f"{url}/#/experiments/{experiment_id}/runs/{cell_id}{VIEW}", args.out / "cell_run.png"
        )
        (args.out / "cell_run.html").write_text(page)
        page = _text(page)
        for text in (cell.info.run_name, "khat", "elbo"):
            if text not in page:
                problems.append(f"cell run page lacks {text!r}")
        if "ok" not in page or cell_tags.get("harness.khat_band", "") not in page:
            problems.append("cell run page lacks its verdict (description)")

        parent_id = parent.info.run_id
        page = _browse(
            f"{url}/#/experiments/{experiment_id}/runs/{parent_id}{VIEW}",
            args.out / "parent_run.png",
        )
        (args.out / "parent_run.html").write_text(page)
        page = _text(page)
        if "Best per model" not in page:
            problems.append("parent run page lacks the summary description")
    for problem in problems:
        print(f"ui-check: {problem}", file=sys.stderr)
    print(f"ui-check: screenshots in {args.out}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
