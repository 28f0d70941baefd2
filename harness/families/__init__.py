"""Registry of variational families: ``FAMILIES[name] -> Family``.

Adding a family: write ``build_<name>(model, *, seed, **hyperparameters)`` in a module here,
with its hyperparameters as keyword arguments with documented defaults, and add one line below.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.baselines.cavi import build_cavi, supports_cavi
from harness.baselines.laplace import build_laplace
from harness.baselines.mcmc import build_nuts
from harness.baselines.pathfinder import build_pathfinder
from harness.families.asvi import build_asvi, supports_asvi
from harness.families.base import Family
from harness.families.encoders import (
    build_encoder_diagonal,
    build_encoder_full_covariance,
    build_encoder_iaf,
    supports_amortized,
)
from harness.families.flows import build_iaf, build_maf, build_neural_spline, build_real_nvp
from harness.families.gaussian import build_full_rank, build_low_rank, build_mean_field
from harness.families.mixture import COVARIANCES, build_gaussian_mixture
from harness.limits import POSITIVE, PROBABILITY, Range, count

_AMORTIZED = "an amortized model (Model.kind == 'amortized', e.g. vae_digits)"


def _at_least_2d(model) -> bool:
    return model.dimension >= 2


# Steps of the continuation that confirms a converged fit (Family.check_horizon).  A flow
# starts as the identity on the Gaussian optimum and crosses a plateau there: on the banana,
# Adam 0.01 with cosine decay gains nothing in 2,000 steps, 0.2-0.45 nats in 4,000-8,000.
# A mixture's components separate from one start just as slowly.
FLOW_CHECK_HORIZON = 16000
MIXTURE_CHECK_HORIZON = 4000

FAMILIES: dict[str, Family] = {
    "mean_field": Family(
        "mean_field",
        "Mean-field",
        build_mean_field,
        {"initial_scale": 0.1},
        "factored normal (diagonal covariance)",
        batchable=True,
        fixed_draws=True,
    ),
    "full_rank": Family(
        "full_rank",
        "Full-rank",
        build_full_rank,
        {"initial_scale": 0.1},
        "normal with lower-triangular scale (full covariance)",
        batchable=True,
        fixed_draws=True,
    ),
    "iaf": Family(
        "iaf",
        "IAF",
        build_iaf,
        {"num_layers": 2, "hidden_units": 32, "num_hidden_layers": 1, "initial_scale": 0.1},
        "inverse autoregressive flow on a mean-field base",
        check_horizon=FLOW_CHECK_HORIZON,
    ),
    "low_rank": Family(
        "low_rank",
        "Low-rank",
        build_low_rank,
        {"rank": 2, "initial_scale": 0.1},
        "normal with diagonal plus rank-r covariance (factor analysis)",
        fixed_draws=True,
    ),
    "asvi": Family(
        "asvi",
        "ASVI",
        build_asvi,
        {"mean_field": False, "initial_prior_weight": 0.5},
        "automatic structured VI: the prior's graph with trainable conditionals",
        supports=supports_asvi,
        requirement="a JointDistribution prior (Model.prior or the base of Model.prior_distribution)",
    ),
    "maf": Family(
        "maf",
        "MAF",
        build_maf,
        {"num_layers": 2, "hidden_units": 32, "num_hidden_layers": 1, "initial_scale": 0.1},
        "masked autoregressive flow on a mean-field base (sequential sampling)",
        check_horizon=FLOW_CHECK_HORIZON,
    ),
    "real_nvp": Family(
        "real_nvp",
        "RealNVP",
        build_real_nvp,
        {"num_layers": 4, "hidden_units": 32, "num_hidden_layers": 1, "initial_scale": 0.1},
        "affine coupling flow on a mean-field base",
        check_horizon=FLOW_CHECK_HORIZON,
        supports=_at_least_2d,
        requirement="dimension >= 2",
    ),
    "neural_spline": Family(
        "neural_spline",
        "Neural spline",
        build_neural_spline,
        {
            "num_layers": 4,
            "hidden_units": 32,
            "num_hidden_layers": 1,
            "num_bins": 8,
            "spline_range": 5.0,
            "initial_scale": 0.1,
        },
        "rational-quadratic spline coupling flow on a mean-field base",
        check_horizon=FLOW_CHECK_HORIZON,
        supports=_at_least_2d,
        requirement="dimension >= 2",
    ),
    # Baselines on the same axes (kind != "svi": build runs the method; see harness.baselines).
    "laplace": Family(
        "laplace",
        "Laplace",
        build_laplace,
        {"max_iterations": 1000, "tolerance": 1e-3},
        "Gaussian at the mode, inverse-Hessian covariance (unconstrained scale)",
        kind="laplace",
    ),
    "pathfinder": Family(
        "pathfinder",
        "Pathfinder",
        build_pathfinder,
        {
            "num_paths": 1,
            "history_size": 6,
            "num_elbo_draws": 25,
            "num_draws": 1000,
            "max_iterations": 1000,
        },
        "best L-BFGS-path normal by ELBO; multi-path: PSIS resampling (Zhang et al. 2022)",
        kind="pathfinder",
    ),
    "cavi": Family(
        "cavi",
        "CAVI",
        build_cavi,
        {"num_sweeps": 100, "tolerance": 1e-10, "factorize_weights": False},
        "coordinate-ascent VI, closed-form q(w) q(σ²) updates",
        kind="cavi",
        supports=supports_cavi,
        requirement="normal-inverse-gamma linear regression (Model.data with x, y, "
        "mean0, precision0, a0, b0)",
    ),
    "nuts": Family(
        "nuts",
        "NUTS",
        build_nuts,
        {"num_chains": 4, "num_warmup": 500, "num_draws": 500, "target_accept_prob": 0.8},
        "No-U-Turn sampler at a fixed draw budget (draws only: no ELBO, no k̂)",
        kind="mcmc",
    ),
    # Encoder families of amortized models (a VAE's q(z | x); fitted by harness.engines.amortized.run).
    "encoder_diagonal": Family(
        "encoder_diagonal",
        "Diagonal Gaussian",
        build_encoder_diagonal,
        {"hidden_units": 64},
        "VAE encoder: diagonal Gaussian q(z | x)",
        kind="amortized",
        supports=supports_amortized,
        requirement=_AMORTIZED,
    ),
    "encoder_full_covariance": Family(
        "encoder_full_covariance",
        "Full-covariance Gaussian",
        build_encoder_full_covariance,
        {"hidden_units": 64},
        "VAE encoder: full-covariance Gaussian q(z | x)",
        kind="amortized",
        supports=supports_amortized,
        requirement=_AMORTIZED,
    ),
    "encoder_iaf": Family(
        "encoder_iaf",
        "IAF encoder",
        build_encoder_iaf,
        {"hidden_units": 64, "num_layers": 2, "flow_hidden_units": 32, "context_size": 16},
        "VAE encoder: Gaussian and context, then IAF steps (Kingma et al. 2016)",
        kind="amortized",
        supports=supports_amortized,
        requirement=_AMORTIZED,
    ),
    # Appended, not inserted: a family's colour and marker follow its registry position.
    "gaussian_mixture": Family(
        "gaussian_mixture",
        "Gaussian mixture",
        build_gaussian_mixture,
        {"num_components": 4, "covariance": "full", "initial_scale": 0.1},
        "mixture of K Gaussians, trainable weights, stratified ELBO (Morningstar et al. 2021)",
        check_horizon=MIXTURE_CHECK_HORIZON,
        # A step draws sample_size particles from every component and log q sums K terms per
        # draw (K² per particle set): 64 components are far past any multimodal zoo target.
        ranges={"num_components": count(1, 64), "covariance": COVARIANCES},
    ),
}


# The allowed values of every numeric hyperparameter (one name means one thing in every family),
# checked when a spec is loaded.  Widths and counts are bounded so that a typo (1e9 hidden
# units) is refused up front instead of exhausting memory in a worker.
HYPERPARAMETER_RANGES: dict[str, Range | tuple[str, ...]] = {
    "initial_scale": POSITIVE,
    "num_layers": count(1, 64),
    "hidden_units": count(1, 4096),
    "num_hidden_layers": count(1, 16),
    "flow_hidden_units": count(1, 4096),
    "context_size": count(1, 1024),
    "rank": count(1, 1000),
    "num_bins": count(1, 256),
    "spline_range": POSITIVE,
    "initial_prior_weight": PROBABILITY,
    "max_iterations": count(1, 1_000_000),
    "tolerance": POSITIVE,
    "num_sweeps": count(1, 1_000_000),
    "num_chains": count(1, 1024),
    "num_warmup": count(1, 1_000_000),
    "num_draws": count(1, 1_000_000),
    "target_accept_prob": PROBABILITY,
    "num_paths": count(1, 256),
    "history_size": count(1, 100),
    "num_elbo_draws": count(1, 100_000),
}


def hyperparameter_ranges(name: str) -> Mapping[str, Range]:
    """The allowed values of family ``name``'s hyperparameters: the shared table, and the
    family's own :attr:`Family.ranges`."""
    family = FAMILIES.get(name)
    return {**HYPERPARAMETER_RANGES, **(family.ranges if family is not None else {})}


def particle_size(hyperparameters: Mapping[str, Any], dimension: int) -> int:
    """Elements one Monte Carlo particle costs in a fitting step of a family with these
    hyperparameters on a ``dimension``-d model: the draw and its log density (2d), and per
    flow layer its hidden activations and spline bins; a mixture draws a particle from each
    of its K components and evaluates each against all K (an upper bound, for the resource
    check of a spec, :data:`harness.limits.MAX_STEP_ELEMENTS`)."""
    h = hyperparameters
    width = max(h.get("hidden_units", 0), h.get("flow_hidden_units", 0))
    per_layer = h.get("num_hidden_layers", 1) * width + dimension * (2 + 3 * h.get("num_bins", 0))
    components = h.get("num_components", 1)
    return int(components**2 * (h.get("num_layers", 1) * per_layer + 2 * dimension))


__all__ = [
    "FAMILIES",
    "HYPERPARAMETER_RANGES",
    "Family",
    "hyperparameter_ranges",
    "particle_size",
]
