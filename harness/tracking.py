"""MLflow tracking: the only module that imports mlflow.  Used by the driver only.

Layout in MLflow: one experiment per spec; one parent run per ``harness run`` invocation (spec
file and resolved config as artifacts, git commit, package versions and hardware as tags); one
nested run per cell named ``model/family/seed``.  A cell's run is FINISHED when the cell gave a
result (``ok`` or ``diverged``), FAILED when it raised; resume skips cells with a FINISHED run.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import fcntl
import json
import os
import platform
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import DatasetInput, InputTag, Metric, Param
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import (
    MLFLOW_DATASET_CONTEXT,
    MLFLOW_GIT_COMMIT,
    MLFLOW_PARENT_RUN_ID,
    MLFLOW_RUN_NAME,
)

from harness import run_content
from harness.run_content import DRAWS_ARTIFACT, NOTE_TAG, cell_params

if TYPE_CHECKING:  # only for annotations: `harness report` must not import TensorFlow
    from harness.run_content import RunContent
    from harness.spec import Spec

# MLflow 3's UI opens an experiment in its GenAI view (traces, token usage) unless the experiment
# says what it holds; this value (the UI's CUSTOM_MODEL_DEVELOPMENT) opens the model-training
# view: runs, metrics, charts.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
# Descriptions shown on the experiment's and each run's page (Markdown).
EXPERIMENT_NOTE = (
    "Variational-inference sweep of vi-harness: one parent run per `harness run` (its "
    "description holds the summary table; figures, tables and cells.csv are its artifacts) "
    "and one nested run per model × family × seed cell (its description is the cell's "
    "verdict).  Key metrics: {metrics}."
)
# Names of the params a fit chose itself (e.g. learning_rate_chosen), comma-separated.
DEFAULT_TRACKING_URI = "sqlite:///results/mlflow.db"
DEFAULT_ARTIFACT_ROOT = "results/mlartifacts"
_BATCH_METRICS = 1000  # MLflow's log_batch limits
_BATCH_PARAMS = 100
_PACKAGES = (
    "tensorflow",
    "tensorflow-probability",
    "tf-keras",
    "inference-gym",
    "mlflow",
    "numpy",
    "pandas",
    "vi-harness",
)


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How calls to the tracking store are retried when they fail transiently.

    Attributes:
      attempts: Tries per call (the first included).
      first_delay: Seconds slept after the first failure; doubled after each further one.
      max_seconds: Bound on the total time one call may spend retrying; no new attempt starts
        after it.
      request_timeout: Seconds one HTTP request to a tracking server may take (MLflow's own
        default, 120 s with 7 retries, would stall a sweep for minutes on a dead server).
    """

    attempts: int = 4
    first_delay: float = 1.0
    max_seconds: float = 30.0
    request_timeout: int = 10


RETRY = RetryPolicy()


class TrackingUnavailable(RuntimeError):
    """The tracking store kept failing after :data:`RETRY`'s attempts (one-line message)."""


def _transient(error: BaseException) -> bool:
    """Whether a failed tracking call may succeed if tried again."""
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    if isinstance(error, mlflow.exceptions.MlflowException):
        message = str(error)
        # MLflow wraps connection failures as "API request to ... failed with exception ...";
        # 5xx answers (and 429) are the server's trouble, 4xx are the request's.
        return (
            message.startswith("API request to")
            or "database is locked" in message
            or error.get_http_status_code() >= 500
            or error.get_http_status_code() == 429
        )
    return type(error).__module__.split(".")[0] in ("requests", "urllib3", "sqlalchemy")


def with_retries(function, *args, **kwargs):
    """Call ``function``, retrying transient tracking failures with exponential backoff.

    Raises:
      TrackingUnavailable: when every attempt failed transiently.  Other errors propagate at
        once.
    """
    policy = RETRY
    deadline = time.monotonic() + policy.max_seconds
    delay = policy.first_delay
    for attempt in range(1, policy.attempts + 1):
        try:
            return function(*args, **kwargs)
        except Exception as e:
            if not _transient(e):
                raise
            if attempt == policy.attempts or time.monotonic() + delay > deadline:
                first_line = (str(e).splitlines() or [""])[0][:300]
                raise TrackingUnavailable(
                    f"tracking store failed {attempt} times "
                    f"({getattr(function, '__name__', 'call')}): {type(e).__name__}: "
                    f"{first_line}"
                ) from e
            time.sleep(delay)
            delay *= 2


class _RetryingClient:
    """An ``MlflowClient`` whose every method call goes through :func:`with_retries`."""

    def __init__(self, client: MlflowClient):
        self._client = client

    def __getattr__(self, name: str):
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args, **kwargs):
            return with_retries(attribute, *args, **kwargs)

        call.__name__ = name
        return call


