"""``harness run | report | sync | vsbc | list | ui``: parse, call, print.  The only module that prints."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import sys
from pathlib import Path

EXIT_OK, EXIT_FAILED_CELLS, EXIT_USAGE = 0, 1, 2


def entry() -> None:
    """The ``harness`` program: :func:`main`, then exit without the interpreter's teardown.

    Tearing down an interpreter that has imported TensorFlow, MLflow and matplotlib takes
    ~1.7 s of module finalization that saves nothing (files are closed, runs ended, the
    store's transactions committed).  The exit handler is registered first, so it runs after
    every other one (MLflow's, TensorFlow's, multiprocessing's): they all still run.
    """
    code = [EXIT_FAILED_CELLS]  # an exception escaping main exits 1 after its traceback
    atexit.register(_exit_now, code)
    if "--verbose" not in sys.argv[1:]:
        _quiet_native_stderr()
    try:
        code[0] = main()
    except SystemExit as e:  # argparse's usage errors (2), --help (0)
        code[0] = e.code if isinstance(e.code, int) else int(e.code is not None)
        raise
    except KeyboardInterrupt:
        code[0] = 130
        raise
    sys.exit(code[0])


def _quiet_native_stderr() -> None:
    """Keep native libraries' logs (TensorFlow, XLA, CUDA, absl) off the terminal.

    Some of them write to file descriptor 2 directly, before or regardless of
    ``TF_CPP_MIN_LOG_LEVEL`` ("All log messages before absl::InitializeLog() ...", "Could
    not find cuda drivers ...").  So descriptor 2 goes to /dev/null, and Python's
    ``sys.stderr`` (the harness's own lines, tracebacks) keeps writing to a duplicate of the
    original.  Spawned workers inherit descriptor 2: they are quiet too.  ``--verbose``
    skips this.
    """
    try:
        sys.stderr.flush()
        original = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    except OSError:
        return
    sys.stderr = open(  # noqa: SIM115 - lives as long as the process
        original, "w", buffering=1, encoding=sys.stderr.encoding, errors="backslashreplace"
    )


def _exit_now(code: list[int]) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code[0])


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    # Before anything imports TensorFlow (it reads its log level once, when it loads).
    from harness import logs

    logs.configure(getattr(args, "verbose", False))
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    return args.handler(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness", description="Variational-inference experiment harness (TFP + MLflow)."
    )
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="run a sweep spec into MLflow")
    run.add_argument("spec", type=Path, help="experiment spec (TOML)")
    run.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or sqlite:///results/mlflow.db)",
    )
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec value, e.g. --set fit.num_steps=100 (repeatable)",
    )
    run.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    run.add_argument(
        "--executor",
        choices=("local", "serial", "ray"),
        default="local",
        help="local: process pool (default); serial: in this process; "
        "ray: Ray tasks (pip install 'vi-harness[ray]')",
    )
    run.add_argument(
        "--ray-address",
        default=None,
        help="Ray cluster to join ('auto' or HOST:PORT; default: start a local one)",
    )
    run.add_argument("--workers", type=int, default=None, help="worker processes (default: cores)")
    run.add_argument(
        "--max-groups-per-worker",
        type=int,
        default=None,
        metavar="N",
        help="replace a worker after N compiled groups of cells (default 50)",
    )
    run.add_argument(
        "--worker-memory-mb",
        type=float,
        default=None,
        metavar="MB",
        help="replace the workers once one holds more resident memory (default 4096)",
    )
    run.add_argument("--force", action="store_true", help="re-run cells that already finished")
    run.add_argument(
        "--verbose",
        action="store_true",
        help="let library logs through (TensorFlow, XLA/CUDA, absl, MLflow, warnings)",
    )
    run.add_argument(
        "--results-dir",
        type=Path,
        default=Path("results"),
        help="where results/<experiment>/ is written (default: results)",
    )
    run.set_defaults(handler=_run)

    rep = sub.add_parser("report", help="read a sweep back from MLflow; write tables, figures")
    rep.add_argument("spec", nargs="?", type=Path, help="spec whose experiment to report")
    rep.add_argument("--experiment", help="experiment name (instead of a spec)")
    rep.add_argument("--tracking-uri")
    rep.add_argument("--out", type=Path, help="output folder (default: results/<experiment>)")
    rep.add_argument(
        "--metric",
        help="quality metric for the y axis (default: first defined of "
        "wasserstein_1, mean_z_error_rms, kl_divergence, log_normalizer_error)",
    )
    rep.add_argument(
        "--style",
        choices=("paper", "slides"),
        default="paper",
        help="figure sizes: paper (one/two-column journal widths) or slides",
    )
    rep.add_argument("--model", help="model of the marginal-overlay figure (default: the first)")
    rep.add_argument("--verbose", action="store_true", help="let library logs through")
    rep.set_defaults(handler=_report)

    syn = sub.add_parser("sync", help="replay results kept in the local journal into MLflow")
    syn.add_argument("spec", nargs="?", type=Path, help="spec whose experiment to sync")
    syn.add_argument("--experiment", help="experiment name (instead of a spec)")
    syn.add_argument("--tracking-uri")
    syn.add_argument(
        "--results-dir",
        type=Path,
        default=Path("results"),
        help="where results/<experiment>/journal.jsonl is (default: results)",
    )
    syn.set_defaults(handler=_sync)

    vs = sub.add_parser(
        "vsbc",
        help="variational simulation-based calibration of one model "
        "× family of a spec (fits the family on M simulated data sets)",
    )
    vs.add_argument(
        "spec",
        type=Path,
        help="experiment spec (TOML): fit settings, model args, "
        "family hyperparameters and the MLflow experiment",
    )
    vs.add_argument("--model", required=True, help="a model of the spec with a simulator")
    vs.add_argument("--family", required=True, help="a family of the spec")
    vs.add_argument(
        "--simulations", type=int, default=100, help="number of simulated data sets M (default 100)"
    )
    vs.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec value, e.g. --set fit.num_steps=500 (repeatable)",
    )
    vs.add_argument("--tracking-uri")
    vs.add_argument(
        "--results-dir",
        type=Path,
        default=Path("results"),
        help="where results/<experiment>/figures/ is written (default: results)",
    )
    vs.add_argument("--verbose", action="store_true", help="let library logs through")
    vs.set_defaults(handler=_vsbc)

    ref = sub.add_parser(
        "reference",
        help="long NUTS run of a model; write its reference "
        "file if R-hat < 1.01 and bulk ESS > 1000 for every coordinate",
    )
    ref.add_argument("model", help="registered model name")
    ref.add_argument("--chains", type=int, default=4, help="chains (default 4)")
    ref.add_argument("--warmup", type=int, default=1000, help="warm-up steps per chain")
    ref.add_argument("--draws", type=int, default=2500, help="kept draws per chain")
    ref.add_argument("--seed", type=int, default=0)
    ref.add_argument(
        "--target-accept",
        type=float,
        default=0.8,
        help="dual-averaging target acceptance (default 0.8; 0.9-0.99 for funnels)",
    )
    ref.add_argument(
        "--out", type=Path, help="output .npz (default: harness/data/references/MODEL.npz)"
    )
    ref.add_argument("--verbose", action="store_true", help="let library logs through")
    ref.set_defaults(handler=_reference)

    lst = sub.add_parser("list", help="list registered models and families")
    lst.set_defaults(handler=_list)

    ui = sub.add_parser("ui", help="serve the MLflow dashboard of the local store")
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to bind (default 127.0.0.1: this machine only)",
    )
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
    if args.workers is not None and args.workers < 1:
        return _error(f"--workers must be >= 1, got {args.workers}")
    if args.max_groups_per_worker is not None and args.max_groups_per_worker < 1:
        return _error(f"--max-groups-per-worker must be >= 1, got {args.max_groups_per_worker}")
    if args.worker_memory_mb is not None and not 0 < args.worker_memory_mb < float("inf"):
        return _error(f"--worker-memory-mb must be a number > 0, got {args.worker_memory_mb}")
    pool = None
    if args.executor == "local" and not args.dry_run:
        from harness import executors
        from harness.spec import cells_bound

        bound = cells_bound(args.spec, args.overrides)
        if bound is not None:
            # Started first, so that the workers import TensorFlow while the driver imports
            # it too and checks the spec (which builds models), imports MLflow and opens the
            # store.  (An unreadable spec fails its check below.)
            pool = executors.LocalPool(
                executors.pool_size(args.workers, bound),
                max_groups_per_worker=args.max_groups_per_worker or executors.MAX_GROUPS_PER_WORKER,
                memory_ceiling_mb=args.worker_memory_mb or executors.MEMORY_CEILING_MB,
            )
    code = EXIT_USAGE
    try:
        code = _run_spec(args, pool)
        return code
    finally:
        if pool is not None:
            # Bad input (nothing was run) or an exception: its workers are not needed.
            pool.close(abort=code == EXIT_USAGE)


def _run_spec(args, pool) -> int:
    spec = _load(args.spec, args.overrides)
    if spec is None:
        return EXIT_USAGE
    cells = spec.cells()
    if args.dry_run:
        print(
            f"experiment {spec.name}: {len(spec.models)} models × {len(spec.families)} families"
            f" × {len(spec.fit_grid)} fit settings × {len(spec.seeds)} seeds = {len(cells)} cells"
        )
        from harness.spec import cell_labels

        labels = cell_labels(cells)
        for cell in cells:
            fit = ", ".join(f"{k}={v}" for k, v in vars(cell.fit).items())
            print(f"  {cell.cell_id}  {labels[cell.cell_id]:<40} {fit}")
        return EXIT_OK
    problem = _check_destinations(args.tracking_uri, args.results_dir, spec.name)
    if problem:
        return _error(problem)
    return _run_sweep(args, spec, cells, pool)


def _check_destinations(uri, results_dir: Path, experiment: str) -> str:
    """Why the tracking store or the results folder cannot be written ("" when they can),
    checked before anything is fitted."""
    from harness import tracking

    try:
        tracking.check_tracking_uri(uri)
    except ValueError as e:
        return str(e)
    problem = tracking.writable_folder(results_dir / experiment)
    return f"--results-dir {results_dir}: {problem}" if problem else ""


def _run_sweep(args, spec, cells, pool) -> int:
    from harness import sweep
    from harness.tracking import TrackingUnavailable

    print(f"experiment {spec.name}: {len(cells)} cells", file=sys.stderr, flush=True)
    from harness.spec import cell_labels

    labels = cell_labels(cells)
    progress = _LiveProgress(labels) if sys.stderr.isatty() else _LineProgress(labels)
    try:
        with progress:
            outcome = sweep.run(
                spec,
                tracking_uri=args.tracking_uri,
                executor=args.executor,
                workers=args.workers,
                ray_address=args.ray_address,
                force=args.force,
                results_dir=args.results_dir,
                on_progress=progress,
                pool=pool,
            )
    except TrackingUnavailable as e:
        _error(f"nothing was run: {e}")
        return EXIT_FAILED_CELLS
    if outcome.replayed:
        print(f"replayed {outcome.replayed} journaled results into MLflow", file=sys.stderr)
    if outcome.skipped:
        print(
            f"skipped {outcome.skipped} cells already FINISHED (use --force to re-run)",
            file=sys.stderr,
        )
    _print_summary(outcome.table)
    print(f"\nMLflow parent run: {outcome.parent_run_id}")
    if outcome.report is not None:
        print(f"cells: {outcome.report.cells_csv}")
        for path in outcome.report.figures:
            print(f"figure: {path}")
        if outcome.report.incomplete:
            print(f"report incomplete: {outcome.report.incomplete}", file=sys.stderr)
    if outcome.taken:
        print(
            f"{outcome.taken} cells were fitted by another driver of this experiment",
            file=sys.stderr,
        )
    _print_convergence(outcome.results, labels)
    diverged = [r for r in outcome.results if r.status == "diverged"]
    if diverged:
        print(f"\n{len(diverged)} cells diverged (a result, not a failure):", file=sys.stderr)
        for r in diverged:
            print(f"  {_label(r.cell, labels)}: {r.reason}", file=sys.stderr)
    code = EXIT_OK
    if outcome.failed:
        print(f"\n{len(outcome.failed)} cells failed:", file=sys.stderr)
        for r in outcome.failed:
            print(f"  {_label(r.cell, labels)}: {r.reason}", file=sys.stderr)
        code = EXIT_FAILED_CELLS
    if outcome.journaled or outcome.report is None:
        print(
            f"\ntracking store unavailable ({outcome.tracking_error}); "
            f"{len(outcome.journaled)} results kept in {outcome.journal_path}: "
            f"they are replayed by the next `harness run` of this spec or by "
            f"`harness sync {args.spec}`",
            file=sys.stderr,
        )
        code = EXIT_FAILED_CELLS
    return code


def _print_convergence(results, labels) -> None:
    """How many ok cells converged, and which did not (hit the budget, or why else)."""
    judged = [r for r in results if r.status == "ok" and r.converged is not None]
    if not judged:
        return
    unconverged = [r for r in judged if not r.converged]
    budget = [r for r in unconverged if "budget of" in r.convergence_reason]
    print(
        f"\nconverged: {len(judged) - len(unconverged)} of {len(judged)} ok cells; "
        f"{len(budget)} hit the step budget",
        file=sys.stderr,
    )
    for r in unconverged:
        print(f"  NOT converged {_label(r.cell, labels)}: {r.convergence_reason}", file=sys.stderr)


def _label(cell, labels) -> str:
    """``cell``'s label in its grid (``labels``: :func:`harness.spec.cell_labels`), else its
    run name."""
    return (labels or {}).get(cell.cell_id, cell.run_name)


def _cell_line(p, labels=None) -> str:
    """One finished cell: status, its quality metric (or why it is not ok), fit time, ETA;
    ``labels`` (cell id → label, :func:`harness.spec.cell_labels`) tells apart cells of one
    ``model/family/seed``."""
    from harness.verdicts import VERDICT_METRICS

    r = p.result
    if r.status != "ok":
        extra = (r.reason.splitlines() or [""])[0][:200]
    else:
        name = next((m for m in VERDICT_METRICS if m in r.metrics), None)
        quality = f"{name} {r.metrics[name]:.4g}  " if name else ""
        # The time to result: what the cell cost, compilation included.
        if "time_to_result_seconds" in r.metrics:
            cost = f"{r.metrics['time_to_result_seconds']:.2f}s to result"
        else:
            cost = f"fit {r.metrics.get('fit_seconds', float('nan')):.2f}s"
        extra = f"{quality}{cost}  {r.fit_mode}"
        converged = getattr(r, "converged", None)
        if converged is not None:
            extra += "  converged" if converged else "  NOT converged"
    eta = int(p.eta_seconds)
    return (
        f"[{p.done}/{p.total}] {_label(r.cell, labels):<36} {r.status:<8} {extra}  "
        f"(ETA {eta // 60}:{eta % 60:02d})"
    )


class _LineProgress:
    """One line per finished cell on stderr (logs, CI: output that is not a terminal)."""

    def __init__(self, labels=None):
        self._labels = labels

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __call__(self, p) -> None:
        print(_cell_line(p, self._labels), file=sys.stderr, flush=True)


class _LiveProgress:
    """A live bar on a terminal: cells done, elapsed and remaining time, failures so far
    (diverged, not converged, error); such a cell also gets its line above the bar."""

    def __init__(self, labels=None):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("cells"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failures]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(file=sys.stderr),
            transient=False,
        )
        self._labels = labels
        self._task = None
        self._failures = {"diverged": 0, "not converged": 0, "error": 0}

    def __enter__(self):
        self._progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self._progress.__exit__(*exc)

    def __call__(self, p) -> None:
        if self._task is None:
            self._task = self._progress.add_task("cells", total=p.total, failures="")
        status = p.result.status
        if status == "ok" and getattr(p.result, "converged", None) is False:
            status = "not converged"
        if status in self._failures:
            self._failures[status] += 1
            self._progress.console.print(_cell_line(p, self._labels), markup=False, highlight=False)
        failures = ", ".join(f"{n} {k}" for k, n in self._failures.items() if n)
        self._progress.update(self._task, completed=p.done, failures=failures or "no failures")


def _print_summary(table) -> None:
    from harness import report

    if table is None or table.empty or not (table["status"] == "ok").any():
        return
    from harness.metrics import catalog

    metrics = catalog.key_metrics(table.columns)
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
        tracking.check_tracking_uri(args.tracking_uri)
    except ValueError as e:
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
        files = report.write_report(
            table,
            args.out or Path("results") / name,
            quality_metric=args.metric,
            style=args.style,
            model=args.model,
            tracking_uri=args.tracking_uri,
        )
    except report.ReportError as e:
        return _error(str(e))
    parent = tracking.latest_sweep_run_id(name, args.tracking_uri)
    if parent is not None:
        report.log_to_run(table, files, parent, args.tracking_uri)
    print(f"cells: {files.cells_csv}")
    for path in files.tables:
        print(f"table: {path}")
    for path in files.figures:
        print(f"figure: {path}")
    if files.incomplete:
        print(f"harness: report incomplete: {files.incomplete}", file=sys.stderr)
        return EXIT_FAILED_CELLS
    return EXIT_OK


def _sync(args) -> int:
    from harness import sweep, tracking

    name = _experiment_name(args)
    if name is None:
        return EXIT_USAGE
    try:
        tracking.check_tracking_uri(args.tracking_uri)
    except ValueError as e:
        return _error(str(e))
    try:
        outcome = sweep.sync(name, tracking_uri=args.tracking_uri, results_dir=args.results_dir)
    except tracking.TrackingUnavailable as e:
        _error(f"journal kept: {e}")
        return EXIT_FAILED_CELLS
    print(
        f"{outcome.path}: replayed {outcome.replayed}, already in MLflow "
        f"{outcome.already_logged}, left {outcome.left}"
    )
    for error in outcome.errors:
        print(f"  not replayed: {error}", file=sys.stderr)
    return EXIT_OK if outcome.left == 0 else EXIT_FAILED_CELLS


def _vsbc(args) -> int:
    spec = _load(args.spec, args.overrides)
    if spec is None:
        return EXIT_USAGE
    if args.simulations < 2:
        return _error(f"--simulations must be >= 2, got {args.simulations}")
    models = {name: margs for name, margs in spec.models}
    families = {name: hps for name, hps in spec.families}
    if args.model not in models:
        return _error(
            f"{spec.path}: --model {args.model!r} is not in the spec's models: {', '.join(models)}"
        )
    if args.family not in families:
        return _error(
            f"{spec.path}: --family {args.family!r} is not in the spec's families: "
            f"{', '.join(families)}"
        )
    if len(spec.fit_grid) > 1:
        print(
            f"note: the spec has {len(spec.fit_grid)} fit settings; VSBC uses the first",
            file=sys.stderr,
        )
    from harness import tracking, vsbc
    from harness.figures import vsbc as vsbc_figure
    from harness.spec import Cell

    cell = Cell(
        spec.name,
        args.model,
        models[args.model],
        args.family,
        families[args.family],
        spec.fit_grid[0],
        spec.seeds[0],
        metrics=spec.metrics,
    )

    def progress(index, result):
        print(
            f"[{index + 1}/{args.simulations}] {result.status:<8} "
            f"{result.reason or f'fit {result.fit_seconds:.2f}s'}",
            file=sys.stderr,
            flush=True,
        )

    try:
        result = vsbc.run(cell, args.simulations, on_progress=progress)
    except ValueError as e:
        return _error(str(e))
    except RuntimeError as e:
        print(f"harness: vsbc failed: {e}", file=sys.stderr)
        return EXIT_FAILED_CELLS
    stem = args.results_dir / spec.name / "figures" / f"vsbc_{args.model}_{args.family}"
    figures = vsbc_figure.vsbc_histogram(
        result.probabilities, result.pvalues, stem, title=f"VSBC: {args.model} / {args.family}"
    )
    run_id = tracking.log_vsbc(result, args.tracking_uri, figures=figures)
    s = result.summary
    print(
        f"VSBC {args.model} / {args.family}: {int(s['num_simulations'])} fits "
        f"({int(s['num_failed'])} failed)"
    )
    for i, pvalue in enumerate(result.pvalues):
        print(f"  θ[{i}]  asymmetry p-value {pvalue:.3g}")
    verdict = "symmetric" if s["vsbc_symmetric"] else "ASYMMETRIC (biased marginals)"
    print(
        f"min p-value {s['vsbc_min_pvalue']:.3g}, Bonferroni {s['vsbc_bonferroni_pvalue']:.3g}"
        f": {verdict}"
    )
    print(f"MLflow run: {run_id}")
    for path in figures:
        print(f"figure: {path}")
    return EXIT_OK


def _reference(args) -> int:
    from harness.models import MODELS

    if args.model not in MODELS:
        from harness.spec import _suggest

        return _error(f"reference: unknown model '{args.model}'{_suggest(args.model, MODELS)}")
    for flag, value in (
        ("--chains", args.chains),
        ("--warmup", args.warmup),
        ("--draws", args.draws),
    ):
        if value < 1:
            return _error(f"reference: {flag} must be >= 1, got {value}")
    if args.seed < 0:
        return _error(f"reference: --seed must be >= 0, got {args.seed}")
    if not 0.0 < args.target_accept < 1.0:
        return _error(f"reference: --target-accept must be in (0, 1), got {args.target_accept}")
    if args.out is not None and args.out.suffix != ".npz":
        return _error(f"reference: --out must end in .npz, got {args.out}")
    from harness import reference

    command = " ".join(
        [
            "harness",
            "reference",
            args.model,
            "--chains",
            str(args.chains),
            "--warmup",
            str(args.warmup),
            "--draws",
            str(args.draws),
            "--seed",
            str(args.seed),
            "--target-accept",
            str(args.target_accept),
        ]
        + (["--out", str(args.out)] if args.out is not None else [])
    )
    print(
        f"NUTS on {args.model}: {args.chains} chains x ({args.warmup} warm-up + "
        f"{args.draws} draws), seed {args.seed}",
        file=sys.stderr,
        flush=True,
    )
    outcome = reference.run(
        args.model,
        num_chains=args.chains,
        num_warmup=args.warmup,
        num_draws=args.draws,
        seed=args.seed,
        target_accept_prob=args.target_accept,
        command=command,
    )
    m = outcome.metadata
    print(
        f"max R-hat {m['potential_scale_reduction_max']:.4f}, min bulk ESS "
        f"{m['effective_sample_size_min']:.0f}, divergences {m['num_divergences']}, "
        f"leapfrogs {m['num_leapfrog_steps']}, {m['wall_seconds']:.1f}s ({m['mode']})"
    )
    if not outcome.ok:
        print(
            "harness: reference NOT written: "
            + "; ".join(outcome.failures)
            + " (run longer: more --warmup/--draws, or raise --target-accept)",
            file=sys.stderr,
        )
        return EXIT_FAILED_CELLS
    path = reference.write(outcome, args.out)
    print(f"reference: {path}")
    return EXIT_OK


def _list(args) -> int:
    from harness.families import FAMILIES
    from harness.models import MODELS

    print("models:")
    print(f"  {'name':<34} {'dimension':>9}  {'reference':<9}  description")
    for name, factory in MODELS.items():
        model = factory()
        print(
            f"  {name:<34} {model.dimension:>9}  {model.reference_kind:<9}  "
            f"{model.description or model.pretty_name}"
        )
    print("\nfamilies:")
    for name, family in FAMILIES.items():
        hps = ", ".join(f"{k}={v}" for k, v in family.hyperparameters.items()) or "-"
        print(f"  {name:<22} {family.pretty_name:<12} {hps}")
        notes = [f"kind={family.kind}"] if family.kind != "svi" else []
        notes += [f"needs {family.requirement}"] if family.requirement else []
        if notes:
            print(f"  {'':<22} {'':<12} ({'; '.join(notes)})")
    return EXIT_OK


def _ui(args) -> int:
    from harness import tracking

    uri = tracking.tracking_uri(args.tracking_uri)
    # This interpreter's MLflow: the venv's bin/ need not be on PATH.
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        uri,
        "--host",
        args.host,
        "--port",
        str(args.port),
        # One server process: a local dashboard has one reader, and MLflow's default of four
        # uvicorn workers on a busy 2-core machine miss their health checks and are killed
        # and restarted in a loop.
        "--workers",
        "1",
    ]
    if uri.startswith("sqlite:///"):
        # Artifacts next to the database, as tracking.get_or_create_experiment puts them.
        root = Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts"
        root.mkdir(parents=True, exist_ok=True)
        command += ["--default-artifact-root", str(root)]
    # MLflow 3's UI starts in its GenAI view (a per-browser switch); this link opens the
    # model-training view, where the runs table and the sweep's report are.
    link = f"http://{args.host}:{args.port}/#/experiments?workflowType=machine_learning"
    print(f"MLflow dashboard of {uri} on {link}", file=sys.stderr)
    sys.stderr.flush()
    # The server's own log (requests, errors) is what `harness ui` is for: give it back the
    # terminal's descriptor 2, which _quiet_native_stderr pointed at /dev/null.
    with contextlib.suppress(OSError, ValueError):
        if sys.stderr.fileno() != 2:
            os.dup2(sys.stderr.fileno(), 2)
    os.execv(command[0], command)


if __name__ == "__main__":
    entry()
