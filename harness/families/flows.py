"""Normalizing-flow families stacked on a Gaussian base.

Each flow is ``event_space_bijector ∘ affine(μ, σ) ∘ flow_K ∘ … ∘ flow_1`` applied to a standard
normal: the flow layers reshape a standard normal, the affine map places and scales it, and the
model's event-space bijector carries it into the support.  The flow layers are initialised near
the identity (last-layer weights drawn with a small scale, zero biases), so at step 0 the
surrogate is the mean-field Gaussian base and early steps are as stable as mean-field's.  Every
trainable variable exists when the builder returns, so the fitting loop can be XLA-compiled.

Two kinds of layer:

* *autoregressive* (``iaf``, ``maf``): one MADE network (Germain et al., 2015) per layer gives
  shift and log-scale of each coordinate from the preceding ones;
* *coupling* (``real_nvp``, ``neural_spline``): half the coordinates pass unchanged and condition
  an elementwise transform of the other half (Dinh et al., 2017; Durkan et al., 2019); layers
  alternate halves through a reversing permutation.  Both directions cost one network pass.
"""

from __future__ import annotations

import math

import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

tfb = tfp.bijectors
tfd = tfp.distributions

# Kernel init scale of the networks' output layers.  Small, so that the flow starts near the
# identity, but non-zero so that gradients reach the hidden layers at once.
_NEAR_IDENTITY_SCALE = 1e-2

# Smallest bin width/height and knot slope of the spline, so that the spline stays invertible
# with a bounded derivative (1e-3 is the value used by Durkan et al.'s reference code).
_MIN_BIN_SIZE = 1e-3
_MIN_SLOPE = 1e-3


def _int_seeds(seed, n: int) -> list[int]:
    """``n`` Python-int seeds (for Keras initialisers) derived from a stateless seed."""
    return [int(s[0]) % (2**31 - 1) for s in tfp.random.split_seed(seed, n=n)]


def _on_gaussian_base(model, layers, *, seed, initial_scale: float, name: str, initial=None):
    """``event_space_bijector ∘ Shift(μ) ∘ Scale(σ) ∘ layers[-1] ∘ … ∘ layers[0]`` on N(0, I).

    With ``initial`` (a :class:`harness.mode.InitialGaussian`, the default initialisation) the
    affine base is preceded by the fixed map ``u ↦ m₀ + L₀ u`` of the initial Gaussian, with
    μ = 0 and σ = 1: at step 0 the flow is the identity on that Gaussian, and every trainable
    parameter works on a whitened scale (see :func:`harness.families.gaussian.whitening`).
    Without it, μ starts uniform on (-2, 2) (TFP's default initialisation of its affine
    surrogates) and σ at ``initial_scale`` (see :mod:`harness.families.gaussian`).
    """
    dim, dtype = model.dimension, model.dtype
    if initial is not None:
        from harness.families.gaussian import whitening

        shift, linear = whitening(initial, dtype, full=True)
        loc = tf.Variable(tf.zeros([dim], dtype), name="base_loc")
        scale = tfp.util.TransformedVariable(
            tf.ones([dim], dtype), tfb.Softplus(), name="base_scale"
        )
        bijector = tfb.Chain(
            [model.default_event_space_bijector, tfb.Shift(shift), linear]
            + [tfb.Shift(loc), tfb.Scale(scale)]
            + list(reversed(layers))
        )
        return tfd.TransformedDistribution(
            tfd.Sample(tfd.Normal(tf.constant(0.0, dtype), 1.0), sample_shape=[dim]),
            bijector,
            name=name,
        )
    loc = tf.Variable(
        tf.random.stateless_uniform([dim], seed, -2.0, 2.0, dtype=dtype), name="base_loc"
    )
    scale = tfp.util.TransformedVariable(
        tf.fill([dim], tf.constant(initial_scale, dtype)), tfb.Softplus(), name="base_scale"
    )
    # Chain applies right to left: flow layers first, then the affine base, then the support.
    bijector = tfb.Chain(
        [model.default_event_space_bijector, tfb.Shift(loc), tfb.Scale(scale)]
        + list(reversed(layers))
    )
    return tfd.TransformedDistribution(
        tfd.Sample(tfd.Normal(tf.constant(0.0, dtype), 1.0), sample_shape=[dim]),
        bijector,
        name=name,
    )


