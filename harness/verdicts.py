"""A cell's one-line verdict, as a reviewer reads it on the dashboard (the run's
``mlflow.note.content``, prepared by :mod:`harness.run_content`).  Pure text from a result;
nothing here imports TensorFlow or MLflow.  The sweep's summary note is the report's
(:func:`harness.report.sweep_note`).
"""

from __future__ import annotations

from harness.metrics import catalog

# Quality metrics a verdict names, in order of preference: distances to the reference, then
# the VAE test bound, then the ELBO (always logged).
VERDICT_METRICS = (*catalog.QUALITY_PREFERENCE, "test_iw_elbo", "elbo")
KHAT_BAND_LIMITS = {"good": "< 0.5", "usable": "0.5–0.7", "unreliable": "≥ 0.7"}


def number(value: float) -> str:
    return f"{value:.4g}".replace("-", "−")


def cell_verdict(result, khat_band: str | None = None) -> str:
    """One line: status, convergence, k̂ band and the cell's quality metric.

    Args:
      result: A :class:`harness.records.FitResult`.
      khat_band: Its k̂ band (:func:`harness.metrics.calibration.khat_band`), if any.
    """
    if result.status == "error":
        reason = (result.reason.splitlines() or [""])[0][:200]
        return f"**error**: {reason}"
    if result.status != "ok":
        return f"**{result.status}**: {result.reason[:200]}"
    parts = ["**ok**"]
    converged = getattr(result, "converged", None)
    if converged is not None:
        why = getattr(result, "convergence_reason", "") or ""
        text = "converged" if converged else "not converged"
        parts.append(f"{text} ({why})" if why else text)
    if "khat" in result.metrics:
        band = khat_band or "undefined"
        limits = KHAT_BAND_LIMITS.get(band, "")
        parts.append(
            f"k̂ {number(result.metrics['khat'])} ({band}{', ' + limits if limits else ''})"
        )
    for name in VERDICT_METRICS:
        if name in result.metrics:
            parts.append(f"{catalog.label(name)}: {number(result.metrics[name])}")
            break
    # What the cell costs: its time to result (compilation included), else, in runs logged
    # before it existed, the fit time.
    if "time_to_result_seconds" in result.metrics:
        parts.append(f"time to result {result.metrics['time_to_result_seconds']:.3g} s")
    elif "fit_seconds" in result.metrics:
        parts.append(f"fit {result.metrics['fit_seconds']:.3g} s")
    return " · ".join(parts)


__all__ = ["KHAT_BAND_LIMITS", "VERDICT_METRICS", "cell_verdict", "number"]
