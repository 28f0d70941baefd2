"""Encoder families of amortized models: ``q(z | x)`` of a variational autoencoder.

An encoder family (``Family.kind == "amortized"``) builds an :class:`Encoder`: one MLP
``x → relu(hidden_units) → local parameters`` and what those parameters mean:

* ``diagonal``: ``q(z | x) = Normal(μ(x), diag σ(x)²)``;
* ``full_covariance``: ``Normal(μ(x), L(x) L(x)ᵀ)`` with ``L`` lower triangular;
* ``iaf``: inverse autoregressive flow of Kingma et al. (2016): the encoder outputs a diagonal
  Gaussian ``(μ, σ)`` *and a context* ``h``; ``num_layers`` IAF steps
  ``z ← s ⊙ z + (1 − s) ⊙ m``, ``(m, logit s) = MADE(z, h)`` (their numerically stable,
  gated form of the update), with the order of ``z`` reversed between steps.  The MADE weights
  are shared by all images (they are global parameters, like the encoder's); only
  ``μ, σ, h`` are per image.

Training and evaluation: :mod:`harness.engines.amortized`.
"""

from __future__ import annotations

import math

import numpy as np

# Smallest scale of a Gaussian encoder (added to a softplus): keeps log q finite when the
# optimizer drives a scale towards 0.
_MIN_SCALE = 1e-4
# Initial logit of the IAF gate s: Kingma et al. (2016) initialise its bias to +1 or +2 so that
# s starts close to 1; sigmoid(2) ≈ 0.88, so each step starts close to the identity.
_IAF_GATE_BIAS = 2.0


# --- networks ------------------------------------------------------------------------------------


def dense(shape, seed, name):
    """A Glorot-uniform weight and a zero bias, as variables (created now, never lazily)."""
    import tensorflow as tf

    limit = math.sqrt(6.0 / (shape[0] + shape[1]))
    w = tf.Variable(tf.random.stateless_uniform(shape, seed, -limit, limit), name=f"{name}_w")
    b = tf.Variable(tf.zeros(shape[1:]), name=f"{name}_b")
    return w, b


def split_seeds(seed, n):
    import tensorflow as tf
    import tensorflow_probability as tfp

    return tfp.random.split_seed(tf.convert_to_tensor(seed, tf.int32), n=n)


class Encoder:
    """``q(z | x)`` of one encoder family: an MLP to local parameters, and what they mean.

    The base class is the diagonal Gaussian; subclasses say what their parameters mean
    (:class:`FullCovarianceEncoder`, :class:`IAFEncoder`).

    Args:
      latent_size: Dimension of z.
      num_pixels: Dimension of x.
      hidden_units: Width of the encoder's hidden layer.
      seed: Stateless seed of the initial weights.
    """

    num_flow_layers = 0

    def __init__(self, latent_size: int, num_pixels: int, *, hidden_units: int, seed):
        self.latent_size = latent_size
        self.num_local_parameters = self._num_local_parameters()
        self._seeds = split_seeds(seed, 3 + self.num_flow_layers)
        self.w1, self.b1 = dense((num_pixels, hidden_units), self._seeds[0], "encoder_1")
        self.w2, self.b2 = dense(
            (hidden_units, self.num_local_parameters), self._seeds[1], "encoder_2"
        )
        self.trainable_variables = (self.w1, self.b1, self.w2, self.b2)

    def _num_local_parameters(self) -> int:
        return 2 * self.latent_size

    def local_parameters(self, x):
        """The encoder's output for images ``x`` ``[N, 64]``: ``[N, num_local_parameters]``."""
        import tensorflow as tf

        return tf.nn.relu(x @ self.w1 + self.b1) @ self.w2 + self.b2

    def base_distribution(self, params):
        """The Gaussian part of ``q(z | x)`` (batch ``[N]``, event ``[d]``)."""
        import tensorflow as tf
        import tensorflow_probability as tfp

        d = self.latent_size
        return tfp.distributions.MultivariateNormalDiag(
            params[..., :d], tf.nn.softplus(params[..., d : 2 * d]) + _MIN_SCALE
        )

    def sample_and_log_prob(self, params, sample_size: int, seed):
        """``z ~ q(z | x)`` ``[sample_size, N, d]`` and ``log q(z | x)`` ``[sample_size, N]``."""
        return self.base_distribution(params).experimental_sample_and_log_prob(
            sample_size, seed=seed
        )

    def kl_to_prior(self, params):
        """Analytic ``KL(q(z | x) ‖ Normal(0, I))`` ``[N]``, or None where there is none."""
        import tensorflow_probability as tfp

        return tfp.distributions.kl_divergence(
            self.base_distribution(params), prior(self.latent_size)
        )