def tracking_uri(uri: str | None = None) -> str:
    """The tracking URI: the argument, else ``MLFLOW_TRACKING_URI``, else the local sqlite store."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


# Schemes of the tracking stores MLflow serves (its file store is refused since MLflow 3.13).
TRACKING_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks")


def check_tracking_uri(uri: str | None = None) -> None:
    """Refuse a tracking URI that cannot work, before anything is fitted or written.

    The scheme must be one of :data:`TRACKING_SCHEMES`; a ``sqlite:///`` path must be a file
    (or not exist yet) under a folder that exists or can be made, and be writable.  Nothing is
    created: writability is probed with a temporary file that is removed at once.

    Raises:
      ValueError: one line naming the URI and the problem.
    """
    from harness.limits import cut

    uri = tracking_uri(uri)
    scheme = uri.split(":", 1)[0].split("+", 1)[0] if ":" in uri else ""
    if scheme not in TRACKING_SCHEMES:
        raise ValueError(
            f"tracking URI {cut(uri)!r}: unknown scheme {cut(scheme)!r}; use one of "
            f"{', '.join(s + '://' for s in TRACKING_SCHEMES[:3])} or a database URL"
        )
    if scheme != "sqlite" or uri in ("sqlite://", "sqlite:///:memory:"):
        return
    if not uri.startswith("sqlite:///"):
        raise ValueError(f"tracking URI {cut(uri)!r}: expected sqlite:///PATH")
    path = Path(uri.removeprefix("sqlite:///"))
    if path.exists() and not path.is_file():
        raise ValueError(f"tracking URI {cut(uri)!r}: {cut(str(path))} is not a file")
    problem = writable_folder(path.parent)
    if problem:
        raise ValueError(f"tracking URI {cut(uri)!r}: {problem}")
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"tracking URI {cut(uri)!r}: {cut(str(path))} is not writable")


def writable_folder(folder: Path) -> str:
    """Why files cannot be written under ``folder`` ("" when they can): its nearest existing
    ancestor must be a writable directory.  Probed with a temporary file (removed at once), so
    it holds for root on a read-only file system too; nothing is left behind."""
    from harness.limits import cut

    existing = Path(folder)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{cut(str(existing))} is a file, not a folder"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        return f"cannot write in {cut(str(existing))}: {e.strerror or type(e).__name__}"
    return ""


class StoreDamaged(TrackingUnavailable):
    """A sqlite tracking store found half-made; the message (one line) says how to repair it.

    A kind of :class:`TrackingUnavailable`: nothing can be run or read until it is repaired.
    """


# sqlite stores this process has seen complete (checking costs a schema look-up).
_COMPLETE_STORES: set[str] = set()


def prepare_sqlite_store(path: str | Path) -> None:
    """Make sure the sqlite store at ``path`` exists with MLflow's whole schema.

    MLflow creates a new store's tables and runs its ~50 schema migrations in the first
    process that opens it, each migration its own transaction: two processes doing so at once,
    or one killed part-way, leave a half-migrated file that every later run fails on.  Here a
    new store is made in a temporary file of the same folder and renamed into place when
    complete (an atomic rename: the store is either absent or whole), while an exclusive lock
    on the folder itself (no lock file is left behind) makes concurrent first starts wait
    for one creator.  Temporary files of creators that were killed are removed.

    A store found half-made (by an older version, or an interrupted ``mlflow db upgrade``) that
    holds no run is provably safe to make again and is; otherwise :class:`StoreDamaged` says
    how to repair it.
    """
    path = Path(path).absolute()
    key = str(path)
    if key in _COMPLETE_STORES:
        return
    if _store_problem(path) == "":
        _COMPLETE_STORES.add(key)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        # Under the lock no other creator is at work: leftovers are from killed ones.
        for stale in path.parent.glob(f".{path.name}.creating-*"):
            stale.unlink(missing_ok=True)
        problem = _store_problem(path)
        if problem and problem != "missing":
            if not _store_is_empty(path):
                raise StoreDamaged(
                    f"tracking store {path} is half-made ({problem}); {_repair(path)}"
                )
            path.unlink()  # an sqlite file without a run: nothing to lose
            problem = "missing"
        if problem == "missing":
            _create_store(path)
    finally:
        fcntl.flock(folder, fcntl.LOCK_UN)
        os.close(folder)
    _COMPLETE_STORES.add(key)


def _create_store(path: Path) -> None:
    """Create a complete store in a temporary file next to ``path``, then rename it there."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    temporary = path.with_name(f".{path.name}.creating-{os.getpid()}")
    temporary.unlink(missing_ok=True)
    store = SqlAlchemyStore(f"sqlite:///{temporary}", (path.parent / "mlartifacts").as_uri())
    store.engine.dispose()
    with open(temporary, "rb") as f:
        os.fsync(f.fileno())
    os.replace(temporary, path)


