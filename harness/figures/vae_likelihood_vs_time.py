"""Test log-likelihood (``test_iw_elbo``, ± 2 Monte Carlo standard errors) and test ELBO
against fit time (log x), one point per VAE cell, one colour per encoder family."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from harness.figures import style as look
from harness.figures.base import Figure, amortized

METRICS = ("test_iw_elbo", "test_elbo")


@dataclasses.dataclass(frozen=True)
class LikelihoodData:
    """Ok amortized cells (``rows``) and their families' styles."""

    rows: pd.DataFrame
    styles: dict[str, dict]


def prepare(table: pd.DataFrame) -> LikelihoodData:
    """The ok amortized cells of a tidy table."""
    ok = look.ok_rows(table)
    ok = ok[ok["family_kind"] == "amortized"] if "family_kind" in ok else ok
    return LikelihoodData(ok, look.family_styles(ok) if len(ok) else {})


def draw(data: LikelihoodData, stem: Path, *, style: str = "paper") -> list[Path]:
    """One panel per metric of :data:`METRICS`; writes ``stem.pdf`` and ``stem.png``."""
    ok, styles = data.rows, data.styles
    with plt.rc_context(look.rc(style)):
        fig, axes = look.panel_grid(2, style, extra_height=0.6)
        for ax, metric in zip(axes, METRICS, strict=True):
            ax.set_xlabel(look.axis_label("fit_seconds", log=True))
            ax.set_ylabel(look.wrap(look.axis_label(metric), 26))
            if metric not in ok or not ok[metric].notna().any():
                look.empty(ax, f"no {metric}")
                continue
            se = f"{metric}_standard_error"
            for family, st in styles.items():
                sub = ok[ok["family"] == family]
                err = 2 * sub[se] if se in sub else None
                ax.errorbar(
                    sub["fit_seconds"],
                    sub[metric],
                    yerr=err,
                    color=st["color"],
                    marker=st["marker"],
                    markerfacecolor=st["facecolor"],
                    linestyle="none",
                    markersize=4,
                    capsize=2,
                )
            look.log_axis(ax)
            ax.grid(True, which="major", alpha=0.3)
        look.legend(fig, styles, list(styles))
        return look.save(fig, stem)


def plot(table: pd.DataFrame, stem: Path, *, style: str = "paper") -> list[Path]:
    """:func:`prepare` then :func:`draw`."""
    return draw(prepare(table), stem, style=style)


FIGURE = Figure("vae_likelihood_vs_time", applies_to=amortized, prepare=prepare, draw=draw)