def _alternate(layers_fn, num_layers: int, dim: int):
    """``num_layers`` layers with a reversing permutation between consecutive ones."""
    layers = []
    for k in range(num_layers):
        layers.append(layers_fn(k))
        if k + 1 < num_layers:
            layers.append(tfb.Permute(permutation=list(reversed(range(dim)))))
    return layers


# ---------------------------------------------------------------- autoregressive (IAF, MAF)


def _made(dim: int, hidden_units: int, num_hidden_layers: int, seed: int, dtype):
    return tfb.AutoregressiveNetwork(
        params=2,
        event_shape=[dim],
        hidden_units=[hidden_units] * num_hidden_layers,
        activation="tanh",
        kernel_initializer=tf_keras.initializers.VarianceScaling(
            scale=_NEAR_IDENTITY_SCALE, seed=seed
        ),
        bias_initializer="zeros",
        dtype=dtype,
    )


def _autoregressive(
    model,
    *,
    seed,
    num_layers,
    hidden_units,
    num_hidden_layers,
    initial_scale,
    inverse: bool,
    initial=None,
):
    """IAF (``inverse=True``) or MAF layers on the Gaussian base."""
    dim = model.dimension
    base_seed, layer_seed = tfp.random.split_seed(seed)
    int_seeds = _int_seeds(layer_seed, num_layers)

    def layer(k):
        made = _made(dim, hidden_units, num_hidden_layers, int_seeds[k], model.dtype)
        # Keras builds MADE weights lazily at the first call: build them now so the fit sees
        # every trainable variable from step 0 (and XLA can compile the loop).  One call on a
        # point, not a draw: drawing from a MAF costs d passes.
        made(tf.zeros([1, dim], model.dtype))
        maf = tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=made)
        return tfb.Invert(maf) if inverse else maf

    return _on_gaussian_base(
        model,
        _alternate(layer, num_layers, dim),
        seed=base_seed,
        initial_scale=initial_scale,
        name="iaf_surrogate" if inverse else "maf_surrogate",
        initial=initial,
    )


def build_iaf(
    model,
    *,
    seed,
    num_layers: int = 2,
    hidden_units: int = 32,
    num_hidden_layers: int = 1,
    initial_scale: float = 0.1,
    initial=None,
):
    """Inverse autoregressive flow (Kingma et al., 2016) on a mean-field Gaussian base.

    Sampling is one network pass per layer (fast draws, as VI needs); the density of an
    arbitrary point needs ``d`` passes per layer.  Each layer is a MADE network (Germain et al.,
    2015) giving shift and log-scale.  Layers alternate variable order.

    Args:
      model: A :class:`harness.models.base.Model`.
      seed: Stateless seed (shape ``[2]`` int32) for all initial values.
      num_layers: Number of IAF layers (depth).
      hidden_units: Width of each MADE hidden layer.
      num_hidden_layers: Hidden layers per MADE network.
      initial_scale: Initial σ of the Gaussian base on the unconstrained scale (uniform
        initialisation only).
      initial: The initial Gaussian (:class:`harness.mode.InitialGaussian`) the flow starts
        as (the identity on it), or None for the uniform initialisation.
    """
    return _autoregressive(
        model,
        seed=seed,
        num_layers=num_layers,
        hidden_units=hidden_units,
        num_hidden_layers=num_hidden_layers,
        initial_scale=initial_scale,
        inverse=True,
        initial=initial,
    )


def build_maf(
    model,
    *,
    seed,
    num_layers: int = 2,
    hidden_units: int = 32,
    num_hidden_layers: int = 1,
    initial_scale: float = 0.1,
    initial=None,
):
    """Masked autoregressive flow (Papamakarios et al., 2017) on a mean-field Gaussian base.

    The mirror image of IAF: the density of any point is one network pass per layer, but
    sampling is sequential, ``d`` passes per layer, so a fitting step costs about ``d`` times an
    IAF step.  Layers alternate variable order.

    Args:
      model: A :class:`harness.models.base.Model`.
      seed: Stateless seed (shape ``[2]`` int32) for all initial values.
      num_layers: Number of MAF layers (depth).
      hidden_units: Width of each MADE hidden layer.
      num_hidden_layers: Hidden layers per MADE network.
      initial_scale: Initial σ of the Gaussian base on the unconstrained scale (uniform
        initialisation only).
      initial: The initial Gaussian (:class:`harness.mode.InitialGaussian`) the flow starts
        as (the identity on it), or None for the uniform initialisation.
    """
    return _autoregressive(
        model,
        seed=seed,
        num_layers=num_layers,
        hidden_units=hidden_units,
        num_hidden_layers=num_hidden_layers,
        initial_scale=initial_scale,
        inverse=False,
        initial=initial,
    )