class FullCovarianceEncoder(Encoder):
    """``Normal(μ(x), L(x) L(x)ᵀ)`` with ``L`` lower triangular (softplus diagonal)."""

    def _num_local_parameters(self) -> int:
        d = self.latent_size
        return d + d * (d + 1) // 2

    def base_distribution(self, params):
        import tensorflow_probability as tfp

        tfd, tfb = tfp.distributions, tfp.bijectors
        d = self.latent_size
        scale_tril = tfb.FillScaleTriL(diag_shift=_MIN_SCALE)(params[..., d:])
        return tfd.MultivariateNormalTriL(params[..., :d], scale_tril)


class IAFEncoder(Encoder):
    """A diagonal Gaussian and a context ``h`` from the MLP, then ``num_layers`` gated IAF
    steps (MADEs shared by all images) conditioned on ``h``.

    Args:
      num_layers, flow_hidden_units, context_size: IAF steps, width of each MADE's hidden
        layer, and size of the context ``h``.
    """

    def __init__(
        self,
        latent_size: int,
        num_pixels: int,
        *,
        hidden_units: int,
        seed,
        num_layers: int,
        flow_hidden_units: int,
        context_size: int,
    ):
        self.num_flow_layers, self.context_size = num_layers, context_size
        super().__init__(latent_size, num_pixels, hidden_units=hidden_units, seed=seed)
        self.flows = []
        variables = list(self.trainable_variables)
        for k in range(num_layers):
            layer = _made(
                latent_size, flow_hidden_units, context_size, self._seeds[3 + k], f"iaf_{k}"
            )
            self.flows.append(layer)
            variables += [v for v in layer.values() if hasattr(v, "assign")]
        self.trainable_variables = tuple(variables)

    def _num_local_parameters(self) -> int:
        return 2 * self.latent_size + self.context_size

    def sample_and_log_prob(self, params, sample_size: int, seed):
        import tensorflow as tf

        z, log_q = super().sample_and_log_prob(params, sample_size, seed)
        context = params[..., 2 * self.latent_size :]
        for layer in self.flows:
            m, gate_logit = _made_apply(layer, z, context)
            gate = tf.sigmoid(gate_logit)
            z = gate * z + (1.0 - gate) * m
            # log |det ∂z'/∂z| = Σ log s: the Jacobian is triangular with diagonal s.
            log_q = log_q - tf.reduce_sum(tf.math.log_sigmoid(gate_logit), axis=-1)
            z = tf.reverse(z, axis=[-1])
        return z, log_q

    def kl_to_prior(self, params):
        return None  # no closed form through the flow


