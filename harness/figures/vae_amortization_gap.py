"""Amortization gap per encoder family: one point per seed (± 2 Monte Carlo standard errors),
a bar at the mean over seeds; 0 (no cost of amortization) as a line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from harness.figures import style as look
from harness.figures.base import Figure, amortized

METRIC = "amortization_gap"


@dataclasses.dataclass(frozen=True)
class Bar:
    """One family: its seeds' gaps and their standard errors (None: not logged)."""

    family: str
    gaps: np.ndarray
    standard_errors: np.ndarray | None


@dataclasses.dataclass(frozen=True)
class GapData:
    styles: dict[str, dict]
    bars: list[Bar]


def prepare(table: pd.DataFrame) -> GapData:
    """One :class:`Bar` per amortized family with a gap, in registry order."""
    ok = look.ok_rows(table)
    ok = ok[ok["family_kind"] == "amortized"] if "family_kind" in ok else ok
    styles = look.family_styles(ok) if len(ok) else {}
    bars = []
    for family in styles:
        if METRIC not in ok:
            break
        sub = ok[(ok["family"] == family) & ok[METRIC].notna()]
        if not len(sub):
            continue
        se = f"{METRIC}_standard_error"
        bars.append(Bar(family, sub[METRIC].to_numpy(), sub[se].to_numpy() if se in sub else None))
    return GapData(styles, bars)


def draw(data: GapData, stem: Path, *, style: str = "paper") -> list[Path]:
    """Draw :func:`prepare`'s bars; writes ``stem.pdf`` and ``stem.png``."""
    styles = data.styles
    column, _, row_height, _ = look.STYLES[style]
    with plt.rc_context(look.rc(style)):
        fig, ax = plt.subplots(figsize=(column, row_height + 0.4))
        ax.axhline(0.0, color="0.5", linewidth=0.8)
        for i, bar in enumerate(data.bars):
            st = styles[bar.family]
            ax.bar(i, bar.gaps.mean(), color=st["color"], alpha=0.35, width=0.6)
            n = len(bar.gaps)
            offsets = np.linspace(-0.15, 0.15, n) if n > 1 else np.zeros(1)
            err = None if bar.standard_errors is None else 2 * bar.standard_errors
            ax.errorbar(
                i + offsets,
                bar.gaps,
                yerr=err,
                color=st["color"],
                marker=st["marker"],
                linestyle="none",
                markersize=4,
                capsize=2,
            )
        ax.set_xticks(
            range(len(data.bars)), [look.wrap(styles[b.family]["label"]) for b in data.bars]
        )
        ax.set_ylabel(look.wrap(look.axis_label(METRIC), 22))
        if not data.bars:
            look.empty(ax, f"no {METRIC}")
        ax.grid(True, axis="y", alpha=0.3)
        return look.save(fig, stem)


def plot(table: pd.DataFrame, stem: Path, *, style: str = "paper") -> list[Path]:
    """:func:`prepare` then :func:`draw`."""
    return draw(prepare(table), stem, style=style)


FIGURE = Figure("vae_amortization_gap", applies_to=amortized, prepare=prepare, draw=draw)
