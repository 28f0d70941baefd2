"""The ``laplace`` baseline: a Gaussian at the mode with the inverse Hessian as covariance.

On the unconstrained scale ``u`` (where the model's event-space bijector ``b`` maps ``u`` into
the support) the target density is ``log p̃(b(u)) + log |det J_b(u)|``.  The Laplace
approximation (e.g. Bishop, *Pattern Recognition and Machine Learning*, 2006, §4.4) takes
``q(u) = N(û, H⁻¹)`` at its mode ``û`` with ``H`` the negative Hessian there; q is then pushed
through ``b`` like every other family.  It is the cheapest point on the axes: one optimisation
and one Hessian, no sampling.  For a Gaussian target it is exact.

The mode is found by :func:`harness.mode.find_mode`, the search that also initialises the
variational families: multi-start L-BFGS, then Newton steps on the rescaled problem until the
Newton decrement (the log density still to gain) is below ``tolerance`` nats.  When that
search in float32 finds no mode and the model can be rebuilt in float64 (``precise_model``),
the search runs again there: float32 cannot resolve the Hessian of a posterior whose
correlation is −0.9999 or beyond (the calendar-year regression; see ``docs/baselines.md``).
"""

from __future__ import annotations

import numpy as np

from harness.baselines.base import BaselineFit


def build_laplace(
    model, *, seed, max_iterations: int = 1000, tolerance: float = 1e-3, precise_model=None
) -> BaselineFit:
    """Laplace approximation on the unconstrained scale.

    Args:
      model: A :class:`harness.models.base.Model`.
      seed: Stateless seed (shape ``[2]`` int32) for the random restarts of the search.
      max_iterations: L-BFGS iteration limit from ``u = 0`` (and the most Newton steps).
      tolerance: Newton decrement (nats) below which the mode is accepted: the log density the
        approximation's centre may still be short of the exact mode.
      precise_model: ``model`` in float64 (the engine passes it when the model can be rebuilt
        so, else None), searched when the search in ``model``'s own dtype finds no mode.  The
        float32 finite-difference Hessian has relative errors of ~10⁻² where the rescaled
        Hessian's smallest eigenvalue is ``1 − |ρ|`` ≈ 5·10⁻⁵ (the calendar-year regression):
        its Cholesky fails, and L-BFGS ends ~18 sds from the mode along the ridge.

    Returns:
      A :class:`BaselineFit` whose ``surrogate_posterior`` is the pushed-forward Gaussian, with
      no loss trace (the search minimises −log density, not −ELBO) and the metrics
      ``negative_log_density_at_mode`` and ``newton_decrement``.

    Raises:
      ValueError: when no point with a positive-definite Hessian was found (no Gaussian
        approximation exists there), with the search's one-line reason.
    """
    import tensorflow as tf
    import tensorflow_probability as tfp

    from harness.mode import find_mode, traced_target

    tfd = tfp.distributions
    dtype, bijector = model.dtype, model.default_event_space_bijector
    # Trace the search's function first, so that fit_seconds is the method's own time (as for
    # the variational fits, whose compilation is compile_seconds).
    words = np.asarray(seed).reshape(-1)[:2]

    def search(searched):
        target, compile_seconds = traced_target(searched)
        found = find_mode(
            searched,
            [int(words[0]), int(words[1])],
            max_iterations=max_iterations,
            tolerance=tolerance,
            target=target,
        )
        return found, compile_seconds

    mode, compile_seconds = search(model)
    seconds, evaluations, reason = mode.seconds, mode.num_gradient_evaluations, mode.reason
    if not mode.found and precise_model is not None and precise_model is not model:
        wide, wide_compile_seconds = search(precise_model)
        compile_seconds += wide_compile_seconds
        seconds += wide.seconds
        evaluations += wide.num_gradient_evaluations
        if wide.covariance is not None and (wide.found or mode.covariance is None):
            reason = f"{wide.reason}; in float64 (in {model.dtype.name}: {mode.reason})"
            mode = wide
        else:
            reason = f"{mode.reason} (in float64 too: {wide.reason})"
    if mode.covariance is None:
        raise ValueError(f"laplace: {reason}")
    q = tfd.TransformedDistribution(
        tfd.MultivariateNormalTriL(
            loc=tf.constant(mode.position, dtype),
            scale_tril=tf.constant(mode.scale_tril, dtype),
        ),
        bijector,
        name="laplace_surrogate",
    )
    return BaselineFit(
        surrogate_posterior=q,
        fit_seconds=seconds,
        compile_seconds=compile_seconds,
        num_steps_run=mode.iterations,
        num_gradient_evaluations=float(evaluations),
        mode="graph",
        metrics={
            "negative_log_density_at_mode": mode.negative_log_density,
            "newton_decrement": mode.decrement,
        },
        converged=mode.found,
        convergence_reason=reason,
    )
