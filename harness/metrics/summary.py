"""All per-cell posterior metrics from one set of fresh draws, in DESIGN.md's names.

Metrics that are undefined for a model (no reference draws, no known log Z, q not Gaussian, no
prior/likelihood split) are absent from the returned dict, never zero or NaN.
"""

from __future__ import annotations

import numpy as np

from harness.metrics import calibration, modes, quality

# Central interval levels whose reference mass is logged as coverage_50 and coverage_90.
COVERAGE_LEVELS = (0.5, 0.9)


def posterior_metrics(
    model,
    draws: np.ndarray,
    log_weights: np.ndarray,
    *,
    gaussian: tuple[np.ndarray, np.ndarray] | None = None,
    importance_sample_size: int = 64,
    iw_log_weights: np.ndarray | None = None,
    log_likelihood: np.ndarray | None = None,
    kl_to_prior: float | None = None,
) -> dict[str, float]:
    """Quality and calibration metrics of q against ``model.reference``.

    Args:
      model: A :class:`harness.models.base.Model`.
      draws: Fresh draws from q, ``[n, d]`` on the model's (constrained) scale.
      log_weights: ``log p̃(z) − log q(z)`` for those draws, ``[n]``.
      gaussian: q's exact ``(mean, covariance)`` when q is Gaussian on that scale.
      importance_sample_size: K of ``iw_elbo``.
      iw_log_weights: Log weights for ``iw_elbo`` (default ``log_weights``): the same draws,
        possibly topped up with more fresh draws when K is large
        (:func:`harness.metrics.quality.iw_draws_needed`).
      log_likelihood: ``log p(x | z)`` for ``draws`` when the model splits into prior and
        likelihood; with ``kl_to_prior`` it gives ``elbo_likelihood_kl``.
      kl_to_prior: Exact ``KL(q ‖ prior)`` when known analytically.

    Returns:
      Metric name → finite float.
    """
    out: dict[str, float] = {}
    out["elbo"], out["elbo_standard_error"] = quality.elbo(log_weights)
    out["iw_elbo"], out["iw_elbo_standard_error"] = quality.iw_elbo(
        log_weights if iw_log_weights is None else iw_log_weights, importance_sample_size
    )
    if log_likelihood is not None and kl_to_prior is not None:
        out["elbo_likelihood_kl"], out["elbo_likelihood_kl_standard_error"] = (
            quality.elbo_likelihood_kl(log_likelihood, kl_to_prior)
        )
    out["khat"] = calibration.khat(log_weights)
    ref = model.reference
    if ref is not None:
        out.update(_reference_metrics(ref, draws, out, gaussian))
    return {k: float(v) for k, v in out.items() if np.isfinite(v)}


def _reference_metrics(ref, draws, bounds, gaussian) -> dict[str, float]:
    out: dict[str, float] = {}
    if ref.log_normalizer is not None:
        # log Z − ELBO = KL(q‖p) in expectation: the bound's gap, ≥ 0 (and smaller for IW).
        out["log_normalizer_error"] = ref.log_normalizer - bounds["elbo"]
        out["iw_log_normalizer_error"] = ref.log_normalizer - bounds["iw_elbo"]
    out["mean_z_error_max"], out["mean_z_error_rms"] = calibration.mean_z_error(
        draws, ref.mean, ref.standard_deviation
    )
    out["std_ratio_geomean"], out["std_ratio_min"] = calibration.std_ratio(
        draws, ref.standard_deviation
    )
    for level in COVERAGE_LEVELS:
        out[f"coverage_{round(level * 100)}"] = calibration.coverage(
            draws,
            level,
            reference_draws=ref.sorted_draws,
            reference_mean=ref.mean,
            reference_std=ref.standard_deviation,
        )
    if ref.draws is not None:
        out["wasserstein_1"] = calibration.wasserstein_1(
            draws, ref.sorted_draws, ref.standard_deviation
        )
    if ref.modes is not None:
        out.update(modes.mode_metrics(draws, ref.modes))
    if gaussian is not None and ref.covariance is not None:
        out["kl_divergence"] = quality.gaussian_kl(
            gaussian[0], gaussian[1], ref.mean, ref.covariance
        )
    return out
