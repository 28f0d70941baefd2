"""SAA for VI (``fit.optimizer = "saa"``, :mod:`harness.engines.saa`): the fixed-draw objective, the
schedule's fit of an exact family, the verdict and the budget.  Bad settings: test_bad_specs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from harness.engines import saa, svi
from harness.engines.evaluation import gaussian_moments
from harness.families import FAMILIES
from harness.fit import fit
from harness.models import build_model, user
from harness.spec import Cell, FitSettings

SAA = FitSettings(optimizer="saa", elbo_sample_size=1000, num_draws_kept=10)


def _fit(model, family, model_args=(), **settings):
    cell = Cell("test", model, model_args, family, (), dataclasses.replace(SAA, **settings), 0)
    result = fit(cell)
    assert result.status == "ok", result.reason + result.traceback
    return result


@pytest.mark.parametrize("family", saa.supported_families())
def test_objective_is_deterministic_for_fixed_draws(family):
    model = build_model("linear_regression", num_features=3, num_observations=20)
    q = FAMILIES[family].build(model, seed=tf.constant([1, 2]))
    objective = saa.Objective(model, q, tf.constant([3, 4]))
    theta = objective.position()
    seed = tf.constant([5, 6])
    value, gradient = objective.value_and_gradient(theta, 32, seed)
    moved = theta + 0.05 * np.random.default_rng(0).normal(size=theta.shape)
    value_moved, _ = objective.value_and_gradient(moved, 32, seed)
    again, gradient_again = objective.value_and_gradient(theta, 32, seed)
    # The same θ and draws give the same value and gradient, bit for bit, after evaluating
    # another θ in between; another θ or other draws give another value.
    assert float(again) == float(value)
    np.testing.assert_array_equal(gradient_again.numpy(), gradient.numpy())
    assert float(value_moved) != float(value)
    other, _ = objective.value_and_gradient(theta, 32, tf.constant([7, 8]))
    assert float(other) != float(value)
    assert np.isfinite(float(value)) and np.all(np.isfinite(gradient.numpy()))


def test_full_rank_recovers_the_mean_and_covariance_of_a_gaussian():
    result = _fit("correlated_gaussian", "full_rank")
    assert result.converged, result.convergence_reason
    model = svi._LAST_SAA.model
    mean, covariance = (
        np.asarray(a, np.float64)
        for a in gaussian_moments(svi._LAST_SAA.objective.surrogate_posterior)
    )
    n, d = int(result.metrics["saa_sample_size_final"]), model.dimension
    reference = model.reference
    sd = np.sqrt(np.diag(reference.covariance))
    # For a Gaussian target the SAA optimum on N draws is exact up to the draws' own error:
    # m = μ − L ε̄ (standardized error ~ N(0, 1/N) per coordinate) and, whitened by Σ, the
    # covariance is the inverse of the draws' sample covariance, whose eigenvalues lie within
    # (1 ± √(d/N))⁻² (Marchenko–Pastur edges), here with a margin of 2.
    assert np.max(np.abs(mean - reference.mean) / sd) < 4.5 / np.sqrt(n)
    root = np.linalg.cholesky(reference.covariance)
    whitened = np.linalg.solve(root, np.linalg.solve(root, covariance).T)
    eigenvalues = np.linalg.eigvalsh(0.5 * (whitened + whitened.T))
    spread = 2 * np.sqrt(d / n)
    assert (1 + spread) ** -2 < eigenvalues.min() and eigenvalues.max() < (1 - spread) ** -2


def test_small_regression_converges_without_learning_rate():
    result = _fit("linear_regression", "mean_field", (("num_features", 3),))
    assert result.converged is True
    assert result.convergence_reason.startswith("stable at N = "), result.convergence_reason
    m = result.metrics
    first = saa.first_sample_size(result.cell, 3)
    final = int(m["saa_sample_size_final"])
    assert final == first * 2 ** (int(m["saa_num_stages"]) - 1)
    assert m["saa_gain_last"] < result.cell.fit.convergence_tolerance
    # Each L-BFGS iteration costs at least one evaluation of N ≥ N_0 draws.
    fit_evaluations = m["num_gradient_evaluations"] - m["initialization_gradient_evaluations"]
    assert fit_evaluations >= first * result.num_steps_run
    assert np.all(np.isfinite(result.losses)) and result.losses.size == result.num_steps_run
    # No learning rate was used or searched, and the logged params say so.
    assert result.fit_params["learning_rate_chosen"].startswith("none")
    assert "num_pilot_steps" not in m and "learning_rate_final" not in m


def test_tiny_budget_is_not_converged_and_says_why():
    # 10 steps × 8 particles: 80 gradient evaluations, five of the first stage (N = 16).
    result = _fit("linear_regression", "mean_field", (("num_features", 3),), num_steps=10)
    assert result.converged is False
    assert "budget of 80 gradient evaluations" in result.convergence_reason
    assert len(result.convergence_reason.splitlines()) == 1


def test_a_non_finite_objective_is_diverged_and_its_trace_is_whole():
    # The draws of a larger stage reach where the log density is NaN: the fit is diverged at
    # that step, and its trace has a time for every loss (the MLflow loss curve is built from
    # both; a missing time once made the store refuse the result).  The model is imported by
    # module name: a file path would enter the cell's identity, and so its seed.
    name = "tests.holed_model:holed"
    cell = Cell(
        "test", name, tuple(sorted(user.resolve(name, ".").items())), "mean_field", (), SAA, 0
    )
    result = fit(cell)
    assert result.status == "diverged", (result.status, result.reason, result.traceback)
    assert len(result.losses) == len(result.loss_seconds) > 0
    assert np.isnan(result.losses[-1]) and np.all(np.isfinite(result.loss_seconds))
