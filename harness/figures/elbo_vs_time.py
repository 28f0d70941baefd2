"""ELBO (−loss, smoothed) against optimisation time, one panel per model, one line per series.

Time 0 is the start of the optimisation (after compilation and the mode search, which
:mod:`~harness.figures.time_breakdown` shows), so a curve spans the whole optimisation on the
log axis.  The line is the mean over seeds on a common log-spaced time grid, the band spans
the seeds (min to max).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from harness.figures import style as look
from harness.figures.base import Figure, every

GRID_POINTS = 200


@dataclasses.dataclass(frozen=True)
class Curve:
    """One series' curve on a model's panel: the mean line over ``time[common]``, the band
    (``low`` to ``high``) over ``time[valid]``; no band for one seed."""

    series: str
    time: np.ndarray
    common: np.ndarray
    mean: np.ndarray
    valid: np.ndarray
    low: np.ndarray
    high: np.ndarray
    band: bool


@dataclasses.dataclass(frozen=True)
class Panel:
    """One model's panel: its curves and the y range (None: no curve)."""

    title: str
    curves: list[Curve]
    ylim: tuple[float, float] | None


@dataclasses.dataclass(frozen=True)
class ElboData:
    styles: dict[str, dict]
    panels: list[Panel]
    shown: list[str]


def prepare(table: pd.DataFrame, histories: pd.DataFrame) -> ElboData:
    """The panels of a tidy table.

    Args:
      table: The tidy table (model, family and seed of each run).
      histories: Columns ``run_id``, ``seconds`` (optimisation time), ``loss`` (already smoothed, as
        :func:`harness.tracking.loss_histories` gives it).
    """
    table = look.with_series(table)
    styles = look.series_styles(table)
    titles = look.model_titles(table)
    runs = table.set_index("run_id")[["model", "series"]]
    by_run = {r: h for r, h in histories.groupby("run_id", sort=False)} if len(histories) else {}
    panels, shown = [], []
    for model in dict.fromkeys(table["model"]):
        curves, finals, tops = [], [], []
        for family in styles:
            ids = [
                r
                for r in runs.index[(runs["model"] == model) & (runs["series"] == family)]
                if r in by_run
            ]
            seeds = [_curve(by_run[r]) for r in ids]
            seeds = [c for c in seeds if c[0].size > 1]
            if not seeds:
                continue
            lo = min(c[0][0] for c in seeds)
            hi = max(c[0][-1] for c in seeds)
            grid = np.geomspace(lo, hi, GRID_POINTS)
            stacked = np.array([np.interp(grid, t, v, left=np.nan, right=np.nan) for t, v in seeds])
            finite = np.isfinite(stacked)
            # The band spans every seed's range; the mean line only where at least half the
            # seeds have data (else it would follow the one slowest seed alone).
            valid = finite.any(axis=0)
            common = finite.sum(axis=0) >= math.ceil(len(seeds) / 2)
            if not common.any():
                common = valid
            with np.errstate(all="ignore"):
                mean = np.nanmean(np.where(finite, stacked, np.nan)[:, common], axis=0)
                low = np.nanmin(stacked[:, valid], axis=0)
                high = np.nanmax(stacked[:, valid], axis=0)
            curves.append(Curve(family, grid, common, mean, valid, low, high, len(seeds) > 1))
            finals.append(mean[-1])
            tops.append(np.nanmax(high))
            if family not in shown:
                shown.append(family)
        ylim = None
        if finals:
            # Show the approach to the final values, not the first steps' very low ELBO.
            top, bottom = max(tops), min(finals)
            span = max(top - bottom, 1.0)
            ylim = (bottom - 3 * span, top + 0.1 * span)
        panels.append(Panel(titles[model], curves, ylim))
    return ElboData(styles, panels, shown)


def _curve(history: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    history = history.sort_values("seconds")
    history = history[np.isfinite(history["loss"]) & (history["seconds"] > 0)]
    return history["seconds"].to_numpy(float), -history["loss"].to_numpy(float)


def draw(data: ElboData, stem: Path, *, style: str = "paper") -> list[Path]:
    """Draw :func:`prepare`'s panels; writes ``stem.pdf`` and ``stem.png``."""
    styles = data.styles
    with plt.rc_context(look.rc(style)):
        fig, axes = look.panel_grid(len(data.panels), style, extra_height=0.6)
        for ax, panel in zip(axes, data.panels, strict=True):
            ax.set_title(panel.title)
            ax.set_xlabel(look.axis_label("optimization_seconds", log=True))
            ax.set_ylabel(look.axis_label("elbo"))
            for c in panel.curves:
                st = styles[c.series]
                ax.plot(
                    c.time[c.common],
                    c.mean,
                    color=st["color"],
                    linestyle=st["linestyle"],
                    linewidth=1.2,
                )
                if c.band:
                    ax.fill_between(
                        c.time[c.valid], c.low, c.high, color=st["color"], alpha=0.2, linewidth=0
                    )
            if panel.ylim is None:
                look.empty(ax, "no loss history")
                continue
            look.log_axis(ax)
            ax.set_ylim(*panel.ylim)
            ax.grid(True, which="major", alpha=0.3)
        look.legend(fig, styles, [f for f in styles if f in data.shown])
        return look.save(fig, stem)


def plot(histories: pd.DataFrame, table: pd.DataFrame, stem: Path, *, style: str = "paper"):
    """:func:`prepare` then :func:`draw`."""
    return draw(prepare(table, histories), stem, style=style)


FIGURE = Figure("elbo_vs_time", applies_to=every, prepare=prepare, draw=draw, needs=("histories",))
