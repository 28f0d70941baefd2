"""End to end: spec → local process pool → MLflow → cells.csv and figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from harness import cli
from tests.conftest import REPO

CELL_METRICS = (
    "elbo",
    "elbo_standard_error",
    "compile_seconds",
    "fit_seconds",
    "steps_per_second",
    "mean_z_error_max",
    "std_ratio_geomean",
)
# A NUTS budget for smoke tests of experiment files: compiles and runs, in seconds.
SHORT_NUTS = {"num_warmup": 20, "num_draws": 50}


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    """The quickstart spec itself, shrunk with --set, run through the spawn pool."""
    tmp = tmp_path_factory.mktemp("quickstart")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    code = cli.main(
        [
            "run",
            str(REPO / "experiments" / "quickstart.toml"),
            "--tracking-uri",
            uri,
            "--results-dir",
            str(tmp / "results"),
            "--workers",
            "1",
            "--set",
            "fit.num_steps=30",
            "--set",
            "fit.elbo_sample_size=1000",
            # A fixed rate and the uniform start: the sweep is under test here; the pilots and
            # the mode search are tested in tests/test_convergence.py and tests/test_mode.py.
            "--set",
            "fit.learning_rate=0.01",
            "--set",
            "fit.initialization=uniform",
        ]
    )
    return code, uri, tmp


def test_quickstart_runs_and_exits_0(quickstart):
    assert quickstart[0] == 0


def test_mlflow_has_parent_and_one_finished_nested_run_per_cell(quickstart):
    _, uri, _ = quickstart
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("quickstart")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("harness.kind") == "sweep"]
    cells = [r for r in runs if "harness.cell_id" in r.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    artifacts = [a.path for a in client.list_artifacts(parent.info.run_id, "spec")]
    assert "spec/quickstart.toml" in artifacts
    assert len(cells) == 3 * 3 * 2
    assert len({r.data.tags["harness.cell_id"] for r in cells}) == 18
    for run in cells:
        tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
        assert run.info.status == "FINISHED"
        assert tags["mlflow.parentRunId"] == parent.info.run_id
        assert (
            tags["mlflow.runName"] == f"{tags['harness.model']}/{tags['harness.family']}/"
            f"{tags['harness.seed']}"
        )
        assert tags["harness.status"] == "ok"
        assert tags["harness.fit_mode"] in ("xla", "graph")
        assert params["model"] == tags["harness.model"]
        assert params["family"] == tags["harness.family"]
        assert params["seed"] == tags["harness.seed"]
        assert params["num_steps"] == "30" and params["sample_size"] == "16"
        for metric in CELL_METRICS:
            assert np.isfinite(metrics[metric]), metric
        history = client.get_metric_history(run.info.run_id, "loss")
        assert [m.step for m in history] == list(range(30))
    iaf = next(r for r in cells if r.data.tags["harness.family"] == "iaf")
    assert iaf.data.params["family.num_layers"] == "2"


@pytest.mark.slow
def test_loss_history_is_thinned_to_1000_points(tmp_path, write_spec, tracking_uri):
    path = write_spec(
        'name = "long"\nmodels = ["banana"]\nfamilies = ["mean_field"]\n'
        '[fit]\nnum_steps = 2500\nelbo_sample_size = 1000\nstopping = "budget"\n'
        'learning_rate = 0.01\ninitialization = "uniform"\n'
    )
    assert (
        cli.main(
            [
                "run",
                str(path),
                "--tracking-uri",
                tracking_uri,
                "--executor",
                "serial",
                "--results-dir",
                str(tmp_path / "r"),
            ]
        )
        == 0
    )
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name("long")
    run = [r for r in client.search_runs([exp.experiment_id]) if "harness.cell_id" in r.data.tags]
    history = client.get_metric_history(run[0].info.run_id, "loss")
    steps = [m.step for m in history]
    assert len(steps) <= 1000 and steps[0] == 0 and steps[-1] == 2499
    trace = client.download_artifacts(run[0].info.run_id, "loss_trace.csv", str(tmp_path))
    assert len(pd.read_csv(trace)) == 2500


def test_cells_csv_and_figure_written(quickstart):
    _, uri, tmp = quickstart
    out = tmp / "results" / "quickstart"
    table = pd.read_csv(out / "cells.csv")
    assert len(table) == 18
    assert set(table["family"]) == {"mean_field", "full_rank", "iaf"}
    for ext in ("pdf", "png"):
        path = out / "figures" / f"quality_vs_speed.{ext}"
        assert path.stat().st_size > 5000


def test_rerun_skips_finished_cells(quickstart, capsys):
    _, uri, tmp = quickstart
    code = cli.main(
        [
            "run",
            str(REPO / "experiments" / "quickstart.toml"),
            "--tracking-uri",
            uri,
            "--results-dir",
            str(tmp / "results"),
            "--executor",
            "serial",
            "--set",
            "fit.num_steps=30",
            "--set",
            "fit.elbo_sample_size=1000",
            # The same settings as the fixture's sweep, so the same cells.
            "--set",
            "fit.learning_rate=0.01",
            "--set",
            "fit.initialization=uniform",
        ]
    )
    assert code == 0
    assert "skipped 18 cells" in capsys.readouterr().err
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("quickstart")
    cells = [
        r
        for r in client.search_runs([exp.experiment_id], max_results=1000)
        if "harness.cell_id" in r.data.tags
    ]
    assert len(cells) == 18


def test_list_shows_models_and_families(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in (
        "correlated_gaussian",
        "banana",
        "eight_schools",
        "mean_field",
        "full_rank",
        "iaf",
        "num_layers=2",
        "analytic",
        "draws",
        "moments",
    ):
        assert name in out


@pytest.mark.slow
def test_baselines_spec_runs_with_tiny_settings(tmp_path):
    """experiments/baselines.toml, shrunk: variational families, Laplace, CAVI and two NUTS
    budgets share one sweep, one table (a row per NUTS budget) and the figures."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = cli.main(
        [
            "run",
            str(REPO / "experiments" / "baselines.toml"),
            "--tracking-uri",
            uri,
            "--results-dir",
            str(tmp_path / "results"),
            "--executor",
            "serial",
            "--set",
            "fit.num_steps=20",
            "--set",
            "fit.elbo_sample_size=1000",
            "--set",
            "fit.learning_rate=0.01",
            "--set",
            "fit.initialization=uniform",
        ]
    )
    assert code == 0
    table = pd.read_csv(tmp_path / "results" / "baselines" / "cells.csv")
    assert set(table["status"]) == {"ok"}
    assert {"laplace", "cavi", "nuts", "mean_field"} <= set(table["family"])
    # CAVI applies to the normal-inverse-gamma regression only: left out elsewhere.
    assert set(table.loc[table["family"] == "cavi", "model"]) == {"linear_regression_unknown_noise"}
    summary = (tmp_path / "results" / "baselines" / "tables" / "summary.md").read_text()
    assert "num_draws=100," in summary or "num_draws=100)" in summary
    assert "num_draws=1000" in summary
    # On the dashboard the two NUTS budgets of one model and seed are two names, not one.
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("baselines")
    names = [
        run.data.tags["mlflow.runName"]
        for run in client.search_runs([experiment.experiment_id], max_results=1000)
        if "harness.cell_id" in run.data.tags
    ]
    assert len(names) == len(table) and len(set(names)) == len(names), names
    assert any("(num_draws=100, num_warmup=200)" in name for name in names), names


