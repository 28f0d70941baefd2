"""Executors: run cells and stream ``FitResult``s back to the driver as they finish.

Workers never touch MLflow; they return results, and the driver alone writes them.
TensorFlow is not fork-safe, so worker processes are started with ``spawn``, set their thread
counts before TensorFlow runs its first op, and import TensorFlow inside the worker.
"""

from __future__ import annotations

import concurrent.futures as futures
import multiprocessing
import os
from collections.abc import Iterator, Sequence

from harness.fit import FitResult, fit
from harness.spec import Cell


def configure_tensorflow(threads: int | None) -> None:
    """Set TensorFlow's thread pools (before its first op) and make ops deterministic."""
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    tf.config.experimental.enable_op_determinism()


def _worker_init(threads: int) -> None:
    # Keep TensorFlow's C++ logging to errors in workers, so the progress stream stays readable.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    configure_tensorflow(threads)


def default_workers() -> int:
    return os.cpu_count() or 1


def run_serial(cells: Sequence[Cell]) -> Iterator[FitResult]:
    """Fit cells one after another in this process (for debugging and small tests)."""
    for cell in cells:
        yield fit(cell)


def run_local(cells: Sequence[Cell], workers: int | None = None) -> Iterator[FitResult]:
    """Fit cells in a pool of ``workers`` spawned processes, yielding results as they finish.

    Each worker gets ``cores // workers`` TensorFlow threads (at least 1), so the pool never
    oversubscribes the machine; workers are reused across cells, so TensorFlow is imported once
    per worker.  A worker that dies (e.g. killed by the OS) makes its cell an ``error`` result and
    the pool is restarted for the cells that remain.
    """
    workers = max(1, min(workers or default_workers(), len(cells) or 1))
    threads = max(1, default_workers() // workers)
    pending = list(cells)
    while pending:
        context = multiprocessing.get_context("spawn")
        with futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init,
                                         initargs=(threads,)) as pool:
            submitted = {pool.submit(fit, cell): cell for cell in pending}
            broken = []
            for future in futures.as_completed(submitted):
                cell = submitted[future]
                try:
                    result = future.result()
                except futures.process.BrokenProcessPool:
                    broken.append(cell)
                    continue
                pending.remove(cell)
                yield result
        if broken:
            # A dead worker breaks every unfinished future of the pool; run those cells one at a
            # time so the one that kills its process is identified and the others still finish.
            for cell in broken:
                yield from _run_isolated(cell, threads)
                pending.remove(cell)


def _run_isolated(cell: Cell, threads: int) -> Iterator[FitResult]:
    context = multiprocessing.get_context("spawn")
    with futures.ProcessPoolExecutor(1, mp_context=context, initializer=_worker_init,
                                     initargs=(threads,)) as pool:
        try:
            yield pool.submit(fit, cell).result()
        except futures.process.BrokenProcessPool as e:
            yield FitResult(cell=cell, status="error",
                            reason=f"worker process died while fitting this cell ({e})")
