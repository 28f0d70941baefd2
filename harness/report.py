"""Runs → one tidy pandas table → CSV, Markdown and LaTeX tables and (through
:mod:`harness.figures`) figures.

Reads runs back from MLflow (``mlflow.search_runs``, loss histories and per-cell draws via
:mod:`harness.tracking`), never from local files, so the report of a sweep is the same wherever
its tracking store lives.  Nothing here imports TensorFlow or the registries: labels, family
kinds and colours come from the runs' own tags, so ``harness report`` starts in about a second.

Output of :func:`write_report` in ``out_dir`` (``results/<experiment>/`` by default)::

    cells.csv                      one row per cell (latest FINISHED run per cell id)
    summary.csv                    mean, standard error, seed count and cell outcomes per
                                   model × family × configuration
    tables/summary.md, .tex        mean ± standard error over seeds, seed counts and the
                                   cells left out, best per model in bold (within 2 s.e.)
    figures/                       one file per figure of harness.figures.FIGURES that
                                   applies: quality_vs_speed, quality_vs_gradients,
                                   elbo_vs_time, time_breakdown, khat, std_ratio,
                                   marginals_<model>; for VAE cells
                                   vae_likelihood_vs_time, vae_amortization_gap,
                                   vae_images_<model>
    (each figure as .pdf and .png)
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import math
import multiprocessing
import os
import re
import sys
import tomllib
import uuid
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from harness.metrics import catalog
from harness.verdicts import number

# Columns every tidy table has, in this order, before the metric columns.
ID_COLUMNS = [
    "model",
    "family",
    "seed",
    "status",
    "reason",
    "fit_mode",
    "converged",
    "convergence_reason",
    "cell_id",
    "run_id",
    "start_time",
    "model_pretty_name",
    "family_pretty_name",
    "family_kind",
    "family_order",
    "parent_run_id",
    "variant",
]
# Quality metrics a figure may put on its y axis, in order of preference.
QUALITY_METRICS = list(catalog.QUALITY_PREFERENCE)
STYLES = ("paper", "slides")
# Statuses of a cell that leave it out of the means (FitResult.status, besides "ok").
LEFT_OUT_STATUSES = ("diverged", "error")


class ReportError(ValueError):
    """A report that cannot be made; the message is one line."""


def experiment_name(spec_path: Path) -> str:
    """The experiment name of a spec file (its ``name`` key), without validating the rest.

    Raises:
      ReportError: the file is missing, not TOML, or has no string ``name``.
    """
    try:
        raw = tomllib.loads(Path(spec_path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ReportError(f"{spec_path}: cannot read spec: {str(e).splitlines()[0]}") from None
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ReportError(f"{spec_path}: spec has no string 'name'")
    return check_experiment_name(name, f"{spec_path}: name")


def check_experiment_name(name: str, where: str = "--experiment") -> str:
    """``name`` if it is a valid experiment name (:func:`harness.spec.check_experiment_name`:
    the name becomes a folder under results/), else ReportError."""
    from harness.spec import SpecError
    from harness.spec import check_experiment_name as check

    try:
        return check(name, where)
    except SpecError as e:
        raise ReportError(str(e)) from None


def _tag(runs: pd.DataFrame, name: str, default=None) -> pd.Series:
    column = f"tags.{name}"
    if column in runs:
        return runs[column]
    return pd.Series(default, index=runs.index, dtype=object)


def tidy(runs: pd.DataFrame) -> pd.DataFrame:
    """MLflow's ``search_runs`` frame → one row per cell (latest FINISHED run per cell id).

    Columns: :data:`ID_COLUMNS`, then one column per metric (NaN where undefined).  Rows are
    sorted by model, family (registry order, from the ``harness.family_order`` tag) and seed.
    """
    if runs.empty:
        return pd.DataFrame(columns=ID_COLUMNS)
    model = runs["tags.harness.model"]
    family = runs["tags.harness.family"]
    out = pd.DataFrame(
        {
            "model": model,
            "family": family,
            "seed": pd.to_numeric(runs["tags.harness.seed"]).astype(int),
            "status": runs["tags.harness.status"],
            "reason": _tag(runs, "harness.reason", "").fillna(""),
            "fit_mode": _tag(runs, "harness.fit_mode", "").fillna(""),
            "converged": _tag(runs, "harness.converged", "")
            .fillna("")
            .map({"true": True, "false": False}),
            "convergence_reason": _tag(runs, "harness.convergence_reason", "").fillna(""),
            "cell_id": runs["tags.harness.cell_id"],
            "run_id": runs["run_id"],
            "start_time": runs["start_time"],
            "model_pretty_name": _tag(runs, "harness.model_pretty_name").fillna(model),
            "family_pretty_name": _tag(runs, "harness.family_pretty_name").fillna(family),
            "family_kind": _tag(runs, "harness.family_kind", "svi").fillna("svi"),
            "family_order": pd.to_numeric(_tag(runs, "harness.family_order"), errors="coerce"),
            "parent_run_id": _tag(runs, "mlflow.parentRunId"),
            "_finished": runs["status"] == "FINISHED",
        }
    )
    metric_columns = sorted(c for c in runs.columns if c.startswith("metrics."))
    for column in metric_columns:
        out[column.removeprefix("metrics.")] = pd.to_numeric(runs[column], errors="coerce")
    out["variant"] = _variants(runs, model, family)
    out = out.sort_values(["_finished", "start_time"]).drop_duplicates("cell_id", keep="last")
    out = out.drop(columns="_finished")
    out["_order"] = out["family_order"].fillna(math.inf)
    out = out.sort_values(["model", "_order", "family", "variant", "seed"]).drop(columns="_order")
    return out.reset_index(drop=True)


# Params that identify a cell's place in the grid, not its configuration.
_GRID_PARAMS = {"params.model", "params.family", "params.seed"}


def _variants(runs: pd.DataFrame, model: pd.Series, family: pd.Series) -> pd.Series:
    """A label for each run's configuration within its (model, family): the params (model
    arguments, hyperparameters, fit settings; not values the fit chose) that differ between
    that pair's runs, e.g.
    ``num_draws=1000`` vs ``num_draws=4000`` for two NUTS budgets; empty when a pair has one
    configuration.  Summaries group by it, so different configurations never average."""
    # Params a fit chose (tag harness.fit_params) differ between seeds of one configuration.
    chosen = {
        f"params.{name}"
        for names in _tag(runs, "harness.fit_params", "").fillna("")
        for name in names.split(",")
        if name
    }
    columns = [
        c
        for c in runs.columns
        if c.startswith("params.") and c not in _GRID_PARAMS and c not in chosen
    ]
    params = runs[columns].astype("string").fillna("")
    variant = pd.Series("", index=runs.index, dtype="object")
    for _, index in runs.groupby([model, family], sort=False).groups.items():
        varying = [c for c in columns if params.loc[index, c].nunique() > 1]
        variant.loc[index] = [
            ", ".join(
                f"{c.removeprefix('params.').removeprefix('family.')}={params.at[i, c]}"
                for c in varying
            )
            for i in index
        ]
    return variant


def default_quality_metric(table: pd.DataFrame) -> str:
    """The first of :data:`QUALITY_METRICS` defined for every model in the table."""
    for metric in QUALITY_METRICS:
        if (
            metric in table
            and table.groupby("model")[metric].apply(lambda s: s.notna().any()).all()
        ):
            return metric
    for metric in QUALITY_METRICS:
        if metric in table and table[metric].notna().any():
            return metric
    return "elbo"


GROUP = ["model", "family", "variant"]


def summary(table: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Mean and standard error over seeds per model × family × variant for the given metrics.

    Only cells with ``status == "ok"`` enter the means; a group whose cells all diverged or
    failed keeps its row (NaN means, ``num_seeds`` 0), so it never silently disappears.
    Columns: a ``(statistic, metric)`` MultiIndex with statistics ``mean``,
    ``standard_error`` (sample sd / √n; NaN with one seed) and ``num_seeds``.
    """
    groups = pd.MultiIndex.from_frame(table[GROUP].drop_duplicates())
    ok = table[table["status"] == "ok"]
    present = [m for m in metrics if m in ok]
    # `converged` comes from a tag (True/False) when the runs have no metric of it.
    values = ok[present].apply(lambda c: pd.to_numeric(c.astype("float64"), errors="coerce"))
    grouped = pd.concat([ok[GROUP], values], axis=1).groupby(GROUP, sort=False)[present]
    mean = grouped.mean().reindex(groups)
    se = (grouped.std(ddof=1) / np.sqrt(grouped.count())).reindex(groups)
    count = grouped.count().reindex(groups).fillna(0).astype(int)
    return pd.concat({"mean": mean, "standard_error": se, "num_seeds": count}, axis=1)


