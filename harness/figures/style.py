"""Shared look of every figure: palette, family and series styles, sizes, axes, legend, saving.

* families in registry order, each with a fixed colour (Okabe–Ito, colour-blind safe) and a
  fixed marker, so a family looks the same in every figure; baselines (families whose kind is
  not ``svi``: NUTS, CAVI, Laplace, …) are drawn with hollow markers and a dashed line, families
  unknown to the registry in grey with a marker fixed by their name;
* two sizes: ``paper`` (3.3 in one column, 6.9 in two columns, 8 pt) and ``slides`` (larger
  type for a 16:9 slide);
* PDF with embedded TrueType fonts (``pdf.fonttype = 42``, as journals ask) and PNG;
* ``constrained_layout`` so no label is clipped; units on every axis, labels from the metric
  catalog (:mod:`harness.metrics.catalog`).

Nothing here reads MLflow or the registries.
"""

from __future__ import annotations

import math
import os
import textwrap
import uuid
import zlib
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import colors, ticker  # noqa: E402

from harness.metrics import catalog  # noqa: E402

# Okabe & Ito (2008) palette, black last.
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">"]
UNKNOWN_COLOR = "#7F7F7F"
REFERENCE_COLOR = "#BBBBBB"
STYLES = {
    # name: (one-column width, full width, height of one row of panels (inches), font size)
    # 3.3 in / 6.9 in are the one- and two-column widths of most journals (e.g. JMLR, PMLR).
    "paper": (3.3, 6.9, 2.3, 8),
    "slides": (6.0, 12.0, 4.0, 14),
}
MAX_PANELS_PER_ROW = 3
MAX_MARGINALS = 6


def family_styles(table: pd.DataFrame) -> dict[str, dict]:
    """Colour, marker, label and kind of every family in a tidy table.

    The colour and marker are fixed by the family's registry position (column
    ``family_order``), so a family looks the same in every figure of every experiment.
    """
    info = _family_info(table)
    return {f: _style(f, *info[f]) for f in info}


