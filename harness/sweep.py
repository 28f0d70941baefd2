"""Orchestration of one ``harness run``: spec → cells → executor → tracking → report.

The driver is the single MLflow writer: workers return ``FitResult``s, this module logs each as
it arrives, so a crash loses at most the cells in flight.

When the tracking store stays unreachable (after :data:`harness.tracking.RETRY`'s retries) while
cells are running, their results go to the local journal (:mod:`harness.journal`) and the sweep
goes on; the journal is replayed into MLflow at the start of the next run of the experiment, at
the end of this one if the store is back, or by ``harness sync``.  The store must be reachable
when a sweep starts (to know which cells are done and to create the parent run): otherwise
:class:`harness.tracking.TrackingUnavailable` is raised before anything is fitted.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

from harness import executors, journal, report, run_content, tracking
from harness.records import FitResult
from harness.spec import Spec, cell_labels

EXECUTORS = ("local", "serial", "ray")


@dataclasses.dataclass
class SweepOutcome:
    """What a sweep did: results of this invocation, cells skipped, files written.

    ``journaled`` are results of this invocation that are in the local journal only (the
    tracking store failed); ``journal_path`` is the journal when entries are left in it;
    ``tracking_error`` the last tracking failure; ``replayed`` journal entries written to
    MLflow by this invocation; ``taken`` cells left to other drivers of the experiment (they
    held their claims, or logged them first).
    """

    results: list[FitResult]
    skipped: int
    parent_run_id: str
    report: report.ReportFiles | None
    table: object = None
    journaled: list[FitResult] = dataclasses.field(default_factory=list)
    journal_path: Path | None = None
    tracking_error: str = ""
    replayed: int = 0
    taken: int = 0

    @property
    def failed(self) -> list[FitResult]:
        return [r for r in self.results if r.status == "error"]


@dataclasses.dataclass(frozen=True)
class SyncOutcome:
    """What a journal replay did.

    Attributes:
      path: The journal file.
      replayed: Entries written to MLflow now.
      already_logged: Entries found already in MLflow (a replay interrupted before it could
        remove them, or a cell that has a FINISHED run meanwhile); removed without writing.
      left: Entries still in the journal (unreadable with this version, or not replayed).
      errors: Why entries were not replayed: the store rejected them (they stay in the
        journal; the other entries are replayed).
    """

    path: Path
    replayed: int = 0
    already_logged: int = 0
    left: int = 0
    errors: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Progress:
    """Progress of a sweep after one more cell finished."""

    done: int
    total: int
    elapsed_seconds: float
    result: FitResult

    @property
    def eta_seconds(self) -> float:
        return self.elapsed_seconds / self.done * (self.total - self.done) if self.done else 0.0


def run(
    spec: Spec,
    *,
    tracking_uri: str | None = None,
    executor: str = "local",
    workers: int | None = None,
    ray_address: str | None = None,
    force: bool = False,
    results_dir: Path = Path("results"),
    on_progress: Callable[[Progress], None] | None = None,
    pool: executors.LocalPool | None = None,
) -> SweepOutcome:
    """Run every cell of ``spec`` that has no FINISHED run yet (all of them with ``force``).

    ``pool``: a started :class:`executors.LocalPool` for the local executor (the caller closes
    it); started early, its workers import TensorFlow while this sets up the store.
    """
    cells = spec.cells()
    labels = cell_labels(cells)
    journal_file = journal.journal_path(results_dir, spec.name)
    client = tracking.client_for(tracking_uri)
    experiment_id = tracking.get_or_create_experiment(client, spec.name)
    # Replay first, so that journaled cells count as done and are not fitted again.
    replayed = _replay(client, experiment_id, journal_file).replayed
    tracking.mark_dead_runs_killed(client, experiment_id)
    sweep_probe = tracking.Sweep(client, experiment_id, "")
    done_ids = set() if force else tracking.finished_cell_ids(sweep_probe)
    todo = [c for c in cells if c.cell_id not in done_ids]
    workers = workers or executors.default_workers()
    sweep = tracking.start_sweep(
        spec,
        tracking_uri,
        num_cells=len(cells),
        num_skipped=len(cells) - len(todo),
        executor=executor,
        workers=workers,
    )
    results: list[FitResult] = []
    taken = 0
    # While the store fails, cells are fitted unclaimed and logged without a check (each check
    # would wait out RETRY): their results go to the journal, whose replay never makes a
    # second FINISHED run.  Cleared by the next cell logged.
    store_down = False

    def claim(group):
        """The cells of ``group`` this driver fits: those it claims and nobody finished."""
        nonlocal taken, store_down
        mine = []
        for cell in group:
            try:
                if store_down or _claim(sweep, spec.name, cell, force):
                    mine.append(cell)
            except tracking.TrackingUnavailable:
                store_down = True
                mine.append(cell)
        taken += len(group) - len(mine)
        return mine

    start = time.perf_counter()
    if executor == "serial":
        stream = executors.run_serial(todo, claim=claim)
    elif executor == "ray":
        stream = executors.run_ray(
            todo,
            address=ray_address,
            cpus_per_task=spec.resources.cpus_per_task,
            gpus_per_task=spec.resources.gpus_per_task,
            claim=claim,
        )
    else:
        stream = executors.run_local(todo, workers, pool=pool, claim=claim)
    journaled: list[FitResult] = []
    # Runs created before the store failed part-way through logging (their results are in the
    # journal): ended as KILLED once the store is back, so no run stays RUNNING.
    partial: list[str] = []
    tracking_error = ""
    heartbeat = tracking.Heartbeat(sweep).__enter__()
    try:
        for result in stream:
            try:
                if not (force or store_down) and tracking.cell_finished(sweep, result.cell.cell_id):
                    # Another driver took over this cell (our heartbeat lapsed) and logged it.
                    taken += 1
                    continue
            except tracking.TrackingUnavailable:
                store_down = True
            try:
                tracking.log_cell(
                    sweep, run_content.prepare(result, run_name=labels.get(result.cell.cell_id))
                )
                store_down = False
            except Exception as e:  # noqa: BLE001 - the store failed: keep the result locally
                store_down = True
                if getattr(e, "run_id", None):
                    partial.append(e.run_id)
                journal.append_result(journal_file, result, parent_run_id=sweep.parent_run_id)
                journaled.append(result)
                tracking_error = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"
            results.append(result)
            if on_progress:
                on_progress(
                    Progress(len(results), len(todo) - taken, time.perf_counter() - start, result)
                )
    except BaseException:
        heartbeat.__exit__()
        _end_sweep(sweep, journal_file, failed=True)
        raise
    heartbeat.__exit__()
    failed = any(r.status == "error" for r in results)
    if not _end_sweep(sweep, journal_file, failed=failed):
        tracking_error = tracking_error or "could not end the parent run (its end is journaled)"
    if journal.read(journal_file):
        # The store may be back by now: try once more, keep the journal if not.
        try:
            replayed += _replay(client, experiment_id, journal_file).replayed
            journaled = [] if not journal.read(journal_file) else journaled
        except tracking.TrackingUnavailable as e:
            tracking_error = str(e)
    for run_id in partial:
        try:
            if tracking.run_status(client, run_id) == "RUNNING":
                tracking.end_run(client, run_id, "KILLED")
        except tracking.TrackingUnavailable:
            pass  # still down: the next sweep of the experiment marks it KILLED
    try:
        table = report.tidy(tracking.search_cells(spec.name, tracking_uri))
        files = report.write_report(table, results_dir / spec.name, tracking_uri=tracking_uri)
        report.log_to_run(table, files, sweep.parent_run_id, tracking_uri)
    except tracking.TrackingUnavailable as e:
        table, files, tracking_error = None, None, str(e)
    return SweepOutcome(
        results,
        len(cells) - len(todo),
        sweep.parent_run_id,
        files,
        table,
        journaled=journaled,
        journal_path=journal_file if journal_file.is_file() else None,
        tracking_error=tracking_error,
        replayed=replayed,
        taken=taken,
    )


def _claim(sweep: tracking.Sweep, experiment: str, cell, force: bool) -> bool:
    """Claim ``cell`` for this driver (:func:`harness.tracking.claim_cell`); False when another
    live driver holds it or (unless ``force``) it has a FINISHED run by now.

    Raises:
      TrackingUnavailable: the store failed.
    """
    if not tracking.claim_cell(sweep, experiment, cell.cell_id):
        return False
    return force or not tracking.cell_finished(sweep, cell.cell_id)


def _end_sweep(sweep: tracking.Sweep, journal_file: Path, *, failed: bool) -> bool:
    """End the parent run; journal its end when the store is unreachable.  True when logged."""
    try:
        tracking.end_sweep(sweep, failed=failed)
        return True
    except Exception:  # noqa: BLE001 - never mask the sweep's own outcome
        journal.append_sweep_end(
            journal_file,
            parent_run_id=sweep.parent_run_id,
            status="FAILED" if failed else "FINISHED",
        )
        return False


def sync(
    experiment: str, *, tracking_uri: str | None = None, results_dir: Path = Path("results")
) -> SyncOutcome:
    """Replay the journal of ``experiment`` (``results_dir/experiment/journal.jsonl``) into MLflow.

    Idempotent: entries already in MLflow are not written twice.

    Raises:
      TrackingUnavailable: when the store is still unreachable (the journal is kept).
    """
    path = journal.journal_path(results_dir, experiment)
    if not journal.read(path):
        return SyncOutcome(path)
    client = tracking.client_for(tracking_uri)
    experiment_id = tracking.get_or_create_experiment(client, experiment)
    return _replay(client, experiment_id, path)


def _replay(client, experiment_id: str, path: Path) -> SyncOutcome:
    """Write the journal's entries to MLflow, then remove them from the journal.

    A cell entry is skipped when a terminated run already carries its entry id, or when its
    cell already has a FINISHED run and the entry is not an error: replaying never makes a
    second FINISHED run for a cell.  Entries written before a failure are removed even when
    the store fails part-way.
    """
    entries = journal.read(path)
    if not entries:
        return SyncOutcome(path)
    probe = tracking.Sweep(client, experiment_id, "")
    logged = tracking.journal_entry_ids(probe)
    finished = tracking.finished_cell_ids(probe)
    done: list[str] = []
    errors: list[str] = []
    replayed = already = 0
    try:
        for entry in entries:
            if entry.kind == "sweep_end":
                if tracking.run_status(client, entry.parent_run_id) not in (
                    None,
                    "FINISHED",
                    "FAILED",
                ):
                    tracking.end_run(client, entry.parent_run_id, entry.sweep_status)
                done.append(entry.entry_id)
                continue
            result = entry.result
            if entry.entry_id in logged or (
                result.status != "error" and result.cell.cell_id in finished
            ):
                already += 1
                done.append(entry.entry_id)
                continue
            parent = (
                entry.parent_run_id
                if tracking.run_status(client, entry.parent_run_id) is not None
                else ""
            )
            try:
                tracking.log_cell(
                    tracking.Sweep(client, experiment_id, parent),
                    run_content.prepare(
                        result, extra_tags={"harness.journal_entry": entry.entry_id}
                    ),
                )
            except tracking.TrackingUnavailable:
                raise
            except Exception as e:  # noqa: BLE001 - one rejected entry must not block the rest
                errors.append(
                    f"{result.cell.run_name}: {type(e).__name__}: "
                    f"{(str(e).splitlines() or [''])[0][:300]}"
                )
                continue
            if result.status != "error":
                finished.add(result.cell.cell_id)
            replayed += 1
            done.append(entry.entry_id)
    finally:
        left = journal.remove(path, done) if done else len(entries)
    return SyncOutcome(path, replayed, already, left, tuple(errors))