def status_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Cells per model × family × variant by outcome.

    Columns ``total``, ``ok``, one per :data:`LEFT_OUT_STATUSES` (cells left out of the
    means) and ``unconverged`` (ok cells whose optimiser did not converge, metric
    ``converged`` = 0; they stay in the means, the tables say how many).
    """
    groups = pd.MultiIndex.from_frame(table[GROUP].drop_duplicates())
    keyed = table.set_index(GROUP)
    out = pd.DataFrame(index=groups)
    out["total"] = keyed.groupby(level=GROUP, sort=False).size().reindex(groups).fillna(0)
    for status in ("ok", *LEFT_OUT_STATUSES):
        hit = (keyed["status"] == status).groupby(level=GROUP, sort=False).sum()
        out[status] = hit.reindex(groups).fillna(0)
    if "converged" in keyed:
        flag = (keyed["status"] == "ok") & (keyed["converged"].astype("float64") == 0)
        out["unconverged"] = flag.groupby(level=GROUP, sort=False).sum().reindex(groups).fillna(0)
    else:
        out["unconverged"] = 0
    return out.astype(int)


def table_metrics(table: pd.DataFrame, quality_metric: str) -> list[str]:
    """Columns of the summary tables: elbo, the quality metric, std ratio, k̂, mode
    coverage (targets with known modes), convergence, time to result."""
    wanted = [
        "elbo",
        quality_metric,
        "std_ratio_geomean",
        "khat",
        # Targets with known modes (harness.metrics.modes): how many modes q holds.
        "mode_fraction_recovered",
        "mode_weight_tv",
        # VAE cells (harness.engines.amortized): test bounds and the cost of amortization.
        "test_iw_elbo",
        "test_elbo",
        "amortization_gap",
        "converged",
        # What a cell costs, compilation included; fit_seconds only in runs from before it.
        "time_to_result_seconds" if "time_to_result_seconds" in table else "fit_seconds",
    ]
    return [m for m in dict.fromkeys(wanted) if m in table]


def best_mask(
    means: pd.DataFrame,
    standard_errors: pd.DataFrame | None = None,
    eligible: pd.Series | None = None,
) -> pd.DataFrame:
    """True where a result is "best" of its model for a metric.

    The best mean by the metric's catalog direction (largest ELBO, smallest distance, std
    ratio and coverage closest to their target, ...), and every result within two standard
    errors of it (:func:`harness.metrics.catalog.best_within_error`).  Without
    ``standard_errors`` only exact ties share the mark.  Metrics without a direction are
    never marked.  ``eligible`` (a boolean per row, e.g. :func:`converged_groups`) limits the
    candidates: a comparison never rests on a fit that had not finished, so a model none of
    whose rows is eligible gets no mark.
    """
    mask = pd.DataFrame(False, index=means.index, columns=means.columns)
    models = means.index.get_level_values("model")
    allowed = (
        np.ones(len(means), dtype=bool)
        if eligible is None
        else eligible.reindex(means.index).fillna(False).to_numpy(bool)
    )
    for metric in means.columns:
        for model in dict.fromkeys(models):
            rows = (models == model) & allowed
            if not rows.any():
                continue
            se = (
                np.zeros(rows.sum())
                if standard_errors is None
                else standard_errors.loc[rows, metric].to_numpy(float)
            )
            mask.loc[rows, metric] = catalog.best_within_error(
                means.loc[rows, metric].to_numpy(float), se, metric
            )
    return mask


def converged_groups(table: pd.DataFrame) -> pd.Series:
    """Per model × family × configuration: whether every ok cell converged (at least one
    ok cell, none with ``converged`` false).  Only such results are candidates for "best"."""
    outcomes = status_counts(table)
    return (outcomes["ok"] > 0) & (outcomes["unconverged"] == 0)


def format_mean_se(mean: float, se: float) -> str:
    """``mean ± se`` with se to 2 significant digits and mean to the same decimal place."""
    if not np.isfinite(mean):
        return "–"
    if not np.isfinite(se) or se <= 0:
        return f"{mean:.3g}"
    decimals = int(min(6, max(0, 1 - math.floor(math.log10(se)))))
    return f"{mean:.{decimals}f} ± {se:.{decimals}f}"


SINGLE_SEED_NOTE = "one seed: no standard error, marked best without an interval"
BEST_NOTE = (
    "bold: best per model and every result within two standard errors of it, among the "
    "configurations whose every ok seed converged"
)
NO_CONVERGED_NOTE = "no configuration converged on every seed, so nothing is marked best, for"


@dataclasses.dataclass(frozen=True)
class SummaryRow:
    """One row of the summary tables, formatted once for Markdown and LaTeX."""

    model: str
    family: str
    seeds: str
    values: list[tuple[str, bool, bool]]  # (mean ± se, bold, single seed)
    left_out: str


def _summary_rows(table: pd.DataFrame, metrics: list[str]) -> list[SummaryRow]:
    stats = summary(table, metrics)
    means, ses, counts = stats["mean"], stats["standard_error"], stats["num_seeds"]
    bold = best_mask(means, ses, converged_groups(table))
    outcomes = status_counts(table)
    labels = table.drop_duplicates(GROUP).set_index(GROUP)
    rows = []
    for i in means.index:
        n = outcomes.loc[i]
        left = [f"{n[s]} {s}" for s in LEFT_OUT_STATUSES if n[s]]
        if n["unconverged"]:
            left.append(f"{n['unconverged']} unconverged (in mean)")
        values = [
            (
                format_mean_se(means.loc[i, m], ses.loc[i, m]),
                bool(bold.loc[i, m]),
                counts.loc[i, m] == 1,
            )
            for m in metrics
        ]
        rows.append(
            SummaryRow(
                labels.loc[i, "model_pretty_name"],
                labels.loc[i, "family_pretty_name"] + (f" ({i[2]})" if i[2] else ""),
                str(n["ok"]) if n["ok"] == n["total"] else f"{n['ok']} of {n['total']}",
                values,
                ", ".join(left),
            )
        )
    return rows


def _minus(text: str) -> str:
    """Typographic minus sign (U+2212) for a hyphen that starts a number."""
    return re.sub(r"(?<![\w.])-(?=[0-9.])", "\u2212", text)


def summary_tables(table: pd.DataFrame, quality_metric: str) -> tuple[str, str]:
    r"""The summary as (Markdown, LaTeX): one row per model × family (× configuration, when a
    family runs with several), mean ± standard error over the ok seeds, the seed count and the
    cells left out of the mean, "best" marks by :func:`best_mask`; a best resting on one seed
    is marked † with a note.  The LaTeX is a ``tabular`` for ``\input`` (needs
    ``\usepackage{booktabs}``)."""
    metrics = table_metrics(table, quality_metric)
    rows = _summary_rows(table, metrics)
    single = any(bold and one for r in rows for _, bold, one in r.values)
    notes = [BEST_NOTE] + ([f"† {SINGLE_SEED_NOTE}"] if single else [])
    eligible = converged_groups(table)
    unjudged = [
        model
        for model in dict.fromkeys(table["model_pretty_name"])
        if not eligible[
            eligible.index.get_level_values("model").isin(
                table.loc[table["model_pretty_name"] == model, "model"]
            )
        ].any()
    ]
    extra = [f"{NO_CONVERGED_NOTE}: {', '.join(unjudged)}"] if unjudged else []
    return _markdown(rows, metrics, notes + extra), _latex(rows, metrics, single, extra)


def _markdown(rows: list[SummaryRow], metrics: list[str], notes: list[str]) -> str:
    header = [
        "Model",
        "Family",
        "Seeds",
        *(_md_escape(catalog.label(m)) for m in metrics),
        "Not in mean",
    ]
    lines = [
        "| " + " | ".join(header) + " |",
        "|---|---|---:|" + "---:|" * len(metrics) + "---|",
    ]
    for r in rows:
        cells = []
        for text, bold, one in r.values:
            text = _minus(text) + (" †" if bold and one else "")
            cells.append(f"**{text}**" if bold else text)
        lines.append(
            f"| {_md_escape(r.model)} | {_md_escape(r.family)} | {r.seeds} | "
            + " | ".join(cells)
            + f" | {r.left_out} |"
        )
    return "\n".join(lines) + "\n\n" + "\n".join(f"_{n}_  " for n in notes) + "\n"


def _md_escape(text: str) -> str:
    """A table cell's text with its ``|`` escaped (it would end the cell)."""
    return text.replace("|", "\\|")


