"""Executors: run cells and stream ``FitResult``s back to the driver as they finish.

Workers never touch MLflow; they return results, and the driver alone writes them.
TensorFlow is not fork-safe, so worker processes are started with ``spawn``, set their thread
counts before TensorFlow runs its first op, and import TensorFlow inside the worker.
"""

from __future__ import annotations

import atexit
import concurrent.futures as futures
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence

from harness.fit import fit, fit_group
from harness.records import Cell, FitResult


def configure_tensorflow(threads: int | None) -> None:
    """Set TensorFlow's inter-op threads (before its first op), make ops deterministic, and turn
    TensorFloat-32 off: on Ampere-or-newer GPUs TF32 matmuls keep only 10 mantissa bits, which
    visibly biases full-rank scales and flow Jacobians; on CPU it has no effect."""
    import tensorflow as tf

    if threads:
        # Independent ops in parallel: the threads share the cores, never an op's arithmetic
        # (intra-op threads stay at TF_NUM_INTRAOP_THREADS, 1: see harness/__init__.py).
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    tf.config.experimental.enable_op_determinism()
    tf.config.experimental.enable_tensor_float_32_execution(False)


def _worker_init(threads: int) -> None:
    # Quiet library logs as the driver does (--verbose is inherited through the environment),
    # so the progress stream stays readable.
    from harness import logs

    logs.configure()
    _exit_with_parent()
    configure_tensorflow(threads)


def _pool_worker_init(threads: int) -> None:
    """Initializer of the local pool's workers: :func:`_worker_init`, and an exit handler
    registered before TensorFlow's own, so that it runs after them: a worker that is shut down
    skips the ~1.7 s of module finalization of an interpreter with TensorFlow (it has returned
    all its results; the pool's close waits for it).  Not for Ray's workers: Ray's own exit
    handlers, registered earlier, must run."""
    atexit.register(os._exit, 0)
    _worker_init(threads)


# How often a worker checks that its driver is alive (s): an orphan stops within this time.
_PARENT_CHECK_SECONDS = 1.0


