"""Mean PSIS k̂ over seeds per model × series, annotated, coloured around 0.5 / 0.7.

Blue below 0.5 (importance weights reliable), white in between, red above 0.7 (unreliable): a
diverging colormap centred on the band between the two thresholds.  Cells without a k̂
(diverged, error) are grey.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import colors

from harness.figures import style as look
from harness.figures.base import Figure, posterior

# PSIS k̂ reliability thresholds (Vehtari et al. 2024, "Pareto smoothed importance sampling"):
# below 0.5 the importance weights have finite variance, above 0.7 estimates are unreliable.
KHAT_BANDS = (0.5, 0.7)


@dataclasses.dataclass(frozen=True)
class KhatData:
    """``values[i, j]``: mean k̂ of model ``models[i]`` × series ``series[j]`` (NaN: none)."""

    values: np.ndarray
    model_labels: list[str]
    series_labels: list[str]
    vmin: float
    vmax: float


def prepare(table: pd.DataFrame) -> KhatData:
    """The k̂ matrix of a tidy table and its colour range (at least −0.2 to 1.4)."""
    table = look.with_series(table)
    ok = look.ok_rows(table)
    styles = look.series_styles(table)
    titles = look.model_titles(table)
    models = list(dict.fromkeys(table["model"]))
    families = list(styles)
    values = np.full((len(models), len(families)), np.nan)
    if "khat" in ok:
        means = ok.groupby(["model", "series"])["khat"].mean()
        for (model, family), v in means.items():
            values[models.index(model), families.index(family)] = v
    finite = values[np.isfinite(values)]
    vmin = min(-0.2, finite.min()) if finite.size else -0.2
    vmax = max(1.4, finite.max()) if finite.size else 1.4
    return KhatData(
        values,
        [titles[m] for m in models],
        [styles[f]["label"] for f in families],
        vmin,
        vmax,
    )


def draw(data: KhatData, stem: Path, *, style: str = "paper") -> list[Path]:
    """Draw :func:`prepare`'s matrix; writes ``stem.pdf`` and ``stem.png``."""
    values = data.values
    n_models, n_series = values.shape
    column, page, row_height, _ = look.STYLES[style]
    width = min(page, max(column, 2.6 + 0.7 * n_series))
    height = max(row_height * 0.8, 1.1 + 0.35 * n_models)
    low, high = KHAT_BANDS
    norm = colors.TwoSlopeNorm(vmin=data.vmin, vcenter=(low + high) / 2, vmax=data.vmax)
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="#EEEEEE")
    with plt.rc_context(look.rc(style)):
        fig, ax = plt.subplots(figsize=(width, height))
        image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, norm=norm, aspect="auto")
        for i in range(n_models):
            for j in range(n_series):
                v = values[i, j]
                text = "–" if not np.isfinite(v) else f"{v:.2f}"
                dark = np.isfinite(v) and abs(norm(v) - 0.5) > 0.3
                ax.text(j, i, text, ha="center", va="center", color="white" if dark else "black")
        ax.set_xticks(
            range(n_series),
            data.series_labels,
            rotation=30 if n_series > 4 else 0,
            ha="right" if n_series > 4 else "center",
            rotation_mode="anchor",
        )
        ax.set_yticks(range(n_models), [look.wrap(t) for t in data.model_labels])
        ax.spines[:].set_visible(False)
        ax.tick_params(length=0)
        bar = fig.colorbar(image, ax=ax, shrink=0.9)
        bar.set_label(f"{look.axis_label('khat')} (mean over seeds)")
        for threshold in KHAT_BANDS:
            bar.ax.axhline(threshold, color="black", linewidth=0.8, linestyle="--")
        bar.set_ticks(sorted({round(data.vmin, 1), 0.0, low, high, 1.0, round(data.vmax, 1)}))
        return look.save(fig, stem)


def plot(table: pd.DataFrame, stem: Path, *, style: str = "paper") -> list[Path]:
    """:func:`prepare` then :func:`draw`."""
    return draw(prepare(table), stem, style=style)


FIGURE = Figure("khat", applies_to=posterior, prepare=prepare, draw=draw)