@pytest.mark.slow
def test_regressions_spec_runs_with_tiny_settings(tmp_path):
    """experiments/regressions.toml: the whole grid is valid (every model × family pair
    applies), and one of its models runs through every family of the file with tiny settings
    (one seed, 20 steps, a short NUTS run) into ``ok`` cells scored against the reference."""
    import tomllib

    from harness import spec as spec_module

    path = REPO / "experiments" / "regressions.toml"
    raw = tomllib.loads(path.read_text())
    names = [f if isinstance(f, str) else f["name"] for f in raw["families"]]
    cells = spec_module.load(path).cells()
    assert {(c.model, c.family) for c in cells} == {(m, f) for m in raw["models"] for f in names}
    assert len(cells) == len(raw["models"]) * len(names) * len(raw["seeds"])

    # The file's own families, NUTS with a tiny budget (--set replaces the whole list).
    families = ", ".join(
        f'"{f}"'
        if isinstance(f, str)
        else "{" + ", ".join(f"{k} = {v!r}" for k, v in (f | SHORT_NUTS).items()) + "}"
        for f in raw["families"]
    ).replace("'", '"')
    model = "correlated_regression_wine"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = cli.main(
        [
            "run",
            str(path),
            "--tracking-uri",
            uri,
            "--results-dir",
            str(tmp_path / "results"),
            "--executor",
            "serial",
            "--set",
            "seeds=[0]",
            "--set",
            f'models=["{model}"]',
            "--set",
            f"families=[{families}]",
            "--set",
            "fit.num_steps=20",
            "--set",
            "fit.jit_compile=false",
            "--set",
            "fit.elbo_sample_size=1000",
        ]
    )
    assert code == 0
    table = pd.read_csv(tmp_path / "results" / "regressions" / "cells.csv")
    assert sorted(table["family"]) == sorted(names)
    assert set(table["model"]) == {model}
    assert set(table["status"]) == {"ok"}
    assert table["mean_z_error_max"].notna().all()
    assert table["std_ratio_geomean"].notna().all()


