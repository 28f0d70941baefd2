"""VSBC statistics on the conjugate normal mean, where the exact posterior is known.

No fitting: q is the exact posterior (symmetric p-values) or the exact posterior shifted by
one posterior sd (asymmetric).  The data are simulated with NumPy from fixed seeds.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.metrics import vsbc

# μ ~ N(0, τ²), y_j ~ N(μ, σ²), j = 1..n: posterior N(s²·Σy/σ², s²), 1/s² = 1/τ² + n/σ².
TAU, SIGMA, N_OBS, DIM = 2.0, 1.0, 10, 3
NUM_SIMULATIONS, NUM_DRAWS = 200, 1000


def _simulated_probabilities(shift_in_sd: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    post_var = 1.0 / (1.0 / TAU**2 + N_OBS / SIGMA**2)
    p = []
    for _ in range(NUM_SIMULATIONS):
        truth = rng.normal(0.0, TAU, DIM)
        y = truth + SIGMA * rng.normal(size=(N_OBS, DIM))
        post_mean = post_var * y.sum(axis=0) / SIGMA**2
        q_mean = post_mean + shift_in_sd * np.sqrt(post_var)
        draws = q_mean + np.sqrt(post_var) * rng.normal(size=(NUM_DRAWS, DIM))
        p.append(vsbc.probabilities(draws, truth))
    return np.array(p)


def test_probabilities_count_draws_below_truth_with_ties_half():
    draws = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 3.0], [3.0, 3.0]])
    np.testing.assert_allclose(vsbc.probabilities(draws, [1.5, 1.0]), [0.5, 0.25])
    with pytest.raises(ValueError, match="coordinates"):
        vsbc.probabilities(draws, [1.0])


def test_exact_posterior_is_symmetric():
    p = _simulated_probabilities(0.0)
    # The exact posterior makes p uniform: mean ½ within its Monte Carlo error (sd of U(0,1)
    # is 1/√12), and the asymmetry test does not reject.
    assert np.all(np.abs(p.mean(axis=0) - 0.5) < 4 / np.sqrt(12 * NUM_SIMULATIONS))
    pvalues = vsbc.asymmetry_pvalues(p)
    summary = vsbc.summary(pvalues)
    assert summary["vsbc_bonferroni_pvalue"] >= vsbc.DEFAULT_LEVEL
    assert summary["vsbc_symmetric"] == 1.0 and summary["vsbc_num_asymmetric"] == 0.0


def test_shifted_posterior_is_asymmetric_in_every_coordinate():
    # q shifted up by one posterior sd: Pr_q(μ < μ_true) = Φ(Z − 1) with Z ~ N(0, 1), mostly
    # below ½ (mean ≈ 0.24), which the KS test of p against 1 − p detects with M = 200.
    pvalues = vsbc.asymmetry_pvalues(_simulated_probabilities(1.0))
    summary = vsbc.summary(pvalues)
    assert np.all(pvalues < 1e-6)
    assert summary["vsbc_symmetric"] == 0.0 and summary["vsbc_num_asymmetric"] == DIM
    assert summary["vsbc_bonferroni_pvalue"] == pytest.approx(DIM * pvalues.min())


def test_asymmetry_needs_two_simulations():
    with pytest.raises(ValueError, match="at least 2"):
        vsbc.asymmetry_pvalues(np.array([[0.5, 0.5]]))
