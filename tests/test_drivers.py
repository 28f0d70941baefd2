"""Several drivers on one experiment: a claim per cell in the tracking store, a heartbeat per
driver, each cell fitted and logged once.

The claim primitive is tested in-process on a real sqlite store; whole drivers as real
``harness run`` subprocesses (three at once on sqlite; two at once against a real ``mlflow
server``, one of them killed with SIGKILL, then a third that takes over its claims).
"""

from __future__ import annotations

import collections
import os
import sys
import time

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from harness import tracking
from tests.test_crash import Driver

SPEC = """
name = "shared"
seeds = [0, 1, 2]
models = ["correlated_gaussian"]
families = ["mean_field", "full_rank"]
[fit]
num_steps = 10
stopping = "budget"
learning_rate = 0.01
learning_rate_schedule = "constant"
initialization = "uniform"
sample_size = 2
elbo_sample_size = 1000
num_draws_kept = 10
jit_compile = false  # graph mode: the cheapest fit per cell
"""
NUM_CELLS = 3 * 2
WAIT_SECONDS = 300


def _sweep(uri, name="claims"):
    client = tracking.client_for(uri)
    experiment_id = tracking.get_or_create_experiment(client, name)
    run = client.create_run(
        experiment_id,
        tags={
            "harness.kind": "sweep",
            "harness.host": "elsewhere",  # not this host: only the heartbeat tells
            "harness.driver_pid": "1",
            tracking.HEARTBEAT_TAG: f"{time.time():.3f}",
        },
    )
    return tracking.Sweep(client, experiment_id, run.info.run_id)


def test_a_cell_is_claimed_once_and_a_dead_drivers_claim_is_taken_over(tracking_uri):
    a, b = _sweep(tracking_uri), _sweep(tracking_uri)
    assert tracking.claim_cell(a, "claims", "cell1")
    assert tracking.claim_cell(a, "claims", "cell1"), "a driver keeps its own claim"
    assert not tracking.claim_cell(b, "claims", "cell1"), "a live driver's claim holds"
    assert tracking.claim_cell(b, "claims", "cell2")
    # A's heartbeat stops: once older than the TTL, its claims expire.
    a.client.set_tag(
        a.parent_run_id, tracking.HEARTBEAT_TAG, f"{time.time() - tracking.CLAIM_TTL_SECONDS - 1}"
    )
    assert tracking.claim_cell(b, "claims", "cell1")
    assert not tracking.claim_cell(a, "claims", "cell1"), "taken over: generation 1 is B's"
    # B's sweep ends: its claims expire at once.
    b.client.set_terminated(b.parent_run_id, "FINISHED")
    c = _sweep(tracking_uri)
    assert tracking.claim_cell(c, "claims", "cell2")
    # Claims are deleted experiments: not listed, the experiment itself untouched.
    names = [e.name for e in a.client.search_experiments()]
    assert "claims" in names and not [n for n in names if ".claims/" in n]


def test_heartbeat_renews_the_tag(tracking_uri, monkeypatch):
    monkeypatch.setattr(tracking, "HEARTBEAT_SECONDS", 0.05)
    sweep = _sweep(tracking_uri)
    sweep.client.set_tag(sweep.parent_run_id, tracking.HEARTBEAT_TAG, "0")
    with tracking.Heartbeat(sweep):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            beat = float(
                sweep.client.get_run(sweep.parent_run_id).data.tags[tracking.HEARTBEAT_TAG]
            )
            if beat > 0:
                break
            time.sleep(0.05)
    assert time.time() - beat < 30


def _args(spec, uri, results):
    return [
        "run",
        str(spec),
        "--executor",
        "serial",
        "--tracking-uri",
        uri,
        "--results-dir",
        str(results),
    ]


def _check_once(uri, context):
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("shared")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    assert not [r for r in runs if r.info.status == "RUNNING"], context
    finished = collections.Counter(
        r.data.tags["harness.cell_id"]
        for r in runs
        if "harness.cell_id" in r.data.tags and r.info.status == "FINISHED"
    )
    assert len(finished) == NUM_CELLS and set(finished.values()) == {1}, (finished, context)
    return runs


def _check_results(results, context):
    folder = results / "shared"
    table = pd.read_csv(folder / "cells.csv")
    assert len(table) == NUM_CELLS and set(table["status"]) == {"ok"}, context
    leftovers = [p.name for p in folder.rglob("*") if ".tmp" in p.name or p.suffix == ".lock"]
    assert not leftovers, leftovers


@pytest.mark.slow
@pytest.mark.chaos
def test_three_drivers_at_once_share_the_cells(tmp_path):
    """Three ``harness run`` of one spec at once on a new sqlite store: every cell fitted and
    logged once, every driver exits 0.  (Slow, ~60 s: three processes import TensorFlow.)"""
    spec = tmp_path / "shared.toml"
    spec.write_text(SPEC)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    drivers = [Driver(_args(spec, uri, tmp_path / "results"), tmp_path) for _ in range(3)]
    try:
        codes = [d.process.wait(timeout=WAIT_SECONDS) for d in drivers]
    finally:
        for d in drivers:
            if d.process.poll() is None:
                d.kill()
    for d in drivers:
        d._reader.join(timeout=5)
    context = [d.lines[-3:] for d in drivers]
    assert codes == [0, 0, 0], context
    runs = _check_once(uri, context)
    cell_runs = [r for r in runs if "harness.cell_id" in r.data.tags]
    assert len(cell_runs) == NUM_CELLS, "a cell was fitted twice"
    parents = [r for r in runs if r.data.tags.get("harness.kind") == "sweep"]
    assert sorted(p.info.status for p in parents) == ["FINISHED"] * 3
    _check_results(tmp_path / "results", context)


@pytest.mark.slow
@pytest.mark.chaos
def test_two_drivers_on_a_server_one_killed_then_a_third_takes_over(tmp_path):
    """Against a real ``mlflow server``: two drivers at once, one SIGKILLed after it logged a
    cell (its claims then belong to a dead driver), a third run finishes the rest: exactly
    one FINISHED run per cell.  (Slow, ~90 s.)"""
    from tests.test_tracking_server import _free_port, _serving

    spec = tmp_path / "shared.toml"
    spec.write_text(SPEC)
    port = _free_port()
    server = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        f"sqlite:///{tmp_path / 'server.db'}",
        "--default-artifact-root",
        str(tmp_path / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    env = {**os.environ, "MLFLOW_SERVER_ALLOWED_HOSTS": "*"}
    with _serving(server, port, tmp_path / "server.log", tmp_path, env=env) as url:
        args = _args(spec, url, tmp_path / "results")
        first, second = Driver(args, tmp_path), Driver(args, tmp_path)
        try:
            assert first.wait_for("["), first.lines[-5:]
            first.kill()
            assert second.process.wait(timeout=WAIT_SECONDS) == 0, second.lines[-5:]
            third = Driver(args, tmp_path)
            assert third.process.wait(timeout=WAIT_SECONDS) == 0, third.lines[-5:]
        finally:
            for d in (first, second):
                if d.process.poll() is None:
                    d.kill()
        context = [second.lines[-3:], third.lines[-3:]]
        _check_once(url, context)
        _check_results(tmp_path / "results", context)
