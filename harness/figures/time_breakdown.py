"""Where the time goes: one stacked bar per model × series, the four parts of its time to result.

Each bar is the mean over a series' ``ok`` seeds of what a standalone fit of the cell costs
(``time_to_result_seconds``), split into its parts (:data:`PARTS`, in the order a fit pays
them): compilation, the initialisation's search, the optimisation and the evaluation of the
fitted q.  One panel per model (its own linear time axis: the parts add up), the total written
at the end of each bar.  A part not measured apart counts 0 and its time is in another part
(NUTS's compilation is in its optimisation; docs/metrics.md#cost-of-a-cell).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import patches

from harness.figures import style as look
from harness.figures.base import Figure
from harness.metrics import catalog

TOTAL = "time_to_result_seconds"
# The parts of TOTAL (harness.engines.common.COST_PARTS), in the order a fit pays them.
PARTS = (
    "compile_seconds_standalone",
    "initialization_seconds",
    "optimization_seconds",
    "evaluation_seconds",
)
PART_NAMES = ("compilation", "initialisation", "optimisation", "evaluation")
# Overhead in grey, the method's own search in blues (light: initialisation, dark: the
# optimisation), the evaluation in orange: Okabe–Ito colours, apart from the family palette's
# use by being stacked within one bar.
PART_COLORS = (look.REFERENCE_COLOR, "#56B4E9", "#0072B2", "#E69F00")
MAX_COLUMNS = 2
# Height of one bar's row and of a panel's title and axis (inches, paper size).
BAR_HEIGHT = 0.2
PANEL_MARGIN = 0.6
LEGEND_HEIGHT = 0.35


@dataclasses.dataclass(frozen=True)
class Panel:
    """One model's bars.

    Attributes:
      title: The model's pretty name.
      labels: Series labels, one per bar, top to bottom.
      seconds: Mean seconds ``[bars, len(PARTS)]`` over each series' ok seeds.
      totals: Mean ``time_to_result_seconds`` per bar (the parts' sum).
      num_seeds: Ok seeds behind each bar.
    """

    title: str
    labels: list[str]
    seconds: np.ndarray
    totals: np.ndarray
    num_seeds: np.ndarray


@dataclasses.dataclass(frozen=True)
class TimeData:
    """What :func:`draw` needs: one :class:`Panel` per model with an ok cell."""

    panels: list[Panel]


def applies_to(table: pd.DataFrame) -> pd.DataFrame:
    """Every row, when the runs logged the time to result (runs from before it have no
    parts to draw)."""
    return table if TOTAL in table else table.iloc[:0]


def prepare(table: pd.DataFrame) -> TimeData:
    """Mean parts per model × series over the ok seeds of a tidy table."""
    table = look.with_series(table)
    ok = look.ok_rows(table)
    ok = ok[ok[TOTAL].notna()] if TOTAL in ok else ok.iloc[:0]
    styles = look.series_styles(table)
    titles = look.model_titles(table)
    parts = ok.reindex(columns=list(PARTS)).astype("float64").fillna(0.0)
    panels = []
    for model in dict.fromkeys(ok["model"]):
        here = ok["model"] == model
        grouped = parts[here].groupby(ok.loc[here, "series"], sort=False)
        means, counts = grouped.mean(), grouped.size()
        order = [s for s in styles if s in means.index]
        seconds = means.loc[order].to_numpy(np.float64)
        totals = ok[here].groupby("series", sort=False)[TOTAL].mean().loc[order].to_numpy()
        panels.append(
            Panel(
                titles[model],
                [styles[s]["label"] for s in order],
                seconds,
                totals.astype(np.float64),
                counts.loc[order].to_numpy(int),
            )
        )
    return TimeData(panels)


def draw(data: TimeData, stem: Path, *, style: str = "paper") -> list[Path]:
    """Draw :func:`prepare`'s panels; writes ``stem.pdf`` and ``stem.png``."""
    column, page, _, _ = look.STYLES[style]
    scale = look.STYLES[style][3] / look.STYLES["paper"][3]
    n = max(1, len(data.panels))
    ncols = min(MAX_COLUMNS, n)
    nrows = math.ceil(n / ncols)
    bars = [
        max([len(p.labels) for p in data.panels[r * ncols : (r + 1) * ncols]] or [1])
        for r in range(nrows)
    ]
    heights = [scale * (BAR_HEIGHT * b + PANEL_MARGIN) for b in bars]
    with plt.rc_context(look.rc(style)):
        fig, axes = plt.subplots(
            nrows,
            ncols,
            figsize=(column if ncols == 1 else page, sum(heights) + scale * LEGEND_HEIGHT),
            squeeze=False,
            gridspec_kw={"height_ratios": heights},
        )
        axes = list(axes.flat)
        for ax in axes[max(1, len(data.panels)) :]:
            ax.set_visible(False)
        if not data.panels:
            look.empty(axes[0], "no ok cell")
        label = catalog.label(TOTAL).removesuffix(")") + ", mean over seeds)"
        for ax, panel in zip(axes, data.panels, strict=False):
            ax.set_title(panel.title)
            ax.set_xlabel(label)
            rows = np.arange(len(panel.labels))
            left = np.zeros(len(rows))
            for j, color in enumerate(PART_COLORS):
                ax.barh(rows, panel.seconds[:, j], left=left, height=0.7, color=color)
                left += panel.seconds[:, j]
            top = float(np.max(panel.totals)) if panel.totals.size else 1.0
            for i, total in enumerate(panel.totals):
                ax.text(
                    total + 0.02 * top,
                    i,
                    f"{total:.3g} s",
                    va="center",
                    ha="left",
                    fontsize=plt.rcParams["xtick.labelsize"],
                    color="0.3",
                )
            # Room on the right for the longest total's text.
            ax.set_xlim(0, 1.25 * top if top > 0 else 1.0)
            ax.set_ylim(len(rows) - 0.5, -0.5)  # the first series on top
            ax.set_yticks(rows, [look.wrap(t, 24) for t in panel.labels])
            ax.tick_params(axis="y", length=0)
            ax.grid(True, axis="x", alpha=0.3)
            ax.set_axisbelow(True)
        handles = [
            (patches.Patch(color=color), name)
            for color, name in zip(PART_COLORS, PART_NAMES, strict=True)
        ]
        look.legend(fig, {}, [], handles)
        return look.save(fig, stem)


def plot(table: pd.DataFrame, stem: Path, *, style: str = "paper") -> list[Path]:
    """:func:`prepare` then :func:`draw`."""
    return draw(prepare(table), stem, style=style)


FIGURE = Figure("time_breakdown", applies_to=applies_to, prepare=prepare, draw=draw)
