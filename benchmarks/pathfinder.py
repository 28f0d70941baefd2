"""Pathfinder (single- and multi-path) beside full-rank ADVI, at their defaults, side by side.

On the Gaussian-like posteriors of the zoo, one run fits every model with ``pathfinder``
(``num_paths = 1``), ``pathfinder`` with ``num_paths = 4`` (Stan's default) and ``full_rank`` at
the default fit settings (mode initialisation, adaptive learning rate, convergence rule), and
writes the section "Pathfinder vs full-rank ADVI" of docs/benchmarks.md: PSIS k̂, the std ratio
(geometric mean), the largest standardized mean error, whether the cell is *accurate* (max
|z| < 0.5 and std ratio in [0.8, 1.25], as benchmarks/convergence.py), gradient evaluations and
seconds (fit seconds, compilation and tracing excluded).

    nice python -m benchmarks.pathfinder [--seeds 1] [--workers 1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.common import write_section

MODELS = (
    "correlated_gaussian",
    "unscaled_regression_wine",
    "correlated_regression_wine",
    "shrinkage_regression_breast_cancer",
    "logistic_regression_breast_cancer",
    "eight_schools_noncentered",
    "linear_regression_unknown_noise",
)
METHODS = {
    "Pathfinder": ("pathfinder", ()),
    "Pathfinder ×4": ("pathfinder", (("num_paths", 4),)),
    "Full-rank ADVI": ("full_rank", ()),
}


def _accurate(m: dict) -> bool:
    return m.get("mean_z_error_max", np.inf) < 0.5 and 0.8 <= m.get("std_ratio_geomean", 0) <= 1.25


def main(argv=None) -> None:
    import pandas as pd

    from harness.executors import run_local
    from harness.spec import Cell, FitSettings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks/pathfinder.csv"))
    args = parser.parse_args(argv)
    settings = FitSettings()
    labels = {(family, hps): label for label, (family, hps) in METHODS.items()}
    cells = [
        Cell("benchmark_pathfinder", model, (), family, hps, settings, seed)
        for model in args.models.split(",")
        for family, hps in METHODS.values()
        for seed in range(args.seeds)
    ]
    rows = []
    t0 = time.perf_counter()
    for result in run_local(cells, args.workers):
        m = result.metrics
        rows.append(
            {
                "model": result.cell.model,
                "method": labels[(result.cell.family, result.cell.hyperparameters)],
                "seed": result.cell.seed,
                "status": result.status,
                "converged": bool(result.converged),
                "accurate": result.status == "ok" and _accurate(m),
                "khat": m.get("khat", np.nan),
                "std_ratio": m.get("std_ratio_geomean", np.nan),
                "max_abs_z": m.get("mean_z_error_max", np.nan),
                "gradient_evaluations": m.get("num_gradient_evaluations", np.nan),
                "seconds": result.fit_seconds,
                "reason": (result.convergence_reason or result.reason)[:120],
            }
        )
        print({k: v for k, v in rows[-1].items() if k != "reason"}, flush=True)
    wall = time.perf_counter() - t0
    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)

    lines = [
        f"Each method at its defaults (`FitSettings()`; Pathfinder J = 6, K = 25, 1,000 L-BFGS "
        f"iterations at most), {args.seeds} seed(s), {args.workers} worker(s), {wall:.0f} s in "
        "all. Accurate: max |z| < 0.5 and std ratio in [0.8, 1.25]. Multi-path Pathfinder "
        "returns resampled draws: its k̂ is that of the pooled importance weights. Seconds: "
        "`fit_seconds` (tracing excluded; full-rank includes its mode search).",
        "",
        "| model | method | k̂ | std ratio | max abs z | accurate | converged "
        "| gradient evals | seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (model, method), part in table.groupby(["model", "method"], sort=False):
        lines.append(
            f"| {model} | {method} | {part.khat.median():.2f} | {part.std_ratio.median():.3f} "
            f"| {part.max_abs_z.median():.3f} | {int(part.accurate.sum())}/{len(part)} "
            f"| {int(part.converged.sum())}/{len(part)} "
            f"| {part.gradient_evaluations.median():,.0f} | {part.seconds.median():.2f} |"
        )
    lines += ["", "Totals per method (all models and seeds):", ""]
    lines += ["| method | accurate | converged | median gradient evals | median seconds |"]
    lines += ["|---|---|---|---|---|"]
    for method, part in table.groupby("method", sort=False):
        lines.append(
            f"| {method} | {int(part.accurate.sum())}/{len(part)} "
            f"| {int(part.converged.sum())}/{len(part)} "
            f"| {part.gradient_evaluations.median():,.0f} | {part.seconds.median():.2f} |"
        )
    write_section("Pathfinder vs full-rank ADVI", "\n".join(lines))


if __name__ == "__main__":
    main()
