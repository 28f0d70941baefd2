"""Eight schools, non-centered parameterization (Rubin, 1981; Gelman et al., *BDA3* §5.5).

Generative model (the same priors and data as inference_gym's centered ``EightSchools``,
registered as ``eight_schools``)::

    avg_effect ~ N(0, 10);   log_stddev ~ N(5, 1)
    school_effects_standard[i] ~ N(0, 1)                                  i = 1..8
    school_effects[i] = avg_effect + exp(log_stddev) · school_effects_standard[i]
    treatment_effects[i] ~ N(school_effects[i], treatment_stddevs[i])

The event is ``[avg_effect, log_stddev, school_effects_standard[0..7]]`` (all real: identity
bijector).  Reparameterizing removes the funnel of the centered form (Papaspiliopoulos et al.,
2007; Betancourt & Girolami, 2015).

Reference: a NUTS run made by ``harness reference eight_schools_noncentered`` (file
``harness/data/references/eight_schools_noncentered.npz``); it covers the ten non-centered
coordinates above.  ``avg_effect`` and ``log_stddev`` are the same quantities as in the centered
model, so their reference can be checked against inference_gym's published moments
(``tests/test_reference.py`` does).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from harness.models.base import Model, nuts_reference

tfb = tfp.bijectors
tfd = tfp.distributions

# Rubin (1981), Table 2: estimated coaching effects and their standard errors.
TREATMENT_EFFECTS = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
TREATMENT_STDDEVS = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


def eight_schools_noncentered(dtype: str = "float32") -> Model:
    """Build eight schools in the non-centered parameterization (10 dimensions).

    Args:
      dtype: ``float32`` or ``float64``.
    """
    return _build(
        TREATMENT_EFFECTS, dtype, nuts_reference("eight_schools_noncentered", missing_ok=True)
    )


def _build(treatment_effects: np.ndarray, dtype: str, reference) -> Model:
    tf_dtype = tf.as_dtype(dtype)
    effects = tf.constant(treatment_effects, tf_dtype)
    stddevs = tf.constant(TREATMENT_STDDEVS, tf_dtype)
    prior = tfd.MultivariateNormalDiag(
        loc=tf.constant([0.0, 5.0] + [0.0] * 8, tf_dtype),
        scale_diag=tf.constant([10.0, 1.0] + [1.0] * 8, tf_dtype),
    )

    def log_likelihood(z):
        z = tf.convert_to_tensor(z, tf_dtype)
        school_effects = z[..., :1] + tf.exp(z[..., 1:2]) * z[..., 2:]
        return tf.reduce_sum(tfd.Normal(school_effects, stddevs).log_prob(effects), axis=-1)

    def unnormalized_log_prob(z):
        return prior.log_prob(z) + log_likelihood(z)

    def simulate(seed):
        # Parameters from the prior, effects from the likelihood; the fresh model has no
        # reference (VSBC needs only the true parameters).
        rng = np.random.default_rng(seed)
        z = np.concatenate([rng.normal(0.0, 10.0, 1), rng.normal(5.0, 1.0, 1), rng.normal(size=8)])
        school_effects = z[0] + np.exp(z[1]) * z[2:]
        return z, _build(rng.normal(school_effects, TREATMENT_STDDEVS), dtype, None)

    return Model(
        name="eight_schools_noncentered",
        pretty_name="Eight schools (non-centered)",
        dimension=10,
        dtype=tf_dtype,
        default_event_space_bijector=tfb.Identity(),
        unnormalized_log_prob=unnormalized_log_prob,
        reference=reference,
        description="hierarchical, non-centered (Rubin 1981); NUTS reference file",
        log_likelihood=log_likelihood,
        prior_distribution=prior,
        simulate=simulate,
        data={
            "treatment_effects": np.asarray(treatment_effects),
            "treatment_stddevs": TREATMENT_STDDEVS,
        },
    )
