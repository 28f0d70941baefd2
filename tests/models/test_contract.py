"""Contract tests over the whole model registry."""

from __future__ import annotations

import functools
import inspect

import numpy as np
import pytest
import tensorflow as tf

from harness.models import AMORTIZED_MODELS, MODELS
from harness.models.base import REFERENCE_KINDS

# Amortized models (a VAE) have no single target density: tests/test_vae.py.
POSTERIOR_MODELS = sorted(set(MODELS) - AMORTIZED_MODELS)


@functools.cache
def _built(name):
    """Each registered model built once per test session (with default arguments)."""
    return MODELS[name]()


@pytest.fixture(scope="module", params=POSTERIOR_MODELS)
def model(request):
    return _built(request.param)


def test_names_and_docstring(model):
    assert model.name in MODELS
    assert model.name.isidentifier() and model.name == model.name.lower()
    assert model.pretty_name
    assert MODELS[model.name].__doc__ and len(MODELS[model.name].__doc__) > 40


def _check_log_prob(model, dtype):
    bijector = model.default_event_space_bijector
    u = tf.random.stateless_normal([3, 4, model.dimension], seed=[1, 2], dtype=dtype)
    x = bijector(u)
    assert x.shape == (3, 4, model.dimension)
    lp = model.unnormalized_log_prob(x)
    assert lp.shape == (3, 4)
    assert lp.dtype == dtype
    assert np.all(np.isfinite(lp.numpy()))


def test_log_prob_finite_and_batched_at_bijected_random_points(model):
    _check_log_prob(model, model.dtype)


@pytest.mark.parametrize(
    "name", [n for n in POSTERIOR_MODELS if "dtype" in inspect.signature(MODELS[n]).parameters]
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_log_prob_in_each_dtype(name, dtype):
    model = MODELS[name](dtype=dtype)
    assert model.dtype == tf.as_dtype(dtype)
    _check_log_prob(model, model.dtype)


def test_reference_shapes(model):
    ref = model.reference
    assert ref is not None, f"{model.name} has no reference (harness reference {model.name})"
    d = model.dimension
    assert ref.kind in REFERENCE_KINDS
    assert ref.mean.shape == ref.standard_deviation.shape == (d,)
    assert ref.mean.dtype == np.float64
    assert np.all(np.isfinite(ref.mean))
    assert np.all(ref.standard_deviation > 0)
    assert np.all(ref.mean_standard_error >= 0)
    assert ref.provenance
    if ref.draws is not None:
        assert ref.draws.shape[1] == d and ref.draws.shape[0] >= 1000
        assert np.all(np.isfinite(ref.draws))
    if ref.kind == "analytic":
        assert np.all(ref.mean_standard_error == 0)


def test_reference_is_inside_the_support(model):
    """The reference mean (and draws) map back to finite unconstrained points."""
    inverse = model.default_event_space_bijector.inverse
    points = (
        model.reference.mean[None] if model.reference.draws is None else model.reference.draws[:100]
    )
    u = inverse(tf.constant(points, model.dtype)).numpy()
    assert np.all(np.isfinite(u))


@pytest.mark.parametrize(
    "name", [n for n in POSTERIOR_MODELS if _built(n).reference.draws is not None]
)
def test_reference_draws_agree_with_reference_moments(name):
    """Reference draws vs the reference mean: z-test with Monte-Carlo-derived tolerance."""
    ref = _built(name).reference
    n = ref.draws.shape[0]
    se = np.sqrt(ref.standard_deviation**2 / n + ref.mean_standard_error**2)
    z = (ref.draws.mean(axis=0) - ref.mean) / se
    # 4.5 sigma over at most a few dozen coordinates: a false alarm has probability < 1e-4.
    assert np.all(np.abs(z) < 4.5), z


def test_cli_list_shows_dimension_and_reference_kind_of_every_model(capsys):
    from harness import cli

    assert cli.main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in POSTERIOR_MODELS:
        model = _built(name)
        [line] = [row for row in lines if row.split()[:1] == [name]]
        assert line.split()[1:3] == [str(model.dimension), model.reference_kind], line


@pytest.mark.parametrize("name", [n for n in POSTERIOR_MODELS if _built(n).simulate is not None])
def test_simulate_gives_parameters_in_the_support_and_a_model_on_fresh_data(name):
    model = _built(name)
    truth, fresh = model.simulate(5)
    assert truth.shape == (model.dimension,)
    assert fresh.dimension == model.dimension and fresh.name == model.name
    x = tf.constant(truth[None], model.dtype)
    assert np.all(np.isfinite(model.default_event_space_bijector.inverse(x).numpy()))
    assert np.isfinite(fresh.unnormalized_log_prob(x).numpy()).all()
    # Fresh data: the log density at the true parameters differs from the original model's.
    assert fresh.unnormalized_log_prob(x).numpy() != model.unnormalized_log_prob(x).numpy()
    again, _ = model.simulate(5)
    np.testing.assert_array_equal(truth, again)
