"""Adapter from inference_gym targets to the harness's model contract.

A target is wrapped in ``inference_gym``'s ``VectorModel`` (structured events flattened into one
vector, through the target's own event-space bijector), and its reference is the target's
published ground truth for the ``identity`` sample transformation.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from harness.models.base import Model, Reference, exact_reference, nuts_reference

# Number of exact draws stored for targets that have an exact sampler.
_REFERENCE_DRAWS = 20_000
_REFERENCE_DRAW_SEED = (20_240_601, 7)
_RANDOM_WALK_DRAW_SEED = 20_240_641


def adapt(target, *, name: str, pretty_name: str, description: str) -> Model:
    """Wrap an ``inference_gym`` target as a :class:`~harness.models.base.Model`.

    Args:
      target: An ``inference_gym.using_tensorflow`` target instance (e.g. ``Banana()``).
      name: snake_case id for the registry.
      pretty_name: Figure label.
      description: One line for ``harness list``.
    """
    from inference_gym import using_tensorflow as gym

    vector = gym.targets.VectorModel(target, flatten_sample_transformations=True)
    identity = target.sample_transformations["identity"]
    # The flattened identity transformation lists the event's coordinates in its own order
    # (tf.nest sorts mapping keys, e.g. StochasticVolatility's log_volatility comes first
    # although it is last in the event); the ground truth is put back in event order.
    order = _identity_order(vector)
    mean, std, mean_se, std_se = (
        _to_event(_event_order(getattr(identity, field)), order)
        for field in (
            "ground_truth_mean",
            "ground_truth_standard_deviation",
            "ground_truth_mean_standard_error",
            "ground_truth_standard_deviation_standard_error",
        )
    )
    kind = "moments"
    draws = None
    provenance = (
        f"inference_gym {target.__class__.__name__} ground truth "
        "(sample_transformations['identity'])"
    )
    if hasattr(target, "sample"):
        # An exact sampler: store draws for coverage and W1 (vector form of the event).
        draws = _numpy(
            vector.default_event_space_bijector(
                vector.default_event_space_bijector.inverse(
                    _flatten(vector, target.sample(_REFERENCE_DRAWS, seed=_REFERENCE_DRAW_SEED))
                )
            )
        )
        kind = "draws"
        provenance += (
            f"; draws: {target.__class__.__name__}.sample({_REFERENCE_DRAWS}, "
            f"seed={_REFERENCE_DRAW_SEED})"
        )
    if mean_se is None:
        # Analytic ground truth (e.g. Banana): exact, no Monte Carlo error.
        mean_se = np.zeros_like(mean)
    if std_se is None:
        # inference_gym publishes only the mean's standard error for some targets.  Under a
        # normal approximation se(sd) = sd / sqrt(2 ESS) and se(mean) = sd / sqrt(ESS), so
        # se(sd) = se(mean) / sqrt(2).
        std_se = mean_se / np.sqrt(2.0)
        provenance += "; sd standard error derived as se(mean)/sqrt(2)"
    reference = Reference(
        mean=mean,
        standard_deviation=std,
        mean_standard_error=mean_se,
        standard_deviation_standard_error=std_se,
        kind=kind,
        provenance=provenance,
        draws=draws,
    )
    return Model(
        name=name,
        pretty_name=pretty_name,
        dimension=int(vector.event_shape[0]),
        dtype=vector.dtype,
        default_event_space_bijector=vector.default_event_space_bijector,
        unnormalized_log_prob=vector.unnormalized_log_prob,
        reference=reference,
        description=description,
    )


def _flatten(vector, structured):
    """Flatten a structured event of the wrapped target into the VectorModel's vector."""
    if isinstance(structured, (tf.Tensor, np.ndarray)):
        return tf.reshape(structured, [tf.shape(structured)[0], -1])
    parts = tf.nest.flatten(structured)
    n = tf.shape(parts[0])[0]
    return tf.concat([tf.reshape(p, [n, -1]) for p in parts], axis=-1)


def _numpy(x):
    return None if x is None else np.asarray(x, dtype=np.float64)