def _made(d: int, hidden_units: int, context_size: int, seed, name: str) -> dict:
    """Weights and autoregressive masks of a one-hidden-layer MADE (Germain et al., 2015) with
    an unmasked context input; outputs ``m`` and ``logit s``, each ``[d]``.

    Output ``i`` depends on ``z_j`` for ``j < i`` only (degrees: inputs 1..d, hidden units
    cycling through 1..d−1, an output of degree i sees hidden units of degree < i).  The output
    weights start at zero, so each step starts as ``z ← sigmoid(2) z + (1 − sigmoid(2)) · 0``.
    """
    import tensorflow as tf

    s = split_seeds(seed, 2)
    input_degrees = np.arange(1, d + 1)
    hidden_degrees = np.arange(hidden_units) % max(1, d - 1) + 1
    w_in, b_in = dense((d, hidden_units), s[0], f"{name}_in")
    layer = (
        {}
        if not context_size
        else {"w_context": dense((context_size, hidden_units), s[1], f"{name}_context")[0]}
    )
    return layer | {
        "w_in": w_in,
        "b_in": b_in,
        "mask_in": tf.constant(hidden_degrees[None, :] >= input_degrees[:, None], tf.float32),
        "w_m": tf.Variable(tf.zeros((hidden_units, d)), name=f"{name}_m_w"),
        "b_m": tf.Variable(tf.zeros(d), name=f"{name}_m_b"),
        "w_s": tf.Variable(tf.zeros((hidden_units, d)), name=f"{name}_s_w"),
        "b_s": tf.Variable(tf.fill([d], _IAF_GATE_BIAS), name=f"{name}_s_b"),
        "mask_out": tf.constant(input_degrees[None, :] > hidden_degrees[:, None], tf.float32),
    }


def _made_apply(layer: dict, z, context):
    import tensorflow as tf

    hidden = z @ (layer["w_in"] * layer["mask_in"]) + layer["b_in"]
    if "w_context" in layer:
        hidden = hidden + context @ layer["w_context"]
    hidden = tf.nn.relu(hidden)
    m = hidden @ (layer["w_m"] * layer["mask_out"]) + layer["b_m"]
    gate_logit = hidden @ (layer["w_s"] * layer["mask_out"]) + layer["b_s"]
    return m, gate_logit


def prior(latent_size: int):
    """``p(z) = Normal(0, I)``."""
    import tensorflow as tf
    import tensorflow_probability as tfp

    return tfp.distributions.MultivariateNormalDiag(tf.zeros(latent_size), tf.ones(latent_size))


# --- family builders (registered in harness.families) ---------------------------------------------


def supports_amortized(model) -> bool:
    """Whether ``model`` is an amortized model (the encoder families apply to nothing else)."""
    return getattr(model, "kind", "posterior") == "amortized"


def build_encoder_diagonal(model, *, seed, hidden_units: int = 64) -> Encoder:
    """Diagonal-Gaussian encoder: ``q(z | x) = Normal(μ(x), diag σ(x)²)``.

    Args:
      hidden_units: Width of the encoder MLP's hidden layer.
    """
    return Encoder(model.dimension, _num_pixels(model), hidden_units=hidden_units, seed=seed)


def build_encoder_full_covariance(model, *, seed, hidden_units: int = 64) -> Encoder:
    """Full-covariance Gaussian encoder: ``Normal(μ(x), L(x) L(x)ᵀ)``, ``L`` lower triangular
    with a softplus diagonal.

    Args:
      hidden_units: Width of the encoder MLP's hidden layer.
    """
    return FullCovarianceEncoder(
        model.dimension, _num_pixels(model), hidden_units=hidden_units, seed=seed
    )


def build_encoder_iaf(
    model,
    *,
    seed,
    hidden_units: int = 64,
    num_layers: int = 2,
    flow_hidden_units: int = 32,
    context_size: int = 16,
) -> Encoder:
    """IAF encoder (Kingma et al., 2016): diagonal Gaussian and context from the encoder MLP,
    then ``num_layers`` context-conditioned IAF steps with shared weights.

    Args:
      hidden_units: Width of the encoder MLP's hidden layer.
      num_layers: IAF steps.
      flow_hidden_units: Width of each step's MADE hidden layer.
      context_size: Size of the per-image context ``h`` fed to every step.
    """
    return IAFEncoder(
        model.dimension,
        _num_pixels(model),
        hidden_units=hidden_units,
        seed=seed,
        num_layers=num_layers,
        flow_hidden_units=flow_hidden_units,
        context_size=context_size,
    )


def _num_pixels(model) -> int:
    if not supports_amortized(model):
        raise ValueError(f"encoder families apply to amortized models only, not '{model.name}'")
    return int(np.shape(model.data["x_train"])[1])
