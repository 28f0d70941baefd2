"""Descriptions a reviewer reads on the dashboard: a cell's one-line verdict and a sweep's
summary (Markdown).  Pure text from results and tidy tables; :mod:`harness.tracking` writes
them as the runs' ``mlflow.note.content``.  Nothing here imports TensorFlow or MLflow.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from harness.metrics import catalog

# Quality metrics a verdict names, in order of preference: distances to the reference, then
# the VAE test bound, then the ELBO (always logged).
VERDICT_METRICS = (*catalog.QUALITY_PREFERENCE, "test_iw_elbo", "elbo")
KHAT_BAND_LIMITS = {"good": "< 0.5", "usable": "0.5–0.7", "unreliable": "≥ 0.7"}


def _number(value: float) -> str:
    return f"{value:.4g}".replace("-", "−")


def cell_verdict(result, khat_band: str | None = None) -> str:
    """One line: status, convergence, k̂ band and the cell's quality metric.

    Args:
      result: A :class:`harness.fit.FitResult`.
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
            f"k̂ {_number(result.metrics['khat'])} ({band}{', ' + limits if limits else ''})"
        )
    for name in VERDICT_METRICS:
        if name in result.metrics:
            parts.append(f"{catalog.label(name)}: {_number(result.metrics[name])}")
            break
    if "fit_seconds" in result.metrics:
        parts.append(f"fit {result.metrics['fit_seconds']:.3g} s")
    return " · ".join(parts)


def outcome_counts(table: pd.DataFrame) -> dict[str, int]:
    """Cells by outcome: ``ok``, ``diverged``, ``unconverged`` (ok, ``converged`` = 0),
    ``error`` (:func:`harness.report.status_counts` over the whole table)."""
    from harness import report

    totals = report.status_counts(table).sum()
    return {k: int(totals[k]) for k in ("ok", "diverged", "unconverged", "error")}


def best_families(table: pd.DataFrame, metric: str) -> list[str]:
    """Per model: the best family (or configuration) by ``metric``'s catalog direction, its
    mean ± standard error and its margin over the runner-up (± the standard error of the
    difference), as Markdown lines."""
    from harness import report

    info = catalog.info(metric)
    if metric not in table or not info.ranked:
        return []
    stats = report.summary(table, [metric])
    means, ses = stats["mean"][metric], stats["standard_error"][metric]
    names = table.drop_duplicates(report.GROUP).set_index(report.GROUP)
    lines = []
    for model in dict.fromkeys(means.index.get_level_values("model")):
        m = means.xs(model, level="model", drop_level=False).dropna()
        if m.empty:
            continue
        scores = pd.Series(info.score(m.to_numpy()), index=m.index).sort_values()
        best = scores.index[0]

        def name(i):
            family = names.loc[i, "family_pretty_name"]
            return family + (f" ({i[2]})" if i[2] else "")

        se = ses.loc[best]
        head = (
            f"- **{names.loc[best, 'model_pretty_name']}**: {name(best)}, "
            f"{catalog.label(metric)} {_number(m.loc[best])}"
            + (f" ± {_number(se)}" if np.isfinite(se) else " (one seed)")
        )
        if len(scores) > 1:
            second = scores.index[1]
            margin = abs(m.loc[best] - m.loc[second])
            both = math.sqrt(np.nansum([se**2, ses.loc[second] ** 2]))
            head += f"; ahead of {name(second)} by {_number(margin)}" + (
                f" ± {_number(both)}" if both > 0 else ""
            )
        lines.append(head)
    return lines


def sweep_note(table: pd.DataFrame, markdown_table: str, metric: str) -> str:
    """The parent run's description: counts, the best family per model with its margin, and
    the summary table."""
    counts = outcome_counts(table)
    info = catalog.info(metric)
    direction = (
        f"closest to {_number(info.target)}"
        if info.direction == "target"
        else f"{info.direction} is better"
    )
    lines = [
        f"**{len(table)} cells**: " + ", ".join(f"{n} {k}" for k, n in counts.items()),
        "",
        f"Best per model by {catalog.label(metric)} ({direction}):",
        *best_families(table, metric),
        "",
        markdown_table,
    ]
    return "\n".join(lines)


__all__ = ["VERDICT_METRICS", "best_families", "cell_verdict", "outcome_counts", "sweep_note"]
