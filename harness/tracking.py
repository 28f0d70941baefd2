"""MLflow tracking: the only module that imports mlflow.  Used by the driver only.

Layout in MLflow: one experiment per spec; one parent run per ``harness run`` invocation (spec
file and resolved config as artifacts, git commit, package versions and hardware as tags); one
nested run per cell named ``model/family/seed``.  A cell's run is FINISHED when the cell gave a
result (``ok`` or ``diverged``), FAILED when it raised; resume skips cells with a FINISHED run.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import platform
import socket
import subprocess
import time
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT, MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from harness.fit import FitResult
from harness.spec import Cell, Spec

DEFAULT_TRACKING_URI = "sqlite:///results/mlflow.db"
DEFAULT_ARTIFACT_ROOT = "results/mlartifacts"
MAX_LOSS_POINTS = 1000
_BATCH_METRICS = 1000  # MLflow's log_batch limits
_BATCH_PARAMS = 100
_PACKAGES = ("tensorflow", "tensorflow-probability", "tf-keras", "inference-gym", "mlflow",
             "numpy", "pandas", "vi-harness")


def tracking_uri(uri: str | None = None) -> str:
    """The tracking URI: the argument, else ``MLFLOW_TRACKING_URI``, else the local sqlite store."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def client_for(uri: str | None = None) -> MlflowClient:
    uri = tracking_uri(uri)
    if uri == DEFAULT_TRACKING_URI:
        Path("results").mkdir(exist_ok=True)
    return MlflowClient(tracking_uri=uri)


@dataclasses.dataclass
class Sweep:
    """Handle of one ``harness run`` invocation in MLflow."""

    client: MlflowClient
    experiment_id: str
    parent_run_id: str


