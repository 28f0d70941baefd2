"""Contract tests over every registered variational family, on every registered model.

Baselines (``kind != "svi"``) run a whole method when built; they are tested in
``tests/baselines``.  Here they only share the registry checks (documented hyperparameters).
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import tensorflow as tf

from harness.baselines.base import BaselineFit
from harness.families import FAMILIES
from harness.models import AMORTIZED_MODELS, MODELS

SVI_FAMILIES = sorted(name for name, family in FAMILIES.items() if family.kind == "svi")
# Families whose draws are sequential in the dimension (MAF), and the largest dimension at
# which the contract test still draws from them.
_SEQUENTIAL_SAMPLING = {"maf"}
_MAX_SEQUENTIAL_DIMENSION = 10


@pytest.fixture(scope="module")
def models():
    return {name: factory() for name, factory in MODELS.items()}


@pytest.mark.parametrize("family", SVI_FAMILIES)
@pytest.mark.parametrize("model_name", sorted(set(MODELS) - AMORTIZED_MODELS))  # VAE: test_vae
def test_sample_log_prob_shapes_support_and_variables(models, family, model_name):
    model = models[model_name]
    spec = FAMILIES[family]
    if not spec.supports(model):
        # Inapplicable pairs fail at build time with a message naming the family and model.
        with pytest.raises(ValueError, match=f"(?i){family}.*{model.name}"):
            spec.check(model)
        with pytest.raises(ValueError):
            spec.build(model, seed=tf.constant([3, 4]))
        return
    q = spec.build(model, seed=tf.constant([3, 4]))
    assert q.trainable_variables, "a family must own trainable variables"
    if family in _SEQUENTIAL_SAMPLING and model.dimension > _MAX_SEQUENTIAL_DIMENSION:
        # Drawing costs d network passes per layer in eager mode (over a minute at d = 500):
        # check the density at a point of the support instead.
        x = model.default_event_space_bijector(tf.zeros([1, model.dimension], model.dtype))
        lq = q.log_prob(x)
        assert lq.shape == (1,) and np.all(np.isfinite(lq.numpy()))
        return
    z = q.sample(7, seed=[5, 6])
    assert z.shape == (7, model.dimension)
    assert z.dtype == model.dtype
    lq = q.log_prob(z)
    assert lq.shape == (7,)
    assert np.all(np.isfinite(lq.numpy()))
    # In the support: the model's log density is finite at every draw.
    assert np.all(np.isfinite(model.unnormalized_log_prob(z).numpy()))
    # Every variable exists before the first fitting step (so XLA can compile the loop): a
    # second sample creates none.
    count = len(q.trainable_variables)
    q.sample(2, seed=[7, 8])
    assert len(q.trainable_variables) == count


def _first_supported(family: str, models) -> str:
    for name in ("correlated_gaussian", "linear_regression_unknown_noise", "eight_schools"):
        if FAMILIES[family].supports(models[name]):
            return name
    raise AssertionError(f"{family} supports none of the contract-test models")


@pytest.mark.parametrize("family", SVI_FAMILIES)
def test_sample_and_log_prob_consistent(models, family):
    """The density returned with a draw equals ``log_prob`` recomputed from the value alone
    (a fresh tensor, so bijector caches cannot short-cut the inverse pass)."""
    model = models[_first_supported(family, models)]
    q = FAMILIES[family].build(model, seed=tf.constant([1, 2]))
    z, lq = q.experimental_sample_and_log_prob(64, seed=[7, 8])
    recomputed = q.log_prob(tf.constant(z.numpy()))
    np.testing.assert_allclose(lq.numpy(), recomputed.numpy(), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("family", ["maf", "real_nvp", "neural_spline", "iaf"])
def test_flows_start_at_their_gaussian_base(models, family):
    """Near-identity initialisation: at step 0 a flow's density is its mean-field base's."""
    model = models["correlated_gaussian"]
    q = FAMILIES[family].build(model, seed=tf.constant([1, 2]))
    base_shift, base_scale = q.bijector.bijectors[1], q.bijector.bijectors[2]
    gaussian = tf.random.stateless_normal([256, model.dimension], [3, 4], dtype=model.dtype)
    z = base_shift(base_scale(gaussian))
    mean_field_log_prob = tf.reduce_sum(
        -0.5 * gaussian**2 - 0.5 * np.log(2 * np.pi), axis=-1
    ) - tf.reduce_sum(tf.math.log(base_scale.scale), axis=-1)
    # Output kernels drawn at variance scale 1e-2 perturb each coordinate's log-scale by
    # ~0.1/sqrt(fan_in) per layer: summed over 5 coordinates and up to 4 layers, well under
    # 0.5 nats (a unit-scale initialisation moves the log density by several nats).
    np.testing.assert_allclose(
        q.log_prob(tf.constant(z.numpy())).numpy(), mean_field_log_prob.numpy(), atol=0.5
    )


def test_neural_spline_is_the_identity_outside_its_range(models):
    """Outside [-B, B] the spline coupling leaves coordinates unchanged."""
    model = models["correlated_gaussian"]
    q = FAMILIES["neural_spline"].build(
        model, seed=tf.constant([1, 2]), num_layers=1, spline_range=1.0
    )
    coupling = q.bijector.bijectors[-1]
    x = tf.constant([[0.3, -0.2, 4.0, -3.0, 2.5]], model.dtype)
    y = coupling.forward(x)
    masked = model.dimension // 2
    np.testing.assert_allclose(y.numpy()[0, masked:], x.numpy()[0, masked:], atol=1e-6)
    np.testing.assert_array_equal(y.numpy()[0, :masked], x.numpy()[0, :masked])


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_documented_hyperparameters_match_build_signature(family):
    spec = FAMILIES[family]
    params = inspect.signature(spec.build).parameters
    for name, default in spec.hyperparameters.items():
        assert name in params, f"{family}: hyperparameter {name} is not a build() argument"
        assert params[name].default == default, f"{family}: default of {name} differs"
    assert spec.build.__doc__ and "Args:" in spec.build.__doc__
    assert spec.kind in ("svi", "mcmc", "cavi", "laplace", "pathfinder", "amortized")
    if spec.kind not in ("svi", "amortized"):  # amortized: a VAE encoder (tests/test_vae.py)
        assert inspect.signature(spec.build).return_annotation in (BaselineFit, "BaselineFit")
