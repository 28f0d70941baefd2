"""Runtime metrics of a fit: speed, work done and memory (the convergence time is the
convergence rule's, :mod:`harness.convergence`).

Pure functions of the loss trace and the timings that :mod:`harness.fit` measures, except
:func:`peak_memory_mb`, which reads the operating system's counter for this process.
"""

from __future__ import annotations

import math
import resource
import sys


def steps_per_second(num_steps_run: int, fit_seconds: float) -> float:
    """Steady-state optimisation speed; NaN when no time was measured."""
    if not fit_seconds > 0 or not math.isfinite(fit_seconds):
        return float("nan")
    return num_steps_run / fit_seconds


def num_gradient_evaluations(
    num_steps_run: int, sample_size: int, importance_sample_size: int = 1
) -> float:
    """Evaluations of the target's log density and its gradient during the fit.

    Each step of ``tfp.vi.fit_surrogate_posterior`` draws ``sample_size`` particles, each of
    ``importance_sample_size`` draws (the IW bound of that K), so it evaluates
    ``∇ log p̃`` ``sample_size × importance_sample_size`` times.
    """
    return float(num_steps_run) * sample_size * importance_sample_size


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far, in MiB (``getrusage`` ``ru_maxrss``).

    A process-wide high-water mark: in a worker that fits several cells it is the largest
    footprint of any cell so far (TensorFlow's runtime included), not this cell's own.
    Python-level tracers such as ``tracemalloc`` do not see TensorFlow's C++ allocations.
    """
    # ru_maxrss is in KiB on Linux and in bytes on macOS.
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
