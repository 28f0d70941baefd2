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


def test_gaussian_kl_full_covariance_matches_diagonal_closed_form_after_rotation():
    # KL is invariant under a rotation applied to both Gaussians: rotate a diagonal pair
    # (closed form Σ_i log(σp/σq) + (σq² + Δ²)/(2σp²) − ½) into full covariances.
    rng = np.random.default_rng(4)
    d = 4
    mq, mp = rng.normal(size=d), rng.normal(size=d)
    sq, sp = rng.uniform(0.5, 2, size=d), rng.uniform(0.5, 2, size=d)
    expected = np.sum(np.log(sp / sq) + (sq**2 + (mq - mp) ** 2) / (2 * sp**2) - 0.5)
    rotation, _ = np.linalg.qr(rng.normal(size=(d, d)))
    kl = quality.gaussian_kl(
        rotation @ mq,
        rotation @ np.diag(sq**2) @ rotation.T,
        rotation @ mp,
        rotation @ np.diag(sp**2) @ rotation.T,
    )
    assert kl == pytest.approx(expected, rel=1e-10)
    assert np.isnan(quality.gaussian_kl([0.0], [[-1.0]], [0.0], [[1.0]]))


def test_iw_elbo_is_elbo_at_k1_and_increases_with_k_towards_log_z():
    # Log weights N(0, 1): E[w] = e^½, so log Z = ½ and the IW bound rises from the ELBO (0)
    # towards ½ as K grows (E[IW_K] is non-decreasing in K, Burda et al. 2016, Thm 1).  The
    # expected gaps between successive K here are ≥ 0.03, 4 combined standard errors ≈ 0.027.
    w = np.random.default_rng(5).normal(size=2**16)
    e, e_se = quality.elbo(w)
    assert quality.iw_elbo(w, 1)[0] == pytest.approx(e, abs=1e-12)
    previous, previous_se = e, e_se
    for k in (4, 16, 64):
        value, se = quality.iw_elbo(w, k)
        assert value - previous > 4 * np.hypot(se, previous_se)
        assert value < 0.5 + 4 * se
        previous, previous_se = value, se
    assert np.isnan(quality.iw_elbo(w[:10], 8)[0])  # one group: no standard error


def test_iw_draws_needed_tops_up_to_min_groups():
    assert quality.iw_draws_needed(4096, 64) == 4096
    assert quality.iw_draws_needed(4096, 1024) == quality.IW_MIN_GROUPS * 1024


def test_both_elbo_forms_agree_within_standard_errors_on_conjugate_normal():
    # y_j ~ N(μ, 1), μ ~ N(0, 2²); q = N(0.3, 0.4²) (not the posterior).  Form 1 averages
    # log p(y|μ) + log p(μ) − log q(μ); form 2 averages log p(y|μ) and subtracts the exact
    # KL(q‖prior).  Their difference is the Monte Carlo error of the KL term alone.
    rng = np.random.default_rng(6)
    y = rng.normal(0.5, 1.0, size=20)
    mu = rng.normal(0.3, 0.4, size=4096)
    log_lik = stats.norm(mu[:, None], 1.0).logpdf(y).sum(axis=1)
    log_prior = stats.norm(0, 2).logpdf(mu)
    log_q = stats.norm(0.3, 0.4).logpdf(mu)
    joint, joint_se = quality.elbo(log_lik + log_prior - log_q)
    kl = quality.gaussian_kl([0.3], [[0.16]], [0.0], [[4.0]])
    split, split_se = quality.elbo_likelihood_kl(log_lik, kl)
    assert abs(joint - split) <= 4 * np.hypot(joint_se, split_se)
    assert split_se > 0
    assert np.isnan(quality.elbo_likelihood_kl(log_lik, float("inf"))[0])


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
    # Too few draws for a Pareto tail, and identical weights: undefined, not a number.
    assert np.isnan(calibration.khat(rng.normal(size=10)))
    assert np.isnan(calibration.khat(np.zeros(n)))
    assert calibration.khat_band(float("nan")) == "undefined"
    assert calibration.khat_band(0.3) == "good"
    assert calibration.khat_band(0.6) == "usable"
    assert calibration.khat_band(0.9) == "unreliable"


def test_z_error_and_std_ratio_exact_on_constructed_draws():
    draws = np.array([[0.0, 10.0], [2.0, 14.0]])  # mean (1, 12), std (√2, 2√2)
    z_max, z_rms = calibration.mean_z_error(draws, np.array([0.0, 10.0]), np.array([1.0, 4.0]))
    assert z_max == pytest.approx(1.0) and z_rms == pytest.approx(np.sqrt((1 + 0.25) / 2))
    geo, low = calibration.std_ratio(draws, np.array([np.sqrt(2), np.sqrt(2)]))
    assert low == pytest.approx(1.0) and geo == pytest.approx(np.sqrt(2))


