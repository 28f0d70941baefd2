"""When a stochastic-gradient fit has converged: a statistical rule on the loss trace.

The rule (the *trend-and-decrease rule*) adapts RABVI (Welandawe, Andersen, Vehtari and
Huggins, "A framework for improving the reliability of black-box variational inference", JMLR
2024) to the loss trace.  RABVI runs at a fixed learning rate until the iterates are
stationary (R̂ over windows), averages them, lowers the rate, and stops when lowering it no
longer improves the approximation enough.  Here:

1. **Stationary at this learning rate.**  Over the *window* (the last half of the steps since
   the rate was last set, at least :data:`MIN_WINDOW` steps), the loss is cut into
   :data:`NUM_BATCHES` consecutive batches; the least-squares slope of the batch means gives the
   loss decrease over the window, ``drift``, and its standard error from the residuals (batch
   means of a few hundred steps are nearly independent, so the error accounts for the loss's
   autocorrelation).  The trace is stationary when ``drift + 2·se < tolerance``: with 97.5 %
   confidence the loss fell by less than ``tolerance`` nats over the window, i.e. doubling the
   steps spent at this rate would gain less than that.  The test is in nats, not relative to the
   noise: a loss that falls by 0.9 nats per 200 steps is never stationary, however noisy it is,
   and a trace too noisy to bound its drift is not called stationary.
2. **Lower the rate and compare.**  Once stationary, the window's mean loss is recorded, the
   learning rate is multiplied by :data:`DECREASE_FACTOR`, and the fit goes on until stationary
   again.  At a constant rate the iterates jitter around the optimum and the mean loss carries
   an excess that shrinks with the rate; the gain ``Δ`` between two consecutive stationary means
   measures it.  The fit has **converged** when ``Δ + 2·se(Δ) < tolerance`` (lowering the rate
   further would gain less than ``tolerance``: the excess left at the new rate is about
   ``Δ · f / (1 − f)`` for ``f`` = :data:`DECREASE_FACTOR`, a third of ``Δ``).
3. After :data:`MAX_DECREASES` decreases that each still gained ``tolerance`` or more, the fit
   stops unconverged (a smaller rate would only slow it further), and the reason says so.

Why not Stan ADVI's rule (stop when the relative change of the ELBO's running mean or median
falls below 0.01): it is relative to the ELBO's size (0.01 of a loss of 10⁴ is 100 nats) and
has no error model, so it stops early on slowly improving fits (Yao et al., 2018, "Yes, but did
it work?"; Welandawe et al., 2024, §2).  Why not R̂ of the parameters: flows have thousands of
weakly identified weights, whose R̂ never settles although q does; the loss is the quantity the
harness compares, and one trace serves every family.

Checked at chunk boundaries by :mod:`harness.fit`, on NumPy arrays: microseconds per check.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# Batches of the window for the trend test: the slope's t statistic has NUM_BATCHES − 2 degrees
# of freedom; 8 batches give a useful test while each batch stays long enough (≥ 25 steps in
# the smallest window) for its mean to be nearly independent of its neighbours'.
NUM_BATCHES = 8
# Fewest steps in a window: shorter windows cannot separate a trend from the loss's noise.
MIN_WINDOW = 200
# Learning-rate multiplier after each stationary phase (RABVI uses 0.5 for SGD; Adam's excess
# loss is roughly proportional to its rate, so a larger step down saves phases).
DECREASE_FACTOR = 0.3
# Decreases before the rate is held: 0.3⁴ ≈ 1/120 of the initial rate.
MAX_DECREASES = 4
# z of the one-sided bounds (97.5 %).
_Z = 2.0


@dataclasses.dataclass(frozen=True)
class Trend:
    """The loss decrease over a window, with its standard error (nats)."""

    drift: float
    standard_error: float
    mean: float
    mean_standard_error: float
    num_steps: int

    @property
    def upper(self) -> float:
        """Upper bound (97.5 %) of the decrease over the window."""
        return self.drift + _Z * self.standard_error


def trend(losses: np.ndarray) -> Trend:
    """Least-squares trend of the batch means of ``losses`` (see the module docstring)."""
    losses = np.asarray(losses, np.float64)
    n = losses.size
    size = n // NUM_BATCHES
    if size == 0 or not np.all(np.isfinite(losses)):
        return Trend(float("inf"), float("inf"), float("nan"), float("inf"), n)
    used = losses[n - size * NUM_BATCHES :].reshape(NUM_BATCHES, size)
    means = used.mean(axis=1)
    x = np.arange(NUM_BATCHES) - (NUM_BATCHES - 1) / 2
    slope = float(np.dot(x, means) / np.dot(x, x))
    residuals = means - means.mean() - slope * x
    residual_variance = float(np.dot(residuals, residuals) / (NUM_BATCHES - 2))
    slope_error = np.sqrt(residual_variance / np.dot(x, x))
    # Decrease over the window: −slope per batch × batches spanned.
    span = NUM_BATCHES
    # The mean's error from the batch means' spread around their own trend.
    mean_error = float(np.sqrt(np.var(means, ddof=1) / NUM_BATCHES))
    return Trend(
        drift=-slope * span,
        standard_error=float(slope_error * span),
        mean=float(means.mean()),
        mean_standard_error=mean_error,
        num_steps=size * NUM_BATCHES,
    )


@dataclasses.dataclass(frozen=True)
class Verdict:
    """Whether a fit converged, why, and at which step the rule first held (else None)."""

    converged: bool
    reason: str
    step: int | None = None


@dataclasses.dataclass
class Controller:
    """The rule as a state machine over a growing loss trace (one fit, or the summed loss of a
    batch of replicates).

    ``update(losses)`` is called at every chunk boundary with the whole trace so far; it
    returns ``"continue"``, ``"decrease"`` (multiply the learning rate by
    :data:`DECREASE_FACTOR`; the trace goes on) or ``"stop"`` (converged).  With
    ``adapt_learning_rate=False`` (an explicit schedule), stationarity alone is the verdict.

    Attributes:
      tolerance: Nats (see the module docstring).
      adapt_learning_rate: Lower the rate between stationary phases (else the rate is the
        caller's).
    """

    tolerance: float
    adapt_learning_rate: bool = True
    level_start: int = 0
    decreases: int = 0
    level_means: list = dataclasses.field(default_factory=list)
    verdict: Verdict | None = None
    last_gain: tuple[float, float] | None = None

    def window(self, losses: np.ndarray) -> np.ndarray | None:
        """The current window (last half of this level's steps), or None while too short."""
        level = np.asarray(losses)[self.level_start :]
        if level.size < 2 * MIN_WINDOW:
            return None
        return level[level.size // 2 :]

    def update(self, losses: np.ndarray) -> str:
        if self.verdict is not None:
            return "stop"
        window = self.window(losses)
        if window is None:
            return "continue"
        found = trend(window)
        if found.upper >= self.tolerance:
            return "continue"
        step = int(np.asarray(losses).size)
        if not self.adapt_learning_rate:
            self.verdict = Verdict(
                True,
                f"stationary: loss fell {found.drift:.2g} ± {found.standard_error:.2g} nats "
                f"over the last {found.num_steps} steps (< {self.tolerance:g})",
                step,
            )
            return "stop"
        if self.level_means:
            previous = self.level_means[-1]
            gain = previous.mean - found.mean
            error = float(np.hypot(previous.mean_standard_error, found.mean_standard_error))
            self.last_gain = (gain, error)
            if gain + _Z * error < self.tolerance:
                self.verdict = Verdict(
                    True,
                    f"stationary after {self.decreases} learning-rate decrease"
                    f"{'s' if self.decreases != 1 else ''}; the last gained "
                    f"{gain:.2g} ± {error:.2g} nats (< {self.tolerance:g})",
                    step,
                )
                return "stop"
        self.level_means.append(found)
        if self.decreases >= MAX_DECREASES:
            gain, error = self.last_gain if self.last_gain else (float("nan"), float("nan"))
            self.verdict = Verdict(
                False,
                f"the learning rate was lowered {MAX_DECREASES} times and the last decrease "
                f"still gained {gain:.2g} ± {error:.2g} nats (>= {self.tolerance:g})",
            )
            return "stop"
        self.decreases += 1
        self.level_start = step
        return "decrease"

    def final(self, losses: np.ndarray, num_steps: int, budget_reached: bool) -> Verdict:
        """The verdict when the fit ends (converged by the rule, or why not)."""
        losses = np.asarray(losses)
        if self.verdict is not None and not self.verdict.converged:
            return self.verdict
        if self.verdict is not None and self.verdict.converged:
            if not budget_reached:
                return self.verdict
            # Fixed-budget fits go on after the rule held: the end must still be stationary.
            window = self.window(losses)
            if window is None or trend(window).upper < self.tolerance:
                return self.verdict
            found = trend(window)
            return Verdict(
                False,
                f"the rule held at step {self.verdict.step} but the loss moved by "
                f"{found.drift:.2g} ± {found.standard_error:.2g} nats over the last "
                f"{found.num_steps} steps",
                None,
            )
        if not np.all(np.isfinite(losses)):
            return Verdict(False, "the loss became non-finite")
        window = self.window(losses)
        if window is None:
            return Verdict(
                False,
                f"budget of {num_steps} steps reached before a window of "
                f"{2 * MIN_WINDOW} steps at one learning rate could be judged",
            )
        found = trend(window)
        if found.upper >= self.tolerance:
            return Verdict(
                False,
                f"budget of {num_steps} steps reached; the loss still fell "
                f"{found.drift:.2g} ± {found.standard_error:.2g} nats over the last "
                f"{found.num_steps} steps",
            )
        gain = (
            f"; the last learning-rate decrease gained {self.last_gain[0]:.2g} ± "
            f"{self.last_gain[1]:.2g} nats"
            if self.last_gain
            else "; the learning rate was not yet lowered to check the excess loss"
        )
        return Verdict(False, f"budget of {num_steps} steps reached while stationary{gain}")


def stationary_verdict(losses: np.ndarray, tolerance: float) -> Verdict:
    """The stationarity test alone on the last half of a whole trace (fits whose loop does not
    run the controller, e.g. the amortized VAE training)."""
    losses = np.asarray(losses, np.float64)
    if losses.size < 2 * MIN_WINDOW:
        return Verdict(False, f"fewer than {2 * MIN_WINDOW} steps: too short to judge")
    if not np.all(np.isfinite(losses)):
        return Verdict(False, "the loss became non-finite")
    found = trend(losses[losses.size // 2 :])
    if found.upper < tolerance:
        return Verdict(
            True,
            f"stationary: loss fell {found.drift:.2g} ± {found.standard_error:.2g} nats over "
            f"the last {found.num_steps} steps (< {tolerance:g})",
            int(losses.size),
        )
    return Verdict(
        False,
        f"loss still fell {found.drift:.2g} ± {found.standard_error:.2g} nats over the last "
        f"{found.num_steps} steps",
    )


# --- The confirmation: a tuned continuation before "converged" -----------------------------
#
# The rule above judges the trace locally: a window of a few hundred steps at one rate.  A flow
# started at the Gaussian optimum sits on a plateau for thousands of steps (measured on the
# banana: IAF at Adam 0.01 under cosine decay gains nothing in 2,000 steps and 0.45 nats in
# 8,000), so the rule sees a flat trace and would stop there.  Before a fit is called converged
# it is therefore *continued*: a cosine cycle from a raised rate over at least as many steps as
# the fit has taken (and at least the family's ``check_horizon``), judged by the mean loss at
# the cycle's end, where the rate has decayed to a few percent of its peak.  The fit converged
# when that continuation gained less than ``tolerance`` (with 97.5 % confidence, as above);
# otherwise the continued state is kept and the next cycle, at the same peak, is twice as long.
# A cycle that ends worse or non-finite is undone and retried at a third of the rate.

# The least peak rate of a continuation.  The pilots, started at the Gaussian optimum, prefer
# the smallest rate (any large step first loses ground), and a flow crosses its plateau at 0.01
# (measured: Adam 0.01 with cosine decay reaches the banana's optimum; 0.003 takes ~3× longer,
# 0.03 is unstable for IAF and RealNVP).
CHECK_MIN_LEARNING_RATE = 0.01
# Rate multiplier after a continuation that ended worse or non-finite, and how many such.
CHECK_BACKOFF = 0.3
MAX_FAILED_CHECKS = 2
# The least part of its planned length that a continuation cut by the budget must run to count:
# more than 1.5× the continuation before it (measured: flows whose doubled continuation was cut
# by 250 of 32,000 steps were refused for it).
CHECK_MIN_FRACTION = 0.75
# The end of a cycle whose mean is compared: the last tenth (the rate below 2.5 % of its peak),
# at least MIN_WINDOW steps.
CHECK_END_FRACTION = 0.1


def cycle_rates(peak: float, pieces: int) -> list[float]:
    """Piecewise-constant cosine decay from ``peak`` towards 0: the rate of each of ``pieces``
    equal pieces, taken at the piece's midpoint."""
    return [peak * 0.5 * (1.0 + np.cos(np.pi * (k + 0.5) / pieces)) for k in range(pieces)]


def end_of_cycle(losses: np.ndarray) -> Trend:
    """The trend (mean and its error) of a cycle's end: its last tenth, at least MIN_WINDOW
    steps."""
    losses = np.asarray(losses, np.float64)
    size = max(MIN_WINDOW, int(losses.size * CHECK_END_FRACTION))
    return trend(losses[-size:])


@dataclasses.dataclass(frozen=True)
class Continuation:
    """What one continuation gained over the state it started from (nats, with its error)."""

    steps: int
    peak_rate: float
    gain: float
    standard_error: float

    def finite(self) -> bool:
        return bool(np.isfinite(self.gain) and np.isfinite(self.standard_error))

    def worse(self, tolerance: float) -> bool:
        """Ended worse than it started by more than ``tolerance`` (or non-finite): undone."""
        return not self.finite() or self.gain + _Z * self.standard_error < -tolerance

    def gained(self, tolerance: float) -> bool:
        """Gained ``tolerance`` or more, or could not be bounded below it."""
        return self.gain + _Z * self.standard_error >= tolerance

    def describe(self) -> str:
        return (
            f"a continuation of {self.steps} steps (cosine from {self.peak_rate:.2g}) gained "
            f"{self.gain:.2g} ± {self.standard_error:.2g} nats"
        )


def continuation(reference: Trend, end: Trend, steps: int, peak_rate: float) -> Continuation:
    """The gain of a continuation whose end is ``end`` over a state whose loss is ``reference``."""
    return Continuation(
        steps,
        peak_rate,
        reference.mean - end.mean,
        float(np.hypot(reference.mean_standard_error, end.mean_standard_error)),
    )
