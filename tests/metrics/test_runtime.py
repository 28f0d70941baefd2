"""Runtime metrics on constructed traces with known answers."""

from __future__ import annotations

import numpy as np

from harness.metrics import runtime


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
