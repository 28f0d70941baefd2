"""Fit one cell: ``fit(cell) -> FitResult``.  Pure: no logging, no files, no printing.

The loop is ``tfp.vi.fit_surrogate_posterior``'s (as :func:`minimize`, in a leaner graph),
compiled with XLA (``jit_compile=True``) where the surrogate compiles, else in graph mode; the
mode that ran is recorded in ``FitResult.fit_mode``.  One compiled call runs up to
:data:`CHUNK_STEPS` steps (a *chunk*); between chunks, on NumPy arrays:

* ``learning_rate = "auto"``: short pilot runs over :data:`PILOT_LEARNING_RATES` from the same
  start with the same noise, the best one kept (Agrawal, Sheldon and Domke, "Advances in
  black-box VI", NeurIPS 2020, choose the step size by such a search);
* the convergence rule (:mod:`harness.convergence`) lowers the learning rate after each
  stationary phase and stops the fit when lowering it no longer gains, or the budget
  ``num_steps`` is spent (``FitResult.converged`` and its reason either way);
* a loss that becomes NaN/Inf stops the fit (``status = diverged``);
* timings: the first call's excess over the steady-state speed is the compilation
  (``compile_seconds``); the rest gives ``fit_seconds`` and the loss trace's wall-clock times.

The learning rate is a variable of the optimizer, so changing it recompiles nothing.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import time
import traceback as traceback_module
from typing import Any

import numpy as np

from harness.metrics import runtime
from harness.spec import Cell

# Steps per compiled call: the convergence rule is checked between calls.  A call costs ≈0.2 ms
# of overhead; 250 steps of even the cheapest cell (≈40 µs a step) take 10 ms, so the checks
# and calls cost ≤ 2 % of a fit, and a fit overshoots its stopping point by < 250 steps.
CHUNK_STEPS = 250
# Learning rates tried by ``learning_rate = "auto"``, one chunk each.  With the default
# initialisation the parameters are whitened (of order 1), so Adam's useful rates lie in
# 0.003–0.3 whatever the model's scale.
PILOT_LEARNING_RATES = (0.3, 0.1, 0.03, 0.01, 0.003)
# ``auto`` without pilots: a budget under two steps per pilot rate (smoke tests), or a
# schedule fixed at its initial rate.  0.01 is the customary Adam rate for VI.
FALLBACK_LEARNING_RATE = 0.01


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
      diverged_step: For ``status = diverged``: the first step whose loss was not finite, or
        ``num_steps_run`` when the fit ended finite but the fitted surrogate's draws or log
        densities were not; None otherwise.
      converged: The convergence verdict (:mod:`harness.convergence` for the variational fits;
        each baseline's own criterion); None where none applies (an error).
      convergence_reason: One line: why converged, or why not.
      fit_params: Values chosen during the fit, logged as parameters (e.g.
        ``learning_rate_chosen``, ``initialization_chosen``).
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
    diverged_step: int | None = None
    converged: bool | None = None
    convergence_reason: str = ""
    fit_params: dict[str, str] = dataclasses.field(default_factory=dict)


def fit(cell: Cell, model=None) -> FitResult:
    """Fit one cell and compute its metrics; exceptions become ``status = error`` results.

    Args:
      cell: The cell to fit.
      model: The :class:`~harness.models.base.Model` to fit instead of building
        ``cell.model`` from the registry (e.g. a model on simulated data, for VSBC).  Such a
        fit neither reuses nor leaves behind a compiled loop for other cells.
    """
    started = time.time()
    try:
        return _fit(cell, started, model)
    except Exception as e:  # noqa: BLE001 - a failing cell is a result, the sweep goes on
        return FitResult(
            cell=cell,
            status="error",
            reason=f"{type(e).__name__}: {e}",
            started_at=started,
            traceback=traceback_module.format_exc(),
            device=_device(),
        )


def _device() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"GPU:{gpus[0].name}" if gpus else "CPU"


def compile_key(cell: Cell) -> str:
    """Everything that shapes a cell's compiled loop: its identity without the seed."""
    identity = cell.identity
    identity.pop("seed")
    identity.pop("experiment")
    return json.dumps(identity, sort_keys=True, default=str)


@dataclasses.dataclass
class _Compiled:
    """The compiled fitting loop of the last cell fitted in this process, for reuse."""

    key: str
    model: Any
    loop: _Loop
    evaluator: Evaluator


# One per process: the last compiled loop (cells that differ only in seed share it).
_LAST_COMPILED: _Compiled | None = None


def fit_group(cells: list[Cell]) -> list[FitResult]:
    """Fit cells that differ only in seed: as one vectorized batch when their settings ask for
    it and the family allows it (:func:`fit_replicates`), else one after another in this
    process, reusing the compiled loop (see :func:`compile_key`)."""
    from harness.families import FAMILIES

    if (
        len(cells) > 1
        and cells[0].fit.vectorize_seeds
        and len({compile_key(c) for c in cells}) == 1
        and getattr(FAMILIES.get(cells[0].family), "batchable", False)
    ):
        return fit_replicates(cells)
    return [fit(cell) for cell in cells]