def _identity_order(vector) -> np.ndarray:
    """Which event coordinate each output of the flattened ``identity`` transformation is.

    Probed with the event ``[0, 1, …, d−1]``: the identity transformation returns a permutation
    of it (the parts of a structured event in the transformation's own order).
    """
    d = int(vector.event_shape[0])
    probe = tf.range(d, dtype=vector.dtype)[tf.newaxis]
    order = np.rint(_numpy(vector.sample_transformations["identity"](probe))[0]).astype(int)
    if sorted(order.tolist()) != list(range(d)):
        raise ValueError("the identity sample transformation is not a permutation of the event")
    return order


def _to_event(flat: np.ndarray | None, order: np.ndarray) -> np.ndarray | None:
    if flat is None:
        return None
    event = np.empty_like(flat)
    event[order] = flat
    return event


def _event_order(ground_truth) -> np.ndarray | None:
    """Flatten a structured ground truth the way ``tf.nest`` flattens the transformation's output
    (mappings in sorted key order), i.e. in the order of the flattened identity transformation."""
    if ground_truth is None:
        return None
    return np.concatenate(
        [np.reshape(_numpy(part), [-1]) for part in tf.nest.flatten(ground_truth)]
    )


def banana(curvature: float = 0.03) -> Model:
    """inference_gym's Banana: a 2-d Gaussian with scales (10, 1), second coordinate shifted by
    ``curvature · (x0² − 100)`` (Haario et al., 1999).  Exact sampler and analytic moments."""
    from inference_gym import using_tensorflow as gym

    return adapt(
        gym.targets.Banana(curvature=curvature),
        name="banana",
        pretty_name="Banana",
        description="2-d curved Gaussian (Haario et al. 1999); exact draws",
    )


def eight_schools() -> Model:
    """inference_gym's Eight Schools, centered parameterization (Rubin, 1981)::

        avg_effect ~ N(0, 10);  log_stddev ~ N(5, 1)
        school_effects[i] ~ N(avg_effect, exp(log_stddev))
        treatment_effects[i] ~ N(school_effects[i], treatment_stddevs[i])

    Its funnel-shaped posterior is where mean-field Gaussians understate uncertainty.
    """
    from inference_gym import using_tensorflow as gym

    return adapt(
        gym.targets.EightSchools(),
        name="eight_schools",
        pretty_name="Eight schools (centered)",
        description="hierarchical funnel, centered (Rubin 1981); inference_gym moments",
    )


def neals_funnel() -> Model:
    """inference_gym's Neal's funnel in 10 dimensions (Neal, 2003, "Slice sampling")::

        x_0 ~ N(0, 3);   x_i | x_0 ~ N(0, exp(x_0 / 2)),  i = 1..9

    Exact sampler; the scale of ``x_1..9`` varies over orders of magnitude with ``x_0``.
    """
    from inference_gym import using_tensorflow as gym

    return adapt(
        gym.targets.NealsFunnel(),
        name="neals_funnel",
        pretty_name="Neal's funnel",
        description="10-d funnel (Neal 2003); exact draws",
    )


def ill_conditioned_gaussian() -> Model:
    """inference_gym's ill-conditioned Gaussian, ``z ~ N(0, Σ)`` in 100 dimensions: Σ has
    eigenvalues ``1/g``, ``g ~ Gamma(0.5, 1)``, rotated by a random orthogonal matrix (fixed
    constructor seed 10).  The condition number is in the 10⁴-10⁶ range.  Exact sampler.
    """
    from inference_gym import using_tensorflow as gym

    return adapt(
        gym.targets.IllConditionedGaussian(),
        name="ill_conditioned_gaussian",
        pretty_name="Ill-conditioned Gaussian",
        description="100-d Gaussian, eigenvalues 1/Gamma(0.5); exact draws",
    )


