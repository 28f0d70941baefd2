"""Marginals of q (one outline per series) over the reference, first 6 coordinates, for one
model (the report's ``--model``, else the first): each series' lowest-seed ok run's logged
draws, the reference as a grey histogram of its draws or its normal density."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from harness.figures import style as look
from harness.figures.base import Figure, posterior


@dataclasses.dataclass(frozen=True)
class MarginalsData:
    """What :func:`draw` needs.

    Attributes:
      draws: Series → q draws ``[n, d]``.
      reference: ``draws`` ``[m, d]`` and/or ``mean`` and ``standard_deviation``, or None.
      bins: Per coordinate shown, the shared bins (the axis range).
      own_bins: Per coordinate shown, series → the bins of its own histogram.
    """

    title: str
    styles: dict[str, dict]
    draws: dict[str, np.ndarray]
    reference: Mapping | None
    bins: list[np.ndarray]
    own_bins: list[dict[str, np.ndarray]]


def overlay(
    table: pd.DataFrame, model: str, logged: Mapping[str, Mapping | None]
) -> tuple[dict[str, np.ndarray], dict | None]:
    """q draws of ``model``'s lowest-seed ok run per series (a family, or each configuration
    of a family run with several: :func:`harness.figures.style.series_key`), and the reference
    logged with them (``draws`` when present, else ``mean`` and ``standard_deviation``).

    Args:
      logged: Run id → its logged arrays (``harness.tracking.load_draws``), or None.
    """
    rows = look.with_series(table[(table["model"] == model) & (table["status"] == "ok")])
    draws, reference = {}, None
    for key, sub in rows.groupby("series", sort=False):
        arrays = logged.get(sub.sort_values("seed")["run_id"].iloc[0])
        if arrays is None or "draws" not in arrays:
            continue
        draws[key] = arrays["draws"]
        if reference is None and "reference_mean" in arrays:
            reference = {
                "mean": arrays["reference_mean"],
                "standard_deviation": arrays["reference_standard_deviation"],
                "draws": arrays.get("reference_draws"),
            }
    return draws, reference


def arrange(
    draws: Mapping[str, np.ndarray], reference: Mapping | None, table: pd.DataFrame, title: str
) -> MarginalsData:
    """Draws and reference → the histograms' bins (the series' styles from ``table``)."""
    styles = look.series_styles(table)
    dims = [a.shape[1] for a in draws.values()]
    if reference is not None and reference.get("mean") is not None:
        dims.append(len(reference["mean"]))
    d = min(look.MAX_MARGINALS, max(dims) if dims else 0)
    bins, own = [], []
    for i in range(d):
        arrays = [a[:, i] for a in draws.values() if a.shape[1] > i]
        shared = look.shared_bins(arrays + look.reference_arrays(reference, i))
        bins.append(shared)
        own.append(
            {
                key: look.own_bins(draws[key][:, i], shared)
                for key in styles
                if key in draws and draws[key].shape[1] > i
            }
        )
    return MarginalsData(title, styles, dict(draws), reference, bins, own)


def prepare(table: pd.DataFrame, *, model: str, draws: Mapping[str, Mapping | None]):
    """:func:`overlay` of ``model`` then :func:`arrange`; titled by the model's pretty name."""
    q, reference = overlay(table, model, draws)
    title = table.loc[table["model"] == model, "model_pretty_name"].iloc[0]
    return arrange(q, reference, table, title)


def draw(data: MarginalsData, stem: Path, *, style: str = "paper") -> list[Path]:
    """Draw :func:`prepare`'s histograms; writes ``stem.pdf`` and ``stem.png``."""
    styles, d = data.styles, len(data.bins)
    with plt.rc_context(look.rc(style)):
        fig, axes = look.panel_grid(max(d, 1), style, extra_height=0.8)
        fig.suptitle(data.title)
        if d == 0:
            look.empty(axes[0], "no draws")
        for i, ax in enumerate(axes[:d]):
            look.reference_density(ax, i, data.reference, data.bins[i])
            for key, bins in data.own_bins[i].items():
                st = styles[key]
                ax.hist(
                    data.draws[key][:, i],
                    bins=bins,
                    density=True,
                    histtype="step",
                    color=st["color"],
                    linestyle=st["linestyle"],
                    linewidth=1.2,
                )
            ax.set_xlabel(f"z[{i}] (model scale)")
            ax.set_ylabel("density")
            ax.set_yticks([])
        ref = plt.Rectangle((0, 0), 1, 1, color=look.REFERENCE_COLOR)
        extra = [(ref, "reference")] if data.reference is not None else []
        look.legend(fig, styles, [f for f in styles if f in data.draws], extra)
        return look.save(fig, stem)


def plot(
    draws: Mapping[str, np.ndarray],
    reference: Mapping | None,
    stem: Path,
    *,
    table: pd.DataFrame,
    title: str,
    style: str = "paper",
) -> list[Path]:
    """:func:`arrange` then :func:`draw`."""
    return draw(arrange(draws, reference, table, title), stem, style=style)


FIGURE = Figure(
    "marginals",
    applies_to=posterior,
    prepare=prepare,
    draw=draw,
    needs=("draws",),
    per_model="chosen",
)