def _latex(rows: list[SummaryRow], metrics: list[str], single: bool, extra: list[str] = ()) -> str:
    ncols = 4 + len(metrics)
    lines = [
        "% Summary table of harness report; needs \\usepackage{booktabs}.",
        "\\begin{tabular}{ll" + "r" * (1 + len(metrics)) + "l}",
        "\\toprule",
        " & ".join(
            ["Model", "Family", "Seeds", *(catalog.latex_label(m) for m in metrics), "Not in mean"]
        )
        + " \\\\",
        "\\midrule",
    ]
    previous = None
    for r in rows:
        if previous is not None and r.model != previous:
            lines.append("\\midrule")
        cells = [
            _tex_escape(r.model) if r.model != previous else "",
            _tex_escape(r.family),
            r.seeds,
        ]
        for text, bold, one in r.values:
            math_text = _tex_number(text)
            mark = "$^\\dagger$" if bold and one else ""
            cells.append(("{\\boldmath" + math_text + "}" if bold else math_text) + mark)
        cells.append(_tex_escape(r.left_out))
        lines.append(" & ".join(cells) + " \\\\")
        previous = r.model
    lines.append("\\bottomrule")
    notes = [BEST_NOTE] + ([f"$^\\dagger${SINGLE_SEED_NOTE}"] if single else [])
    notes += [_tex_escape(note) for note in extra]
    for note in notes:
        lines.append(f"\\multicolumn{{{ncols}}}{{l}}{{\\footnotesize {note}}} \\\\")
    lines.append("\\end{tabular}")
    return "\n".join(lines) + "\n"


