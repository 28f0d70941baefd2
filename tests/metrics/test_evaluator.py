"""The evaluation of a fitted q: traced and eager agree, replicates split correctly, and the
tracing is counted once, as compilation, not as metric cost."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from harness import fit as fit_module
from harness.engines import evaluation as evaluation_module
from harness.families import FAMILIES
from harness.models import build_model
from harness.spec import Cell, FitSettings, MetricSettings

SETTINGS = FitSettings(
    num_steps=100,
    sample_size=4,
    elbo_sample_size=1000,
    learning_rate=0.01,
    initialization="uniform",
)
SEED = tf.constant([3, 4], tf.int32)


def _cell(model="conjugate_normal_mean", family="full_rank"):
    return Cell("test", model, (), family, (), SETTINGS, 0, metrics=MetricSettings())


def test_traced_evaluation_equals_eager_and_has_every_part():
    cell = _cell()
    model = build_model(cell.model)
    q = FAMILIES["full_rank"].build(model, seed=tf.constant([1, 2], tf.int32))
    eager = evaluation_module.Evaluator(model, q, cell, traced=False)(SEED)[0]
    traced_evaluator = evaluation_module.Evaluator(model, q, cell, traced=True)
    traced = traced_evaluator(SEED)[0]
    n = 64 * 32  # iw_draws_needed(1000, 64): 32 groups of K = 64
    assert traced["draws"].shape == (n, model.dimension)
    assert traced["log_weights"].shape == (n,)
    assert traced["log_likelihood"].shape == (SETTINGS.elbo_sample_size,)
    np.testing.assert_allclose(traced["draws"], eager["draws"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(traced["log_weights"], eager["log_weights"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        traced["log_likelihood"], eager["log_likelihood"], rtol=1e-4, atol=1e-4
    )
    assert traced["kl_to_prior"] == np.float32(eager["kl_to_prior"])
    mean, covariance = traced["gaussian"]
    np.testing.assert_allclose(mean, q.mean().numpy(), rtol=1e-6)
    np.testing.assert_allclose(covariance, q.covariance().numpy(), rtol=1e-6)
    # The log weights are log p̃ − log q of those very draws.
    z = tf.constant(traced["draws"][:10], tf.float32)
    expected = model.unnormalized_log_prob(z) - q.log_prob(z)
    np.testing.assert_allclose(traced["log_weights"][:10], expected.numpy(), rtol=1e-4, atol=1e-4)
    # The first call traced (compilation measured); a later call with another seed does not.
    assert traced_evaluator.compile_seconds > 0
    other = traced_evaluator(tf.constant([5, 6], tf.int32))[0]
    assert np.isnan(traced_evaluator.compile_seconds)
    assert not np.allclose(other["draws"], traced["draws"])


def test_batched_evaluation_splits_into_each_replicates_own_q():
    cell = _cell()
    model = build_model(cell.model)
    batched = FAMILIES["full_rank"].build(
        model, seed=tf.constant([1, 2], tf.int32), batch_shape=(3,)
    )
    before = batched.mean().numpy()
    for variable in batched.variables:  # replicates with different means
        if variable.shape.rank == 2 and variable.shape[-1] == model.dimension:
            variable.assign(variable + tf.constant([[0.0], [5.0], [-5.0]]))
    shift = batched.mean().numpy() - before
    np.testing.assert_allclose(shift[:, 0], [0.0, 5.0, -5.0], atol=1e-5)
    evaluations = evaluation_module.Evaluator(model, batched, cell, replicates=3, traced=False)(
        SEED
    )
    assert len(evaluations) == 3
    for i, evaluation in enumerate(evaluations):
        own = batched[i]
        z = tf.constant(evaluation["draws"][:50], tf.float32)
        expected = model.unnormalized_log_prob(z) - own.log_prob(z)
        np.testing.assert_allclose(
            evaluation["log_weights"][:50], expected.numpy(), rtol=1e-4, atol=1e-3
        )
        mean, covariance = evaluation["gaussian"]
        np.testing.assert_allclose(mean, own.mean().numpy(), rtol=1e-6)
        np.testing.assert_allclose(covariance, own.covariance().numpy(), rtol=1e-6)
        # Draws come from the replicate's own q: their mean is its mean within MC error.
        se = np.sqrt(np.diag(covariance) / evaluation["draws"].shape[0])
        assert np.all(np.abs(evaluation["draws"].mean(axis=0) - mean) < 5 * se)
        kl = evaluation_module.kl_to_prior(own, model.prior_distribution).numpy()
        assert np.isclose(evaluation["kl_to_prior"], kl, rtol=1e-5)


def test_seeds_sharing_a_compiled_loop_count_the_evaluations_tracing_once():
    first = fit_module.fit(_cell())
    second = fit_module.fit(Cell("test", "conjugate_normal_mean", (), "full_rank", (), SETTINGS, 1))
    assert first.status == second.status == "ok"
    # The second seed reuses the loop and the traced evaluation: no tracing in its compile
    # time, which is then far below the first's.
    assert second.metrics.get("compile_seconds", 0.0) < first.metrics["compile_seconds"] / 3
    assert 0 < second.metrics["evaluation_seconds"]
    assert 0 < first.metrics["evaluation_compile_seconds"] < first.metrics["compile_seconds"]
    assert "evaluation_compile_seconds" not in second.metrics