def brownian_motion() -> Model:
    """inference_gym's Brownian motion with the middle ten of 30 observations missing::

        locs[0] ~ N(0, 0.1);  locs[t] ~ N(locs[t-1], 0.1)
        observed_locs[t] ~ N(locs[t], 0.15)      (t = 10..19 unobserved)

    From the structured-VI benchmark of Ambrogioni et al. (2021), "Automatic structured
    variational inference".  The model is linear-Gaussian, so the posterior is exactly Gaussian:
    the reference is analytic (precision ``DᵀD/0.1² + M/0.15²``, ``D`` the first-difference
    operator with ``locs[-1] = 0``, ``M`` the observation mask; mean ``P⁻¹ M y / 0.15²``) with
    exact log Z and draws, computed from inference_gym's data (inference_gym's published Monte
    Carlo moments are checked against it in the tests).
    """
    from inference_gym import using_tensorflow as gym
    from inference_gym.internal import data

    # use_markov_chain: the same density as a tfd.MarkovChain, which builds in ~0.05 s instead
    # of ~1.5 s (the joint-distribution coroutine is traced step by step).
    model = adapt(
        gym.targets.BrownianMotionMissingMiddleObservations(use_markov_chain=True),
        name="brownian_motion",
        pretty_name="Brownian motion",
        description="30-step random walk, middle 10 observations missing; exact Gaussian posterior",
    )
    return dataclasses.replace(
        model,
        reference=_random_walk_posterior(**data.brownian_motion_missing_middle_observations()),
    )


def _random_walk_posterior(observed_locs, innovation_noise_scale, observation_noise_scale):
    """Exact Gaussian posterior of a random walk observed with noise (NaN = missing)."""
    y = np.asarray(observed_locs, np.float64)
    n = y.size
    observed = np.isfinite(y)
    y0 = np.where(observed, y, 0.0)
    difference = np.eye(n) - np.eye(n, k=-1)  # locs[t] − locs[t−1], locs[−1] = 0
    q, r = innovation_noise_scale**2, observation_noise_scale**2
    precision = difference.T @ difference / q + np.diag(observed / r)
    covariance = np.linalg.inv(precision)
    covariance = 0.5 * (covariance + covariance.T)
    mean = covariance @ (y0 / r)
    # log Z = log N(y_obs; 0, H Σ_prior Hᵀ + r I) with Σ_prior = (DᵀD / q)⁻¹.
    prior_cov = q * np.linalg.inv(difference.T @ difference)
    marginal = prior_cov[np.ix_(observed, observed)] + r * np.eye(int(observed.sum()))
    _, logdet = np.linalg.slogdet(marginal)
    yo = y[observed]
    log_normalizer = -0.5 * (
        yo.size * np.log(2 * np.pi) + logdet + yo @ np.linalg.solve(marginal, yo)
    )
    draws = np.random.default_rng(_RANDOM_WALK_DRAW_SEED).multivariate_normal(
        mean, covariance, size=_REFERENCE_DRAWS
    )
    return exact_reference(
        mean,
        covariance,
        log_normalizer=float(log_normalizer),
        draws=draws,
        provenance=(
            f"closed form: Gaussian posterior of a random walk (innovation scale "
            f"{innovation_noise_scale}, observation scale {observation_noise_scale}, "
            f"{n - int(observed.sum())} of {n} missing), inference_gym's data; draws: "
            f"numpy default_rng({_RANDOM_WALK_DRAW_SEED}).multivariate_normal, "
            f"n={_REFERENCE_DRAWS}"
        ),
    )


def brownian_motion_unknown_scales() -> Model:
    """inference_gym's Brownian motion with unknown noise scales (middle 10 of 30 missing)::

        innovation_noise_scale ~ LogNormal(0, 2);  observation_noise_scale ~ LogNormal(0, 2)
        locs[0] ~ N(0, innovation_noise_scale);  locs[t] ~ N(locs[t-1], innovation_noise_scale)
        observed_locs[t] ~ N(locs[t], observation_noise_scale)

    Ambrogioni et al. (2021).  Reference: our NUTS file
    (``harness reference brownian_motion_unknown_scales``), not inference_gym's published
    moments: those disagree with long NUTS runs by up to ~10 of their standard errors (e.g. the
    observation scale's mean 0.101 against 0.113; tensorflow/probability issue #1992 reports
    the same from 10⁷ BlackJAX NUTS steps).
    """
    from inference_gym import using_tensorflow as gym

    model = adapt(
        gym.targets.BrownianMotionUnknownScalesMissingMiddleObservations(use_markov_chain=True),
        name="brownian_motion_unknown_scales",
        pretty_name="Brownian motion, unknown scales",
        description="random walk with unknown noise scales, 10 obs missing; NUTS reference",
    )
    return dataclasses.replace(
        model, reference=nuts_reference("brownian_motion_unknown_scales", missing_ok=True)
    )


