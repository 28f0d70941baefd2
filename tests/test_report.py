"""``harness report``: MLflow runs → tidy table → CSV, Markdown/LaTeX tables, figures.

One tiny real sweep (2 models × 2 families × 2 seeds, serial, 30 steps) into a real sqlite
store feeds the end-to-end tests; every number the report writes is checked against what
``MlflowClient`` reads from the same store.  Resume is checked on a sweep interrupted in three
ways (seeds added, a run deleted, a run FAILED).
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from harness import cli, report
from harness.figures import (
    elbo_vs_time,
    khat_heatmap,
    marginals,
    quality_vs_speed,
    std_ratio,
    time_breakdown,
)
from harness.figures import style as look
from harness.metrics import catalog
from tests.conftest import REPO

SPEC = """\
name = "tiny_report"
seeds = [0, 1]
models = ["correlated_gaussian", "eight_schools"]
families = ["mean_field", "full_rank"]
[fit]
num_steps = 30
elbo_sample_size = 1000
num_draws_kept = 300
jit_compile = false  # graph mode: no XLA compilation, the cheapest fit per cell
learning_rate = 0.01  # no pilots and no mode search: the report is under test, not the fit
initialization = "uniform"
"""
FIGURES = (
    "quality_vs_speed",
    "quality_vs_gradients",
    "elbo_vs_time",
    "time_breakdown",
    "khat",
    "std_ratio",
    "marginals_correlated_gaussian",
)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A finished tiny sweep and its report (written by ``harness report``)."""
    tmp = tmp_path_factory.mktemp("report")
    spec = tmp / "tiny_report.toml"
    spec.write_text(SPEC)
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    assert (
        cli.main(
            [
                "run",
                str(spec),
                "--tracking-uri",
                uri,
                "--executor",
                "serial",
                "--results-dir",
                str(tmp / "results"),
            ]
        )
        == 0
    )
    out = tmp / "report"
    code = cli.main(["report", str(spec), "--tracking-uri", uri, "--out", str(out)])
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("tiny_report")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    return {
        "code": code,
        "uri": uri,
        "out": out,
        "spec": spec,
        "client": client,
        "cells": [r for r in runs if "harness.cell_id" in r.data.tags],
        "parent": next(r for r in runs if r.data.tags.get("harness.kind") == "sweep"),
    }


def _png_size(path) -> tuple[int, int]:
    with open(path, "rb") as f:
        header = f.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def test_report_writes_every_file(sweep):
    assert sweep["code"] == 0
    out = sweep["out"]
    for path in ("cells.csv", "summary.csv", "tables/summary.md", "tables/summary.tex"):
        assert (out / path).stat().st_size > 100, path
    pdffonts = shutil.which("pdffonts")
    assert pdffonts, "pdffonts not found: install poppler-utils (.ci/run does)"
    for pdf in sorted((out / "figures").glob("*.pdf")):
        # Every font embedded, as TrueType (fonttype 42), never as Type 3.
        listing = subprocess.run(
            [pdffonts, str(pdf)], capture_output=True, text=True, check=True, timeout=60
        ).stdout.splitlines()[2:]
        assert listing, pdf.name
        for line in listing:
            fields = line.split()
            assert "TrueType" in line and "Type 3" not in line, (pdf.name, line)
            assert fields[-5] == "yes", (pdf.name, line)  # the "emb" column
    for name in FIGURES:
        width, height = _png_size(out / "figures" / f"{name}.png")
        assert width >= 300 and height >= 200, name
    assert not list(out.rglob("*.tmp*"))


def test_cells_csv_is_one_row_per_cell_with_mlflow_numbers(sweep):
    table = pd.read_csv(sweep["out"] / "cells.csv")
    assert len(table) == 8 == len(sweep["cells"])
    for run in sweep["cells"]:
        row = table[table["run_id"] == run.info.run_id].iloc[0]
        for metric in ("elbo", "khat", "std_ratio_geomean", "fit_seconds", "mean_z_error_rms"):
            assert row[metric] == pytest.approx(run.data.metrics[metric], rel=1e-12)
        assert row["model_pretty_name"] == run.data.tags["harness.model_pretty_name"]


