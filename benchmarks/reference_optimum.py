"""What each family can reach on each model, and the defaults judged against it.

A fit at the defaults can only be judged against what its own family can do: other fits made
with the same defaults share the same blind spot (a flow stopped on its plateau at the Gaussian
start looks converged next to the other seeds that stopped there too).  This benchmark has two
parts.

``reference``: the *reference optimum* of every (model, family): the best ELBO of long, tuned
fits of that family, Adam with cosine decay at each of ``--rates`` (0.003, 0.01, 0.03) for
``--steps`` steps (100,000: twice the default budget, five times the former one), two seeds,
every step run (``stopping = "budget"``).  The best ELBO over these runs (a lower bound on what
the family can reach), its Monte Carlo standard error, rate and seed are stored in
``benchmarks/reference_optima.csv`` (committed with the benchmark results); every run's row
goes to ``results/benchmarks/reference_runs.csv``.

``defaults``: the same (model, family) pairs at the default fit settings, ``--seeds`` seeds.  A
cell is a *false convergence* when it is called converged and its ELBO is more than
``max(0.25 nats, 2 standard errors)`` below its family's reference optimum (the standard
error of the difference of the two ELBO estimates).  Writes the section "Defaults against each
family's reference optimum" of docs/benchmarks.md (counts per model, the cells that hit the
budget, the wall time of the run) and the per-cell rows to
``results/benchmarks/defaults_vs_reference.csv``.

    python -m benchmarks.reference_optimum reference [--models a,b] [--families a,b]
        [--rates 0.003,0.01,0.03] [--seeds 2] [--steps 100000] [--workers 2]
    python -m benchmarks.reference_optimum defaults [--models a,b] [--families a,b]
        [--seeds 2] [--workers 2] [--section "..."]

``reference`` is resumable: each run is appended to ``results/benchmarks/reference_runs.csv``
as it finishes and a run already there is not repeated (``--again`` repeats it); the optima
are recomputed from every stored run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine, write_section

OPTIMA = Path(__file__).resolve().parent / "reference_optima.csv"
RUNS = Path("results/benchmarks/reference_runs.csv")
JUDGED = Path("results/benchmarks/defaults_vs_reference.csv")
# The zoo's non-Gaussian posteriors, where the family matters (curved, funnel-shaped,
# hierarchical, heavy-tailed shrinkage, multimodal).
DEFAULT_MODELS = (
    "banana",
    "neals_funnel",
    "eight_schools",
    "hierarchical_regression_wine",
    "shrinkage_regression_breast_cancer",
    "multimodal_2d",
)
DEFAULT_FAMILIES = ("full_rank", "low_rank", "iaf", "real_nvp", "neural_spline", "gaussian_mixture")
TOLERANCE = 0.25


def _supported(models, families):
    from harness.families import FAMILIES
    from harness.models import build_model

    pairs = []
    for model in models:
        built = build_model(model)
        pairs += [(model, f) for f in families if FAMILIES[f].supports(built)]
    return pairs


def _row(result, **extra) -> dict:
    m = result.metrics
    return {
        "model": result.cell.model,
        "family": result.cell.family,
        "seed": result.cell.seed,
        "status": result.status,
        "converged": bool(result.converged),
        "budget_hit": "budget" in (result.convergence_reason or ""),
        "elbo": m.get("elbo", np.nan),
        "elbo_standard_error": m.get("elbo_standard_error", np.nan),
        "wasserstein_1": m.get("wasserstein_1", np.nan),
        "mean_z_error_max": m.get("mean_z_error_max", np.nan),
        "std_ratio_geomean": m.get("std_ratio_geomean", np.nan),
        "num_steps_total": m.get("num_steps_total", np.nan),
        "fit_seconds": result.fit_seconds,
        "compile_seconds": result.compile_seconds,
        "reason": (result.convergence_reason or result.reason)[:300],
        **extra,
    }


def _read(path: Path):
    import pandas as pd

    return pd.read_csv(path) if path.exists() else pd.DataFrame()


def reference(args) -> None:
    """Run the tuned fits not yet in ``RUNS`` (resumable: each run's row is appended as it
    finishes), then recompute every optimum from all the stored runs."""
    import pandas as pd

    from harness.executors import run_local
    from harness.spec import Cell, FitSettings

    stored = _read(RUNS)
    done = (
        set()
        if stored.empty
        else set(zip(stored.model, stored.family, stored.learning_rate, stored.seed, strict=True))
    )
    cells = []
    for rate in args.rates:
        settings = FitSettings(
            num_steps=args.steps,
            learning_rate=rate,
            learning_rate_schedule="cosine",
            stopping="budget",
        )
        cells += [
            Cell("benchmark_reference_optimum", model, (), family, (), settings, seed)
            for model, family in _supported(args.models, args.families)
            for seed in range(args.seeds)
            if args.again or (model, family, rate, seed) not in done
        ]
    t0 = time.perf_counter()
    RUNS.parent.mkdir(parents=True, exist_ok=True)
    for result in run_local(cells, args.workers):
        row = _row(result, learning_rate=float(result.cell.fit.learning_rate), steps=args.steps)
        pd.DataFrame([row]).to_csv(RUNS, mode="a", header=not RUNS.exists(), index=False)
        print(
            f"{result.cell.run_name:55s} lr={row['learning_rate']:<6g} {row['status']:8s} "
            f"elbo={row['elbo']:.3f} ± {row['elbo_standard_error']:.3f} "
            f"w1={row['wasserstein_1']:.3f}",
            flush=True,
        )
    runs = _read(RUNS)
    ok = runs[(runs.status == "ok") & np.isfinite(runs.elbo)]
    groups = ok.groupby(["model", "family"])
    best = ok.loc[groups.elbo.idxmax()]
    columns = ["model", "family", "elbo", "elbo_standard_error", "learning_rate", "seed"]
    found = best[columns + ["wasserstein_1", "steps"]].merge(
        groups.size().rename("runs").reset_index(), on=["model", "family"]
    )
    found.sort_values(["model", "family"]).to_csv(OPTIMA, index=False, float_format="%.6g")
    print(f"{len(cells)} runs in {time.perf_counter() - t0:.0f} s; optima in {OPTIMA}")


def defaults(args) -> None:
    import pandas as pd

    from harness.executors import run_local
    from harness.spec import Cell, FitSettings

    optima = _read(OPTIMA)
    if optima.empty:
        raise SystemExit(f"no reference optima yet: run `{__name__} reference` first ({OPTIMA})")
    optima = optima.set_index(["model", "family"])
    pairs = [p for p in _supported(args.models, args.families) if p in optima.index]
    settings = FitSettings()
    cells = [
        Cell("benchmark_defaults", model, (), family, (), settings, seed)
        for model, family in pairs
        for seed in range(args.seeds)
    ]
    rows = []
    t0 = time.perf_counter()
    for result in run_local(cells, args.workers):
        best = optima.loc[(result.cell.model, result.cell.family)]
        row = _row(result, reference_elbo=best.elbo)
        error = float(np.hypot(row["elbo_standard_error"], best.elbo_standard_error))
        row["gap"] = best.elbo - row["elbo"]
        row["allowed_gap"] = max(TOLERANCE, 2 * error)
        row["false_convergence"] = bool(row["converged"] and not row["gap"] <= row["allowed_gap"])
        rows.append(row)
        print(
            f"{result.cell.run_name:55s} {row['status']:8s} conv={row['converged']!s:5s} "
            f"elbo={row['elbo']:.3f} ref={best.elbo:.3f} gap={row['gap']:.3f} "
            f"w1={row['wasserstein_1']:.3f} steps={row['num_steps_total']:.0f}",
            flush=True,
        )
    wall = time.perf_counter() - t0
    table = pd.DataFrame(rows).assign(wall_seconds=wall, workers=args.workers)
    # Rows of earlier invocations for other models are kept: the section covers them all.
    earlier = _read(JUDGED)
    if not earlier.empty:
        table = pd.concat([earlier[~earlier.model.isin(table.model.unique())], table])
    pairs = list(zip(table.model, table.family, strict=True))
    wall = float(table.drop_duplicates("wall_seconds").wall_seconds.sum())
    stored = _read(RUNS)
    used = stored[stored.set_index(["model", "family"]).index.isin(pairs)]
    runs_text = (
        f"{used.groupby(['model', 'family']).size().min()}–"
        f"{used.groupby(['model', 'family']).size().max()} tuned runs per pair (Adam with "
        f"cosine decay at rates {', '.join(f'{r:g}' for r in sorted(used.learning_rate.unique()))}"
        f", seeds {', '.join(str(x) for x in sorted(used.seed.unique()))}, "
        f"{int(used.steps.max()):,} steps each)"
    )
    JUDGED.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(JUDGED, index=False)
    lines = [
        f"Machine: {machine()}; {args.workers} workers; {len(table)} cells at the default fit "
        f"settings (seeds {', '.join(str(x) for x in sorted(table.seed.unique()))}), wall time "
        f"{wall:.0f} s (the runs' sum, shared with other work on the machine). Reference "
        "optimum of each "
        f"(model, family): the best ELBO of {runs_text} (`benchmarks/reference_optima.csv`). "
        "False convergence: called converged with an ELBO more than max(0.25 nats, 2 standard "
        "errors) below the reference optimum.",
        "",
        "| model | cells | converged | false convergences | hit the budget | largest gap (nats) "
        "| median steps |",
        "|---|---|---|---|---|---|---|",
    ]
    for model, part in table.groupby("model", sort=False):
        lines.append(
            f"| {model} | {len(part)} | {int(part.converged.sum())} | "
            f"{int(part.false_convergence.sum())} | {int(part.budget_hit.sum())} | "
            f"{part.gap.max():.2f} | {part.num_steps_total.median():.0f} |"
        )
    lines.append(
        f"| **all** | {len(table)} | {int(table.converged.sum())} | "
        f"{int(table.false_convergence.sum())} | {int(table.budget_hit.sum())} | "
        f"{table.gap.max():.2f} | {table.num_steps_total.median():.0f} |"
    )
    lines += ["", "Per family (gap = reference optimum − ELBO, median over cells):", ""]
    lines += [
        "| family | cells | converged | false | median gap | median W₁ |",
        "|---|---|---|---|---|---|",
    ]
    for family, part in table.groupby("family", sort=False):
        lines.append(
            f"| {family} | {len(part)} | {int(part.converged.sum())} | "
            f"{int(part.false_convergence.sum())} | {part.gap.median():.3f} | "
            f"{part.wasserstein_1.median():.3f} |"
        )
    bad = table[table.false_convergence | (table.status != "ok")]
    if len(bad):
        lines += ["", "Cells called converged below their reference, or not ok:", ""]
        lines += [
            f"- {r.model}/{r.family}/{r.seed}: {r.status}, ELBO {r.elbo:.3f} vs {r.reference_elbo:.3f}"
            f" ({r.reason})"
            for r in bad.itertuples()
        ]
    write_section(args.section, "\n".join(lines))
    print("\n".join(lines))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("reference", "defaults"))
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--families", default=",".join(DEFAULT_FAMILIES))
    parser.add_argument("--rates", default="0.01,0.003,0.03")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--again", action="store_true", help="refit stored (model, family)")
    parser.add_argument("--section", default="Defaults against each family's reference optimum")
    args = parser.parse_args(argv)
    args.models = args.models.split(",")
    args.families = args.families.split(",")
    args.rates = [float(r) for r in args.rates.split(",")]
    (reference if args.part == "reference" else defaults)(args)


if __name__ == "__main__":
    main()
