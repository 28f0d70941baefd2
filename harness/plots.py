"""Figures: the only module that draws.  One visual language for every figure.

* families in registry order, each with a fixed colour (Okabe–Ito, colour-blind safe) and a
  fixed marker, so a family looks the same in every figure; baselines (families whose kind is
  not ``svi``: NUTS, CAVI, Laplace, …) are drawn with hollow markers and a dashed line, families
  unknown to the registry in grey with a marker fixed by their name;
* two sizes: ``paper`` (3.3 in one column, 6.9 in two columns, 8 pt) and ``slides`` (larger
  type for a 16:9 slide);
* PDF with embedded TrueType fonts (``pdf.fonttype = 42``, as journals ask) and PNG;
* ``constrained_layout`` so no label is clipped; units on every axis.

Every function takes the tidy table of :func:`harness.report.tidy` (or arrays), writes
``stem.pdf`` and ``stem.png`` and returns their paths.  Nothing here reads MLflow or the registry.
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
# PSIS k̂ reliability thresholds (Vehtari et al. 2024, "Pareto smoothed importance sampling"):
# below 0.5 the importance weights have finite variance, above 0.7 estimates are unreliable.
KHAT_BANDS = (0.5, 0.7)
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


def _rc(style: str) -> dict:
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


def _grid(n: int, style: str, *, max_cols: int = MAX_PANELS_PER_ROW, extra_height: float = 0.5):
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


def _log_time_axis(ax, axis: str = "x") -> None:
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
        for candidate in (subs, (1.0, 2.0, 3.0, 5.0), (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)):
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
    else:
        target.set_major_locator(ticker.LogLocator(base=10, subs=subs, numticks=12))
    target.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_formatter(ticker.NullFormatter())


def _titles(table: pd.DataFrame) -> dict[str, str]:
    if "model_pretty_name" not in table:
        return {m: m for m in table["model"]}
    out = {}
    for model, name in zip(table["model"], table["model_pretty_name"], strict=True):
        out.setdefault(model, name if isinstance(name, str) and name else model)
    return out


def _legend(fig, styles: Mapping[str, dict], families, extra=(), ncols: int = 4) -> None:
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


def _save(fig, stem: Path, formats: tuple[str, ...] = ("pdf", "png"), dpi: int = 150) -> list[Path]:
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


def _ok(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["status"] == "ok"] if "status" in table else table


def _wrap(label: str, width: int = 14) -> str:
    return textwrap.fill(label, width, break_long_words=False)


def _empty(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", color="0.5")


def quality_metric_for(
    table: pd.DataFrame, model: str, preferred: str, fallbacks: tuple[str, ...]
) -> str | None:
    """``preferred`` if some ok cell of ``model`` has it, else the first fallback that does."""
    rows = _ok(table)
    rows = rows[rows["model"] == model]
    for metric in (preferred, *fallbacks):
        if metric in rows and rows[metric].notna().any():
            return metric
    return None


# Cost axes of the quality-against-cost figures: wall-clock seconds (this machine) and gradient
# evaluations of the target (machine-independent, as Pathfinder's and Agrawal et al.'s papers
# compare methods).
COST_LABELS = {
    "fit_seconds": "fit time (s, log scale)",
    "num_gradient_evaluations": "gradient evaluations of log p (log scale)",
}


def quality_vs_speed(
    table: pd.DataFrame,
    stem: Path,
    metric: str,
    *,
    style: str = "paper",
    fallbacks: tuple[str, ...] = (),
    cost: str = "fit_seconds",
) -> list[Path]:
    """Quality against a cost (log x), one panel per model.

    Args:
      cost: ``fit_seconds`` (default) or ``num_gradient_evaluations`` (the same comparison
        on an axis that does not depend on the machine).

    One small point per seed, one large point per series (family, or each configuration of a
    family run with several) at the mean over seeds, and the Pareto front of those means in
    (smaller cost, better quality by the metric's catalog direction): nothing both cheaper and
    better exists off it.  A model without ``metric`` uses the first of ``fallbacks`` it has;
    the y label says which.
    """
    table = with_series(table)
    ok = _ok(table)
    styles = series_styles(table)
    titles = _titles(table)
    models = list(dict.fromkeys(table["model"]))
    any_unconverged = False
    with plt.rc_context(_rc(style)):
        fig, axes = _grid(len(models), style, extra_height=0.6)
        for ax, model in zip(axes, models, strict=True):
            ax.set_title(titles[model])
            ax.set_xlabel(COST_LABELS.get(cost, catalog.label(cost)))
            used = quality_metric_for(table, model, metric, fallbacks)
            rows = ok[ok["model"] == model]
            if used is None or cost not in rows or not (rows[cost] > 0).any():
                ax.set_ylabel(_wrap(catalog.label(metric), 30))
                _empty(ax, f"no {metric if used is None else cost}")
                continue
            ax.set_ylabel(_wrap(catalog.label(used), 30))
            rows = rows[rows[used].notna() & (rows[cost] > 0)]
            means = rows.groupby("series", sort=False)[[cost, used]].mean()
            unconverged = _unconverged(rows)
            any_unconverged |= bool(unconverged.any())
            series_unconverged = unconverged.groupby(rows["series"], sort=False).any()
            for key in [k for k in styles if k in means.index]:
                st = styles[key]
                here = rows["series"] == key
                sub = rows[here & ~unconverged]
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
                bad = rows[here & unconverged]
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
                if series_unconverged.get(key, False):
                    ax.scatter(
                        means.loc[key, cost],
                        means.loc[key, used],
                        s=80,
                        marker="x",
                        color="0.15",
                        linewidths=1.2,
                        zorder=4,
                    )
            # The front joins series whose every fit converged: a comparison never rests on an
            # unfinished optimisation.
            judged = means[~series_unconverged.reindex(means.index).fillna(False).to_numpy(bool)]
            front = catalog.pareto_front(judged[cost].to_numpy(), judged[used].to_numpy(), used)
            if len(judged) > 1 and front.size:
                x, y = judged[cost].to_numpy()[front], judged[used].to_numpy()[front]
                # A monotone metric's front is a staircase; a closest-to-target one (coverage,
                # std ratio) may cross its target, so its points are joined directly.
                if catalog.info(used).direction == "target":
                    ax.plot(x, y, color="0.4", linestyle=":", linewidth=1, zorder=2)
                    ax.axhline(catalog.info(used).target, color="0.7", linewidth=0.6)
                else:
                    ax.step(x, y, where="post", color="0.4", linestyle=":", linewidth=1, zorder=2)
            _log_time_axis(ax)
            values = rows[used].to_numpy()
            if values.size and values.min() > 0 and values.max() / values.min() > 20:
                _log_time_axis(ax, "y")
            ax.grid(True, which="major", alpha=0.3)
        front_handle = plt.Line2D([], [], color="0.4", linestyle=":")
        extra = [(front_handle, "Pareto front (means of converged series)")]
        if any_unconverged:
            crossed = plt.Line2D([], [], color="0.15", marker="x", linestyle="")
            extra.append((crossed, "not converged (crossed)"))
        _legend(fig, styles, list(styles), extra)
        return _save(fig, stem)


def _unconverged(rows: pd.DataFrame) -> pd.Series:
    """True for cells whose convergence verdict is false (unknown counts as converged: runs
    logged before the verdict existed)."""
    if "converged" not in rows:
        return pd.Series(False, index=rows.index)
    flag = pd.to_numeric(rows["converged"].astype("float64"), errors="coerce")
    return (flag == 0).fillna(False)


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
GRID_POINTS = 200


def elbo_vs_time(
    histories: pd.DataFrame, table: pd.DataFrame, stem: Path, *, style: str = "paper"
) -> list[Path]:
    """ELBO (−loss, smoothed) against fit time, one panel per model, one line per family.

    Args:
      histories: Columns ``run_id``, ``seconds`` (fit time), ``loss`` (already smoothed, as
        :func:`harness.tracking.loss_histories` gives it).
      table: The tidy table (for model, family and seed of each run).

    The line is the mean over seeds on a common log-spaced time grid, the band spans the seeds
    (min to max).
    """
    table = with_series(table)
    styles = series_styles(table)
    titles = _titles(table)
    models = list(dict.fromkeys(table["model"]))
    runs = table.set_index("run_id")[["model", "series"]]
    by_run = {r: h for r, h in histories.groupby("run_id", sort=False)} if len(histories) else {}
    with plt.rc_context(_rc(style)):
        fig, axes = _grid(len(models), style, extra_height=0.6)
        shown = []
        for ax, model in zip(axes, models, strict=True):
            ax.set_title(titles[model])
            ax.set_xlabel("fit time (s, log scale)")
            ax.set_ylabel("ELBO (nats)")
            finals, tops = [], []
            for family in styles:
                ids = [
                    r
                    for r in runs.index[(runs["model"] == model) & (runs["series"] == family)]
                    if r in by_run
                ]
                curves = [_curve(by_run[r]) for r in ids]
                curves = [c for c in curves if c[0].size > 1]
                if not curves:
                    continue
                lo = min(c[0][0] for c in curves)
                hi = max(c[0][-1] for c in curves)
                grid = np.geomspace(lo, hi, GRID_POINTS)
                stacked = np.array(
                    [np.interp(grid, t, v, left=np.nan, right=np.nan) for t, v in curves]
                )
                finite = np.isfinite(stacked)
                # The band spans every seed's range; the mean line only where at least half the
                # seeds have data (else it would follow the one slowest seed alone).
                valid = finite.any(axis=0)
                common = finite.sum(axis=0) >= math.ceil(len(curves) / 2)
                if not common.any():
                    common = valid
                with np.errstate(all="ignore"):
                    mean = np.nanmean(np.where(finite, stacked, np.nan)[:, common], axis=0)
                    low = np.nanmin(stacked[:, valid], axis=0)
                    high = np.nanmax(stacked[:, valid], axis=0)
                st = styles[family]
                ax.plot(
                    grid[common], mean, color=st["color"], linestyle=st["linestyle"], linewidth=1.2
                )
                if len(curves) > 1:
                    ax.fill_between(
                        grid[valid], low, high, color=st["color"], alpha=0.2, linewidth=0
                    )
                finals.append(mean[-1])
                tops.append(np.nanmax(high))
                if family not in shown:
                    shown.append(family)
            if not finals:
                _empty(ax, "no loss history")
                continue
            _log_time_axis(ax)
            # Show the approach to the final values, not the first steps' very low ELBO.
            top, bottom = max(tops), min(finals)
            span = max(top - bottom, 1.0)
            ax.set_ylim(bottom - 3 * span, top + 0.1 * span)
            ax.grid(True, which="major", alpha=0.3)
        _legend(fig, styles, [f for f in styles if f in shown])
        return _save(fig, stem)


def _curve(history: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    history = history.sort_values("seconds")
    history = history[np.isfinite(history["loss"]) & (history["seconds"] > 0)]
    return history["seconds"].to_numpy(float), -history["loss"].to_numpy(float)


def khat_heatmap(table: pd.DataFrame, stem: Path, *, style: str = "paper") -> list[Path]:
    """Mean PSIS k̂ over seeds per model × family, annotated, coloured around 0.5 / 0.7.

    Blue below 0.5 (importance weights reliable), white in between, red above 0.7
    (unreliable): a diverging colormap centred on the band between the two thresholds.
    """
    table = with_series(table)
    ok = _ok(table)
    styles = series_styles(table)
    titles = _titles(table)
    models = list(dict.fromkeys(table["model"]))
    families = list(styles)
    values = np.full((len(models), len(families)), np.nan)
    if "khat" in ok:
        means = ok.groupby(["model", "series"])["khat"].mean()
        for (model, family), v in means.items():
            values[models.index(model), families.index(family)] = v
    column, page, row_height, _ = STYLES[style]
    width = min(page, max(column, 2.6 + 0.7 * len(families)))
    height = max(row_height * 0.8, 1.1 + 0.35 * len(models))
    low, high = KHAT_BANDS
    finite = values[np.isfinite(values)]
    vmin = min(-0.2, finite.min()) if finite.size else -0.2
    vmax = max(1.4, finite.max()) if finite.size else 1.4
    norm = colors.TwoSlopeNorm(vmin=vmin, vcenter=(low + high) / 2, vmax=vmax)
    # Cells without a k̂ (diverged, error) are grey.
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="#EEEEEE")
    with plt.rc_context(_rc(style)):
        fig, ax = plt.subplots(figsize=(width, height))
        image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, norm=norm, aspect="auto")
        for i in range(len(models)):
            for j in range(len(families)):
                v = values[i, j]
                text = "–" if not np.isfinite(v) else f"{v:.2f}"
                dark = np.isfinite(v) and abs(norm(v) - 0.5) > 0.3
                ax.text(j, i, text, ha="center", va="center", color="white" if dark else "black")
        ax.set_xticks(
            range(len(families)),
            [styles[f]["label"] for f in families],
            rotation=30 if len(families) > 4 else 0,
            ha="right" if len(families) > 4 else "center",
            rotation_mode="anchor",
        )
        ax.set_yticks(range(len(models)), [_wrap(titles[m]) for m in models])
        ax.spines[:].set_visible(False)
        ax.tick_params(length=0)
        bar = fig.colorbar(image, ax=ax, shrink=0.9)
        bar.set_label("PSIS k̂ (mean over seeds)")
        for threshold in KHAT_BANDS:
            bar.ax.axhline(threshold, color="black", linewidth=0.8, linestyle="--")
        bar.set_ticks(sorted({round(vmin, 1), 0.0, low, high, 1.0, round(vmax, 1)}))
        return _save(fig, stem)


def std_ratio(table: pd.DataFrame, stem: Path, *, style: str = "paper") -> list[Path]:
    """q std ÷ reference std (geometric mean over coordinates) per model × family, log y.

    Points are means over seeds with ± one standard error; 1 means calibrated widths, below 1
    understated uncertainty.
    """
    table = with_series(table)
    ok = _ok(table)
    styles = series_styles(table)
    titles = _titles(table)
    models = list(dict.fromkeys(table["model"]))
    families = list(styles)
    column, page, row_height, _ = STYLES[style]
    width = min(page, max(column, 1.0 + 0.8 * len(models)))
    with plt.rc_context(_rc(style)):
        fig, ax = plt.subplots(figsize=(width, row_height + 1.2))
        ax.axhline(1.0, color="0.3", linewidth=0.8, linestyle="--")
        shown = []
        if "std_ratio_geomean" in ok:
            rows = ok[ok["std_ratio_geomean"] > 0]
            stats = rows.groupby(["model", "series"])["std_ratio_geomean"].agg(
                ["mean", "std", "count"]
            )
            offsets = np.linspace(-0.3, 0.3, len(families)) if len(families) > 1 else [0.0]
            for j, family in enumerate(families):
                st = styles[family]
                for i, model in enumerate(models):
                    if (model, family) not in stats.index:
                        continue
                    s = stats.loc[(model, family)]
                    se = s["std"] / math.sqrt(s["count"]) if s["count"] > 1 else 0.0
                    x = i + offsets[j]
                    seeds = rows[(rows["model"] == model) & (rows["series"] == family)]
                    ax.scatter(
                        np.full(len(seeds), x),
                        seeds["std_ratio_geomean"],
                        s=8,
                        color=st["color"],
                        alpha=0.35,
                        linewidths=0,
                    )
                    ax.errorbar(
                        x,
                        s["mean"],
                        yerr=se,
                        color=st["color"],
                        marker=st["marker"],
                        markerfacecolor=st["facecolor"],
                        markersize=5,
                        capsize=2,
                        linewidth=1,
                    )
                    if family not in shown:
                        shown.append(family)
        if not shown:
            _empty(ax, "no std_ratio_geomean")
        _log_time_axis(ax, "y")  # same 1-2-5 log labels as the time axes
        ax.set_xticks(
            range(len(models)),
            [_wrap(titles[m]) for m in models],
            rotation=30 if len(models) > 2 else 0,
            ha="right" if len(models) > 2 else "center",
            rotation_mode="anchor",
        )
        ax.set_xlim(-0.6, len(models) - 0.4)
        ax.set_ylabel("std ratio q / reference\n(geometric mean, log scale)")
        ax.grid(True, axis="y", which="major", alpha=0.3)
        ref = plt.Line2D([], [], color="0.3", linestyle="--", linewidth=0.8)
        _legend(
            fig,
            styles,
            shown,
            [(ref, "calibrated (ratio 1)")],
            # Long labels (a family's configurations) get one column on a narrow figure.
            ncols=(
                4
                if width >= STYLES[style][1]
                else 1
                if max((len(styles[f]["label"]) for f in shown), default=0) > 20
                else 2
            ),
        )
        return _save(fig, stem)


def _reference_density(
    ax, i: int, reference: Mapping | None, bins, *, stairs: bool = False
) -> None:
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


def _bins(arrays: list[np.ndarray], n: int = 30) -> np.ndarray:
    values = np.concatenate([a[np.isfinite(a)] for a in arrays if a is not None and a.size])
    lo, hi = np.quantile(values, [0.005, 0.995]) if values.size else (0.0, 1.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, n + 1)


def _own_bins(values: np.ndarray, shared: np.ndarray, n: int = 30) -> np.ndarray:
    """Bins over a sample's own central 99 % range (clipped to the shared axis range), so that
    a narrow q is not drawn as one or two bars of the reference's grid."""
    lo, hi = np.quantile(values[np.isfinite(values)], [0.005, 0.995])
    lo, hi = max(lo, shared[0]), min(hi, shared[-1])
    if hi <= lo:
        return shared
    return np.linspace(lo, hi, n + 1)


def _reference_arrays(reference: Mapping | None, i: int) -> list[np.ndarray]:
    if reference is None:
        return []
    if reference.get("draws") is not None and len(reference["draws"]):
        return [reference["draws"][:, i]]
    if reference.get("mean") is not None:
        m, s = float(reference["mean"][i]), float(reference["standard_deviation"][i])
        return [np.array([m - 3.5 * s, m + 3.5 * s])]
    return []


def marginals(
    draws: Mapping[str, np.ndarray],
    reference: Mapping | None,
    stem: Path,
    *,
    table: pd.DataFrame,
    title: str,
    style: str = "paper",
) -> list[Path]:
    """Marginals of q (one outline per series) over the reference, first 6 coordinates.

    Args:
      draws: Series (:func:`series_key`: a family, or one configuration of a family) → q
        draws ``[n, d]`` (one seed each).
      reference: ``draws`` ``[m, d]`` (drawn as a grey histogram) or ``mean`` and
        ``standard_deviation`` (drawn as the grey normal density), or None.
      table: The tidy table (for family colours and labels).
      title: Figure title (the model's pretty name).
    """
    styles = series_styles(table)
    dims = [a.shape[1] for a in draws.values()]
    if reference is not None and reference.get("mean") is not None:
        dims.append(len(reference["mean"]))
    d = min(MAX_MARGINALS, max(dims) if dims else 0)
    with plt.rc_context(_rc(style)):
        fig, axes = _grid(max(d, 1), style, extra_height=0.8)
        fig.suptitle(title)
        if d == 0:
            _empty(axes[0], "no draws")
        for i, ax in enumerate(axes[:d]):
            arrays = [a[:, i] for a in draws.values() if a.shape[1] > i]
            bins = _bins(arrays + _reference_arrays(reference, i))
            _reference_density(ax, i, reference, bins)
            for family in styles:
                if family in draws and draws[family].shape[1] > i:
                    st = styles[family]
                    ax.hist(
                        draws[family][:, i],
                        bins=_own_bins(draws[family][:, i], bins),
                        density=True,
                        histtype="step",
                        color=st["color"],
                        linestyle=st["linestyle"],
                        linewidth=1.2,
                    )
            ax.set_xlabel(f"z[{i}] (model scale)")
            ax.set_ylabel("density")
            ax.set_yticks([])
        ref = plt.Rectangle((0, 0), 1, 1, color=REFERENCE_COLOR)
        extra = [(ref, "reference")] if reference is not None else []
        _legend(fig, styles, [f for f in styles if f in draws], extra)
        return _save(fig, stem)


def cell_figure(
    path: Path,
    *,
    draws: np.ndarray | None,
    losses: np.ndarray,
    loss_seconds: np.ndarray,
    reference: Mapping | None,
    title: str,
) -> Path:
    """Small per-cell PNG for the MLflow run page: q's marginals (up to 6) over the reference,
    and the loss curve.  Cheap on purpose (one figure, low dpi, no PDF)."""
    d = 0 if draws is None else min(MAX_MARGINALS, draws.shape[1])
    # Fixed margins instead of constrained_layout, and one patch per histogram (``stairs``):
    # this figure is drawn for every cell, so it must cost well under 0.3 s.
    rc = {**_rc("paper"), "figure.constrained_layout.use": False}
    panel, loss_panel, height = 1.5, 2.4, 1.9  # inches
    width = panel * d + loss_panel
    with plt.rc_context(rc):
        fig = plt.figure(figsize=(width, height))
        grid = fig.add_gridspec(
            1,
            d + 1,
            width_ratios=[panel] * d + [loss_panel],
            left=0.15 / width,
            right=1 - 0.65 / width,
            bottom=0.24,
            top=0.84,
            wspace=0.25,
        )
        axes = [fig.add_subplot(grid[0, i]) for i in range(d + 1)]
        fig.suptitle(title)
        for i, ax in enumerate(axes[:d]):
            bins = _bins([draws[:, i], *_reference_arrays(reference, i)], n=25)
            _reference_density(ax, i, reference, bins, stairs=True)
            counts, edges = np.histogram(
                draws[:, i], bins=_own_bins(draws[:, i], bins, n=20), density=True
            )
            ax.stairs(counts, edges, color=OKABE_ITO[0], linewidth=1.0)
            ax.set_xlabel(f"z[{i}]")
            ax.set_yticks([])
            ax.xaxis.set_major_locator(ticker.MaxNLocator(3))
        ax = axes[d]
        finite = np.isfinite(losses)
        if finite.any():
            window = max(1, int(round(SMOOTHING_FRACTION * losses.size)))
            ax.plot(loss_seconds[finite], losses[finite], color="0.75", linewidth=0.5)
            final = smooth(losses[finite], window)
            ax.plot(loss_seconds[finite], final, color=OKABE_ITO[3], linewidth=1.0)
            tail = final[final.size // 5 :]
            span = max(float(np.ptp(tail)), 1.0)
            ax.set_ylim(float(tail.min()) - 0.2 * span, float(tail.max()) + 0.5 * span)
        else:
            _empty(ax, "no loss")
        ax.set_xlabel("fit time (s)")
        ax.set_ylabel("loss (nats)")
        ax.yaxis.set_label_position("right")
        ax.yaxis.tick_right()
        ax.spines["right"].set_visible(True)
        ax.spines["left"].set_visible(False)
        return _save(fig, Path(path).with_suffix(""), formats=("png",), dpi=80)[0]


# VSBC figure: at most this many coordinates (those with the smallest p-values).
MAX_VSBC_PANELS = 9


def vsbc_histogram(
    probabilities: np.ndarray,
    pvalues: np.ndarray,
    stem: Path,
    *,
    title: str = "",
    style: str = "paper",
) -> list[Path]:
    """VSBC: histogram of ``Pr_q(θ_i < θ_true_i)`` over simulations, one panel per coordinate.

    The filled bars are p, the black outline is 1 − p (the mirror image the asymmetry test
    compares against), the dashed line the uniform density of an exact posterior.  With more
    than :data:`MAX_VSBC_PANELS` coordinates, those with the smallest p-values are shown.
    Writes ``stem.pdf`` and ``stem.png``.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    pvalues = np.asarray(pvalues, dtype=np.float64)
    shown = np.argsort(pvalues, kind="stable")[:MAX_VSBC_PANELS]
    shown.sort()
    # About 10 simulations per bin (5 to 20 bins), so bar heights are not mostly noise.
    bins = np.linspace(0.0, 1.0, int(np.clip(probabilities.shape[0] // 10, 5, 20)) + 1)
    with plt.rc_context(_rc(style)):
        fig, axes = _grid(len(shown), style, extra_height=0.3)
        for ax, i in zip(axes, shown, strict=True):
            p = probabilities[:, i]
            ax.hist(p, bins=bins, density=True, color=OKABE_ITO[0], alpha=0.7, label="p")
            ax.hist(
                1.0 - p,
                bins=bins,
                density=True,
                histtype="step",
                color="black",
                linewidth=0.9,
                label="1 − p",
            )
            ax.axhline(1.0, color="0.4", linestyle="--", linewidth=0.8)
            ax.set_xlim(0, 1)
            ax.set_title(f"$\\theta_{{{i}}}$: KS p = {pvalues[i]:.2g}")
            ax.set_xlabel(r"$\Pr_q(\theta < \theta_\mathrm{true})$")
            ax.set_ylabel("density")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=2, frameon=False)
        if title:
            fig.suptitle(title)
        return _save(fig, stem)


__all__ = [
    "KHAT_BANDS",
    "MARKERS",
    "OKABE_ITO",
    "STYLES",
    "cell_figure",
    "elbo_vs_time",
    "family_styles",
    "khat_heatmap",
    "marginals",
    "quality_metric_for",
    "quality_vs_speed",
    "smooth",
    "std_ratio",
    "vsbc_histogram",
]


# --- VAE experiments (amortized models: harness.engines.amortized) --------------------------------------------

# Rows of a VAE cell's kept images (harness.engines.amortized.DRAW_ROWS; repeated here so that drawing needs
# no TensorFlow): test images, their reconstructions, decoded prior draws, 16 each.
VAE_IMAGE_ROWS = {"test images": 16, "reconstructions": 16, "prior samples": 16}
VAE_IMAGE_SHAPE = (8, 8)
VAE_MOSAIC_COLUMNS = 8


def mosaic(
    images: np.ndarray, shape: tuple[int, int] = VAE_IMAGE_SHAPE, columns: int = VAE_MOSAIC_COLUMNS
) -> np.ndarray:
    """Flat images ``[n, h·w]`` → one ``[rows·(h+1)−1, columns·(w+1)−1]`` array, a 1-pixel
    gap (NaN, drawn as background) between images."""
    h, w = shape
    n = images.shape[0]
    rows = max(1, math.ceil(n / columns))
    out = np.full((rows * (h + 1) - 1, columns * (w + 1) - 1), np.nan)
    for i in range(n):
        r, c = divmod(i, columns)
        out[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = images[i].reshape(h, w)
    return out


def split_vae_images(draws: np.ndarray) -> dict[str, np.ndarray]:
    """A VAE cell's kept images ``[48, 64]`` → name → ``[16, 64]`` (:data:`VAE_IMAGE_ROWS`)."""
    out, start = {}, 0
    for name, rows in VAE_IMAGE_ROWS.items():
        out[name] = draws[start : start + rows]
        start += rows
    return out


def _image(ax, images: np.ndarray) -> None:
    cmap = plt.get_cmap("gray_r").with_extremes(bad="#DDDDDD")  # gaps between images
    ax.imshow(mosaic(images), cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def vae_images(
    images: Mapping[str, np.ndarray], labels: Mapping[str, str], stem: Path, *, style: str = "paper"
) -> list[Path]:
    """One row per encoder family: test images, their reconstructions and decoded prior
    draws, as pixel probabilities (white 0, black 1).

    Args:
      images: Family → its lowest-seed cell's kept images ``[48, 64]``.
      labels: Family → label (pretty name).
    """
    families = list(images)
    column, page, _, _ = STYLES[style]
    panels = list(VAE_IMAGE_ROWS)
    with plt.rc_context(_rc(style)):
        height = 0.95 * page / len(panels) * 2 / 8 * max(1, len(families)) + 0.5
        fig, axes = plt.subplots(
            max(1, len(families)), len(panels), figsize=(page, height), squeeze=False
        )
        for row, family in enumerate(families):
            parts = split_vae_images(images[family])
            for col, name in enumerate(panels):
                ax = axes[row, col]
                _image(ax, parts[name])
                if row == 0:
                    ax.set_title(name)
                if col == 0:  # horizontal row label: a long name never outgrows its row
                    ax.set_ylabel(
                        _wrap(labels.get(family, family), 12), rotation=0, ha="right", va="center"
                    )
        if not families:
            _empty(axes[0, 0], "no images")
        return _save(fig, stem)


def vae_likelihood_vs_time(table: pd.DataFrame, stem: Path, *, style: str = "paper") -> list[Path]:
    """Test log-likelihood (``test_iw_elbo``, ± 2 Monte Carlo standard errors) and test ELBO
    against fit time (log x), one point per cell, one colour per encoder family."""
    ok = _ok(table)
    ok = ok[ok["family_kind"] == "amortized"] if "family_kind" in ok else ok
    styles = family_styles(ok) if len(ok) else {}
    with plt.rc_context(_rc(style)):
        fig, axes = _grid(2, style, extra_height=0.6)
        for ax, metric in zip(axes, ("test_iw_elbo", "test_elbo"), strict=True):
            ax.set_xlabel("fit time (s, log scale)")
            ax.set_ylabel(_wrap(catalog.label(metric), 26))
            if metric not in ok or not ok[metric].notna().any():
                _empty(ax, f"no {metric}")
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
            _log_time_axis(ax)
            ax.grid(True, which="major", alpha=0.3)
        _legend(fig, styles, list(styles))
        return _save(fig, stem)


def vae_amortization_gap(table: pd.DataFrame, stem: Path, *, style: str = "paper") -> list[Path]:
    """Amortization gap per encoder family: one point per seed (± 2 Monte Carlo standard
    errors), a bar at the mean over seeds; 0 (no cost of amortization) as a line."""
    ok = _ok(table)
    ok = ok[ok["family_kind"] == "amortized"] if "family_kind" in ok else ok
    styles = family_styles(ok) if len(ok) else {}
    column, _, row_height, _ = STYLES[style]
    with plt.rc_context(_rc(style)):
        fig, ax = plt.subplots(figsize=(column, row_height + 0.4))
        ax.axhline(0.0, color="0.5", linewidth=0.8)
        names = [
            f
            for f in styles
            if "amortization_gap" in ok
            and ok.loc[ok["family"] == f, "amortization_gap"].notna().any()
        ]
        for i, family in enumerate(names):
            st = styles[family]
            sub = ok[(ok["family"] == family) & ok["amortization_gap"].notna()]
            ax.bar(i, sub["amortization_gap"].mean(), color=st["color"], alpha=0.35, width=0.6)
            offsets = np.linspace(-0.15, 0.15, len(sub)) if len(sub) > 1 else np.zeros(1)
            err = (
                2 * sub["amortization_gap_standard_error"]
                if "amortization_gap_standard_error" in sub
                else None
            )
            ax.errorbar(
                i + offsets,
                sub["amortization_gap"],
                yerr=err,
                color=st["color"],
                marker=st["marker"],
                linestyle="none",
                markersize=4,
                capsize=2,
            )
        ax.set_xticks(range(len(names)), [_wrap(styles[f]["label"]) for f in names])
        ax.set_ylabel(_wrap(catalog.label("amortization_gap"), 22))
        if not names:
            _empty(ax, "no amortization_gap")
        ax.grid(True, axis="y", alpha=0.3)
        return _save(fig, stem)


def vae_cell_figure(
    path: Path,
    *,
    draws: np.ndarray | None,
    losses: np.ndarray,
    loss_seconds: np.ndarray,
    title: str,
) -> Path:
    """Small per-cell PNG of a VAE cell: its kept images and the training loss curve."""
    rc = {**_rc("paper"), "figure.constrained_layout.use": True}
    with plt.rc_context(rc):
        fig, axes = plt.subplots(
            1, 4, figsize=(8.0, 1.9), gridspec_kw={"width_ratios": [1.6, 1.6, 1.6, 1.4]}
        )
        fig.suptitle(title)
        parts = split_vae_images(draws) if draws is not None else {}
        for ax, name in zip(axes[:3], VAE_IMAGE_ROWS, strict=True):
            if name in parts:
                _image(ax, parts[name])
                ax.set_title(name)
            else:
                ax.set_visible(False)
        ax = axes[3]
        finite = np.isfinite(losses)
        if finite.any():
            ax.plot(loss_seconds[finite], losses[finite], color="0.6", linewidth=0.5)
            tail = losses[finite][losses[finite].size // 5 :]
            span = max(float(np.ptp(tail)), 1.0)
            ax.set_ylim(float(tail.min()) - 0.2 * span, float(tail.max()) + 0.5 * span)
        else:
            _empty(ax, "no loss")
        ax.set_xlabel("fit time (s)")
        ax.set_ylabel("−ELBO (nats/image)")
        return _save(fig, Path(path).with_suffix(""), formats=("png",), dpi=80)[0]
