"""Contract tests over every registered family, on every registered model."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from harness.families import FAMILIES
from harness.models import MODELS


@pytest.fixture(scope="module")
def models():
    return {name: factory() for name, factory in MODELS.items()}


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_sample_log_prob_shapes_support_and_variables(models, family, model_name):
    model = models[model_name]
    q = FAMILIES[family].build(model, seed=tf.constant([3, 4]))
    assert q.trainable_variables, "a family must own trainable variables"
    z = q.sample(7, seed=[5, 6])
    assert z.shape == (7, model.dimension)
    assert z.dtype == model.dtype
    lq = q.log_prob(z)
    assert lq.shape == (7,)
    assert np.all(np.isfinite(lq.numpy()))
    # In the support: the model's log density is finite at every draw.
    assert np.all(np.isfinite(model.unnormalized_log_prob(z).numpy()))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_sample_and_log_prob_consistent(models, family):
    model = models["correlated_gaussian"]
    q = FAMILIES[family].build(model, seed=tf.constant([1, 2]))
    z, lq = q.experimental_sample_and_log_prob(64, seed=[7, 8])
    np.testing.assert_allclose(lq.numpy(), q.log_prob(z).numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_documented_hyperparameters_match_build_signature(family):
    import inspect

    spec = FAMILIES[family]
    params = inspect.signature(spec.build).parameters
    for name, default in spec.hyperparameters.items():
        assert name in params, f"{family}: hyperparameter {name} is not a build() argument"
        assert params[name].default == default, f"{family}: default of {name} differs"
    assert spec.build.__doc__ and "Args:" in spec.build.__doc__
