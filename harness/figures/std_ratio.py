"""q std ÷ reference std (geometric mean over coordinates) per model × series, log y.

Points are means over seeds with ± one standard error, the seeds as faint dots; 1 means
calibrated widths, below 1 understated uncertainty.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from harness.figures import style as look
from harness.figures.base import Figure, posterior

METRIC = "std_ratio_geomean"


@dataclasses.dataclass(frozen=True)
class Point:
    """One model × series: its seeds' ratios and their mean ± standard error at ``x``."""

    series: str
    x: float
    seeds: np.ndarray
    mean: float
    standard_error: float


@dataclasses.dataclass(frozen=True)
class StdRatioData:
    styles: dict[str, dict]
    model_labels: list[str]
    points: list[Point]
    shown: list[str]


def prepare(table: pd.DataFrame) -> StdRatioData:
    """The points of a tidy table: model ``i`` at x = i, its series spread over ± 0.3."""
    table = look.with_series(table)
    ok = look.ok_rows(table)
    styles = look.series_styles(table)
    titles = look.model_titles(table)
    models = list(dict.fromkeys(table["model"]))
    families = list(styles)
    points, shown = [], []
    if METRIC in ok:
        rows = ok[ok[METRIC] > 0]
        stats = rows.groupby(["model", "series"])[METRIC].agg(["mean", "std", "count"])
        offsets = np.linspace(-0.3, 0.3, len(families)) if len(families) > 1 else [0.0]
        for j, family in enumerate(families):
            for i, model in enumerate(models):
                if (model, family) not in stats.index:
                    continue
                s = stats.loc[(model, family)]
                se = s["std"] / math.sqrt(s["count"]) if s["count"] > 1 else 0.0
                seeds = rows[(rows["model"] == model) & (rows["series"] == family)]
                points.append(
                    Point(family, i + offsets[j], seeds[METRIC].to_numpy(), s["mean"], se)
                )
                if family not in shown:
                    shown.append(family)
    return StdRatioData(styles, [titles[m] for m in models], points, shown)


def draw(data: StdRatioData, stem: Path, *, style: str = "paper") -> list[Path]:
    """Draw :func:`prepare`'s points; writes ``stem.pdf`` and ``stem.png``."""
    styles, shown, n_models = data.styles, data.shown, len(data.model_labels)
    column, page, row_height, _ = look.STYLES[style]
    width = min(page, max(column, 1.0 + 0.8 * n_models))
    # Long labels (a family's configurations) get one column on a narrow figure.
    ncols = (
        4
        if width >= page
        else 1
        if max((len(styles[f]["label"]) for f in shown), default=0) > 20
        else 2
    )
    # The legend sits below the axes: the figure grows by its rows (0.17 in each), so that a
    # grid of a dozen configurations does not squeeze the axes and cut off the y label.
    legend_rows = math.ceil((len(shown) + 1) / ncols)
    with plt.rc_context(look.rc(style)):
        fig, ax = plt.subplots(figsize=(width, row_height + 0.6 + 0.17 * legend_rows))
        ax.axhline(1.0, color="0.3", linewidth=0.8, linestyle="--")
        for p in data.points:
            st = styles[p.series]
            ax.scatter(
                np.full(len(p.seeds), p.x),
                p.seeds,
                s=8,
                color=st["color"],
                alpha=0.35,
                linewidths=0,
            )
            ax.errorbar(
                p.x,
                p.mean,
                yerr=p.standard_error,
                color=st["color"],
                marker=st["marker"],
                markerfacecolor=st["facecolor"],
                markersize=5,
                capsize=2,
                linewidth=1,
            )
        if not shown:
            look.empty(ax, f"no {METRIC}")
        look.log_axis(ax, "y")  # same 1-2-5 log labels as the time axes
        ax.set_xticks(
            range(n_models),
            [look.wrap(t) for t in data.model_labels],
            rotation=30 if n_models > 2 else 0,
            ha="right" if n_models > 2 else "center",
            rotation_mode="anchor",
        )
        ax.set_xlim(-0.6, n_models - 0.4)
        ax.set_ylabel(look.axis_label(METRIC, log=True).replace(" (", "\n(", 1))
        ax.grid(True, axis="y", which="major", alpha=0.3)
        ref = plt.Line2D([], [], color="0.3", linestyle="--", linewidth=0.8)
        look.legend(
            fig,
            styles,
            shown,
            [(ref, "calibrated (ratio 1)")],
            ncols=ncols,
        )
        return look.save(fig, stem)


def plot(table: pd.DataFrame, stem: Path, *, style: str = "paper") -> list[Path]:
    """:func:`prepare` then :func:`draw`."""
    return draw(prepare(table), stem, style=style)


FIGURE = Figure("std_ratio", applies_to=posterior, prepare=prepare, draw=draw)
