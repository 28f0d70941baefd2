"""Metrics of real fits: which are present for which model, and how they relate.

One short full-rank fit on the conjugate normal mean (exact Gaussian posterior, prior and
likelihood split, known log Z) and one on Eight schools (an inference_gym target: no split, no
log Z), checked against identities that hold whatever the fit's quality.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from harness.fit import fit
from harness.metrics.summary import posterior_metrics
from harness.models.base import Model, Reference
from harness.spec import Cell, FitSettings, MetricSettings

SETTINGS = FitSettings(num_steps=200, sample_size=8, elbo_sample_size=4096, num_draws_kept=100)
# The conjugate fit trains the importance-weighted objective (K = 2): 16 target evaluations a
# step, and the evaluation's metrics do not depend on the training objective.
IW_SETTINGS = dataclasses.replace(SETTINGS, importance_sample_size=2)


def _fit(model, family="full_rank", metrics=None, settings=SETTINGS):
    result = fit(
        Cell("test", model, (), family, (), settings, 0, metrics=metrics or MetricSettings())
    )
    assert result.status == "ok", result.reason + result.traceback
    return result.metrics


def test_conjugate_model_has_every_metric_and_they_are_consistent():
    m = _fit(
        "conjugate_normal_mean",
        metrics=MetricSettings(iw_elbo_k=16),
        settings=IW_SETTINGS,
    )
    for name in (
        "elbo",
        "iw_elbo",
        "elbo_likelihood_kl",
        "kl_divergence",
        "log_normalizer_error",
        "iw_log_normalizer_error",
        "khat",
        "coverage_90",
        "wasserstein_1",
        "compile_seconds",
        "fit_seconds",
        "evaluation_seconds",
        "initialization_seconds",
        "converged",
        "num_gradient_evaluations",
        "peak_memory_mb",
    ):
        assert np.isfinite(m[name]), name
    # The two ELBO forms estimate the same number from the same draws.
    assert abs(m["elbo"] - m["elbo_likelihood_kl"]) <= 4 * np.hypot(
        m["elbo_standard_error"], m["elbo_likelihood_kl_standard_error"]
    )
    # log Z − ELBO estimates KL(q‖p), which a Gaussian q against the Gaussian posterior has
    # exactly; the reference log Z is exact, so only the ELBO's error counts.
    assert abs(m["log_normalizer_error"] - m["kl_divergence"]) <= 4 * m["elbo_standard_error"]
    assert m["iw_elbo"] >= m["elbo"] - 4 * np.hypot(
        m["elbo_standard_error"], m["iw_elbo_standard_error"]
    )
    # Every step of the budget (pilots included), K = 2 draws per particle, plus the mode
    # search of the default initialisation.
    assert m["num_steps_total"] == SETTINGS.num_steps
    assert m["initialization_gradient_evaluations"] > 0
    assert (
        m["num_gradient_evaluations"]
        == SETTINGS.num_steps * SETTINGS.sample_size * 2 + m["initialization_gradient_evaluations"]
    )


def test_gym_target_has_no_split_elbo_no_log_z_and_no_exact_kl():
    m = _fit("eight_schools", family="mean_field")
    for name in (
        "elbo_likelihood_kl",
        "elbo_likelihood_kl_standard_error",
        "kl_divergence",
        "log_normalizer_error",
        "iw_log_normalizer_error",
        "wasserstein_1",
    ):
        assert name not in m, name
    for name in ("elbo", "iw_elbo", "khat", "mean_z_error_rms", "coverage_50"):
        assert np.isfinite(m[name]), name


def test_undefined_metrics_are_absent_not_zero():
    rng = np.random.default_rng(0)
    draws, log_weights = rng.normal(size=(1000, 2)), rng.normal(size=1000)
    bare = Model("bare", "Bare", 2, None, None, None, reference=None)
    assert set(posterior_metrics(bare, draws, log_weights)) == {
        "elbo",
        "elbo_standard_error",
        "iw_elbo",
        "iw_elbo_standard_error",
        "khat",
    }
    moments = Reference(
        mean=np.zeros(2),
        standard_deviation=np.ones(2),
        mean_standard_error=np.zeros(2),
        standard_deviation_standard_error=np.zeros(2),
        kind="moments",
        provenance="test",
    )
    out = posterior_metrics(
        dataclasses.replace(bare, reference=moments),
        draws,
        log_weights,
        gaussian=(np.zeros(2), np.eye(2)),
    )
    for name in ("wasserstein_1", "kl_divergence", "log_normalizer_error"):
        assert name not in out
    # q's 5 % and 95 % quantiles from 1,000 draws are each off by ≈ 0.07 sd (binomial error
    # over the normal density), moving the covered mass by ≈ 0.01: 0.03 is > 4 such errors.
    assert out["coverage_90"] == pytest.approx(0.9, abs=0.03)
    # Non-finite weights: the ELBO family is absent, never NaN or zero.
    bad = log_weights.copy()
    bad[3] = np.nan
    assert "elbo" not in posterior_metrics(bare, draws, bad)