def _tex_number(text: str) -> str:
    r"""``mean ± se`` as math (a true minus sign, ``\pm``, ``×10^k`` for exponents); the dash of
    a missing value."""
    if text == "–":
        return "--"
    text = re.sub(
        r"e([+-]?)0*(\d+)",
        lambda m: rf"\times 10^{{{'-' if m.group(1) == '-' else ''}{m.group(2)}}}",
        text,
    )
    return "$" + text.replace("±", r"\pm") + "$"


# Characters LaTeX treats specially, and Unicode that pdflatex's default input does not set.
_TEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "^": r"\^{}",
    "~": r"\~{}",
    "−": "$-$",
    "×": r"$\times$",
    "·": r"$\cdot$",
    "±": r"$\pm$",
    "–": "--",
    "‖": r"$\|$",
    "k̂": r"$\hat{k}$",
}
_TEX_SPECIAL = re.compile(
    "|".join(re.escape(c) for c in sorted(_TEX_ESCAPES, key=len, reverse=True))
)


def _tex_escape(text: str) -> str:
    """``text`` set literally by LaTeX (one pass, so an escape is never escaped again)."""
    return _TEX_SPECIAL.sub(lambda m: _TEX_ESCAPES[m.group(0)], text)


@dataclasses.dataclass(frozen=True)
class ReportFiles:
    """Paths written by :func:`write_report`."""

    cells_csv: Path
    figures: list[Path]
    tables: list[Path] = dataclasses.field(default_factory=list)
    quality_metric: str = ""
    # Why only part of the report was written ("" for a whole report).
    incomplete: str = ""

    @property
    def paths(self) -> list[Path]:
        return [self.cells_csv, *self.tables, *self.figures]


