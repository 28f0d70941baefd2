"""Fit one cell: ``fit(cell) -> FitResult``.  Pure: no logging, no files, no printing.

The loop is ``tfp.vi.fit_surrogate_posterior`` compiled with XLA (``jit_compile=True``) where the
surrogate compiles, else in graph mode; the mode that ran is recorded in ``FitResult.fit_mode``.
The steps are run in equal *chunks* of one compiled loop each, so that

* the first chunk's extra time is the compilation (``compile_seconds``) and the rest gives the
  steady-state speed (``fit_seconds``, ``steps_per_second``) without fitting twice;
* a loss that becomes NaN/Inf stops the fit at the end of its chunk (``status = diverged``);
* the loss trace has wall-clock times for loss-against-time figures.
"""

from __future__ import annotations

import dataclasses
import math
import resource
import sys
import time
import traceback as traceback_module
from typing import Any

import numpy as np

from harness.spec import Cell

# Aim for about this many chunks per fit: enough for a steady-state speed estimate and timely
# divergence detection, few enough that per-call overhead (≈0.1 ms) stays negligible.
_TARGET_CHUNKS = 10


@dataclasses.dataclass(frozen=True)
class FitResult:
    """The outcome of fitting one cell: pure data, picklable, written by the driver only.

    Attributes:
      cell: The cell that was fitted.
      status: ``ok``, ``diverged`` or ``error``.
      reason: Why the status is not ``ok`` (empty when ok).
      losses: Per-step loss (−ELBO estimate), ``[num_steps_run]``.
      loss_seconds: Fit wall-clock seconds (compilation excluded) at the end of each step.
      compile_seconds: Tracing + XLA compilation time.
      fit_seconds: Wall-clock time of the optimisation steps, compilation excluded.
      num_steps_run: Steps actually run.
      metrics: Metric name → float; undefined metrics are absent.
      draws: Up to ``num_draws_kept`` posterior draws ``[n, d]`` for figures (or None).
      fit_mode: ``xla`` or ``graph`` (or the baseline's own mode).
      fallback_reason: Why XLA was not used, when it was requested.
      device: Where TensorFlow ran (``CPU`` or the GPU's name).
      started_at: Unix time (s) at which the cell started.
      traceback: Formatted traceback for ``status = error``.
    """

    cell: Cell
    status: str
    reason: str = ""
    losses: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    loss_seconds: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    compile_seconds: float = float("nan")
    fit_seconds: float = float("nan")
    num_steps_run: int = 0
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    draws: np.ndarray | None = None
    fit_mode: str = ""
    fallback_reason: str = ""
    device: str = ""
    started_at: float = 0.0
    traceback: str = ""


def fit(cell: Cell) -> FitResult:
    """Fit one cell and compute its metrics; exceptions become ``status = error`` results."""
    started = time.time()
    try:
        return _fit(cell, started)
    except Exception as e:  # noqa: BLE001 - a failing cell is a result, the sweep goes on
        return FitResult(cell=cell, status="error", reason=f"{type(e).__name__}: {e}",
                         started_at=started, traceback=traceback_module.format_exc(),
                         device=_device())


def _device() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"GPU:{gpus[0].name}" if gpus else "CPU"