def _exit_with_parent() -> None:
    """Exit this worker as soon as its driver is gone (e.g. ``kill -9`` of the driver).

    Without this, workers of a killed driver would finish their whole task (possibly many
    cells) for a driver that can no longer log them.
    """
    # The driver's pid as multiprocessing recorded it at spawn time, so a driver that died
    # before this initializer ran is noticed too (Ray workers: the current parent).
    parent_process = multiprocessing.parent_process()
    parent = parent_process.pid if parent_process is not None else os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(_PARENT_CHECK_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def default_workers() -> int:
    return os.cpu_count() or 1


# ``claim(group) -> the cells of the group this driver may fit`` (see harness.sweep): called
# right before a group is fitted, so that several drivers of one experiment share its cells.
Claim = Callable[[list[Cell]], list[Cell]]


def run_serial(cells: Sequence[Cell], claim: Claim | None = None) -> Iterator[FitResult]:
    """Fit cells in this process (for debugging and small tests), grouped as the pool groups
    them (:func:`group_cells`, one task per group) and each group fitted by
    :func:`harness.fit.fit_group`, so ``vectorize_seeds`` and compiled-loop reuse behave as in
    a pool."""
    configure_tensorflow(None)
    for group in group_cells(cells, 1):
        mine = claim(group) if claim is not None else group
        if mine:
            yield from fit_group(list(mine))


def group_cells(cells: Sequence[Cell], workers: int) -> list[list[Cell]]:
    """Group cells that differ only in seed (they share a compiled loop in a worker), then
    split the largest groups until there are at least ``workers`` tasks, so no core idles."""
    groups: dict[str, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(cell.compile_key, []).append(cell)
    tasks = list(groups.values())
    # Vectorized groups stay whole: their results depend on which seeds share the batch.
    while len(tasks) < workers and any(len(t) > 1 and not t[0].fit.vectorize_seeds for t in tasks):
        largest = max((t for t in tasks if not t[0].fit.vectorize_seeds), key=len)
        tasks.remove(largest)
        half = len(largest) // 2
        tasks += [largest[:half], largest[half:]]
    return tasks


def pool_size(workers: int | None, num_cells: int) -> int:
    """Workers for ``num_cells`` cells: ``workers`` (default: one per core), no more than the
    cells, at least 1."""
    return max(1, min(workers or default_workers(), num_cells or 1))


def _ready() -> None:
    """A no-op task: returns once its worker has started (TensorFlow imported)."""


# Bounds on a worker's memory (TensorFlow keeps every traced and compiled function of a process,
# ~20 MB per compiled group): a worker is replaced after this many groups, or as soon as its
# resident memory passes the ceiling.  Replacing one costs a TensorFlow import (a few seconds)
# and changes no result: a cell's fit depends only on the cell.
MAX_GROUPS_PER_WORKER = 50
MEMORY_CEILING_MB = 4096.0


def resident_memory_mb(pid: int) -> float:
    """Current resident memory of a process (``/proc``; 0 where that cannot be read)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class LocalPool:
    """A pool of ``workers`` spawned processes, started at once.

    Starting it before the driver's own set-up (MLflow import and store, spec checks) lets the
    workers import TensorFlow meanwhile instead of afterwards.  Each worker gets
    ``cores // workers`` TensorFlow threads (at least 1), so the pool never oversubscribes the
    machine; workers are reused across cells, so TensorFlow is imported once per worker.  A
    worker is replaced after ``max_groups_per_worker`` groups of cells (compiled loops), and
    the pool's workers are replaced (their running groups finish first) once one of them holds
    more than ``memory_ceiling_mb`` of resident memory after a group.  Use as a context
    manager, or :meth:`close` it.
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        max_groups_per_worker: int | None = MAX_GROUPS_PER_WORKER,
        memory_ceiling_mb: float | None = MEMORY_CEILING_MB,
    ):
        self.workers = max(1, workers or default_workers())
        self.threads = max(1, default_workers() // self.workers)
        self.max_groups_per_worker = max_groups_per_worker
        self.memory_ceiling_mb = memory_ceiling_mb
        self.replacements = 0  # pools retired for memory
        self._retired: list[futures.ProcessPoolExecutor] = []
        self._pool = self._start()

    def _start(self) -> futures.ProcessPoolExecutor:
        pool = futures.ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_pool_worker_init,
            initargs=(self.threads,),
            max_tasks_per_child=self.max_groups_per_worker,
        )
        # A spawn pool starts a process per submitted task while it has fewer than `workers`:
        # one no-op each starts them all now.
        for _ in range(self.workers):
            pool.submit(_ready)
        return pool

    def _over_ceiling(self) -> bool:
        if self.memory_ceiling_mb is None:
            return False
        processes = getattr(self._pool, "_processes", None) or {}
        return any(resident_memory_mb(pid) > self.memory_ceiling_mb for pid in list(processes))

    def run(self, cells: Sequence[Cell], claim: Claim | None = None) -> Iterator[FitResult]:
        """Fit cells in the pool, yielding results as they finish (see :func:`run_local`).

        Groups are submitted as workers free up (one queued ahead per worker), each claimed
        with ``claim`` right before, so that drivers sharing an experiment share its cells.
        """
        broken: list[Cell] = []
        waiting = iter(group_cells(cells, self.workers))
        submitted: dict[futures.Future, list[Cell]] = {}

        def submit_next() -> None:
            for group in waiting:
                mine = claim(group) if claim is not None else group
                if not mine:
                    continue
                try:
                    submitted[self._pool.submit(fit_group, mine)] = mine
                except (futures.process.BrokenProcessPool, RuntimeError):
                    broken.extend(mine)  # the pool died: fitted one at a time below
                    continue
                return

        for _ in range(2 * self.workers):
            submit_next()
        while submitted:
            done, _ = futures.wait(submitted, return_when=futures.FIRST_COMPLETED)
            for future in done:
                group = submitted.pop(future)
                try:
                    results = future.result()
                except futures.process.BrokenProcessPool:
                    broken.extend(group)
                    continue
                yield from results
                if self._over_ceiling():
                    # New work goes to fresh workers; the old ones finish what they hold.
                    self._retired.append(self._pool)
                    self._pool.shutdown(wait=False)
                    self._pool = self._start()
                    self.replacements += 1
                submit_next()
        # A dead worker breaks every unfinished future of the pool (and the pool: groups not
        # submitted yet join them); run those cells one at a time so the one that kills its
        # process is identified and the others still finish.
        for group in waiting:
            broken.extend(claim(group) if claim is not None else group)
        yield from _run_isolated(broken, self.threads)

    def close(self, abort: bool = False) -> None:
        """Shut the pool down once its running tasks are done; with ``abort``, kill the workers
        first (nothing of theirs is wanted: bad input, an exception in the driver)."""
        for pool in [*self._retired, self._pool]:
            if abort:
                # ProcessPoolExecutor has no public way to stop its workers before Python 3.14.
                for process in list((getattr(pool, "_processes", None) or {}).values()):
                    process.kill()
            pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> LocalPool:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(abort=exc_type is not None)


def run_local(
    cells: Sequence[Cell],
    workers: int | None = None,
    pool: LocalPool | None = None,
    claim: Claim | None = None,
) -> Iterator[FitResult]:
    """Fit cells in a pool of ``workers`` spawned processes, yielding results as they finish.

    Each worker gets ``cores // workers`` TensorFlow threads (at least 1), so the pool never
    oversubscribes the machine; workers are reused across cells, so TensorFlow is imported once
    per worker.  Cells that differ only in seed go to one worker as one task and share its
    compiled loop (:func:`group_cells`).  A worker that dies (e.g. killed by the OS) makes its
    cell an ``error`` result; the cells it took down with it are fitted again, one at a time.
    ``pool``: an already started :class:`LocalPool` to use (and leave open) instead.
    ``claim``: see :meth:`LocalPool.run`.
    """
    if pool is not None:
        yield from pool.run(cells, claim)
        return
    with LocalPool(pool_size(workers, len(cells))) as own:
        yield from own.run(cells, claim)


def _ray_fit(cells: list[Cell], threads: int) -> list[FitResult]:
    """Ray task body: configure TensorFlow once per worker process, then fit the group."""
    global _RAY_WORKER_CONFIGURED
    if not _RAY_WORKER_CONFIGURED:
        _worker_init(threads)
        _RAY_WORKER_CONFIGURED = True
    return fit_group(cells)


_RAY_WORKER_CONFIGURED = False


def run_ray(
    cells: Sequence[Cell],
    *,
    address: str | None = None,
    cpus_per_task: float = 1,
    gpus_per_task: float = 0,
    claim: Claim | None = None,
) -> Iterator[FitResult]:
    """Fit cells as Ray tasks, yielding results as they finish.

    Cells that differ only in seed form one task (:func:`group_cells`).  Connects to the Ray
    cluster at ``address`` (``"auto"`` or ``host:port``), or starts a local
    instance when ``address`` is None.  Each task asks for ``cpus_per_task`` CPUs and
    ``gpus_per_task`` GPUs; TensorFlow in a task uses that many threads.  Tasks are not retried:
    a task whose worker dies becomes that cell's ``error`` result and the others go on.  Only
    this driver writes to MLflow.
    """
    try:
        import ray
    except ImportError:
        raise RuntimeError("the ray executor needs Ray: pip install 'vi-harness[ray]'") from None

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            address=address, include_dashboard=False, log_to_driver=False, configure_logging=False
        )
    try:
        remote = ray.remote(num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=0)(_ray_fit)
        threads = max(1, int(cpus_per_task))
        total_cpus = int(ray.cluster_resources().get("CPU", 1))
        groups = group_cells(cells, max(1, int(total_cpus // cpus_per_task)))
        # Claimed when submitted: a cluster runs them all at once.
        groups = [g for g in (claim(g) if claim is not None else g for g in groups) if g]
        pending = {remote.remote(group, threads): group for group in groups}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                group = pending.pop(ref)
                try:
                    yield from ray.get(ref)
                except ray.exceptions.RayError as e:
                    if len(group) > 1:
                        # Re-run the group's cells one per task to find the one that failed.
                        pending.update({remote.remote([cell], threads): [cell] for cell in group})
                        continue
                    yield FitResult(
                        cell=group[0],
                        status="error",
                        reason=f"Ray task failed: {type(e).__name__}: "
                        f"{str(e).splitlines()[0][:300]}",
                    )
    finally:
        if started_here:
            ray.shutdown()


def _run_isolated(cells: Sequence[Cell], threads: int) -> Iterator[FitResult]:
    """Fit cells one at a time in a one-worker pool, replaced only when a cell kills it."""
    context = multiprocessing.get_context("spawn")
    remaining = list(cells)
    while remaining:
        with futures.ProcessPoolExecutor(
            1, mp_context=context, initializer=_pool_worker_init, initargs=(threads,)
        ) as pool:
            while remaining:
                cell = remaining.pop(0)
                try:
                    yield pool.submit(fit, cell).result()
                except futures.process.BrokenProcessPool as e:
                    yield FitResult(
                        cell=cell,
                        status="error",
                        reason=f"worker process died while fitting this cell ({e})",
                    )
                    break