def log_to_run(table: pd.DataFrame, files: ReportFiles, run_id: str, uri: str | None = None):
    """Log a written report to a sweep's parent run (:func:`harness.tracking.log_report`):
    its files, the summary as an MLflow table, and a description with the cell counts, the
    best family per model with its margin, and the summary table."""
    from harness import tracking

    out_dir = files.cells_csv.parent
    if files.incomplete:
        # No ok cell: no summary or tables to show; the run says why.
        empty = pd.DataFrame({"status": list(table["status"])})
        note = f"Report incomplete: {files.incomplete}."
        tracking.log_report(run_id, out_dir, files.paths, note=note, summary=empty, uri=uri)
        return
    markdown = (out_dir / "tables" / "summary.md").read_text()
    note = sweep_note(table, markdown, files.quality_metric)
    summary_frame = pd.read_csv(out_dir / "summary.csv", keep_default_na=False)
    tracking.log_report(run_id, out_dir, files.paths, note=note, summary=summary_frame, uri=uri)


def overlay_draws(
    table: pd.DataFrame, model: str, uri: str | None = None
) -> tuple[dict[str, np.ndarray], dict | None]:
    """q draws of ``model``'s lowest-seed ok run per series and the reference logged with
    them, read from the tracking store (:func:`harness.figures.marginals.overlay`)."""
    from harness.figures import marginals

    return marginals.overlay(table, model, _LoggedDraws(uri))


