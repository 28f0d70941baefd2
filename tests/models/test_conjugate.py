"""Closed-form models: posterior formulas checked against the model's own log density."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import tensorflow as tf

from harness.models import MODELS

CONJUGATE = ["conjugate_normal_mean", "linear_regression", "linear_regression_unknown_noise"]


def _posterior_log_density(model, z):
    """The exact normalized posterior density at ``z`` [k, d], from the model's data."""
    data = model.data
    if model.name != "linear_regression_unknown_noise":
        ref = model.reference
        return scipy.stats.multivariate_normal(ref.mean, ref.covariance).logpdf(z)
    from harness.models.linear_regression_unknown_noise import posterior

    post = posterior(
        data["x"], data["y"], data["mean0"], data["precision0"], data["a0"], data["b0"]
    )
    w, variance = z[:, :-1], z[:, -1]
    cov = np.linalg.inv(post["precision"])
    return np.array(
        [
            scipy.stats.invgamma(post["a"], scale=post["b"]).logpdf(v)
            + scipy.stats.multivariate_normal(post["mean"], v * cov).logpdf(wi)
            for wi, v in zip(w, variance, strict=True)
        ]
    )


@pytest.mark.parametrize("name", CONJUGATE)
def test_log_joint_minus_log_posterior_is_log_normalizer_everywhere(name):
    """Bayes' rule: log p(y, z) − log p(z | y) = log p(y) at every z (deterministic check)."""
    model = MODELS[name](dtype="float64")
    u = tf.random.stateless_normal([7, model.dimension], seed=[5, 6], dtype=tf.float64)
    z = model.default_event_space_bijector(u).numpy()
    log_joint = model.unnormalized_log_prob(z).numpy()
    np.testing.assert_allclose(
        log_joint - _posterior_log_density(model, z),
        model.reference.log_normalizer,
        rtol=0,
        atol=1e-8,
    )


@pytest.mark.parametrize("name", CONJUGATE)
def test_prior_plus_likelihood_is_the_joint(name):
    model = MODELS[name](dtype="float64")
    z = model.prior_distribution.sample(6, seed=[1, 2])
    assert z.shape == (6, model.dimension)
    np.testing.assert_allclose(
        model.prior_distribution.log_prob(z) + model.log_likelihood(z),
        model.unnormalized_log_prob(z),
        rtol=1e-10,
    )


def test_unknown_noise_log_normalizer_is_the_multivariate_t_marginal():
    """Independent formula: y ~ t_{2a0}(X m0, (b0/a0)(I + X Λ0⁻¹ Xᵀ))."""
    model = MODELS["linear_regression_unknown_noise"]()
    d = model.data
    n = d["y"].size
    shape = d["b0"] / d["a0"] * (np.eye(n) + d["x"] @ np.linalg.solve(d["precision0"], d["x"].T))
    expected = scipy.stats.multivariate_t(
        loc=d["x"] @ d["mean0"], shape=shape, df=2 * d["a0"]
    ).logpdf(d["y"])
    assert model.reference.log_normalizer == pytest.approx(expected, abs=1e-8)


@pytest.mark.parametrize("name", CONJUGATE)
def test_exact_draws_match_closed_form_moments(name):
    """Mean and sd of the stored exact draws against the closed form: z-test with the Monte
    Carlo error of n draws (se(sd) ≈ sd·sqrt((κ − 1)/(4n)), κ the sample kurtosis)."""
    ref = MODELS[name]().reference
    n = ref.draws.shape[0]
    z_mean = (ref.draws.mean(0) - ref.mean) / (ref.standard_deviation / np.sqrt(n))
    kurtosis = scipy.stats.kurtosis(ref.draws, axis=0, fisher=False)
    se_sd = ref.standard_deviation * np.sqrt((kurtosis - 1) / (4 * n))
    z_sd = (ref.draws.std(0, ddof=1) - ref.standard_deviation) / se_sd
    # 4.5 sigma over a handful of coordinates: a false alarm has probability < 1e-4.
    assert np.all(np.abs(z_mean) < 4.5), z_mean
    assert np.all(np.abs(z_sd) < 4.5), z_sd


@pytest.mark.parametrize("name", CONJUGATE)
def test_simulate_gives_prior_draw_and_model_on_fresh_data(name):
    model = MODELS[name]()
    truth, fresh = model.simulate(11)
    assert truth.shape == (model.dimension,)
    assert fresh.dimension == model.dimension and fresh.name == model.name
    assert not np.allclose(fresh.reference.mean, model.reference.mean)
    again, _ = model.simulate(11)
    np.testing.assert_array_equal(truth, again)


def test_unknown_noise_exposes_data_and_hyperparameters():
    model = MODELS["linear_regression_unknown_noise"](num_features=3, num_observations=20)
    d = model.data
    assert d["x"].shape == (20, 3) and d["y"].shape == (20,)
    assert d["mean0"].shape == (3,) and d["precision0"].shape == (3, 3)
    assert d["a0"] > 0 and d["b0"] > 0
    assert model.dimension == 4
    # The last coordinate is the variance: the bijector maps R onto (0, inf).
    u = tf.constant([[0.0, 0.0, 0.0, -30.0]], tf.float32)
    assert model.default_event_space_bijector(u).numpy()[0, -1] > 0
