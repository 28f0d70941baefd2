"""Bad input: every malformed spec or flag exits 2 with one line naming the file, the key and what
is allowed, before anything is fitted, logged or written."""

from __future__ import annotations

import numpy as np
import pytest

from harness import cli

OK_MODELS = 'models = ["banana"]\nfamilies = ["mean_field"]\n'
FIT = OK_MODELS + "[fit]\n"

# (spec text, extra CLI arguments, substrings the one-line message must contain).  "{path}" in
# a substring stands for the spec file's path.
CASES = {
    # --- the file itself
    "malformed_toml": (
        'models = ["banana"\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "malformed TOML", "line 2"],
    ),
    "duplicate_toml_key": (
        OK_MODELS + 'models = ["banana"]\n',
        [],
        ["{path}", "malformed TOML", "line 3"],
    ),
    "not_utf8": (b"\xff\xfe\x00models", [], ["{path}", "UTF-8"]),
    "missing_file": (None, [], ["{path}", "no such spec file"]),
    # --- unknown keys and names, with the closest valid one
    "unknown_top_key": (
        'modles = ["banana"]\n' + OK_MODELS,
        [],
        ["{path}", "'modles'", "did you mean 'models'"],
    ),
    "unknown_fit_key": (
        FIT + "num_step = 3\n",
        [],
        ["{path}", "'fit.num_step'", "did you mean 'num_steps'"],
    ),
    "unknown_metrics_key": (
        OK_MODELS + "[metrics]\nimportance_sample = 8\n",
        [],
        ["{path}", "'metrics.importance_sample'", "did you mean 'importance_sample_size'"],
    ),
    "unknown_resources_key": (
        OK_MODELS + "[resources]\ncpus = 1\n",
        [],
        ["{path}", "'resources.cpus'", "cpus_per_task"],
    ),
    "unknown_model": (
        'models = ["bananna"]\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models[0]'", "did you mean 'banana'", "valid:"],
    ),
    "unknown_family": (
        'models = ["banana"]\nfamilies = ["full_rnk"]\n',
        [],
        ["{path}", "'families[0]'", "did you mean 'full_rank'"],
    ),
    "unknown_model_argument": (
        'models = [{ name = "banana", curvatur = 0.1 }]\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models[0].curvatur'", "did you mean 'curvature'"],
    ),
    "unknown_hyperparameter": (
        'models = ["banana"]\nfamilies = [{ name = "iaf", num_layer = 2 }]\n',
        [],
        ["{path}", "'families[0].num_layer'", "did you mean 'num_layers'"],
    ),
    # --- wrong types
    "num_steps_string": (
        FIT + 'num_steps = "many"\n',
        [],
        ["{path}", "'fit.num_steps'", "expected an integer"],
    ),
    "num_steps_bool": (
        FIT + "num_steps = true\n",
        [],
        ["{path}", "'fit.num_steps'", "expected an integer"],
    ),
    "num_steps_float": (
        FIT + "num_steps = 10.5\n",
        [],
        ["{path}", "'fit.num_steps'", "expected an integer"],
    ),
    "learning_rate_string": (
        FIT + 'learning_rate = "fast"\n',
        [],
        ["{path}", "'fit.learning_rate'", "expected a number"],
    ),
    "jit_compile_string": (
        FIT + 'jit_compile = "yes"\n',
        [],
        ["{path}", "'fit.jit_compile'", "expected true or false"],
    ),
    "hyperparameter_float": (
        'models = ["banana"]\nfamilies = [{ name = "iaf", num_layers = 1.5 }]\n',
        [],
        ["{path}", "'families[0].num_layers'", "expected an integer"],
    ),
    "model_argument_string": (
        'models = [{ name = "correlated_gaussian", dimension = "five" }]\n'
        'families = ["mean_field"]\n',
        [],
        ["{path}", "'models[0].dimension'", "expected an integer"],
    ),
    "fit_not_table": (OK_MODELS + "fit = 3\n", [], ["{path}", "'fit'", "expected a table"]),
    "models_not_list": (
        'models = "banana"\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models'", "non-empty list"],
    ),
    "model_entry_without_name": (
        'models = [{ dimension = 3 }]\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models[0]'", "table with 'name'"],
    ),
    "description_number": (
        OK_MODELS + "description = 3\n",
        [],
        ["{path}", "'description'", "expected a string"],
    ),
    "seeds_string": (
        OK_MODELS + 'seeds = "0"\n',
        [],
        ["{path}", "'seeds'", "list of integers >= 0"],
    ),
    # --- out of range
    "num_steps_zero": (FIT + "num_steps = 0\n", [], ["{path}", "'fit.num_steps'", "must be > 0"]),
    "num_steps_negative": (
        FIT + "num_steps = -5\n",
        [],
        ["{path}", "'fit.num_steps'", "must be > 0"],
    ),
    "learning_rate_zero": (
        FIT + "learning_rate = 0.0\n",
        [],
        ["{path}", "'fit.learning_rate'", "must be > 0"],
    ),
    "learning_rate_negative_in_grid": (
        FIT + "learning_rate = [0.01, -1.0]\n",
        [],
        ["{path}", "'fit.learning_rate'", "must be > 0"],
    ),
    "sample_size_zero": (
        FIT + "sample_size = 0\n",
        [],
        ["{path}", "'fit.sample_size'", "must be > 0"],
    ),
    "elbo_sample_size_small": (
        FIT + "elbo_sample_size = 10\n",
        [],
        ["{path}", "'fit.elbo_sample_size'", "must be > 999"],
    ),
    "empty_grid": (
        FIT + "learning_rate = []\n",
        [],
        ["{path}", "'fit.learning_rate'", "empty list"],
    ),
    "model_argument_zero": (
        'models = [{ name = "correlated_gaussian", dimension = 0 }]\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models[0].dimension'", "must be > 0"],
    ),
    "importance_sample_size_zero": (
        OK_MODELS + "[metrics]\nimportance_sample_size = 0\n",
        [],
        ["{path}", "'metrics.importance_sample_size'", "must be > 0"],
    ),
    "cpus_per_task_zero": (
        OK_MODELS + "[resources]\ncpus_per_task = 0\n",
        [],
        ["{path}", "'resources.cpus_per_task'", "must be > 0"],
    ),
    "negative_seed": (OK_MODELS + "seeds = [-1]\n", [], ["{path}", "'seeds'", ">= 0"]),
    "duplicate_seeds": (OK_MODELS + "seeds = [0, 0]\n", [], ["{path}", "'seeds'", "duplicate"]),
    "empty_seeds": (OK_MODELS + "seeds = []\n", [], ["{path}", "'seeds'", "non-empty"]),
    "empty_models": (
        'models = []\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models'", "non-empty"],
    ),
    "empty_families": (
        'models = ["banana"]\nfamilies = []\n',
        [],
        ["{path}", "'families'", "non-empty"],
    ),
    "missing_models": ('families = ["mean_field"]\n', [], ["{path}", "'models'", "banana"]),
    "duplicate_model": (
        'models = ["banana", "banana"]\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models[1]'", "duplicate"],
    ),
    # --- names that would become paths
    "name_parent_dir": (
        'name = "../x"\n' + OK_MODELS,
        [],
        ["{path}", "'name'", "no path separators"],
    ),
    "name_with_slash": (
        'name = "a/b"\n' + OK_MODELS,
        [],
        ["{path}", "'name'", "no path separators"],
    ),
    "name_absolute": (
        'name = "/tmp/x"\n' + OK_MODELS,
        [],
        ["{path}", "'name'", "no path separators"],
    ),
    "name_dots": ('name = ".."\n' + OK_MODELS, [], ["{path}", "'name'", "no path separators"]),
    # --- user models and their reference files (files written by _write_zoo)
    "user_model_missing_file": (
        'models = ["zoo/nope.py:target"]\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models[0]'", "no such file"],
    ),
    "user_model_no_attribute": (
        'models = ["zoo/good.py:nope"]\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models[0]'", "has no attribute 'nope'"],
    ),
    "user_model_without_attribute": (
        'models = ["zoo/good.py:"]\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models[0]'", "'path/to/file.py:attr'"],
    ),
    "user_model_missing_module": (
        'models = ["no_such_package.models:target"]\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models[0]'", "cannot import module"],
    ),
    "user_model_syntax_error": (
        'models = ["zoo/broken.py:target"]\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models[0]'", "SyntaxError"],
    ),
    "user_model_not_a_model": (
        'models = ["zoo/not_a_model.py:target"]\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models[0]'", "returned a int", "Model"],
    ),
    "user_model_nan_log_prob": (
        'models = ["zoo/nan_model.py:target"]\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models[0]'", "not finite"],
    ),
    "user_model_extra_argument": (
        'models = [{ name = "zoo/good.py:target", dimension = 3 }]\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models[0].dimension'", "only 'reference'"],
    ),
    "user_reference_wrong_shape": (
        'models = [{ name = "zoo/good.py:target", '
        'reference = "zoo/draws_3d.npz" }]\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models[0]'", "draws_3d.npz", "expected [n, 2]"],
    ),
    "user_reference_not_numeric": (
        'models = [{ name = "zoo/good.py:target", '
        'reference = "zoo/words.csv" }]\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models[0]'", "not a numeric CSV"],
    ),
    "user_reference_missing": (
        'models = [{ name = "zoo/good.py:target", '
        'reference = "zoo/none.npz" }]\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models[0]'", "no such reference file"],
    ),
    "user_reference_wrong_suffix": (
        'models = [{ name = "zoo/good.py:target", '
        'reference = "zoo/good.py" }]\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models[0]'", ".npz or .csv"],
    ),
    # --- --set and flags
    "set_without_equals": (
        OK_MODELS,
        ["--set", "fit.num_steps"],
        ["{path}", "--set 'fit.num_steps'", "expected key=value"],
    ),
    "set_out_of_range": (
        OK_MODELS,
        ["--set", "fit.num_steps=0"],
        ["{path}", "'fit.num_steps'", "must be > 0"],
    ),
    "set_unknown_key": (
        OK_MODELS,
        ["--set", "fit.num_stepz=10"],
        ["{path}", "'fit.num_stepz'", "did you mean 'num_steps'"],
    ),
    "set_into_non_table": (
        OK_MODELS + "seeds = [0]\n",
        ["--set", "seeds.first=1"],
        ["{path}", "--set seeds.first", "'seeds' is not a table"],
    ),
    "set_unknown_model": (
        OK_MODELS,
        ["--set", 'models=["nope"]'],
        ["{path}", "'models[0]'", "unknown model 'nope'"],
    ),
    "workers_zero": (OK_MODELS, ["--workers", "0"], ["--workers", ">= 1", "got 0"]),
    "workers_negative": (OK_MODELS, ["--workers", "-2"], ["--workers", ">= 1", "got -2"]),
}