def write_report(
    table: pd.DataFrame,
    out_dir: Path,
    *,
    quality_metric: str | None = None,
    style: str = "paper",
    model: str | None = None,
    tracking_uri: str | None = None,
) -> ReportFiles:
    """Write cells.csv, summary.csv, the tables and every figure of a tidy table.

    Args:
      table: The tidy table of :func:`tidy`.
      out_dir: Output folder (created).
      quality_metric: Quality metric of the tables and the y axis of the quality-vs-speed
        figure (default: :func:`default_quality_metric`; per model, a model without it falls
        back to the first of :data:`QUALITY_METRICS` it has).
      style: ``paper`` (one/two-column journal sizes) or ``slides``.
      model: Model of the marginal-overlay figure (default: the first in the table).
      tracking_uri: Where the runs live (loss histories and draws are read from there).

    Raises:
      ReportError: unknown style, model or metric.
    """
    if style not in STYLES:
        raise ReportError(f"unknown style '{style}' (allowed: {', '.join(STYLES)})")
    models = list(dict.fromkeys(table["model"]))
    if model is not None and model not in models:
        raise ReportError(f"model '{model}' has no runs here (models: {', '.join(models)})")
    metrics = [c for c in table.columns if c not in ID_COLUMNS and c != "reason"]
    if quality_metric is not None and quality_metric not in metrics:
        raise ReportError(
            f"metric '{quality_metric}' was not logged (metrics: {', '.join(sorted(metrics))})"
        )
    metric = quality_metric or default_quality_metric(table)

    out_dir.mkdir(parents=True, exist_ok=True)
    cells_csv = out_dir / "cells.csv"
    _atomic_write(cells_csv, table.to_csv(index=False))
    if not (table["status"] == "ok").any():
        # Summaries, tables and figures are of ok cells: there is nothing to draw.
        counts = table["status"].value_counts()
        found = ", ".join(f"{n} {status}" for status, n in counts.items())
        return ReportFiles(
            cells_csv, [], incomplete=f"no cell finished ok ({found}): only cells.csv written"
        )
    stats = summary(table, table_metrics(table, metric))
    summary_csv = out_dir / "summary.csv"
    flat = stats.copy()
    flat.columns = [f"{m}_{s}" if s != "mean" else m for s, m in flat.columns]
    counts = status_counts(table).add_prefix("cells_")
    flat = pd.concat([flat, counts], axis=1)
    _atomic_write(summary_csv, flat.reset_index().to_csv(index=False))
    markdown, latex = summary_tables(table, metric)
    tables = [out_dir / "tables" / "summary.md", out_dir / "tables" / "summary.tex"]
    _atomic_write(tables[0], markdown)
    _atomic_write(tables[1], latex)

    figures = _draw(
        _figure_jobs(table, out_dir / "figures", quality_metric, model, tracking_uri), style
    )
    return ReportFiles(cells_csv, figures, [summary_csv, *tables], metric)


