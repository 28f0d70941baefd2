"""Report verdicts on constructed tables: each metric kind's direction, ties within two
standard errors, single seeds, cells left out, grid variants, and the LaTeX table as
``pdflatex`` sets it.

The tables are built by hand (no fits), so every expected mark follows from the numbers.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from harness import report
from harness.figures import quality_vs_speed
from harness.figures import style as look
from harness.metrics import catalog


def _table(values: dict[str, dict[str, list[float]]], statuses=None, model="m") -> pd.DataFrame:
    """A tidy table: family → metric → one value per seed (NaN: no value)."""
    rows = []
    for order, (family, metrics) in enumerate(values.items()):
        n = len(next(iter(metrics.values())))
        for seed in range(n):
            status = (statuses or {}).get(family, ["ok"] * n)[seed]
            rows.append(
                {
                    "model": model,
                    "family": family,
                    "variant": "",
                    "seed": seed,
                    "status": status,
                    "run_id": f"{model}-{family}-{seed}",
                    "model_pretty_name": model.upper(),
                    "family_pretty_name": family.title(),
                    "family_order": float(order),
                    "family_kind": "svi",
                    **{m: (v[seed] if status == "ok" else np.nan) for m, v in metrics.items()},
                }
            )
    return pd.DataFrame(rows)


def _marks(table: pd.DataFrame, metric: str) -> dict[str, bool]:
    stats = report.summary(table, [metric])
    mask = report.best_mask(stats["mean"], stats["standard_error"])[metric]
    return {family: bool(v) for (_, family, _), v in mask.items()}


@pytest.mark.parametrize(
    "metric, values, best",
    [
        # higher is better
        ("elbo", {"a": [-3.0, -3.01], "b": [-1.0, -1.01]}, {"b"}),
        # lower is better
        ("wasserstein_1", {"a": [0.10, 0.11], "b": [0.50, 0.51]}, {"a"}),
        # closest to 0.9: 0.95 beats 0.99 and 0.80
        ("coverage_90", {"a": [0.80, 0.80], "b": [0.95, 0.95], "c": [0.99, 0.99]}, {"b"}),
        # closest to 0.5: the overconfident (smallest) family does not win
        ("coverage_50", {"a": [0.10, 0.11], "b": [0.45, 0.46]}, {"b"}),
        # ratio closest to 1 on the log scale: 1.5 (|log| 0.41) beats 0.5 (0.69)
        ("std_ratio_min", {"a": [0.5, 0.5], "b": [1.5, 1.5]}, {"b"}),
        ("std_ratio_geomean", {"a": [0.2, 0.21], "b": [4.0, 4.1]}, {"b"}),
        # a bound on log Z: the largest is best
        ("elbo_likelihood_kl", {"a": [-10.0, -10.1], "b": [-5.0, -5.1]}, {"b"}),
        ("converged", {"a": [1.0, 1.0], "b": [0.0, 1.0]}, {"a", "b"}),
    ],
)
def test_best_follows_each_metric_kinds_direction(metric, values, best):
    marks = _marks(_table({f: {metric: v} for f, v in values.items()}), metric)
    assert {f for f, m in marks.items() if m} == best


def test_results_within_two_standard_errors_share_the_mark():
    # b's mean is best (−0.56) but its standard error is 0.18: a at −0.7345 ± 0.0051 is
    # 0.17 away, within 2·√(0.18² + 0.0051²) = 0.36, so both are marked; c is 3 nats away.
    b = [-0.38, -0.74]  # mean −0.56, sd 0.2546, se 0.18
    a = [-0.7345 - 0.0051, -0.7345 + 0.0051]
    c = [-3.6, -3.5]
    marks = _marks(_table({"a": {"elbo": a}, "b": {"elbo": b}, "c": {"elbo": c}}), "elbo")
    assert marks == {"a": True, "b": True, "c": False}
    # With tight errors only the best is marked.
    marks = _marks(_table({"a": {"elbo": [-0.73, -0.74]}, "b": {"elbo": [-0.55, -0.56]}}), "elbo")
    assert marks == {"a": False, "b": True}


def test_exact_ties_are_all_marked_and_metrics_without_direction_never():
    table = _table(
        {
            "a": {"khat": [0.3, 0.3], "peak_memory_mb": [1.0, 2.0]},
            "b": {"khat": [0.3, 0.3], "peak_memory_mb": [3.0, 4.0]},
        }
    )
    assert _marks(table, "khat") == {"a": True, "b": True}
    assert catalog.info("num_steps_run").direction == "none"
    table = _table({"a": {"num_steps_run": [10.0, 10.0]}, "b": {"num_steps_run": [20.0, 20.0]}})
    assert _marks(table, "num_steps_run") == {"a": False, "b": False}


def test_left_out_cells_are_counted_and_a_single_seed_best_is_footnoted():
    table = _table(
        {
            "a": {"wasserstein_1": [0.10, 0.0, 0.0]},  # two seeds diverged / failed
            "b": {"wasserstein_1": [0.30, 0.31, 0.32]},
            "c": {"wasserstein_1": [0.0, 0.0]},  # every seed diverged
        },
        statuses={"a": ["ok", "diverged", "error"], "c": ["diverged", "diverged"]},
    )
    counts = report.status_counts(table)
    assert counts.loc[("m", "a", "")].to_dict() == {
        "total": 3,
        "ok": 1,
        "diverged": 1,
        "error": 1,
        "unconverged": 0,
    }
    stats = report.summary(table, ["wasserstein_1"])
    assert len(stats) == 3  # c keeps its row
    assert stats["num_seeds"]["wasserstein_1"].tolist() == [1, 3, 0]
    markdown, latex = report.summary_tables(table, "wasserstein_1")
    rows = {r[1]: r for r in _md_rows(markdown)}
    assert rows["A"][2] == "1 of 3" and rows["A"][-1] == "1 diverged, 1 error"
    assert rows["A"][3].startswith("**") and "†" in rows["A"][3]
    assert rows["C"][2] == "0 of 2" and rows["C"][3] == "–" and rows["C"][-1] == "2 diverged"
    assert "† one seed" in markdown
    assert r"$^\dagger$" in latex and "one seed" in latex


def test_unconverged_cells_are_counted_and_kept_in_the_mean():
    table = _table({"a": {"elbo": [-1.0, -2.0], "converged": [1.0, 0.0]}})
    assert report.status_counts(table).loc[("m", "a", ""), "unconverged"] == 1
    assert report.summary(table, ["elbo"])["mean"]["elbo"].iloc[0] == -1.5
    markdown, _ = report.summary_tables(table, "elbo")
    assert "1 unconverged (in mean)" in markdown


def _md_rows(markdown: str) -> list[list[str]]:
    lines = [line for line in markdown.splitlines() if line.startswith("|")][2:]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines]


def test_pareto_front_follows_the_metric_direction():
    cost = np.array([1.0, 2.0, 3.0, 4.0])
    # ELBO: higher is better, so the slower, better points are on the front.
    assert list(catalog.pareto_front(cost, np.array([-5.0, -3.0, -4.0, -1.0]), "elbo")) == [0, 1, 3]
    # Lower is better: (3, 4) is dominated by (2, 3).
    x = np.array([1.0, 2.0, 3.0, 4.0, 2.5])
    y = np.array([5.0, 3.0, 4.0, 1.0, 2.0])
    assert list(catalog.pareto_front(x, y, "wasserstein_1")) == [0, 1, 4, 3]
    # Closest to 0.9: 0.99 (0.09 away) is dominated by the cheaper 0.85 (0.05 away).
    cov = np.array([0.5, 0.85, 0.99, 0.9])
    assert list(catalog.pareto_front(cost, cov, "coverage_90")) == [0, 1, 3]


def test_grid_variants_stay_apart_with_distinct_labels(tmp_path):
    table = pd.concat(
        [
            _table({"mean_field": {"wasserstein_1": [w, w], "fit_seconds": [t, t]}}).assign(
                variant=v, run_id=lambda d, v=v: d["run_id"] + v
            )
            for v, w, t in (("learning_rate=0.1", 0.5, 1.0), ("learning_rate=0.01", 0.2, 5.0))
        ],
        ignore_index=True,
    )
    styles = look.series_styles(table)
    labels = [s["label"] for s in styles.values()]
    assert labels == ["Mean_Field (learning_rate=0.1)", "Mean_Field (learning_rate=0.01)"]
    assert len({s["color"] for s in styles.values()}) == 2
    # The figure's family means are the two configurations', not their average.
    (panel,) = quality_vs_speed.prepare(table, "wasserstein_1").panels
    means = panel.means
    assert sorted(zip(means["fit_seconds"], means["wasserstein_1"], strict=True)) == [
        (1.0, 0.5),
        (5.0, 0.2),
    ]
    assert list(means.index) == list(styles)


def test_latex_table_compiles_with_pdflatex(tmp_path):
    """Negative numbers, a single-seed best, left-out cells, a grid variant with ``_`` and
    ``=`` in its name, exponents and every catalog label set by a real pdflatex."""
    pdflatex = shutil.which("pdflatex")
    assert pdflatex, "pdflatex not found: install TeX Live (.ci/run does, from Debian packages)"
    values = {
        "a": {"elbo": [-0.56, -0.74, -0.70], "wasserstein_1": [1e-5, 2e-5, 3e-5]},
        "b": {"elbo": [-1.2e5], "wasserstein_1": [4e-5]},  # one seed
        "c": {"elbo": [0.0, 0.0], "wasserstein_1": [0.0, 0.0]},
    }
    for v in values.values():
        v["coverage_90"] = [0.9] * len(v["elbo"])
    table = _table(values, statuses={"c": ["diverged", "error"]})
    table.loc[table["family"] == "b", "variant"] = "num_draws=1_000 & more"
    table["model_pretty_name"] = "Eight schools (d=10) · 100% × ‖q‖"
    _, latex = report.summary_tables(table, "wasserstein_1")
    assert latex.count(r"\bottomrule") == 1 and r"\cline" not in latex
    labels = " & ".join(m.latex for m in catalog.CATALOG)
    (tmp_path / "table.tex").write_text(latex)
    (tmp_path / "doc.tex").write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n"
        "\\begin{document}\n\\input{table.tex}\n\n"
        f"\\begin{{tabular}}{{{'l' * len(catalog.CATALOG)}}}{labels}\\end{{tabular}}\n"
        "\\end{document}\n"
    )
    out = subprocess.run(
        [pdflatex, "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    log = (tmp_path / "doc.log").read_text(errors="replace")
    assert out.returncode == 0, out.stdout[-3000:]
    assert "Missing character" not in log
    assert (tmp_path / "doc.pdf").stat().st_size > 1000
    # Negative numbers are set in math (a minus sign), never as a text hyphen.
    text = re.sub(r"\$[^$]*\$", "", latex)
    assert "$-0.6" in latex and not re.search(r"-[0-9]", text)


def test_sweep_note_counts_outcomes_and_names_the_best_family_with_its_margin():

    table = _table(
        {
            "a": {"wasserstein_1": [0.10, 0.12, 0.0], "converged": [1.0, 0.0, 0.0]},
            "b": {"wasserstein_1": [0.30, 0.34, 0.0], "converged": [1.0, 1.0, 0.0]},
        },
        statuses={"a": ["ok", "ok", "diverged"], "b": ["ok", "ok", "error"]},
    )
    markdown, _ = report.summary_tables(table, "wasserstein_1")
    note = report.sweep_note(table, markdown, "wasserstein_1")
    assert note.startswith("**6 cells**: 4 ok, 1 diverged, 1 unconverged, 1 error")
    # a: 0.11 ± 0.01; b: 0.32 ± 0.02; margin 0.21 ± √(0.01² + 0.02²) = 0.02236.
    assert (
        "- **M**: A, W₁ to reference (reference sd) 0.11 ± 0.01; ahead of B by 0.21 ± 0.02236"
        in note
    )
    assert markdown in note


def test_cell_verdict_is_one_line_per_status():
    from types import SimpleNamespace

    from harness import verdicts

    ok = SimpleNamespace(
        status="ok",
        reason="",
        metrics={"khat": 0.42, "wasserstein_1": 0.125, "elbo": -3.0, "fit_seconds": 2.0},
        converged=False,
        convergence_reason="hit the budget of 200 steps",
    )
    assert verdicts.cell_verdict(ok, "good") == (
        "**ok** · not converged (hit the budget of 200 steps) · k̂ 0.42 (good, < 0.5) · "
        "W₁ to reference (reference sd): 0.125 · fit 2 s"
    )
    # The time to result (compilation included) replaces the fit time where it was logged.
    ok.metrics["time_to_result_seconds"] = 7.25
    assert verdicts.cell_verdict(ok, "good").endswith("0.125 · time to result 7.25 s")
    error = SimpleNamespace(status="error", reason="ValueError: x\nTraceback ...", metrics={})
    assert verdicts.cell_verdict(error) == "**error**: ValueError: x"
    diverged = SimpleNamespace(status="diverged", reason="loss not finite at step 3", metrics={})
    assert verdicts.cell_verdict(diverged) == "**diverged**: loss not finite at step 3"


def test_best_marks_consider_converged_results_only():
    # b has the better ELBO but one of its seeds did not converge: a comparison never rests on
    # an unfinished fit, so a is best; the table still shows b's mean and counts it.
    table = _table(
        {
            "a": {"elbo": [-3.0, -3.01], "converged": [1.0, 1.0]},
            "b": {"elbo": [-1.0, -1.01], "converged": [1.0, 0.0]},
        }
    )
    stats = report.summary(table, ["elbo"])
    mask = report.best_mask(stats["mean"], stats["standard_error"], report.converged_groups(table))
    assert {f: bool(v) for (_, f, _), v in mask["elbo"].items()} == {"a": True, "b": False}
    markdown, latex = report.summary_tables(table, "elbo")
    assert "1 unconverged" in markdown
    assert report.NO_CONVERGED_NOTE not in markdown
    # With no converged configuration at all, nothing is marked and a note says so.
    table["converged"] = 0.0
    markdown, latex = report.summary_tables(table, "elbo")
    assert "**" not in markdown and "\\boldmath" not in latex
    assert f"{report.NO_CONVERGED_NOTE}: M" in markdown
    assert report.NO_CONVERGED_NOTE in latex


def test_unconverged_fits_are_crossed_and_left_off_the_front(tmp_path, monkeypatch):
    table = _table(
        {
            "a": {"wasserstein_1": [0.3, 0.31], "fit_seconds": [1.0, 1.1], "converged": [1, 1]},
            "b": {"wasserstein_1": [0.1, 0.11], "fit_seconds": [0.5, 0.6], "converged": [0, 0]},
        }
    )
    assert quality_vs_speed.unconverged(table).tolist() == [False, False, True, True]
    data = quality_vs_speed.prepare(table, "wasserstein_1")
    assert data.any_unconverged and data.panels[0].front[0].size == 0
    drawn = []
    original = look.save

    def keep(fig, stem):
        drawn.append(fig)
        return original(fig, stem)

    monkeypatch.setattr(look, "save", keep)
    paths = quality_vs_speed.draw(data, tmp_path / "q")
    assert any(p.suffix == ".png" and p.stat().st_size > 0 for p in paths)
    ax = drawn[0].axes[0]
    # b's two seeds and its mean are crossed; no front line: only a converged (one series).
    crossed = [c for c in ax.collections if c.get_offsets().shape[0] and _is_cross(c)]
    assert sum(c.get_offsets().shape[0] for c in crossed) == 3
    assert not ax.lines
    legend = [t.get_text() for t in drawn[0].legends[0].get_texts()]
    assert "not converged (crossed)" in legend


def _is_cross(collection) -> bool:
    """Whether a scatter collection draws the 'x' marker (its path has two strokes)."""
    path = collection.get_paths()[0]
    return len(path.vertices) == 4 and path.codes is not None and list(path.codes) == [1, 2, 1, 2]
