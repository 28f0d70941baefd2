"""The regressions' NUTS references against an independent exact computation.

Given the scales, each regression's coefficients ``w = (α, β)`` have a Gaussian posterior:
for :func:`harness.models.unscaled_regression.original_units_regression` given σ (its prior is
Gaussian in ``(α_c, β)`` and so in ``(α, β)``), for the shrinkage regression given (τ, σ).
Quadrature over the one or two scales gives the exact posterior moments, to which the shipped
NUTS files must agree within their Monte Carlo standard errors.
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
            * (
                y @ y / sigma**2
                + prior_mean @ prior_precision @ prior_mean
                - mean @ precision @ mean
            )
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


def _shrinkage_exact_moments(x, y, ref, grid_size=121):
    """Posterior mean and sd of ``[α, β, τ, σ]`` of the shrinkage regression by quadrature on
    a grid in (log τ, log σ) spanning ±10 sds of each around the reference's values (the
    integrand is smooth and the edges carry < 10⁻¹² of the mass)."""
    n, k = x.shape
    design = np.column_stack([np.ones(n), x])
    gram, xty, yty = design.T @ design, design.T @ y, y @ y
    ticks = np.linspace(-10, 10, grid_size)
    log_taus = np.log(ref.mean[-2]) + ref.standard_deviation[-2] / ref.mean[-2] * ticks
    log_sigmas = np.log(ref.mean[-1]) + ref.standard_deviation[-1] / ref.mean[-1] * ticks
    sigmas = np.exp(log_sigmas)
    log_weights = np.empty((grid_size, grid_size))
    means = np.empty((grid_size, grid_size, k + 1))
    variances = np.empty_like(means)
    for i, log_tau in enumerate(log_taus):
        prior_precision = np.r_[1.0, np.full(k, np.exp(-2 * log_tau))]
        precision = np.diag(prior_precision) + gram / sigmas[:, None, None] ** 2
        cov = np.linalg.inv(precision)
        mean = np.einsum("sij,sj->si", cov, xty / sigmas[:, None] ** 2)
        log_marginal = (
            -n * log_sigmas
            - 0.5 * (np.linalg.slogdet(precision)[1] - np.sum(np.log(prior_precision)))
            - 0.5 * (yty / sigmas**2 - np.einsum("si,sij,sj->s", mean, precision, mean))
        )
        # HalfCauchy(1) on τ, HalfNormal(1) on σ, and the Jacobians of the log grid.
        log_prior = -np.log1p(np.exp(2 * log_tau)) + log_tau - 0.5 * sigmas**2 + log_sigmas
        log_weights[i], means[i] = log_marginal + log_prior, mean
        variances[i] = np.diagonal(cov, axis1=1, axis2=2)
    weights = np.exp(log_weights - log_weights.max())
    weights /= weights.sum()
    edges = np.r_[weights[0], weights[-1], weights[:, 0], weights[:, -1]]
    assert np.all(edges < 1e-12)  # the grid holds the whole posterior
    w_mean = np.einsum("ts,tsi->i", weights, means)
    w_var = np.einsum("ts,tsi->i", weights, variances + means**2) - w_mean**2
    taus = np.exp(log_taus)[:, None]
    scale_mean = [np.sum(weights * taus), np.sum(weights * sigmas)]
    scale_sd = [
        np.sqrt(np.sum(weights * taus**2) - scale_mean[0] ** 2),
        np.sqrt(np.sum(weights * sigmas**2) - scale_mean[1] ** 2),
    ]
    return np.r_[w_mean, scale_mean], np.r_[np.sqrt(w_var), scale_sd]


def _sd_standard_error(ref, num_chains=4):
    """Standard error of the reference sds: the larger of the file's (arviz-stats' MCSE) and
    one from the spread of per-chain sds (the stored draws are chain after chain), pooled over
    coordinates in relative terms.  On the shrinkage regression the per-chain spread is ~1.8×
    the MCSE (NUTS draws are antithetic for means but not for squares)."""
    per_chain = ref.draws.reshape(num_chains, -1, ref.dimension).std(axis=1, ddof=1)
    relative = np.sqrt(np.mean((per_chain / ref.standard_deviation).var(axis=0, ddof=1)))
    between = relative / np.sqrt(num_chains) * ref.standard_deviation
    return np.maximum(ref.standard_deviation_standard_error, between)


@pytest.mark.parametrize(
    "name",
    [
        "unscaled_regression_wine",
        "correlated_regression_wine",
        "shrinkage_regression_breast_cancer",
    ],
)
def test_nuts_reference_agrees_with_exact_moments(name):
    model = MODELS[name](dtype="float64")
    ref = model.reference
    x, y = model.data["x"], model.data["y"]
    if name.startswith("shrinkage"):
        mean, sd = _shrinkage_exact_moments(x, y, ref)
    else:
        mean, sd = _exact_moments(x, y)
    z_mean = (ref.mean - mean) / ref.mean_standard_error
    z_sd = (ref.standard_deviation - sd) / _sd_standard_error(ref)
    assert np.all(np.abs(z_mean) < Z), z_mean
    assert np.all(np.abs(z_sd) < Z), z_sd
    # The check has power: the references' errors are ~1 % of a posterior sd.
    assert np.all(ref.mean_standard_error < 0.02 * sd)
    assert np.all(_sd_standard_error(ref) < 0.03 * sd)
