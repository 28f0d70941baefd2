"""Six separated Gaussian modes on a ring in 2-D, with unequal weights: exact everything.

Target (no data)::

    z ~ Σ_{m=1}^{6} w_m N(μ_m, Σ_m),   μ_m = 3 (cos θ_m, sin θ_m),   θ_m = m · 60°,
    Σ_m = R(θ_m) diag(0.35², t_m²) R(θ_m)ᵀ   (radial sd 0.35, tangential sd t_m),
    w = (0.30, 0.22, 0.16, 0.14, 0.10, 0.08),   t = (0.6, 0.4, 0.5, 0.3, 0.55, 0.45).

Neighbouring modes are 3 apart, at least 5 of their largest sds, so a draw of one mode is
assigned to another (by highest responsibility) with probability at most 0.25 % (mode 6's
tails); the ring's radius keeps every mode within reach of the mode search's uniform(−2, 2)
starts.  A single Gaussian fitted by the reverse KL sits on one mode (mode
seeking; Bishop 2006, §10.1.2); the test case of the Gaussian-mixture family and the
mode-coverage metrics (docs/multimodal.md).  Exact mean, sd, ``log Z = log 2π`` and draws
(:mod:`harness.models.mixture`).
"""

from __future__ import annotations

import numpy as np

from harness.models.base import Model
from harness.models.mixture import mixture_model

WEIGHTS = (0.30, 0.22, 0.16, 0.14, 0.10, 0.08)
RADIUS = 3.0
RADIAL_SCALE = 0.35
TANGENTIAL_SCALES = (0.6, 0.4, 0.5, 0.3, 0.55, 0.45)
_DRAW_SEED = 20_240_702


def multimodal_2d(dtype: str = "float32") -> Model:
    """Build the 2-D ring of six Gaussian modes (see the module docstring).

    Args:
      dtype: ``float32`` or ``float64``.
    """
    angles = np.deg2rad(60.0 * np.arange(1, 7))
    means = RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    rotations = np.stack(
        [
            np.stack([np.cos(angles), -np.sin(angles)], 1),
            np.stack([np.sin(angles), np.cos(angles)], 1),
        ],
        axis=1,
    )  # [6, 2, 2]: columns are the radial and tangential directions
    scales = np.stack([np.full(6, RADIAL_SCALE), np.asarray(TANGENTIAL_SCALES)], axis=1)
    covariances = np.einsum("mij,mj,mkj->mik", rotations, scales**2, rotations)
    return mixture_model(
        name="multimodal_2d",
        pretty_name="6 modes (d=2)",
        description="6 separated Gaussian modes on a ring, unequal weights; exact everything",
        weights=np.asarray(WEIGHTS),
        means=means,
        covariances=covariances,
        dtype=dtype,
        draw_seed=_DRAW_SEED,
        provenance=(
            f"closed form: mixture of 6 Gaussians on a ring of radius {RADIUS}, weights {WEIGHTS}"
        ),
    )
