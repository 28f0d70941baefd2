"""Adapter from inference_gym targets to the harness's model contract.

A target is wrapped in ``inference_gym``'s ``VectorModel`` (structured events flattened into one
vector, through the target's own event-space bijector), and its reference is the target's
published ground truth for the ``identity`` sample transformation.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from harness.models.base import Model, Reference

# Number of exact draws stored for targets that have an exact sampler.
_REFERENCE_DRAWS = 20_000
_REFERENCE_DRAW_SEED = (20_240_601, 7)


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
    identity = vector.sample_transformations["identity"]
    mean = _numpy(identity.ground_truth_mean)
    std = _numpy(identity.ground_truth_standard_deviation)
    mean_se = _numpy(identity.ground_truth_mean_standard_error)
    std_se = _numpy(identity.ground_truth_standard_deviation_standard_error)
    kind = "moments"
    draws = None
    provenance = (f"inference_gym {target.__class__.__name__} ground truth "
                  "(sample_transformations['identity'])")
    if hasattr(target, "sample"):
        # An exact sampler: store draws for coverage and W1 (vector form of the event).
        draws = _numpy(vector.default_event_space_bijector(
            vector.default_event_space_bijector.inverse(
                _flatten(vector, target.sample(_REFERENCE_DRAWS, seed=_REFERENCE_DRAW_SEED)))))
        kind = "draws"
        provenance += (f"; draws: {target.__class__.__name__}.sample({_REFERENCE_DRAWS}, "
                       f"seed={_REFERENCE_DRAW_SEED})")
    if mean_se is None:
        # Analytic ground truth (e.g. Banana): exact, no Monte Carlo error.
        mean_se = np.zeros_like(mean)
    if std_se is None:
        # inference_gym publishes only the mean's standard error for some targets.  Under a
        # normal approximation se(sd) = sd / sqrt(2 ESS) and se(mean) = sd / sqrt(ESS), so
        # se(sd) = se(mean) / sqrt(2).
        std_se = mean_se / np.sqrt(2.0)
        provenance += "; sd standard error derived as se(mean)/sqrt(2)"
    reference = Reference(mean=mean, standard_deviation=std, mean_standard_error=mean_se,
                          standard_deviation_standard_error=std_se, kind=kind,
                          provenance=provenance, draws=draws)
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


def banana(curvature: float = 0.03) -> Model:
    """inference_gym's Banana: a 2-d Gaussian with scales (10, 1), second coordinate shifted by
    ``curvature · (x0² − 100)`` (Haario et al., 1999).  Exact sampler and analytic moments."""
    from inference_gym import using_tensorflow as gym

    return adapt(gym.targets.Banana(curvature=curvature), name="banana",
                 pretty_name="Banana",
                 description="2-d curved Gaussian (Haario et al. 1999); exact draws")


def eight_schools() -> Model:
    """inference_gym's Eight Schools, centered parameterization (Rubin, 1981)::

        avg_effect ~ N(0, 10);  log_stddev ~ N(5, 1)
        school_effects[i] ~ N(avg_effect, exp(log_stddev))
        treatment_effects[i] ~ N(school_effects[i], treatment_stddevs[i])

    Its funnel-shaped posterior is where mean-field Gaussians understate uncertainty.
    """
    from inference_gym import using_tensorflow as gym

    return adapt(gym.targets.EightSchools(), name="eight_schools",
                 pretty_name="Eight schools (centered)",
                 description="hierarchical funnel, centered (Rubin 1981); inference_gym moments")