def fit_replicates(cells: list[Cell]) -> list[FitResult]:
    """Fit cells that differ only in seed as one batch of independent surrogates.

    One compiled loop trains ``len(cells)`` replicates (the family's ``batch_shape``); the
    loss comes back per replicate.  Each replicate starts from the initial values its own seed
    gives in a separate fit; the optimisation noise of the batch comes from one seed derived
    from all the cells' ids.  Replicates are independent (separate variables, element-wise
    Adam), so each seed's result equals a separate fit's in distribution.  A replicate whose
    loss becomes non-finite is ``diverged`` at that step; the others go on.  Timings are the
    batch's: ``fit_seconds`` is the wall time in which every replicate was fitted.
    """
    started = time.time()
    try:
        return _fit_replicates(cells, started)
    except Exception as e:  # noqa: BLE001 - a failing batch is a result for each of its cells
        return [
            FitResult(
                cell=cell,
                status="error",
                reason=f"{type(e).__name__}: {e}",
                started_at=started,
                traceback=traceback_module.format_exc(),
                device=_device(),
            )
            for cell in cells
        ]


def _fit_replicates(cells: list[Cell], started: float) -> list[FitResult]:
    import hashlib

    import tensorflow as tf
    import tensorflow_probability as tfp

    from harness.families import FAMILIES
    from harness.models import build_model

    first_cell = cells[0]
    model = build_model(first_cell.model, **dict(first_cell.model_args))
    family = FAMILIES[first_cell.family]
    family.check(model)
    hyperparameters = dict(first_cell.hyperparameters)
    initial, initial_reason, initial_cost = _initial_for(first_cell, model, family)
    extra = {"initial": initial} if initial is not None else {}
    cell_seeds = [
        tfp.random.split_seed(tf.constant(c.stateless_seed, tf.int32), n=3) for c in cells
    ]
    digest = hashlib.sha256("".join(c.cell_id for c in cells).encode()).digest()
    batch_seed = tf.constant(
        [int.from_bytes(digest[i : i + 4], "little") >> 1 for i in (0, 4)], tf.int32
    )
    fit_seed, eval_seed = tfp.random.split_seed(batch_seed, n=2)
    singles = [family.build(model, seed=s[0], **hyperparameters, **extra) for s in cell_seeds]

    def build_batched():
        batched = family.build(
            model, seed=cell_seeds[0][0], batch_shape=(len(cells),), **hyperparameters, **extra
        )
        for k, variable in enumerate(batched.variables):
            variable.assign(tf.stack([single.variables[k] for single in singles]))
        return batched

    loop = _Loop(build_batched, model, first_cell)
    trace = _optimise(loop, first_cell, fit_seed, replicates=len(cells))

    # One evaluation of the whole batch (eager: a batch is fitted once), shared by the
    # replicates; run on first use, i.e. only when some replicate finished finite.
    evaluator = Evaluator(
        model, loop.surrogate_posterior, first_cell, replicates=len(cells), traced=False
    )
    batch_evaluation: list = []

    def evaluation(i):
        if not batch_evaluation:
            batch_evaluation.extend(evaluator(eval_seed))
        return batch_evaluation[i]

    return [
        _result(
            cell,
            model,
            functools.partial(evaluation, i),
            trace.replicate(i),
            loop,
            started,
            evaluator,
            initial_reason,
            initial_cost,
        )
        for i, cell in enumerate(cells)
    ]


def _fit(cell: Cell, started: float, model=None) -> FitResult:
    import tensorflow as tf
    import tensorflow_probability as tfp

    from harness.families import FAMILIES
    from harness.models import build_model

    global _LAST_COMPILED
    # A model passed in (not rebuilt from the registry) has no key: its loop is not shared.
    key = compile_key(cell) if model is None else None
    cached = (
        _LAST_COMPILED
        if key is not None and _LAST_COMPILED is not None and _LAST_COMPILED.key == key
        else None
    )
    if model is None:
        model = (
            cached.model if cached is not None else build_model(cell.model, **dict(cell.model_args))
        )
    family = FAMILIES[cell.family]
    if family.kind == "amortized" or getattr(model, "kind", "posterior") == "amortized":
        from harness.vae import fit_vae  # a VAE: encoder family × amortized model

        return fit_vae(cell, model, family, started)
    family.check(model)
    init_seed, fit_seed, eval_seed = tfp.random.split_seed(
        tf.constant(cell.stateless_seed, tf.int32), n=3
    )
    if family.kind != "svi":
        return _fit_baseline(cell, model, family, started, init_seed, eval_seed)
    initial, initial_reason, initial_cost = _initial_for(cell, model, family)
    extra = {"initial": initial} if initial is not None else {}

    def build():
        return family.build(model, seed=init_seed, **dict(cell.hyperparameters), **extra)

    if cell.fit.optimizer == "saa":  # L-BFGS on fixed draws: no Adam loop (harness.saa)
        from harness.saa import fit_saa

        args = (key, fit_seed, eval_seed, started, initial_reason, initial_cost)
        return fit_saa(cell, model, build, *args)
    if cached is not None:
        # Same model, family, hyperparameters and fit settings as the previous cell in this
        # process (typically another seed): reuse its compiled loop.  Re-initialising the
        # variables from this seed's fresh build and zeroing the optimizer state makes the fit
        # identical to a fresh one, without paying tracing and XLA compilation again.
        loop = cached.loop
        loop.reset(build())
        evaluator = cached.evaluator
    else:
        loop = _Loop(build, model, cell)
        # Traced once and kept with the loop when other seeds will reuse it; else eager.
        evaluator = Evaluator(model, loop.surrogate_posterior, cell, traced=key is not None)
        if key is not None:
            _LAST_COMPILED = _Compiled(key, model, loop, evaluator)
    trace = _optimise(loop, cell, fit_seed)
    return _result(
        cell,
        model,
        lambda: evaluator(eval_seed)[0],
        trace,
        loop,
        started,
        evaluator,
        initial_reason,
        initial_cost,
    )