def _store_problem(path: Path) -> str:
    """ "" for a complete store, "missing", or what is wrong with it."""
    import sqlite3

    if not path.is_file() or path.stat().st_size == 0:
        return "missing"
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            leftovers = sorted(t for t in tables if t.startswith("_alembic_tmp"))
            if leftovers:
                return f"an interrupted migration left {leftovers[0]}"
            if "alembic_version" not in tables or "runs" not in tables:
                return "tables missing"
            version = db.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.DatabaseError as e:
        return f"not a readable sqlite database: {e}"
    from mlflow.store.db.utils import _get_latest_schema_revision

    head = _get_latest_schema_revision()
    if [row[0] for row in version] != [head]:
        return f"schema version {version[0][0] if version else 'none'}, expected {head}"
    return ""


def _store_is_empty(path: Path) -> bool:
    """Whether ``path`` is an sqlite database without a run (no runs table, or an empty one)."""
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            return (
                "runs" not in tables or db.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
            )
    except sqlite3.DatabaseError:
        return False  # not an sqlite database: not ours to delete


def _repair(path: Path) -> str:
    """The commands that complete a half-made store (drop what an interrupted migration left,
    then run the remaining migrations)."""
    import sqlite3

    leftovers = []
    with contextlib.suppress(sqlite3.DatabaseError):
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            leftovers = [
                row[0]
                for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                if row[0].startswith("_alembic_tmp")
            ]
    drop = "".join(
        f"python -c \"import sqlite3; sqlite3.connect('{path}').execute('DROP TABLE {t}')\" && "
        for t in leftovers
    )
    return f"back it up, then repair it with: {drop}mlflow db upgrade sqlite:///{path}"


def client_for(uri: str | None = None) -> MlflowClient:
    """A client of the tracking store whose calls retry transient failures (:data:`RETRY`).

    A sqlite store is made complete first (:func:`prepare_sqlite_store`).
    """
    uri = tracking_uri(uri)
    if uri == DEFAULT_TRACKING_URI:
        Path("results").mkdir(exist_ok=True)
    if uri.startswith("sqlite:///") and uri != "sqlite:///:memory:":
        prepare_sqlite_store(uri.removeprefix("sqlite:///"))
    if uri.startswith(("http://", "https://")):
        # Retries are ours (bounded, see RetryPolicy); a user's explicit settings win.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(RETRY.request_timeout))
    return _RetryingClient(MlflowClient(tracking_uri=uri))


@dataclasses.dataclass
class Sweep:
    """Handle of one ``harness run`` invocation in MLflow."""

    client: MlflowClient
    experiment_id: str
    parent_run_id: str
    # Compact loss curves of the cells logged by this sweep (run id → curve), written to the
    # parent run as LOSS_CURVES_ARTIFACT when it ends.
    curves: dict = dataclasses.field(default_factory=dict)


