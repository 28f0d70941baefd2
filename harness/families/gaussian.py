"""Gaussian families: mean-field (diagonal) and full-rank (lower-triangular scale).

Both are affine transforms of a standard normal, pushed through the model's event-space
bijector.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

tfb = tfp.bijectors
tfd = tfp.distributions


def _scaled_affine(
    model, *, seed, operators: str, initial_scale: float, batch_shape: tuple[int, ...] = ()
):
    """Affine surrogate with loc ~ U(-2, 2) (TFP's default init) and scale = initial_scale·I.

    TFP's builder initialises the scale at the identity; on the unconstrained scale of most
    posteriors that is far too wide and makes the first steps noisy, so the scale starts at
    ``initial_scale`` (default 0.1, a common choice, e.g. Pyro's AutoNormal init_scale).
    """
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


def build_mean_field(model, *, seed, initial_scale: float = 0.1, batch_shape: tuple[int, ...] = ()):
    """Factored normal q(z) = Π N(z_i | μ_i, σ_i²) on the unconstrained scale.

    Args:
      model: A :class:`harness.models.base.Model`.
      seed: Stateless seed (shape ``[2]`` int32) for the initial location.
      initial_scale: Initial σ of every coordinate on the unconstrained scale.
      batch_shape: Independent replicates (one batch member per seed of a vectorized fit).
    """
    return _scaled_affine(
        model, seed=seed, operators="diag", initial_scale=initial_scale, batch_shape=batch_shape
    )


def build_full_rank(model, *, seed, initial_scale: float = 0.1, batch_shape: tuple[int, ...] = ()):
    """Full-covariance normal q(z) = N(z | μ, LLᵀ), L lower-triangular with positive diagonal.

    Args:
      model: A :class:`harness.models.base.Model`.
      seed: Stateless seed (shape ``[2]`` int32) for the initial location.
      initial_scale: Initial diagonal of L on the unconstrained scale (off-diagonal starts at 0).
      batch_shape: Independent replicates (one batch member per seed of a vectorized fit).
    """
    return _scaled_affine(
        model, seed=seed, operators="tril", initial_scale=initial_scale, batch_shape=batch_shape
    )


def build_low_rank(model, *, seed, rank: int = 2, initial_scale: float = 0.1):
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
      initial_scale: Initial ``D^½`` of every coordinate on the unconstrained scale.
    """
    dim, dtype = model.dimension, model.dtype
    loc_seed, factor_seed = tfp.random.split_seed(seed)
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