def chunk_plan(num_steps: int) -> list[int]:
    """Split ``num_steps`` into chunks of one size (plus at most one remainder chunk)."""
    size = max(1, math.ceil(num_steps / _TARGET_CHUNKS))
    chunks = [size] * (num_steps // size)
    if num_steps % size:
        chunks.append(num_steps % size)
    return chunks


def _fit(cell: Cell, started: float) -> FitResult:
    import tensorflow as tf
    import tensorflow_probability as tfp

    from harness.families import FAMILIES
    from harness.models import build_model

    model = build_model(cell.model, **dict(cell.model_args))
    family = FAMILIES[cell.family]
    init_seed, fit_seed, eval_seed = tfp.random.split_seed(
        tf.constant(cell.stateless_seed, tf.int32), n=3)
    chunks = chunk_plan(cell.fit.num_steps)
    chunk_seeds = tfp.random.split_seed(fit_seed, n=len(chunks))

    modes = ["xla", "graph"] if cell.fit.jit_compile else ["graph"]
    fallback_reason = ""
    for mode in modes:
        surrogate_posterior = family.build(model, seed=init_seed, **dict(cell.hyperparameters))
        runners = _chunk_runners(model, surrogate_posterior, cell, set(chunks), mode == "xla")
        try:
            t0 = time.perf_counter()
            first = runners[chunks[0]](chunk_seeds[0]).numpy()
            first_seconds = time.perf_counter() - t0
            break
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError,
                tf.errors.InternalError, NotImplementedError, TypeError, ValueError) as e:
            if mode != "xla":
                raise
            fallback_reason = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
    losses = [first]
    chunk_seconds = [first_seconds]
    status, reason = "ok", ""
    if not np.all(np.isfinite(first)):
        status, reason = "diverged", _divergence_reason(losses)
    else:
        for size, seed in zip(chunks[1:], chunk_seeds[1:], strict=True):
            t0 = time.perf_counter()
            chunk_losses = runners[size](seed).numpy()
            chunk_seconds.append(time.perf_counter() - t0)
            losses.append(chunk_losses)
            if not np.all(np.isfinite(chunk_losses)):
                status, reason = "diverged", _divergence_reason(losses)
                break

    # Steady-state seconds per step from the chunks after the first; the first chunk's excess
    # over that is compilation.  A single-chunk fit cannot separate the two: all of it counts
    # as fit time and compile_seconds is undefined (NaN, not logged).
    steps = np.array([len(c) for c in losses])
    if len(losses) > 1:
        per_step = float(np.sum(chunk_seconds[1:]) / np.sum(steps[1:]))
        compile_seconds = max(0.0, chunk_seconds[0] - per_step * steps[0])
    else:
        per_step = chunk_seconds[0] / steps[0]
        compile_seconds = float("nan")
    first_fit = chunk_seconds[0] - (0.0 if math.isnan(compile_seconds) else compile_seconds)
    per_chunk_fit = np.array([first_fit] + chunk_seconds[1:])
    loss_seconds = np.concatenate([
        start + (np.arange(1, n + 1) / n) * dur
        for start, n, dur in zip(np.cumsum(per_chunk_fit) - per_chunk_fit, steps, per_chunk_fit,
                                 strict=True)])
    losses = np.concatenate(losses).astype(np.float64)
    fit_seconds = float(per_chunk_fit.sum())
    num_steps_run = int(losses.size)

    metrics: dict[str, float] = {
        "fit_seconds": fit_seconds,
        "steps_per_second": num_steps_run / fit_seconds if fit_seconds > 0 else float("nan"),
        "num_steps_run": float(num_steps_run),
        "num_gradient_evaluations": float(num_steps_run * cell.fit.sample_size),
    }
    if not math.isnan(compile_seconds):
        metrics["compile_seconds"] = compile_seconds
    draws = None
    if status == "ok":
        converge = seconds_to_converge(losses, loss_seconds)
        if not math.isnan(converge):
            metrics["seconds_to_converge"] = converge
        draws, log_weights = _evaluate(model, surrogate_posterior, cell, eval_seed)
        if not np.all(np.isfinite(draws)) or not np.all(np.isfinite(log_weights)):
            status = "diverged"
            reason = "surrogate produced non-finite draws or log densities after fitting"
            draws = None
        else:
            from harness.metrics.summary import posterior_metrics

            metrics.update(posterior_metrics(model, draws, log_weights,
                                             gaussian=_gaussian_moments(surrogate_posterior)))
            draws = draws[: cell.fit.num_draws_kept].astype(np.float32)
    metrics["peak_memory_mb"] = _peak_memory_mb()
    return FitResult(
        cell=cell, status=status, reason=reason, losses=losses, loss_seconds=loss_seconds,
        compile_seconds=compile_seconds, fit_seconds=fit_seconds, num_steps_run=num_steps_run,
        metrics={k: float(v) for k, v in metrics.items() if np.isfinite(v)}, draws=draws,
        fit_mode=mode, fallback_reason=fallback_reason, device=_device(), started_at=started)