class _LoggedDraws(Mapping):
    """Run id → its logged arrays (:func:`harness.tracking.load_draws`, None when it logged
    none), each read from the tracking store on first use."""

    def __init__(self, uri: str | None):
        self._uri, self._cache = uri, {}

    def __getitem__(self, run_id: str):
        from harness import tracking

        if run_id not in self._cache:
            self._cache[run_id] = tracking.load_draws(run_id, self._uri)
        return self._cache[run_id]

    def __iter__(self):
        return iter(self._cache)

    def __len__(self) -> int:
        return len(self._cache)


def _figure_jobs(
    table: pd.DataFrame,
    figures_dir: Path,
    quality_metric: str | None,
    model: str | None,
    tracking_uri: str | None,
) -> list[tuple]:
    """``(draw, data, stem)`` of every figure of :data:`harness.figures.FIGURES` that applies
    to ``table``, prepared here (reading histories and draws from the tracking store), drawn
    by :func:`_draw`."""
    from harness import figures, tracking

    # Each model gets the first quality metric it has.
    preferred = quality_metric or QUALITY_METRICS[0]
    inputs = {
        "quality_metric": preferred,
        "fallbacks": tuple(m for m in QUALITY_METRICS if m != preferred),
        "draws": _LoggedDraws(tracking_uri),
    }
    jobs = []
    for figure in figures.FIGURES:
        rows = figure.applies_to(table)
        if not len(rows):
            continue
        if "histories" in figure.needs and "histories" not in inputs:
            runs = table[table["status"] != "error"][["run_id", "start_time", "parent_run_id"]]
            inputs["histories"] = tracking.loss_histories(runs, tracking_uri)
        kwargs = {**{name: inputs[name] for name in figure.needs}, **figure.options}
        models = list(dict.fromkeys(rows["model"]))
        if figure.per_model == "chosen":
            models = [model if model in models else models[0]]
        elif figure.per_model == "each":
            models = list(dict.fromkeys(rows.loc[rows["status"] == "ok", "model"]))
        else:
            jobs.append((figure.draw, figure.prepare(rows, **kwargs), figures_dir / figure.name))
            continue
        for name in models:
            data = figure.prepare(rows, model=name, **kwargs)
            jobs.append((figure.draw, data, figures_dir / f"{figure.name}_{file_stem(name)}"))
    return jobs


def file_stem(name: str) -> str:
    """A model, family or run name made safe as one file-name component.

    Names may carry path syntax (a user model ``"path/to/file.py:attr"``, a run name
    ``model/family/seed``): every character outside ``[A-Za-z0-9_-]`` becomes ``_``, so the
    result never leaves its folder (no ``/``, ``..`` or absolute path) and has no dot that a
    suffix change would cut at.  When anything was replaced, a short hash of the name keeps
    different names apart.
    """
    stem = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:80]
    if stem != name:
        stem = f"{stem}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return stem