# ---------------------------------------------------------------- coupling (RealNVP, spline)


class _CouplingNetwork(tf.Module):
    """Dense tanh network ``x0 [..., n_in] -> [..., n_out]`` with eagerly created variables.

    Hidden layers use Glorot-uniform weights; the output layer's weights are drawn at scale
    ``_NEAR_IDENTITY_SCALE`` and its biases are zero, so the output starts near 0.
    """

    def __init__(
        self,
        input_units: int,
        output_units: int,
        *,
        hidden_units: int,
        num_hidden_layers: int,
        seed,
        dtype,
        name: str,
    ):
        super().__init__(name=name)
        sizes = [input_units] + [hidden_units] * num_hidden_layers + [output_units]
        seeds = tfp.random.split_seed(seed, n=len(sizes) - 1)
        self.kernels, self.biases = [], []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            last = i == len(sizes) - 2
            limit = math.sqrt(6.0 / (n_in + n_out)) * (_NEAR_IDENTITY_SCALE if last else 1.0)
            self.kernels.append(
                tf.Variable(
                    tf.random.stateless_uniform(
                        [n_in, n_out], seeds[i], -limit, limit, dtype=dtype
                    ),
                    name=f"kernel_{i}",
                )
            )
            self.biases.append(tf.Variable(tf.zeros([n_out], dtype), name=f"bias_{i}"))

    def network(self, x):
        for i, (kernel, bias) in enumerate(zip(self.kernels, self.biases, strict=True)):
            x = tf.einsum("...i,ij->...j", x, kernel) + bias
            if i + 1 < len(self.kernels):
                x = tf.tanh(x)
        return x


class _AffineCoupling(_CouplingNetwork):
    """``shift_and_log_scale_fn`` of :class:`tfb.RealNVP`: ``x0 -> (shift, log_scale)``."""

    def __call__(self, x0, output_units, **condition_kwargs):
        shift, log_scale = tf.split(self.network(x0), 2, axis=-1)
        return shift, log_scale


class _SplineCoupling(_CouplingNetwork):
    """``bijector_fn`` of :class:`tfb.RealNVP`: ``x0 -> RationalQuadraticSpline`` on x1.

    Each transformed coordinate gets ``num_bins`` widths and heights (softmax, scaled to the
    range ``2B``) and ``num_bins - 1`` interior knot slopes (softplus); the boundary slopes are 1,
    so the spline joins the identity outside ``[-B, B]``.  With the near-zero initial output the
    bins are equal and every slope is 1: the spline starts as the identity.
    """

    def __init__(
        self, input_units, transformed_units, *, num_bins: int, spline_range: float, **kwargs
    ):
        super().__init__(input_units, transformed_units * (3 * num_bins - 1), **kwargs)
        self.num_bins = num_bins
        self.spline_range = spline_range
        self.transformed_units = transformed_units

    def __call__(self, x0, output_units, **condition_kwargs):
        out = self.network(x0)
        out = tf.reshape(
            out,
            tf.concat(
                [tf.shape(out)[:-1], [self.transformed_units, 3 * self.num_bins - 1]], axis=0
            ),
        )
        widths, heights, slopes = tf.split(
            out, [self.num_bins, self.num_bins, self.num_bins - 1], axis=-1
        )
        span = 2 * self.spline_range - self.num_bins * _MIN_BIN_SIZE
        # Offset so that softplus(0 + offset) + _MIN_SLOPE = 1: slopes start at exactly 1.
        offset = math.log(math.expm1(1.0 - _MIN_SLOPE))
        return tfb.RationalQuadraticSpline(
            bin_widths=tf.math.softmax(widths, axis=-1) * span + _MIN_BIN_SIZE,
            bin_heights=tf.math.softmax(heights, axis=-1) * span + _MIN_BIN_SIZE,
            knot_slopes=tf.math.softplus(slopes + offset) + _MIN_SLOPE,
            range_min=-self.spline_range,
        )


def _check_coupling_dimension(model, family: str) -> None:
    if model.dimension < 2:
        raise ValueError(
            f"{family} needs a model of dimension >= 2 (coupling layers split the "
            f"coordinates in two halves); {model.name} has dimension "
            f"{model.dimension}"
        )


