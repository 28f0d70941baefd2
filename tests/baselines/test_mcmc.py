"""The NUTS baseline: a draw budget on the same axes; draws-only metrics."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from harness.baselines.mcmc import build_nuts
from harness.baselines.nuts import diagnose
from harness.fit import fit
from harness.models import MODELS
from harness.spec import Cell, FitSettings

SETTINGS = FitSettings(elbo_sample_size=1000, num_draws_kept=100)


@pytest.mark.slow
def test_nuts_cell_has_draw_metrics_and_no_log_weight_metrics():
    budget = (("num_chains", 2), ("num_draws", 100), ("num_warmup", 100))
    result = fit(Cell("test", "banana", (), "nuts", budget, SETTINGS, 0))
    assert result.status == "ok", result.reason + result.traceback
    assert result.draws.shape == (100, 2)
    assert result.num_steps_run == 200
    for metric in (
        "mean_z_error_max",
        "std_ratio_geomean",
        "coverage_90",
        "wasserstein_1",
        "potential_scale_reduction_max",
        "effective_sample_size_min",
        "num_gradient_evaluations",
        "fit_seconds",
    ):
        assert np.isfinite(result.metrics[metric]), metric
    # No density: the ELBO and everything built on log weights are undefined, hence absent.
    for metric in ("elbo", "iw_elbo", "khat", "log_normalizer_error"):
        assert metric not in result.metrics, metric


@pytest.mark.slow
def test_nuts_at_a_large_budget_matches_the_reference_mean():
    model = MODELS["correlated_gaussian"]()
    chains, draws = 4, 1000
    outcome = build_nuts(
        model, seed=tf.constant([11, 12]), num_chains=chains, num_warmup=500, num_draws=draws
    )
    pooled = outcome.draws
    mcse = diagnose(pooled.reshape(chains, draws, model.dimension))["mean_standard_error"]
    # z-test with the Monte Carlo standard error of the NUTS mean (the reference is exact).
    z = (pooled.mean(0) - model.reference.mean) / np.sqrt(
        mcse**2 + model.reference.mean_standard_error**2
    )
    assert np.all(np.abs(z) < 5), z
    assert outcome.metrics["potential_scale_reduction_max"] < 1.05
