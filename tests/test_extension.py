"""Extending the harness is one new file and one registry line each (docs/architecture.md):
a model, a family, a metric and a figure written as a user would (tests/extension/), each
registered with one line, flow through a real sweep into the MLflow runs, the tables and the
report."""

from __future__ import annotations

import pandas as pd
import pytest

from harness import cli, report, tracking
from harness.families import FAMILIES, Family
from harness.metrics import catalog
from harness.models import REGISTRY, ModelEntry
from tests.extension.example_family import build_example_family
from tests.extension.example_figure import EXAMPLE_FIGURE
from tests.extension.example_metric import worst_z
from tests.extension.example_model import example_gaussian

SPEC = """\
name = "extension"
seeds = [0]
models = ["example_gaussian"]
families = ["example_family", "mean_field"]

[fit]
num_steps = 200
stopping = "budget"
learning_rate = 0.05
learning_rate_schedule = "constant"
sample_size = 4
elbo_sample_size = 1000
"""


@pytest.fixture
def registered(monkeypatch):
    """The four registry lines (as a user writes them in the registries' modules)."""
    from harness import figures

    monkeypatch.setitem(
        REGISTRY,
        "example_gaussian",
        ModelEntry(example_gaussian, ranges={}, particle_size=lambda a: 2),
    )
    monkeypatch.setitem(
        FAMILIES,
        "example_family",
        Family("example_family", "Example family", build_example_family, {"initial_scale": 0.5}),
    )
    monkeypatch.setattr(
        catalog,
        "CATALOG",
        (
            *catalog.CATALOG,
            catalog.MetricInfo(
                "example_worst_z",
                "worst |z| (reference sd)",
                r"worst $|z|$ (sd)",
                "lower",
                quality=True,
                compute=worst_z,
            ),
        ),
    )
    monkeypatch.setattr(figures, "FIGURES", [*figures.FIGURES, EXAMPLE_FIGURE])
    # What the registries derive from those lines.
    import harness.models as models

    monkeypatch.setitem(models.MODELS, "example_gaussian", example_gaussian)
    monkeypatch.setitem(catalog.METRICS, "example_worst_z", catalog.CATALOG[-1])


def test_a_new_model_family_metric_and_figure_flow_through(registered, write_spec, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = write_spec(SPEC)
    assert (
        cli.main(
            [
                "run",
                str(spec),
                "--executor",
                "serial",
                "--tracking-uri",
                uri,
                "--results-dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    # The MLflow runs: the new family on the new model, with the new metric.
    runs = tracking.search_cells("extension", uri)
    cells = runs[runs["tags.harness.family"] == "example_family"]
    assert len(cells) == 1 and set(cells["tags.harness.model"]) == {"example_gaussian"}
    assert cells["metrics.example_worst_z"].notna().all()
    assert set(cells["tags.harness.model_pretty_name"]) == {"Example Gaussian"}
    # cells.csv and the summary table (the new metric as the report's quality metric: its
    # catalog label, and its direction choosing the best).
    out = tmp_path / "report"
    table = report.tidy(runs)
    files = report.write_report(table, out, quality_metric="example_worst_z", tracking_uri=uri)
    frame = pd.read_csv(files.cells_csv)
    assert {"example_family", "mean_field"} <= set(frame["family"])
    assert frame["example_worst_z"].notna().all()
    summary = (out / "tables" / "summary.md").read_text()
    # (Markdown escapes the label's pipes.)
    assert "worst \\|z\\| (reference sd)" in summary and "Example family" in summary
    # The report walked the figure registry: the new figure was drawn from the table.
    assert (out / "figures" / "example_worst_z.png").is_file()
    assert any(p.name == "example_worst_z.png" for p in files.figures)


def test_the_example_metric_is_what_it_says():
    """The example metric computes its definition (so the flow test checks a real value)."""
    import numpy as np

    model = example_gaussian()
    draws = np.array([[1.0, -1.0], [3.0, -1.0]])  # mean (2, -1): z = (0.5, 0)
    sample = catalog.PosteriorSample(model, draws, np.zeros(2))
    assert worst_z(sample) == pytest.approx(0.5)
