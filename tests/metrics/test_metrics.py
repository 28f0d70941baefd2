"""Metrics on cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from harness.metrics import calibration, quality


def test_gaussian_kl_matches_closed_form_1d_and_zero_for_equal():
    kl = quality.gaussian_kl([0.5], [[4.0]], [0.0], [[1.0]])
    expected = np.log(1 / 2) + (4 + 0.25) / 2 - 0.5
    assert kl == pytest.approx(expected, rel=1e-12)
    cov = np.array([[2.0, 0.3], [0.3, 1.0]])
    assert quality.gaussian_kl([1, 2], cov, [1, 2], cov) == pytest.approx(0.0, abs=1e-12)


def test_elbo_equals_log_z_when_q_is_p():
    # q = the normalized target: every log weight log p̃(z) − log q(z) equals log Z, so the
    # ELBO is log Z (up to float rounding) with zero standard error.
    from harness.models.correlated_gaussian import covariance

    mean, cov = covariance(4, 0.8)
    log_z = 0.5 * 4 * np.log(2 * np.pi) + 0.5 * np.linalg.slogdet(cov)[1]
    z = np.random.default_rng(0).multivariate_normal(mean, cov, size=4096)
    centred = z - mean
    log_p_tilde = -0.5 * np.einsum("ni,ij,nj->n", centred, np.linalg.inv(cov), centred)
    log_q = stats.multivariate_normal(mean, cov).logpdf(z)
    value, se = quality.elbo(log_p_tilde - log_q)
    assert value == pytest.approx(log_z, abs=1e-9) and se < 1e-9
    iw, _ = quality.iw_elbo(log_p_tilde - log_q, 16)
    assert iw == pytest.approx(log_z, abs=1e-9)


def test_iw_elbo_at_least_elbo_and_nan_on_nonfinite():
    rng = np.random.default_rng(0)
    w = rng.normal(size=8192)
    e, se = quality.elbo(w)
    iw, iw_se = quality.iw_elbo(w, 64)
    # E[IW bound with K] ≥ ELBO; here the gap (≈ 0.5 for unit-variance weights) ≫ the errors.
    assert iw - e > 4 * np.hypot(se, iw_se)
    assert np.isnan(quality.elbo(np.array([0.0, np.inf]))[0])


def test_khat_small_for_exact_q_and_large_for_narrow_q_on_student_t():
    rng = np.random.default_rng(1)
    n = 4096
    # q = p: log weights constant.
    assert calibration.khat(np.zeros(n) + 1e-9 * rng.normal(size=n)) < 0.5
    # Too-narrow Gaussian q = N(0, 0.5²) on a Student-t(3) target: heavy-tailed weights.
    z = rng.normal(scale=0.5, size=n)
    log_w = stats.t(3).logpdf(z) - stats.norm(scale=0.5).logpdf(z)
    assert calibration.khat(log_w) > 0.7
    assert calibration.khat_band(0.3) == "good"
    assert calibration.khat_band(0.6) == "usable"
    assert calibration.khat_band(0.9) == "unreliable"


def test_z_error_and_std_ratio_exact_on_constructed_draws():
    draws = np.array([[0.0, 10.0], [2.0, 14.0]])  # mean (1, 12), std (√2, 2√2)
    z_max, z_rms = calibration.mean_z_error(draws, np.array([0.0, 10.0]), np.array([1.0, 4.0]))
    assert z_max == pytest.approx(1.0) and z_rms == pytest.approx(np.sqrt((1 + 0.25) / 2))
    geo, low = calibration.std_ratio(draws, np.array([np.sqrt(2), np.sqrt(2)]))
    assert low == pytest.approx(1.0) and geo == pytest.approx(np.sqrt(2))


@pytest.mark.parametrize("level", [0.5, 0.9])
def test_coverage_of_exact_q_is_nominal_within_mc_error(level):
    rng = np.random.default_rng(2)
    n, d = 20_000, 3
    q = rng.normal(size=(n, d))
    ref = rng.normal(size=(n, d))
    from_draws = calibration.coverage(q, level, reference_draws=ref)
    from_moments = calibration.coverage(q, level, reference_mean=np.zeros(d),
                                        reference_std=np.ones(d))
    # Binomial error of the reference mass, plus the error of q's quantiles (≈ same size).
    se = np.sqrt(2 * level * (1 - level) / (n * d)) * 2
    assert abs(from_draws - level) < 4 * se
    assert abs(from_moments - level) < 4 * se


def test_wasserstein_matches_scipy_in_1d():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(500, 1)), rng.normal(1.0, 2.0, size=(700, 1))
    expected = stats.wasserstein_distance(a[:, 0] / 2.0, b[:, 0] / 2.0)
    assert calibration.wasserstein_1(a, b, np.array([2.0])) == pytest.approx(expected)