def get_or_create_experiment(client: MlflowClient, name: str) -> str:
    """The id of experiment ``name`` (restored when deleted, created when missing), tagged
    for MLflow's model-training view (:data:`EXPERIMENT_KIND`) and described."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        if experiment.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
            _describe_experiment(client, experiment.experiment_id)
        return experiment.experiment_id
    artifact_location = None
    if client.tracking_uri == DEFAULT_TRACKING_URI:
        artifact_location = Path(DEFAULT_ARTIFACT_ROOT).resolve().as_uri()
    elif client.tracking_uri.startswith("sqlite:///"):
        # Artifacts next to the database (MLflow's default is ./mlruns in the current folder).
        database = Path(client.tracking_uri.removeprefix("sqlite:///"))
        artifact_location = (database.parent / "mlartifacts").resolve().as_uri()
    try:
        experiment_id = client.create_experiment(name, artifact_location=artifact_location)
    except mlflow.exceptions.MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        # Another driver of the same spec created it a moment ago.
        return client.get_experiment_by_name(name).experiment_id
    _describe_experiment(client, experiment_id)
    return experiment_id


def _describe_experiment(client: MlflowClient, experiment_id: str) -> None:
    from harness.metrics import catalog

    client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    metrics = ", ".join(f"`{m.name}` ({m.label})" for m in catalog.CATALOG if m.key)
    client.set_experiment_tag(experiment_id, NOTE_TAG, EXPERIMENT_NOTE.format(metrics=metrics))


def start_sweep(
    spec: Spec, uri: str | None, *, num_cells: int, num_skipped: int, executor: str, workers: int
) -> Sweep:
    """Create the parent run of an invocation and record the spec, config and environment."""
    client = client_for(uri)
    experiment_id = get_or_create_experiment(client, spec.name)
    tags = {
        MLFLOW_RUN_NAME: f"sweep {time.strftime('%Y-%m-%d %H:%M:%S')}",
        "harness.kind": "sweep",
        "harness.host": socket.gethostname(),
        "harness.driver_pid": str(os.getpid()),
        HEARTBEAT_TAG: f"{time.time():.3f}",
        "harness.hardware": _hardware(),
        "harness.accelerator": _accelerator(),
        **{f"harness.version.{p}": _version(p) for p in _PACKAGES},
    }
    commit = _git_commit()
    if commit:
        tags[MLFLOW_GIT_COMMIT] = commit
    run = client.create_run(experiment_id, tags=tags)
    run_id = run.info.run_id
    params = {
        "spec": spec.path.name,
        "num_cells": num_cells,
        "num_skipped": num_skipped,
        "seeds": ",".join(map(str, spec.seeds)),
        "executor": executor,
        "workers": workers,
        "models": ",".join(m for m, _ in spec.models),
        "families": ",".join(f for f, _ in spec.families),
    }
    client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
    client.log_artifact(run_id, str(spec.path), "spec")
    client.log_text(
        run_id, json.dumps(_jsonable(spec.raw), indent=2, sort_keys=True), "spec/resolved_spec.json"
    )
    return Sweep(client, experiment_id, run_id)


def end_sweep(sweep: Sweep, *, failed: bool) -> None:
    """Write the sweep's loss curves to its parent run, then end it."""
    if sweep.curves:
        sweep.client.log_text(
            sweep.parent_run_id,
            json.dumps(sweep.curves, separators=(",", ":")),
            LOSS_CURVES_ARTIFACT,
        )
    sweep.client.set_terminated(sweep.parent_run_id, "FAILED" if failed else "FINISHED")


def finished_cell_ids(sweep: Sweep) -> set[str]:
    """Cell ids that already have a FINISHED run in the experiment (resume skips them)."""
    runs = _search(sweep.client, sweep.experiment_id, "attributes.status = 'FINISHED'")
    return {r.data.tags["harness.cell_id"] for r in runs if "harness.cell_id" in r.data.tags}


def journal_entry_ids(sweep: Sweep) -> set[str]:
    """Journal entries already replayed: tags ``harness.journal_entry`` of terminated runs."""
    runs = _search(sweep.client, sweep.experiment_id, "tags.`harness.journal_entry` != ''")
    return {
        r.data.tags["harness.journal_entry"]
        for r in runs
        if r.info.status in ("FINISHED", "FAILED")
    }


def run_status(client: MlflowClient, run_id: str) -> str | None:
    """A run's status (``RUNNING``, ``FINISHED``, ...), or None when there is no such run."""
    if not run_id:
        return None
    try:
        return client.get_run(run_id).info.status
    except mlflow.exceptions.MlflowException as e:
        if e.get_http_status_code() == 404 or "not found" in str(e).lower():
            return None
        raise


def end_run(client: MlflowClient, run_id: str, status: str) -> None:
    """Terminate a run with ``status`` (a parent run whose end was journaled)."""
    client.set_terminated(run_id, status)


def mark_dead_runs_killed(client: MlflowClient, experiment_id: str) -> int:
    """Mark RUNNING runs whose driver is gone as KILLED: its process on this host no longer
    exists, or (any host) its heartbeat is older than :data:`CLAIM_TTL_SECONDS`.

    Runs of a live driver, here or on another host, are left alone.
    """
    host = socket.gethostname()
    killed = 0
    for run in _search(client, experiment_id, "attributes.status = 'RUNNING'"):
        tags = run.data.tags
        parent = tags.get(MLFLOW_PARENT_RUN_ID)
        owner = tags if parent is None else _tags_of(client, parent)
        stale = False
        with contextlib.suppress(ValueError):
            stale = time.time() - float(owner[HEARTBEAT_TAG]) > CLAIM_TTL_SECONDS
        same_host = owner.get("harness.host") == host
        if not stale and (not same_host or _pid_alive(owner.get("harness.driver_pid"))):
            continue
        client.set_terminated(run.info.run_id, "KILLED")
        killed += 1
    return killed


# --- several drivers on one experiment: a claim per cell, a heartbeat per driver ----------------