def _draw(jobs: list, style: str) -> list[Path]:
    """Run ``(draw, data, stem)`` jobs; returns the written paths in job order.

    Drawing is most of a report's time and each figure is independent, so the jobs run in
    forked worker processes (one per core, at most one per job) when that is safe: on Linux,
    and only when TensorFlow is not loaded (it is not fork-safe; ``harness report`` never
    loads it, a sweep's driver does and then draws in-process).
    """
    workers = min(len(jobs), os.cpu_count() or 1)
    parallel = workers > 1 and sys.platform == "linux" and "tensorflow" not in sys.modules
    if not parallel:
        return [p for draw, data, stem in jobs for p in draw(data, stem, style=style)]
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = [pool.submit(draw, data, stem, style=style) for draw, data, stem in jobs]
        return [p for future in futures for p in future.result()]


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # A name of its own per writer: two drivers of one experiment may write the same report.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


# --- the sweep's note on the dashboard ----------------------------------------------------


def outcome_counts(table: pd.DataFrame) -> dict[str, int]:
    """Cells by outcome: ``ok``, ``diverged``, ``unconverged`` (ok, ``converged`` = 0),
    ``error`` (:func:`harness.status_counts` over the whole table)."""
    totals = status_counts(table).sum()
    return {k: int(totals[k]) for k in ("ok", "diverged", "unconverged", "error")}


def best_families(table: pd.DataFrame, metric: str) -> list[str]:
    """Per model: the best family (or configuration) by ``metric``'s catalog direction, its
    mean ± standard error and its margin over the runner-up (± the standard error of the
    difference), as Markdown lines."""
    info = catalog.info(metric)
    if metric not in table or not info.ranked:
        return []
    stats = summary(table, [metric])
    means, ses = stats["mean"][metric], stats["standard_error"][metric]
    names = table.drop_duplicates(GROUP).set_index(GROUP)
    lines = []
    for model in dict.fromkeys(means.index.get_level_values("model")):
        m = means.xs(model, level="model", drop_level=False).dropna()
        if m.empty:
            continue
        scores = pd.Series(info.score(m.to_numpy()), index=m.index).sort_values()
        best = scores.index[0]

        def name(i):
            family = names.loc[i, "family_pretty_name"]
            return family + (f" ({i[2]})" if i[2] else "")

        se = ses.loc[best]
        head = (
            f"- **{names.loc[best, 'model_pretty_name']}**: {name(best)}, "
            f"{catalog.label(metric)} {number(m.loc[best])}"
            + (f" ± {number(se)}" if np.isfinite(se) else " (one seed)")
        )
        if len(scores) > 1:
            second = scores.index[1]
            margin = abs(m.loc[best] - m.loc[second])
            both = math.sqrt(np.nansum([se**2, ses.loc[second] ** 2]))
            head += f"; ahead of {name(second)} by {number(margin)}" + (
                f" ± {number(both)}" if both > 0 else ""
            )
        lines.append(head)
    return lines


def sweep_note(table: pd.DataFrame, markdown_table: str, metric: str) -> str:
    """The parent run's description: counts, the best family per model with its margin, and
    the summary table."""
    counts = outcome_counts(table)
    info = catalog.info(metric)
    direction = (
        f"closest to {number(info.target)}"
        if info.direction == "target"
        else f"{info.direction} is better"
    )
    lines = [
        f"**{len(table)} cells**: " + ", ".join(f"{n} {k}" for k, n in counts.items()),
        "",
        f"Best per model by {catalog.label(metric)} ({direction}):",
        *best_families(table, metric),
        "",
        markdown_table,
    ]
    return "\n".join(lines)


__all__ = [
    "ID_COLUMNS",
    "QUALITY_METRICS",
    "ReportError",
    "ReportFiles",
    "best_mask",
    "check_experiment_name",
    "default_quality_metric",
    "experiment_name",
    "format_mean_se",
    "log_to_run",
    "status_counts",
    "overlay_draws",
    "summary",
    "summary_tables",
    "table_metrics",
    "tidy",
    "write_report",
]