def get_or_create_experiment(client: MlflowClient, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    artifact_location = None
    if client.tracking_uri == DEFAULT_TRACKING_URI:
        artifact_location = Path(DEFAULT_ARTIFACT_ROOT).resolve().as_uri()
    return client.create_experiment(name, artifact_location=artifact_location)


def start_sweep(spec: Spec, uri: str | None, *, num_cells: int, num_skipped: int,
                executor: str, workers: int) -> Sweep:
    """Create the parent run of an invocation and record the spec, config and environment."""
    client = client_for(uri)
    experiment_id = get_or_create_experiment(client, spec.name)
    tags = {
        MLFLOW_RUN_NAME: f"sweep {time.strftime('%Y-%m-%d %H:%M:%S')}",
        "harness.kind": "sweep",
        "harness.host": socket.gethostname(),
        "harness.driver_pid": str(os.getpid()),
        "harness.hardware": _hardware(),
        **{f"harness.version.{p}": _version(p) for p in _PACKAGES},
    }
    commit = _git_commit()
    if commit:
        tags[MLFLOW_GIT_COMMIT] = commit
    run = client.create_run(experiment_id, tags=tags)
    run_id = run.info.run_id
    params = {"spec": spec.path.name, "num_cells": num_cells, "num_skipped": num_skipped,
              "seeds": ",".join(map(str, spec.seeds)), "executor": executor, "workers": workers,
              "models": ",".join(m for m, _ in spec.models),
              "families": ",".join(f for f, _ in spec.families)}
    client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
    client.log_artifact(run_id, str(spec.path), "spec")
    client.log_text(run_id, json.dumps(_jsonable(spec.raw), indent=2, sort_keys=True),
                    "spec/resolved_spec.json")
    return Sweep(client, experiment_id, run_id)


def end_sweep(sweep: Sweep, *, failed: bool) -> None:
    sweep.client.set_terminated(sweep.parent_run_id, "FAILED" if failed else "FINISHED")


def finished_cell_ids(sweep: Sweep) -> set[str]:
    """Cell ids that already have a FINISHED run in the experiment (resume skips them)."""
    runs = _search(sweep.client, sweep.experiment_id, "attributes.status = 'FINISHED'")
    return {r.data.tags["harness.cell_id"] for r in runs if "harness.cell_id" in r.data.tags}


def mark_dead_runs_killed(client: MlflowClient, experiment_id: str) -> int:
    """Mark RUNNING runs whose driver process on this host no longer exists as KILLED.

    Runs of a driver on another host, or of one still alive here, are left alone.
    """
    host = socket.gethostname()
    killed = 0
    for run in _search(client, experiment_id, "attributes.status = 'RUNNING'"):
        tags = run.data.tags
        parent = tags.get(MLFLOW_PARENT_RUN_ID)
        owner = tags if parent is None else _tags_of(client, parent)
        if owner.get("harness.host") != host or _pid_alive(owner.get("harness.driver_pid")):
            continue
        client.set_terminated(run.info.run_id, "KILLED")
        killed += 1
    return killed


def log_cell(sweep: Sweep, result: FitResult) -> str:
    """Write one cell's result as a nested run; returns its run id."""
    cell = result.cell
    client = sweep.client
    tags = {
        MLFLOW_PARENT_RUN_ID: sweep.parent_run_id,
        MLFLOW_RUN_NAME: cell.run_name,
        "harness.cell_id": cell.cell_id,
        "harness.status": result.status,
        "harness.reason": result.reason[:5000],
        "harness.model": cell.model,
        "harness.family": cell.family,
        "harness.seed": str(cell.seed),
        "harness.fit_mode": result.fit_mode,
        "harness.device": result.device,
    }
    if result.fallback_reason:
        tags["harness.jit_fallback_reason"] = result.fallback_reason[:5000]
    if "khat" in result.metrics:
        from harness.metrics.calibration import khat_band

        tags["harness.khat_band"] = khat_band(result.metrics["khat"])
    started_ms = int(result.started_at * 1000) or None
    run = client.create_run(sweep.experiment_id, start_time=started_ms, tags=tags,
                            run_name=cell.run_name)
    run_id = run.info.run_id
    now = int(time.time() * 1000)
    metrics = [Metric(k, v, now, 0) for k, v in result.metrics.items()]
    if result.losses.size:
        steps = thin_steps(result.losses.size, MAX_LOSS_POINTS)
        base = started_ms or now
        metrics += [Metric("loss", float(result.losses[i]),
                           base + int(1000 * result.loss_seconds[i]), int(i))
                    for i in steps if np.isfinite(result.losses[i])]
    params = [Param(k, str(v)) for k, v in cell_params(cell).items()]
    client.log_batch(run_id, metrics=metrics[:_BATCH_METRICS], params=params[:_BATCH_PARAMS])
    for i in range(_BATCH_METRICS, len(metrics), _BATCH_METRICS):
        client.log_batch(run_id, metrics=metrics[i:i + _BATCH_METRICS])
    if result.losses.size:
        client.log_text(run_id, loss_trace_csv(result), "loss_trace.csv")
    if result.traceback:
        client.log_text(run_id, result.traceback, "traceback.txt")
    client.set_terminated(run_id, "FAILED" if result.status == "error" else "FINISHED")
    return run_id


def cell_params(cell: Cell) -> dict[str, Any]:
    """The params of a cell's run: model, family, seed, model args, hyperparameters, fit."""
    params: dict[str, Any] = {"model": cell.model, "family": cell.family, "seed": cell.seed}
    params.update({f"model.{k}": v for k, v in cell.model_args})
    params.update({f"family.{k}": v for k, v in cell.hyperparameters})
    params.update(dataclasses.asdict(cell.fit))
    return params


def thin_steps(n: int, max_points: int) -> np.ndarray:
    """At most ``max_points`` evenly spaced step indices of ``n``, always with first and last."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(int))


def loss_trace_csv(result: FitResult) -> str:
    buffer = io.StringIO()
    pd.DataFrame({"step": np.arange(result.losses.size), "seconds": result.loss_seconds,
                  "loss": result.losses}).to_csv(buffer, index=False)
    return buffer.getvalue()


def search_cells(experiment: str, uri: str | None = None) -> pd.DataFrame:
    """All cell runs of an experiment as MLflow's DataFrame (``mlflow.search_runs``)."""
    mlflow.set_tracking_uri(tracking_uri(uri))
    found = mlflow.search_experiments(filter_string=f"name = '{experiment}'")
    if not found:
        raise LookupError(f"no MLflow experiment named '{experiment}' at {tracking_uri(uri)}")
    return mlflow.search_runs(experiment_ids=[found[0].experiment_id],
                              filter_string="tags.`harness.cell_id` != ''",
                              max_results=100_000)


def _search(client: MlflowClient, experiment_id: str, filter_string: str) -> Iterable:
    token = None
    while True:
        page = client.search_runs([experiment_id], filter_string, max_results=5000,
                                  page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def _tags_of(client: MlflowClient, run_id: str) -> dict[str, str]:
    try:
        return client.get_run(run_id).data.tags
    except mlflow.exceptions.MlflowException:
        return {}


def _pid_alive(pid: str | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _hardware() -> str:
    return f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores".strip()


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)


__all__ = ["Sweep", "cell_params", "end_sweep", "finished_cell_ids",
           "log_cell", "mark_dead_runs_killed", "search_cells", "start_sweep", "thin_steps",
           "tracking_uri"]
