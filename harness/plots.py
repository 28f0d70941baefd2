"""Figures: the only module that draws.  One visual language for every figure.

* families in registry order, each with a fixed colour (Okabe–Ito, colour-blind safe) and a
  fixed marker, so a family looks the same in every figure;
* PDF with embedded TrueType fonts (``pdf.fonttype = 42``, as journals ask) and PNG;
* ``constrained_layout`` so no label is clipped; units on every time axis.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import ticker  # noqa: E402

from harness.families import FAMILIES  # noqa: E402

# Okabe & Ito (2008) palette, black last.
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
             "#000000"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">"]
METRIC_LABELS = {
    "wasserstein_1": "W₁ to reference (reference sd units)",
    "mean_z_error_rms": "RMS mean error (reference sd units)",
    "mean_z_error_max": "max |mean error| (reference sd units)",
    "kl_divergence": "KL(q‖p) (nats)",
    "log_normalizer_error": "log Z − ELBO (nats)",
    "elbo": "ELBO (nats)",
    "std_ratio_geomean": "std ratio q / reference (geometric mean)",
    "khat": "PSIS k̂",
}
STYLES = {
    # name: (width inches per panel, height inches, font size)
    "paper": (2.4, 2.2, 8),
    "slides": (4.0, 3.2, 12),
}


def family_style(family: str) -> dict:
    """Colour, marker and label of a family: fixed by its position in the registry."""
    names = list(FAMILIES)
    i = names.index(family) if family in names else len(names) + hash(family) % 4
    label = FAMILIES[family].pretty_name if family in FAMILIES else family
    return {"color": OKABE_ITO[i % len(OKABE_ITO)], "marker": MARKERS[i % len(MARKERS)],
            "label": label}


def _log_time_axis(ax) -> None:
    """Log-scale seconds axis with plain 1-2-5 labels (no crowded minor labels)."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=12))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())


def _family_order(families) -> list[str]:
    names = list(FAMILIES)
    return sorted(set(families), key=lambda f: (names.index(f) if f in names else len(names), f))


def _rc(style: str) -> dict:
    size = STYLES[style][2]
    return {"pdf.fonttype": 42, "ps.fonttype": 42, "font.size": size, "axes.titlesize": size,
            "axes.labelsize": size, "legend.fontsize": size - 1, "xtick.labelsize": size - 1,
            "ytick.labelsize": size - 1, "axes.spines.top": False, "axes.spines.right": False}


def _save(fig, stem: Path) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("pdf", "png"):
        path = stem.with_suffix(f".{ext}")
        tmp = path.with_name(path.stem + ".tmp." + ext)
        fig.savefig(tmp, dpi=200)
        tmp.replace(path)
        paths.append(path)
    plt.close(fig)
    return paths


def quality_vs_speed(table: pd.DataFrame, stem: Path, metric: str, *,
                     style: str = "paper") -> list[Path]:
    """Quality metric against ``fit_seconds`` (log x), one panel per model, one colour and
    marker per family, one point per seed.  Writes ``stem.pdf`` and ``stem.png``."""
    ok = table[(table["status"] == "ok")] if "status" in table else table
    ok = ok[ok[metric].notna() & ok["fit_seconds"].notna()] if metric in ok else ok.iloc[0:0]
    models = list(dict.fromkeys(table["model"]))
    ncols = min(3, max(1, len(models)))
    nrows = max(1, math.ceil(len(models) / ncols))
    width, height, _ = STYLES[style]
    with plt.rc_context(_rc(style)):
        fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows + 0.4),
                                 squeeze=False, constrained_layout=True)
        handles = {}
        for ax, model in zip(axes.flat, models, strict=False):
            rows = ok[ok["model"] == model]
            for family in _family_order(rows["family"]):
                sub = rows[rows["family"] == family]
                st = family_style(family)
                h = ax.scatter(sub["fit_seconds"], sub[metric], s=22, color=st["color"],
                               marker=st["marker"], label=st["label"], alpha=0.9,
                               edgecolors="white", linewidths=0.4)
                handles[family] = h
            _log_time_axis(ax)
            ax.set_title(model)
            ax.set_xlabel("fit time (s, log scale)")
            ax.set_ylabel(METRIC_LABELS.get(metric, metric))
            if rows.empty:
                ax.text(0.5, 0.5, f"no {metric}", transform=ax.transAxes, ha="center",
                        va="center", color="0.5")
            ax.grid(True, which="major", alpha=0.3)
        for ax in list(axes.flat)[len(models):]:
            ax.set_visible(False)
        order = _family_order(handles)
        fig.legend([handles[f] for f in order], [family_style(f)["label"] for f in order],
                   loc="outside lower center", ncols=min(len(order), 5), frameon=False)
        return _save(fig, stem)


__all__ = ["MARKERS", "OKABE_ITO", "family_style", "quality_vs_speed"]