# The initial Gaussians of the models seen in this process (one search per model, shared by
# every family, seed and fit setting: common random numbers), keyed by model identity.
_INITIAL: dict[str, Any] = {}
_INITIAL_CACHE_SIZE = 8


def _initial_for(cell: Cell, model, family) -> tuple[Any, str, tuple[float, int]]:
    """``(initial Gaussian or None, how the fit was initialised, (seconds, gradient
    evaluations) of the search))`` for ``fit.initialization``.

    The search depends on the model only (its random restarts are seeded by the model's
    identity), so every family, seed and setting of a model starts from the same Gaussian, and
    a worker searches once per model.  Each cell is charged the search's full cost, as a
    standalone fit would pay it.  When the search finds no usable Gaussian, or the family has
    no ``initial`` argument (ASVI), the uniform initialisation is used and the reason says so.
    """
    import hashlib
    import inspect

    if cell.fit.initialization != "mode":
        return None, "uniform", (0.0, 0)
    if "initial" not in inspect.signature(family.build).parameters:
        return None, f"family default ({family.name} has no mode initialisation)", (0.0, 0)
    identity = json.dumps(
        {"model": cell.model, "model_args": dict(cell.model_args)}, sort_keys=True, default=str
    )
    if identity not in _INITIAL:
        from harness.mode import initial_gaussian_of_cell

        digest = hashlib.sha256(("initial:" + identity).encode()).digest()
        seed = [int.from_bytes(digest[i : i + 4], "little") >> 1 for i in (0, 4)]
        t0 = time.perf_counter()
        found = initial_gaussian_of_cell(cell, model, seed)
        if len(_INITIAL) >= _INITIAL_CACHE_SIZE:
            _INITIAL.pop(next(iter(_INITIAL)))
        _INITIAL[identity] = (found, time.perf_counter() - t0)
    found, seconds = _INITIAL[identity]
    if found is None:
        return None, "uniform (no usable Gaussian from the mode search)", (seconds, 0)
    return found, found.reason, (seconds, found.num_gradient_evaluations)