def lorenz_bridge() -> Model:
    """inference_gym's convection Lorenz bridge: a stochastic Lorenz-63 system::

        x_0, y_0, z_0 ~ N(0, 1)
        dx = 10 (y − x) + w_x;  dy = x (28 − z) − y + w_y;  dz = x y − 8/3 z + w_z

    integrated by Euler-Maruyama over 30 steps of 0.02 (innovation scale 0.1); only the convection
    ``x`` is observed (noise scale 1), the middle ten observations missing (Ambrogioni et al.,
    2021).  Ground truth: inference_gym's published NUTS moments.
    """
    from inference_gym import using_tensorflow as gym

    return adapt(
        gym.targets.ConvectionLorenzBridge(use_markov_chain=True),
        name="lorenz_bridge",
        pretty_name="Lorenz bridge",
        description="stochastic Lorenz-63, x observed, middle 10 missing; inference_gym moments",
    )


def item_response_theory() -> Model:
    """inference_gym's synthetic one-parameter-logistic item response theory model::

        mean_student_ability ~ N(0.75, 1)
        centered_student_ability[i] ~ N(0, 1)      i = 1..400
        question_difficulty[j] ~ N(0, 1)           j = 1..100
        correct[i, j] ~ Bernoulli(logit = ability[i] + mean_ability − difficulty[j])

    on inference_gym's shipped synthetic data (501 dimensions).  Ground truth: inference_gym's
    published NUTS moments.  See https://en.wikipedia.org/wiki/Item_response_theory.
    """
    from inference_gym import using_tensorflow as gym

    return adapt(
        gym.targets.SyntheticItemResponseTheory(),
        name="item_response_theory",
        pretty_name="Item response theory",
        description="1PL IRT, 400 students x 100 questions (synthetic); inference_gym moments",
    )


def log_gaussian_cox_process() -> Model:
    """inference_gym's synthetic log-Gaussian Cox process (Diggle et al., 2013)::

        amplitude ~ LogNormal(−1, 0.5);  length_scale ~ LogNormal(−1, 1)
        δ ~ GP(0, Matérn-3/2(amplitude, length_scale)) at 100 locations
        counts[i] ~ Poisson(extents[i] · exp(δ[i] + mean_log_intensity))

    on inference_gym's shipped synthetic data (102 dimensions, float64).  Ground truth:
    inference_gym's published NUTS moments.
    """
    from inference_gym import using_tensorflow as gym
    from tensorflow.python.util import deprecation

    # inference_gym builds its GaussianProcess with the deprecated `jitter` argument; the notice
    # would be printed on every build (e.g. in `harness list`).
    with deprecation.silence():
        target = gym.targets.SyntheticLogGaussianCoxProcess()
    return adapt(
        target,
        name="log_gaussian_cox_process",
        pretty_name="Log-Gaussian Cox process",
        description="Matern-3/2 GP log intensity, Poisson counts at 100 points; "
        "inference_gym moments",
    )


def stochastic_volatility() -> Model:
    """inference_gym's stochastic volatility on the last 100 days of S&P 500 returns shipped with
    inference_gym (Stan users' guide, "Stochastic volatility models")::

        persistence ~ 2 Beta(20, 1.5) − 1;  mean_log_volatility ~ Cauchy(0, 5)
        shock_scale ~ HalfCauchy(0, 2)
        h[0] ~ N(0, shock_scale / sqrt(1 − persistence²))
        h[t] ~ N(persistence · h[t−1], shock_scale)
        returns[t] ~ N(0, exp((mean_log_volatility + h[t]) / 2))

    103 dimensions.  Ground truth: inference_gym's published NUTS moments.
    """
    from inference_gym import using_tensorflow as gym

    # use_markov_chain: same density; builds in ~1 s instead of ~8 s.
    return adapt(
        gym.targets.StochasticVolatilitySP500Small(use_markov_chain=True),
        name="stochastic_volatility",
        pretty_name="Stochastic volatility (S&P 500)",
        description="AR(1) log volatility, 100 days of S&P 500 returns; inference_gym moments",
    )
