"""``harness vsbc`` end to end: real fits on simulated data, a real sqlite MLflow store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from harness import cli, tracking

SPEC = """
name = "vsbc_test"
models = ["conjugate_normal_mean", "banana"]
families = ["full_rank"]
[fit]
num_steps = 50
sample_size = 4
elbo_sample_size = 1000
num_draws_kept = 200
jit_compile = false
"""


@pytest.mark.slow
def test_vsbc_command_logs_pvalues_table_and_figure(write_spec, tracking_uri, tmp_path, capsys):
    spec = write_spec(SPEC)
    code = cli.main(
        [
            "vsbc",
            str(spec),
            "--model",
            "conjugate_normal_mean",
            "--family",
            "full_rank",
            "--simulations",
            "3",
            "--tracking-uri",
            tracking_uri,
            "--results-dir",
            str(tmp_path / "results"),
        ]
    )
    out = capsys.readouterr().out
    assert code == cli.EXIT_OK, out
    assert "Bonferroni" in out and "θ[2]" in out
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("vsbc_test")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.tags["harness.kind"] == "vsbc"
    assert "harness.cell_id" not in run.data.tags  # invisible to sweeps and reports
    metrics = run.data.metrics
    pvalues = [metrics[f"vsbc_pvalue_{i}"] for i in range(3)]  # d = 3 means
    assert all(0.0 <= p <= 1.0 for p in pvalues)
    assert metrics["vsbc_min_pvalue"] == min(pvalues)
    assert metrics["num_simulations"] + metrics["num_failed"] == 3
    assert run.data.params["num_simulations"] == "3"
    table = pd.read_csv(
        client.download_artifacts(run.info.run_id, "vsbc_probabilities.csv", str(tmp_path))
    )
    assert len(table) == metrics["num_simulations"]
    assert np.all((table[["p_0", "p_1", "p_2"]] >= 0) & (table[["p_0", "p_1", "p_2"]] <= 1))
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "figures")}
    assert artifacts == {
        "figures/vsbc_conjugate_normal_mean_full_rank.png",
        "figures/vsbc_conjugate_normal_mean_full_rank.pdf",
    }
    assert tracking.search_cells("vsbc_test", tracking_uri).empty


def test_vsbc_usage_errors_exit_2_with_one_line(write_spec, tracking_uri, capsys):
    spec = write_spec(SPEC)
    cases = [
        (["--model", "banana", "--family", "full_rank"], "no simulator"),
        (["--model", "eight_schools", "--family", "full_rank"], "not in the spec's models"),
        (["--model", "conjugate_normal_mean", "--family", "iaf"], "not in the spec's families"),
        (
            ["--model", "conjugate_normal_mean", "--family", "full_rank", "--simulations", "1"],
            "--simulations must be >= 2",
        ),
    ]
    for extra, message in cases:
        code = cli.main(["vsbc", str(spec), "--tracking-uri", tracking_uri, *extra])
        err = capsys.readouterr().err
        assert code == cli.EXIT_USAGE, extra
        assert message in err and len(err.strip().splitlines()) == 1, err