# Line styles of a family's configurations (grid variants) after its own: each configuration
# keeps the family's marker, in a shade of its colour, with its own dash.
VARIANT_LINESTYLES = (":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)))
# Shades of a family's colour for its further configurations: > 0 towards white, < 0 towards
# black; the marker stays the family's, so configurations never borrow another family's look.
VARIANT_SHADES = (0.5, -0.45, 0.75, -0.7)


def _shade(color: str, amount: float) -> str:
    rgb = np.array(colors.to_rgb(color))
    target = 1.0 if amount > 0 else 0.0
    return colors.to_hex(rgb + (target - rgb) * abs(amount))


def series_key(family: str, variant: str) -> str:
    """The key of one series in a figure: a family, or a family's configuration when it ran
    with several (``variant`` non-empty, see :func:`harness.report.tidy`)."""
    return f"{family} [{variant}]" if variant else family


def with_series(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with a ``series`` column (:func:`series_key` of family and variant)."""
    out = table.copy()
    variants = out["variant"].fillna("") if "variant" in out else pd.Series("", index=out.index)
    out["series"] = [series_key(f, v) for f, v in zip(out["family"], variants, strict=True)]
    return out


def series_styles(table: pd.DataFrame) -> dict[str, dict]:
    """Style of every series (family × configuration) of a tidy table, in registry order.

    A family with one configuration looks as :func:`family_styles` draws it; a family run
    with several keeps its marker, and each configuration gets a distinct label (the family's
    pretty name and the differing settings), shade of the family's colour and dash, so
    configurations never merge.
    """
    families = family_styles(table)
    variants = (
        table["variant"].fillna("") if "variant" in table else pd.Series("", index=table.index)
    )
    out = {}
    for family, style in families.items():
        own = list(dict.fromkeys(variants[table["family"] == family]))
        for j, variant in enumerate(own):
            st = dict(style)
            if variant:
                st["label"] = f"{style['label']} ({variant})"
                if j:
                    st["linestyle"] = VARIANT_LINESTYLES[(j - 1) % len(VARIANT_LINESTYLES)]
                    st["color"] = _shade(
                        style["color"], VARIANT_SHADES[(j - 1) % len(VARIANT_SHADES)]
                    )
                    st["facecolor"] = "white" if style["baseline"] else st["color"]
            out[series_key(family, variant)] = st
    return out


def _family_info(table: pd.DataFrame) -> dict[str, tuple[float, str, str]]:
    info = {}
    for family, rows in table.groupby("family", sort=False):
        first = rows.iloc[0]
        order = float(first.get("family_order", np.nan))
        label = first.get("family_pretty_name") or family
        kind = first.get("family_kind") or "svi"
        info[family] = (
            order,
            label if isinstance(label, str) else family,
            kind if isinstance(kind, str) else "svi",
        )
    return dict(sorted(info.items(), key=lambda kv: (_order_key(kv[1][0]), kv[0])))


def _order_key(order: float) -> float:
    return order if np.isfinite(order) else math.inf


def _style(family: str, order: float, label: str, kind: str) -> dict:
    if np.isfinite(order):
        i = int(order)
        color, marker = OKABE_ITO[i % len(OKABE_ITO)], MARKERS[i % len(MARKERS)]
    else:  # not in the registry: grey, with a marker that depends on the name only
        color = UNKNOWN_COLOR
        marker = MARKERS[zlib.crc32(family.encode()) % len(MARKERS)]
    baseline = kind not in ("svi", "amortized")  # amortized: VAE encoder families
    return {
        "color": color,
        "marker": marker,
        "label": label,
        "kind": kind,
        "baseline": baseline,
        "linestyle": "--" if baseline else "-",
        "facecolor": "white" if baseline else color,
    }


def rc(style: str) -> dict:
    size = STYLES[style][3]
    return {
        "pdf.fonttype": 42,
        "ps.fonttype": 42,
        "font.size": size,
        "axes.titlesize": size,
        "axes.labelsize": size,
        "legend.fontsize": size - 1,
        "xtick.labelsize": size - 1,
        "ytick.labelsize": size - 1,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "figure.constrained_layout.use": True,
    }


def panel_grid(
    n: int, style: str, *, max_cols: int = MAX_PANELS_PER_ROW, extra_height: float = 0.5
):
    """Figure with ``n`` panels (full page width when more than one), unused panels hidden."""
    column, page, row_height, _ = STYLES[style]
    ncols = min(max_cols, max(1, n))
    nrows = max(1, math.ceil(n / ncols))
    width = column if ncols == 1 else page
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width, row_height * nrows + extra_height), squeeze=False
    )
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat)[:n]


def log_axis(ax, axis: str = "x") -> None:
    """Log-scale axis (seconds, or any positive quantity) with plain labels: 1-2-5 within about a decade, else powers of
    ten only (so labels never crowd); no minor labels.  Call after plotting."""
    target = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    low, high = ax.get_xlim() if axis == "x" else ax.get_ylim()
    decades = math.log10(high / low) if low > 0 and high > low else 0.0
    # Labels stack vertically on a y axis, so it has room for 1-2-5 over more decades.
    subs = (1.0, 2.0, 5.0) if decades <= (1.3 if axis == "x" else 2.5) else (1.0,)
    # Matplotlib's LogLocator switches to linear ticks when fewer than two of its ticks are
    # in view, and those crowd on a log axis; pick fixed ticks from ever finer log sequences.
    ticks = []
    if low > 0 and high > low:
        # 1-2-5 before 1-2-3-5: on a narrow panel spanning just over a decade, "0.02" and
        # "0.03" ran into each other.
        sequences = ((1.0, 2.0, 5.0), (1.0, 2.0, 3.0, 5.0), (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0))
        for candidate in (subs, *sequences):
            ticks = [
                m * 10.0**e
                for e in range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1)
                for m in candidate
                if low <= m * 10.0**e <= high
            ]
            if len(ticks) >= 2:
                break
    if len(ticks) >= 2:
        target.set_major_locator(ticker.FixedLocator(ticks))
    elif decades < 1:
        # A narrow range (16.1–17.6 s) between the log sequences' values: a few evenly spaced
        # round values, as LogLocator's linear fallback would crowd its labels.
        target.set_major_locator(ticker.MaxNLocator(nbins=3, steps=[1, 2, 2.5, 5, 10]))
    else:
        target.set_major_locator(ticker.LogLocator(base=10, subs=subs, numticks=12))
    # Plain numbers (0.5, 20, 1000) unless the axis reaches 10⁵ or below 10⁻³: then every label
    # is a power of ten (10⁵, 2×10⁴), never "1e+06" beside "100000".
    shown = ticks if len(ticks) >= 2 else [low, high]
    powers = bool(shown) and (max(shown) >= 1e5 or 0 < min(shown) < 1e-3)
    target.set_major_formatter(ticker.FuncFormatter(_power_label if powers else _plain_label))
    target.set_minor_formatter(ticker.NullFormatter())


def _plain_label(value: float, _position=None) -> str:
    return f"{value:g}"


def _power_label(value: float, _position=None) -> str:
    """``10⁵``, ``2×10⁴`` (mathtext) for a positive tick value."""
    if not value > 0:
        return f"{value:g}"
    exponent = math.floor(math.log10(value) + 1e-9)
    mantissa = round(value / 10.0**exponent, 6)
    if mantissa >= 10:
        mantissa, exponent = mantissa / 10, exponent + 1
    power = rf"10^{{{exponent}}}"
    return rf"${power}$" if mantissa == 1 else rf"${mantissa:g}\times{power}$"


def model_titles(table: pd.DataFrame) -> dict[str, str]:
    if "model_pretty_name" not in table:
        return {m: m for m in table["model"]}
    out = {}
    for model, name in zip(table["model"], table["model_pretty_name"], strict=True):
        out.setdefault(model, name if isinstance(name, str) and name else model)
    return out


def legend(fig, styles: Mapping[str, dict], families, extra=(), ncols: int = 4) -> None:
    handles, labels = [], []
    for family in families:
        st = styles[family]
        handles.append(
            plt.Line2D(
                [],
                [],
                color=st["color"],
                marker=st["marker"],
                markerfacecolor=st["facecolor"],
                linestyle=st["linestyle"],
            )
        )
        labels.append(st["label"])
    for handle, label in extra:
        handles.append(handle)
        labels.append(label)
    if handles:
        fig.legend(
            handles,
            labels,
            loc="outside lower center",
            ncols=_fitting_columns(fig, labels, ncols),
            frameon=False,
        )


def _fitting_columns(fig, labels: list[str], most: int) -> int:
    """The most legend columns (≤ ``most``) whose widest row fits the figure's width.

    An entry is about its handle (0.5 in) plus its label at the legend font's average
    character width (0.55 em); a row of the longest entries must fit, or a long label (a
    configuration, the crossed-point key) would run off the page."""
    size = plt.rcParams["legend.fontsize"]
    points = size if isinstance(size, (int, float)) else plt.rcParams["font.size"]
    width = max((0.5 + 0.55 * points / 72 * len(label) for label in labels), default=1.0)
    fits = int(fig.get_figwidth() // width)
    return max(1, min(len(labels), most, fits))


def save(fig, stem: Path, formats: tuple[str, ...] = ("pdf", "png"), dpi: int = 150) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in formats:
        path = stem.with_suffix(f".{ext}")
        # A name of its own per writer: two drivers of one experiment may draw the same figure.
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp.{ext}")
        fig.savefig(tmp, dpi=dpi)
        # The layout solved for the first format holds for the next: skip solving it again.
        fig.set_layout_engine("none")
        tmp.replace(path)
        paths.append(path)
    plt.close(fig)
    return paths


def ok_rows(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["status"] == "ok"] if "status" in table else table


def wrap(label: str, width: int = 14) -> str:
    return textwrap.fill(label, width, break_long_words=False)


def empty(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", color="0.5")


def quality_metric_for(
    table: pd.DataFrame, model: str, preferred: str, fallbacks: tuple[str, ...]
) -> str | None:
    """``preferred`` if some ok cell of ``model`` has it, else the first fallback that does."""
    rows = ok_rows(table)
    rows = rows[rows["model"] == model]
    for metric in (preferred, *fallbacks):
        if metric in rows and rows[metric].notna().any():
            return metric
    return None


def axis_label(name: str, *, log: bool = False) -> str:
    """The catalog label of metric ``name``, with "log scale" inside its unit's parentheses
    (``fit time (s, log scale)``) or after it when it has none."""
    text = catalog.label(name)
    if not log:
        return text
    if text.endswith(")"):
        return text[:-1] + ", log scale)"
    # A long label on its own line: side by side, panels about 3 in wide would overlap their
    # neighbours' ("gradient evaluations of log p (log scale)" did).
    return text + ("\n(log scale)" if len(text) > 22 else " (log scale)")


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (same length; the first points average what exists so far)."""
    if window <= 1 or values.size == 0:
        return values
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    index = np.arange(1, values.size + 1)
    counts = np.minimum(index, window)
    return (cumulative[index] - cumulative[index - counts]) / counts


# Loss curves are smoothed over this fraction of their steps: the per-step loss is a
# `sample_size`-particle estimate whose noise would hide the trend.
SMOOTHING_FRACTION = 0.02


def reference_density(ax, i: int, reference: Mapping | None, bins, *, stairs: bool = False) -> None:
    """Coordinate ``i`` of a reference in grey: its draws' histogram over ``bins``, else the
    normal density of its mean and standard deviation."""
    if reference is None:
        return
    draws = reference.get("draws")
    if draws is not None and len(draws) and stairs:
        counts, edges = np.histogram(draws[:, i], bins=bins, density=True)
        ax.stairs(counts, edges, fill=True, color=REFERENCE_COLOR, linewidth=0)
    elif draws is not None and len(draws):
        ax.hist(draws[:, i], bins=bins, density=True, color=REFERENCE_COLOR, linewidth=0)
    elif reference.get("mean") is not None:
        mean, std = float(reference["mean"][i]), float(reference["standard_deviation"][i])
        x = np.linspace(bins[0], bins[-1], 200)
        ax.fill_between(
            x,
            np.exp(-0.5 * ((x - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi)),
            color=REFERENCE_COLOR,
            linewidth=0,
        )


def shared_bins(arrays: list[np.ndarray], n: int = 30) -> np.ndarray:
    """``n`` bins over the central 99 % of every array together (one axis range)."""
    values = np.concatenate([a[np.isfinite(a)] for a in arrays if a is not None and a.size])
    lo, hi = np.quantile(values, [0.005, 0.995]) if values.size else (0.0, 1.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, n + 1)


def own_bins(values: np.ndarray, shared: np.ndarray, n: int = 30) -> np.ndarray:
    """Bins over a sample's own central 99 % range (clipped to the shared axis range), so that
    a narrow q is not drawn as one or two bars of the reference's grid."""
    lo, hi = np.quantile(values[np.isfinite(values)], [0.005, 0.995])
    lo, hi = max(lo, shared[0]), min(hi, shared[-1])
    if hi <= lo:
        return shared
    return np.linspace(lo, hi, n + 1)


def reference_arrays(reference: Mapping | None, i: int) -> list[np.ndarray]:
    """Values of coordinate ``i`` that a reference puts on the axis (its draws, or its mean
    ± 3.5 standard deviations)."""
    if reference is None:
        return []
    if reference.get("draws") is not None and len(reference["draws"]):
        return [reference["draws"][:, i]]
    if reference.get("mean") is not None:
        m, s = float(reference["mean"][i]), float(reference["standard_deviation"][i])
        return [np.array([m - 3.5 * s, m + 3.5 * s])]
    return []