# A driver's parent run carries the tag ``harness.heartbeat`` (seconds since the epoch), renewed
# every HEARTBEAT_SECONDS; a claim whose driver's heartbeat is older than CLAIM_TTL_SECONDS (or
# whose parent run has ended, or whose process on this host is gone) has expired.  The TTL
# assumes the drivers' clocks agree within a few seconds (NTP).
HEARTBEAT_SECONDS = 10.0
CLAIM_TTL_SECONDS = 90.0
HEARTBEAT_TAG = "harness.heartbeat"
CLAIM_OWNER_TAG = "harness.claim_owner"


def claim_name(experiment: str, cell_id: str, generation: int) -> str:
    """The name that records generation ``generation`` of the claim on a cell."""
    return f"{experiment}.claims/{cell_id}/{generation}"


def claim_cell(sweep: Sweep, experiment: str, cell_id: str) -> bool:
    """Claim a cell for this sweep's driver; False when another live driver holds it.

    A claim is an MLflow experiment named :func:`claim_name`, deleted at once (hidden from the
    dashboard; MLflow keeps a deleted experiment's name taken) and tagged with the owner's
    parent run id.  Experiment names are unique in every MLflow store, so creating one is an
    atomic test-and-set on the local sqlite store and through a tracking server alike: of
    drivers claiming one cell at once, exactly one succeeds.  A claim whose owner is dead
    (:func:`driver_alive`) is taken over by creating the next generation's name.
    """
    client = sweep.client
    generation = 0
    while generation < 1000:
        name = claim_name(experiment, cell_id, generation)
        existing = client.get_experiment_by_name(name)
        if existing is not None:
            if client.get_experiment_by_name(claim_name(experiment, cell_id, generation + 1)):
                generation += 1  # superseded: the latest generation decides
                continue
            owner = existing.tags.get(CLAIM_OWNER_TAG, "")
            if owner == sweep.parent_run_id:
                return True
            if driver_alive(client, owner):
                return False
            generation += 1  # a dead driver's claim: take it over with the next generation
            continue
        try:
            claim_id = client.create_experiment(
                name, tags={CLAIM_OWNER_TAG: sweep.parent_run_id, "harness.kind": "claim"}
            )
        except mlflow.exceptions.MlflowException as e:
            if e.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            continue  # another driver was faster: look at its claim
        client.delete_experiment(claim_id)
        return True
    return False


def driver_alive(client: MlflowClient, parent_run_id: str) -> bool:
    """Whether the driver of a parent run still works: its run is RUNNING, its heartbeat is
    fresh, and (on this host) its process exists."""
    tags = _tags_of(client, parent_run_id) if parent_run_id else {}
    try:
        status = client.get_run(parent_run_id).info.status if tags else None
    except mlflow.exceptions.MlflowException:
        status = None
    if status != "RUNNING":
        return False
    if tags.get("harness.host") == socket.gethostname() and not _pid_alive(
        tags.get("harness.driver_pid")
    ):
        return False
    try:
        beat = float(tags.get(HEARTBEAT_TAG, "nan"))
    except ValueError:
        return False
    return time.time() - beat < CLAIM_TTL_SECONDS


def cell_finished(sweep: Sweep, cell_id: str) -> bool:
    """Whether a cell has a FINISHED run (logged by this or another driver)."""
    runs = sweep.client.search_runs(
        [sweep.experiment_id],
        f"attributes.status = 'FINISHED' and tags.`harness.cell_id` = '{cell_id}'",
        max_results=1,
    )
    return bool(runs)


