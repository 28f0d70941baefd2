"""Runtime metrics of a fit: speed, convergence time, work done and memory.

Pure functions of the loss trace and the timings that :mod:`harness.fit` measures, except
:func:`peak_memory_mb`, which reads the operating system's counter for this process.
"""

from __future__ import annotations

import math
import resource
import sys

import numpy as np

# Moving-average window of the loss for seconds_to_converge, as a fraction of the steps: 5 %
# smooths the per-step Monte Carlo noise of the loss (sample_size particles) without hiding a
# trend that lasts a tenth of the fit.
CONVERGENCE_WINDOW_FRACTION = 0.05


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


def seconds_to_converge(
    losses: np.ndarray, loss_seconds: np.ndarray, tolerance: float = 1.0
) -> float:
    """First fit time after which the smoothed loss stays within ``tolerance`` nats of its
    final value.

    The loss is smoothed by a moving average over :data:`CONVERGENCE_WINDOW_FRACTION` of the
    steps (at least one step); each smoothed value is dated at the last step of its window.

    Args:
      losses: Per-step loss ``[n]``.
      loss_seconds: Fit seconds at the end of each step ``[n]`` (non-decreasing).
      tolerance: Allowed distance (nats) from the final smoothed loss.

    Returns:
      Seconds; NaN when the trace is empty or not finite.
    """
    losses = np.asarray(losses, dtype=np.float64)
    loss_seconds = np.asarray(loss_seconds, dtype=np.float64)
    n = losses.size
    if n == 0 or not np.all(np.isfinite(losses)) or loss_seconds.shape != losses.shape:
        return float("nan")
    window = max(1, int(n * CONVERGENCE_WINDOW_FRACTION))
    smoothed = np.convolve(losses, np.ones(window) / window, mode="valid")
    times = loss_seconds[window - 1 :]
    outside = np.abs(smoothed - smoothed[-1]) > tolerance
    if not outside.any():
        return float(times[0])
    last_outside = int(np.nonzero(outside)[0][-1])
    return float(times[last_outside + 1])


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far, in MiB (``getrusage`` ``ru_maxrss``).

    A process-wide high-water mark: in a worker that fits several cells it is the largest
    footprint of any cell so far (TensorFlow's runtime included), not this cell's own.
    Python-level tracers such as ``tracemalloc`` do not see TensorFlow's C++ allocations.
    """
    # ru_maxrss is in KiB on Linux and in bytes on macOS.
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
