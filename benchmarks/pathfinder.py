"""Pathfinder (single- and multi-path) beside full-rank ADVI, at their defaults, side by side.

On the Gaussian-like posteriors of the zoo, one run fits every model with ``pathfinder``
(``num_paths = 1``), ``pathfinder`` with ``num_paths = 4`` (Stan's default) and ``full_rank`` at
the default fit settings (mode initialisation, adaptive learning rate, convergence rule), and
writes the section "Pathfinder vs full-rank ADVI" of docs/benchmarks.md: PSIS k̂, the std ratio
(geometric mean), the largest standardized mean error, whether the cell is *accurate* (max
|z| < 0.5 and std ratio in [0.8, 1.25], as benchmarks/convergence.py), gradient evaluations and
seconds (fit seconds, compilation and tracing excluded).

Laplace (the normal at the mode with the exact inverse Hessian) runs beside them as the test of
*Gaussian-like*: a model is Gaussian-like here when Laplace is accurate on it on every seed (the
posterior is close to the normal at its mode).  Pathfinder's normals are centred where L-BFGS
ends, so on a posterior whose mean is far from its mode (eight schools, the shrinkage prior)
no setting of Pathfinder's makes it accurate; the totals are given over all models and over
the Gaussian-like ones.

    nice python -m benchmarks.pathfinder [--seeds 1] [--workers 1]

``--zoo`` instead runs single-path Pathfinder and Laplace on every model of the zoo (the
amortized VAE left out), one seed, and writes the section "Pathfinder on the whole zoo": its
k̂ and std ratio beside Laplace's, the two Gaussians that can be had without a stochastic
optimiser.
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
    "Laplace": ("laplace", ()),
    "Pathfinder": ("pathfinder", ()),
    "Pathfinder ×4": ("pathfinder", (("num_paths", 4),)),
    "Full-rank ADVI": ("full_rank", ()),
}


def _accurate(m: dict) -> bool:
    return m.get("mean_z_error_max", np.inf) < 0.5 and 0.8 <= m.get("std_ratio_geomean", 0) <= 1.25


def _rows(results, method) -> list[dict]:
    """One row per finished cell (printed as it comes); ``method(cell)`` is its label."""
    rows = []
    for result in results:
        m = result.metrics
        rows.append(
            {
                "model": result.cell.model,
                "method": method(result.cell),
                "seed": result.cell.seed,
                "status": result.status,
                "converged": bool(result.converged),
                "accurate": result.status == "ok" and _accurate(m),
                "khat": m.get("khat", np.nan),
                "std_ratio": m.get("std_ratio_geomean", np.nan),
                "max_abs_z": m.get("mean_z_error_max", np.nan),
                "gradient_evaluations": m.get("num_gradient_evaluations", np.nan),
                "seconds": result.fit_seconds,
                # Why it is not ok, else its verdict.
                "reason": (result.reason or result.convergence_reason or "")[:120],
            }
        )
        print({k: v for k, v in rows[-1].items() if k != "reason"}, flush=True)
    return rows


def main(argv=None) -> None:
    import pandas as pd

    from harness.executors import run_local
    from harness.spec import Cell, FitSettings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks/pathfinder.csv"))
    parser.add_argument("--zoo", action="store_true", help="every model, Pathfinder and Laplace")
    args = parser.parse_args(argv)
    if args.zoo:
        return _zoo(args)
    settings = FitSettings()
    labels = {(family, hps): label for label, (family, hps) in METHODS.items()}
    cells = [
        Cell("benchmark_pathfinder", model, (), family, hps, settings, seed)
        for model in args.models.split(",")
        for family, hps in METHODS.values()
        for seed in range(args.seeds)
    ]
    t0 = time.perf_counter()
    rows = _rows(
        run_local(cells, args.workers),
        lambda cell: labels[(cell.family, cell.hyperparameters)],
    )
    wall = time.perf_counter() - t0
    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)

    lines = [
        f"Each method at its defaults (`FitSettings()`; Pathfinder J = 6, K = 25, 1,000 L-BFGS "
        f"iterations at most, paths in float64), {args.seeds} seed(s), {args.workers} worker(s), {wall:.0f} s in "
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
    laplace = table[table.method == "Laplace"].groupby("model").accurate.all()
    gaussian_like = sorted(laplace[laplace].index)
    lines += [
        "",
        "Gaussian-like (Laplace accurate on every seed): "
        + (", ".join(gaussian_like) or "none")
        + ".",
    ]
    for title, part_table in (
        ("all models and seeds", table),
        ("the Gaussian-like models", table[table.model.isin(gaussian_like)]),
    ):
        lines += ["", f"Totals per method ({title}):", ""]
        lines += ["| method | accurate | converged | median gradient evals | median seconds |"]
        lines += ["|---|---|---|---|---|"]
        for method, part in part_table.groupby("method", sort=False):
            lines.append(
                f"| {method} | {int(part.accurate.sum())}/{len(part)} "
                f"| {int(part.converged.sum())}/{len(part)} "
                f"| {part.gradient_evaluations.median():,.0f} | {part.seconds.median():.2f} |"
            )
    write_section("Pathfinder vs full-rank ADVI", "\n".join(lines))


def _zoo(args) -> None:
    """Single-path Pathfinder and Laplace on every non-amortized model, one seed."""
    import pandas as pd

    from harness.executors import run_local
    from harness.models import REGISTRY
    from harness.spec import Cell, FitSettings

    models = [name for name, entry in REGISTRY.items() if not entry.amortized]
    methods = {"Laplace": "laplace", "Pathfinder": "pathfinder"}
    label = {family: name for name, family in methods.items()}
    cells = [
        Cell("benchmark_pathfinder_zoo", model, (), family, (), FitSettings(), 0)
        for model in models
        for family in methods.values()
    ]
    t0 = time.perf_counter()
    rows = _rows(run_local(cells, args.workers), lambda cell: label[cell.family])
    wall = time.perf_counter() - t0
    table = pd.DataFrame(rows)
    args.out.with_name("pathfinder_zoo.csv").parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out.with_name("pathfinder_zoo.csv"), index=False)

    def cell(part, column, fmt):
        value = part[column].iloc[0] if len(part) else np.nan
        return "–" if not np.isfinite(value) else format(value, fmt)

    lines = [
        "Single-path Pathfinder (J = 6, K = 25; paths in float64 where the model can be "
        "rebuilt so, inference_gym's targets in their own dtype) and Laplace at their "
        f"defaults on every model of the zoo but the amortized VAE, seed 0, {args.workers} "
        f"worker(s), {wall:.0f} s in all. Accurate: max |z| < 0.5 and std ratio in [0.8, 1.25] "
        "against the model's reference. A model whose mean is far from its mode (a funnel, "
        "eight schools, a shrinkage prior, a multimodal target) defeats both: they are normals "
        "at, or near, the mode. Where Laplace is accurate and Pathfinder is not (the "
        "ill-conditioned Gaussian, Brownian motion, item response theory: Gaussian or nearly, "
        "30–501 dimensions), Pathfinder's covariance is too narrow: it knows the curvature only "
        "along the directions its L-BFGS path moved in, and from a start within a few sds of "
        "the mode the path hardly moves along the widest ones (the ill-conditioned Gaussian's "
        "principal sds span a factor of 360; with J = 60 correction pairs, in float64, its std "
        "ratio is still 0.61). Its k̂ > 0.7 flags every one.",
        "",
        "| model | Pathfinder k̂ | std ratio | max abs z | accurate | gradient evals "
        "| Laplace k̂ | std ratio | max abs z | accurate |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model in models:
        pf = table[(table.model == model) & (table.method == "Pathfinder")]
        la = table[(table.model == model) & (table.method == "Laplace")]

        def verdict(part):
            if not len(part):
                return "–"
            if part.status.iloc[0] != "ok":
                return f"{part.status.iloc[0]}: {part.reason.iloc[0][:60]}"
            return "yes" if part.accurate.iloc[0] else "no"

        lines.append(
            f"| {model} | {cell(pf, 'khat', '.2f')} | {cell(pf, 'std_ratio', '.3f')} "
            f"| {cell(pf, 'max_abs_z', '.2f')} | {verdict(pf)} "
            f"| {cell(pf, 'gradient_evaluations', ',.0f')} "
            f"| {cell(la, 'khat', '.2f')} | {cell(la, 'std_ratio', '.3f')} "
            f"| {cell(la, 'max_abs_z', '.2f')} | {verdict(la)} |"
        )
    for name in methods:
        part = table[table.method == name]
        lines.append("")
        lines.append(
            f"{name}: accurate on {int(part.accurate.sum())} of {len(part)} models, "
            f"k̂ < 0.7 on {int((part.khat < 0.7).sum())}."
        )
    write_section("Pathfinder on the whole zoo", "\n".join(lines))


if __name__ == "__main__":
    main()