class Heartbeat:
    """Renews this driver's ``harness.heartbeat`` tag every :data:`HEARTBEAT_SECONDS` in a
    daemon thread, so that other drivers see its claims alive.  A failed renewal (the store
    down) is retried every second until it succeeds; use as a context manager."""

    def __init__(self, sweep: Sweep):
        self._sweep = sweep
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)

    def _beat(self) -> None:
        # The plain client: a renewal must not sit in 30 s of retries.
        client = getattr(self._sweep.client, "_client", self._sweep.client)
        wait = HEARTBEAT_SECONDS
        while not self._stop.wait(wait):
            try:
                client.set_tag(self._sweep.parent_run_id, HEARTBEAT_TAG, f"{time.time():.3f}")
                wait = HEARTBEAT_SECONDS
            except Exception:  # noqa: BLE001 - the store is down: try again soon
                wait = 1.0

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def log_cell(sweep: Sweep, content: RunContent) -> str:
    """Write one cell's prepared run (:func:`harness.run_content.prepare`) as a nested run of
    the sweep; returns its run id.  The run is terminated last, so a FINISHED run is complete.
    """
    client = sweep.client
    tags = dict(content.tags)
    if sweep.parent_run_id:
        tags[MLFLOW_PARENT_RUN_ID] = sweep.parent_run_id
    run = client.create_run(
        sweep.experiment_id,
        start_time=content.started_ms,
        tags=tags,
        run_name=content.run_name,
    )
    run_id = run.info.run_id
    try:
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, 0) for k, v in content.metrics.items()]
        base = content.started_ms or now
        metrics += [
            Metric("loss", loss, base + int(1000 * seconds), step)
            for step, loss, seconds in content.loss_points
        ]
        params = [Param(k, v) for k, v in content.params.items()]
        client.log_batch(run_id, metrics=metrics[:_BATCH_METRICS], params=params[:_BATCH_PARAMS])
        for i in range(_BATCH_METRICS, len(metrics), _BATCH_METRICS):
            client.log_batch(run_id, metrics=metrics[i : i + _BATCH_METRICS])
        for name, text in content.texts.items():
            client.log_text(run_id, text, name)
        if content.dataset is not None:
            client.log_inputs(run_id, datasets=[_dataset_input(*content.dataset)])
        if content.files:
            with tempfile.TemporaryDirectory() as tmp:
                for name, data in content.files.items():
                    (Path(tmp) / name).write_bytes(data)
                client.log_artifacts(run_id, tmp)
        client.set_terminated(run_id, content.terminal_status)
        if content.loss_curve is not None:
            sweep.curves[run_id] = content.loss_curve
    except TrackingUnavailable as e:
        # The run stays RUNNING while the store is down: the caller ends it once it is back.
        e.run_id = run_id
        raise
    except Exception:
        # The store is up but refused part of the run: do not leave it RUNNING.
        with contextlib.suppress(Exception):
            client.set_terminated(run_id, "FAILED")
        raise
    return run_id


def _dataset_input(name: str, arrays: dict[str, np.ndarray]) -> DatasetInput:
    """A model's data as an MLflow dataset input (name, digest, schema), context training."""
    # The model's name: the digest tells data sets of different model arguments apart.
    dataset = mlflow.data.from_numpy(arrays, name=name)
    return DatasetInput(
        dataset._to_mlflow_entity(), tags=[InputTag(MLFLOW_DATASET_CONTEXT, "training")]
    )


def search_cells(experiment: str, uri: str | None = None) -> pd.DataFrame:
    """All cell runs of an experiment as MLflow's DataFrame (``mlflow.search_runs``)."""
    client_for(uri)  # the same HTTP settings as the driver's client
    mlflow.set_tracking_uri(tracking_uri(uri))
    found = with_retries(mlflow.search_experiments, filter_string=f"name = '{experiment}'")
    if not found:
        raise LookupError(f"no MLflow experiment named '{experiment}' at {tracking_uri(uri)}")
    return with_retries(
        mlflow.search_runs,
        experiment_ids=[found[0].experiment_id],
        filter_string="tags.`harness.cell_id` != ''",
        max_results=100_000,
    )


def _search(client: MlflowClient, experiment_id: str, filter_string: str) -> Iterable:
    token = None
    while True:
        page = client.search_runs(
            [experiment_id], filter_string, max_results=5000, page_token=token
        )
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
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
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


# --- per-cell figure and draws; reading them back for the report -------------------------------

REPORT_ARTIFACT_DIR = "report"
SUMMARY_TABLE_ARTIFACT = "report/summary_table.json"
# MLflow refuses tag values longer than this; a longer description ends with a pointer to the
# full table among the artifacts.
MAX_NOTE_CHARS = 7_900


