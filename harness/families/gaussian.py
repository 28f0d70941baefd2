"""Gaussian families: mean-field (diagonal), full-rank (lower-triangular scale), low-rank.

Each is an affine transform of a standard normal, pushed through the model's event-space
bijector.

Two initialisations (the fit setting ``initialization``):

* ``mode`` (default): the family starts at the Gaussian that :func:`harness.mode.initial_gaussian`
  chose (the Laplace approximation at the mode, on most posteriors): full-rank at ``N(m₀, L₀L₀ᵀ)``,
  mean-field and low-rank at ``N(m₀, diag(s₀²))`` with ``s₀ = diag(H)^{-1/2}``, the mean-field
  optimum for a Gaussian target.  The trainable parameters are *whitened* by that Gaussian
  (:func:`whitening`): ``loc = m₀ + L₀ μ`` and ``scale = L₀ S`` (full-rank; ``s₀ ⊙`` for the
  diagonal families) with μ = 0 and S = I at the start.  A regression whose coefficients are
  ~100 with posterior sds ~10⁻³ then has every parameter of order 1, so one learning rate
  suits every coordinate (Adam's steps are of the learning rate's size in each parameter,
  whatever its scale).
* ``pathfinder``: as ``mode``, from single-path Pathfinder's normal ``N(μ, Σ)``
  (:func:`harness.baselines.pathfinder.initial_gaussian`; ``s₀ = diag(Σ⁻¹)^{-1/2}``).
* ``uniform``: loc ~ U(−2, 2) (TFP's default) and scale ``initial_scale``·I, unwhitened.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

tfb = tfp.bijectors
tfd = tfp.distributions


def whitening(initial, dtype, *, full: bool):
    """``(m₀, A)``: the initial Gaussian's centre and a fixed linear bijector ``A`` (``L₀`` when
    ``full`` and the Cholesky factor is known, else ``diag(s₀)``), so that ``m₀ + A w``, with
    ``w`` standard normal, is the initial Gaussian."""
    shift = tf.constant(initial.loc, dtype)
    if full and initial.scale_tril is not None:
        return shift, tfb.ScaleMatvecTriL(tf.constant(initial.scale_tril, dtype))
    return shift, tfb.Scale(tf.constant(initial.scale_diag, dtype))


def _whitened_tril(dim: int, batch_shape, dtype, unwhiten):
    """A trainable lower-triangular ``S`` (starting at I) seen through ``unwhiten(S)``."""
    return tfp.util.DeferredTensor(
        tfp.util.TransformedVariable(
            tf.eye(dim, batch_shape=batch_shape, dtype=dtype),
            tfb.FillScaleTriL(diag_shift=None),
            name="whitened_scale_tril",
        ),
        unwhiten,
    )


def _whitened_affine(model, initial, *, operators: str, batch_shape: tuple[int, ...] = ()):
    """The affine family at the initial Gaussian, its parameters on the whitened scale."""
    dim, dtype = model.dimension, model.dtype
    shape = list(batch_shape) + [dim]
    full = operators == "tril" and initial.scale_tril is not None
    shift, linear = whitening(initial, dtype, full=full)
    loc = tfp.util.TransformedVariable(
        tf.broadcast_to(shift, shape), tfb.Chain([tfb.Shift(shift), linear]), name="loc"
    )
    if operators == "diag" or not full:
        scale_diag = tf.constant(initial.scale_diag, dtype)
        scale = tfp.util.TransformedVariable(
            tf.broadcast_to(scale_diag, shape),
            tfb.Chain([tfb.Scale(scale_diag), tfb.Softplus()]),
            name="scale",
        )
        if operators == "diag":
            base = tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale)
        else:  # full-rank above MAX_HESSIAN_DIMENSION: whitened by the diagonal only
            base = tfd.MultivariateNormalTriL(
                loc=loc,
                scale_tril=_whitened_tril(
                    dim, batch_shape, dtype, lambda s: scale_diag[:, None] * s
                ),
            )
    else:
        scale_tril = tf.constant(initial.scale_tril, dtype)
        base = tfd.MultivariateNormalTriL(
            loc=loc,
            scale_tril=_whitened_tril(
                dim, batch_shape, dtype, lambda s: tf.linalg.matmul(scale_tril, s)
            ),
        )
    return tfd.TransformedDistribution(
        base, model.default_event_space_bijector, name=f"{operators}_surrogate"
    )


def _scaled_affine(
    model,
    *,
    seed,
    operators: str,
    initial_scale: float,
    batch_shape: tuple[int, ...] = (),
    initial=None,
):
    """Affine surrogate with loc ~ U(-2, 2) (TFP's default init) and scale = initial_scale·I.

    TFP's builder initialises the scale at the identity; on the unconstrained scale of most
    posteriors that is far too wide and makes the first steps noisy, so the scale starts at
    ``initial_scale`` (default 0.1, a common choice, e.g. Pyro's AutoNormal init_scale).
    With ``initial`` (the default ``mode`` initialisation), :func:`_whitened_affine` instead.
    """
    if initial is not None:
        return _whitened_affine(model, initial, operators=operators, batch_shape=batch_shape)
    dim = model.dimension
    shape = list(batch_shape) + [dim]
    loc_seed, _ = tfp.random.split_seed(seed)
    loc = tf.Variable(
        tf.random.stateless_uniform(shape, loc_seed, -2.0, 2.0, dtype=model.dtype), name="loc"
    )
    if operators == "diag":
        scale = tfp.util.TransformedVariable(
            tf.fill(shape, tf.constant(initial_scale, model.dtype)), tfb.Softplus(), name="scale"
        )
        base = tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale)
    else:
        scale = tfp.util.TransformedVariable(
            tf.eye(dim, batch_shape=batch_shape, dtype=model.dtype) * initial_scale,
            tfb.FillScaleTriL(diag_shift=None),
            name="scale_tril",
        )
        base = tfd.MultivariateNormalTriL(loc=loc, scale_tril=scale)
    return tfd.TransformedDistribution(
        base, model.default_event_space_bijector, name=f"{operators}_surrogate"
    )


def build_mean_field(
    model,
    *,
    seed,
    initial_scale: float = 0.1,
    batch_shape: tuple[int, ...] = (),
    initial=None,
):
    """Factored normal q(z) = Π N(z_i | μ_i, σ_i²) on the unconstrained scale.

    Args:
      model: A :class:`harness.models.base.Model`.
      seed: Stateless seed (shape ``[2]`` int32) for the initial location.
      initial_scale: Initial σ of every coordinate on the unconstrained scale.
      batch_shape: Independent replicates (one batch member per seed of a vectorized fit).
      initial: The initial Gaussian (:class:`harness.mode.InitialGaussian`; see the module
        docstring), or None for the uniform initialisation.
    """
    return _scaled_affine(
        model,
        seed=seed,
        operators="diag",
        initial_scale=initial_scale,
        batch_shape=batch_shape,
        initial=initial,
    )


def build_full_rank(
    model,
    *,
    seed,
    initial_scale: float = 0.1,
    batch_shape: tuple[int, ...] = (),
    initial=None,
):
    """Full-covariance normal q(z) = N(z | μ, LLᵀ), L lower-triangular with positive diagonal.

    Args:
      model: A :class:`harness.models.base.Model`.
      seed: Stateless seed (shape ``[2]`` int32) for the initial location.
      initial_scale: Initial diagonal of L on the unconstrained scale (off-diagonal starts at 0).
      batch_shape: Independent replicates (one batch member per seed of a vectorized fit).
      initial: The initial Gaussian (:class:`harness.mode.InitialGaussian`; see the module
        docstring), or None for the uniform initialisation.
    """
    return _scaled_affine(
        model,
        seed=seed,
        operators="tril",
        initial_scale=initial_scale,
        batch_shape=batch_shape,
        initial=initial,
    )


def build_low_rank(model, *, seed, rank: int = 2, initial_scale: float = 0.1, initial=None):
    """Normal with diagonal-plus-low-rank covariance, q(z) = N(z | μ, D + FFᵀ) (factor analysis).

    ``D`` is diagonal (positive), ``F`` is ``d × rank``: ``d·(rank + 2)`` parameters against
    full-rank's ``d·(d + 3)/2``, and a step costs O(d·rank²) instead of O(d³).  Draws are
    ``μ + D^½ ε + F η`` with ``ε ~ N(0, I_d)`` and ``η ~ N(0, I_rank)``.

    ``F`` starts with entries of standard deviation ``initial_scale / 10``: small against the
    diagonal, so that q starts near mean-field's initial state, but not zero, because ``F = 0``
    is a stationary point of the ELBO (it is symmetric under ``F → −F``).

    Args:
      model: A :class:`harness.models.base.Model`.
      seed: Stateless seed (shape ``[2]`` int32) for the initial location and factor.
      rank: Number of columns of ``F`` (``rank`` directions of correlation).
      initial_scale: Initial ``D^½`` of every coordinate on the unconstrained scale (uniform
        initialisation).
      initial: The initial Gaussian (:class:`harness.mode.InitialGaussian`): q starts at its
        mean-field form, ``μ = m₀``, ``D = s₀²``, ``F = s₀ ⊙ G`` with ``G`` of standard deviation
        0.1 (the uniform initialisation's ratio of factor to diagonal), all whitened by
        ``s₀``; or None for the uniform initialisation.
    """
    dim, dtype = model.dimension, model.dtype
    loc_seed, factor_seed = tfp.random.split_seed(seed)
    if initial is not None:
        shift, linear = whitening(initial, dtype, full=False)
        scale_diag = tf.constant(initial.scale_diag, dtype)
        loc = tfp.util.TransformedVariable(shift, tfb.Chain([tfb.Shift(shift), linear]), name="loc")
        diagonal = tfp.util.TransformedVariable(
            scale_diag**2, tfb.Chain([tfb.Scale(scale_diag**2), tfb.Softplus()]), name="diagonal"
        )
        whitened_factor = tf.Variable(
            tf.random.stateless_normal([dim, rank], factor_seed, stddev=0.1, dtype=dtype),
            name="whitened_factor",
        )
        base = tfd.MultivariateNormalDiagPlusLowRankCovariance(
            loc=loc,
            cov_diag_factor=diagonal,
            cov_perturb_factor=tfp.util.DeferredTensor(
                whitened_factor, lambda g: scale_diag[:, None] * g
            ),
        )
        return tfd.TransformedDistribution(
            base, model.default_event_space_bijector, name="low_rank_surrogate"
        )
    loc = tf.Variable(
        tf.random.stateless_uniform([dim], loc_seed, -2.0, 2.0, dtype=dtype), name="loc"
    )
    diagonal = tfp.util.TransformedVariable(
        tf.fill([dim], tf.constant(initial_scale**2, dtype)), tfb.Softplus(), name="diagonal"
    )
    factor = tf.Variable(
        tf.random.stateless_normal(
            [dim, rank], factor_seed, stddev=initial_scale / 10, dtype=dtype
        ),
        name="factor",
    )
    base = tfd.MultivariateNormalDiagPlusLowRankCovariance(
        loc=loc, cov_diag_factor=diagonal, cov_perturb_factor=factor
    )
    return tfd.TransformedDistribution(
        base, model.default_event_space_bijector, name="low_rank_surrogate"
    )
