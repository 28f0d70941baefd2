"""Runs → one tidy pandas table → CSV (and, through :mod:`harness.plots`, figures).

Reads runs back from MLflow (``mlflow.search_runs`` via :mod:`harness.tracking`), never from
local files, so the report of a sweep is the same wherever its tracking store lives.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from harness.families import FAMILIES

# Columns every tidy table has, in this order, before the metric columns.
ID_COLUMNS = ["model", "family", "seed", "status", "reason", "fit_mode", "cell_id", "run_id",
              "start_time"]
# Quality metrics a figure may put on its y axis, in order of preference.
QUALITY_METRICS = ["wasserstein_1", "mean_z_error_rms", "kl_divergence", "log_normalizer_error"]


def tidy(runs: pd.DataFrame) -> pd.DataFrame:
    """MLflow's ``search_runs`` frame → one row per cell (latest FINISHED run per cell id).

    Columns: :data:`ID_COLUMNS`, then one column per metric (NaN where undefined).
    """
    if runs.empty:
        return pd.DataFrame(columns=ID_COLUMNS)
    out = pd.DataFrame({
        "model": runs["tags.harness.model"],
        "family": runs["tags.harness.family"],
        "seed": pd.to_numeric(runs["tags.harness.seed"]).astype(int),
        "status": runs["tags.harness.status"],
        "reason": runs.get("tags.harness.reason", pd.Series("", index=runs.index)).fillna(""),
        "fit_mode": runs.get("tags.harness.fit_mode", pd.Series("", index=runs.index)),
        "cell_id": runs["tags.harness.cell_id"],
        "run_id": runs["run_id"],
        "start_time": runs["start_time"],
        "_finished": runs["status"] == "FINISHED",
    })
    metric_columns = sorted(c for c in runs.columns if c.startswith("metrics."))
    for column in metric_columns:
        out[column.removeprefix("metrics.")] = pd.to_numeric(runs[column], errors="coerce")
    out = out.sort_values(["_finished", "start_time"]).drop_duplicates("cell_id", keep="last")
    out = out.drop(columns="_finished")
    order = {name: i for i, name in enumerate(FAMILIES)}
    out["_family_order"] = out["family"].map(order).fillna(len(order))
    out = out.sort_values(["model", "_family_order", "seed"]).drop(columns="_family_order")
    return out.reset_index(drop=True)


def default_quality_metric(table: pd.DataFrame) -> str:
    """The first of :data:`QUALITY_METRICS` defined for every model in the table."""
    for metric in QUALITY_METRICS:
        if metric in table and table.groupby("model")[metric].apply(lambda s: s.notna().any()).all():
            return metric
    for metric in QUALITY_METRICS:
        if metric in table and table[metric].notna().any():
            return metric
    return "elbo"


def summary(table: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Mean and standard error over seeds per model × family for the given metrics."""
    ok = table[table["status"] == "ok"]
    present = [m for m in metrics if m in ok]
    grouped = ok.groupby(["model", "family"], sort=False)[present]
    mean = grouped.mean()
    se = grouped.std(ddof=1) / np.sqrt(grouped.count())
    return pd.concat({"mean": mean, "standard_error": se}, axis=1)


@dataclasses.dataclass(frozen=True)
class ReportFiles:
    cells_csv: Path
    figures: list[Path]


def write_report(table: pd.DataFrame, out_dir: Path, *, quality_metric: str | None = None
                 ) -> ReportFiles:
    """Write ``cells.csv`` and the figures of a tidy table into ``out_dir``."""
    from harness import plots

    out_dir.mkdir(parents=True, exist_ok=True)
    cells_csv = out_dir / "cells.csv"
    _atomic_csv(table, cells_csv)
    metric = quality_metric or default_quality_metric(table)
    figures = plots.quality_vs_speed(table, out_dir / "figures" / "quality_vs_speed", metric)
    return ReportFiles(cells_csv, figures)


def _atomic_csv(table: pd.DataFrame, path: Path) -> None:
    tmp = path.with_suffix(".csv.tmp")
    table.to_csv(tmp, index=False)
    tmp.replace(path)