class _Loop:
    """A surrogate with its optimizer and compiled chunk runner ``(seed, steps) -> losses``.

    The runner is compiled with XLA when the cell asks for it; the first call is the test, and
    when XLA cannot compile the step the surrogate is built afresh (its variables untouched by
    the failed call) and run in graph mode, the reason kept in ``fallback_reason``.
    """

    def __init__(self, build_surrogate, model, cell: Cell):
        self.build_surrogate = build_surrogate
        self.model = model
        self.cell = cell
        # Small budgets still get about ten calls: the first call's excess over the others is
        # the compilation, and a budget run in one call could not separate the two.
        self.size = max(1, min(CHUNK_STEPS, -(-cell.fit.num_steps // 10)))
        self.fallback_reason = ""
        self.calls = 0
        self._setup("xla" if cell.fit.jit_compile else "graph")

    def _setup(self, mode: str, surrogate_posterior=None) -> None:
        self.mode = mode
        self.surrogate_posterior = surrogate_posterior or self.build_surrogate()
        self.runner, self.optimizer = _chunk_runner(
            self.model, self.surrogate_posterior, self.cell, self.size, mode == "xla"
        )

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
        """Values of the surrogate's and the optimizer's variables (restore() takes them)."""
        return [v.numpy() for v in self._state()]

    def restore(self, values: list[np.ndarray]) -> None:
        for variable, value in zip(self._state(), values, strict=True):
            variable.assign(value)

    def _state(self):
        return list(self.surrogate_posterior.variables) + list(self.optimizer.variables)

    def reset(self, fresh_surrogate_posterior) -> None:
        """Take the initial values of a freshly built surrogate and a zeroed optimizer."""
        import tensorflow as tf

        ours, theirs = self.surrogate_posterior.variables, fresh_surrogate_posterior.variables
        if [v.shape for v in ours] != [v.shape for v in theirs]:
            raise RuntimeError("surrogate variables differ between builds of one family")
        for mine, fresh in zip(ours, theirs, strict=True):
            mine.assign(fresh)
        for variable in self.optimizer.variables:
            variable.assign(tf.zeros_like(variable))
        if isinstance(self.cell.fit.learning_rate, float):
            self.set_learning_rate(self.cell.fit.learning_rate)


@dataclasses.dataclass
class _Trace:
    """What the optimisation did: the kept loss trace and every compiled call's cost.

    Attributes:
      losses: Kept per-step losses ``[n]`` or ``[n, replicates]`` (the chosen pilot's steps,
        then the main phase).
      calls: ``(steps, seconds, kept)`` per compiled call, in order; pilots that lost are
        not kept (their steps are not in ``losses`` but their time and gradients count).
      verdicts: One :class:`harness.convergence.Verdict` per replicate (one for a single fit).
      converged_step: Step (in ``losses``) at which the rule held, per replicate, or None.
      params: Chosen values (``learning_rate_chosen``), logged as parameters.
      metrics: ``learning_rate_final``, ``num_learning_rate_decreases``, ``num_pilot_steps``.
    """

    losses: np.ndarray
    calls: list
    verdicts: list
    params: dict
    metrics: dict

    def replicate(self, i: int) -> _Trace:
        """Replicate ``i``'s own trace, ending at the chunk in which it diverged."""
        own = self.losses[:, i]
        bad = np.nonzero(~np.isfinite(own))[0]
        if bad.size:
            own = own[: (bad[0] // CHUNK_STEPS + 1) * CHUNK_STEPS]
        return _Trace(own, self.calls, [self.verdicts[i]], self.params, self.metrics)


def _optimise(loop: _Loop, cell: Cell, seed, replicates: int | None = None) -> _Trace:
    """Pilots (``learning_rate = "auto"``), then chunks until the convergence rule stops the
    fit, the budget is spent or the loss diverges (see the module docstring).

    Replicates (``[n, B]`` losses) share the learning rate; the rule runs on the loss summed
    over the replicates still finite, and each replicate's own verdict is the shared one when
    its own last window is stationary too.
    """
    import tensorflow as tf

    from harness import convergence

    settings = cell.fit
    budget = settings.num_steps
    calls: list = []
    kept: list[np.ndarray] = []
    used = 0

    def call(index: int, steps: int) -> np.ndarray:
        nonlocal used
        t0 = time.perf_counter()
        losses = loop(tf.random.experimental.stateless_fold_in(seed, index), steps)
        calls.append([steps, time.perf_counter() - t0, True])
        used += steps
        return losses

    def total(losses: np.ndarray) -> np.ndarray:
        if losses.ndim == 1:
            return losses
        alive = np.all(np.isfinite(losses), axis=0)
        return losses[:, alive].sum(axis=1) if alive.any() else np.full(len(losses), np.nan)

    params: dict[str, str] = {}
    metrics: dict[str, float] = {}
    pilots_fit = budget >= 2 * len(PILOT_LEARNING_RATES) and loop.learning_rate is not None
    if settings.learning_rate == "auto" and not pilots_fit:
        if loop.learning_rate is not None:
            loop.set_learning_rate(FALLBACK_LEARNING_RATE)
        params["learning_rate_chosen"] = f"{FALLBACK_LEARNING_RATE:g}"
    elif settings.learning_rate == "auto":
        start = loop.snapshot()
        pilot_steps = max(1, min(loop.size, budget // (len(PILOT_LEARNING_RATES) + 1)))
        pilots = []
        for rate in PILOT_LEARNING_RATES:
            loop.restore(start)
            loop.set_learning_rate(rate)
            # Index 0 for every pilot: the same Monte Carlo noise (common random numbers).
            losses = call(0, pilot_steps)
            calls[-1][2] = False
            tail = total(losses)[pilot_steps // 2 :]
            score = float(np.mean(tail)) if np.all(np.isfinite(tail)) else float("inf")
            pilots.append((score, rate, loop.snapshot(), losses, len(calls) - 1))
        best = min(pilots, key=lambda p: p[0])
        if not np.isfinite(best[0]):
            best = pilots[-1]  # every pilot diverged: the smallest rate's trace shows how
        loop.restore(best[2])
        loop.set_learning_rate(best[1])
        calls[best[4]][2] = True
        kept.append(best[3])
        params["learning_rate_chosen"] = f"{best[1]:g}"
        metrics["num_pilot_steps"] = float(pilot_steps * len(PILOT_LEARNING_RATES))
    elif loop.learning_rate is not None:
        loop.set_learning_rate(float(settings.learning_rate))
    adaptive = settings.learning_rate_schedule == "adaptive"
    # A cosine or exponential schedule is defined over the whole budget: stopping it at the
    # first stationary window would keep a noisy iterate of a still-large rate, so such a fit
    # runs its budget and the rule only gives the verdict.
    decaying = settings.learning_rate_schedule in ("cosine", "exponential")
    controller = convergence.Controller(settings.convergence_tolerance, adaptive)
    index = 1
    while used < budget and (not kept or np.all(np.isfinite(total(kept[-1])))):
        steps = min(loop.size, budget - used)
        kept.append(call(index, steps))
        index += 1
        if not np.all(np.isfinite(total(kept[-1]))):
            break
        action = controller.update(total(np.concatenate(kept)))
        if action == "decrease":
            loop.set_learning_rate(loop.learning_rate * convergence.DECREASE_FACTOR)
        elif action == "stop" and settings.stopping == "converged" and not decaying:
            break
    losses = np.concatenate(kept)
    budget_reached = used >= budget
    shared = controller.final(total(losses), budget, budget_reached)
    verdicts = [shared]
    if replicates is not None:
        verdicts = []
        for i in range(replicates):
            own = losses[:, i]
            if not np.all(np.isfinite(own)):
                verdicts.append(convergence.Verdict(False, "the loss became non-finite"))
                continue
            window = controller.window(own)
            if shared.converged and window is not None:
                found = convergence.trend(window)
                if found.upper >= settings.convergence_tolerance:
                    verdicts.append(
                        convergence.Verdict(
                            False,
                            f"the batch converged but this replicate's loss moved "
                            f"{found.drift:.2g} ± {found.standard_error:.2g} nats over its "
                            "last window",
                        )
                    )
                    continue
            verdicts.append(shared)
    if loop.learning_rate is not None:
        metrics["learning_rate_final"] = loop.learning_rate
        metrics["num_learning_rate_decreases"] = float(controller.decreases)
    metrics["num_steps_budget"] = float(budget)
    metrics["num_steps_total"] = float(used)
    return _Trace(losses, calls, verdicts, params, metrics)


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


def _timings(calls: list) -> tuple[float, float, np.ndarray]:
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


def _result(
    cell: Cell,
    model,
    evaluate,
    trace: _Trace,
    loop: _Loop,
    started: float,
    evaluator: Evaluator,
    initial_reason: str,
    initial_cost: tuple[float, int],
) -> FitResult:
    """A fitted surrogate and its loss trace → FitResult with every metric.

    ``evaluate()`` gives the fitted q's evaluation by ``evaluator`` (see :class:`Evaluator`);
    it is called only when the fit ended finite.  ``metrics_seconds`` is the evaluation's
    time plus the metrics' own; the evaluator's tracing, if any, counts as compilation.  (The
    replicates of a batch share one evaluation: each one's ``metrics_seconds`` includes all of
    it, as each one's ``fit_seconds`` is the batch's.)  The initialisation's search is part of
    the method: its seconds and gradient evaluations count in ``fit_seconds`` and
    ``num_gradient_evaluations`` (and alone as ``initialization_seconds``).

    A non-finite loss makes the cell ``diverged`` at that step: its trace stops there (the
    loop runs to the end of that chunk) and its posterior metrics are absent.
    """
    losses = np.asarray(trace.losses, np.float64)
    status, reason, diverged_step = "ok", "", None
    if not np.all(np.isfinite(losses)):
        status, reason = "diverged", _divergence_reason([losses])
        diverged_step = _divergence_step([losses])
    compile_seconds, fit_seconds, loss_seconds = _timings(trace.calls)
    loss_seconds = loss_seconds[: losses.size] + initial_cost[0]
    fit_seconds += initial_cost[0]
    num_steps_run = int(losses.size)
    total_steps = int(sum(c[0] for c in trace.calls))
    verdict = trace.verdicts[0]

    metrics: dict[str, float] = {
        **trace.metrics,
        "fit_seconds": fit_seconds,
        "steps_per_second": runtime.steps_per_second(total_steps, fit_seconds - initial_cost[0]),
        "num_steps_run": float(num_steps_run),
        "num_gradient_evaluations": runtime.num_gradient_evaluations(
            total_steps, cell.fit.sample_size, cell.fit.importance_sample_size
        )
        + initial_cost[1],
        "initialization_seconds": initial_cost[0],
        "initialization_gradient_evaluations": float(initial_cost[1]),
        "converged": float(verdict.converged),
    }
    if verdict.converged and verdict.step is not None and 0 < verdict.step <= losses.size:
        metrics["seconds_to_converge"] = float(loss_seconds[verdict.step - 1])
    mode, fallback_reason = loop.mode, loop.fallback_reason
    params = {**trace.params, "initialization_chosen": initial_reason[:250]}
    if not math.isnan(compile_seconds):
        metrics["compile_seconds"] = compile_seconds
    draws = None
    if status == "ok":
        # Imported before the clock starts: a one-off per process (SciPy, arviz-stats), not a
        # per-cell cost.
        from harness.metrics.summary import posterior_metrics

        evaluation = evaluate()
        evaluation_seconds = evaluator.seconds
        t0 = time.perf_counter()
        if not math.isnan(evaluator.compile_seconds):
            # Logged on its own too, so the fitting loop's compilation stays comparable with
            # a bare fit_surrogate_posterior call's.
            metrics["evaluation_compile_seconds"] = evaluator.compile_seconds
            if "compile_seconds" in metrics:
                metrics["compile_seconds"] += evaluator.compile_seconds
                compile_seconds += evaluator.compile_seconds
        draws, log_weights = evaluation["draws"], evaluation["log_weights"]
        if not np.all(np.isfinite(draws)) or not np.all(np.isfinite(log_weights)):
            status = "diverged"
            reason = "surrogate produced non-finite draws or log densities after fitting"
            diverged_step = num_steps_run
            draws = None
        else:
            n = cell.fit.elbo_sample_size
            metrics.update(
                posterior_metrics(
                    model,
                    draws[:n],
                    log_weights[:n],
                    gaussian=evaluation["gaussian"],
                    importance_sample_size=cell.metrics.importance_sample_size,
                    iw_log_weights=log_weights,
                    log_likelihood=evaluation["log_likelihood"],
                    kl_to_prior=evaluation["kl_to_prior"],
                )
            )
            draws = draws[: cell.fit.num_draws_kept].astype(np.float32)
        # Evaluation cost (draws, log densities and every metric), to compare with fit_seconds.
        metrics["metrics_seconds"] = evaluation_seconds + time.perf_counter() - t0
    metrics["peak_memory_mb"] = runtime.peak_memory_mb()
    return FitResult(
        cell=cell,
        status=status,
        reason=reason,
        losses=losses,
        loss_seconds=loss_seconds,
        compile_seconds=compile_seconds,
        fit_seconds=fit_seconds,
        num_steps_run=num_steps_run,
        metrics={k: float(v) for k, v in metrics.items() if np.isfinite(v)},
        draws=draws,
        fit_mode=mode,
        fallback_reason=fallback_reason,
        device=_device(),
        started_at=started,
        diverged_step=diverged_step,
        converged=verdict.converged and status == "ok",
        convergence_reason=verdict.reason if status == "ok" else reason,
        fit_params=params,
    )


def _fit_baseline(cell: Cell, model, family, started: float, init_seed, eval_seed) -> FitResult:
    """A baseline (NUTS, CAVI, Laplace) as a FitResult with the variational fits' metrics.

    A baseline with a density is evaluated exactly like a variational q (fresh draws, log
    weights, every metric); NUTS's draws have no density, so its log-weight metrics are absent.
    """
    from harness.metrics.summary import posterior_metrics

    outcome = family.build(model, seed=init_seed, **dict(cell.hyperparameters))
    num_steps_run = outcome.num_steps_run
    metrics: dict[str, float] = {
        **outcome.metrics,
        "converged": float(outcome.converged),
        "fit_seconds": outcome.fit_seconds,
        "compile_seconds": outcome.compile_seconds,
        "num_steps_run": float(num_steps_run),
        "num_gradient_evaluations": outcome.num_gradient_evaluations,
    }
    t0 = time.perf_counter()
    if outcome.surrogate_posterior is not None:
        evaluator = Evaluator(model, outcome.surrogate_posterior, cell, traced=False)
        evaluation = evaluator(eval_seed)[0]
        draws, log_weights = evaluation["draws"], evaluation["log_weights"]
        n = cell.fit.elbo_sample_size
        extra = dict(
            gaussian=evaluation["gaussian"],
            iw_log_weights=log_weights,
            log_likelihood=evaluation["log_likelihood"],
            kl_to_prior=evaluation["kl_to_prior"],
        )
        draws, log_weights = draws[:n], log_weights[:n]
    else:
        draws = np.asarray(outcome.draws, np.float64)
        log_weights = np.full(draws.shape[0], np.nan)  # no density: log-weight metrics absent
        extra = {}
    status, reason = "ok", ""
    if not np.all(np.isfinite(draws)) or (
        outcome.surrogate_posterior is not None and not np.all(np.isfinite(log_weights))
    ):
        status, reason, draws = "diverged", f"{family.name} produced non-finite draws", None
    else:
        metrics.update(
            posterior_metrics(
                model,
                draws,
                log_weights,
                importance_sample_size=cell.metrics.importance_sample_size,
                **extra,
            )
        )
        draws = draws[: cell.fit.num_draws_kept].astype(np.float32)
    metrics["metrics_seconds"] = time.perf_counter() - t0
    metrics["peak_memory_mb"] = runtime.peak_memory_mb()
    losses = np.asarray(outcome.losses, np.float64)
    return FitResult(
        cell=cell,
        status=status,
        reason=reason,
        losses=losses,
        loss_seconds=np.linspace(0.0, outcome.fit_seconds, losses.size + 1)[1:],
        compile_seconds=outcome.compile_seconds,
        fit_seconds=outcome.fit_seconds,
        num_steps_run=num_steps_run,
        metrics={k: float(v) for k, v in metrics.items() if np.isfinite(v)},
        draws=draws,
        fit_mode=outcome.mode,
        device=_device(),
        started_at=started,
        converged=outcome.converged and status == "ok",
        convergence_reason=outcome.convergence_reason if status == "ok" else reason,
    )


def _chunk_runner(model, surrogate_posterior, cell: Cell, size: int, jit: bool):
    """One compiled ``(seed, steps) -> losses [size]`` function (up to ``size`` steps a call;
    entries past ``steps`` are zero) and its optimizer.

    The number of steps is a tensor, so pilots, chunks and the budget's last partial chunk
    share one compilation; so is the learning rate (an optimizer variable).
    """
    import tensorflow as tf
    import tf_keras

    # The optimizer's iteration counter persists across chunks, so a schedule decays over the
    # whole fit (and _Loop.reset zeroes it between cells).
    optimizer = tf_keras.optimizers.Adam(learning_rate=learning_rate(cell.fit))
    variables = list(surrogate_posterior.trainable_variables)
    # Create the optimizer's slot variables now, outside any compiled function.
    optimizer.build(variables)
    loss_fn = variational_loss(model, surrogate_posterior, cell.fit)

    @tf.function(jit_compile=jit, autograph=False)
    def run(seed, steps):
        return minimize(loss_fn, steps, optimizer, variables, seed, max_steps=size)

    return run, optimizer


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


def variational_loss(model, surrogate_posterior, fit_settings):
    """``seed -> loss``: the Monte Carlo objective of one step, with the configured gradient.

    The value is −ELBO (``importance_sample_size`` = 1) or −IWAE bound (K > 1), averaged over
    ``sample_size`` independent estimates; ``gradient_estimator`` picks its gradient.
    """
    import tensorflow_probability as tfp

    estimator = tfp.vi.GradientEstimators.REPARAMETERIZATION
    stopped = None
    if fit_settings.gradient_estimator == "sticking_the_landing":
        # TFP implements sticking-the-landing (K = 1) and DReG (K > 1) as
        # DOUBLY_REPARAMETERIZED, which evaluates log q at the draws with q's parameters held
        # constant.  Its stateless API builds that copy of q from stopped parameters;
        # fit_surrogate_posterior (trainable variables) fixes the estimator to
        # REPARAMETERIZATION.  _StoppedSurrogate gives the same log-density without copying q.
        estimator = tfp.vi.GradientEstimators.DOUBLY_REPARAMETERIZED
        stopped = _StoppedSurrogate(surrogate_posterior)

    def loss_fn(seed=None):
        return tfp.vi.monte_carlo_variational_loss(
            model.unnormalized_log_prob,
            surrogate_posterior,
            sample_size=fit_settings.sample_size,
            importance_sample_size=fit_settings.importance_sample_size,
            gradient_estimator=estimator,
            stopped_surrogate_posterior=stopped,
            seed=seed,
        )

    return loss_fn


def learning_rate(fit_settings):
    """The optimizer's learning rate: a float (which the fit may change: ``adaptive`` and
    ``constant``), or a tf_keras schedule over ``num_steps``.  ``auto`` starts at the first
    pilot's rate."""
    import tf_keras

    schedules = tf_keras.optimizers.schedules
    rate, steps = fit_settings.learning_rate, fit_settings.num_steps
    if rate == "auto":
        rate = FALLBACK_LEARNING_RATE
    if fit_settings.learning_rate_schedule == "cosine":
        return schedules.CosineDecay(rate, decay_steps=steps)
    if fit_settings.learning_rate_schedule == "exponential":
        # Down to 1 % of the initial rate at the last step: enough decay to damp the
        # stochastic-gradient noise, not so much that the last steps stop moving.
        return schedules.ExponentialDecay(rate, decay_steps=steps, decay_rate=0.01)
    return rate


class _StoppedSurrogate:
    """``log_prob`` of q with its parameters held constant but differentiable in the point.

    ``log q(z) − log q(stop(z)) + stop(log q(stop(z)))`` has the value ``log q(z)``, the
    gradient ``∇_z log q(z)`` in ``z`` and no direct gradient in q's parameters: what TFP's
    doubly-reparameterized estimator asks of its ``stopped_surrogate_posterior``.  It costs two
    extra evaluations of ``log q`` per draw.
    """

    def __init__(self, surrogate_posterior):
        self.surrogate_posterior = surrogate_posterior

    def log_prob(self, z):
        import tensorflow as tf

        q = self.surrogate_posterior
        held = q.log_prob(tf.stop_gradient(z))
        return q.log_prob(z) - held + tf.stop_gradient(held)


class Evaluator:
    """Fresh draws from a fitted q and the log densities the metrics need.

    ``evaluator(seed)`` returns one dict per replicate (one, unless q has ``batch_shape
    [replicates]``) with ``draws`` ``[n, d]`` and ``log_weights`` ``log p̃(z) − log q(z)``
    ``[n]`` (float64), where ``n = iw_draws_needed(elbo_sample_size, K)`` and the first
    ``elbo_sample_size`` draws are the ELBO's; ``log_likelihood`` ``log p(x | z)`` for those
    first draws and ``kl_to_prior`` (exact ``KL(q ‖ prior)``) when the model splits into prior
    and likelihood and TFP has an analytic KL for the pair (else None); and ``gaussian``, q's
    exact ``(mean, covariance)`` when q is Gaussian on the model's scale (else None).

    With ``traced=True`` the computation is one graph-mode ``tf.function`` (not XLA: on CPU its
    random number generation is slower than the graph kernels' and compiling costs more than it
    saves), traced at the first call and kept with the compiled fitting loop, so cells that
    differ only in seed evaluate without retracing.  The first call runs twice: the first run's
    excess over the second is reported by :attr:`compile_seconds` (NaN after any other call)
    and the second run's time, :attr:`seconds` (as after every call), is the one that counts as
    metric cost.  ``traced=False`` runs eagerly, for one-off evaluations where tracing would
    cost more than it saves.
    """

    def __init__(
        self,
        model,
        surrogate_posterior,
        cell: Cell,
        *,
        replicates: int | None = None,
        traced: bool = True,
    ):
        import tensorflow as tf

        from harness.metrics.quality import iw_draws_needed

        self.model = model
        self.surrogate_posterior = surrogate_posterior
        self.replicates = replicates
        self.num_draws = iw_draws_needed(
            cell.fit.elbo_sample_size, cell.metrics.importance_sample_size
        )
        self.num_elbo_draws = cell.fit.elbo_sample_size
        self.compile_seconds = float("nan")
        self.seconds = float("nan")
        self._calls = 0
        self._run = (
            tf.function(
                self._tensors,
                input_signature=[tf.TensorSpec([2], tf.int32)],
                autograph=False,
                reduce_retracing=True,
            )
            if traced
            else self._tensors
        )
        self.traced = traced

    def __call__(self, seed) -> list[dict[str, Any]]:
        import tensorflow as tf

        seed = tf.convert_to_tensor(seed, tf.int32)
        self.compile_seconds = float("nan")
        first = None
        if self.traced and self._calls == 0:
            first = time.perf_counter()
            self._run(seed)
            first = time.perf_counter() - first
        t0 = time.perf_counter()
        out = self._split(self._run(seed))
        self.seconds = time.perf_counter() - t0
        if first is not None:
            self.compile_seconds = max(0.0, first - self.seconds)
        self._calls += 1
        return out

    def _tensors(self, seed):
        import tensorflow as tf

        q, model = self.surrogate_posterior, self.model
        z, log_q = q.experimental_sample_and_log_prob(self.num_draws, seed=seed)
        # Models take [n, d]: replicates' draws [n, B, d] are evaluated as n·B points.
        flat = tf.reshape(z, [-1, model.dimension])
        log_p = tf.reshape(model.unnormalized_log_prob(flat), tf.shape(log_q))
        out = {"draws": z, "log_weights": log_p - log_q}
        if model.log_likelihood is not None and model.prior_distribution is not None:
            kl = _kl_to_prior(q, model.prior_distribution)
            if kl is not None:
                first = tf.reshape(z[: self.num_elbo_draws], [-1, model.dimension])
                out["kl_to_prior"] = kl
                out["log_likelihood"] = tf.reshape(
                    model.log_likelihood(first), tf.shape(log_q[: self.num_elbo_draws])
                )
        moments = _gaussian_moments(q, self.replicates)
        if moments is not None:
            out["mean"], out["covariance"] = moments
        return out

    def _split(self, out) -> list[dict[str, Any]]:
        """Tensors → one float64 NumPy dict per replicate."""
        arrays = {k: np.asarray(v, np.float64) for k, v in out.items()}

        def one(i):
            def take(name, axis):
                if name not in arrays:
                    return None
                a = arrays[name]
                return a if i is None else np.take(a, i, axis=axis)

            kl = take("kl_to_prior", 0)
            mean = take("mean", 0)
            return {
                "draws": take("draws", 1),
                "log_weights": take("log_weights", 1),
                "log_likelihood": take("log_likelihood", 1),
                "kl_to_prior": None if kl is None else float(kl),
                "gaussian": None if mean is None else (mean, take("covariance", 0)),
            }

        if self.replicates is None:
            return [one(None)]
        return [one(i) for i in range(self.replicates)]


def _kl_to_prior(surrogate_posterior, prior):
    """Exact ``KL(q ‖ prior)`` (a tensor, per replicate) from TFP's registered analytic KLs,
    else None.

    A q pushed through an identity bijector is compared through its base distribution, so a
    Gaussian q and a Gaussian prior on the same space find TFP's Gaussian–Gaussian KL.
    """
    import tensorflow_probability as tfp

    tfd, tfb = tfp.distributions, tfp.bijectors
    candidates = [surrogate_posterior]
    if isinstance(surrogate_posterior, tfd.TransformedDistribution) and isinstance(
        surrogate_posterior.bijector, tfb.Identity
    ):
        candidates.append(surrogate_posterior.distribution)
    for q in candidates:
        try:
            return tfd.kl_divergence(q, prior)
        except (NotImplementedError, TypeError, ValueError):
            continue
    return None


def _gaussian_moments(surrogate_posterior, replicates: int | None = None):
    """q's ``(mean, covariance)`` tensors when q is exactly Gaussian on the model's own scale
    (with a leading replicate axis when q has ``batch_shape [replicates]``), else None."""
    import tensorflow_probability as tfp

    tfd, tfb = tfp.distributions, tfp.bijectors
    gaussians = (
        tfd.MultivariateNormalLinearOperator,
        tfd.MultivariateNormalDiagPlusLowRankCovariance,
    )
    base = surrogate_posterior
    if isinstance(base, tfd.TransformedDistribution) and isinstance(base.bijector, tfb.Identity):
        base = base.distribution
    batch = [] if replicates is None else [replicates]
    if isinstance(base, gaussians) and base.batch_shape.as_list() == batch:
        return base.mean(), base.covariance()
    return None


def _divergence_step(chunks: list[np.ndarray]) -> int:
    """Index of the first non-finite loss."""
    return int(np.argmax(~np.isfinite(np.concatenate(chunks))))


def _divergence_reason(chunks: list[np.ndarray]) -> str:
    step = _divergence_step(chunks)
    return f"loss became {np.concatenate(chunks)[step]} at step {step}"


def describe(result: FitResult) -> dict[str, Any]:
    """Flat summary of a result (for progress lines and tests)."""
    return {"cell": result.cell.run_name, "status": result.status, **result.metrics}
