"""Crash safety: ``kill -9`` of the driver at random moments loses nothing.

A real ``harness run`` subprocess is killed with SIGKILL three times at random points (during
start-up, during the sweep, right after a cell was logged), then run to the end.  Afterwards
every cell has exactly one FINISHED run, the runs the dead drivers left RUNNING are KILLED, and
the report covers every cell.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import REPO

SPEC = """
name = "crash"
seeds = [0, 1]
models = ["correlated_gaussian"]
families = ["mean_field", "full_rank"]
[fit]
num_steps = 20
sample_size = 4
elbo_sample_size = 1000
num_draws_kept = 10
"""
NUM_CELLS = 2 * 2
# Bounds on each wait, so that a hung driver fails the test instead of stalling the suite.
WAIT_SECONDS = 120


class Driver:
    """A ``harness run`` subprocess in its own process group, its stderr collected by a thread."""

    def __init__(self, args, cwd):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "harness.cli", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, prefix: str) -> bool:
        """Wait until a stderr line starts with ``prefix``; False if the driver exited first."""
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            if any(line.startswith(prefix) for line in self.lines):
                return True
            if self.process.poll() is not None:
                return False
            time.sleep(0.05)
        raise AssertionError(
            f"no line starting with {prefix!r} after {WAIT_SECONDS} s: {self.lines[-5:]}"
        )

    def kill(self) -> None:
        """SIGKILL the whole process group (a spawn pool's workers too)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=WAIT_SECONDS)
        self._reader.join(timeout=5)


@pytest.mark.slow
def test_kill_9_at_random_moments_then_rerun_finishes_each_cell_once(tmp_path):
    path = tmp_path / "crash.toml"
    path.write_text(SPEC)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [
        "run",
        str(path),
        "--executor",
        "serial",
        "--tracking-uri",
        uri,
        "--results-dir",
        str(tmp_path / "results"),
    ]
    MlflowClient(uri).search_experiments()  # the store exists, as after any earlier sweep
    rng = random.Random()
    seed = rng.randrange(2**32)
    rng.seed(seed)  # printed below, so a failing schedule can be replayed
    killed_pids, schedule = [], []
    drivers = []
    try:
        # 1: anywhere in start-up (imports, store, experiment, first cell); 2: some time into
        # the sweep; 3: just after a cell was logged (inside the next cell or its logging).
        for wait_prefix, max_delay in ((None, 8.0), ("experiment crash:", 3.0), ("[", 1.0)):
            driver = Driver(args, tmp_path)
            drivers.append(driver)
            reached = True if wait_prefix is None else driver.wait_for(wait_prefix)
            delay = rng.uniform(0.0, max_delay)
            schedule.append((wait_prefix, round(delay, 3)))
            if reached:
                time.sleep(delay)
            if driver.process.poll() is None:
                killed_pids.append(str(driver.process.pid))
            driver.kill()
        final = Driver(args, tmp_path)
        drivers.append(final)
        code = final.process.wait(timeout=WAIT_SECONDS * 2)
        final._reader.join(timeout=5)
    finally:
        for driver in drivers:
            if driver.process.poll() is None:
                driver.kill()
    context = f"seed {seed}, schedule {schedule}, last lines {final.lines[-5:]}"
    assert code == 0, context

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("crash")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    assert not [r for r in runs if r.info.status == "RUNNING"], context
    cells = [r for r in runs if "harness.cell_id" in r.data.tags]
    finished = collections.Counter(
        r.data.tags["harness.cell_id"] for r in cells if r.info.status == "FINISHED"
    )
    assert len(finished) == NUM_CELLS and set(finished.values()) == {1}, context
    parents = {r.info.run_id: r for r in runs if r.data.tags.get("harness.kind") == "sweep"}
    for run in runs:
        if run.info.status == "KILLED":
            owner = parents.get(run.data.tags.get("mlflow.parentRunId"), run)
            assert owner.data.tags["harness.driver_pid"] in killed_pids, context
    final_parent = [
        p for p in parents.values() if p.data.tags["harness.driver_pid"] == str(final.process.pid)
    ]
    assert [p.info.status for p in final_parent] == ["FINISHED"], context
    table = pd.read_csv(tmp_path / "results" / "crash" / "cells.csv")
    assert len(table) == NUM_CELLS and set(table["status"]) == {"ok"}, context


def _children(pid: int) -> set[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    children = set()
    for stat in os.listdir("/proc"):
        if not stat.isdigit():
            continue
        try:
            with open(f"/proc/{stat}/stat") as f:
                # Field 4 is the parent pid; the command name (field 2) may contain spaces.
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.add(int(stat))
    return children


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_pool_workers_exit_when_their_driver_is_killed(tmp_path):
    path = tmp_path / "orphans.toml"
    # Long fits, so that the workers are still fitting when the driver dies.
    path.write_text(
        SPEC.replace('name = "crash"', 'name = "orphans"').replace(
            "num_steps = 20", "num_steps = 20000"
        )
    )
    driver = Driver(
        [
            "run",
            str(path),
            "--workers",
            "2",
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
            "--results-dir",
            str(tmp_path / "results"),
        ],
        tmp_path,
    )
    workers: set[int] = set()
    try:
        assert driver.wait_for("experiment orphans:"), driver.lines[-5:]
        deadline = time.monotonic() + WAIT_SECONDS
        while len(workers) < 2 and time.monotonic() < deadline:
            workers = {
                pid for pid in _children(driver.process.pid) if b"spawn_main" in _cmdline(pid)
            }
            time.sleep(0.2)
        assert len(workers) == 2, driver.lines[-5:]
        time.sleep(15)  # the workers import TensorFlow, run their initializer and start fitting
        os.kill(driver.process.pid, signal.SIGKILL)  # the driver only, as a user would
        driver.process.wait(timeout=WAIT_SECONDS)
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(pid) for pid in workers), "orphaned workers kept running"
    finally:
        driver.kill()
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


@pytest.mark.parametrize(
    ("args", "expected"),
    [(["--help"], 0), (["run"], 2), (["run", "missing.toml"], 2), (["no-such-command"], 2)],
)
def test_program_exit_codes_survive_the_fast_exit(tmp_path, args, expected):
    """``harness`` skips the interpreter's teardown at exit: the exit code must be kept."""
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
    )
    assert done.returncode == expected, done.stderr
    assert (done.stdout if expected == 0 else done.stderr).strip()
