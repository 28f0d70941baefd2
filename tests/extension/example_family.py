"""An example family as a user adds one: this file and one registry line.

A Gaussian with a diagonal scale and a shared scalar multiplier on it."""

from __future__ import annotations


def build_example_family(model, *, seed, initial_scale: float = 0.5, batch_shape=()):
    import tensorflow as tf
    import tensorflow_probability as tfp

    tfd = tfp.distributions
    d = model.dimension
    loc = tf.Variable(tf.random.stateless_uniform([*batch_shape, d], seed, -1.0, 1.0, model.dtype))
    log_scale = tf.Variable(
        tf.fill([*batch_shape, d], tf.cast(tf.math.log(initial_scale), model.dtype))
    )
    shared = tf.Variable(tf.zeros(batch_shape, model.dtype))
    scale = tfp.util.DeferredTensor(
        log_scale, lambda s: tf.exp(s + shared[..., None]), shape=log_scale.shape
    )
    return tfd.TransformedDistribution(
        tfd.MultivariateNormalDiag(loc, scale), model.default_event_space_bijector
    )
