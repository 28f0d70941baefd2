"""The SVI engine: stochastic-gradient variational inference of a family's surrogate q.

``run(cell, model, family, started)`` fits one cell; ``run_replicates(cells, ...)`` fits cells
that differ only in seed as one batch.  The loop is ``tfp.vi.fit_surrogate_posterior``'s
(:func:`harness.engines.common.minimize`, in a leaner graph) in a
:class:`~harness.engines.common.CompiledLoop`: XLA where the surrogate compiles, else graph mode
(``FitResult.fit_mode``).  One compiled call runs up to ``CHUNK_STEPS`` steps (a *chunk*);
between chunks, on NumPy arrays:

* ``learning_rate = "auto"``: short pilot runs over :data:`PILOT_LEARNING_RATES` from the same
  start with the same noise, the best one kept (Agrawal, Sheldon and Domke, "Advances in
  black-box VI", NeurIPS 2020, choose the step size by such a search);
* the convergence rule (:mod:`harness.convergence`) lowers the learning rate after each
  stationary phase and stops the fit when lowering it no longer gains, or the budget
  ``num_steps`` is spent (``FitResult.converged`` and its reason either way);
* a loss that becomes NaN/Inf stops the fit (``status = diverged``);
* timings: the first call's excess over the steady-state speed is the compilation
  (``compile_seconds``); the rest is ``optimization_seconds`` and dates the loss trace, from
  0 at the start of the optimisation (the mode search before it is ``initialization_seconds``);
  with the evaluation they make up ``time_to_result_seconds``
  (:func:`harness.engines.common.cost_metrics`).

The learning rate is a variable of the optimizer, so changing it recompiles nothing.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import json
import math
import time
from typing import Any

import numpy as np

from harness import convergence
from harness.engines.common import (
    CHUNK_STEPS,
    CompiledLoop,
    Trainable,
    cost_metrics,
    divergence,
    learning_rate,
    result,
    timings,
)
from harness.engines.evaluation import Evaluator, score
from harness.metrics import runtime
from harness.records import Cell, FitResult

# Learning rates tried by ``learning_rate = "auto"``, one chunk each.  With the default
# initialisation the parameters are whitened (of order 1), so Adam's useful rates lie in
# 0.003–0.3 whatever the model's scale.
PILOT_LEARNING_RATES = (0.3, 0.1, 0.03, 0.01, 0.003)
# ``auto`` without pilots: a budget under two steps per pilot rate (smoke tests), or a
# schedule fixed at its initial rate.  0.01 is the customary Adam rate for VI.
FALLBACK_LEARNING_RATE = 0.01


@dataclasses.dataclass
class _Compiled:
    """The compiled fitting loop of the last cell fitted in this process, for reuse.

    ``loop_compile_seconds`` and ``evaluation_compile_seconds`` are what compiling the loop and
    tracing the evaluation cost when they were paid (NaN until then): a cell that reuses them
    is charged them in ``compile_seconds_standalone``, as a standalone fit would pay them.
    """

    key: str
    model: Any
    loop: CompiledLoop
    evaluator: Evaluator
    loop_compile_seconds: float = float("nan")
    evaluation_compile_seconds: float = float("nan")


# One per process: the last compiled loop (cells that differ only in seed share it).
_LAST_COMPILED: _Compiled | None = None


def _loop(build_surrogate, model, cell: Cell) -> CompiledLoop:
    """A compiled loop over the surrogate ``build_surrogate()`` gives, on the cell's loss."""

    def build() -> Trainable:
        q = build_surrogate()
        return Trainable(
            q, list(q.trainable_variables), variational_loss(model, q, cell.fit), list(q.variables)
        )

    # Small budgets still get about ten calls: the first call's excess over the others is
    # the compilation, and a budget run in one call could not separate the two.
    size = max(1, min(CHUNK_STEPS, -(-cell.fit.num_steps // 10)))
    return CompiledLoop(
        build, size, cell.fit.jit_compile, learning_rate(cell.fit, FALLBACK_LEARNING_RATE)
    )


def run(cell: Cell, model, family, started: float, *, reuse: bool = True) -> FitResult:
    """Fit one cell.  With ``reuse`` (a model built from the registry), the compiled loop is
    kept for the next cell of this process that differs only in seed, and taken from the
    previous one when it did: re-initialising the variables from this seed's fresh build and
    zeroing the optimizer state makes the fit identical to a fresh one, without paying
    tracing and XLA compilation again."""
    import tensorflow as tf
    import tensorflow_probability as tfp

    global _LAST_COMPILED
    key = cell.compile_key if reuse else None
    cached = (
        _LAST_COMPILED
        if key is not None
        and _LAST_COMPILED is not None
        and _LAST_COMPILED.key == key
        and _LAST_COMPILED.model is model
        else None
    )
    family.check(model)
    init_seed, fit_seed, eval_seed = tfp.random.split_seed(
        tf.constant(cell.stateless_seed, tf.int32), n=3
    )
    initial, initial_reason, initial_cost = _initial_for(cell, model, family)
    extra = {"initial": initial} if initial is not None else {}

    def build():
        return family.build(model, seed=init_seed, **dict(cell.hyperparameters), **extra)

    if cell.fit.optimizer == "saa":  # L-BFGS on fixed draws: no Adam loop (engines.saa)
        return _run_saa(
            cell, model, build, key, fit_seed, eval_seed, started, initial_reason, initial_cost
        )
    record = cached
    if cached is not None:
        loop = cached.loop
        q = build()
        loop.reset(Trainable(q, list(q.trainable_variables), None, list(q.variables)))
        evaluator = cached.evaluator
    else:
        loop = _loop(build, model, cell)
        # Traced once and kept with the loop when other seeds will reuse it; else eager.
        evaluator = Evaluator(model, loop.owner, cell, traced=key is not None)
        if key is not None:
            record = _LAST_COMPILED = _Compiled(key, model, loop, evaluator)
    trace = _optimise(loop, cell, fit_seed, check_horizon=family.check_horizon)
    fitted = _result(
        cell,
        lambda: evaluator(eval_seed)[0],
        model,
        trace,
        loop,
        started,
        evaluator,
        initial_reason,
        initial_cost,
        standalone_compile=(
            None
            if cached is None
            else (cached.loop_compile_seconds, cached.evaluation_compile_seconds)
        ),
    )
    if record is not None:
        # Remember what this cell paid, for the cells that will reuse the loop.
        paid = fitted.metrics.get("evaluation_compile_seconds", float("nan"))
        if cached is None:
            record.loop_compile_seconds = fitted.metrics.get("compile_seconds_standalone", 0.0) - (
                0.0 if math.isnan(paid) else paid
            )
        if math.isnan(record.evaluation_compile_seconds):
            record.evaluation_compile_seconds = paid
    return fitted


def run_replicates(cells: list[Cell], model, family, started: float) -> list[FitResult]:
    """Fit cells that differ only in seed as one batch of independent surrogates.

    One compiled loop trains ``len(cells)`` replicates (the family's ``batch_shape``); the
    loss comes back per replicate.  Each replicate starts from the initial values its own seed
    gives in a separate fit; the optimisation noise of the batch comes from one seed derived
    from all the cells' ids.  Replicates are independent (separate variables, element-wise
    Adam), so each seed's result equals a separate fit's in distribution.  A replicate whose
    loss becomes non-finite is ``diverged`` at that step; the others go on.  Timings are the
    batch's: ``fit_seconds`` is the wall time in which every replicate was fitted.
    """
    import tensorflow as tf
    import tensorflow_probability as tfp

    first_cell = cells[0]
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

    loop = _loop(build_batched, model, first_cell)
    trace = _optimise(
        loop, first_cell, fit_seed, replicates=len(cells), check_horizon=family.check_horizon
    )

    # One evaluation of the whole batch (eager: a batch is fitted once), shared by the
    # replicates; run on first use, i.e. only when some replicate finished finite.
    evaluator = Evaluator(model, loop.owner, first_cell, replicates=len(cells), traced=False)
    batch_evaluation: list = []

    def evaluation(i):
        if not batch_evaluation:
            batch_evaluation.extend(evaluator(eval_seed))
        return batch_evaluation[i]

    return [
        _result(
            cell,
            functools.partial(evaluation, i),
            model,
            trace.replicate(i),
            loop,
            started,
            evaluator,
            initial_reason,
            initial_cost,
        )
        for i, cell in enumerate(cells)
    ]


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
    initialization = cell.fit.initialization
    if initialization == "uniform":
        return None, "uniform", (0.0, 0)
    if "initial" not in inspect.signature(family.build).parameters:
        return (
            None,
            f"family default ({family.name} has no {initialization} initialisation)",
            (0.0, 0),
        )
    identity = json.dumps(
        {"model": cell.model, "model_args": dict(cell.model_args)}, sort_keys=True, default=str
    )
    key = f"{initialization}:{identity}"
    if key not in _INITIAL:
        digest = hashlib.sha256(("initial:" + identity).encode()).digest()
        seed = [int.from_bytes(digest[i : i + 4], "little") >> 1 for i in (0, 4)]
        t0 = time.perf_counter()
        if initialization == "pathfinder":
            from harness.baselines.pathfinder import initial_gaussian
            from harness.models import in_float64

            precise = in_float64(cell.model, cell.model_args, model)
            found = initial_gaussian(model, seed, precise_model=precise)
        else:
            from harness.mode import initial_gaussian_of_cell

            found = initial_gaussian_of_cell(cell, model, seed)
        if len(_INITIAL) >= _INITIAL_CACHE_SIZE:
            _INITIAL.pop(next(iter(_INITIAL)))
        _INITIAL[key] = (found, time.perf_counter() - t0)
    found, seconds = _INITIAL[key]
    if found is None:
        return None, f"uniform (no usable Gaussian from the {initialization} search)", (seconds, 0)
    return found, found.reason, (seconds, found.num_gradient_evaluations)


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


def _optimise(
    loop: CompiledLoop,
    cell: Cell,
    seed,
    replicates: int | None = None,
    check_horizon: int = 0,
) -> _Trace:
    """Pilots (``learning_rate = "auto"``), then chunks until the convergence rule stops the
    fit, the budget is spent or the loss diverges (see the module docstring).

    Replicates (``[n, B]`` losses) share the learning rate; the rule runs on the loss summed
    over the replicates still finite, and each replicate's own verdict is the shared one when
    its own last window is stationary too.
    """
    import tensorflow as tf

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
    confirmed = None
    if (
        adaptive
        and settings.stopping == "converged"
        and controller.verdict is not None
        and controller.verdict.converged
        and loop.learning_rate is not None
    ):
        # The rule held: before "converged", a tuned continuation (convergence.py).
        if settings.learning_rate == "auto":
            chosen = float(params["learning_rate_chosen"])
            peak = max(chosen, convergence.CHECK_MIN_LEARNING_RATE)
        else:
            peak = float(settings.learning_rate)
        reference = convergence.trend(controller.window(total(np.concatenate(kept))))
        confirmed, index, checks = _confirm(
            loop,
            call,
            total,
            kept,
            calls,
            remaining=lambda: budget - used,
            reference=reference,
            peak=peak,
            length=max(used, check_horizon),
            tolerance=settings.convergence_tolerance,
            index=index,
            base=controller.verdict.reason,
        )
        metrics["num_continuations"] = float(checks)
    losses = np.concatenate(kept)
    budget_reached = used >= budget
    shared = (
        confirmed
        if confirmed is not None
        else controller.final(total(losses), budget, budget_reached)
    )
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


def _confirm(
    loop: CompiledLoop,
    call,
    total,
    kept: list,
    calls: list,
    *,
    remaining,
    reference,
    peak: float,
    length: int,
    tolerance: float,
    index: int,
    base: str,
) -> tuple[convergence.Verdict, int, int]:
    """Continue a fit the rule called converged, until a continuation gains less than
    ``tolerance`` (see "The confirmation" in :mod:`harness.convergence`).

    Each continuation is a cosine cycle from ``peak`` over ``length`` steps (pieces of one
    compiled call at the rate of their midpoint), judged by the mean loss of its end against
    ``reference`` (the trend of the state it started from).  A continuation that gained is kept
    and the next one is twice as long; one that ended worse or non-finite is undone (its calls
    not kept) and retried at :data:`~harness.convergence.CHECK_BACKOFF` times the rate.  The
    budget (``remaining()`` steps) ends the checks; a confirming continuation that ended above
    its start is undone too (the fit keeps the better state): a fit whose last continuation still gained,
    or could not be run in full, is not converged.  Returns ``(verdict, next seed index,
    continuations run)``.
    """
    failed: list[str] = []
    gains: list[str] = []
    runs = 0
    while True:
        left = remaining()
        steps = min(length, left)
        if steps < 2 * convergence.MIN_WINDOW:
            done = "; ".join(gains)
            return (
                convergence.Verdict(
                    False,
                    f"{base}; then {done}, and the budget ended before a continuation of "
                    f"{length} steps could check it",
                ),
                index,
                runs,
            )
        start, first = loop.snapshot(), len(calls)
        pieces = max(2, -(-steps // loop.size))
        sizes = [steps // pieces + (k < steps % pieces) for k in range(pieces)]
        cycle = []
        for rate, size in zip(convergence.cycle_rates(peak, pieces), sizes, strict=True):
            loop.set_learning_rate(rate)
            cycle.append(call(index, size))
            index += 1
            if not np.all(np.isfinite(total(cycle[-1]))):
                break
        runs += 1
        losses = total(np.concatenate(cycle))
        end = (
            convergence.end_of_cycle(losses)
            if np.all(np.isfinite(losses)) and len(cycle) == pieces
            else convergence.Trend(float("inf"), float("inf"), float("nan"), float("inf"), 0)
        )
        found = convergence.continuation(reference, end, steps, peak)
        if found.worse(tolerance):
            loop.restore(start)
            for undone in calls[first:]:
                undone[2] = False
            failed.append(f"{found.describe()} and was undone")
            peak *= convergence.CHECK_BACKOFF
            if len(failed) >= convergence.MAX_FAILED_CHECKS:
                return (
                    convergence.Verdict(
                        True, f"{base}; checked: {'; '.join(failed)}", len(np.concatenate(kept))
                    ),
                    index,
                    runs,
                )
            continue
        if found.gain < 0 and not found.gained(tolerance):
            # No gain, and the continuation ended lower than it started: keep the better state.
            loop.restore(start)
            for undone in calls[first:]:
                undone[2] = False
        else:
            kept.extend(cycle)
        step = len(np.concatenate(kept))
        if not found.gained(tolerance):
            if steps < convergence.CHECK_MIN_FRACTION * length:
                return (
                    convergence.Verdict(
                        False,
                        f"{base}; then {'; '.join(gains + [found.describe()])}, but the budget "
                        f"cut the last continuation to {steps} of {length} steps",
                    ),
                    index,
                    runs,
                )
            done = f"continued {len(gains)}× (" + "; ".join(gains) + "), then " if gains else ""
            return (
                convergence.Verdict(
                    True,
                    f"{base}; {done}confirmed: {found.describe()} (< {tolerance:g})",
                    step,
                ),
                index,
                runs,
            )
        gains.append(found.describe())
        reference = end
        length = 2 * steps


@dataclasses.dataclass
class _CompiledSAA:
    """The objective and solver of the last SAA cell fitted in this process, for reuse by
    cells that differ only in seed."""

    key: str
    model: object
    objective: Any
    solver: Any
    compile_seconds: float = 0.0


_LAST_SAA: _CompiledSAA | None = None


def _run_saa(
    cell: Cell,
    model,
    build,
    key: str | None,
    fit_seed,
    eval_seed,
    started: float,
    initial_reason: str,
    initial_cost: tuple[float, int],
) -> FitResult:
    """Fit one cell by SAA for VI (:mod:`harness.engines.saa`): the same start, evaluation and
    result as an Adam fit; the schedule's stages replace the chunked loop.

    ``key`` is the cell's compile key, or None (a model passed in): with the previous SAA
    cell's key, its traced objective and solver are reused."""
    import types

    from harness.engines import saa

    global _LAST_SAA
    cached = _LAST_SAA if key is not None and _LAST_SAA is not None else None
    standalone_compile = None
    if cached is not None and cached.key == key and cached.model is model:
        objective, solver = cached.objective, cached.solver
        objective.reset(build())
        compile_seconds = 0.0
        # A standalone fit would trace the objective again: it is charged what that cost.
        standalone_compile = (cached.compile_seconds, float("nan"))
    else:
        objective = saa.Objective(model, build(), fit_seed)
        first = saa.first_sample_size(cell, model.dimension)
        solver = saa._Solver(objective, cell.fit.saa_tolerance, first, fit_seed)
        compile_seconds = solver.compile_seconds
        if key is not None:
            _LAST_SAA = _CompiledSAA(key, model, objective, solver, compile_seconds)
    stages, losses, calls, verdict = saa.run_schedule(cell, objective, solver, fit_seed)
    evaluations = sum(s.evaluations * s.sample_size for s in stages)
    last = stages[-1] if stages else None
    trace = _Trace(
        losses=np.asarray(losses, np.float64),
        # A first pseudo-call of 0 steps carries the compilation: timings() counts it as such;
        # each iteration's own call dates its loss.
        calls=[[0, compile_seconds, False]] + calls,
        verdicts=[verdict],
        params={"learning_rate_chosen": "none (optimizer saa: L-BFGS line searches)"},
        metrics={
            "num_steps_total": float(len(losses)),
            "num_gradient_evaluations_budget": float(saa.gradient_budget(cell)),
            "saa_num_stages": float(len(stages)),
            "saa_sample_size_final": float(last.sample_size if last else 0),
            "saa_gain_last": last.gain if len(stages) > 1 else float("nan"),
        },
    )
    evaluator = Evaluator(model, objective.surrogate_posterior, cell, traced=False)
    loop = types.SimpleNamespace(
        mode="graph", fallback_reason="", owner=objective.surrogate_posterior
    )
    fitted = _result(
        cell,
        lambda: evaluator(eval_seed)[0],
        model,
        trace,
        loop,
        started,
        evaluator,
        initial_reason,
        initial_cost,
        standalone_compile=standalone_compile,
    )
    # _result counts Adam's sample_size draws per step; an SAA step's cost is its stage's.
    metrics = dict(fitted.metrics)
    metrics["num_gradient_evaluations"] = float(evaluations + initial_cost[1])
    return dataclasses.replace(fitted, metrics=metrics)


def _result(
    cell: Cell,
    evaluate,
    model,
    trace: _Trace,
    loop: CompiledLoop,
    started: float,
    evaluator: Evaluator,
    initial_reason: str,
    initial_cost: tuple[float, int],
    standalone_compile: tuple[float, float] | None = None,
) -> FitResult:
    """A fitted surrogate and its loss trace → FitResult with every metric.

    ``evaluate()`` gives the fitted q's evaluation by ``evaluator`` (see :class:`Evaluator`);
    it is called only when the fit ended finite.  ``evaluation_seconds`` is the evaluation's
    time plus the metrics' own; the evaluator's tracing, if any, counts as compilation.  (The
    replicates of a batch share one evaluation: each one's ``evaluation_seconds`` includes all
    of it, as each one's ``fit_seconds`` is the batch's.)  The initialisation's search is part
    of the method: its seconds and gradient evaluations count in ``fit_seconds`` and
    ``num_gradient_evaluations`` (and alone as ``initialization_seconds``).  The loss trace's
    times (``loss_seconds``) start at 0 with the optimisation, after the search.

    ``standalone_compile`` is ``(loop, evaluation)`` compilation seconds paid by the cell that
    built the reused loop (NaN where not paid yet), or None for a cell that compiled its own:
    ``compile_seconds_standalone`` charges them, as a standalone fit would pay them.

    A non-finite loss makes the cell ``diverged`` at that step: its trace stops there (the
    loop runs to the end of that chunk) and its posterior metrics are absent.
    """
    losses = np.asarray(trace.losses, np.float64)
    status, reason, diverged_step = "ok", "", None
    diverged = divergence(losses)
    if diverged is not None:
        status, (diverged_step, reason) = "diverged", diverged
    compile_seconds, fit_seconds, loss_seconds = timings(trace.calls)
    optimization_seconds = fit_seconds
    # On the optimisation's own clock (0 at its start): a curve spans the optimisation, not
    # the last sliver of a clock that starts before the mode search.
    loss_seconds = loss_seconds[: losses.size]
    fit_seconds += initial_cost[0]
    loop_compile = 0.0 if math.isnan(compile_seconds) else compile_seconds
    evaluation_compile = 0.0
    num_steps_run = int(losses.size)
    total_steps = int(sum(c[0] for c in trace.calls))
    verdict = trace.verdicts[0]

    metrics: dict[str, float] = {
        **trace.metrics,
        "fit_seconds": fit_seconds,
        "steps_per_second": runtime.steps_per_second(total_steps, optimization_seconds),
        "num_steps_run": float(num_steps_run),
        # A surrogate drawing several particles per estimate (a mixture: one per component)
        # says so by ``draws_per_particle``.
        "num_gradient_evaluations": runtime.num_gradient_evaluations(
            total_steps,
            cell.fit.sample_size * getattr(loop.owner, "draws_per_particle", 1),
            cell.fit.importance_sample_size,
        )
        + initial_cost[1],
        "initialization_gradient_evaluations": float(initial_cost[1]),
        "converged": float(verdict.converged),
    }
    if verdict.converged and verdict.step is not None and 0 < verdict.step <= losses.size:
        metrics["seconds_to_converge"] = float(loss_seconds[verdict.step - 1] + initial_cost[0])
    params = {**trace.params, "initialization_chosen": initial_reason[:250]}
    if not math.isnan(compile_seconds):
        metrics["compile_seconds"] = compile_seconds
    draws = None
    evaluation_seconds = None
    if status == "ok":
        evaluation = evaluate()
        evaluation_seconds = evaluator.seconds
        t0 = time.perf_counter()
        if not math.isnan(evaluator.compile_seconds):
            evaluation_compile = evaluator.compile_seconds
            # Logged on its own too, so the fitting loop's compilation stays comparable with
            # a bare fit_surrogate_posterior call's.
            metrics["evaluation_compile_seconds"] = evaluator.compile_seconds
            if "compile_seconds" in metrics:
                metrics["compile_seconds"] += evaluator.compile_seconds
                compile_seconds += evaluator.compile_seconds
        status, reason, quality, draws = score(
            cell,
            model,
            evaluation,
            "surrogate produced non-finite draws or log densities after fitting",
        )
        if status == "diverged":
            diverged_step = num_steps_run
        metrics.update(quality)
        # Evaluation cost (draws, log densities and every metric), to compare with fit_seconds.
        evaluation_seconds += time.perf_counter() - t0
    if standalone_compile is not None:
        # A part the first cell did not pay (it failed first) is this cell's own.
        if not math.isnan(standalone_compile[0]):
            loop_compile = standalone_compile[0]
        if not math.isnan(standalone_compile[1]):
            evaluation_compile = standalone_compile[1]
    metrics.update(
        cost_metrics(
            compile_seconds=loop_compile + evaluation_compile,
            initialization_seconds=initial_cost[0],
            optimization_seconds=optimization_seconds,
            evaluation_seconds=evaluation_seconds,
        )
    )
    return result(
        cell,
        started,
        status=status,
        reason=reason,
        verdict=verdict,
        metrics=metrics,
        losses=losses,
        loss_seconds=loss_seconds,
        compile_seconds=compile_seconds,
        fit_seconds=fit_seconds,
        num_steps_run=num_steps_run,
        fit_mode=loop.mode,
        draws=draws,
        fallback_reason=loop.fallback_reason,
        diverged_step=diverged_step,
        fit_params=params,
    )


def variational_loss(model, surrogate_posterior, fit_settings):
    """``seed -> loss``: the Monte Carlo objective of one step, with the configured gradient.

    The value is −ELBO (``importance_sample_size`` = 1) or −IWAE bound (K > 1), averaged over
    ``sample_size`` independent estimates; ``gradient_estimator`` picks its gradient.  A
    surrogate with its own ``variational_loss`` method (a mixture's stratified ELBO,
    :class:`harness.families.mixture.MixtureSurrogate`) supplies the estimate instead, with
    the same settings.
    """
    import tensorflow_probability as tfp

    own = getattr(surrogate_posterior, "variational_loss", None)
    if own is not None:

        def own_loss_fn(seed=None):
            return own(
                model.unnormalized_log_prob,
                sample_size=fit_settings.sample_size,
                importance_sample_size=fit_settings.importance_sample_size,
                gradient_estimator=fit_settings.gradient_estimator,
                seed=seed,
            )

        return own_loss_fn

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
