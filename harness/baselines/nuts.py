"""NUTS sampler core: ``sample(model, ...)`` → draws and convergence diagnostics.

The No-U-Turn sampler (Hoffman & Gelman, 2014) runs on the *unconstrained* scale through the
model's ``default_event_space_bijector`` (``tfp.mcmc.TransformedTransitionKernel``, which adds
the log-Jacobian), with the step size tuned per chain by dual averaging
(``tfp.mcmc.DualAveragingStepSizeAdaptation``) and a diagonal mass matrix estimated during
warm-up.  Draws are returned on the
model's constrained scale.

Diagnostics are those of Vehtari et al. (2021), "Rank-normalization, folding, and localization:
an improved R-hat for assessing convergence of MCMC" (computed with ``arviz-stats``): the
rank-normalized split R-hat and the bulk effective sample size per coordinate, plus Monte Carlo
standard errors of the mean and standard deviation.  This module is used by ``harness
reference`` (long runs that become reference files) and by the ``nuts`` baseline.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

# Target acceptance probability of dual averaging: 0.8 is TFP's and Stan's default for NUTS;
# higher values (0.9-0.99) help funnel-shaped posteriors at the price of smaller steps.
TARGET_ACCEPT_PROB = 0.8
# Fraction of warm-up steps that adapt the step size (TFP's recommendation: about 80 %, so the
# last 20 % run with the final averaged step size before draws are kept).
_ADAPTATION_FRACTION = 0.8
# Initial points are uniform in (-2, 2) on the unconstrained scale, as in Stan.
_INIT_RADIUS = 2.0
# Initial step size of each dual-averaging phase (it adapts within a few dozen steps).
_INITIAL_STEP_SIZE = 0.1
# Below this many warm-up steps the first phase would be too short to estimate variances, so
# the mass matrix stays the identity.
MIN_WARMUP_FOR_MASS_MATRIX = 100


@dataclasses.dataclass(frozen=True)
class NutsResult:
    """Draws and diagnostics of one NUTS run.

    Attributes:
      draws: Posterior draws on the constrained scale, ``[num_chains, num_draws, d]`` float64.
      potential_scale_reduction: Rank-normalized split R-hat per coordinate ``[d]``.
      effective_sample_size: Bulk effective sample size per coordinate ``[d]`` (all chains).
      mean_standard_error: Monte Carlo standard error of the posterior mean ``[d]``.
      standard_deviation_standard_error: Monte Carlo standard error of the posterior sd ``[d]``.
      step_size: Final adapted step size per chain ``[num_chains]`` (on the preconditioned
        unconstrained scale ``u / s``).
      inverse_mass_diagonal: The diagonal inverse mass matrix ``s²`` used for the kept draws
        ``[d]`` (ones when it was not adapted).
      num_leapfrog_steps: Leapfrog steps (= gradient evaluations) over all chains, warm-up
        included.
      num_divergences: Divergent transitions among the kept draws (all chains).
      mean_accept_prob: Mean acceptance probability of the kept draws.
      wall_seconds: Wall-clock time of the whole run, tracing and compilation included.
      mode: ``xla`` or ``graph``: how the chain was compiled.
    """

    draws: np.ndarray
    potential_scale_reduction: np.ndarray
    effective_sample_size: np.ndarray
    mean_standard_error: np.ndarray
    standard_deviation_standard_error: np.ndarray
    step_size: np.ndarray
    inverse_mass_diagonal: np.ndarray
    num_leapfrog_steps: int
    num_divergences: int
    mean_accept_prob: float
    wall_seconds: float
    mode: str

    @property
    def num_gradient_evaluations(self) -> int:
        """Leapfrog steps: one gradient of the log density each."""
        return self.num_leapfrog_steps


def sample(
    model,
    *,
    num_chains: int = 4,
    num_warmup: int = 1000,
    num_draws: int = 1000,
    seed: int | tuple[int, int] = 0,
    jit_compile: bool = True,
    target_accept_prob: float = TARGET_ACCEPT_PROB,
    max_tree_depth: int = 10,
    adapt_mass_matrix: bool = True,
    initial_unconstrained: np.ndarray | None = None,
) -> NutsResult:
    """Run NUTS on ``model`` and return draws on the constrained scale with diagnostics.

    Warm-up runs in two phases when ``adapt_mass_matrix`` (and ``num_warmup`` ≥
    ``MIN_WARMUP_FOR_MASS_MATRIX``): the first half adapts the step size with an identity mass
    matrix; the per-coordinate standard deviations ``s`` of the unconstrained draws of its second
    half (pooled over chains, regularized towards 10⁻³ as in Stan) then precondition the second
    phase, which samples ``y = u / s`` (``u`` unconstrained) with a fresh step-size adaptation.
    This is NUTS with the diagonal inverse mass matrix ``diag(s²)`` (Stan's default metric).

    Args:
      model: A :class:`harness.models.base.Model`.
      num_chains: Independent chains, run as one batch.
      num_warmup: Warm-up (burn-in) steps per chain (all phases); dropped.
      num_draws: Kept draws per chain (no thinning).
      seed: An integer or a pair of int32 words; the run is a deterministic function of it.
      jit_compile: Compile the chain with XLA; if XLA rejects it, graph mode is used instead
        (recorded in ``NutsResult.mode``).
      target_accept_prob: Acceptance probability targeted by dual averaging.
      max_tree_depth: Maximum NUTS tree depth (at most ``2**max_tree_depth`` leapfrog steps
        per draw); 10 is TFP's and Stan's default.
      adapt_mass_matrix: Adapt a diagonal mass matrix during warm-up (see above).
      initial_unconstrained: Starting points ``[num_chains, d]`` on the unconstrained scale
        (e.g. Pathfinder draws); None: uniform on (−2, 2), as Stan.

    Returns:
      A :class:`NutsResult`.

    Raises:
      ValueError: if a count is not positive.
    """
    import tensorflow as tf
    import tensorflow_probability as tfp

    tfb = tfp.bijectors
    for name, value in (
        ("num_chains", num_chains),
        ("num_warmup", num_warmup),
        ("num_draws", num_draws),
    ):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if isinstance(seed, int):
        seed = (seed & 0x7FFFFFFF, 0)
    init_seed, first_seed, second_seed = tfp.random.split_seed(tf.constant(seed, tf.int32), n=3)
    dtype = model.dtype
    bijector = model.default_event_space_bijector
    if initial_unconstrained is None:
        unconstrained = tf.random.stateless_uniform(
            [num_chains, model.dimension], init_seed, -_INIT_RADIUS, _INIT_RADIUS, dtype=dtype
        )
    else:
        unconstrained = tf.constant(
            np.asarray(initial_unconstrained).reshape(num_chains, model.dimension), dtype
        )
    initial_state = bijector(unconstrained)
    two_phases = adapt_mass_matrix and num_warmup >= MIN_WARMUP_FOR_MASS_MATRIX
    first_warmup = num_warmup // 2 if two_phases else 0

    def make_run(chain_bijector, num_steps, num_adaptation_steps):
        def run(state, seed):
            nuts = tfp.mcmc.NoUTurnSampler(
                model.unnormalized_log_prob,
                step_size=tf.fill([num_chains, 1], tf.constant(_INITIAL_STEP_SIZE, dtype)),
                max_tree_depth=max_tree_depth,
            )
            kernel = tfp.mcmc.DualAveragingStepSizeAdaptation(
                tfp.mcmc.TransformedTransitionKernel(nuts, chain_bijector),
                num_adaptation_steps=num_adaptation_steps,
                target_accept_prob=tf.constant(target_accept_prob, dtype),
            )

            def trace(_, results):
                inner = results.inner_results.inner_results
                return (
                    inner.leapfrogs_taken,
                    inner.has_divergence,
                    tf.exp(tf.minimum(inner.log_accept_ratio, 0.0)),
                    results.new_step_size,
                )

            # The trace covers warm-up too (to count its leapfrogs): all steps are run by
            # sample_chain and the warm-up draws are dropped afterwards.
            return tfp.mcmc.sample_chain(
                num_results=num_steps, current_state=state, kernel=kernel, trace_fn=trace, seed=seed
            )

        return run

    def adaptation_steps(warmup):
        return max(1, int(_ADAPTATION_FRACTION * warmup))

    modes = ["xla", "graph"] if jit_compile else ["graph"]
    started = time.perf_counter()
    for mode in modes:
        compiled = dict(jit_compile=(mode == "xla"), autograph=False)
        try:
            leapfrogs_first = 0
            state = initial_state
            scale = np.ones(model.dimension)
            if two_phases:
                states, (leapfrogs, _, _, _) = tf.function(
                    make_run(bijector, first_warmup, first_warmup), **compiled
                )(initial_state, first_seed)
                leapfrogs_first = int(np.sum(leapfrogs.numpy()))
                state = states[-1]
                scale = _pooled_scale(bijector.inverse(states[first_warmup // 2 :]).numpy())
            chain_bijector = (
                tfb.Chain([bijector, tfb.Scale(tf.constant(scale, dtype))])
                if two_phases
                else bijector
            )
            second_warmup = num_warmup - first_warmup
            states, (leapfrogs, divergent, accept, step_size) = tf.function(
                make_run(
                    chain_bijector, second_warmup + num_draws, adaptation_steps(second_warmup)
                ),
                **compiled,
            )(state, second_seed)
            break
        except (
            tf.errors.InvalidArgumentError,
            tf.errors.UnimplementedError,
            tf.errors.InternalError,
            NotImplementedError,
        ):
            if mode == modes[-1]:
                raise
    wall_seconds = time.perf_counter() - started

    # [steps, chains, d] → kept draws [chains, draws, d].
    draws = np.swapaxes(states.numpy()[second_warmup:], 0, 1).astype(np.float64)
    diagnostics = diagnose(draws)
    return NutsResult(
        draws=draws,
        step_size=np.asarray(step_size.numpy()[-1]).reshape(num_chains).astype(np.float64),
        inverse_mass_diagonal=scale**2,
        num_leapfrog_steps=leapfrogs_first + int(np.sum(leapfrogs.numpy())),
        num_divergences=int(np.sum(divergent.numpy()[second_warmup:])),
        mean_accept_prob=float(np.mean(accept.numpy()[second_warmup:])),
        wall_seconds=wall_seconds,
        mode=mode,
        **diagnostics,
    )


def _pooled_scale(unconstrained: np.ndarray) -> np.ndarray:
    """Per-coordinate sd of ``[steps, chains, d]`` warm-up draws, pooled over chains, shrunk
    towards 10⁻³ like Stan's metric adaptation: ``(n/(n+5))·var + 10⁻³·5/(n+5)``."""
    flat = unconstrained.reshape(-1, unconstrained.shape[-1]).astype(np.float64)
    n = flat.shape[0]
    variance = (n / (n + 5.0)) * flat.var(axis=0, ddof=1) + 1e-3 * (5.0 / (n + 5.0))
    scale = np.sqrt(variance)
    # A chain stuck in warm-up (or a non-finite transform) must not produce a degenerate metric.
    return np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)


def diagnose(draws: np.ndarray) -> dict[str, np.ndarray]:
    """Rank-normalized split R-hat, bulk ESS and MCSEs of mean and sd per coordinate.

    Args:
      draws: ``[chains, draws, d]``.

    Returns:
      A dict with ``potential_scale_reduction``, ``effective_sample_size``,
      ``mean_standard_error`` and ``standard_deviation_standard_error``, each ``[d]``.
    """
    from arviz_stats.base import array_stats

    # arviz-stats wants the chain and draw axes last: [d, chains, draws].
    ary = np.moveaxis(np.asarray(draws, np.float64), -1, 0)
    return {
        "potential_scale_reduction": np.asarray(array_stats.rhat(ary, method="rank")),
        "effective_sample_size": np.asarray(array_stats.ess(ary, method="bulk")),
        "mean_standard_error": np.asarray(array_stats.mcse(ary, method="mean")),
        "standard_deviation_standard_error": np.asarray(array_stats.mcse(ary, method="sd")),
    }