def test_summary_matches_mean_and_standard_error_from_mlflow(sweep):
    summary = pd.read_csv(sweep["out"] / "summary.csv")
    assert len(summary) == 4
    assert set(zip(summary["model"], summary["family"], strict=True)) == {
        (m, f)
        for m in ("correlated_gaussian", "eight_schools")
        for f in ("mean_field", "full_rank")
    }
    for metric in ("elbo", "khat", "std_ratio_geomean", "time_to_result_seconds"):
        for (model, family), row in summary.set_index(["model", "family"]).iterrows():
            values = np.array(
                [
                    r.data.metrics[metric]
                    for r in sweep["cells"]
                    if r.data.tags["harness.model"] == model
                    and r.data.tags["harness.family"] == family
                ]
            )
            assert len(values) == 2
            assert row[metric] == pytest.approx(values.mean(), rel=1e-12)
            assert row[f"{metric}_standard_error"] == pytest.approx(
                values.std(ddof=1) / np.sqrt(2), rel=1e-9
            )


def _md_rows(path):
    lines = path.read_text().splitlines()
    return [
        [c.strip() for c in line.strip("|").split("|")]
        for line in lines[2:]
        if line.startswith("|")
    ]


def test_markdown_and_latex_tables_mark_the_best_within_two_standard_errors(sweep):
    rows = _md_rows(sweep["out"] / "tables" / "summary.md")
    assert len(rows) == 4
    summary = pd.read_csv(sweep["out"] / "summary.csv")
    label = {"mean_field": "Mean-field", "full_rank": "Full-rank"}
    pretty = {"correlated_gaussian": "Correlated Gaussian", "eight_schools": "Eight schools"}
    any_bold = False
    for model in pretty:
        sub = summary[summary["model"] == model]
        # Only configurations whose every seed converged are candidates for "best".
        eligible = (sub["converged"] == 1).to_numpy()
        bold = np.zeros(len(sub), dtype=bool)
        if eligible.any():
            bold[eligible] = catalog.best_within_error(
                sub["elbo"][eligible], sub["elbo_standard_error"][eligible], "elbo"
            )
            best = sub[eligible].loc[sub["elbo"][eligible].idxmax(), "family"]
            assert bold[list(sub["family"]).index(best)]
        any_bold |= bool(bold.any())
        for family, marked in zip(sub["family"], bold, strict=True):
            row = next(r for r in rows if r[0].startswith(pretty[model]) and r[1] == label[family])
            assert row[2] == "2"  # seeds: both ok
            assert row[3].startswith("**") == marked, (model, family, row)
            assert "-" not in row[3]  # a minus sign, not a hyphen
    latex = (sweep["out"] / "tables" / "summary.tex").read_text()
    assert (r"\boldmath" in latex) == any_bold and r"\pm" in latex
    assert latex.count(r"\bottomrule") == 1 and r"\cline" not in latex


def test_each_cell_run_has_its_figure_draws_and_labels(sweep, tmp_path):
    client = sweep["client"]
    path = client.download_artifacts(sweep["parent"].info.run_id, "loss_curves.json", tmp_path)
    curves = json.loads(open(path).read())
    for run in sweep["cells"]:
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"cell.png", "draws.npz", "loss_trace.csv"} <= artifacts
        tags = run.data.tags
        assert tags["harness.family_pretty_name"] in ("Mean-field", "Full-rank")
        assert tags["harness.family_kind"] == "svi"
        assert tags["harness.model_pretty_name"].startswith(("Correlated", "Eight"))
        # The compact loss curve the report draws (in the parent run's loss_curves.json, not
        # in a tag) is the logged loss history (30 steps: all kept; smoothing over 2 % of 30
        # steps is a window of 1).
        assert "harness.loss_curve" not in tags
        curve = curves[run.info.run_id]
        history = client.get_metric_history(run.info.run_id, "loss")
        assert np.all(np.diff(curve["seconds"]) > 0)
        assert np.allclose(curve["loss"], [m.value for m in history], rtol=1e-6)
    draws = report.overlay_draws(report.tidy(_search(sweep)), "correlated_gaussian", sweep["uri"])
    q, reference = draws
    assert set(q) == {"mean_field", "full_rank"}
    assert all(a.dtype == np.float32 and a.shape == (300, 5) for a in q.values())
    # correlated_gaussian has exact reference draws; at most 1,000 are logged.
    assert reference["draws"].shape == (1000, 5)