def _write_zoo(folder):
    """User model files next to the spec: one good, the others each wrong in one way."""
    zoo = folder / "zoo"
    zoo.mkdir()
    good = (
        "from harness.models import MODELS\n\n\n"
        "def target():\n    return MODELS['correlated_gaussian'](dimension=2)\n"
    )
    (zoo / "good.py").write_text(good)
    (zoo / "broken.py").write_text("def target(:\n")
    (zoo / "not_a_model.py").write_text("def target():\n    return 3\n")
    (zoo / "nan_model.py").write_text(
        "import dataclasses\n\nimport tensorflow as tf\n\n"
        + good.replace(
            "    return MODELS['correlated_gaussian'](dimension=2)\n",
            "    model = MODELS['correlated_gaussian'](dimension=2)\n"
            "    return dataclasses.replace(model, unnormalized_log_prob=lambda x: "
            "tf.reduce_sum(x, -1) * float('nan'))\n",
        )
    )
    np.savez(zoo / "draws_3d.npz", draws=np.zeros((10, 3)))
    (zoo / "words.csv").write_text("a,b\nx,y\n")


@pytest.mark.parametrize("text, extra, expected", list(CASES.values()), ids=list(CASES))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    tmp_path, capsys, text, extra, expected
):
    _write_zoo(tmp_path)
    path = tmp_path / "spec.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    before = set(tmp_path.iterdir())
    code = cli.main(
        [
            "run",
            str(path),
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
            "--results-dir",
            str(tmp_path / "results"),
            *extra,
        ]
    )
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, err
    assert captured.out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith("harness: error: "), err
    for piece in expected:
        assert piece.format(path=path) in err, (piece, err)
    assert set(tmp_path.iterdir()) == before, "nothing may be written for bad input"


@pytest.mark.parametrize("command", ["report", "sync"])
@pytest.mark.parametrize("name", ["../x", "a/b", "/etc/x", ".."])
def test_experiment_names_that_are_paths_are_refused(tmp_path, capsys, command, name):
    code = cli.main(
        [command, "--experiment", name, "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "--experiment" in err and repr(name) in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["report", "sync"])
def test_report_and_sync_need_a_spec_or_an_experiment(tmp_path, capsys, command):
    assert cli.main([command]) == 2
    assert "give a SPEC or --experiment NAME" in capsys.readouterr().err


def test_ui_binds_localhost_unless_told_otherwise():
    parser = cli._parser()
    assert parser.parse_args(["ui"]).host == "127.0.0.1"
    assert parser.parse_args(["ui", "--host", "0.0.0.0"]).host == "0.0.0.0"