def latest_sweep_run_id(experiment: str, uri: str | None = None) -> str | None:
    """The parent run of the experiment's latest ``harness run``, or None."""
    client = client_for(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs(
        [found.experiment_id],
        "tags.`harness.kind` = 'sweep'",
        max_results=1,
        order_by=["attributes.start_time DESC"],
    )
    return runs[0].info.run_id if runs else None


def log_report(
    run_id: str,
    out_dir: Path,
    paths: Iterable[Path],
    *,
    note: str,
    summary: pd.DataFrame,
    uri: str | None = None,
) -> None:
    """Log a report to a sweep's parent run: every file under ``report/`` (same relative
    paths as in ``out_dir``; a file of an earlier report is replaced), ``summary`` as an MLflow
    table (rendered by the UI) and ``note`` as the run's description."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    client = client_for(uri)
    for path in paths:
        folder = Path(path).parent.relative_to(out_dir)
        target = REPORT_ARTIFACT_DIR + ("" if str(folder) == "." else f"/{folder.as_posix()}")
        client.log_artifact(run_id, str(path), target)
    _replace_table(client, run_id, summary, SUMMARY_TABLE_ARTIFACT)
    if len(note) > MAX_NOTE_CHARS:
        tail = f"\n\n… (full table: `{REPORT_ARTIFACT_DIR}/tables/summary.md`)"
        note = note[: MAX_NOTE_CHARS - len(tail)] + tail
    client.set_tag(run_id, NOTE_TAG, note)


def _replace_table(client: MlflowClient, run_id: str, frame: pd.DataFrame, artifact: str) -> None:
    """Log ``frame`` as the run's MLflow table ``artifact``, replacing an earlier one.

    ``log_table`` appends to an existing table; a report's summary must replace the last
    one.  So the first time it registers the table (the run's ``mlflow.loggedArtifacts``
    tag, which makes the UI render it), and later the file is overwritten in the same
    format (pandas' ``split`` JSON, as ``log_table`` writes it).
    """
    folder, name = artifact.rsplit("/", 1)
    if artifact not in {f.path for f in client.list_artifacts(run_id, folder)}:
        client.log_table(run_id, frame, artifact)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        frame.to_json(path, orient="split", index=False, date_format="iso")
        client.log_artifact(run_id, str(path), folder)


def load_draws(run_id: str, uri: str | None = None) -> dict[str, np.ndarray] | None:
    """A run's ``draws.npz`` as a dict (keys ``draws``, ``reference_mean``, …), or None."""
    # MLflow draws a progress bar on stderr for every download; only cli.py prints.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    client = client_for(uri)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, DRAWS_ARTIFACT, tmp)
        except (mlflow.exceptions.MlflowException, OSError):
            return None
        with np.load(path) as data:
            return {k: data[k] for k in data.files}


# Each sweep's parent run holds ``loss_curves.json``: a compact loss curve per cell run it
# logged, so that ``harness report`` gets every curve from one download per sweep (reading 500
# metric histories of 1,000 points one run at a time takes minutes on a sqlite store).  64
# points, log-spaced in fit time, draw a smooth line on the report's log time axis.  The full
# (thinned) trace stays in each run's ``loss`` metric history and ``loss_trace.csv``; runs not
# in any sweep's file (a journal replay) have their history read.
LOSS_CURVES_ARTIFACT = "loss_curves.json"


def load_loss_curves(parent_run_ids: Iterable[str], uri: str | None = None) -> dict[str, dict]:
    """Run id → compact loss curve, from the ``loss_curves.json`` of the given sweeps."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    client = client_for(uri)
    curves: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, parent in enumerate(dict.fromkeys(p for p in parent_run_ids if p)):
            try:
                path = client.download_artifacts(parent, LOSS_CURVES_ARTIFACT, f"{tmp}/{i}")
            except (mlflow.exceptions.MlflowException, OSError):
                continue  # a sweep that ended before it could write them
            curves.update(json.loads(Path(path).read_text()))
    return curves


def loss_histories(runs: pd.DataFrame, uri: str | None = None, *, threads: int = 8) -> pd.DataFrame:
    """Smoothed loss curves of runs against optimisation time (see :func:`harness.run_content.loss_curve`).

    Args:
      runs: Columns ``run_id``, ``start_time`` (as ``search_runs`` gives it) and optionally
        ``parent_run_id``: curves come from those sweeps' ``loss_curves.json``.  Runs not in
        one have their ``loss`` metric history read, ``threads`` runs at a time; its times are
        the metric timestamps minus the run's start, which :func:`log_cell` sets to the
        cell's start.

    Returns:
      Columns ``run_id``, ``seconds``, ``loss`` (smoothed).
    """
    ids, seconds, losses = [], [], []

    def add(run_id, t, loss):
        ids.append(np.full(len(t), run_id, dtype=object))
        seconds.append(np.asarray(t, float))
        losses.append(np.asarray(loss, float))

    parents = runs["parent_run_id"].dropna() if "parent_run_id" in runs else []
    logged = load_loss_curves(parents, uri) if len(parents) else {}
    missing = []
    for run_id, start in zip(runs["run_id"], _epoch_ms(runs["start_time"]), strict=True):
        if run_id in logged:
            add(run_id, logged[run_id]["seconds"], logged[run_id]["loss"])
        else:
            missing.append((run_id, start))
    if missing:
        client = client_for(uri)

        def one(item):
            return item, with_retries(client.get_metric_history, item[0], "loss")

        with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
            for (run_id, start), history in pool.map(one, missing):
                if not history:
                    continue
                timestamps = np.fromiter((m.timestamp for m in history), np.int64, len(history))
                values = np.fromiter((m.value for m in history), float, len(history))
                origin = start if start > 0 else timestamps.min()
                add(run_id, *run_content.loss_curve(values, (timestamps - origin) / 1000.0))
    if not ids:
        return pd.DataFrame(
            {
                "run_id": pd.Series(dtype=object),
                "seconds": pd.Series(dtype=float),
                "loss": pd.Series(dtype=float),
            }
        )
    return pd.DataFrame(
        {
            "run_id": np.concatenate(ids),
            "seconds": np.concatenate(seconds),
            "loss": np.concatenate(losses),
        }
    )


def _epoch_ms(values: pd.Series) -> np.ndarray:
    """Milliseconds since the epoch of ``search_runs``' ``start_time`` (datetimes or numbers)."""
    if pd.api.types.is_numeric_dtype(values):
        return values.fillna(0).astype("int64").to_numpy()
    since = pd.to_datetime(values, utc=True) - pd.Timestamp(0, tz="UTC")
    return (since // pd.Timedelta(1, "ms")).fillna(0).astype("int64").to_numpy()


def _accelerator() -> str:
    """The GPUs TensorFlow sees (by name), else ``CPU`` and the CPU model; TensorFlow is only
    asked when the driver has already imported it."""
    import sys

    if "tensorflow" in sys.modules:
        tf = sys.modules["tensorflow"]
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            names = []
            for gpu in gpus:
                details = tf.config.experimental.get_device_details(gpu)
                names.append(details.get("device_name", gpu.name))
            return "GPU: " + ", ".join(names)
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU: {cpu or platform.machine()}"


# --- VSBC runs ------------------------------------------------------------------------------


def log_vsbc(result, uri: str | None = None, *, figures: Iterable[Path] = ()) -> str:
    """Log a :class:`harness.vsbc.VsbcResult` as one run in the cell's experiment.

    The run is tagged ``harness.kind = vsbc`` and has no ``harness.cell_id`` tag, so sweeps and
    reports (which read cell runs) ignore it.  Params: the cell's params and
    ``num_simulations``; metrics: the summary and ``vsbc_pvalue_<i>`` per coordinate;
    artifacts: ``vsbc_probabilities.csv`` (one row per simulation: true parameters and
    ``Pr_q(θ < θ_true)``) and the figures.  Returns the run id.
    """
    cell = result.cell
    client = client_for(uri)
    experiment_id = get_or_create_experiment(client, cell.experiment)
    tags = {
        MLFLOW_RUN_NAME: f"vsbc {cell.model}/{cell.family}",
        "harness.kind": "vsbc",
        "harness.model": cell.model,
        "harness.family": cell.family,
        "harness.vsbc_cell_id": cell.cell_id,
        "harness.vsbc_failures": "; ".join(f"{i}: {r}" for i, r in result.failures)[:5000],
        **{f"harness.version.{p}": _version(p) for p in _PACKAGES},
    }
    commit = _git_commit()
    if commit:
        tags[MLFLOW_GIT_COMMIT] = commit
    run_id = client.create_run(experiment_id, tags=tags).info.run_id
    now = int(time.time() * 1000)
    params = {
        **cell_params(cell),
        "num_simulations": int(result.summary["num_simulations"])
        + int(result.summary["num_failed"]),
    }
    metrics = [Metric(k, float(v), now, 0) for k, v in result.summary.items()]
    metrics += [Metric(f"vsbc_pvalue_{i}", float(v), now, 0) for i, v in enumerate(result.pvalues)]
    client.log_batch(
        run_id,
        metrics=metrics[:_BATCH_METRICS],
        params=[Param(k, str(v)) for k, v in params.items()][:_BATCH_PARAMS],
    )
    d = result.probabilities.shape[1]
    table = pd.DataFrame(
        np.hstack([result.true_params, result.probabilities]),
        columns=[f"true_{i}" for i in range(d)] + [f"p_{i}" for i in range(d)],
    )
    client.log_text(run_id, table.to_csv(index_label="simulation"), "vsbc_probabilities.csv")
    for path in figures:
        client.log_artifact(run_id, str(path), "figures")
    client.set_terminated(run_id, "FINISHED")
    return run_id


__all__ = [
    "RETRY",
    "RetryPolicy",
    "Sweep",
    "TrackingUnavailable",
    "end_run",
    "latest_sweep_run_id",
    "load_draws",
    "log_report",
    "load_loss_curves",
    "loss_histories",
    "journal_entry_ids",
    "run_status",
    "with_retries",
    "end_sweep",
    "finished_cell_ids",
    "log_cell",
    "log_vsbc",
    "mark_dead_runs_killed",
    "search_cells",
    "start_sweep",
    "tracking_uri",
]
