"""``harness run | report | list | ui``: parse, call, print.  The only module that prints."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# Keep TensorFlow's C++ start-up chatter out of the terminal unless asked for.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EXIT_OK, EXIT_FAILED_CELLS, EXIT_USAGE = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    return args.handler(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness", description="Variational-inference experiment harness (TFP + MLflow).")
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="run a sweep spec into MLflow")
    run.add_argument("spec", type=Path, help="experiment spec (TOML)")
    run.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI "
                     "or sqlite:///results/mlflow.db)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a spec value, e.g. --set fit.num_steps=100 (repeatable)")
    run.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    run.add_argument("--executor", choices=("local", "serial", "ray"), default="local",
                     help="local: process pool (default); serial: in this process; "
                     "ray: Ray tasks (pip install 'vi-harness[ray]')")
    run.add_argument("--ray-address", default=None,
                     help="Ray cluster to join ('auto' or HOST:PORT; default: start a local one)")
    run.add_argument("--workers", type=int, default=None, help="worker processes (default: cores)")
    run.add_argument("--force", action="store_true", help="re-run cells that already finished")
    run.add_argument("--results-dir", type=Path, default=Path("results"),
                     help="where results/<experiment>/ is written (default: results)")
    run.set_defaults(handler=_run)

    rep = sub.add_parser("report", help="read a sweep back from MLflow; write tables, figures")
    rep.add_argument("spec", nargs="?", type=Path, help="spec whose experiment to report")
    rep.add_argument("--experiment", help="experiment name (instead of a spec)")
    rep.add_argument("--tracking-uri")
    rep.add_argument("--out", type=Path, help="output folder (default: results/<experiment>)")
    rep.add_argument("--metric", help="quality metric for the y axis (default: first defined of "
                     "wasserstein_1, mean_z_error_rms, kl_divergence, log_normalizer_error)")
    rep.set_defaults(handler=_report)

    lst = sub.add_parser("list", help="list registered models and families")
    lst.set_defaults(handler=_list)

    ui = sub.add_parser("ui", help="serve the MLflow dashboard of the local store")
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument("--host", default="127.0.0.1",
                    help="interface to bind (default 127.0.0.1: this machine only)")
    ui.add_argument("--tracking-uri")
    ui.set_defaults(handler=_ui)
    return parser


def _error(message: str) -> int:
    print(f"harness: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _load(path: Path, overrides):
    from harness.spec import SpecError, load

    try:
        return load(path, overrides)
    except SpecError as e:
        _error(str(e))
        return None


def _run(args) -> int:
    spec = _load(args.spec, args.overrides)
    if spec is None:
        return EXIT_USAGE
    if args.workers is not None and args.workers < 1:
        return _error(f"--workers must be >= 1, got {args.workers}")
    cells = spec.cells()
    if args.dry_run:
        print(f"experiment {spec.name}: {len(spec.models)} models × {len(spec.families)} families"
              f" × {len(spec.fit_grid)} fit settings × {len(spec.seeds)} seeds = {len(cells)} cells")
        for cell in cells:
            fit = ", ".join(f"{k}={v}" for k, v in vars(cell.fit).items())
            print(f"  {cell.cell_id}  {cell.run_name:<40} {fit}")
        return EXIT_OK

    from harness import sweep

    def progress(p):
        r = p.result
        extra = r.reason if r.status != "ok" else (
            f"elbo {r.metrics.get('elbo', float('nan')):.3f}  "
            f"fit {r.metrics.get('fit_seconds', float('nan')):.2f}s  {r.fit_mode}")
        eta = int(p.eta_seconds)
        print(f"[{p.done}/{p.total}] {r.cell.run_name:<36} {r.status:<8} {extra}  "
              f"(ETA {eta // 60}:{eta % 60:02d})", file=sys.stderr, flush=True)

    print(f"experiment {spec.name}: {len(cells)} cells", file=sys.stderr, flush=True)
    outcome = sweep.run(spec, tracking_uri=args.tracking_uri, executor=args.executor,
                        workers=args.workers, ray_address=args.ray_address, force=args.force,
                        results_dir=args.results_dir,
                        on_progress=progress)
    if outcome.skipped:
        print(f"skipped {outcome.skipped} cells already FINISHED (use --force to re-run)",
              file=sys.stderr)
    _print_summary(outcome.table)
    print(f"\nMLflow parent run: {outcome.parent_run_id}")
    print(f"cells: {outcome.report.cells_csv}")
    for path in outcome.report.figures:
        print(f"figure: {path}")
    if outcome.failed:
        print(f"\n{len(outcome.failed)} cells failed:", file=sys.stderr)
        for r in outcome.failed:
            print(f"  {r.cell.run_name}: {r.reason}", file=sys.stderr)
        return EXIT_FAILED_CELLS
    return EXIT_OK


def _print_summary(table) -> None:
    from harness import report

    metrics = [m for m in ("elbo", "mean_z_error_rms", "std_ratio_geomean", "khat",
                           "fit_seconds") if m in table]
    if table is None or table.empty or not metrics:
        return
    s = report.summary(table, metrics)["mean"]
    print("\nmean over seeds (status ok):")
    print(s.to_string(float_format=lambda v: f"{v:.3g}"))


def _report(args) -> int:
    from harness import report, tracking

    if args.experiment:
        name = args.experiment
    elif args.spec:
        spec = _load(args.spec, [])
        if spec is None:
            return EXIT_USAGE
        name = spec.name
    else:
        return _error("report: give a SPEC or --experiment NAME")
    try:
        table = report.tidy(tracking.search_cells(name, args.tracking_uri))
    except LookupError as e:
        return _error(str(e))
    if table.empty:
        return _error(f"experiment '{name}' has no cell runs")
    files = report.write_report(table, args.out or Path("results") / name,
                                quality_metric=args.metric)
    print(f"cells: {files.cells_csv}")
    for path in files.figures:
        print(f"figure: {path}")
    return EXIT_OK


def _list(args) -> int:
    from harness.families import FAMILIES
    from harness.models import MODELS

    print("models:")
    print(f"  {'name':<22} {'dimension':>9}  {'reference':<9}  pretty name")
    for name, factory in MODELS.items():
        model = factory()
        print(f"  {name:<22} {model.dimension:>9}  {model.reference_kind:<9}  {model.pretty_name}")
    print("\nfamilies:")
    for name, family in FAMILIES.items():
        hps = ", ".join(f"{k}={v}" for k, v in family.hyperparameters.items()) or "-"
        print(f"  {name:<22} {family.pretty_name:<12} {hps}")
    return EXIT_OK


def _ui(args) -> int:
    from harness import tracking

    uri = tracking.tracking_uri(args.tracking_uri)
    command = ["mlflow", "server", "--backend-store-uri", uri, "--host", args.host,
               "--port", str(args.port)]
    if uri == tracking.DEFAULT_TRACKING_URI:
        Path(tracking.DEFAULT_ARTIFACT_ROOT).mkdir(parents=True, exist_ok=True)
        command += ["--default-artifact-root", tracking.DEFAULT_ARTIFACT_ROOT]
    print(f"MLflow dashboard of {uri} on http://{args.host}:{args.port}", file=sys.stderr)
    os.execvp(command[0], command)


if __name__ == "__main__":
    sys.exit(main())
