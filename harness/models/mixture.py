"""Shared construction of the multimodal targets: a mixture of Gaussians with everything exact.

Used by :mod:`harness.models.multimodal_2d` and :mod:`harness.models.multimodal_nd`.  The
target is given *unnormalized*::

    p̃(z) = Σ_m w_m |Σ_m|^{-1/2} exp(−½ (z − μ_m)ᵀ Σ_m⁻¹ (z − μ_m)) = (2π)^{d/2} p(z),

where ``p = Σ_m w_m N(μ_m, Σ_m)``, so ``log Z = ½ d log 2π`` exactly (non-zero, as for the
correlated Gaussian).  Mean and covariance of the mixture are exact, draws exact (pick a
component by its weight, then a Gaussian draw), and the components are exposed as
:class:`harness.models.base.Modes` for the mode-coverage metrics.  No ``covariance`` is given to
the :class:`~harness.models.base.Reference`: that field means a *Gaussian* posterior (the exact
Gaussian KL), which a mixture is not.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from harness.models.base import Model, Modes, Reference

tfb = tfp.bijectors

# Exact draws stored with the reference (for coverage, W1 and the metric tests): 20,000 give
# per-coordinate quantile errors ≈ 0.01 sd, as for the correlated Gaussian.
REFERENCE_DRAWS = 20_000


def mixture_moments(weights, means, covariances) -> tuple[np.ndarray, np.ndarray]:
    """Exact mean ``Σ w_m μ_m`` and covariance ``Σ w_m (Σ_m + μ_m μ_mᵀ) − mean meanᵀ``."""
    mean = np.einsum("m,mi->i", weights, means)
    second = np.einsum("m,mij->ij", weights, covariances + np.einsum("mi,mj->mij", means, means))
    return mean, second - np.outer(mean, mean)


def exact_draws(weights, means, covariances, n: int, seed: int) -> np.ndarray:
    """``n`` exact draws from the mixture (numpy ``default_rng(seed)``)."""
    rng = np.random.default_rng(seed)
    which = rng.choice(len(weights), size=n, p=weights)
    noise = rng.standard_normal((n, means.shape[1]))
    factors = np.linalg.cholesky(covariances)
    return means[which] + np.einsum("nij,nj->ni", factors[which], noise)


def mixture_model(
    *,
    name: str,
    pretty_name: str,
    description: str,
    weights: np.ndarray,
    means: np.ndarray,
    covariances: np.ndarray,
    dtype: str,
    draw_seed: int,
    provenance: str,
) -> Model:
    """A :class:`Model` whose posterior is ``Σ_m weights[m] N(means[m], covariances[m])``."""
    weights = np.asarray(weights, np.float64)
    means = np.asarray(means, np.float64)
    covariances = np.asarray(covariances, np.float64)
    dimension = means.shape[1]
    mean, covariance = mixture_moments(weights, means, covariances)
    draws = exact_draws(weights, means, covariances, REFERENCE_DRAWS, draw_seed)
    reference = Reference(
        mean=mean,
        standard_deviation=np.sqrt(np.diag(covariance)),
        mean_standard_error=np.zeros(dimension),
        standard_deviation_standard_error=np.zeros(dimension),
        kind="analytic",
        provenance=(
            f"{provenance}; log Z = d/2 log 2pi exactly; draws: numpy "
            f"default_rng({draw_seed}), n={REFERENCE_DRAWS}"
        ),
        draws=draws,
        log_normalizer=0.5 * dimension * float(np.log(2 * np.pi)),
        modes=Modes(weights=weights, means=means, covariances=covariances),
    )
    tf_dtype = tf.as_dtype(dtype)
    precisions = tf.constant(np.linalg.inv(covariances), tf_dtype)
    means_t = tf.constant(means, tf_dtype)
    # log w_m − ½ log det Σ_m: the constant of each component in p̃.
    offsets = tf.constant(np.log(weights) - 0.5 * np.linalg.slogdet(covariances)[1], tf_dtype)

    def unnormalized_log_prob(z):
        centred = tf.convert_to_tensor(z, tf_dtype)[..., None, :] - means_t  # [..., M, d]
        quadratic = tf.einsum("...mi,mij,...mj->...m", centred, precisions, centred)
        return tf.reduce_logsumexp(offsets - 0.5 * quadratic, axis=-1)

    return Model(
        name=name,
        pretty_name=pretty_name,
        dimension=dimension,
        dtype=tf_dtype,
        default_event_space_bijector=tfb.Identity(),
        unnormalized_log_prob=unnormalized_log_prob,
        reference=reference,
        description=description,
    )
