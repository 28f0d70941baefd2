"""Mode-coverage metrics on known cases: q = target, and a Gaussian on one mode."""

from __future__ import annotations

import numpy as np
import pytest

from harness.metrics.modes import RECOVERY_THRESHOLD, mode_metrics, mode_shares
from harness.metrics.summary import posterior_metrics
from harness.models import MODELS
from harness.models.mixture import exact_draws

NUM_DRAWS = 4096


@pytest.fixture(scope="module", params=["multimodal_2d", "multimodal_nd"])
def model(request):
    return MODELS[request.param]()


def test_the_target_itself_recovers_every_mode(model):
    modes = model.reference.modes
    draws = exact_draws(modes.weights, modes.means, modes.covariances, NUM_DRAWS, seed=11)
    metrics = mode_metrics(draws, modes)
    assert metrics["mode_fraction_recovered"] == 1.0
    # TV of a multinomial sample's shares from its probabilities: each |q̂_m − π_m| is below 4.5
    # of its binomial standard errors (plus the ≤ 0.25 % of draws assigned across modes).
    bound = 0.5 * np.sum(4.5 * np.sqrt(modes.weights * (1 - modes.weights) / NUM_DRAWS) + 0.0025)
    assert metrics["mode_weight_tv"] <= bound


def test_a_gaussian_on_one_mode_recovers_one_mode(model):
    modes = model.reference.modes
    for m in range(modes.num_modes):
        one_hot = np.eye(modes.num_modes)[m]
        draws = exact_draws(one_hot, modes.means, modes.covariances, NUM_DRAWS, seed=12 + m)
        metrics = mode_metrics(draws, modes)
        assert metrics["mode_fraction_recovered"] == pytest.approx(1 / modes.num_modes)
        # TV = 1 − π_m − (q's share outside mode m) exactly, when q under-weights every other
        # mode; that share is the separated modes' small overlap.
        shares = mode_shares(draws, modes)
        outside = 1 - shares[m]
        assert outside < RECOVERY_THRESHOLD * modes.weights.min()
        assert metrics["mode_weight_tv"] == pytest.approx(1 - modes.weights[m] - outside)


def test_metrics_are_absent_for_models_without_modes():
    model = MODELS["correlated_gaussian"]()
    draws = model.reference.draws[:1000]
    out = posterior_metrics(model, draws, np.zeros(len(draws)))
    assert "wasserstein_1" in out
    assert not {"mode_fraction_recovered", "mode_weight_tv"} & set(out)


def test_metrics_are_logged_for_models_with_modes(model):
    draws = model.reference.draws[:1000]
    out = posterior_metrics(model, draws, np.zeros(len(draws)))
    assert out["mode_fraction_recovered"] == 1.0
    assert 0 <= out["mode_weight_tv"] < 0.2
