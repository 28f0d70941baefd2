"""Real TensorFlow fits: every registered cell, recovery of an analytic posterior, fallback."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from harness import families
from harness.families.base import Family
from harness.families.gaussian import build_mean_field
from harness.fit import fit
from harness.models import AMORTIZED_MODELS, MODELS
from harness.spec import Cell, FitSettings

# A fixed learning rate and the uniform initialisation: 20 steps of every cell, without the
# learning-rate pilots and the per-model mode search of the defaults (tested in
# tests/test_convergence.py and tests/test_mode.py).
TINY = FitSettings(
    num_steps=20,
    sample_size=4,
    elbo_sample_size=1000,
    num_draws_kept=100,
    learning_rate=0.01,
    initialization="uniform",
)


def _cell(model, family, fit_settings=TINY, seed=0, hyperparameters=(), model_args=()):
    return Cell("test", model, model_args, family, hyperparameters, fit_settings, seed)


# Smoke cells: every model with mean_field, and every other variational family on banana or,
# where it does not apply there (Family.supports), on a model it applies to.  The full
# models × families product is ~200 XLA compilations (up to a minute each for neural_spline on
# a loaded machine), far over the suite's 15 minutes on 2 cores; every family is checked on
# every model (draws in the support, finite densities) by tests/families/test_contract.py.
# Baselines (kind != "svi") have their own tests in tests/baselines.
_SMOKE_MODELS = ("banana",)
_ONLY_MODEL = {"asvi": "linear_regression_unknown_noise"}
# Families whose loop XLA cannot compile on their smoke model (TFP's inverse-gamma sampler
# loop uses TensorList ops XLA lacks): they run in graph mode, with the reason recorded.
_GRAPH_MODE = {"asvi"}
# Families whose smoke cell alone compiles for most of a minute: run with the slow tests.
_SLOW_SMOKE = {"neural_spline", "maf", "real_nvp", "asvi"}
# Models whose mean-field smoke cell alone compiles for 10–40 s: run with the slow tests.
_SLOW_SMOKE_MODELS = {
    "log_gaussian_cox_process",
    "stochastic_volatility",
    "item_response_theory",
    "brownian_motion_unknown_scales",
}
SMOKE_CELLS = [
    pytest.param(model, "mean_field", marks=pytest.mark.slow)
    if model in _SLOW_SMOKE_MODELS
    else (model, "mean_field")
    for model in sorted(set(MODELS) - AMORTIZED_MODELS)
] + [
    pytest.param(model, family, marks=pytest.mark.slow)
    if family in _SLOW_SMOKE
    else (model, family)
    for family in sorted(families.FAMILIES)
    if families.FAMILIES[family].kind == "svi" and family != "mean_field"
    for model in ((_ONLY_MODEL[family],) if family in _ONLY_MODEL else _SMOKE_MODELS)
]


@pytest.mark.parametrize(("model", "family"), SMOKE_CELLS)
def test_every_cell_fits_a_few_steps_with_finite_losses(model, family):
    result = fit(_cell(model, family))
    assert result.status == "ok", result.reason + result.traceback
    assert result.num_steps_run == 20 and result.losses.shape == (20,)
    assert np.all(np.isfinite(result.losses))
    if family in _GRAPH_MODE:
        assert result.fit_mode == "graph" and result.fallback_reason
    else:
        assert result.fit_mode == "xla", result.fallback_reason
    for metric in (
        "elbo",
        "elbo_standard_error",
        "compile_seconds",
        "fit_seconds",
        "steps_per_second",
        "mean_z_error_max",
        "std_ratio_geomean",
    ):
        assert np.isfinite(result.metrics[metric]), metric
    assert result.draws.shape == (100, MODELS[model]().dimension)
    assert np.all(np.diff(result.loss_seconds) >= 0)


def test_same_cell_gives_identical_losses_and_metrics():
    a, b = fit(_cell("banana", "mean_field")), fit(_cell("banana", "mean_field"))
    np.testing.assert_array_equal(a.losses, b.losses)
    assert a.metrics["elbo"] == b.metrics["elbo"]
    c = fit(_cell("banana", "mean_field", seed=1))
    assert not np.array_equal(a.losses, c.losses)


@pytest.mark.slow
def test_full_rank_recovers_analytic_gaussian_within_monte_carlo_error():
    n = 8192
    settings = FitSettings(
        num_steps=4000, sample_size=32, learning_rate=0.01, elbo_sample_size=n, num_draws_kept=n
    )
    result = fit(_cell("correlated_gaussian", "full_rank", settings))
    assert result.status == "ok", result.reason
    ref = MODELS["correlated_gaussian"]().reference
    draws = result.draws.astype(np.float64)
    # z-tests: sample mean and sd of n draws from q against the exact moments.  Standard errors
    # are those of the estimates from n draws (the reference is exact, its error is 0).
    z_mean = (draws.mean(0) - ref.mean) / (ref.standard_deviation / np.sqrt(n))
    z_std = (draws.std(0, ddof=1) - ref.standard_deviation) / (
        ref.standard_deviation / np.sqrt(2 * (n - 1))
    )
    assert np.all(np.abs(z_mean) < 5), z_mean
    assert np.all(np.abs(z_std) < 5), z_std


def _build_uncompilable(model, *, seed, initial_scale: float = 0.1):
    """Mean-field q whose sampler passes through a py_function, which XLA cannot compile."""
    q = build_mean_field(model, seed=seed, initial_scale=initial_scale)
    through_python = tfp.bijectors.Inline(
        forward_fn=lambda x: tf.py_function(lambda t: t, [x], x.dtype),
        inverse_fn=tf.identity,
        forward_log_det_jacobian_fn=lambda x: tf.zeros([], x.dtype),
        forward_min_event_ndims=0,
        is_constant_jacobian=True,
        name="through_python",
    )
    return tfp.distributions.TransformedDistribution(q, through_python)


def test_xla_failure_falls_back_to_graph_mode_and_records_why(monkeypatch):
    monkeypatch.setitem(
        families.FAMILIES,
        "uncompilable",
        Family("uncompilable", "Uncompilable", _build_uncompilable, {"initial_scale": 0.1}),
    )
    result = fit(
        _cell("correlated_gaussian", "uncompilable", dataclasses.replace(TINY, num_steps=10))
    )
    assert result.status == "ok", result.reason + result.traceback
    assert result.fit_mode == "graph"
    assert result.fallback_reason
    assert np.all(np.isfinite(result.losses))


def test_exception_in_cell_is_an_error_result():
    result = fit(_cell("correlated_gaussian", "mean_field", model_args=(("dimension", 0),)))
    assert result.status == "error"
    assert "dimension must be >= 1" in result.reason
    assert "Traceback" in result.traceback


def _loop(ours, estimator, model, q, variables, optimizer, loss_fn, jit):
    from harness.engines.common import minimize

    @tf.function(jit_compile=jit, autograph=False)
    def run(seed):
        if ours:
            return minimize(loss_fn, 7, optimizer, variables, seed)
        if estimator == "reparameterization":
            return tfp.vi.fit_surrogate_posterior(
                model.unnormalized_log_prob,
                q,
                optimizer,
                num_steps=7,
                sample_size=3,
                trainable_variables=variables,
                seed=seed,
            )
        return tfp.math.minimize(
            loss_fn, num_steps=7, optimizer=optimizer, trainable_variables=variables, seed=seed
        )

    return run


def _minimize_both_ways(family: str, jit: bool, *, batch_shape=(), estimator="reparameterization"):
    """Losses of the harness's loop and of TFP's own, from equal starts, seeds and optimizers."""
    import tf_keras

    from harness.engines.svi import variational_loss

    model = MODELS["eight_schools"]()
    settings = FitSettings(num_steps=7, sample_size=3, gradient_estimator=estimator)
    losses, finals = [], []
    for ours in (True, False):
        q = families.FAMILIES[family].build(model, seed=[1, 2], batch_shape=batch_shape)
        variables = list(q.trainable_variables)
        optimizer = tf_keras.optimizers.Adam(0.05)
        optimizer.build(variables)
        loss_fn = variational_loss(model, q, settings)

        run = _loop(ours, estimator, model, q, variables, optimizer, loss_fn, jit)
        losses.append(run(tf.constant([3, 4])).numpy())
        finals.append([v.numpy() for v in variables])
    return losses, finals


@pytest.mark.parametrize(
    ("family", "jit", "batch_shape", "estimator"),
    [
        ("mean_field", True, (), "reparameterization"),
        ("full_rank", False, (), "reparameterization"),
        pytest.param("mean_field", True, (3,), "reparameterization", marks=pytest.mark.slow),
        pytest.param("mean_field", True, (), "sticking_the_landing", marks=pytest.mark.slow),
    ],
)
def test_harness_loop_takes_the_same_steps_as_tfp(family, jit, batch_shape, estimator):
    (ours, tfps), (our_final, tfp_final) = _minimize_both_ways(
        family, jit, batch_shape=batch_shape, estimator=estimator
    )
    assert ours.shape == (7, *batch_shape)
    np.testing.assert_array_equal(ours, tfps)
    for mine, theirs in zip(our_final, tfp_final, strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert np.all(np.diff(ours.reshape(7, -1).mean(axis=1)) != 0)  # the steps moved q
