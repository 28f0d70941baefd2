"""Quality against time to result (log x), one panel per model, the Pareto front of the means.

The x axis is ``time_to_result_seconds`` by default: what a standalone fit of the cell costs,
compilation, initialisation, optimisation and evaluation included (its label names it);
``cost`` picks another (``fit_seconds``, ``optimization_seconds``; ``quality_vs_gradients``
draws these panels against ``num_gradient_evaluations``).  Runs logged before the time to
result existed are drawn against ``fit_seconds``.

One small point per seed, one large point per series (family, or each configuration of a
family run with several) at the mean over seeds, and the Pareto front of those means in
(smaller cost, better quality by the metric's catalog direction): nothing both cheaper and
better exists off it.  Unconverged fits are crossed and left off the front.  A model without
the quality metric uses the first of the fallbacks it has; the y label says which.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from harness.figures import style as look
from harness.figures.base import Figure, posterior
from harness.metrics import catalog

# What a standalone fit costs, compilation included (docs/metrics.md#cost-of-a-cell).
DEFAULT_COST = "time_to_result_seconds"


@dataclasses.dataclass(frozen=True)
class Panel:
    """One model's panel.

    Attributes:
      title: The model's pretty name.
      metric: The quality metric drawn (the preferred one on an empty panel).
      message: Why the panel is empty ("" when it is not).
      rows: Ok cells with the metric and a positive cost (columns ``series``, the cost, the
        metric, ``unconverged``).
      means: Mean cost and metric per series (index ``series``).
      series_unconverged: Per series: some seed did not converge.
      front: (cost, metric) of the Pareto front's points (empty: no front line).
      log_y: Whether the metric spans more than a factor of 20 (a log y axis).
    """

    title: str
    metric: str
    message: str = ""
    rows: pd.DataFrame | None = None
    means: pd.DataFrame | None = None
    series_unconverged: pd.Series | None = None
    front: tuple[np.ndarray, np.ndarray] = (np.empty(0), np.empty(0))
    log_y: bool = False


@dataclasses.dataclass(frozen=True)
class QualityData:
    """What :func:`draw` needs: the cost axis, series styles, one :class:`Panel` per model."""

    cost: str
    styles: dict[str, dict]
    panels: list[Panel]
    any_unconverged: bool


def unconverged(rows: pd.DataFrame) -> pd.Series:
    """True for cells whose convergence verdict is false (unknown counts as converged: runs
    logged before the verdict existed)."""
    if "converged" not in rows:
        return pd.Series(False, index=rows.index)
    flag = pd.to_numeric(rows["converged"].astype("float64"), errors="coerce")
    return (flag == 0).fillna(False)


def prepare(
    table: pd.DataFrame,
    quality_metric: str,
    fallbacks: tuple[str, ...] = (),
    *,
    cost: str | None = None,
) -> QualityData:
    """The panels of a tidy table.

    Args:
      quality_metric: The preferred metric of the y axis.
      fallbacks: Metrics a model without ``quality_metric`` uses instead, in order.
      cost: The x axis, a cost metric: ``time_to_result_seconds`` (None: that one, or
        ``fit_seconds`` for runs logged before it existed), another time
        (``optimization_seconds``) or ``num_gradient_evaluations`` (the same comparison on an
        axis that does not depend on the machine).  The axis label names it.
    """
    if cost is None:
        cost = DEFAULT_COST if DEFAULT_COST in table else "fit_seconds"
    table = look.with_series(table)
    ok = look.ok_rows(table)
    titles = look.model_titles(table)
    panels, any_unconverged = [], False
    for model in dict.fromkeys(table["model"]):
        used = look.quality_metric_for(table, model, quality_metric, fallbacks)
        rows = ok[ok["model"] == model]
        if used is None or cost not in rows or not (rows[cost] > 0).any():
            message = f"no {quality_metric if used is None else cost}"
            panels.append(Panel(titles[model], quality_metric, message))
            continue
        rows = rows[rows[used].notna() & (rows[cost] > 0)]
        means = rows.groupby("series", sort=False)[[cost, used]].mean()
        flags = unconverged(rows)
        any_unconverged |= bool(flags.any())
        series_unconverged = flags.groupby(rows["series"], sort=False).any()
        # The front joins series whose every fit converged: a comparison never rests on an
        # unfinished optimisation.
        judged = means[~series_unconverged.reindex(means.index).fillna(False).to_numpy(bool)]
        front = catalog.pareto_front(judged[cost].to_numpy(), judged[used].to_numpy(), used)
        points = (np.empty(0), np.empty(0))
        if len(judged) > 1 and front.size:
            points = (judged[cost].to_numpy()[front], judged[used].to_numpy()[front])
        values = rows[used].to_numpy()
        panels.append(
            Panel(
                titles[model],
                used,
                rows=rows.assign(unconverged=flags),
                means=means,
                series_unconverged=series_unconverged,
                front=points,
                log_y=bool(values.size and values.min() > 0 and values.max() / values.min() > 20),
            )
        )
    styles = look.series_styles(table)
    return QualityData(cost, styles, panels, any_unconverged)


def draw(data: QualityData, stem: Path, *, style: str = "paper") -> list[Path]:
    """Draw :func:`prepare`'s panels; writes ``stem.pdf`` and ``stem.png``."""
    cost, styles = data.cost, data.styles
    with plt.rc_context(look.rc(style)):
        fig, axes = look.panel_grid(len(data.panels), style, extra_height=0.6)
        for ax, panel in zip(axes, data.panels, strict=True):
            ax.set_title(panel.title)
            ax.set_xlabel(look.axis_label(cost, log=True))
            ax.set_ylabel(look.wrap(catalog.label(panel.metric), 30))
            if panel.message:
                look.empty(ax, panel.message)
                continue
            used, rows, means = panel.metric, panel.rows, panel.means
            for key in [k for k in styles if k in means.index]:
                st = styles[key]
                here = rows["series"] == key
                sub = rows[here & ~rows["unconverged"]]
                ax.scatter(
                    sub[cost],
                    sub[used],
                    s=10,
                    color=st["color"],
                    marker=st["marker"],
                    alpha=0.35,
                    linewidths=0,
                )
                # Unconverged fits are crossed, at full strength: they are not comparable.
                bad = rows[here & rows["unconverged"]]
                ax.scatter(bad[cost], bad[used], s=28, color=st["color"], marker="x", linewidths=1)
                ax.scatter(
                    means.loc[key, cost],
                    means.loc[key, used],
                    s=45,
                    marker=st["marker"],
                    facecolors=st["facecolor"],
                    edgecolors=st["color"],
                    linewidths=1.2,
                    zorder=3,
                )
                if panel.series_unconverged.get(key, False):
                    ax.scatter(
                        means.loc[key, cost],
                        means.loc[key, used],
                        s=80,
                        marker="x",
                        color="0.15",
                        linewidths=1.2,
                        zorder=4,
                    )
            x, y = panel.front
            if x.size:
                # A monotone metric's front is a staircase; a closest-to-target one (coverage,
                # std ratio) may cross its target, so its points are joined directly.
                if catalog.info(used).direction == "target":
                    ax.plot(x, y, color="0.4", linestyle=":", linewidth=1, zorder=2)
                    ax.axhline(catalog.info(used).target, color="0.7", linewidth=0.6)
                else:
                    ax.step(x, y, where="post", color="0.4", linestyle=":", linewidth=1, zorder=2)
            look.log_axis(ax)
            if panel.log_y:
                look.log_axis(ax, "y")
            ax.grid(True, which="major", alpha=0.3)
        front_handle = plt.Line2D([], [], color="0.4", linestyle=":")
        extra = [(front_handle, "Pareto front (means of converged series)")]
        if data.any_unconverged:
            crossed = plt.Line2D([], [], color="0.15", marker="x", linestyle="")
            extra.append((crossed, "not converged (crossed)"))
        look.legend(fig, styles, list(styles), extra)
        return look.save(fig, stem)


def plot(
    table: pd.DataFrame,
    stem: Path,
    quality_metric: str,
    *,
    style: str = "paper",
    fallbacks: tuple[str, ...] = (),
    cost: str | None = None,
) -> list[Path]:
    """:func:`prepare` then :func:`draw`."""
    return draw(prepare(table, quality_metric, fallbacks, cost=cost), stem, style=style)


FIGURE = Figure(
    "quality_vs_speed",
    applies_to=posterior,
    prepare=prepare,
    draw=draw,
    needs=("quality_metric", "fallbacks"),
)
