"""The mode finder and the initial Gaussian: exact on badly scaled Gaussians, robust on funnels."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from harness.mode import find_mode, initial_gaussian
from harness.models import MODELS
from harness.models.base import Model

tfb = tfp.bijectors


def _gaussian(mean, covariance, name="scaled_gaussian") -> Model:
    """A Gaussian target in float32 (the dtype of the zoo's models)."""
    precision = tf.constant(np.linalg.inv(covariance), tf.float32)
    mean_t = tf.constant(mean, tf.float32)

    def unnormalized_log_prob(z):
        centred = tf.convert_to_tensor(z, tf.float32) - mean_t
        return -0.5 * tf.einsum("...i,ij,...j->...", centred, precision, centred)

    return Model(
        name=name,
        pretty_name=name,
        dimension=len(mean),
        dtype=tf.float32,
        default_event_space_bijector=tfb.Identity(),
        unnormalized_log_prob=unnormalized_log_prob,
        reference=None,
    )


def test_mode_and_covariance_of_a_badly_scaled_correlated_gaussian():
    # A regression-like posterior: centres of 100 and 0.003, sds from 20 to 1e-3, and two
    # coefficients correlated at -0.995 (an uncentred predictor against the intercept).
    mean = np.array([100.0, -3.0, 0.003, 5.0])
    sd = np.array([20.0, 0.5, 1e-3, 2.0])
    correlation = np.eye(4)
    correlation[1, 2] = correlation[2, 1] = -0.995
    correlation[0, 3] = correlation[3, 0] = 0.5
    covariance = correlation * np.outer(sd, sd)
    mode = find_mode(_gaussian(mean, covariance), seed=(1, 2))
    assert mode.found, mode.reason
    # Deterministic code in float32 on a condition number of ~10¹¹ (float32 resolves 10⁷):
    # the gradient's round-off bounds the mode's accuracy to a few hundredths of a posterior sd
    # (measured 0.03), far below what any metric of the harness resolves.
    np.testing.assert_allclose((mode.position - mean) / sd, 0.0, atol=0.1)
    found_sd = np.sqrt(np.diag(mode.covariance))
    np.testing.assert_allclose(found_sd / sd, 1.0, rtol=0.05)
    found_correlation = mode.covariance / np.outer(found_sd, found_sd)
    np.testing.assert_allclose(found_correlation, correlation, atol=0.02)


def test_initial_gaussian_is_the_laplace_approximation_of_a_gaussian():
    model = MODELS["correlated_gaussian"]()
    initial = initial_gaussian(model, seed=(3, 4))
    assert initial.reason.startswith("the mode (Laplace)"), initial.reason
    np.testing.assert_allclose(initial.loc, model.reference.mean, atol=1e-3)
    np.testing.assert_allclose(
        initial.scale_tril @ initial.scale_tril.T, model.reference.covariance, rtol=1e-2, atol=1e-3
    )
    # Its ELBO is log Z exactly: every log weight equals it.
    assert abs(initial.elbo - model.reference.log_normalizer) < 1e-3
    # Mean-field scale: diag(H)^(-1/2), the optimal mean-field sds of a Gaussian target.
    precision = np.linalg.inv(model.reference.covariance)
    np.testing.assert_allclose(initial.scale_diag, np.diag(precision) ** -0.5, rtol=1e-2)


def test_a_funnel_starts_in_its_bulk_not_at_its_mode():
    # Neal's funnel has its mode deep in the neck (v = -40.5): a Gaussian there has an ELBO
    # hundreds of nats worse than one in the bulk, which the path search finds.
    model = MODELS["neals_funnel"]()
    mode = find_mode(model, seed=(5, 6))
    initial = initial_gaussian(model, seed=(5, 6))
    assert mode.position[0] < -30
    assert initial.loc[0] > -5, initial.reason
    assert "L-BFGS path" in initial.reason
    assert initial.elbo > -50


def test_a_mode_far_out_on_an_identity_coordinate_is_a_mode_not_a_runaway():
    # A regression coefficient of 156 (the unscaled wine regression's) sits at |u| > 50 on an
    # identity coordinate: the bijector's log-Jacobian does not change there.
    mean = np.array([156.0, -420.0, 0.5])
    covariance = np.diag([4.0, 25.0, 0.01])
    mode = find_mode(_gaussian(mean, covariance), seed=(1, 2))
    assert mode.found, mode.reason
    np.testing.assert_allclose(mode.position, mean, atol=1e-3 * np.sqrt(np.diag(covariance)).max())


def test_a_scale_heading_for_zero_is_a_runaway():
    # p(σ) ∝ σ⁻² on σ > 0 has no mode: on u = log σ the target −log p − log|J| = u decreases
    # for ever.  The search runs to u ≪ −50, where the Exp bijector's log-Jacobian (= u) still
    # changes: no mode, and the reason says why.
    def unnormalized_log_prob(z):
        return -2.0 * tf.math.log(tf.convert_to_tensor(z, tf.float32)[..., 0])

    model = Model(
        name="improper_scale",
        pretty_name="improper scale",
        dimension=1,
        dtype=tf.float32,
        default_event_space_bijector=tfb.Exp(),
        unnormalized_log_prob=unnormalized_log_prob,
        reference=None,
    )
    mode = find_mode(model, seed=(1, 2))
    assert not mode.found and "ran away" in mode.reason, mode.reason
