"""User-supplied models named in a spec by file path or module path, with contract checks."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from harness import cli, spec
from harness.fit import fit
from harness.models import build_model
from harness.spec import FitSettings

# A 2-d Gaussian N((1, -1), I) given as a user model; BAD_* variants break the contract.
MODEL_FILE = """
import tensorflow as tf
import tensorflow_probability as tfp

from harness.models import Model

MEAN = tf.constant([1.0, -1.0])


def log_prob(x):
    return -0.5 * tf.reduce_sum((x - MEAN) ** 2, axis=-1)


def target():
    return Model(name="shifted", pretty_name="Shifted Gaussian", dimension=2, dtype=tf.float32,
                 default_event_space_bijector=tfp.bijectors.Identity(),
                 unnormalized_log_prob=log_prob, reference=None)


INSTANCE = target()
WRONG_DIMENSION = Model(name="w", pretty_name="w", dimension=3, dtype=tf.float32,
                        default_event_space_bijector=tfp.bijectors.Identity(),
                        unnormalized_log_prob=log_prob, reference=None)
NO_EVENT_SUM = Model(name="s", pretty_name="s", dimension=2, dtype=tf.float32,
                     default_event_space_bijector=tfp.bijectors.Identity(),
                     unnormalized_log_prob=lambda x: -0.5 * x**2, reference=None)
NOT_FINITE = Model(name="n", pretty_name="n", dimension=2, dtype=tf.float32,
                   default_event_space_bijector=tfp.bijectors.Identity(),
                   unnormalized_log_prob=lambda x: tf.math.log(x[..., 0]), reference=None)
NOT_A_MODEL = 42
"""


@pytest.fixture
def user_dir(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "shifted_gaussian.py").write_text(MODEL_FILE)
    rng = np.random.default_rng(0)
    draws = rng.normal([1.0, -1.0], 1.0, size=(4000, 2))
    np.savez(tmp_path / "draws.npz", draws=draws)
    np.savetxt(tmp_path / "draws.csv", draws, delimiter=",", header="a,b", comments="")
    np.savez(tmp_path / "wrong.npz", draws=draws[:, :1])
    return tmp_path


def _spec(user_dir, entry: str):
    path = user_dir / "spec.toml"
    path.write_text(
        textwrap.dedent(f"""
        name = "user"
        models = [{entry}]
        families = ["mean_field"]
        [fit]
        num_steps = 20
        sample_size = 4
        elbo_sample_size = 1000
        num_draws_kept = 100
        """)
    )
    return path


def test_model_from_a_file_path_fits_and_uses_the_string_as_name(user_dir):
    s = spec.load(_spec(user_dir, '"models/shifted_gaussian.py:target"'))
    [cell] = s.cells()
    assert cell.model == "models/shifted_gaussian.py:target"
    assert "/" not in cell.run_name.split("/")[0] and cell.run_name.endswith("/mean_field/0")
    args = dict(cell.model_args)
    assert args["source"] == f"{(user_dir / 'models' / 'shifted_gaussian.py').resolve()}:target"
    assert args["reference"] == ""
    result = fit(cell)
    assert result.status == "ok", result.reason + result.traceback
    assert np.all(np.isfinite(result.losses))
    assert "mean_z_error_max" not in result.metrics  # no reference: reference metrics absent
    # The identity is stable: the same spec gives the same cell id.
    assert (
        spec.load(_spec(user_dir, '"models/shifted_gaussian.py:target"')).cells()[0].cell_id
        == cell.cell_id
    )


@pytest.mark.parametrize("reference", ["draws.npz", "draws.csv"])
def test_model_from_a_module_path_with_a_reference_file(user_dir, monkeypatch, reference):
    monkeypatch.syspath_prepend(str(user_dir / "models"))
    s = spec.load(
        _spec(user_dir, f'{{ name = "shifted_gaussian:INSTANCE", reference = "{reference}" }}')
    )
    [cell] = s.cells()
    model = build_model(cell.model, **dict(cell.model_args))
    ref = model.reference
    assert model.name == "shifted_gaussian:INSTANCE"
    assert ref.kind == "draws" and ref.draws.shape == (4000, 2)
    # Draws from N((1, -1), I): the reference mean agrees within its own standard error.
    assert np.all(np.abs(ref.mean - [1.0, -1.0]) < 4.5 * ref.mean_standard_error)
    assert np.allclose(ref.mean_standard_error, 1 / np.sqrt(4000), rtol=0.1)


def test_fit_of_a_user_model_with_reference_has_reference_metrics(user_dir):
    s = spec.load(
        _spec(user_dir, '{ name = "models/shifted_gaussian.py:target", reference = "draws.npz" }')
    )
    cell = s.cells()[0]
    cell = type(cell)(
        **{
            **vars(cell),
            "fit": FitSettings(
                num_steps=300,
                sample_size=8,
                learning_rate=0.05,
                elbo_sample_size=2000,
                num_draws_kept=100,
            ),
        }
    )
    result = fit(cell)
    assert result.status == "ok", result.reason
    for metric in ("mean_z_error_max", "wasserstein_1", "coverage_90"):
        assert np.isfinite(result.metrics[metric]), metric


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('"models/shifted_gaussian.py:WRONG_DIMENSION"', "fails on a [3, 4, 3] batch"),
        ('"models/shifted_gaussian.py:NO_EVENT_SUM"', "has shape [3, 4, 2], expected [3, 4]"),
        ('"models/shifted_gaussian.py:NOT_FINITE"', "not finite at"),
        ('"models/shifted_gaussian.py:NOT_A_MODEL"', "is a int, expected a Model"),
        ('"models/shifted_gaussian.py:missing"', "has no attribute 'missing'"),
        ('"models/nothere.py:target"', "no such file"),
        ('"no_such_module_xyz:target"', "cannot import module 'no_such_module_xyz'"),
        (
            '{ name = "models/shifted_gaussian.py:target", reference = "wrong.npz" }',
            "expected [n, 2]",
        ),
        (
            '{ name = "models/shifted_gaussian.py:target", reference = "nothere.npz" }',
            "no such reference file",
        ),
        ('{ name = "models/shifted_gaussian.py:target", dimension = 3 }', "takes only 'reference'"),
    ],
)
def test_contract_errors_are_one_line_spec_errors(user_dir, entry, message):
    path = _spec(user_dir, entry)
    with pytest.raises(spec.SpecError) as e:
        spec.load(path)
    text = str(e.value)
    assert message in text and "\n" not in text
    assert text.startswith(str(path)) and "models[0]" in text


def test_cli_exits_2_on_a_broken_user_model(user_dir, capsys):
    path = _spec(user_dir, '"models/shifted_gaussian.py:NOT_FINITE"')
    assert cli.main(["run", str(path), "--dry-run"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "not finite" in err and len(err.strip().splitlines()) == 1
