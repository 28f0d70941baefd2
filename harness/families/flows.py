"""Normalizing-flow families stacked on a Gaussian base.

Each flow is ``event_space_bijector ∘ affine(μ, σ) ∘ flow_K ∘ … ∘ flow_1`` applied to a standard
normal.  The flow layers are initialised near the identity (last-layer weights drawn with a small
scale, zero biases), so at step 0 the surrogate is the mean-field Gaussian base and early steps
are as stable as mean-field's.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

tfb = tfp.bijectors
tfd = tfp.distributions

# Kernel init scale of the autoregressive networks.  Small, so that shift and log-scale start
# near 0 (flow ≈ identity), but non-zero so that gradients reach the hidden layers at once.
_NEAR_IDENTITY_SCALE = 1e-2


def _made(dim: int, hidden_units: int, num_hidden_layers: int, seed: int, dtype):
    return tfb.AutoregressiveNetwork(
        params=2,
        event_shape=[dim],
        hidden_units=[hidden_units] * num_hidden_layers,
        activation="tanh",
        kernel_initializer=tf_keras.initializers.VarianceScaling(
            scale=_NEAR_IDENTITY_SCALE, seed=seed),
        bias_initializer="zeros",
        dtype=dtype,
    )


def build_iaf(model, *, seed, num_layers: int = 2, hidden_units: int = 32,
              num_hidden_layers: int = 1, initial_scale: float = 0.1):
    """Inverse autoregressive flow (Kingma et al., 2016) on a mean-field Gaussian base.

    Sampling is one pass per layer (fast draws, as VI needs); each layer is a MADE network
    (Germain et al., 2015) giving shift and log-scale.  Layers alternate variable order.

    Args:
      model: A :class:`harness.models.base.Model`.
      seed: Stateless seed (shape ``[2]`` int32) for all initial values.
      num_layers: Number of IAF layers (depth).
      hidden_units: Width of each MADE hidden layer.
      num_hidden_layers: Hidden layers per MADE network.
      initial_scale: Initial σ of the Gaussian base on the unconstrained scale.
    """
    return _autoregressive(model, seed=seed, num_layers=num_layers, hidden_units=hidden_units,
                           num_hidden_layers=num_hidden_layers, initial_scale=initial_scale,
                           inverse=True)


def _autoregressive(model, *, seed, num_layers, hidden_units, num_hidden_layers, initial_scale,
                    inverse: bool):
    dim = model.dimension
    dtype = model.dtype
    seeds = tfp.random.split_seed(seed, n=num_layers + 1)
    int_seeds = [int(s[0]) % (2**31 - 1) for s in seeds[1:]]
    loc = tf.Variable(tf.random.stateless_uniform([dim], seeds[0], -2.0, 2.0, dtype=dtype),
                      name="base_loc")
    scale = tfp.util.TransformedVariable(tf.fill([dim], tf.constant(initial_scale, dtype)),
                                         tfb.Softplus(), name="base_scale")
    layers = []
    for k in range(num_layers):
        maf = tfb.MaskedAutoregressiveFlow(
            shift_and_log_scale_fn=_made(dim, hidden_units, num_hidden_layers, int_seeds[k],
                                         dtype))
        layers.append(tfb.Invert(maf) if inverse else maf)
        if k + 1 < num_layers:
            layers.append(tfb.Permute(permutation=list(reversed(range(dim)))))
    # Chain applies right to left: flow layers first, then the affine base, then the support.
    bijector = tfb.Chain([model.default_event_space_bijector,
                          tfb.Shift(loc), tfb.Scale(scale)] + list(reversed(layers)))
    q = tfd.TransformedDistribution(
        tfd.Sample(tfd.Normal(tf.constant(0.0, dtype), 1.0), sample_shape=[dim]), bijector,
        name="iaf_surrogate" if inverse else "maf_surrogate")
    # Keras builds the MADE weights lazily at the first call: build them now so the fit sees
    # every trainable variable from step 0 (and XLA can compile the loop).
    q.sample(seed=seeds[0])
    return q