def _search(sweep):
    from harness import tracking

    return tracking.search_cells("tiny_report", sweep["uri"])


def test_time_breakdown_has_one_bar_per_model_and_family_with_the_four_parts(sweep):
    """The "where the time goes" figure, from the report's tidy table: per model × family,
    the four parts (mean over seeds) that add up to the mean time to result in MLflow."""
    table = pd.read_csv(sweep["out"] / "cells.csv")
    data = time_breakdown.prepare(time_breakdown.applies_to(table))
    assert [p.title for p in data.panels] == [
        "Correlated Gaussian (d=5)",
        "Eight schools (centered)",
    ]
    for panel in data.panels:
        assert panel.labels == ["Mean-field", "Full-rank"]
        assert panel.seconds.shape == (2, len(time_breakdown.PARTS)) == (2, 4)
        assert list(panel.num_seeds) == [2, 2]
        np.testing.assert_allclose(panel.seconds.sum(axis=1), panel.totals, rtol=1e-9)
    model = {"Correlated Gaussian (d=5)": "correlated_gaussian"}
    panel = data.panels[0]
    for i, family in enumerate(("mean_field", "full_rank")):
        runs = [
            r.data.metrics
            for r in sweep["cells"]
            if r.data.tags["harness.model"] == model[panel.title]
            and r.data.tags["harness.family"] == family
        ]
        expected = np.mean([m["time_to_result_seconds"] for m in runs])
        assert panel.totals[i] == pytest.approx(expected, rel=1e-12)
        for j, part in enumerate(time_breakdown.PARTS):
            assert panel.seconds[i, j] == pytest.approx(np.mean([m[part] for m in runs]))
        # Graph mode still traces (compile > 0); this spec has no mode search (init = 0).
        assert panel.seconds[i, 0] > 0 and panel.seconds[i, 1] == 0
        assert panel.seconds[i, 2] > 0 and panel.seconds[i, 3] > 0
    # The quality-vs-speed figure is against the time to result by default, and says so.
    assert quality_vs_speed.prepare(table, "wasserstein_1").cost == "time_to_result_seconds"
    assert look.axis_label("time_to_result_seconds", log=True) == "time to result (s, log scale)"


def test_parent_run_records_spec_config_commit_versions_and_hardware(sweep):
    parent = sweep["parent"]
    tags = parent.data.tags
    for key in (
        "harness.hardware",
        "harness.accelerator",
        "harness.version.tensorflow",
        "harness.version.mlflow",
        "harness.host",
    ):
        assert tags[key], key
    assert tags["harness.accelerator"].startswith(("CPU: ", "GPU: "))
    assert len(tags.get("mlflow.source.git.commit", "")) == 40
    artifacts = {a.path for a in sweep["client"].list_artifacts(parent.info.run_id, "spec")}
    assert {"spec/tiny_report.toml", "spec/resolved_spec.json"} <= artifacts


