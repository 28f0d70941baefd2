"""The ``nuts`` baseline: NUTS at a fixed draw budget, as one point on the same axes as VI.

It wraps the sampler core :func:`harness.baselines.nuts.sample`.  A spec can list ``nuts``
several times with different budgets (``num_draws``, ``num_warmup``, ``num_chains``) to show
where MCMC sits in accuracy against time.  NUTS gives draws, not a density, so the ELBO, k̂ and
the other log-weight metrics are absent; the draw-based metrics (z error, std ratio, coverage,
W1) are computed from all kept draws (pooled over chains) exactly as for a variational q.

The chains start uniform on (−2, 2) on the unconstrained scale (Stan's default), or, under the
fit setting ``initialization = "pathfinder"``, at draws from single-path Pathfinder's normal
(Zhang et al., 2022, §5: Pathfinder draws as MCMC initialisations); Pathfinder's gradient
evaluations and seconds are then part of the baseline's.  The ``mode`` initialisation (the
default of the variational families) leaves NUTS at its uniform start: one point for every
chain would blind R̂ to chains that cannot leave it.
"""

from __future__ import annotations

import numpy as np

from harness.baselines.base import BaselineFit


def build_nuts(
    model,
    *,
    seed,
    num_chains: int = 4,
    num_warmup: int = 500,
    num_draws: int = 500,
    target_accept_prob: float = 0.8,
    initialization: str = "uniform",
) -> BaselineFit:
    """Run NUTS on ``model`` at a draw budget.

    Args:
      model: A :class:`harness.models.base.Model`.
      seed: Stateless seed (shape ``[2]`` int32).
      num_chains: Independent chains (run as one batch).
      num_warmup: Warm-up steps per chain (step-size adaptation; discarded).
      num_draws: Kept draws per chain.
      target_accept_prob: Acceptance probability targeted by dual averaging (0.8, Stan's
        default; higher for funnels).
      initialization: The fit setting ``initialization`` (passed by ``harness.fit``, not a
        hyperparameter): ``pathfinder`` starts the chains at Pathfinder draws; any other
        value, uniform on (−2, 2).

    Returns:
      A :class:`BaselineFit` with pooled ``draws`` ``[num_chains·num_draws, d]`` and metrics
      ``potential_scale_reduction_max`` (worst split R-hat), ``effective_sample_size_min``
      (worst bulk ESS), ``num_divergences`` and ``mean_accept_prob``.
    """
    from harness.baselines.nuts import sample

    words = np.asarray(seed).reshape(-1)[:2]
    start, start_seconds, start_evaluations, start_reason = None, 0.0, 0, "uniform start"
    if initialization == "pathfinder":
        start, start_seconds, start_evaluations, start_reason = _pathfinder_start(
            model, words, num_chains
        )
    result = sample(
        model,
        num_chains=num_chains,
        num_warmup=num_warmup,
        num_draws=num_draws,
        seed=(int(words[0]), int(words[1])),
        target_accept_prob=target_accept_prob,
        initial_unconstrained=start,
    )
    draws = result.draws.reshape(-1, model.dimension)
    rhat = float(np.max(result.potential_scale_reduction))
    ess = float(np.min(result.effective_sample_size))
    # Vehtari et al. (2021), "Rank-normalization, folding, and localization": R̂ < 1.01 and a
    # bulk ESS of at least 100 per chain (400 for 4 chains) before trusting the draws.
    converged = bool(rhat < 1.01 and ess >= 400)
    return BaselineFit(
        converged=converged,
        convergence_reason=(
            f"R-hat {rhat:.4f} {'<' if rhat < 1.01 else '>='} 1.01, bulk ESS {ess:.0f} "
            f"{'>=' if ess >= 400 else '<'} 400; {start_reason}"
        ),
        draws=draws,
        fit_seconds=result.wall_seconds + start_seconds,
        num_steps_run=num_chains * num_draws,
        num_gradient_evaluations=float(result.num_gradient_evaluations + start_evaluations),
        mode=result.mode,
        metrics={
            "potential_scale_reduction_max": float(np.max(result.potential_scale_reduction)),
            "effective_sample_size_min": float(np.min(result.effective_sample_size)),
            "num_divergences": float(result.num_divergences),
            "mean_accept_prob": float(result.mean_accept_prob),
        },
    )


def _pathfinder_start(model, words, num_chains: int):
    """``(starting points [num_chains, d] or None, seconds, gradient evaluations, reason)``:
    draws from single-path Pathfinder's normal, or None (uniform) when it found none."""
    from harness.baselines.pathfinder import run_pathfinder

    try:
        outcome = run_pathfinder(model, [int(words[0]), int(words[1]) ^ 0x5F3759DF])
    except ValueError as e:
        return None, 0.0, 0, f"uniform start ({e})"
    rng = np.random.default_rng([int(w) & 0x7FFFFFFF for w in words])
    points, _ = outcome.normal.sample(rng.standard_normal((num_chains, model.dimension)))
    return (
        points,
        outcome.seconds,
        outcome.num_gradient_evaluations,
        f"started at Pathfinder draws ({outcome.reason})",
    )
