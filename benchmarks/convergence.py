"""The zoo at the default fit settings against the former fixed 1,000 steps.

For each (model, family, seed) cell, two fits: the defaults (mode initialisation, learning-rate
pilots, adaptive schedule, run until the convergence rule holds within a 50,000-step budget)
and the former defaults (uniform initialisation, Adam 0.01, exactly 1,000 steps).  Reports per
setting: the fraction of cells *accurate* (max standardized mean error < 0.5 and std ratio
in [0.8, 1.25] against the model's reference), the fraction *converged*, how many hit the
budget, total wall time; and for the defaults, the converged cells whose ELBO is more than
1 nat below the best converged ELBO of their family on their model (each then continued for
10× its steps to tell a distinct local optimum from an unfinished fit).

    python -m benchmarks.convergence [--models a,b] [--families a,b] [--seeds 2] [--workers 2]
        [--settings defaults,fixed_1000] [--section "Convergence at the defaults"]
    python -m benchmarks.convergence --laplace [--models a,b]

``--laplace`` instead times the ``laplace`` baseline (the shared mode finder) on each model,
in this process, and writes the section "Laplace at the defaults".

Writes the section "Convergence at the defaults" of docs/benchmarks.md and the per-cell rows to
results/benchmarks/convergence.csv.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine, write_section

DEFAULT_MODELS = (
    "unscaled_regression_wine",
    "correlated_regression_wine",
    "shrinkage_regression_breast_cancer",
    "hierarchical_regression_wine",
    "logistic_regression_breast_cancer",
    "eight_schools_noncentered",
    "eight_schools",
    "correlated_gaussian",
    "linear_regression_unknown_noise",
    "brownian_motion_unknown_scales",
)
DEFAULT_FAMILIES = ("mean_field", "full_rank", "low_rank", "iaf", "real_nvp")


def _settings():
    from harness.spec import FitSettings

    defaults = FitSettings()
    former = FitSettings(
        num_steps=1000,
        learning_rate=0.01,
        learning_rate_schedule="constant",
        initialization="uniform",
        stopping="budget",
    )
    return {"defaults": defaults, "fixed_1000": former}


def _accurate(metrics: dict) -> bool:
    return (
        metrics.get("mean_z_error_max", np.inf) < 0.5
        and 0.8 <= metrics.get("std_ratio_geomean", 0.0) <= 1.25
    )


def main(argv=None) -> None:
    import pandas as pd

    from harness.executors import run_local
    from harness.spec import Cell

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--families", default=",".join(DEFAULT_FAMILIES))
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks/convergence.csv"))
    parser.add_argument("--laplace", action="store_true", help="time the laplace baseline")
    parser.add_argument(
        "--settings", default="defaults,fixed_1000", help="which settings to run (comma list)"
    )
    parser.add_argument(
        "--section",
        default="Convergence at the defaults",
        help="the section of docs/benchmarks.md to write",
    )
    args = parser.parse_args(argv)
    models, families = args.models.split(","), args.families.split(",")
    if args.laplace:
        laplace(models)
        return
    rows = []
    timings = {}
    chosen = args.settings.split(",")
    for label, settings in _settings().items():
        if label not in chosen:
            continue
        cells = [
            Cell("benchmark_convergence", model, (), family, (), settings, seed)
            for model in models
            for family in families
            for seed in range(args.seeds)
        ]
        t0 = time.perf_counter()
        for result in run_local(cells, args.workers):
            m = result.metrics
            rows.append(
                {
                    "setting": label,
                    "model": result.cell.model,
                    "family": result.cell.family,
                    "seed": result.cell.seed,
                    "status": result.status,
                    "converged": bool(result.converged),
                    "budget_hit": "budget of" in result.convergence_reason,
                    "accurate": result.status == "ok" and _accurate(m),
                    "elbo": m.get("elbo", np.nan),
                    "mean_z_error_max": m.get("mean_z_error_max", np.nan),
                    "std_ratio_geomean": m.get("std_ratio_geomean", np.nan),
                    "num_steps_total": m.get("num_steps_total", np.nan),
                    "fit_seconds": result.fit_seconds,
                    "compile_seconds": result.compile_seconds,
                    "reason": result.convergence_reason or result.reason,
                }
            )
            print(
                f"{label:10s} {result.cell.run_name:50s} {result.status:8s} "
                f"conv={result.converged} acc={rows[-1]['accurate']} "
                f"elbo={rows[-1]['elbo']:.3f} z={rows[-1]['mean_z_error_max']:.3f} "
                f"sr={rows[-1]['std_ratio_geomean']:.3f} steps={rows[-1]['num_steps_total']}",
                flush=True,
            )
        timings[label] = time.perf_counter() - t0
    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)

    # Converged cells more than 1 nat below the best converged ELBO of their family and model.
    defaults = table[(table.setting == "defaults") & (table.status == "ok") & table.converged]
    best = defaults.groupby(["model", "family"])["elbo"].transform("max")
    laggards = defaults[defaults.elbo < best - 1.0]
    continued = []
    for _, row in laggards.iterrows():
        from harness.fit import fit

        settings = dataclasses.replace(
            _settings()["defaults"],
            num_steps=int(10 * row.num_steps_total),
            stopping="budget",
        )
        longer = fit(
            Cell("benchmark_convergence", row.model, (), row.family, (), settings, row.seed)
        )
        gain = longer.metrics.get("elbo", np.nan) - row.elbo
        continued.append((row.model, row.family, row.seed, row.elbo, best[row.name], gain))

    lines = [
        f"Machine: {machine()}; {args.workers} workers; models: {', '.join(models)}; families: "
        f"{', '.join(families)}; {args.seeds} seeds. Accurate: max |z| < 0.5 and std ratio in "
        "[0.8, 1.25] against the model's reference.",
        "",
        "| setting | cells | ok | accurate | converged | hit the budget | wall time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for label in timings:
        part = table[table.setting == label]
        ok = part[part.status == "ok"]
        lines.append(
            f"| {label} | {len(part)} | {len(ok)} | {int(ok.accurate.sum())} "
            f"({ok.accurate.mean():.0%}) | {int(ok.converged.sum())} ({ok.converged.mean():.0%}) "
            f"| {int(part.budget_hit.sum())} | {timings[label]:.0f} |"
        )
    lines += [
        "",
        "Full-rank at the defaults, per model (accurate / converged of the seeds):",
        "",
        "| model | accurate | converged | max abs z | std ratio |",
        "|---|---|---|---|---|",
    ]
    full = table[(table.setting == "defaults") & (table.family == "full_rank")]
    for model, part in full.groupby("model", sort=False):
        lines.append(
            f"| {model} | {int(part.accurate.sum())}/{len(part)} | "
            f"{int(part.converged.sum())}/{len(part)} | "
            f"{part.mean_z_error_max.max():.3f} | {part.std_ratio_geomean.min():.3f}–"
            f"{part.std_ratio_geomean.max():.3f} |"
        )
    lines += [
        "",
        f"Converged cells more than 1 nat below the best converged ELBO of their family on "
        f"their model: {len(laggards)}.",
    ]
    for model, family, seed, elbo, top, gain in continued:
        lines.append(
            f"- {model}/{family}/{seed}: ELBO {elbo:.3f} vs best {top:.3f}; continued for 10× its "
            f"steps it gained {gain:.3f} nats "
            f"({'a distinct local optimum' if gain < 1 else 'an unfinished fit'})."
        )
    write_section(args.section, "\n".join(lines))
    print("\n".join(lines))


def laplace(models) -> None:
    """Seconds of the ``laplace`` baseline per model (tracing apart), its verdict and error."""
    from harness.fit import fit
    from harness.models import build_model
    from harness.spec import Cell, FitSettings

    lines = [
        f"Machine: {machine()}; one process. fit_seconds is the search (L-BFGS from three "
        "starts, Newton polish, Hessian); compile_seconds the tracing of the log density's "
        "gradient.",
        "",
        "| model | d | converged | fit_seconds | compile_seconds | max abs z | std ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    settings = FitSettings(elbo_sample_size=1000, num_draws_kept=10)
    for model in models:
        result = fit(Cell("benchmark_laplace", model, (), "laplace", (), settings, 0))
        m = result.metrics
        lines.append(
            f"| {model} | {build_model(model).dimension} | {result.converged} | "
            f"{m.get('fit_seconds', np.nan):.2f} | {m.get('compile_seconds', np.nan):.2f} | "
            f"{m.get('mean_z_error_max', np.nan):.3f} | {m.get('std_ratio_geomean', np.nan):.3f} |"
        )
        print(lines[-1], result.convergence_reason or result.reason, flush=True)
    write_section("Laplace at the defaults", "\n".join(lines))


if __name__ == "__main__":
    main()