@pytest.mark.slow
def test_multimodal_spec_runs_with_tiny_settings(tmp_path):
    """experiments/multimodal.toml: every model × family pair applies; shrunk to one target, a
    single Gaussian and the mixture, its mode-coverage metrics reach cells.csv, summary.csv and
    the summary table, and the mixture's gradient count includes its K components."""
    from harness import spec as spec_module

    path = REPO / "experiments" / "multimodal.toml"
    cells = spec_module.load(path).cells()
    assert {c.model for c in cells} == {"multimodal_2d", "multimodal_nd"}
    assert not spec_module.load(path).excluded
    code = cli.main(
        [
            "run",
            str(path),
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
            "--results-dir",
            str(tmp_path / "results"),
            "--executor",
            "serial",
            "--set",
            'models=["multimodal_2d"]',
            "--set",
            'families=["mean_field", "gaussian_mixture"]',
            "--set",
            "seeds=[0]",
            "--set",
            "fit.num_steps=20",
            "--set",
            "fit.learning_rate=0.05",
            "--set",
            "fit.jit_compile=false",
            "--set",
            'fit.stopping="budget"',
            "--set",
            "fit.elbo_sample_size=1000",
        ]
    )
    assert code == 0
    out = tmp_path / "results" / "multimodal"
    table = pd.read_csv(out / "cells.csv").set_index("family")
    assert set(table["status"]) == {"ok"}
    assert table.loc["mean_field", "mode_fraction_recovered"] == pytest.approx(1 / 6)
    assert 0 < table.loc["gaussian_mixture", "mode_weight_tv"] < 1
    ratio = (
        table.loc["gaussian_mixture", "num_gradient_evaluations"]
        - table.loc["gaussian_mixture", "initialization_gradient_evaluations"]
    ) / (
        table.loc["mean_field", "num_gradient_evaluations"]
        - table.loc["mean_field", "initialization_gradient_evaluations"]
    )
    assert ratio == 4  # the same steps, one draw per component
    assert "mode_fraction_recovered" in pd.read_csv(out / "summary.csv")
    assert "modes recovered" in (out / "tables" / "summary.md").read_text()
