"""The original-units regressions' NUTS references against an independent exact computation.

Given σ, the posterior of the coefficients ``w = (α, β)`` of
:func:`harness.models.unscaled_regression.original_units_regression` is Gaussian (its prior is
Gaussian in ``(α_c, β)`` and so in ``(α, β)``), and the marginal posterior of σ is one-
dimensional: quadrature over σ gives the exact posterior moments, to which the shipped NUTS
files must agree within their Monte Carlo standard errors.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.models import MODELS
from harness.models.unscaled_regression import PRIOR_SCALE_FACTOR

# 4.5 standard errors over a dozen coordinates: a false alarm has probability < 1e-4.
Z = 4.5


def _exact_moments(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and sd of ``[α, β, σ]`` by quadrature over σ (a 4,001-point grid
    covering ±12 posterior sds of σ; the integrand is smooth, so the grid error is far below
    the references' Monte Carlo error)."""
    n, k = x.shape
    design = np.column_stack([np.ones(n), x])
    y_scale = y.std()
    # Prior of w = (α, β): α_c = α + x̄·β ~ N(ȳ, (2.5 s_y)²), β ~ N(0, diag((2.5 s_y/s_x)²)).
    to_w = np.eye(k + 1)
    to_w[0, 1:] = -x.mean(axis=0)
    prior_cov = (
        to_w
        @ np.diag(np.r_[PRIOR_SCALE_FACTOR * y_scale, PRIOR_SCALE_FACTOR * y_scale / x.std(0)] ** 2)
        @ to_w.T
    )
    prior_mean = np.r_[y.mean(), np.zeros(k)]
    prior_precision = np.linalg.inv(prior_cov)
    residual_sd = np.std(y - design @ np.linalg.lstsq(design, y, rcond=None)[0])
    sigmas = residual_sd * np.linspace(1 - 12 / np.sqrt(2 * n), 1 + 12 / np.sqrt(2 * n), 4001)
    log_weights, means, covs = [], [], []
    for sigma in sigmas:
        precision = prior_precision + design.T @ design / sigma**2
        cov = np.linalg.inv(precision)
        mean = cov @ (prior_precision @ prior_mean + design.T @ y / sigma**2)
        log_marginal = (
            -n * np.log(sigma)
            - 0.5 * np.linalg.slogdet(prior_cov @ precision)[1]
            - 0.5
            * (y @ y / sigma**2 + prior_mean @ prior_precision @ prior_mean - mean @ precision @ mean)
        )
        log_weights.append(log_marginal - sigma / y_scale)  # Exponential(1/s_y) prior on σ
        means.append(mean)
        covs.append(cov)
    weights = np.exp(np.array(log_weights) - np.max(log_weights))
    weights /= weights.sum()
    assert weights[0] < 1e-12 and weights[-1] < 1e-12  # the grid holds the whole posterior
    means, covs = np.array(means), np.array(covs)
    w_mean = weights @ means
    w_cov = np.einsum("s,sij->ij", weights, covs + np.einsum("si,sj->sij", means, means))
    w_cov -= np.outer(w_mean, w_mean)
    sigma_mean = weights @ sigmas
    sigma_sd = np.sqrt(weights @ sigmas**2 - sigma_mean**2)
    return np.r_[w_mean, sigma_mean], np.r_[np.sqrt(np.diag(w_cov)), sigma_sd]


@pytest.mark.parametrize("name", ["unscaled_regression_wine", "correlated_regression_wine"])
def test_nuts_reference_agrees_with_exact_moments(name):
    model = MODELS[name](dtype="float64")
    mean, sd = _exact_moments(model.data["x"], model.data["y"])
    ref = model.reference
    z_mean = (ref.mean - mean) / ref.mean_standard_error
    z_sd = (ref.standard_deviation - sd) / ref.standard_deviation_standard_error
    assert np.all(np.abs(z_mean) < Z), z_mean
    assert np.all(np.abs(z_sd) < Z), z_sd
    # The check has power: the references' errors are ~1 % of a posterior sd.
    assert np.all(ref.mean_standard_error < 0.02 * sd)
