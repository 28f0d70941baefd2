"""The ``nuts`` baseline: NUTS at a fixed draw budget, as one point on the same axes as VI.

It wraps the sampler core :func:`harness.baselines.nuts.sample`.  A spec can list ``nuts``
several times with different budgets (``num_draws``, ``num_warmup``, ``num_chains``) to show
where MCMC sits in accuracy against time.  NUTS gives draws, not a density, so the ELBO, k̂ and
the other log-weight metrics are absent; the draw-based metrics (z error, std ratio, coverage,
W1) are computed from all kept draws (pooled over chains) exactly as for a variational q.
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

    Returns:
      A :class:`BaselineFit` with pooled ``draws`` ``[num_chains·num_draws, d]`` and metrics
      ``potential_scale_reduction_max`` (worst split R-hat), ``effective_sample_size_min``
      (worst bulk ESS), ``num_divergences`` and ``mean_accept_prob``.
    """
    from harness.baselines.nuts import sample

    words = np.asarray(seed).reshape(-1)[:2]
    result = sample(
        model,
        num_chains=num_chains,
        num_warmup=num_warmup,
        num_draws=num_draws,
        seed=(int(words[0]), int(words[1])),
        target_accept_prob=target_accept_prob,
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
            f"{'>=' if ess >= 400 else '<'} 400"
        ),
        draws=draws,
        fit_seconds=result.wall_seconds,
        num_steps_run=num_chains * num_draws,
        num_gradient_evaluations=float(result.num_gradient_evaluations),
        mode=result.mode,
        metrics={
            "potential_scale_reduction_max": float(np.max(result.potential_scale_reduction)),
            "effective_sample_size_min": float(np.min(result.effective_sample_size)),
            "num_divergences": float(result.num_divergences),
            "mean_accept_prob": float(result.mean_accept_prob),
        },
    )
