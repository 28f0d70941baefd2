"""The convergence rule: its error rates on synthetic traces, and its verdicts on real fits."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import stats

from harness import convergence
from harness.fit import fit
from harness.spec import Cell, FitSettings

# One-sided level of the trend test at a true decrease equal to the tolerance: the batch means
# are independent normals, so (drift − tolerance) / se is Student-t with NUM_BATCHES − 2
# degrees of freedom, and the rule calls such a trace stationary with probability
# P(t < −2).
LEVEL = stats.t.cdf(-2.0, convergence.NUM_BATCHES - 2)
NUM_TRACES = 3000


def _rate(hits: int, p: float, n: int = NUM_TRACES) -> bool:
    """Whether ``hits`` of ``n`` is within 4 Monte Carlo standard errors of rate ``p``."""
    return abs(hits / n - p) <= 4 * np.sqrt(p * (1 - p) / n)


def test_false_convergence_rate_at_the_tolerance_is_the_tests_level():
    # A loss still falling by exactly the tolerance over the window, with noise: the rule may
    # call it stationary only at the test's level (4.6 %), not more.
    rng = np.random.default_rng(0)
    n, tolerance, noise = 800, 0.25, 1.0
    trend_line = -tolerance * np.arange(n) / n
    stationary = sum(
        convergence.trend(trend_line + noise * rng.standard_normal(n)).upper < tolerance
        for _ in range(NUM_TRACES)
    )
    assert _rate(stationary, LEVEL), stationary / NUM_TRACES


def test_false_alarm_rate_on_a_stationary_trace():
    # A flat trace whose noise makes the drift's standard error se a third of the tolerance:
    # the rule calls it still falling when drift + 2·se_hat >= tolerance = 3·se.
    rng = np.random.default_rng(1)
    n, tolerance = 800, 0.25
    batch = n // convergence.NUM_BATCHES
    x = np.arange(convergence.NUM_BATCHES) - (convergence.NUM_BATCHES - 1) / 2
    # se(drift) = NUM_BATCHES · σ_batch / sqrt(Σx²); σ_batch = σ / sqrt(batch).
    sigma = (tolerance / 3) * np.sqrt(np.dot(x, x)) / convergence.NUM_BATCHES * np.sqrt(batch)
    alarms = sum(
        convergence.trend(sigma * rng.standard_normal(n)).upper >= tolerance
        for _ in range(NUM_TRACES)
    )
    # drift/se ~ N(0, 1) and se_hat/se ~ sqrt(χ²_6/6), independent (least squares on the
    # batch means): the exact probability, by simulation independent of the harness's code.
    df = convergence.NUM_BATCHES - 2
    draws = 200_000
    z = rng.standard_normal(draws)
    ratio = np.sqrt(rng.chisquare(df, draws) / df)
    expected = float(np.mean(z + 2 * ratio >= 3))
    assert _rate(alarms, expected), (alarms / NUM_TRACES, expected)


def test_controller_lowers_the_rate_then_stops_on_flat_traces():
    controller = convergence.Controller(tolerance=0.25)
    rng = np.random.default_rng(2)
    losses = 10 + 0.01 * rng.standard_normal(400)
    assert controller.update(losses) == "decrease"
    assert controller.update(np.concatenate([losses, 10 + 0.01 * rng.standard_normal(200)])) == (
        "continue"
    )
    losses = np.concatenate([losses, 10 + 0.01 * rng.standard_normal(400)])
    assert controller.update(losses) == "stop"
    verdict = controller.final(losses, 10_000, budget_reached=False)
    assert verdict.converged and "1 learning-rate decrease" in verdict.reason
    assert verdict.step == losses.size


def test_controller_never_stops_a_falling_loss_and_says_why():
    controller = convergence.Controller(tolerance=0.25)
    # 0.9 nats per 200 steps (the quickstart's full-rank eight schools at 1,000 steps).
    losses = 50 - 0.9 * np.arange(4000) / 200 + 0.3 * np.random.default_rng(3).standard_normal(4000)
    for end in range(250, 4001, 250):
        assert controller.update(losses[:end]) == "continue"
    verdict = controller.final(losses, 4000, budget_reached=True)
    assert not verdict.converged
    assert "budget of 4000 steps reached; the loss still fell" in verdict.reason


def test_controller_with_a_fixed_schedule_judges_stationarity_alone():
    controller = convergence.Controller(tolerance=0.25, adapt_learning_rate=False)
    losses = np.full(400, 3.0)
    assert controller.update(losses) == "stop"
    assert controller.final(losses, 400, budget_reached=True).converged


def test_stationary_verdict_of_a_whole_trace():
    assert not convergence.stationary_verdict(np.ones(100), 0.25).converged
    assert convergence.stationary_verdict(np.ones(1000), 0.25).converged
    falling = np.linspace(10, 0, 1000)
    assert "still fell" in convergence.stationary_verdict(falling, 0.25).reason


# ----------------------------------------------------------------------- verdicts of real fits

DEFAULTS = FitSettings(elbo_sample_size=1000, num_draws_kept=10)


def _cell(model, family, seed=0, **settings):
    return Cell("test", model, (), family, (), dataclasses.replace(DEFAULTS, **settings), seed)


def test_a_100_step_fit_of_eight_schools_is_not_converged():
    result = fit(_cell("eight_schools", "mean_field", num_steps=100))
    assert result.status == "ok", result.reason + result.traceback
    assert result.converged is False
    assert "budget of 100 steps reached" in result.convergence_reason
    assert result.metrics["converged"] == 0.0 and "seconds_to_converge" not in result.metrics


@pytest.mark.slow
def test_full_rank_on_the_correlated_gaussian_converges_before_the_budget():
    result = fit(_cell("correlated_gaussian", "full_rank"))
    assert result.status == "ok", result.reason + result.traceback
    assert result.converged is True, result.convergence_reason
    assert result.metrics["num_steps_total"] < DEFAULTS.num_steps
    assert result.metrics["seconds_to_converge"] <= result.fit_seconds
    # Converged means accurate here: the family contains the target.
    assert result.metrics["mean_z_error_max"] < 0.5
    assert 0.8 < result.metrics["std_ratio_geomean"] < 1.25
    assert float(result.fit_params["learning_rate_chosen"]) in (0.3, 0.1, 0.03, 0.01, 0.003)


def test_common_random_numbers_two_learning_rates_start_from_the_same_point():
    # Fit settings are not part of the seed: one step at two learning rates starts at the
    # same point with the same noise, so the first loss (evaluated before the update) agrees.
    a, b = (
        fit(_cell("banana", "mean_field", num_steps=3, learning_rate=rate, jit_compile=False))
        for rate in (0.01, 0.1)
    )
    assert a.cell.cell_id != b.cell.cell_id
    assert a.cell.stateless_seed == b.cell.stateless_seed
    assert a.losses[0] == b.losses[0]
    assert a.losses[1] != b.losses[1]
    # The experiment is no part of it either; the seed is.
    other = dataclasses.replace(a.cell, experiment="another")
    assert other.stateless_seed == a.cell.stateless_seed
    assert dataclasses.replace(a.cell, seed=1).stateless_seed != a.cell.stateless_seed
