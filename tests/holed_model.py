"""A test model for tests/test_saa.py: a Gaussian with a NaN hole (imported by name, so that
the cell, and its seed, are the same on every machine)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from harness.models.base import Model, exact_reference


def holed():
    """N(0, 1) in 2-d whose log density is NaN beyond |z| = 2.5 in either coordinate."""

    def unnormalized_log_prob(z):
        z = tf.convert_to_tensor(z, tf.float32)
        inside = tf.reduce_all(tf.abs(z) < 2.5, axis=-1)
        return tf.where(inside, -0.5 * tf.reduce_sum(z**2, axis=-1), float("nan"))

    return Model(
        name="holed",
        pretty_name="Holed Gaussian",
        dimension=2,
        dtype=tf.float32,
        default_event_space_bijector=tfp.bijectors.Identity(),
        unnormalized_log_prob=unnormalized_log_prob,
        reference=exact_reference(np.zeros(2), np.eye(2), provenance="closed form"),
    )