def build_real_nvp(
    model,
    *,
    seed,
    num_layers: int = 4,
    hidden_units: int = 32,
    num_hidden_layers: int = 1,
    initial_scale: float = 0.1,
    initial=None,
):
    """RealNVP affine coupling flow (Dinh et al., 2017) on a mean-field Gaussian base.

    Each layer keeps the first ``⌊d/2⌋`` coordinates and shifts and scales the others by
    functions of them; a reversing permutation between layers alternates the halves, so the
    default 4 layers transform every coordinate twice.  Sampling and density both cost one
    network pass per layer.

    Args:
      model: A :class:`harness.models.base.Model` of dimension >= 2.
      seed: Stateless seed (shape ``[2]`` int32) for all initial values.
      num_layers: Number of coupling layers (depth).
      hidden_units: Width of each hidden layer of the coupling networks.
      num_hidden_layers: Hidden layers per coupling network.
      initial_scale: Initial σ of the Gaussian base on the unconstrained scale (uniform
        initialisation only).
      initial: The initial Gaussian (:class:`harness.mode.InitialGaussian`) the flow starts
        as (the identity on it), or None for the uniform initialisation.
    """
    _check_coupling_dimension(model, "real_nvp")
    dim = model.dimension
    base_seed, layer_seed = tfp.random.split_seed(seed)
    seeds = tfp.random.split_seed(layer_seed, n=num_layers)
    masked = dim // 2

    def layer(k):
        return tfb.RealNVP(
            num_masked=masked,
            shift_and_log_scale_fn=_AffineCoupling(
                masked,
                2 * (dim - masked),
                hidden_units=hidden_units,
                num_hidden_layers=num_hidden_layers,
                seed=seeds[k],
                dtype=model.dtype,
                name=f"affine_coupling_{k}",
            ),
        )

    return _on_gaussian_base(
        model,
        _alternate(layer, num_layers, dim),
        seed=base_seed,
        initial_scale=initial_scale,
        name="real_nvp_surrogate",
        initial=initial,
    )


def build_neural_spline(
    model,
    *,
    seed,
    num_layers: int = 4,
    hidden_units: int = 32,
    num_hidden_layers: int = 1,
    num_bins: int = 8,
    spline_range: float = 5.0,
    initial_scale: float = 0.1,
    initial=None,
):
    """Neural spline flow: rational-quadratic spline coupling (Durkan et al., 2019).

    Like :func:`build_real_nvp`, but each transformed coordinate goes through a monotone
    rational-quadratic spline with ``num_bins`` bins on ``[-B, B]`` (``B = spline_range``) whose
    widths, heights and knot slopes come from the coupling network; outside ``[-B, B]`` it is the
    identity.  The flow acts before the affine base, on a standard-normal scale, so the default
    ``B = 5`` covers all but ~6e-7 of the base mass.  More flexible per layer than affine
    coupling (multi-modal marginals), at about ``3·num_bins / 2`` times its output-layer cost.

    Args:
      model: A :class:`harness.models.base.Model` of dimension >= 2.
      seed: Stateless seed (shape ``[2]`` int32) for all initial values.
      num_layers: Number of coupling layers (depth).
      hidden_units: Width of each hidden layer of the coupling networks.
      num_hidden_layers: Hidden layers per coupling network.
      num_bins: Spline bins per coordinate.
      spline_range: Half-width ``B`` of the interval where the spline acts.
      initial_scale: Initial σ of the Gaussian base on the unconstrained scale (uniform
        initialisation only).
      initial: The initial Gaussian (:class:`harness.mode.InitialGaussian`) the flow starts
        as (the identity on it), or None for the uniform initialisation.
    """
    _check_coupling_dimension(model, "neural_spline")
    dim = model.dimension
    base_seed, layer_seed = tfp.random.split_seed(seed)
    seeds = tfp.random.split_seed(layer_seed, n=num_layers)
    masked = dim // 2

    def layer(k):
        return tfb.RealNVP(
            num_masked=masked,
            bijector_fn=_SplineCoupling(
                masked,
                dim - masked,
                num_bins=num_bins,
                spline_range=float(spline_range),
                hidden_units=hidden_units,
                num_hidden_layers=num_hidden_layers,
                seed=seeds[k],
                dtype=model.dtype,
                name=f"spline_coupling_{k}",
            ),
        )

    return _on_gaussian_base(
        model,
        _alternate(layer, num_layers, dim),
        seed=base_seed,
        initial_scale=initial_scale,
        name="neural_spline_surrogate",
        initial=initial,
    )
