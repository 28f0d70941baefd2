"""Orchestration of one ``harness run``: spec → cells → executor → tracking → report.

The driver is the single MLflow writer: workers return ``FitResult``s, this module logs each as
it arrives, so a crash loses at most the cells in flight.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

from harness import executors, report, tracking
from harness.fit import FitResult
from harness.spec import Spec

EXECUTORS = ("local", "serial", "ray")


@dataclasses.dataclass
class SweepOutcome:
    """What a sweep did: results of this invocation, cells skipped, files written."""

    results: list[FitResult]
    skipped: int
    parent_run_id: str
    report: report.ReportFiles | None
    table: object = None

    @property
    def failed(self) -> list[FitResult]:
        return [r for r in self.results if r.status == "error"]


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


def run(spec: Spec, *, tracking_uri: str | None = None, executor: str = "local",
        workers: int | None = None, ray_address: str | None = None, force: bool = False,
        results_dir: Path = Path("results"),
        on_progress: Callable[[Progress], None] | None = None) -> SweepOutcome:
    """Run every cell of ``spec`` that has no FINISHED run yet (all of them with ``force``)."""
    cells = spec.cells()
    client = tracking.client_for(tracking_uri)
    experiment_id = tracking.get_or_create_experiment(client, spec.name)
    tracking.mark_dead_runs_killed(client, experiment_id)
    sweep_probe = tracking.Sweep(client, experiment_id, "")
    done_ids = set() if force else tracking.finished_cell_ids(sweep_probe)
    todo = [c for c in cells if c.cell_id not in done_ids]
    workers = workers or executors.default_workers()
    sweep = tracking.start_sweep(spec, tracking_uri, num_cells=len(cells),
                                 num_skipped=len(cells) - len(todo), executor=executor,
                                 workers=workers)
    results: list[FitResult] = []
    start = time.perf_counter()
    if executor == "serial":
        stream = executors.run_serial(todo)
    elif executor == "ray":
        stream = executors.run_ray(todo, address=ray_address,
                                   cpus_per_task=spec.resources.cpus_per_task,
                                   gpus_per_task=spec.resources.gpus_per_task)
    else:
        stream = executors.run_local(todo, workers)
    try:
        for result in stream:
            tracking.log_cell(sweep, result)
            results.append(result)
            if on_progress:
                on_progress(Progress(len(results), len(todo), time.perf_counter() - start,
                                     result))
    except BaseException:
        tracking.end_sweep(sweep, failed=True)
        raise
    failed = any(r.status == "error" for r in results)
    tracking.end_sweep(sweep, failed=failed)
    table = report.tidy(tracking.search_cells(spec.name, tracking_uri))
    files = report.write_report(table, results_dir / spec.name)
    return SweepOutcome(results, len(cells) - len(todo), sweep.parent_run_id, files, table)
