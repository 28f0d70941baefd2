"""Speed of ``harness report`` on a large experiment, and of the per-cell figure.

    python -m benchmarks.report_speed [--runs 500] [--repeats 3] [--keep DIR]

Creates ``--runs`` cell runs in a fresh sqlite MLflow store through the harness's own logging
path (:func:`harness.tracking.start_sweep` / :func:`~harness.tracking.log_cell`, so every run
has its params, metrics, a 1,000-point loss history, ``loss_trace.csv``, ``draws.npz`` and
``cell.png``), from real :class:`harness.fit.FitResult` records whose numbers are synthetic
(no TensorFlow fitting: the report's speed does not depend on what the numbers are).  Then it
times the ``harness report`` command (a fresh process, imports included) ``--repeats`` times and
prints the times, and prints the mean cost of the per-cell figure measured while logging.

Target: the report of 500 runs in under 10 s; the per-cell figure under 0.3 s.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
MODELS = [
    "correlated_gaussian",
    "banana",
    "eight_schools",
    "conjugate_normal_mean",
    "linear_regression",
]
FAMILIES = ["mean_field", "full_rank", "iaf", "low_rank"]
NUM_STEPS = 1000
NUM_DRAWS = 1000
FIGURE_PROBES = 50  # cells whose figure is also drawn alone, to time it without MLflow


def synthetic_result(cell, model, rng: np.random.Generator):
    """A FitResult with plausible numbers: a decaying noisy loss, draws around the reference
    with a family-dependent width, and metrics of the right kind and scale."""
    from harness.records import FitResult

    ref = model.reference
    width = {"mean_field": 0.6, "full_rank": 0.9, "iaf": 0.95}.get(cell.family, 0.8)
    draws = (
        ref.mean
        + width * ref.standard_deviation * rng.standard_normal((NUM_DRAWS, model.dimension))
    ).astype(np.float32)
    fit_seconds = float(rng.uniform(1, 30))
    loss_seconds = np.linspace(fit_seconds / NUM_STEPS, fit_seconds, NUM_STEPS)
    final = float(rng.normal(10, 3))
    losses = final + 50 * np.exp(-np.arange(NUM_STEPS) / 100) + rng.normal(0, 1, NUM_STEPS)
    metrics = {
        "elbo": -final,
        "elbo_standard_error": 0.05,
        "khat": float(rng.uniform(0.2, 1.1)),
        "mean_z_error_rms": float(abs(rng.normal(0, 0.2))),
        "mean_z_error_max": float(abs(rng.normal(0, 0.4))),
        "std_ratio_geomean": width * float(rng.uniform(0.95, 1.05)),
        "coverage_90": float(rng.uniform(0.6, 0.9)),
        "fit_seconds": fit_seconds,
        "compile_seconds": float(rng.uniform(1, 3)),
        "steps_per_second": NUM_STEPS / fit_seconds,
    }
    if ref.draws is not None:
        metrics["wasserstein_1"] = float(abs(rng.normal(0.2, 0.1)))
    return FitResult(
        cell=cell,
        status="ok",
        losses=losses,
        loss_seconds=loss_seconds,
        compile_seconds=metrics["compile_seconds"],
        fit_seconds=fit_seconds,
        num_steps_run=NUM_STEPS,
        metrics=metrics,
        draws=draws,
        fit_mode="xla",
        device="CPU",
        started_at=time.time(),
    )


def populate(store: Path, runs: int) -> tuple[str, str, list[float]]:
    """Log ``runs`` synthetic cells; returns (tracking URI, experiment, per-cell figure s)."""
    from harness import run_content, tracking
    from harness.figures import cell as cell_figures
    from harness.models import build_model
    from harness.spec import load

    seeds = math.ceil(runs / (len(MODELS) * len(FAMILIES)))
    spec_path = store / "report_speed.toml"
    spec_path.write_text(
        'name = "report_speed"\n'
        f"seeds = {list(range(seeds))}\n"
        f"models = {MODELS!r}\nfamilies = {FAMILIES!r}\n"
        f"[fit]\nnum_steps = {NUM_STEPS}\n".replace("'", '"')
    )
    spec = load(spec_path)
    cells = spec.cells()[:runs]
    uri = f"sqlite:///{store / 'mlflow.db'}"
    sweep = tracking.start_sweep(
        spec, uri, num_cells=len(cells), num_skipped=0, executor="synthetic", workers=1
    )
    rng = np.random.default_rng(0)
    models = {name: build_model(name) for name in MODELS}
    figure_seconds = []
    for i, cell in enumerate(cells):
        result = synthetic_result(cell, models[cell.model], rng)
        ref = models[cell.model].reference
        if i >= FIGURE_PROBES:
            tracking.log_cell(sweep, run_content.prepare(result))
            continue
        t0 = time.perf_counter()
        cell_figures.cell_figure(
            store / "figure_probe.png",
            draws=result.draws,
            losses=result.losses,
            loss_seconds=result.loss_seconds,
            title=cell.run_name,
            reference={
                "mean": ref.mean,
                "standard_deviation": ref.standard_deviation,
                "draws": ref.draws,
            },
        )
        figure_seconds.append(time.perf_counter() - t0)
        tracking.log_cell(sweep, run_content.prepare(result))
    tracking.end_sweep(sweep, failed=False)
    return uri, spec.name, figure_seconds


def time_report(uri: str, experiment: str, out: Path) -> float:
    command = [
        str(Path(sys.executable).with_name("harness")),
        "report",
        "--experiment",
        experiment,
        "--tracking-uri",
        uri,
        "--out",
        str(out),
    ]
    t0 = time.perf_counter()
    before = os.times()
    subprocess.run(command, check=True, capture_output=True, cwd=REPO)
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return time.perf_counter() - t0, cpu


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="keep the store and report in this folder")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="time the report on the store already in --keep (no logging)",
    )
    args = parser.parse_args(argv)
    if args.report_only and not (args.keep and (args.keep / "mlflow.db").is_file()):
        parser.error("--report-only needs --keep DIR with a store made by an earlier run")
    with tempfile.TemporaryDirectory() as tmp:
        store = args.keep or Path(tmp)
        store.mkdir(parents=True, exist_ok=True)
        if args.report_only:
            uri, experiment = f"sqlite:///{store / 'mlflow.db'}", "report_speed"
        else:
            t0 = time.perf_counter()
            uri, experiment, figure_seconds = populate(store, args.runs)
            print(
                f"logged {args.runs} runs in {time.perf_counter() - t0:.1f} s; per-cell "
                f"figure: mean {statistics.mean(figure_seconds):.3f} s, "
                f"max {max(figure_seconds):.3f} s (target < 0.3 s)"
            )
        load = os.getloadavg()[0]
        timed = [time_report(uri, experiment, store / "report") for _ in range(args.repeats)]
        wall, cpu = [t for t, _ in timed], [c for _, c in timed]
        # On a shared machine the wall time depends on the load; the CPU time much less.
        print(
            f"harness report on {args.runs} runs: wall median {statistics.median(wall):.2f} s "
            f"(runs: {', '.join(f'{t:.2f}' for t in wall)}; target < 10 s), CPU median "
            f"{statistics.median(cpu):.2f} s; load average {load:.1f} before, "
            f"{os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
