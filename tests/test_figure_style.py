"""Axis labelling shared by the figures (harness.figures.style): what a reader sees on a log axis."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from harness.figures import style  # noqa: E402


def _labels(low, high, axis="x"):
    fig, ax = plt.subplots()
    (ax.plot([low, high], [1, 2]) if axis == "x" else ax.plot([1, 2], [low, high]))
    style.log_axis(ax, axis)
    fig.canvas.draw()
    ticks = ax.get_xticklabels() if axis == "x" else ax.get_yticklabels()
    labels = [t.get_text() for t in ticks if t.get_text()]
    plt.close(fig)
    return labels


def test_a_wide_count_axis_is_labelled_in_powers_of_ten_never_e_notation():
    # Gradient evaluations from 80 to 1.5 million (Laplace to NUTS): "1e+06" beside "100000"
    # read as two different notations.
    labels = _labels(80, 1.5e6)
    assert labels and all(label.startswith("$") and "10^" in label for label in labels), labels
    assert not any("e+" in label for label in labels)


@pytest.mark.parametrize(("low", "high"), [(0.5, 40.0), (800.0, 30000.0)])
def test_an_ordinary_axis_keeps_plain_numbers(low, high):
    labels = _labels(low, high)
    assert labels and not any("$" in label or "e+" in label for label in labels), labels


def test_a_long_log_axis_label_breaks_before_log_scale():
    # Side-by-side panels about 3 in wide: one line would run into the next panel's label.
    assert style.axis_label("num_gradient_evaluations", log=True).endswith("\n(log scale)")
    assert style.axis_label("fit_seconds", log=True) == "fit time (s, log scale)"
