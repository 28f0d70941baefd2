"""SAA for VI against Adam at the defaults, side by side on the zoo's Gaussian-like posteriors.

For each (model, family, seed) cell, two fits from the same initialisation: the default Adam fit
(learning-rate pilots, adaptive schedule, convergence rule) and ``optimizer = "saa"`` at its
defaults (:mod:`harness.engines.saa`).  Reports per cell: accurate (max standardized mean error < 0.5
and std ratio in [0.8, 1.25] against the reference, as :mod:`benchmarks.convergence`), ELBO,
converged, gradient evaluations (initialisation included), fit and compile seconds.

    python -m benchmarks.saa [--models a,b] [--families a,b] [--seeds 1] [--workers 2]

Writes the section "SAA for VI vs Adam" of docs/benchmarks.md and the per-cell rows to
results/benchmarks/saa.csv.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine, write_section
from benchmarks.convergence import _accurate

DEFAULT_MODELS = (
    "correlated_gaussian",
    "unscaled_regression_wine",
    "correlated_regression_wine",
    "shrinkage_regression_breast_cancer",
    "logistic_regression_breast_cancer",
    "eight_schools_noncentered",
    "linear_regression_unknown_noise",
)
DEFAULT_FAMILIES = ("full_rank", "mean_field")


def main(argv=None) -> None:
    import pandas as pd

    from harness.executors import run_local
    from harness.spec import Cell, FitSettings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--families", default=",".join(DEFAULT_FAMILIES))
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks/saa.csv"))
    args = parser.parse_args(argv)
    models, families = args.models.split(","), args.families.split(",")
    settings = {
        "adam": FitSettings(),
        "saa": dataclasses.replace(FitSettings(), optimizer="saa"),
    }
    # Interleaved (adam, saa) per cell, so that both see the same machine load.
    cells = [
        Cell("benchmark_saa", model, (), family, (), fit, seed)
        for model in models
        for family in families
        for seed in range(args.seeds)
        for fit in settings.values()
    ]
    rows = []
    t0 = time.perf_counter()
    for result in run_local(cells, args.workers):
        m = result.metrics
        rows.append(
            {
                "optimizer": result.cell.fit.optimizer,
                "model": result.cell.model,
                "family": result.cell.family,
                "seed": result.cell.seed,
                "status": result.status,
                "accurate": result.status == "ok" and _accurate(m),
                "converged": bool(result.converged),
                "elbo": m.get("elbo", np.nan),
                "mean_z_error_max": m.get("mean_z_error_max", np.nan),
                "std_ratio_geomean": m.get("std_ratio_geomean", np.nan),
                "num_gradient_evaluations": m.get("num_gradient_evaluations", np.nan),
                "fit_seconds": result.fit_seconds,
                "compile_seconds": result.compile_seconds,
                "saa_sample_size_final": m.get("saa_sample_size_final", np.nan),
                "reason": result.convergence_reason or result.reason,
            }
        )
        r = rows[-1]
        print(
            f"{r['optimizer']:5s} {result.cell.run_name:50s} {r['status']:8s} "
            f"conv={r['converged']} acc={r['accurate']} elbo={r['elbo']:.3f} "
            f"z={r['mean_z_error_max']:.3f} sr={r['std_ratio_geomean']:.3f} "
            f"grads={r['num_gradient_evaluations']:.0f} fit={r['fit_seconds']:.1f}s "
            f"compile={r['compile_seconds']:.1f}s | {r['reason']}",
            flush=True,
        )
    wall = time.perf_counter() - t0
    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    write_section("SAA for VI vs Adam", _section(table, models, families, args, wall))


def _section(table, models, families, args, wall: float) -> str:
    lines = [
        f"Machine: {machine()} (shared with other jobs: seconds are indicative, gradient "
        f"evaluations are not); {args.workers} workers; {args.seeds} seed(s); families: "
        f"{', '.join(families)}; both optimizers at their defaults from the same mode "
        "initialisation. Accurate: max |z| < 0.5 and std ratio in [0.8, 1.25]. Gradient "
        "evaluations and fit seconds include the initialisation's search; compile seconds "
        f"are apart. Wall time of the whole run: {wall:.0f} s.",
        "",
        "| optimizer | cells | ok | accurate | converged | median gradient evals | "
        "median fit (s) | median compile (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for optimizer, part in table.groupby("optimizer", sort=False):
        ok = part[part.status == "ok"]
        lines.append(
            f"| {optimizer} | {len(part)} | {len(ok)} | {int(ok.accurate.sum())} | "
            f"{int(ok.converged.sum())} | {part.num_gradient_evaluations.median():.3g} | "
            f"{part.fit_seconds.median():.3g} | {part.compile_seconds.median():.3g} |"
        )
    lines += [
        "",
        "Per cell (Adam / SAA):",
        "",
        "| model | family | accurate | converged | ELBO | max abs z | std ratio | "
        "gradient evals | fit (s) | SAA final N |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (model, family, seed), part in table.groupby(["model", "family", "seed"], sort=False):
        by = {row.optimizer: row for row in part.itertuples()}
        adam, saa = by.get("adam"), by.get("saa")
        if adam is None or saa is None:
            continue

        def pair(name, fmt, a=adam, s=saa):
            return f"{format(getattr(a, name), fmt)} / {format(getattr(s, name), fmt)}"

        label = model if args.seeds == 1 else f"{model} (seed {seed})"
        lines.append(
            f"| {label} | {family} | {pair('accurate', '')} | {pair('converged', '')} | "
            f"{pair('elbo', '.2f')} | {pair('mean_z_error_max', '.2f')} | "
            f"{pair('std_ratio_geomean', '.2f')} | {pair('num_gradient_evaluations', '.3g')} | "
            f"{pair('fit_seconds', '.1f')} | {saa.saa_sample_size_final:.0f} |"
        )
    unconverged = table[(table.optimizer == "saa") & ~table.converged]
    if len(unconverged):
        lines += ["", "SAA cells not converged:", ""]
        lines += [f"- {r.model}/{r.family}/{r.seed}: {r.reason}" for r in unconverged.itertuples()]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