def test_report_styles_change_figure_size(sweep, tmp_path):
    assert (
        cli.main(
            [
                "report",
                "--experiment",
                "tiny_report",
                "--tracking-uri",
                sweep["uri"],
                "--out",
                str(tmp_path),
                "--style",
                "slides",
                "--model",
                "eight_schools",
                "--metric",
                "mean_z_error_max",
            ]
        )
        == 0
    )
    paper = _png_size(sweep["out"] / "figures" / "khat.png")
    slides = _png_size(tmp_path / "figures" / "khat.png")
    assert slides[0] > paper[0]
    assert (tmp_path / "figures" / "marginals_eight_schools.png").is_file()
    assert r"max \|mean error\|" in (tmp_path / "tables" / "summary.md").read_text()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--experiment", "no_such_experiment"], "no MLflow experiment"),
        (["--experiment", "../escape"], "expected a name of letters"),
        (["--model", "no_such_model"], "no runs here"),
        (["--metric", "no_such_metric"], "was not logged"),
        ([], "give a SPEC"),
    ],
)
def test_report_bad_input_is_one_line_and_exit_2(sweep, tmp_path, capsys, args, message):
    if "--experiment" not in args and args:
        args = [str(sweep["spec"]), *args]
    code = cli.main(["report", *args, "--tracking-uri", sweep["uri"], "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


def _cell_runs(client, name):
    experiment = client.get_experiment_by_name(name)
    return [
        r
        for r in client.search_runs([experiment.experiment_id], max_results=1000)
        if "harness.cell_id" in r.data.tags
    ]


def test_interrupted_sweep_resumes_without_duplicate_finished_runs(
    tmp_path, write_spec, tracking_uri, capsys
):
    text = (
        'name = "resume"\nseeds = {seeds}\nmodels = ["correlated_gaussian"]\n'
        'families = ["mean_field", "full_rank"]\n'
        "[fit]\nnum_steps = 10\nelbo_sample_size = 1000\njit_compile = false\n"
    )
    base = [
        "--tracking-uri",
        tracking_uri,
        "--executor",
        "serial",
        "--results-dir",
        str(tmp_path / "results"),
    ]
    one = write_spec(text.format(seeds="[0]"), "one.toml")
    two = write_spec(text.format(seeds="[0, 1]"), "two.toml")
    client = MlflowClient(tracking_uri)

    assert cli.main(["run", str(one), *base]) == 0
    first = {r.data.tags["harness.cell_id"]: r.info.run_id for r in _cell_runs(client, "resume")}
    assert len(first) == 2
    # The sweep "stopped" after seed 0: running it with both seeds fits only seed 1.
    capsys.readouterr()
    assert cli.main(["run", str(two), *base]) == 0
    assert "skipped 2 cells" in capsys.readouterr().err
    runs = _cell_runs(client, "resume")
    assert len(runs) == 4 and len({r.data.tags["harness.cell_id"] for r in runs}) == 4
    assert {r.info.run_id for r in runs} >= set(first.values())

    # A run lost (deleted) and a run FAILED: both cells are fitted again, the others skipped.
    lost, failed = sorted(r.info.run_id for r in runs if r.data.tags["harness.seed"] == "1")
    lost_cell = client.get_run(lost).data.tags["harness.cell_id"]
    failed_cell = client.get_run(failed).data.tags["harness.cell_id"]
    client.delete_run(lost)
    client.set_terminated(failed, "FAILED")
    assert cli.main(["run", str(two), *base]) == 0
    assert "skipped 2 cells" in capsys.readouterr().err
    runs = _cell_runs(client, "resume")
    finished = [r.data.tags["harness.cell_id"] for r in runs if r.info.status == "FINISHED"]
    assert sorted(finished) == sorted(set(finished)) and len(finished) == 4
    assert {lost_cell, failed_cell} <= set(finished)
    # The report keeps the FINISHED run of the cell that also has a FAILED one.
    table = pd.read_csv(tmp_path / "results" / "resume" / "cells.csv")
    assert len(table) == 4 and failed not in set(table["run_id"])


@pytest.mark.slow
def test_report_in_a_fresh_process_draws_the_same_figures_in_parallel(sweep, tmp_path):
    """``harness report`` (no TensorFlow loaded) draws in forked processes; the PNGs are the
    same bytes as the in-process (serial) report's."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "report",
            "--experiment",
            "tiny_report",
            "--tracking-uri",
            sweep["uri"],
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    for name in FIGURES:
        png = f"figures/{name}.png"
        assert (tmp_path / png).read_bytes() == (sweep["out"] / png).read_bytes(), name


def _first_model_only(table):
    return table[table["model"] == "correlated_gaussian"]


def _count_draws(table, *, model, draws):
    """Pure: the rows and the logged draws' shapes of ``model`` (no drawing)."""
    rows = table[table["model"] == model]
    return model, len(rows), [draws[r]["draws"].shape for r in rows["run_id"]]


def _draw_counts(data, stem, *, style="paper"):
    import matplotlib.pyplot as plt

    model, num_rows, shapes = data
    fig, ax = plt.subplots()
    ax.set_title(f"{model}: {num_rows} cells, draws {shapes[0]}")
    return look.save(fig, stem)


def test_a_figure_registered_is_written_by_the_report(sweep, tmp_path, monkeypatch):
    """Adding a figure is one module and one registry line: a Figure appended to FIGURES is
    prepared with what it declares (its rows, per model, the logged draws) and written by
    write_report next to the others; its applicability predicate decides its models."""
    from harness import figures

    example = figures.Figure(
        "example",
        applies_to=_first_model_only,
        prepare=_count_draws,
        draw=_draw_counts,
        needs=("draws",),
        per_model="each",
    )
    monkeypatch.setattr(figures, "FIGURES", [*figures.FIGURES, example])
    table = report.tidy(_search(sweep))
    files = report.write_report(table, tmp_path, tracking_uri=sweep["uri"])
    names = [p.name for p in files.figures]
    assert names[-2:] == ["example_correlated_gaussian.pdf", "example_correlated_gaussian.png"]
    assert not (tmp_path / "figures" / "example_eight_schools.png").exists()
    assert {f"{n}.png" for n in FIGURES} <= set(names)
    assert (tmp_path / "figures" / "example_correlated_gaussian.png").stat().st_size > 1000
    # The data it drew: the model's four cells and their 300 logged draws of 5 coordinates.
    data = _count_draws(table, model="correlated_gaussian", draws=report._LoggedDraws(sweep["uri"]))
    assert data == ("correlated_gaussian", 4, [(300, 5)] * 4)


def test_a_figure_declares_known_inputs_only():
    from harness import figures

    with pytest.raises(ValueError, match="unknown inputs"):
        figures.Figure("x", figures.every, _count_draws, _draw_counts, needs=("cells",))
    with pytest.raises(ValueError, match="file stem"):
        figures.Figure("a/b", figures.every, _count_draws, _draw_counts)


def test_report_path_never_imports_tensorflow():
    code = (
        "import sys, harness.cli, harness.report, harness.figures, harness.tracking; "
        "print('tensorflow' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
        timeout=120,
    )
    assert out.stdout.strip() == "False"


def test_format_mean_se_rounds_mean_to_the_standard_error():
    assert report.format_mean_se(1.23456, 0.0123) == "1.235 ± 0.012"
    assert report.format_mean_se(-1234.5, 12.0) == "-1234 ± 12"
    assert report.format_mean_se(0.5, float("nan")) == "0.5"
    assert report.format_mean_se(float("nan"), 0.1) == "–"


def test_best_mask_uses_each_metrics_direction():
    index = pd.MultiIndex.from_tuples(
        [("m", "a"), ("m", "b"), ("n", "a")], names=["model", "family"]
    )
    means = pd.DataFrame(
        {"elbo": [-3.0, -1.0, 0.0], "khat": [0.4, 0.9, 1.0], "std_ratio_geomean": [0.5, 1.5, 2.0]},
        index=index,
    )
    mask = report.best_mask(means)
    assert list(mask["elbo"]) == [False, True, True]
    assert list(mask["khat"]) == [True, False, True]
    # |log 1.5| < |log 0.5|: 1.5 is closer to calibrated widths.
    assert list(mask["std_ratio_geomean"]) == [False, True, True]


def test_smooth_is_a_trailing_moving_average():
    values = np.array([1.0, 3.0, 5.0, 7.0])
    assert np.allclose(look.smooth(values, 2), [1.0, 2.0, 4.0, 6.0])
    assert np.allclose(look.smooth(values, 1), values)


def test_tidy_keeps_the_latest_finished_run_per_cell():
    runs = pd.DataFrame(
        {
            "run_id": ["r1", "r2", "r3"],
            "status": ["FINISHED", "FAILED", "FINISHED"],
            "start_time": pd.to_datetime([1, 3, 2], unit="s", utc=True),
            "tags.harness.model": "m",
            "tags.harness.family": ["a", "a", "b"],
            "tags.harness.seed": "0",
            "tags.harness.status": ["ok", "error", "ok"],
            "tags.harness.cell_id": ["c1", "c1", "c2"],
            "tags.harness.family_order": ["1", "1", "0"],
            "metrics.elbo": [1.0, np.nan, 2.0],
        }
    )
    table = report.tidy(runs)
    assert list(table["run_id"]) == ["r3", "r1"]  # family b has registry position 0
    assert list(table["family_pretty_name"]) == ["b", "a"]  # no tag: the name itself
    assert io.StringIO(table.to_csv(index=False)).getvalue().count("\n") == 3


def test_figures_handle_baselines_and_families_unknown_to_the_registry(tmp_path):
    """A baseline (kind != svi) and a family with no registry tags share the axes."""
    rng = np.random.default_rng(0)
    families = [
        ("mean_field", 0.0, "Mean-field", "svi"),
        ("nuts", 9.0, "NUTS", "nuts"),
        ("mystery", np.nan, "mystery", "svi"),
    ]
    rows = [
        {
            "model": model,
            "family": name,
            "seed": seed,
            "status": "ok",
            "run_id": f"{model}-{name}-{seed}",
            "model_pretty_name": model.title(),
            "family_pretty_name": pretty,
            "family_order": order,
            "family_kind": kind,
            "fit_seconds": 10 ** rng.uniform(-1, 2),
            "time_to_result_seconds": 10 ** rng.uniform(0, 2),
            "optimization_seconds": 10 ** rng.uniform(-1, 1),
            "wasserstein_1": rng.uniform(0.05, 1),
            "khat": rng.uniform(0, 1.2),
            "std_ratio_geomean": rng.uniform(0.3, 1.2),
        }
        for model in ("alpha", "beta")
        for name, order, pretty, kind in families
        for seed in (0, 1)
    ]
    table = pd.DataFrame(rows)
    styles = look.family_styles(table)
    assert list(styles) == ["mean_field", "nuts", "mystery"]
    assert styles["nuts"]["baseline"] and styles["nuts"]["facecolor"] == "white"
    assert styles["mystery"]["color"] == look.UNKNOWN_COLOR
    t = np.linspace(0.01, 5, 50)
    histories = pd.DataFrame(
        [
            {"run_id": r["run_id"], "seconds": s, "loss": 10 + 1 / s}
            for r in rows
            if r["family"] != "nuts"
            for s in t
        ]
    )
    paths = [
        *quality_vs_speed.plot(table, tmp_path / "q", "wasserstein_1"),
        *elbo_vs_time.plot(histories, table, tmp_path / "e"),
        *khat_heatmap.plot(table, tmp_path / "k"),
        *std_ratio.plot(table, tmp_path / "s"),
        *time_breakdown.plot(table, tmp_path / "t"),
        *marginals.plot(
            {"mean_field": rng.normal(size=(200, 3))},
            None,
            tmp_path / "m",
            table=table,
            title="Alpha",
        ),
    ]
    assert len(paths) == 12 and all(p.stat().st_size > 3000 for p in paths)


def test_configurations_of_one_family_are_separate_summary_rows():
    """Two NUTS budgets (or any hyperparameter grid) never average into one row."""
    import pandas as pd

    from harness import report

    rows = []
    for budget in (1000, 4000):
        for seed in (0, 1):
            rows.append(
                {
                    "run_id": f"r{budget}{seed}",
                    "status": "FINISHED",
                    "start_time": pd.Timestamp(2026, 1, 1),
                    "tags.harness.model": "banana",
                    "tags.harness.family": "nuts",
                    "tags.harness.seed": str(seed),
                    "tags.harness.status": "ok",
                    "tags.harness.cell_id": f"c{budget}{seed}",
                    "params.model": "banana",
                    "params.family": "nuts",
                    "params.seed": str(seed),
                    "params.family.num_draws": str(budget),
                    "params.num_steps": "1000",
                    "metrics.fit_seconds": budget / 1000 + seed,
                }
            )
    table = report.tidy(pd.DataFrame(rows))
    assert set(table["variant"]) == {"num_draws=1000", "num_draws=4000"}
    stats = report.summary(table, ["fit_seconds"])
    assert len(stats) == 2
    means = stats["mean"]["fit_seconds"]
    assert means.loc[("banana", "nuts", "num_draws=1000")] == 1.5
    assert means.loc[("banana", "nuts", "num_draws=4000")] == 4.5
    markdown, _ = report.summary_tables(table, "fit_seconds")
    assert "nuts (num_draws=1000)" in markdown and "nuts (num_draws=4000)" in markdown
