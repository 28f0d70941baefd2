"""All per-cell posterior metrics from one set of fresh draws, in DESIGN.md's names.

Metrics that are undefined for a model (no reference draws, no known log Z, q not Gaussian)
are absent from the returned dict, never zero.
"""

from __future__ import annotations

import numpy as np

from harness.metrics import calibration, quality


def posterior_metrics(model, draws: np.ndarray, log_weights: np.ndarray, *,
                      gaussian: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, float]:
    """Quality and calibration metrics of q against ``model.reference``.

    Args:
      model: A :class:`harness.models.base.Model`.
      draws: Fresh draws from q, ``[n, d]`` on the model's (constrained) scale.
      log_weights: ``log p̃(z) − log q(z)`` for those draws, ``[n]``.
      gaussian: q's exact ``(mean, covariance)`` when q is Gaussian on that scale.
    """
    out: dict[str, float] = {}
    out["elbo"], out["elbo_standard_error"] = quality.elbo(log_weights)
    out["khat"] = calibration.khat(log_weights)
    ref = model.reference
    if ref is None:
        return out
    if ref.log_normalizer is not None:
        # log Z − ELBO = KL(q‖p) in expectation: the bound's gap, ≥ 0.
        out["log_normalizer_error"] = ref.log_normalizer - out["elbo"]
    out["mean_z_error_max"], out["mean_z_error_rms"] = calibration.mean_z_error(
        draws, ref.mean, ref.standard_deviation)
    out["std_ratio_geomean"], out["std_ratio_min"] = calibration.std_ratio(
        draws, ref.standard_deviation)
    for level in (0.5, 0.9):
        out[f"coverage_{round(level * 100)}"] = calibration.coverage(
            draws, level, reference_draws=ref.draws, reference_mean=ref.mean,
            reference_std=ref.standard_deviation)
    if ref.draws is not None:
        out["wasserstein_1"] = calibration.wasserstein_1(draws, ref.draws, ref.standard_deviation)
    if gaussian is not None and ref.covariance is not None:
        out["kl_divergence"] = quality.gaussian_kl(gaussian[0], gaussian[1], ref.mean,
                                                   ref.covariance)
    return {k: v for k, v in out.items() if np.isfinite(v)}
