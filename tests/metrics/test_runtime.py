"""Runtime metrics on constructed traces with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from harness.metrics import runtime


def test_seconds_to_converge_on_a_step_trace():
    # 100 steps, 0.1 s each; the loss is 50 until step 39, then 10 (± 0.3, inside tolerance 1).
    # With a 5-step window the smoothed loss first stays within 1 nat of 10 at the window
    # ending at step 44 (steps 40–44 all at 10), i.e. at 4.5 s.
    n = 100
    seconds = 0.1 * np.arange(1, n + 1)
    losses = np.where(np.arange(n) < 40, 50.0, 10.0) + 0.3 * np.cos(np.arange(n))
    assert runtime.seconds_to_converge(losses, seconds, tolerance=1.0) == pytest.approx(4.5)


def test_seconds_to_converge_flat_and_undefined_traces():
    seconds = np.linspace(0.5, 10, 20)
    # Already converged: the first smoothed point (window 1 for 20 steps).
    assert runtime.seconds_to_converge(np.full(20, 3.0), seconds) == pytest.approx(0.5)
    assert np.isnan(runtime.seconds_to_converge(np.zeros(0), np.zeros(0)))
    assert np.isnan(runtime.seconds_to_converge(np.array([1.0, np.nan]), np.array([1.0, 2.0])))


def test_steps_per_second_and_gradient_evaluations():
    assert runtime.steps_per_second(500, 2.0) == 250.0
    assert np.isnan(runtime.steps_per_second(500, 0.0))
    assert np.isnan(runtime.steps_per_second(500, float("nan")))
    # Each step evaluates the target at sample_size × importance_sample_size particles.
    assert runtime.num_gradient_evaluations(1000, 8) == 8000.0
    assert runtime.num_gradient_evaluations(1000, 8, importance_sample_size=4) == 32000.0


def test_peak_memory_is_a_plausible_positive_size():
    before = runtime.peak_memory_mb()
    block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    after = runtime.peak_memory_mb()
    assert 1.0 < before <= after
    assert after >= 64 and block.sum() > 0
