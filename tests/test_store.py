"""First-time creation of a sqlite tracking store: safe against concurrent starts and kills.

MLflow makes a new store's schema in ~50 migrations, each its own transaction; a process killed
part-way (or two creating at once) used to leave a half-migrated file that every later run
failed on.  :func:`harness.tracking.prepare_sqlite_store` creates the store in a temporary file
under a lock on its folder and renames it into place when complete.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from harness import tracking
from tests.conftest import REPO

PREPARE = "import sys; from harness import tracking; tracking.prepare_sqlite_store(sys.argv[1])"


def _prepare_process(path):
    return subprocess.Popen(
        [sys.executable, "-c", PREPARE, str(path)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _version(path) -> str:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT version_num FROM alembic_version").fetchone()[0]


@pytest.fixture(scope="module")
def complete_store(tmp_path_factory):
    """One complete store made by the harness (copied by the tests that damage it)."""
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    tracking.prepare_sqlite_store(path)
    return path


def test_a_new_store_is_complete_and_leaves_nothing_else(complete_store):
    from mlflow.store.db.utils import _get_latest_schema_revision

    assert tracking._store_problem(complete_store) == ""
    assert _version(complete_store) == _get_latest_schema_revision()
    assert sorted(p.name for p in complete_store.parent.iterdir()) == ["mlflow.db"]


def _half_made(source, target, *, with_run: bool):
    """A copy of a complete store set back to an old schema version with an interrupted
    migration's leftover table: what a kill during MLflow's own creation leaves."""
    shutil.copy(source, target)
    with sqlite3.connect(target) as db:
        db.execute("UPDATE alembic_version SET version_num = '5b0e9adcef9c'")
        db.execute("CREATE TABLE _alembic_tmp_runs (x INTEGER)")
        if with_run:
            db.execute(
                "INSERT INTO runs (run_uuid, experiment_id, lifecycle_stage, status) "
                "VALUES ('r1', 0, 'active', 'FINISHED')"
            )


def test_a_half_made_store_without_runs_is_made_again(complete_store, tmp_path):
    path = tmp_path / "mlflow.db"
    _half_made(complete_store, path, with_run=False)
    assert "_alembic_tmp_runs" in tracking._store_problem(path)
    tracking.prepare_sqlite_store(path)
    assert tracking._store_problem(path) == ""
    client = tracking.client_for(f"sqlite:///{path}")
    assert tracking.get_or_create_experiment(client, "after_repair")


def test_a_half_made_store_with_runs_is_reported_in_one_line(complete_store, tmp_path, capsys):
    path = tmp_path / "mlflow.db"
    _half_made(complete_store, path, with_run=True)
    before = path.read_bytes()
    with pytest.raises(tracking.StoreDamaged) as e:
        tracking.prepare_sqlite_store(path)
    message = str(e.value)
    assert len(message.splitlines()) == 1
    assert "half-made" in message and "_alembic_tmp_runs" in message
    assert (
        "DROP TABLE _alembic_tmp_runs" in message
        and f"mlflow db upgrade sqlite:///{path}" in message
    )
    assert path.read_bytes() == before, "a store with runs is never touched"
    # The CLI reports it as one line, exit 1, before anything is fitted.
    from harness import cli

    spec = tmp_path / "spec.toml"
    spec.write_text('models = ["banana"]\nfamilies = ["mean_field"]\n[fit]\nnum_steps = 10\n')
    code = cli.main(
        [
            "run",
            str(spec),
            "--tracking-uri",
            f"sqlite:///{path}",
            "--executor",
            "serial",
            "--results-dir",
            str(tmp_path / "results"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err[-1].startswith("harness: error:") and "half-made" in err[-1]
    assert not (tmp_path / "results").exists()


def test_a_file_that_is_not_sqlite_is_never_deleted(tmp_path):
    path = tmp_path / "mlflow.db"
    path.write_text("my notes")
    with pytest.raises(tracking.StoreDamaged):
        tracking.prepare_sqlite_store(path)
    assert path.read_text() == "my notes"


@pytest.mark.slow
@pytest.mark.chaos
def test_kills_during_creation_then_three_concurrent_starts(tmp_path):
    """SIGKILL a creator in the middle of MLflow's migrations, then start three at once: one
    complete store, no temporary files left.  (Slow, ~40 s on a busy 2-core machine: a
    creation runs all of MLflow's migrations, twice here.)"""
    path = tmp_path / "mlflow.db"
    process = _prepare_process(path)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".mlflow.db.creating-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # the tables are made, the migrations under way
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert list(tmp_path.glob(".mlflow.db.creating-*")), "killed before it created anything"
    # The final name never holds a half-made store: absent, or complete.
    assert not path.exists()
    processes = [_prepare_process(path) for _ in range(3)]
    for process in processes:
        _, err = process.communicate(timeout=180)
        assert process.returncode == 0, err
    assert tracking._store_problem(path) == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db"]
