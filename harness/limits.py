"""Allowed ranges of numeric settings, and the resource limits a spec is checked against.

Pure data and arithmetic (no TensorFlow): :mod:`harness.spec` checks every number of a spec
against these before anything is fitted, so a value that would overflow an int32 counter or
ask for tens of GiB in one step is bad input (exit code 2), not an ``error`` cell after
start-up.  Registries declare the ranges of their models' arguments
(:data:`harness.models.ARGUMENT_RANGES`) and their families' hyperparameters
(:data:`harness.families.HYPERPARAMETER_RANGES`) with :class:`Range`.
"""

from __future__ import annotations

import dataclasses
import math

# TensorFlow counts steps, particles and draws in int32: every integer setting must fit.
INT32_MAX = 2**31 - 1
# Largest tensor of one optimisation step, in elements: sample_size × importance_sample_size
# particles × the model's elements per particle (its dimension; for a VAE, the training
# images × the decoder's width).  2**28 float32 elements are 1 GiB; the step's graph holds a
# few tensors of that size (draws, log densities, gradients), so a step stays within a few GiB.
MAX_STEP_ELEMENTS = 2**28
# Fresh draws of the final evaluation × dimension: max(elbo_sample_size,
# iw_elbo's groups × [metrics] importance_sample_size) draws of d coordinates.
MAX_EVALUATION_ELEMENTS = 2**28
# Losses (and their times) of every step are kept in memory and logged as loss_trace.csv.
MAX_NUM_STEPS = 10_000_000
# Longest value shown in an error message; longer ones are cut (a 100,000-character name
# must not flood the terminal).
MAX_SHOWN = 60


@dataclasses.dataclass(frozen=True)
class Range:
    """The allowed values of a numeric setting: finite, between ``low`` and ``high``.

    Attributes:
      low: Smallest allowed value (None: no lower bound).
      high: Largest allowed value (None: no upper bound, besides :data:`INT32_MAX` for
        integers).
      low_open: ``low`` itself is not allowed.
      high_open: ``high`` itself is not allowed.
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            return False
        return True

    def __str__(self) -> str:
        low = None if self.low is None else f"{self.low:g}"
        high = None if self.high is None else f"{self.high:g}"
        if low is not None and high is not None:
            return (
                f"in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"
            )
        if low is not None:
            return f"{'>' if self.low_open else '>='} {low}"
        if high is not None:
            return f"{'<' if self.high_open else '<='} {high}"
        return "finite"


POSITIVE = Range(0, None, low_open=True)
PROBABILITY = Range(0, 1, low_open=True, high_open=True)


def count(low: int = 1, high: int = INT32_MAX) -> Range:
    """Integers from ``low`` to ``high`` (at most :data:`INT32_MAX`)."""
    return Range(low, min(high, INT32_MAX))


def cut(text: str) -> str:
    """``text`` cut to about :data:`MAX_SHOWN` characters for error messages."""
    text = str(text)
    if len(text) > MAX_SHOWN:
        # Head and tail: a path keeps its file name, a name its start.
        keep = (MAX_SHOWN - 20) // 2
        text = f"{text[:keep]}…{text[-keep:]} ({len(text):,} characters)"
    return text


def show(value) -> str:
    """``repr(value)`` cut by :func:`cut`."""
    return cut(repr(value))


__all__ = [
    "INT32_MAX",
    "MAX_EVALUATION_ELEMENTS",
    "MAX_NUM_STEPS",
    "MAX_SHOWN",
    "MAX_STEP_ELEMENTS",
    "POSITIVE",
    "PROBABILITY",
    "Range",
    "count",
    "cut",
    "show",
]
