"""Spec loading, validation and expansion."""

from __future__ import annotations

import pytest

from harness import cli, spec
from harness.families import FAMILIES
from harness.models import MODELS
from tests.conftest import REPO

GOOD = """
name = "tiny"
seeds = [0, 1]
models = ["correlated_gaussian", { name = "banana", curvature = 0.05 }]
families = ["mean_field", { name = "iaf", num_layers = 1 }]
[fit]
num_steps = 10
learning_rate = [0.01, 0.003]
"""


def test_expands_full_grid(write_spec):
    s = spec.load(write_spec(GOOD))
    cells = s.cells()
    assert len(cells) == 2 * 2 * 2 * 2
    assert len({c.cell_id for c in cells}) == len(cells)
    banana = [c for c in cells if c.model == "banana"][0]
    assert dict(banana.model_args)["curvature"] == 0.05
    iaf = [c for c in cells if c.family == "iaf"][0]
    # Defaults are filled in, so the identity is the whole configuration.
    assert dict(iaf.hyperparameters) == {**FAMILIES["iaf"].hyperparameters, "num_layers": 1}


def test_cell_id_is_stable_and_seed_sensitive(write_spec):
    a = spec.load(write_spec(GOOD)).cells()
    b = spec.load(write_spec(GOOD, "again.toml")).cells()
    assert [c.cell_id for c in a] == [c.cell_id for c in b]
    assert a[0].cell_id != a[1].cell_id  # seeds 0 and 1
    assert a[0].stateless_seed != a[1].stateless_seed


def test_overrides_apply_before_validation(write_spec):
    s = spec.load(write_spec(GOOD), ["fit.num_steps=3", "seeds=[5]", "fit.learning_rate=0.1"])
    assert {c.fit.num_steps for c in s.cells()} == {3}
    assert {c.seed for c in s.cells()} == {5}
    with pytest.raises(spec.SpecError, match="fit.num_steps"):
        spec.load(write_spec(GOOD), ["fit.num_steps=0"])


