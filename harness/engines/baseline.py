"""The baseline engine: a method that runs whole (Laplace, NUTS, CAVI) behind the family's
``build``, which returns a :class:`~harness.baselines.base.BaselineFit`; the result carries the
same metrics as a variational fit's.

A baseline with a density is evaluated exactly like a variational q (fresh draws, log weights,
every metric); NUTS's draws have no density, so its log-weight metrics are absent.

Its cost has the parts of every cell (:func:`harness.engines.common.cost_metrics`): the
method's tracing (``compile_seconds``, where it is measured apart: Laplace, Pathfinder), the
method itself as ``optimization_seconds`` (``fit_seconds``; NUTS's includes its compilation
and, under ``initialization = "pathfinder"``, its Pathfinder start), no separate
initialisation, and the evaluation.
"""

from __future__ import annotations

import inspect
import time

import numpy as np

from harness.convergence import Verdict
from harness.engines.common import cost_metrics, result
from harness.engines.evaluation import Evaluator, score
from harness.records import Cell, FitResult


def run(cell: Cell, model, family, started: float, *, reuse: bool = True) -> FitResult:
    """Run the baseline ``family`` on ``model`` and evaluate what it produced."""
    import tensorflow as tf
    import tensorflow_probability as tfp

    del reuse  # nothing compiled is kept between baseline cells
    family.check(model)
    init_seed, _, eval_seed = tfp.random.split_seed(tf.constant(cell.stateless_seed, tf.int32), n=3)
    # A baseline that can start from an initialisation (NUTS) follows fit.initialization.
    accepted = inspect.signature(family.build).parameters
    extra = {"initialization": cell.fit.initialization} if "initialization" in accepted else {}
    # A baseline whose search reads differences of the log density (Laplace's, Pathfinder's
    # L-BFGS) gets the model rebuilt in float64 too, when it can be (None otherwise).
    if "precise_model" in accepted:
        from harness.models import in_float64

        extra["precise_model"] = in_float64(cell.model, cell.model_args, model)
    outcome = family.build(model, seed=init_seed, **dict(cell.hyperparameters), **extra)
    metrics: dict[str, float] = {
        **outcome.metrics,
        "converged": float(outcome.converged),
        "fit_seconds": outcome.fit_seconds,
        "compile_seconds": outcome.compile_seconds,
        "num_steps_run": float(outcome.num_steps_run),
        "num_gradient_evaluations": outcome.num_gradient_evaluations,
    }
    t0 = time.perf_counter()
    if outcome.surrogate_posterior is not None:
        evaluator = Evaluator(model, outcome.surrogate_posterior, cell, traced=False)
        evaluation = evaluator(eval_seed)[0]
    else:
        evaluation = {"draws": outcome.draws}
    status, reason, quality, draws = score(
        cell, model, evaluation, f"{family.name} produced non-finite draws"
    )
    metrics.update(quality)
    metrics.update(
        cost_metrics(
            compile_seconds=outcome.compile_seconds,
            initialization_seconds=0.0,
            optimization_seconds=outcome.fit_seconds,
            evaluation_seconds=time.perf_counter() - t0,
        )
    )
    losses = np.asarray(outcome.losses, np.float64)
    return result(
        cell,
        started,
        status=status,
        reason=reason,
        verdict=Verdict(outcome.converged, outcome.convergence_reason),
        metrics=metrics,
        losses=losses,
        loss_seconds=np.linspace(0.0, outcome.fit_seconds, losses.size + 1)[1:],
        compile_seconds=outcome.compile_seconds,
        fit_seconds=outcome.fit_seconds,
        num_steps_run=outcome.num_steps_run,
        fit_mode=outcome.mode,
        draws=draws,
    )
