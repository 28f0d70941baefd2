"""inference_gym adapter: ground truth in event order; the exact random-walk posterior."""

from __future__ import annotations

import numpy as np
import scipy.stats
import tensorflow as tf

from harness.models import MODELS
from harness.models.gym import adapt


def test_ground_truth_follows_the_event_order():
    """The vector event follows the target's event structure; each reference coordinate must be
    the ground truth of the part at that position (VectorModel pairs them in sorted-key order)."""
    from inference_gym import using_tensorflow as gym

    target = gym.targets.StochasticVolatilitySP500Small(use_markov_chain=True)
    truth = target.sample_transformations["identity"].ground_truth_mean
    expected = np.concatenate(
        [np.reshape(truth[field], [-1]) for field in target.event_shape._fields]
    )
    np.testing.assert_array_equal(MODELS["stochastic_volatility"]().reference.mean, expected)
    schools = gym.targets.EightSchools()
    truth = schools.sample_transformations["identity"].ground_truth_mean
    ref = MODELS["eight_schools"]().reference
    # EightSchools' event is a dict: the vector is in sorted-key order (avg_effect first).
    assert ref.mean[0] == truth["avg_effect"] and ref.mean[1] == truth["log_stddev"]
    np.testing.assert_array_equal(ref.mean[2:], truth["school_effects"])


def test_random_walk_posterior_satisfies_bayes_rule_with_the_gym_density():
    """log p(y, z) − log p(z | y) = log Z at every z: the closed form matches the density."""
    model = MODELS["brownian_motion"]()
    ref = model.reference
    z = tf.random.stateless_normal([6, model.dimension], seed=[1, 2]) * 0.3
    log_joint = model.unnormalized_log_prob(z).numpy().astype(np.float64)
    log_posterior = scipy.stats.multivariate_normal(ref.mean, ref.covariance).logpdf(
        z.numpy().astype(np.float64)
    )
    # float32 density: ~1e-6 relative error on log p values of order 100.
    np.testing.assert_allclose(log_joint - log_posterior, ref.log_normalizer, atol=1e-3)


def test_published_random_walk_moments_agree_with_the_closed_form():
    from inference_gym import using_tensorflow as gym

    published = adapt(
        gym.targets.BrownianMotionMissingMiddleObservations(use_markov_chain=True),
        name="brownian_motion",
        pretty_name="",
        description="",
    ).reference
    exact = MODELS["brownian_motion"]().reference
    z = (published.mean - exact.mean) / published.mean_standard_error
    z_sd = (
        published.standard_deviation - exact.standard_deviation
    ) / published.standard_deviation_standard_error
    # 4.5 sigma over 30 coordinates: a false alarm has probability < 1e-3.
    assert np.all(np.abs(z) < 4.5), z
    assert np.all(np.abs(z_sd) < 4.5), z_sd