@pytest.mark.parametrize(
    "text, key, hint",
    [
        ('models = ["bananna"]\nfamilies = ["mean_field"]', "models[0]", "did you mean 'banana'"),
        ('models = ["banana"]\nfamilies = ["full_rnk"]', "families[0]", "did you mean 'full_rank'"),
        (
            'modles = ["banana"]\nmodels = ["banana"]\nfamilies = ["mean_field"]',
            "modles",
            "did you mean 'models'",
        ),
        (
            'models = ["banana"]\nfamilies = ["mean_field"]\n[fit]\nnum_step = 3',
            "fit.num_step",
            "did you mean 'num_steps'",
        ),
        (
            'models = ["banana"]\nfamilies = ["mean_field"]\n[fit]\nnum_steps = "many"',
            "fit.num_steps",
            "expected an integer",
        ),
        (
            'models = ["banana"]\nfamilies = [{ name = "iaf", num_layers = 1.5 }]',
            "families[0].num_layers",
            "expected an integer",
        ),
        (
            'models = ["banana"]\nfamilies = ["mean_field"]\nseeds = "0"',
            "seeds",
            "list of integers",
        ),
        (
            'models = ["banana"]\nfamilies = ["mean_field"]\n[fit]\nlearning_rate = -1.0',
            "fit.learning_rate",
            "must be > 0",
        ),
        ('models = []\nfamilies = ["mean_field"]', "models", "non-empty"),
        ('models = ["banana"\nfamilies = ["mean_field"]', "", "malformed TOML"),
    ],
)
def test_bad_spec_exits_2_with_clear_message_and_logs_nothing(
    write_spec, tracking_uri, tmp_path, capsys, text, key, hint
):
    path = write_spec(text)
    code = cli.main(
        [
            "run",
            str(path),
            "--tracking-uri",
            tracking_uri,
            "--results-dir",
            str(tmp_path / "results"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert str(path) in err and key in err and hint in err, err
    assert not (tmp_path / "mlflow.db").exists()
    assert not (tmp_path / "results").exists()


def test_unknown_model_lists_valid_choices(write_spec):
    """The first valid names in order and how many there are (one line: `harness list`
    shows them all)."""
    with pytest.raises(spec.SpecError) as e:
        spec.load(write_spec('models = ["nope"]\nfamilies = ["mean_field"]'))
    assert sorted(MODELS)[0] in str(e.value)
    assert f"({len(MODELS)} in all)" in str(e.value)


def test_dry_run_prints_plan(write_spec, capsys, tracking_uri, tmp_path):
    assert (
        cli.main(["run", str(write_spec(GOOD)), "--dry-run", "--tracking-uri", tracking_uri]) == 0
    )
    out = capsys.readouterr().out
    assert "= 16 cells" in out
    assert "banana/iaf/1" in out
    assert not (tmp_path / "mlflow.db").exists()


def test_metrics_table_is_validated_and_part_of_the_cell_identity(write_spec):
    default = spec.load(write_spec(GOOD)).cells()[0]
    assert default.metrics == spec.MetricSettings()
    custom = spec.load(write_spec(GOOD + "[metrics]\niw_elbo_k = 16\n", "k16.toml")).cells()[0]
    assert custom.metrics.iw_elbo_k == 16
    assert custom.cell_id != default.cell_id  # other metrics: another cell, not a resumed one
    # The setting was renamed; the identity keeps its first name, so no cell id changed.
    assert default.identity["metrics"] == {"importance_sample_size": 64}
    for bad, message in [
        ("iw_elbo_k = 0", "must be > 0"),
        ("iw_elbo_k = [8, 16]", "expected an integer"),
        ("iw_elbo_kk = 8", "did you mean 'iw_elbo_k'"),
        ("importance_sample_size = 8", "is now metrics.iw_elbo_k"),
    ]:
        with pytest.raises(spec.SpecError, match=message):
            spec.load(write_spec(GOOD + f"[metrics]\n{bad}\n", "bad.toml"))


def test_every_numeric_model_argument_and_hyperparameter_has_a_declared_range():
    """A new model argument or hyperparameter must say which values it takes."""
    import inspect

    from harness.families import FAMILIES, hyperparameter_ranges
    from harness.models import ARGUMENT_RANGES, MODELS

    for name, factory in MODELS.items():
        for arg, p in inspect.signature(factory).parameters.items():
            if isinstance(p.default, (int, float, str)) and not isinstance(p.default, bool):
                assert arg in ARGUMENT_RANGES.get(name, {}), (name, arg)
                allowed = ARGUMENT_RANGES[name][arg]
                assert p.default in allowed, (name, arg, p.default)
    for family in FAMILIES.values():
        for hp, default in family.hyperparameters.items():
            if isinstance(default, (int, float)) and not isinstance(default, bool):
                assert default in hyperparameter_ranges(family.name)[hp], (family.name, hp)


def test_negative_correlation_is_accepted_and_builds(write_spec):
    path = write_spec(
        """
        models = [{ name = "correlated_gaussian", correlation = -0.5, dimension = 3 }]
        families = ["mean_field"]
        """
    )
    ((name, args),) = spec.load(path).models
    from harness.models import build_model

    model = build_model(name, **dict(args))
    assert dict(args)["correlation"] == -0.5 and model.dimension == 3


def test_particle_sizes_match_the_built_models():
    """The resource check's elements per particle are at least each model's dimension."""
    import inspect

    from harness.models import MODELS, particle_size

    for name in MODELS:
        args = {k: p.default for k, p in inspect.signature(MODELS[name]).parameters.items()}
        assert particle_size(name, args) is not None, f"{name}: give its ModelEntry a particle_size"
    for name in ("correlated_gaussian", "banana", "linear_regression", "eight_schools"):
        factory = MODELS[name]
        args = {k: p.default for k, p in inspect.signature(factory).parameters.items()}
        assert particle_size(name, args) >= factory().dimension, name


def test_an_optimizer_axis_applies_to_the_families_that_have_one():
    """experiments/methods.toml: with optimizer = ["adam", "saa"], SAA's cells are left out for
    the families it does not fit and for the baselines (their Adam cells stand for them); with
    saa alone, an unsupported family is refused."""
    from collections import Counter

    cells = spec.load(REPO / "experiments" / "methods.toml").cells()
    counts = Counter((c.family, c.fit.optimizer) for c in cells)
    seeds_models = 2 * 4
    for family in ("mean_field", "full_rank"):
        assert counts[(family, "adam")] == counts[(family, "saa")] == seeds_models
    # The flow is left out of SAA (it overfits fixed draws, docs/saa.md), as are the mixture
    # and the baselines.
    for family in ("real_nvp", "gaussian_mixture", "laplace", "nuts"):
        assert counts[(family, "adam")] == seeds_models and counts[(family, "saa")] == 0
    assert counts[("pathfinder", "adam")] == 2 * seeds_models  # two entries
    assert len(cells) == sum(counts.values()) == 10 * seeds_models


def test_cell_labels_tell_apart_cells_of_one_model_family_and_seed(write_spec):
    # Two Pathfinder configurations and two optimizers: model/family/seed alone would print
    # the same name twice in the console; the label adds what differs, and only that.
    s = spec.load(
        write_spec(
            """
name = "labels"
seeds = [0]
models = ["correlated_gaussian"]
families = ["full_rank", "pathfinder", { name = "pathfinder", num_paths = 4 }]
[fit]
optimizer = ["adam", "saa"]
"""
        )
    )
    cells = s.cells()
    labels = spec.cell_labels(cells)
    assert len(set(labels.values())) == len(cells) == 4, labels
    by_family = {}
    for cell in cells:
        by_family.setdefault(cell.family, []).append(labels[cell.cell_id])
    assert sorted(by_family["full_rank"]) == [
        "correlated_gaussian/full_rank/0 (optimizer=adam)",
        "correlated_gaussian/full_rank/0 (optimizer=saa)",
    ]
    assert sorted(by_family["pathfinder"]) == [
        "correlated_gaussian/pathfinder/0 (num_paths=1)",
        "correlated_gaussian/pathfinder/0 (num_paths=4)",
    ]
    # A grid with one cell per name keeps the plain name.
    single = spec.cell_labels(cells[:1])
    assert single == {cells[0].cell_id: cells[0].run_name}
