"""Fit options of the spec's [fit] table: schedule, IW objective, gradient estimator, early stop."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from harness.engines import svi
from harness.engines.common import learning_rate
from harness.engines.svi import FALLBACK_LEARNING_RATE, variational_loss
from harness.families import FAMILIES
from harness.fit import fit
from harness.models import MODELS
from harness.spec import Cell, FitSettings

TINY = FitSettings(
    num_steps=40,
    sample_size=4,
    elbo_sample_size=1000,
    num_draws_kept=10,
    learning_rate=0.01,
    initialization="uniform",
)


def _fit(family="mean_field", model="correlated_gaussian", **settings):
    result = fit(Cell("test", model, (), family, (), dataclasses.replace(TINY, **settings), 0))
    assert result.status == "ok", result.reason + result.traceback
    return result


@pytest.mark.parametrize(
    ("schedule", "final"), [("constant", 1.0), ("cosine", 0.0), ("exponential", 0.01)]
)
def test_learning_rate_schedules_decay_over_num_steps(schedule, final):
    settings = dataclasses.replace(TINY, learning_rate=0.1, learning_rate_schedule=schedule)
    rate = learning_rate(settings, FALLBACK_LEARNING_RATE)
    at = (lambda step: float(rate(step))) if callable(rate) else (lambda step: rate)
    assert at(0) == pytest.approx(0.1)
    assert at(settings.num_steps) == pytest.approx(0.1 * final, abs=1e-7)


def test_schedule_runs_across_chunks_with_one_iteration_counter():
    _fit(learning_rate_schedule="cosine")
    # The optimizer (shared by the chunks) counted every step, so the schedule reached its end
    # rather than restarting each chunk.
    assert int(svi._LAST_COMPILED.loop.optimizer.iterations.numpy()) == 40


@pytest.mark.slow
def test_importance_weighted_objective_and_sticking_the_landing_fit():
    plain = _fit()
    for settings in (
        {"importance_sample_size": 4},
        {"importance_sample_size": 4, "gradient_estimator": "sticking_the_landing"},
        {"gradient_estimator": "sticking_the_landing"},
    ):
        result = _fit(**settings)
        assert result.fit_mode == "xla", result.fallback_reason
        assert np.all(np.isfinite(result.losses))
        assert (
            result.metrics["num_gradient_evaluations"]
            == settings.get("importance_sample_size", 1) * plain.metrics["num_gradient_evaluations"]
        )


def _exact_full_rank(model):
    """A full-rank q set to the target exactly (correlated Gaussian: p = N(μ, Σ))."""
    q = FAMILIES["full_rank"].build(model, seed=tf.constant([1, 2]))
    q.distribution.loc.assign(model.reference.mean.astype(np.float32))
    q.distribution.scale_tril.assign(  # a TransformedVariable: assigns through its bijector
        np.linalg.cholesky(model.reference.covariance).astype(np.float32)
    )
    return q


def _gradients(model, q, **settings):
    loss_fn = variational_loss(model, q, dataclasses.replace(TINY, sample_size=64, **settings))
    with tf.GradientTape() as tape:
        loss = loss_fn(seed=tf.constant([5, 6]))
    return loss, tape.gradient(loss, q.trainable_variables)


@pytest.mark.parametrize("importance_sample_size", [1, 4])
def test_sticking_the_landing_gradient_vanishes_at_the_exact_posterior(importance_sample_size):
    """Roeder et al. (2017): at q = p the STL (and DReG) gradient is exactly 0 for every draw,
    while the reparameterization gradient is 0 only in expectation."""
    model = MODELS["correlated_gaussian"]()
    q = _exact_full_rank(model)
    stl_loss, stl = _gradients(
        model,
        q,
        gradient_estimator="sticking_the_landing",
        importance_sample_size=importance_sample_size,
    )
    plain_loss, plain = _gradients(model, q, importance_sample_size=importance_sample_size)
    # Same draws, same objective value (−log Z exactly, as every log weight equals log Z).
    np.testing.assert_allclose(stl_loss.numpy(), plain_loss.numpy(), rtol=1e-5)
    np.testing.assert_allclose(stl_loss.numpy(), -model.reference.log_normalizer, rtol=1e-4)
    # float32 round-off of log weights of size ~5: gradients below 1e-3.
    assert max(float(tf.reduce_max(tf.abs(g))) for g in stl) < 1e-3
    assert max(float(tf.reduce_max(tf.abs(g))) for g in plain) > 0.1


def test_budget_mode_runs_every_step_and_still_gives_a_verdict():
    result = _fit(num_steps=60, stopping="budget")
    assert result.num_steps_run == 60 and result.metrics["num_steps_total"] == 60
    assert result.converged is False and "budget of 60 steps reached" in result.convergence_reason
