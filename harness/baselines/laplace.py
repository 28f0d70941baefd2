"""The ``laplace`` baseline: a Gaussian at the mode with the inverse Hessian as covariance.

On the unconstrained scale ``u`` (where the model's event-space bijector ``b`` maps ``u`` into
the support) the target density is ``log p̃(b(u)) + log |det J_b(u)|``.  The Laplace
approximation (e.g. Bishop, *Pattern Recognition and Machine Learning*, 2006, §4.4) takes
``q(u) = N(û, H⁻¹)`` at its mode ``û`` with ``H`` the negative Hessian there; q is then pushed
through ``b`` like every other family.  It is the cheapest point on the axes: one optimisation
and one Hessian, no sampling.  For a Gaussian target it is exact.

The mode is found by :func:`harness.mode.find_mode`, the search that also initialises the
variational families: multi-start L-BFGS, then Newton steps on the rescaled problem until the
Newton decrement (the log density still to gain) is below ``tolerance`` nats.
"""

from __future__ import annotations

import numpy as np

from harness.baselines.base import BaselineFit


def build_laplace(
    model, *, seed, max_iterations: int = 1000, tolerance: float = 1e-3
) -> BaselineFit:
    """Laplace approximation on the unconstrained scale.

    Args:
      model: A :class:`harness.models.base.Model`.
      seed: Stateless seed (shape ``[2]`` int32) for the random restarts of the search.
      max_iterations: L-BFGS iteration limit from ``u = 0`` (and the most Newton steps).
      tolerance: Newton decrement (nats) below which the mode is accepted: the log density the
        approximation's centre may still be short of the exact mode.

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
    target, compile_seconds = traced_target(model)
    words = np.asarray(seed).reshape(-1)[:2]
    mode = find_mode(
        model,
        [int(words[0]), int(words[1])],
        max_iterations=max_iterations,
        tolerance=tolerance,
        target=target,
    )
    if mode.covariance is None:
        raise ValueError(f"laplace: {mode.reason}")
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
        fit_seconds=mode.seconds,
        compile_seconds=compile_seconds,
        num_steps_run=mode.iterations,
        num_gradient_evaluations=float(mode.num_gradient_evaluations),
        mode="graph",
        metrics={
            "negative_log_density_at_mode": mode.negative_log_density,
            "newton_decrement": mode.decrement,
        },
        converged=mode.found,
        convergence_reason=mode.reason,
    )
