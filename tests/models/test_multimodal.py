"""The multimodal targets: exact draws, moments and log Z agree (Monte Carlo z-tests)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from scipy.stats import multivariate_normal

from harness.metrics.modes import mode_shares
from harness.models import MODELS

# 4.5 sigma: a false alarm has probability < 1e-5 per check.
Z = 4.5


@pytest.fixture(scope="module", params=["multimodal_2d", "multimodal_nd"])
def model(request):
    return MODELS[request.param]()


def test_log_normalizer_from_the_exact_draws(model):
    """``E_p[g(z) / p̃(z)] = 1/Z`` for any normalised density ``g`` (here the heaviest mode's
    Gaussian; ``g/p̃`` is bounded, so the estimate has finite variance)."""
    ref, modes = model.reference, model.reference.modes
    draws = ref.draws
    log_p = model.unnormalized_log_prob(tf.constant(draws, model.dtype)).numpy().astype(np.float64)
    heaviest = int(np.argmax(modes.weights))
    log_g = multivariate_normal(modes.means[heaviest], modes.covariances[heaviest]).logpdf(draws)
    ratio = np.exp(log_g - log_p)
    estimate, error = ratio.mean(), ratio.std(ddof=1) / np.sqrt(len(ratio))
    assert abs(estimate - np.exp(-ref.log_normalizer)) <= Z * error


def test_draws_fall_into_the_modes_by_their_weights(model):
    modes = model.reference.modes
    shares = mode_shares(model.reference.draws, modes)
    n = len(model.reference.draws)
    error = np.sqrt(modes.weights * (1 - modes.weights) / n)
    # Plus the ≤ 0.25 % of draws that the separated modes' overlap assigns across modes.
    assert np.all(np.abs(shares - modes.weights) <= Z * error + 0.0025), shares


def test_exact_standard_deviation_matches_the_draws(model):
    ref = model.reference
    centred = ref.draws - ref.draws.mean(axis=0)
    n = len(centred)
    variance = np.mean(centred**2, axis=0)
    # Standard error of a sample variance: sqrt((m4 − σ⁴) / n).
    error = np.sqrt((np.mean(centred**4, axis=0) - variance**2) / n)
    assert np.all(np.abs(variance - ref.standard_deviation**2) <= Z * error)


def test_log_density_is_the_mixture_times_its_normalizer(model):
    """``log p̃ − log p = log Z`` at every point, ``p`` the mixture by SciPy."""
    ref, modes = model.reference, model.reference.modes
    points = ref.draws[:50]
    log_mixture = np.logaddexp.reduce(
        [
            np.log(w) + multivariate_normal(mu, cov).logpdf(points)
            for w, mu, cov in zip(modes.weights, modes.means, modes.covariances, strict=True)
        ],
        axis=0,
    )
    log_p = model.unnormalized_log_prob(tf.constant(points, model.dtype)).numpy()
    # float32 log density of size ~10: round-off ~1e-5.
    np.testing.assert_allclose(log_p - log_mixture, ref.log_normalizer, atol=1e-4)


def test_nd_target_takes_its_dimension_and_mode_count():
    model = MODELS["multimodal_nd"](dimension=12, num_modes=3)
    assert model.dimension == 12 and model.reference.modes.num_modes == 3
    with pytest.raises(ValueError, match="num_modes"):
        MODELS["multimodal_nd"](dimension=10, num_modes=11)
