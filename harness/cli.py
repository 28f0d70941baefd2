"""``harness run | report | sync | list | ui``: parse, call, print.  The only module that prints."""

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
    rep.add_argument("--style", choices=("paper", "slides"), default="paper",
                     help="figure sizes: paper (one/two-column journal widths) or slides")
    rep.add_argument("--model", help="model of the marginal-overlay figure (default: the first)")
    rep.set_defaults(handler=_report)

    syn = sub.add_parser("sync", help="replay results kept in the local journal into MLflow")
    syn.add_argument("spec", nargs="?", type=Path, help="spec whose experiment to sync")
    syn.add_argument("--experiment", help="experiment name (instead of a spec)")
    syn.add_argument("--tracking-uri")
    syn.add_argument("--results-dir", type=Path, default=Path("results"),
                     help="where results/<experiment>/journal.jsonl is (default: results)")
    syn.set_defaults(handler=_sync)

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

    from harness.tracking import TrackingUnavailable

    print(f"experiment {spec.name}: {len(cells)} cells", file=sys.stderr, flush=True)
    try:
        outcome = sweep.run(spec, tracking_uri=args.tracking_uri, executor=args.executor,
                            workers=args.workers, ray_address=args.ray_address,
                            force=args.force, results_dir=args.results_dir,
                            on_progress=progress)
    except TrackingUnavailable as e:
        _error(f"nothing was run: {e}")
        return EXIT_FAILED_CELLS
    if outcome.replayed:
        print(f"replayed {outcome.replayed} journaled results into MLflow", file=sys.stderr)
    if outcome.skipped:
        print(f"skipped {outcome.skipped} cells already FINISHED (use --force to re-run)",
              file=sys.stderr)
    _print_summary(outcome.table)
    print(f"\nMLflow parent run: {outcome.parent_run_id}")
    if outcome.report is not None:
        print(f"cells: {outcome.report.cells_csv}")
        for path in outcome.report.figures:
            print(f"figure: {path}")
    diverged = [r for r in outcome.results if r.status == "diverged"]
    if diverged:
        print(f"\n{len(diverged)} cells diverged (a result, not a failure):", file=sys.stderr)
        for r in diverged:
            print(f"  {r.cell.run_name}: {r.reason}", file=sys.stderr)
    code = EXIT_OK
    if outcome.failed:
        print(f"\n{len(outcome.failed)} cells failed:", file=sys.stderr)
        for r in outcome.failed:
            print(f"  {r.cell.run_name}: {r.reason}", file=sys.stderr)
        code = EXIT_FAILED_CELLS
    if outcome.journaled or outcome.report is None:
        print(f"\ntracking store unavailable ({outcome.tracking_error}); "
              f"{len(outcome.journaled)} results kept in {outcome.journal_path}: "
              f"they are replayed by the next `harness run` of this spec or by "
              f"`harness sync {args.spec}`", file=sys.stderr)
        code = EXIT_FAILED_CELLS
    return code


def _print_summary(table) -> None:
    from harness import report

    if table is None or table.empty:
        return
    metrics = [m for m in ("elbo", "mean_z_error_rms", "std_ratio_geomean", "khat",
                           "fit_seconds") if m in table]
    if not metrics:
        return
    s = report.summary(table, metrics)["mean"]
    print("\nmean over seeds (status ok):")
    print(s.to_string(float_format=lambda v: f"{v:.3g}"))


def _experiment_name(args) -> str | None:
    """The experiment of ``SPEC | --experiment NAME`` (None after printing an error)."""
    from harness.spec import SpecError, check_experiment_name

    if args.experiment:
        try:
            # The name becomes a folder under results/: no path separators, no '..'.
            return check_experiment_name(args.experiment, "--experiment")
        except SpecError as e:
            _error(str(e))
            return None
    if args.spec:
        spec = _load(args.spec, [])
        return None if spec is None else spec.name
    _error(f"{args.command}: give a SPEC or --experiment NAME")
    return None


def _report(args) -> int:
    # Reads the spec's name only (no validation, no registries): the report never imports
    # TensorFlow, so it starts in about a second.
    from harness import report, tracking

    try:
        if args.experiment:
            name = report.check_experiment_name(args.experiment)
        elif args.spec:
            name = report.experiment_name(args.spec)
        else:
            return _error("report: give a SPEC or --experiment NAME")
    except report.ReportError as e:
        return _error(str(e))
    try:
        table = report.tidy(tracking.search_cells(name, args.tracking_uri))
    except LookupError as e:
        return _error(str(e))
    except tracking.TrackingUnavailable as e:
        _error(str(e))
        return EXIT_FAILED_CELLS
    if table.empty:
        return _error(f"experiment '{name}' has no cell runs")
    try:
        files = report.write_report(table, args.out or Path("results") / name,
                                    quality_metric=args.metric, style=args.style,
                                    model=args.model, tracking_uri=args.tracking_uri)
    except report.ReportError as e:
        return _error(str(e))
    print(f"cells: {files.cells_csv}")
    for path in files.tables:
        print(f"table: {path}")
    for path in files.figures:
        print(f"figure: {path}")
    return EXIT_OK


def _sync(args) -> int:
    from harness import sweep, tracking

    name = _experiment_name(args)
    if name is None:
        return EXIT_USAGE
    try:
        outcome = sweep.sync(name, tracking_uri=args.tracking_uri, results_dir=args.results_dir)
    except tracking.TrackingUnavailable as e:
        _error(f"journal kept: {e}")
        return EXIT_FAILED_CELLS
    print(f"{outcome.path}: replayed {outcome.replayed}, already in MLflow "
          f"{outcome.already_logged}, left {outcome.left}")
    return EXIT_OK if outcome.left == 0 else EXIT_FAILED_CELLS


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