def _chunk_runners(model, surrogate_posterior, cell: Cell, sizes: set[int], jit: bool):
    """One compiled ``seed -> losses`` function per chunk size, sharing one optimizer."""
    import tensorflow as tf
    import tensorflow_probability as tfp
    import tf_keras

    optimizer = tf_keras.optimizers.Adam(learning_rate=cell.fit.learning_rate)
    variables = surrogate_posterior.trainable_variables
    # Create the optimizer's slot variables now, outside any compiled function.
    optimizer.build(variables)

    def make(num_steps):
        @tf.function(jit_compile=jit, autograph=False)
        def run(seed):
            return tfp.vi.fit_surrogate_posterior(
                model.unnormalized_log_prob, surrogate_posterior, optimizer,
                num_steps=num_steps, sample_size=cell.fit.sample_size, seed=seed,
                trainable_variables=variables)
        return run

    return {size: make(size) for size in sizes}


def _evaluate(model, surrogate_posterior, cell: Cell, seed):
    """Fresh draws from q with ``log p̃(z) − log q(z)`` for each (one batched call)."""
    # Eager on purpose: one call per cell, and a fresh tf.function per cell would retrace.
    z, log_q = surrogate_posterior.experimental_sample_and_log_prob(
        cell.fit.elbo_sample_size, seed=seed)
    log_weights = model.unnormalized_log_prob(z) - log_q
    return z.numpy().astype(np.float64), log_weights.numpy().astype(np.float64)


def _gaussian_moments(surrogate_posterior):
    """(mean, covariance) of q when q is exactly Gaussian on the model's own scale, else None."""
    import tensorflow_probability as tfp

    tfd, tfb = tfp.distributions, tfp.bijectors
    if (isinstance(surrogate_posterior, tfd.TransformedDistribution)
            and isinstance(surrogate_posterior.bijector, tfb.Identity)
            and isinstance(surrogate_posterior.distribution, tfd.MultivariateNormalLinearOperator)):
        base = surrogate_posterior.distribution
        return (np.asarray(base.mean(), np.float64), np.asarray(base.covariance(), np.float64))
    return None


def _divergence_reason(chunks: list[np.ndarray]) -> str:
    losses = np.concatenate(chunks)
    step = int(np.argmax(~np.isfinite(losses)))
    return f"loss became {losses[step]} at step {step}"


def seconds_to_converge(losses: np.ndarray, loss_seconds: np.ndarray,
                        tolerance: float = 1.0) -> float:
    """First fit time after which the smoothed loss stays within ``tolerance`` nats of its
    final value.  Smoothing: moving average over 5 % of the steps (at least 1)."""
    n = losses.size
    if n == 0:
        return float("nan")
    window = max(1, n // 20)
    smoothed = np.convolve(losses, np.ones(window) / window, mode="valid")
    times = loss_seconds[window - 1:]
    outside = np.abs(smoothed - smoothed[-1]) > tolerance
    if not outside.any():
        return float(times[0])
    last_outside = int(np.nonzero(outside)[0][-1])
    return float(times[min(last_outside + 1, times.size - 1)])


def _peak_memory_mb() -> float:
    """Peak resident memory of this process so far, in MiB (ru_maxrss: KiB on Linux)."""
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def describe(result: FitResult) -> dict[str, Any]:
    """Flat summary of a result (for progress lines and tests)."""
    return {"cell": result.cell.run_name, "status": result.status, **result.metrics}
