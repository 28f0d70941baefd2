"""An example model as a user adds one: this file and one registry line (tests/test_extension.py).

A 2-d Gaussian target with a known mean, covariance and normalizer."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from harness.models.base import Model, exact_reference


def example_gaussian(scale: float = 2.0) -> Model:
    """``N((1, −1), diag(scale², 1))``, unnormalized."""
    mean, std = np.array([1.0, -1.0]), np.array([scale, 1.0])

    def unnormalized_log_prob(z):
        z = tf.convert_to_tensor(z, tf.float32)
        return -0.5 * tf.reduce_sum(((z - mean) / std) ** 2, axis=-1)

    return Model(
        name="example_gaussian",
        pretty_name="Example Gaussian",
        dimension=2,
        dtype=tf.float32,
        default_event_space_bijector=tfp.bijectors.Identity(),
        unnormalized_log_prob=unnormalized_log_prob,
        reference=exact_reference(
            mean,
            np.diag(std**2),
            log_normalizer=float(np.log(2 * np.pi) + np.log(std).sum()),
            provenance="closed form",
        ),
    )
