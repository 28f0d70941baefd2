"""Separated, correlated Gaussian modes in d dimensions, with unequal weights: exact everything.

Target (no data), for ``dimension`` d ≥ ``num_modes`` M::

    z ~ Σ_{m=1}^{M} w_m N(μ_m, Σ_m),   w_m ∝ M + 1 − m,
    μ_m = 4 v_m   (v_1 … v_M orthonormal),   Σ_m = Q_m diag(s_m²) Q_mᵀ,

with ``v``, the rotations ``Q_m`` (Haar, by QR of Gaussian matrices) and the scales
``s_m ~ U(0.4, 0.9)`` drawn once from ``numpy.random.default_rng(20240701)``.  Modes lie
4√2 ≈ 5.7 apart, at least 6 sds at the largest scale 0.9, so fewer than ~10⁻³ of a mode's draws
are closer (in responsibility) to another one.  Each mode is a rotated, anisotropic Gaussian,
so a mixture of diagonal components fits it less well than one of full covariances.  At the
default d = 20, M = 5, the weights are (5, 4, 3, 2, 1)/15.  Exact mean, sd,
``log Z = ½ d log 2π`` and draws (:mod:`harness.models.mixture`); used with
:mod:`harness.models.multimodal_2d` in docs/multimodal.md.
"""

from __future__ import annotations

import numpy as np

from harness.models.base import Model
from harness.models.mixture import mixture_model

DISTANCE = 4.0  # of every mode from the origin
SCALE_RANGE = (0.4, 0.9)
_STRUCTURE_SEED = 20_240_701
_DRAW_SEED = 20_240_703


def multimodal_nd(dimension: int = 20, num_modes: int = 5, dtype: str = "float32") -> Model:
    """Build the d-dimensional mixture of ``num_modes`` separated Gaussians.

    Args:
      dimension: d, at least ``num_modes`` (the mode directions are orthonormal).
      num_modes: M, the number of modes.
      dtype: ``float32`` or ``float64``.
    """
    if not 1 <= num_modes <= dimension:
        raise ValueError(f"num_modes must be in [1, dimension={dimension}], got {num_modes}")
    rng = np.random.default_rng(_STRUCTURE_SEED)
    directions, _ = np.linalg.qr(rng.standard_normal((dimension, num_modes)))
    means = DISTANCE * directions.T
    rotations = np.stack(
        [np.linalg.qr(rng.standard_normal((dimension, dimension)))[0] for _ in range(num_modes)]
    )
    scales = rng.uniform(*SCALE_RANGE, size=(num_modes, dimension))
    covariances = np.einsum("mij,mj,mkj->mik", rotations, scales**2, rotations)
    covariances = 0.5 * (covariances + np.swapaxes(covariances, 1, 2))
    weights = np.arange(num_modes, 0, -1, dtype=np.float64)
    weights /= weights.sum()
    return mixture_model(
        name="multimodal_nd",
        pretty_name=f"{num_modes} modes (d={dimension})",
        description=(
            f"{num_modes} separated, rotated Gaussian modes in {dimension}-d, unequal weights; "
            "exact everything"
        ),
        weights=weights,
        means=means,
        covariances=covariances,
        dtype=dtype,
        draw_seed=_DRAW_SEED,
        provenance=(
            f"closed form: mixture of {num_modes} Gaussians at distance {DISTANCE} in "
            f"orthonormal directions, d={dimension}, structure default_rng({_STRUCTURE_SEED})"
        ),
    )
