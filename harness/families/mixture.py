"""Gaussian mixture family with the stratified ELBO (Morningstar et al. 2021).

``q(u) = Σ_k w_k N(u | μ_k, Σ_k)`` on the unconstrained scale, ``w = softmax(logits)``,
pushed through the model's event-space bijector; ``Σ_k`` diagonal or full (lower-triangular
scale).  See docs/multimodal.md.

**Gradient estimator.**  A mixture is not reparameterizable as a whole (drawing the component
is discrete).  Following Morningstar, Vikram, Ham, Gallagher and Dillon, "Automatic
Differentiation Variational Inference with Mixtures" (AISTATS 2021), the ELBO is written
stratified over the components,

    ELBO = Σ_k w_k E_{u ~ q_k}[log p̃(b(u)) + log|det J_b(u)| − log q(u)],

and estimated with ``sample_size`` draws from *every* component, each reparameterized within its
component (``u = μ_k + L_k ε``).  The weights enter as the explicit factors ``w_k`` (and through
``log q``), so their gradient is exact, not a score-function estimate.  A step therefore costs
``num_components × sample_size`` draws (and log-density gradients).  With
``importance_sample_size`` T > 1 the objective is the stratified IWAE bound of the same paper,
``SIWAE = E[log Σ_k w_k (1/T) Σ_t p̃(z_kt)/q(z_kt)]``.  ``gradient_estimator =
"sticking_the_landing"`` (T = 1) holds q's parameters constant inside ``log q`` (its
expectation under q, Σ_k w_k E_{q_k}[∇ log q], is zero, so the estimate stays unbiased).

**Initialisation.**  With the initial Gaussian ``N(m₀, A Aᵀ)`` of ``initialization = "mode"``
(:func:`harness.mode.initial_gaussian`), every parameter is whitened by it as in
:mod:`harness.families.gaussian` (``μ_k = m₀ + A ν_k``, ``L_k = A S_k``, ``S_k = I`` at the
start) and the components start at, in order:

1. ``m₀`` itself;
2. the other distinct local optima that the multi-start L-BFGS search ended at
   (:attr:`harness.mode.InitialGaussian.local_optima`, best first; "distinct": more than
   :data:`DISTINCT_RADIUS` whitened units from every centre already taken);
3. over-dispersed draws ``ν_k = c̄ + s ε_k``, ``ε_k ~ N(0, I)``, around the centroid ``c̄`` of
   the centres above, with ``s = max(OVERDISPERSION, 2r)`` where ``r`` is the root mean
   square whitened distance of those centres from ``c̄``: three times the initial Gaussian's
   spread when the search found one mode, and about the distance between the found modes, in
   every direction, when it found several (modes seen that far apart suggest others as far
   away).

Components start with equal weights and the initial Gaussian's scale.  With
``initialization = "uniform"`` each component's location is drawn from U(−2, 2)^d (TFP's
default) and its scale is ``initial_scale``·I, unwhitened.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from harness.families.gaussian import _whitened_tril, whitening

tfb = tfp.bijectors
tfd = tfp.distributions

COVARIANCES = ("diagonal", "full")
# Whitened sd of the over-dispersed component locations around the initial Gaussian when the
# mode search found a single mode: 3 initial-Gaussian sds in every direction, i.e. three times
# the typical radius of its draws (an over-dispersed start, as for the chains of Gelman and
# Rubin 1992), far enough for a draw to fall into another basin than the found mode's.
OVERDISPERSION = 3.0
# Local optima closer than this (whitened units: initial-Gaussian sds) to a centre already
# taken are the same mode: L-BFGS end points of one basin differ by ~10⁻⁵, separated modes by
# several sds.
DISTINCT_RADIUS = 1.0


class MixtureSurrogate(tfd.TransformedDistribution):
    """A mixture of Gaussians pushed through a bijector, with its own variational loss.

    The fitting loop (:func:`harness.fit.variational_loss`) uses :meth:`variational_loss` of
    a surrogate that has one instead of TFP's reparameterized estimator.
    """

    @property
    def num_components(self) -> int:
        return int(self.distribution.mixture_distribution.logits.shape[-1])

    @property
    def draws_per_particle(self) -> int:
        """Draws (log-density gradients) per Monte Carlo particle: one per component."""
        return self.num_components

    def variational_loss(
        self,
        target_log_prob_fn,
        *,
        sample_size: int,
        importance_sample_size: int = 1,
        gradient_estimator: str = "reparameterization",
        seed=None,
    ):
        """−(stratified ELBO) (``importance_sample_size`` = 1) or −SIWAE (T > 1), averaged
        over ``sample_size`` estimates, each with one draw (T draws) from every component.

        Args:
          target_log_prob_fn: ``log p̃`` on the model's scale, batched ``[n, d] -> [n]``.
          sample_size: S, independent estimates averaged.
          importance_sample_size: T, draws per component inside one SIWAE estimate.
          gradient_estimator: ``reparameterization`` or ``sticking_the_landing`` (T = 1 only).
          seed: Stateless seed.
        """
        mixture = self.distribution
        log_weights = tf.math.log_softmax(mixture.mixture_distribution.logits)  # [K]
        u, log_q = self._draws_and_log_q(
            [sample_size, importance_sample_size], log_weights, seed
        )  # [S, T, K, d], [S, T, K]
        dimension = u.shape[-1]
        x = self.bijector.forward(u)
        log_p = tf.reshape(target_log_prob_fn(tf.reshape(x, [-1, dimension])), tf.shape(u)[:-1])
        log_det = self.bijector.forward_log_det_jacobian(u, event_ndims=1)
        if gradient_estimator == "sticking_the_landing":
            if importance_sample_size > 1:
                raise ValueError(
                    "gaussian_mixture: sticking_the_landing needs importance_sample_size = 1"
                )
            # Same value; the parameters' direct (score) part of the gradient removed.
            held = mixture.log_prob(tf.stop_gradient(u))
            log_q = log_q - held + tf.stop_gradient(held)
        log_ratio = log_p + log_det - log_q  # [S, T, K]
        if importance_sample_size == 1:
            elbo = tf.reduce_sum(tf.exp(log_weights) * log_ratio[:, 0, :], axis=-1)
        else:
            elbo = tf.reduce_logsumexp(log_weights + log_ratio, axis=[1, 2]) - tf.math.log(
                tf.cast(importance_sample_size, log_ratio.dtype)
            )
        return -tf.reduce_mean(elbo)

    def _draws_and_log_q(self, shape, log_weights, seed):
        """Draws ``u`` ``shape + [K, d]`` (one per component) and ``log q(u)`` ``shape + [K]``.

        A draw's density under its own component is the exact ``−½|ε|² − log|det L_k| −
        (d/2) log 2π`` of its base noise ε, not ``L_k⁻¹(u − μ_k)`` solved back: with a
        near-singular ``L_k`` (scales spanning 10⁻²⁰..10²⁰ in float32) the solve returns
        garbage, and a garbage-small ``log q`` made the stratified ELBO estimate +10²³, which
        Adam then chased (eight schools, learning rate 0.3).  With the own term exact,
        ``log q(u) ≥ log w_k + log q_k(u)`` holds in floating point too, so the estimate can
        never exceed what its own component allows; the other components' terms only add.
        """
        components = self.distribution.components_distribution
        loc = components.loc  # [K, d]
        dimension = int(loc.shape[-1])
        noise = tf.random.stateless_normal(
            [*shape, *loc.shape], seed=tfp.random.sanitize_seed(seed), dtype=loc.dtype
        )  # [S, T, K, d]
        u = loc + components.scale.matvec(noise)
        own = (
            -0.5 * tf.reduce_sum(noise**2, axis=-1)
            - components.scale.log_abs_determinant()
            - 0.5 * dimension * np.log(2 * np.pi)
        )  # [S, T, K]
        cross = components.log_prob(u[..., :, tf.newaxis, :])  # [S, T, K (draws), K (comps)]
        cross = tf.linalg.set_diag(cross, own)
        return u, tf.reduce_logsumexp(log_weights + cross, axis=-1)


def initial_centres(initial, num_components: int, seed) -> np.ndarray:
    """Component locations ``[K, d]`` on the unconstrained scale for the ``mode``
    initialisation (see the module docstring), from the initial Gaussian ``initial``."""
    from scipy.linalg import solve_triangular

    from harness.mode import _RUNAWAY

    m0 = np.asarray(initial.loc, np.float64)
    dim = m0.size
    if initial.scale_tril is not None:
        tril = np.asarray(initial.scale_tril, np.float64)

        def whiten(points):
            return solve_triangular(tril, (points - m0).T, lower=True).T

        def unwhiten(points):
            return m0 + points @ tril.T
    else:
        scale = np.asarray(initial.scale_diag, np.float64)

        def whiten(points):
            return (points - m0) / scale

        def unwhiten(points):
            return m0 + points * scale

    centres = [np.zeros(dim)]
    optima = sorted(getattr(initial, "local_optima", ()), key=lambda o: o[1])
    for point, _ in optima:
        point = np.asarray(point, np.float64)
        if len(centres) == num_components or np.max(np.abs(point)) > _RUNAWAY:
            continue
        w = whiten(point[None])[0]
        if all(np.linalg.norm(w - c) > DISTINCT_RADIUS for c in centres):
            centres.append(w)
    found = np.stack(centres)
    centroid = found.mean(axis=0)
    spread = np.sqrt(np.mean(np.sum((found - centroid) ** 2, axis=1)))
    step = max(OVERDISPERSION, 2 * spread)
    missing = num_components - len(centres)
    if missing > 0:
        noise = tf.random.stateless_normal([missing, dim], seed, dtype=tf.float64).numpy()
        found = np.concatenate([found, centroid + step * noise])
    return unwhiten(found)


def build_gaussian_mixture(
    model,
    *,
    seed,
    num_components: int = 4,
    covariance: str = "full",
    initial_scale: float = 0.1,
    initial=None,
):
    """Mixture of ``num_components`` Gaussians with trainable weights, fitted by the
    stratified ELBO (see the module docstring).

    Args:
      model: A :class:`harness.models.base.Model`.
      seed: Stateless seed (shape ``[2]`` int32) for the initial locations.
      num_components: K.  Each step draws ``sample_size`` particles from every component, so
        it costs K times a single Gaussian's draws, and log q costs K² density terms per
        particle set.  4 is enough to show whether a family can hold several modes at a cost
        within a small factor of full-rank's.
      covariance: ``full`` (lower-triangular scale per component: each mode's correlations,
        O(K·d²) parameters) or ``diagonal`` (O(K·d)).
      initial_scale: Initial scale of every component on the unconstrained scale (uniform
        initialisation).
      initial: The initial Gaussian (:class:`harness.mode.InitialGaussian`), or None for the
        uniform initialisation.
    """
    if covariance not in COVARIANCES:
        raise ValueError(f"covariance must be one of {COVARIANCES}, got {covariance!r}")
    dim, dtype = model.dimension, model.dtype
    k = int(num_components)
    full = covariance == "full"
    loc_seed, spread_seed = tfp.random.split_seed(seed)
    if initial is not None:
        shift, linear = whitening(initial, dtype, full=full)
        centres = initial_centres(initial, k, spread_seed)
        loc = tfp.util.TransformedVariable(
            tf.constant(centres, dtype), tfb.Chain([tfb.Shift(shift), linear]), name="loc"
        )
        if full and initial.scale_tril is not None:
            scale_tril = tf.constant(initial.scale_tril, dtype)
            components = tfd.MultivariateNormalTriL(
                loc=loc,
                scale_tril=_whitened_tril(
                    dim, (k,), dtype, lambda s: tf.linalg.matmul(scale_tril, s)
                ),
            )
        else:
            scale_diag = tf.constant(initial.scale_diag, dtype)
            if full:  # no Cholesky factor (d above the Hessian limit): whitened by the diagonal
                components = tfd.MultivariateNormalTriL(
                    loc=loc,
                    scale_tril=_whitened_tril(dim, (k,), dtype, lambda s: scale_diag[:, None] * s),
                )
            else:
                scale = tfp.util.TransformedVariable(
                    tf.broadcast_to(scale_diag, [k, dim]),
                    tfb.Chain([tfb.Scale(scale_diag), tfb.Softplus()]),
                    name="scale",
                )
                components = tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale)
    else:
        loc = tf.Variable(
            tf.random.stateless_uniform([k, dim], loc_seed, -2.0, 2.0, dtype=dtype), name="loc"
        )
        if full:
            scale = tfp.util.TransformedVariable(
                tf.eye(dim, batch_shape=[k], dtype=dtype) * initial_scale,
                tfb.FillScaleTriL(diag_shift=None),
                name="scale_tril",
            )
            components = tfd.MultivariateNormalTriL(loc=loc, scale_tril=scale)
        else:
            scale = tfp.util.TransformedVariable(
                tf.fill([k, dim], tf.constant(initial_scale, dtype)), tfb.Softplus(), name="scale"
            )
            components = tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale)
    logits = tf.Variable(tf.zeros([k], dtype), name="mixture_logits")
    mixture = tfd.MixtureSameFamily(tfd.Categorical(logits=logits), components)
    return MixtureSurrogate(
        mixture, model.default_event_space_bijector, name="gaussian_mixture_surrogate"
    )