def test_calibration_edge_cases_one_dimension_constant_and_nonfinite_draws():
    one_d = np.array([1.0, 3.0])  # a flat [n] array is one coordinate
    assert calibration.mean_z_error(one_d, [1.0], [2.0]) == pytest.approx((0.5, 0.5))
    assert calibration.std_ratio(one_d, [np.sqrt(2)]) == pytest.approx((1.0, 1.0))
    constant = np.ones((100, 2))
    # A collapsed q has std ratio 0 (geometric mean 0, not NaN) and covers no reference mass.
    assert calibration.std_ratio(constant, [1.0, 1.0]) == (0.0, 0.0)
    assert (
        calibration.coverage(constant, 0.9, reference_mean=np.zeros(2), reference_std=np.ones(2))
        == 0.0
    )
    bad = np.array([[0.0], [np.nan], [1.0]])
    assert np.isnan(calibration.mean_z_error(bad, [0.0], [1.0])[0])
    assert np.isnan(calibration.std_ratio(bad, [1.0])[0])
    assert np.isnan(calibration.coverage(bad, 0.5, reference_draws=np.zeros((5, 1))))
    assert np.isnan(calibration.wasserstein_1(bad, np.zeros((5, 1)), [1.0]))
    # A reference sd that is not positive makes the standardized metrics undefined.
    assert np.isnan(calibration.mean_z_error(one_d, [0.0], [0.0])[1])
    assert np.isnan(calibration.std_ratio(one_d, [-1.0])[0])
    with pytest.raises(ValueError, match="level"):
        calibration.coverage(one_d, 1.5, reference_draws=one_d)


@pytest.mark.parametrize("level", [0.5, 0.9])
def test_coverage_of_exact_q_is_nominal_within_mc_error(level):
    rng = np.random.default_rng(2)
    n, d = 20_000, 3
    q = rng.normal(size=(n, d))
    ref = rng.normal(size=(n, d))
    from_draws = calibration.coverage(q, level, reference_draws=ref)
    from_moments = calibration.coverage(
        q, level, reference_mean=np.zeros(d), reference_std=np.ones(d)
    )
    # Binomial error of the reference mass, plus the error of q's quantiles (≈ same size).
    se = np.sqrt(2 * level * (1 - level) / (n * d)) * 2
    assert abs(from_draws - level) < 4 * se
    assert abs(from_moments - level) < 4 * se


def test_wasserstein_matches_scipy_in_1d():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(500, 1)), rng.normal(1.0, 2.0, size=(700, 1))
    expected = stats.wasserstein_distance(a[:, 0] / 2.0, b[:, 0] / 2.0)
    assert calibration.wasserstein_1(a, b, np.array([2.0])) == pytest.approx(expected)


@pytest.mark.parametrize(
    "u, v", [([0.0, 0.0, 1.0], [0.0, 1.0, 1.0]), ([2.0], [-1.0, 5.0]), ([1.0, 1.0, 1.0], [1.0])]
)
def test_wasserstein_matches_scipy_with_ties_and_unequal_sizes(u, v):
    expected = stats.wasserstein_distance(u, v)
    got = calibration.wasserstein_1(np.array(u)[:, None], np.array(v)[:, None], [1.0])
    assert got == pytest.approx(expected, abs=1e-12)


def test_marginal_metrics_are_the_same_with_the_reference_presorted():
    rng = np.random.default_rng(4)
    q = rng.standard_t(4, size=(1000, 3))
    ref = rng.normal(size=(3000, 3)) * [1.0, 2.0, 0.5]
    std = np.array([1.0, 2.0, 0.5])
    presorted = np.sort(ref, axis=0)
    assert calibration.wasserstein_1(q, presorted, std) == pytest.approx(
        calibration.wasserstein_1(q, ref, std), abs=1e-12
    )
    expected = np.mean(
        [stats.wasserstein_distance(q[:, i] / s, ref[:, i] / s) for i, s in enumerate(std)]
    )
    assert calibration.wasserstein_1(q, presorted, std) == pytest.approx(expected, abs=1e-12)
    lower, upper = np.quantile(q, [0.05, 0.95], axis=0)
    inside = np.mean((ref >= lower) & (ref <= upper))
    for reference in (ref, presorted):
        assert calibration.coverage(q, 0.9, reference_draws=reference) == pytest.approx(inside)
