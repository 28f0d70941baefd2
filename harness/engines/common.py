"""What every fitting engine shares: the compiled chunk loop with its XLA → graph fallback, the
optimizer loop body, timings from compiled calls, and the one construction of a
:class:`~harness.records.FitResult`.

An engine (:mod:`harness.engines`) turns ``(cell, model, family)`` into a ``FitResult``; each
of them runs its optimisation through :class:`CompiledLoop` (when it has one) and ends in
:func:`result` (or :func:`error_result`).
"""

from __future__ import annotations

import dataclasses
import math
import traceback as traceback_module
from collections.abc import Callable
from typing import Any

import numpy as np

from harness.convergence import Verdict
from harness.metrics import runtime
from harness.records import Cell, FitResult

# Steps per compiled call: convergence checks run between calls.  A call costs ≈0.2 ms of
# overhead; 250 steps of even the cheapest cell (≈40 µs a step) take 10 ms, so the checks and
# calls cost ≤ 2 % of a fit, and a fit overshoots its stopping point by < 250 steps.
CHUNK_STEPS = 250


def device() -> str:
    """Where TensorFlow runs: ``CPU`` or ``GPU:<name>``."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"GPU:{gpus[0].name}" if gpus else "CPU"


def xla_failures() -> tuple[type[BaseException], ...]:
    """Exceptions by which a first XLA-compiled call says the function does not compile."""
    import tensorflow as tf

    return (
        tf.errors.InvalidArgumentError,
        tf.errors.UnimplementedError,
        tf.errors.InternalError,
        NotImplementedError,
        TypeError,
        ValueError,
    )


def describe_failure(error: BaseException) -> str:
    """One line for ``harness.jit_fallback_reason``: type and first line of the message."""
    return f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"


def error_result(cell: Cell, started: float, error: BaseException) -> FitResult:
    """A cell that raised: ``status = error`` with the exception and its traceback."""
    return FitResult(
        cell=cell,
        status="error",
        reason=f"{type(error).__name__}: {error}",
        started_at=started,
        traceback=traceback_module.format_exc(),
        device=device(),
    )


def result(
    cell: Cell,
    started: float,
    *,
    status: str,
    reason: str,
    verdict: Verdict,
    metrics: dict[str, float],
    losses: np.ndarray,
    loss_seconds: np.ndarray,
    compile_seconds: float,
    fit_seconds: float,
    num_steps_run: int,
    fit_mode: str,
    draws: np.ndarray | None = None,
    fallback_reason: str = "",
    diverged_step: int | None = None,
    fit_params: dict[str, str] | None = None,
) -> FitResult:
    """The one construction of a finished cell's :class:`FitResult`.

    Adds ``peak_memory_mb``; drops undefined (non-finite) metrics; the cell is converged only
    when its status is ``ok`` (a diverged fit's reason is its divergence).
    """
    if np.shape(losses)[:1] != np.shape(loss_seconds)[:1]:
        # Each kept step has its time: the loss curve and its MLflow steps are built from both.
        raise ValueError(
            f"{cell.run_name}: {np.shape(losses)[0]} losses but "
            f"{np.shape(loss_seconds)[0]} loss times"
        )
    metrics = {**metrics, "peak_memory_mb": runtime.peak_memory_mb()}
    return FitResult(
        cell=cell,
        status=status,
        reason=reason,
        losses=np.asarray(losses, np.float64),
        loss_seconds=np.asarray(loss_seconds, np.float64),
        compile_seconds=compile_seconds,
        fit_seconds=fit_seconds,
        num_steps_run=num_steps_run,
        metrics={k: float(v) for k, v in metrics.items() if np.isfinite(v)},
        draws=draws,
        fit_mode=fit_mode,
        fallback_reason=fallback_reason,
        device=device(),
        started_at=started,
        diverged_step=diverged_step,
        converged=bool(verdict.converged) and status == "ok",
        convergence_reason=verdict.reason if status == "ok" else reason,
        fit_params=dict(fit_params or {}),
    )


# The parts of a cell's cost, in the order a standalone fit pays them; their sum is
# ``time_to_result_seconds`` (docs/metrics.md#cost-of-a-cell).
COST_PARTS = (
    "compile_seconds_standalone",
    "initialization_seconds",
    "optimization_seconds",
    "evaluation_seconds",
)


def cost_metrics(
    *,
    compile_seconds: float,
    initialization_seconds: float,
    optimization_seconds: float,
    evaluation_seconds: float | None,
) -> dict[str, float]:
    """The four parts of what a standalone fit of a cell costs, and their sum.

    ``compile_seconds`` is the compilation such a fit pays (a cell that reused a compiled loop
    is charged that loop's, as every cell is charged the whole mode search); a part not
    measured apart (NaN: a single-call fit's compilation, NUTS's) counts 0, its time being in
    another part.  ``evaluation_seconds`` is None when the fitted q was not evaluated (a
    diverged fit): the metric is then absent and counts 0 in ``time_to_result_seconds``.
    """
    values = (compile_seconds, initialization_seconds, optimization_seconds, evaluation_seconds)
    parts = {
        name: float(value) if value is not None and math.isfinite(value) else 0.0
        for name, value in zip(COST_PARTS, values, strict=True)
    }
    parts["time_to_result_seconds"] = sum(parts.values())
    if evaluation_seconds is None:
        del parts["evaluation_seconds"]
    return parts


def divergence(losses: np.ndarray) -> tuple[int, str] | None:
    """``(first non-finite step, reason)``, or None when every loss is finite."""
    losses = np.asarray(losses).reshape(-1)
    if np.all(np.isfinite(losses)):
        return None
    step = int(np.argmax(~np.isfinite(losses)))
    return step, f"loss became {losses[step]} at step {step}"


def timings(calls: list) -> tuple[float, float, np.ndarray]:
    """``(compile_seconds, fit_seconds, loss_seconds per kept step)`` from the compiled calls.

    ``calls`` holds ``(steps, seconds, kept)`` per call, in order.  Steady-state seconds per
    step come from the calls after the first; the first call's excess over that is
    compilation.  A single-call fit cannot separate the two: all of it counts as fit time and
    compile_seconds is undefined (NaN, not logged).  Every call's time counts in
    ``fit_seconds`` (pilots that lost included: the search is part of the method's cost); the
    kept steps are dated within their own call, on the clock of the whole fit.
    """
    steps = np.array([c[0] for c in calls], np.float64)
    seconds = np.array([c[1] for c in calls], np.float64)
    if len(calls) > 1 and steps[1:].sum() > 0:
        per_step = float(seconds[1:].sum() / steps[1:].sum())
        compile_seconds = max(0.0, float(seconds[0] - per_step * steps[0]))
    else:
        compile_seconds = float("nan")
    fit = seconds.copy()
    if not math.isnan(compile_seconds):
        fit[0] -= compile_seconds
    ends = np.cumsum(fit)
    loss_seconds = [
        ends[k] - fit[k] + (np.arange(1, int(steps[k]) + 1) / steps[k]) * fit[k]
        for k, call in enumerate(calls)
        if call[2]
    ]
    loss_seconds = np.concatenate(loss_seconds) if loss_seconds else np.zeros(0)
    return compile_seconds, float(fit.sum()), loss_seconds


@dataclasses.dataclass
class Trainable:
    """What a :class:`CompiledLoop` optimises, as built afresh by its ``build()``.

    Attributes:
      owner: The object the engine keeps (a surrogate posterior; an (encoder, decoder) pair).
      trainable: The variables the optimizer updates (one float dtype, the loss's).
      loss_fn: ``seed -> loss`` of one step (any batch shape: replicates).
      variables: Every variable of the state (default: ``trainable``), for snapshots and
        resets.
    """

    owner: Any
    trainable: list
    loss_fn: Callable
    variables: list | None = None

    def __post_init__(self):
        if self.variables is None:
            self.variables = list(self.trainable)


class CompiledLoop:
    """Adam on a :class:`Trainable`, as one compiled ``(seed, steps) -> losses`` runner.

    One call runs up to ``size`` steps; the number of steps is a tensor and the learning rate
    an optimizer variable, so pilots, chunks, rate changes and a budget's last partial chunk
    share one compilation.  It is compiled with XLA when asked; the first call is the test,
    and when XLA cannot compile the step the state is built afresh (untouched by the failed
    call) and run in graph mode, the reason kept in :attr:`fallback_reason`.
    """

    def __init__(self, build: Callable[[], Trainable], size: int, jit: bool, learning_rate):
        self.build = build
        self.size = size
        self.initial_learning_rate = learning_rate
        self.fallback_reason = ""
        self.calls = 0
        self._setup("xla" if jit else "graph")

    def _setup(self, mode: str) -> None:
        import tensorflow as tf
        import tf_keras

        self.mode = mode
        self.state = self.build()
        # The optimizer's iteration counter persists across calls, so a schedule decays over
        # the whole fit (reset() zeroes it between cells).
        self.optimizer = tf_keras.optimizers.Adam(learning_rate=self.initial_learning_rate)
        variables = list(self.state.trainable)
        # The optimizer's slot variables are created now, outside any compiled function.
        self.optimizer.build(variables)
        loss_fn, optimizer, size = self.state.loss_fn, self.optimizer, self.size

        @tf.function(jit_compile=mode == "xla", autograph=False)
        def run(seed, steps):
            return minimize(loss_fn, steps, optimizer, variables, seed, max_steps=size)

        self.runner = run

    @property
    def owner(self):
        return self.state.owner

    def __call__(self, seed, num_steps: int) -> np.ndarray:
        import tensorflow as tf

        steps = tf.constant(num_steps, tf.int32)
        try:
            losses = self.runner(seed, steps).numpy()
        except xla_failures() as e:
            if self.mode != "xla" or self.calls:
                raise
            self.fallback_reason = describe_failure(e)
            self._setup("graph")
            losses = self.runner(seed, steps).numpy()
        self.calls += 1
        return losses[:num_steps]

    @property
    def learning_rate(self) -> float | None:
        """The current learning rate, or None under a schedule."""
        rate = self.optimizer.learning_rate
        return float(rate.numpy()) if hasattr(rate, "assign") else None

    def set_learning_rate(self, value: float) -> None:
        self.optimizer.learning_rate.assign(value)

    def snapshot(self) -> list[np.ndarray]:
        """Values of the state's and the optimizer's variables (restore() takes them)."""
        return [v.numpy() for v in self._variables()]

    def restore(self, values: list[np.ndarray]) -> None:
        for variable, value in zip(self._variables(), values, strict=True):
            variable.assign(value)

    def _variables(self):
        return list(self.state.variables) + list(self.optimizer.variables)

    def reset(self, fresh: Trainable) -> None:
        """Take the initial values of a freshly built state and a zeroed optimizer, at the
        initial learning rate: the next calls are those of a fresh loop, without compiling."""
        import tensorflow as tf

        ours, theirs = self.state.variables, fresh.variables
        if [v.shape for v in ours] != [v.shape for v in theirs]:
            raise RuntimeError("state variables differ between builds")
        for mine, value in zip(ours, theirs, strict=True):
            mine.assign(value)
        for variable in self.optimizer.variables:
            variable.assign(tf.zeros_like(variable))
        if isinstance(self.initial_learning_rate, float):
            self.set_learning_rate(self.initial_learning_rate)


def minimize(loss_fn, num_steps, optimizer, variables, seed, max_steps: int | None = None):
    """``num_steps`` optimizer steps on ``loss_fn(seed)``; returns the loss of every step.

    The same steps, seeds and losses as ``tfp.math.minimize`` with a stateful optimizer (and
    so as ``tfp.vi.fit_surrogate_posterior``, which is ``minimize`` of the reparameterized
    loss) — equal to the last bit, tested — in a leaner graph: ``tfp.math.minimize`` takes its
    first step outside the loop (to bootstrap convergence criteria, which the harness does not
    use) and wraps every step in a convergence ``cond``, so its graph holds the step twice.
    One copy of the step traces in about a third of the time.  ``variables`` is a non-empty
    list of one float dtype, the loss's; losses keep any batch shape of ``loss_fn`` (vectorized
    replicates).  With ``max_steps`` (a Python int), ``num_steps`` may be a tensor ≤ it: the
    losses have ``max_steps`` entries, those past ``num_steps`` zero.
    """
    import tensorflow as tf
    from tensorflow_probability.python.internal import samplers

    # tfp.math.minimize's seed stream: step 0 draws from the first half of the salted seed;
    # each later step splits the running seed into (this step's seed, the next running seed).
    init_seed, running_seed = samplers.split_seed(
        samplers.sanitize_seed(seed, salt="minimize"), n=2
    )

    def step(step_seed):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(variables)
            loss = loss_fn(seed=step_seed)
        gradients = tape.gradient(loss, variables)
        update = optimizer.apply_gradients(zip(gradients, variables, strict=True))
        with tf.control_dependencies([update]):
            return tf.identity(loss)

    def body(i, running, losses):
        this_seed, next_seed = samplers.split_seed(running, n=2)
        first = tf.equal(i, 0)
        loss = step(tf.where(first, init_seed, this_seed))
        return i + 1, tf.where(first, running, next_seed), losses.write(i, loss)

    size = num_steps if max_steps is None else max_steps
    losses = tf.TensorArray(variables[0].dtype, size=size)
    _, _, losses = tf.while_loop(
        lambda i, *_: i < num_steps,
        body,
        (tf.constant(0), running_seed, losses),
        maximum_iterations=size,
    )
    return losses.stack()


def learning_rate(fit_settings, fallback: float):
    """The optimizer's learning rate: a float (which the fit may change: ``adaptive`` and
    ``constant``), or a tf_keras schedule over ``num_steps``.  ``auto`` starts at
    ``fallback``."""
    import tf_keras

    schedules = tf_keras.optimizers.schedules
    rate, steps = fit_settings.learning_rate, fit_settings.num_steps
    if rate == "auto":
        rate = fallback
    if fit_settings.learning_rate_schedule == "cosine":
        return schedules.CosineDecay(rate, decay_steps=steps)
    if fit_settings.learning_rate_schedule == "exponential":
        # Down to 1 % of the initial rate at the last step: enough decay to damp the
        # stochastic-gradient noise, not so much that the last steps stop moving.
        return schedules.ExponentialDecay(rate, decay_steps=steps, decay_rate=0.01)
    return rate
