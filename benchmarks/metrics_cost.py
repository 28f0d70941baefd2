"""Cost of the per-cell metrics against the fit, at default settings on the quickstart cells.

    python -m benchmarks.metrics_cost [--spec experiments/quickstart.toml] [--seed 0]

Fits every model × family of the spec for one seed, serially in this process, with the spec's
fit settings and the default metric settings (4,096 fresh draws, K = 64), and reports per cell

* ``metrics_seconds``: everything after the last optimisation step — fresh draws from q, their
  log densities, every quality and calibration metric (the ``metrics_seconds`` metric of the
  cell);
* of which ``numpy``: the pure metric functions alone (:func:`posterior_metrics` re-run on the
  same number of draws), the rest being TensorFlow's draws and log densities;
* the ratio to ``fit_seconds`` (steady-state optimisation, compilation excluded) and to the
  whole fit (compilation included).  Target: metrics ≤ 10 % of the fit.

All arms are measured side by side in one run.  Results are printed and written to
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.common import markdown_table, median, write_section

REPO = Path(__file__).resolve().parents[1]
TITLE = "Metric cost vs fit time (quickstart cells)"


def _numpy_seconds(model, cell, repeats: int = 3) -> float:
    """Median time of the pure metric functions on draws of the cell's evaluation size."""
    from harness.metrics.quality import iw_draws_needed
    from harness.metrics.summary import posterior_metrics

    rng = np.random.default_rng(0)
    n = iw_draws_needed(cell.fit.elbo_sample_size, cell.metrics.importance_sample_size)
    ref = model.reference
    mean = ref.mean if ref is not None else np.zeros(model.dimension)
    std = ref.standard_deviation if ref is not None else np.ones(model.dimension)
    draws = mean + std * rng.normal(size=(n, model.dimension))
    log_weights = rng.normal(size=n)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        posterior_metrics(
            model,
            draws[: cell.fit.elbo_sample_size],
            log_weights[: cell.fit.elbo_sample_size],
            importance_sample_size=cell.metrics.importance_sample_size,
            iw_log_weights=log_weights,
        )
        times.append(time.perf_counter() - t0)
    return median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=REPO / "experiments" / "quickstart.toml")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)

    from harness.fit import fit
    from harness.models import build_model
    from harness.spec import load

    spec = load(args.spec)
    cells = [c for c in spec.cells() if c.seed == spec.seeds[0]]
    cells = [c.__class__(**{**c.__dict__, "seed": args.seed}) for c in cells]
    rows = []
    for cell in cells:
        result = fit(cell)
        if result.status != "ok":
            print(f"{cell.run_name}: {result.status} {result.reason}")
            continue
        m = result.metrics
        model = build_model(cell.model, **dict(cell.model_args))
        numpy_seconds = _numpy_seconds(model, cell)
        whole_fit = m["fit_seconds"] + m.get("compile_seconds", 0.0)
        rows.append(
            {
                "model": cell.model,
                "family": cell.family,
                "steps": cell.fit.num_steps,
                "fit (s)": m["fit_seconds"],
                "compile (s)": m.get("compile_seconds", float("nan")),
                "metrics (s)": m["metrics_seconds"],
                "of which numpy (s)": numpy_seconds,
                "metrics / fit": m["metrics_seconds"] / m["fit_seconds"],
                "metrics / (fit + compile)": m["metrics_seconds"] / whole_fit,
            }
        )
        print(markdown_table(rows[-1:]).splitlines()[-1], flush=True)
    table = markdown_table(rows)
    over_fit = median([r["metrics / fit"] for r in rows])
    over_whole = median([r["metrics / (fit + compile)"] for r in rows])
    body = (
        f"`python -m benchmarks.metrics_cost` on {args.spec.name} (seed {args.seed}, "
        f"{cells[0].fit.num_steps} steps × {cells[0].fit.sample_size} particles, "
        f"{cells[0].fit.elbo_sample_size} evaluation draws, K = "
        f"{cells[0].metrics.importance_sample_size}), one process, cells in turn.\n\n"
        f"{table}\n\nMedian metrics / fit = {over_fit:.3g}; median metrics / (fit + "
        f"compile) = {over_whole:.3g} (target ≤ 0.1).\n"
    )
    print("\n" + body)
    if not args.no_write:
        write_section(TITLE, body)


if __name__ == "__main__":
    main()
