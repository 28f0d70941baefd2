"""SAA for VI: L-BFGS on the ELBO of fixed draws, the draws doubled until the fit is stable.

Burroni, Domke and Sheldon, "Sample average approximation for black-box variational inference"
(UAI 2024).  With the base draws ``ε_1..ε_N`` fixed, the Monte Carlo objective

    L_N(θ) = (1/N) Σ_i [log q_θ(T_θ(ε_i)) − log p̃(T_θ(ε_i))]

is a deterministic, smooth function of the variational parameters θ (every family here samples
by pushing base noise through a bijector, and a stateless seed gives the same noise each time),
so a quasi-Newton method with a line search minimises it without a learning rate (here
SciPy's L-BFGS-B in float64, the objective in the model's dtype; see :class:`_Solver` for why
not ``tfp.optimizer.lbfgs_minimize``).  Its minimiser
``θ_N`` carries a Monte Carlo error of order ``1/√N``; the *schedule* solves a sequence of such
problems with ``N`` doubled each time, warm-started at the previous solution, until the solution
no longer moves:

* stage ``k`` draws ``N_k = N_0 · 2^k`` fresh base draws (stage seed: the fit seed folded with
  ``k``), ``N_0 = max(saa_initial_sample_size, d + 1)`` (with fewer draws than dimensions a
  full-rank scale has directions that no draw sees, along which ``L_N`` falls without
  bound), up to ``saa_max_sample_size``;
* each stage runs L-BFGS from the previous stage's solution until its gradient's largest entry
  is below ``saa_tolerance`` or ``L_N``'s relative decrease per iteration is below SciPy's
  ``ftol`` (2.2·10⁻⁹) (the stage *converged*), its line search cannot lower ``L_N`` any further
  (*stalled*: float32 round-off), or :data:`MAX_ITERATIONS_PER_STAGE` iterations;
* the *gain* of stage ``k ≥ 1`` is ``L_{N_k}(θ_{k−1}) − L_{N_k}(θ_k)``: what re-solving on twice
  the draws gained on the new draws, an estimate (biased upwards: ``θ_k`` is fitted to those
  draws) of the previous solution's excess loss over the exact optimum.

**Stopping rule and verdict** (deterministic, in nats like :mod:`harness.convergence`): the fit
stops *converged* after the first stage ``k ≥ 1`` whose L-BFGS converged and whose gain is below
``fit.convergence_tolerance``.  It stops *not converged* when the gradient budget (``num_steps
× sample_size`` gradient evaluations, the budget of an Adam fit at the same settings; checked
as SciPy's ``maxfun`` of each stage, so the last iteration's line search may overshoot it) is
spent, or
when the largest stage ends without meeting the rule; the reason names the stage, its ``N``, the
gain and the L-BFGS status.  With ``stopping = "budget"`` every stage up to
``saa_max_sample_size`` runs and the last stage gives the verdict.

Costs: each evaluation of ``L_N`` and its gradient costs ``N`` gradient evaluations of the model
(``num_gradient_evaluations`` sums them, with the initialisation's); one *step* is one L-BFGS
iteration (``num_steps_run``, ``steps_per_second``), and the loss trace holds ``L_{N_k}`` after
each iteration (it jumps between stages: new draws).  The objective runs in graph mode (one
trace for every stage: ``N`` and the seed are tensors; XLA would compile once per ``N``), and
its tracing and first run are ``compile_seconds``.  Adam's settings (learning rate and its pilots, schedule,
gradient estimator, ``importance_sample_size``, vectorized seeds) do not apply; a spec that sets
them with ``optimizer = "saa"`` is refused, and ``learning_rate_chosen`` is logged as ``none``.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from harness.records import Cell


# Variational families whose draws are a differentiable push-forward of base noise drawn with a
# stateless seed, so that their fixed-draw objective is deterministic (tested for each).
# (``Family.fixed_draws`` in the registry.)
def supported_families() -> tuple[str, ...]:
    from harness.families import FAMILIES

    return tuple(name for name, family in FAMILIES.items() if family.fixed_draws)


# L-BFGS iterations of one stage at most.  Warm-started stages of the zoo take tens; a stage
# that needs more is not near a solution, and a larger N will not help it.
MAX_ITERATIONS_PER_STAGE = 1000
# Correction pairs kept by L-BFGS (TFP's and SciPy's default is 10).
NUM_CORRECTION_PAIRS = 10


@dataclasses.dataclass(frozen=True)
class Stage:
    """One SAA problem of the schedule and how L-BFGS ended it.

    Attributes:
      sample_size: Its number of draws ``N``.
      iterations: L-BFGS iterations run.
      evaluations: Evaluations of ``L_N`` and its gradient (each ``N`` gradient evaluations).
      converged: L-BFGS's gradient test held.
      stalled: The line search could not lower ``L_N`` (SciPy's status 2).
      start_loss: ``L_N`` at the warm start (the previous stage's solution).
      final_loss: ``L_N`` at this stage's solution.
    """

    sample_size: int
    iterations: int
    evaluations: int
    converged: bool
    stalled: bool
    start_loss: float
    final_loss: float

    @property
    def gain(self) -> float:
        return self.start_loss - self.final_loss

    @property
    def status(self) -> str:
        if self.converged:
            return "converged"
        if self.stalled:
            return "stalled (its line search could not lower the objective)"
        return "stopped by its iteration or evaluation limit"


class Objective:
    """A surrogate's fixed-draw objective ``L_N(θ)`` in its flat parameter vector θ (float64).

    ``value_and_gradient(θ, N, seed)`` assigns θ to the surrogate's trainable variables and
    returns ``L_N(θ)`` and its gradient, both float64 (the model's log density in its own
    dtype).  The same ``(N, seed)`` gives the same base draws, so the value is a deterministic
    function of θ.
    """

    def __init__(self, model, surrogate_posterior, seed):
        import tensorflow as tf

        # Flows built from Keras layers may create their variables at the first draw.
        surrogate_posterior.sample(1, seed=seed)
        self.model = model
        self.surrogate_posterior = surrogate_posterior
        self.variables = list(surrogate_posterior.trainable_variables)
        self.shapes = [v.shape for v in self.variables]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.dtype = self.variables[0].dtype
        self._tf = tf

    def reset(self, fresh_surrogate_posterior) -> None:
        """Take the initial values of a freshly built surrogate of the same family."""
        fresh_surrogate_posterior.sample(1, seed=(0, 0))
        theirs = list(fresh_surrogate_posterior.trainable_variables)
        if [v.shape for v in theirs] != self.shapes:
            raise RuntimeError("surrogate variables differ between builds of one family")
        for mine, fresh in zip(self.variables, theirs, strict=True):
            mine.assign(fresh)

    def position(self) -> np.ndarray:
        """The current θ."""
        return np.concatenate([np.reshape(v.numpy(), -1) for v in self.variables]).astype(
            np.float64
        )

    def assign(self, theta) -> None:
        tf = self._tf
        pieces = tf.split(tf.cast(theta, self.dtype), self.sizes)
        for variable, piece, shape in zip(self.variables, pieces, self.shapes, strict=True):
            variable.assign(tf.reshape(piece, shape))

    def value_and_gradient(self, theta, sample_size, seed):
        tf = self._tf
        self.assign(theta)
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(self.variables)
            z, log_q = self.surrogate_posterior.experimental_sample_and_log_prob(
                sample_size, seed=seed
            )
            log_p = self.model.unnormalized_log_prob(z)
            loss = tf.reduce_mean(tf.cast(log_q - log_p, tf.float64))
        gradients = tape.gradient(loss, self.variables)
        flat = tf.concat(
            [
                tf.reshape(tf.cast(g if g is not None else tf.zeros_like(v), tf.float64), [-1])
                for g, v in zip(gradients, self.variables, strict=True)
            ],
            axis=0,
        )
        return loss, flat


class _Solver:
    """L-BFGS (SciPy's L-BFGS-B, float64 iterates, as :mod:`harness.mode`) on an
    :class:`Objective` evaluated by one graph-mode function.

    One trace serves every stage and, reused, every seed of a cell's settings (``N`` and the
    seed are tensors).  TFP's ``tfp.optimizer.lbfgs_minimize`` does the same iterations inside
    a graph, but its graph holds the objective once per branch of its Hager–Zhang line search:
    tracing and first running it cost 40–130 s per cell on the benchmark machine, against about
    2 s here (docs/saa.md).
    """

    def __init__(self, objective: Objective, tolerance: float, sample_size: int, seed):
        import tensorflow as tf

        self.objective = objective
        self.tolerance = tolerance
        self._value_and_gradient = tf.function(
            objective.value_and_gradient,
            input_signature=[
                tf.TensorSpec([sum(objective.sizes)], tf.float64),
                tf.TensorSpec([], tf.int32),
                tf.TensorSpec([2], tf.int32),
            ],
            autograph=False,
        )
        t0 = time.perf_counter()
        theta = objective.position()
        self._value_and_gradient(theta, sample_size, seed)  # traced and run once
        self.compile_seconds = time.perf_counter() - t0

    def solve(self, theta: np.ndarray, sample_size: int, seed, max_evaluations: int):
        """Minimise ``L_N`` from ``theta`` → ``(results, iteration losses, iteration seconds)``.

        ``results`` is SciPy's (``x``, ``fun``, ``status``: 0 converged, 1 out of iterations or
        evaluations, 2 stalled; ``nfev``, ``nit``) with ``start_loss``, ``L_N(theta)``, added.
        The surrogate's variables are left at ``x``.
        """
        import tensorflow as tf
        from scipy.optimize import minimize

        n = tf.constant(sample_size, tf.int32)
        seed = tf.convert_to_tensor(seed, tf.int32)
        values: list[float] = []
        losses: list[float] = []
        seconds: list[float] = []
        clock = [time.perf_counter()]

        def fun(theta):
            value, gradient = self._value_and_gradient(theta, n, seed)
            value, gradient = float(value), np.asarray(gradient, np.float64)
            values.append(value)
            if not np.isfinite(value) or not np.all(np.isfinite(gradient)):
                # L-BFGS-B's line search backs off from an infinite value.
                return np.inf, np.zeros_like(theta)
            return value, gradient

        def callback(intermediate_result):
            now = time.perf_counter()
            losses.append(float(intermediate_result.fun))
            seconds.append(now - clock[0])
            clock[0] = now

        results = minimize(
            fun,
            np.asarray(theta, np.float64),
            jac=True,
            method="L-BFGS-B",
            callback=callback,
            options={
                "maxcor": NUM_CORRECTION_PAIRS,
                "gtol": self.tolerance,
                "maxiter": MAX_ITERATIONS_PER_STAGE,
                "maxfun": max(1, max_evaluations),
            },
        )
        results.start_loss = values[0] if values else float("nan")
        self.objective.assign(results.x)  # the solution, not the line search's last trial
        if time.perf_counter() > clock[0] and seconds:
            seconds[-1] += time.perf_counter() - clock[0]
        return results, losses, seconds


def gradient_budget(cell: Cell) -> int:
    """Gradient evaluations an SAA fit may spend: an Adam fit's at the same settings."""
    return cell.fit.num_steps * cell.fit.sample_size


def first_sample_size(cell: Cell, dimension: int) -> int:
    """``N_0``: ``saa_initial_sample_size``, at least ``d + 1`` (see the module docstring)."""
    return min(max(cell.fit.saa_initial_sample_size, dimension + 1), cell.fit.saa_max_sample_size)


def run_schedule(cell: Cell, objective: Objective, solver: _Solver, fit_seed):
    """The stages of the schedule → ``(stages, losses, calls, verdict)``.

    ``losses`` is ``L_N`` after each L-BFGS iteration, ``calls`` ``[1, seconds, True]`` per
    iteration (the format of :func:`harness.engines.common.timings`), ``verdict`` a
    :class:`harness.convergence.Verdict`.  The surrogate's variables end at the last stage's
    solution.
    """
    import tensorflow as tf

    from harness.convergence import Verdict

    settings = cell.fit
    tolerance = settings.convergence_tolerance
    budget = gradient_budget(cell)
    used = 0
    stages: list[Stage] = []
    losses: list[float] = []
    calls: list = []
    theta = objective.position()
    sample_size = first_sample_size(cell, objective.model.dimension)
    index = 0
    verdict = None
    while verdict is None:
        if used + sample_size > budget:
            verdict = Verdict(
                False,
                f"budget of {budget} gradient evaluations reached before stage {index + 1} "
                f"(N = {sample_size})"
                + (
                    f"; the last stage: {_describe(stages[-1], index - 1, tolerance)}"
                    if stages
                    else ""
                ),
            )
            break
        seed = tf.random.experimental.stateless_fold_in(tf.constant(fit_seed, tf.int32), index)
        results, stage_losses, stage_seconds = solver.solve(
            theta, sample_size, seed, (budget - used) // sample_size
        )
        losses += stage_losses
        calls += [[1, t, True] for t in stage_seconds]
        used += int(results.nfev) * sample_size
        theta = results.x
        stage = Stage(
            sample_size=sample_size,
            iterations=int(results.nit),
            evaluations=int(results.nfev),
            converged=results.status == 0,
            stalled=results.status == 2,
            start_loss=float(results.start_loss),
            final_loss=float(results.fun),
        )
        stages.append(stage)
        step = len(losses)
        if not np.isfinite(stage.final_loss) or not np.isfinite(stage.start_loss):
            verdict = Verdict(False, f"the objective became non-finite at N = {sample_size}")
            losses.append(float("nan"))  # marks the fit diverged: a step of no time
            calls.append([1, 0.0, True])
            break
        stable = index >= 1 and stage.converged and stage.gain < tolerance
        described = _describe(stage, index, tolerance)
        if used >= budget and not stable:
            verdict = Verdict(
                False,
                f"budget of {budget} gradient evaluations reached at N = {sample_size} "
                f"(stage {index + 1}): {described}",
            )
        elif stable and settings.stopping == "converged":
            verdict = Verdict(True, f"stable at N = {sample_size}: {described}", step)
        elif 2 * sample_size > settings.saa_max_sample_size:
            if stable:  # stopping = "budget": the whole schedule ran
                verdict = Verdict(True, f"stable at N = {sample_size}: {described}", step)
            else:
                verdict = Verdict(
                    False,
                    f"saa_max_sample_size reached: at N = {sample_size} (stage {index + 1}) "
                    f"{described}",
                )
        sample_size *= 2
        index += 1
    return stages, losses, calls, verdict


def _describe(stage: Stage, index: int, tolerance: float) -> str:
    """One clause: the stage's L-BFGS status and its gain against the tolerance."""
    lbfgs = f"L-BFGS {stage.status} after {stage.iterations} iterations"
    if index == 0:
        return f"{lbfgs}; no smaller N to compare with"
    relation = "<" if stage.gain < tolerance else ">="
    return (
        f"{lbfgs}; doubling N gained {stage.gain:.3g} nats ({relation} {tolerance:g}) "
        "on the new draws"
    )
