"""The Laplace baseline: exact on a Gaussian target, in the support on a constrained one."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from harness.baselines.laplace import build_laplace
from harness.fit import fit
from harness.models import MODELS
from harness.spec import Cell, FitSettings

SETTINGS = FitSettings(elbo_sample_size=1000, num_draws_kept=100)


def test_laplace_is_exact_on_the_correlated_gaussian():
    model = MODELS["correlated_gaussian"]()
    outcome = build_laplace(model, seed=tf.constant([1, 2]))
    base = outcome.surrogate_posterior.distribution
    # Deterministic code (Newton decrement < 1e-3 nats, finite-difference Hessian of float32
    # gradients): fixed tolerances at that precision relative to the target's scales (1 to 3).
    np.testing.assert_allclose(base.mean().numpy(), model.reference.mean, atol=1e-4)
    np.testing.assert_allclose(
        base.covariance().numpy(), model.reference.covariance, rtol=1e-3, atol=1e-4
    )


def test_laplace_cell_has_the_variational_metrics():
    result = fit(Cell("test", "correlated_gaussian", (), "laplace", (), SETTINGS, 0))
    assert result.status == "ok", result.reason + result.traceback
    # q = p exactly: KL and the ELBO's gap to log Z vanish.
    assert result.metrics["kl_divergence"] < 1e-4
    assert abs(result.metrics["log_normalizer_error"]) < 1e-3
    assert result.draws.shape == (100, 5)
    assert result.losses.size == 0 and result.num_steps_run >= 1
    # Tracing is measured apart from the method, as compilation is for the variational fits.
    assert result.compile_seconds == result.metrics["compile_seconds"] > 0
    assert result.fit_seconds == result.metrics["fit_seconds"] > 0


def test_laplace_on_a_constrained_model_stays_in_the_support():
    # σ² > 0 through exp: the mode and Hessian are on the log-variance scale.
    result = fit(Cell("test", "linear_regression_unknown_noise", (), "laplace", (), SETTINGS, 0))
    assert result.status == "ok", result.reason + result.traceback
    model = MODELS["linear_regression_unknown_noise"]()
    assert np.all(result.draws[:, -1] > 0)
    assert np.all(
        np.isfinite(model.unnormalized_log_prob(tf.constant(result.draws, model.dtype)).numpy())
    )
    for metric in ("elbo", "khat", "mean_z_error_max", "fit_seconds"):
        assert np.isfinite(result.metrics[metric]), metric


def test_laplace_that_does_not_converge_says_so():
    # One L-BFGS iteration and no Newton step cannot reach a correlated Gaussian's mode: the
    # approximation exists (the Hessian is positive definite) but is flagged unconverged.
    result = fit(
        Cell("test", "correlated_gaussian", (), "laplace", (("max_iterations", 1),), SETTINGS, 0)
    )
    assert result.status == "ok", result.reason + result.traceback
    assert result.converged is False
    assert "no mode to 0.001 nats" in result.convergence_reason
    converged = fit(Cell("test", "correlated_gaussian", (), "laplace", (), SETTINGS, 0))
    assert converged.converged is True and "Newton decrement" in converged.convergence_reason


def test_laplace_is_fast_and_converges_on_ordinary_regressions():
    # The models on which the former L-BFGS-only search failed (log densities of size 10²–10³
    # in float32, badly scaled coordinates).
    for model in ("hierarchical_regression_wine", "logistic_regression_breast_cancer"):
        result = fit(Cell("test", model, (), "laplace", (), SETTINGS, 0))
        assert result.status == "ok", result.reason + result.traceback
        assert result.converged is True, result.convergence_reason
        assert result.metrics["newton_decrement"] < 1e-3


def test_laplace_is_accurate_on_a_badly_scaled_regression():
    # The unscaled wine regression's mode has coefficients of order 100 (|u| > 50 on identity
    # coordinates): a mode, not a runaway; the Newton polish reaches it and the Gaussian there
    # matches the reference (bounds: docs/benchmarks.md's accuracy rule, far outside the Monte
    # Carlo error of 1,000 draws).
    result = fit(Cell("test", "unscaled_regression_wine", (), "laplace", (), SETTINGS, 0))
    assert result.status == "ok", result.reason + result.traceback
    assert result.converged is True, result.convergence_reason
    m = result.metrics
    assert m["mean_z_error_max"] < 0.5 and 0.8 <= m["std_ratio_geomean"] <= 1.25, m
