"""The metric catalog: every metric the harness logs, declared once.

Each entry says how a metric is shown (a plain label for Markdown, figures and the dashboard,
a LaTeX label for paper tables) and which way is better: ``higher``, ``lower``, ``target``
(closest to a value: a calibrated 90 % interval covers 0.9 of the reference mass, a calibrated
std ratio is 1) or ``none`` (a count or a cost that is not a verdict).  Tables, "best" marks,
the Pareto front, figure labels and the dashboard's key metrics all read it; adding a metric is
one :class:`MetricInfo` line in :data:`CATALOG`.

Nothing here imports TensorFlow, MLflow or matplotlib.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from harness.metrics import modes

DIRECTIONS = ("higher", "lower", "target", "none")


@dataclasses.dataclass(frozen=True)
class PosteriorSample:
    """What a catalog metric's ``compute`` is given: one evaluation of a fitted q.

    Attributes:
      model: The :class:`harness.models.base.Model` (its ``reference``, if any).
      draws: Fresh draws from q, ``[n, d]`` on the model's (constrained) scale.
      log_weights: ``log p̃(z) − log q(z)`` for those draws (NaN for a method without a
        density, NUTS).
    """

    model: Any
    draws: np.ndarray
    log_weights: np.ndarray


@dataclasses.dataclass(frozen=True)
class MetricInfo:
    """How one metric is labelled and compared.

    Attributes:
      name: The logged name (DESIGN.md's names table).
      label: Plain-text label with its unit (Unicode allowed): Markdown, figures, dashboard.
      latex: LaTeX label for paper tables (ASCII, math in ``$...$``).
      direction: ``higher``, ``lower``, ``target`` or ``none`` (see the module docstring).
      target: The ideal value of a ``target`` metric.
      log_scale: Distances to ``target`` are measured on the log scale (ratios: 0.5 and 2 are
        equally far from 1).
      quality: Measures the posterior approximation (not its cost or bookkeeping).
      key: Shown first on the dashboard and in the console summary.
      compute: For a metric computed from one evaluation of a fitted q: ``compute(sample)``
        with a :class:`PosteriorSample`, returning the value, or None where the metric is
        undefined for that model (then it is absent).  None for the metrics the engines and
        :func:`harness.metrics.summary.posterior_metrics` compute themselves.  A new metric
        of this kind is one function in its own module plus its line in :data:`CATALOG`.
    """

    name: str
    label: str
    latex: str
    direction: str = "none"
    target: float | None = None
    log_scale: bool = False
    quality: bool = False
    key: bool = False
    compute: Callable[[PosteriorSample], float | None] | None = None

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise ValueError(f"{self.name}: direction {self.direction!r} not in {DIRECTIONS}")
        if (self.direction == "target") != (self.target is not None):
            raise ValueError(f"{self.name}: a target value goes with direction 'target' only")

    def score(self, values) -> np.ndarray:
        """``values`` mapped so that smaller is better (NaN where undefined or no direction).

        ``higher``: −value; ``lower``: value; ``target``: distance to the target (on the log
        scale for ratios, NaN for non-positive ratios).
        """
        v = np.asarray(values, dtype=np.float64)
        if self.direction == "higher":
            return -v
        if self.direction == "lower":
            return v.copy()
        if self.direction == "target":
            if self.log_scale:
                with np.errstate(divide="ignore", invalid="ignore"):
                    return np.abs(np.log(np.where(v > 0, v, np.nan) / self.target))
            return np.abs(v - self.target)
        return np.full_like(v, np.nan)

    def score_standard_error(self, values, standard_errors) -> np.ndarray:
        """Standard error of :meth:`score` (delta method for log-scale distances)."""
        se = np.abs(np.asarray(standard_errors, dtype=np.float64))
        if self.direction == "target" and self.log_scale:
            v = np.asarray(values, dtype=np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                return se / np.where(v > 0, v, np.nan)
        return se

    @property
    def ranked(self) -> bool:
        """Whether the metric has a better and a worse end (a "best" can be marked)."""
        return self.direction != "none"


CATALOG: tuple[MetricInfo, ...] = (
    # Bounds: higher is better (a tighter bound on log Z is a closer q in KL).
    MetricInfo("elbo", "ELBO (nats)", "ELBO (nats)", "higher", quality=True, key=True),
    MetricInfo("iw_elbo", "IW-ELBO (nats)", "IW-ELBO (nats)", "higher", quality=True),
    MetricInfo(
        "elbo_likelihood_kl",
        "E[log lik.] − KL(q‖prior) (nats)",
        r"$\mathrm{E}\log p(x|z) - \mathrm{KL}$ (nats)",
        "higher",
        quality=True,
    ),
    # Distances to the reference posterior: lower is better.
    MetricInfo("kl_divergence", "KL(q‖p) (nats)", r"KL$(q\,\|\,p)$ (nats)", "lower", quality=True),
    MetricInfo(
        "log_normalizer_error",
        "log Z − ELBO (nats)",
        r"$\log Z -{}$ELBO (nats)",
        "lower",
        quality=True,
    ),
    MetricInfo(
        "iw_log_normalizer_error",
        "log Z − IW-ELBO (nats)",
        r"$\log Z -{}$IW-ELBO (nats)",
        "lower",
        quality=True,
    ),
    MetricInfo(
        "wasserstein_1",
        "W₁ to reference (reference sd)",
        r"$W_1$ (sd)",
        "lower",
        quality=True,
        key=True,
    ),
    MetricInfo(
        "mean_z_error_rms",
        "RMS mean error (reference sd)",
        r"RMS $z$-error (sd)",
        "lower",
        quality=True,
        key=True,
    ),
    MetricInfo(
        "mean_z_error_max",
        "max |mean error| (reference sd)",
        r"max $z$-error (sd)",
        "lower",
        quality=True,
    ),
    # PSIS k̂: lower means importance weights that can be trusted (Vehtari et al. 2024).
    MetricInfo("khat", "PSIS k̂", r"$\hat{k}$", "lower", quality=True, key=True),
    # Calibration: closest to the calibrated value is best; too wide and too narrow both lose.
    MetricInfo(
        "std_ratio_geomean",
        "std ratio q / reference (geometric mean)",
        "std ratio",
        "target",
        target=1.0,
        log_scale=True,
        quality=True,
        key=True,
    ),
    MetricInfo(
        "std_ratio_min",
        "smallest std ratio q / reference",
        "min std ratio",
        "target",
        target=1.0,
        log_scale=True,
        quality=True,
    ),
    MetricInfo(
        "coverage_90",
        "reference mass in q's 90 % interval",
        r"coverage 90\,\%",
        "target",
        target=0.9,
        quality=True,
    ),
    MetricInfo(
        "coverage_50",
        "reference mass in q's 50 % interval",
        r"coverage 50\,\%",
        "target",
        target=0.5,
        quality=True,
    ),
    # Mode coverage, on targets with known modes (harness.metrics.modes; Blessing et al. 2024).
    MetricInfo(
        "mode_fraction_recovered",
        "modes recovered (fraction)",
        "modes recovered",
        "higher",
        quality=True,
        key=True,
        compute=modes.fraction_recovered,
    ),
    MetricInfo(
        "mode_weight_tv",
        "TV distance of mode weights q vs target",
        r"mode-weight TV",
        "lower",
        quality=True,
        compute=modes.weight_tv,
    ),
    # VAE cells: test bounds per image, and what amortization costs.
    MetricInfo(
        "test_iw_elbo",
        "test log-likelihood, IW bound (nats/image)",
        "test log-lik. (nats)",
        "higher",
        quality=True,
        key=True,
    ),
    MetricInfo("test_elbo", "test ELBO (nats/image)", "test ELBO (nats)", "higher", quality=True),
    MetricInfo(
        "amortization_gap",
        "amortization gap (nats/image)",
        "amortization gap (nats)",
        "lower",
        quality=True,
    ),
    # Cost: lower is better, except speed.
    # What a standalone fit of the cell costs, compilation included: the sum of the four parts
    # below it (harness.engines.common.cost_metrics).
    MetricInfo(
        "time_to_result_seconds", "time to result (s)", "time to result (s)", "lower", key=True
    ),
    MetricInfo(
        "compile_seconds_standalone",
        "compile time, standalone fit (s)",
        "compile (s)",
        "lower",
    ),
    MetricInfo("initialization_seconds", "initialisation time (s)", "init. time (s)", "lower"),
    MetricInfo("optimization_seconds", "optimisation time (s)", "optimisation time (s)", "lower"),
    MetricInfo("evaluation_seconds", "evaluation time (s)", "evaluation time (s)", "lower"),
    # Initialisation + optimisation, compilation excluded (the one time before the parts).
    MetricInfo("fit_seconds", "fit time (s)", "fit time (s)", "lower"),
    MetricInfo("compile_seconds", "compile time (s)", "compile time (s)", "lower"),
    MetricInfo("evaluation_compile_seconds", "evaluation compile time (s)", "eval. compile (s)"),
    MetricInfo("seconds_to_converge", "time to converge (s)", "time to converge (s)", "lower"),
    MetricInfo("steps_per_second", "steps per second", "steps/s", "higher"),
    MetricInfo(
        "num_gradient_evaluations",
        "gradient evaluations of log p",
        r"gradient evals.",
        "lower",
    ),
    MetricInfo(
        "initialization_gradient_evaluations",
        "gradient evaluations of the initialisation search",
        "init. gradient evals.",
        "lower",
    ),
    MetricInfo("peak_memory_mb", "peak memory (MB)", "peak memory (MB)", "lower"),
    # Convergence verdict of the optimiser (1 converged, 0 not; a mean is the converged
    # fraction) and the settings it ran with.
    MetricInfo("converged", "converged (fraction)", "converged", "higher", key=True),
    MetricInfo("num_steps_run", "optimisation steps run", "steps run"),
    MetricInfo("learning_rate", "learning rate (chosen)", "learning rate"),
)

METRICS: dict[str, MetricInfo] = {m.name: m for m in CATALOG}

# Quality metrics a figure may put on its y axis, in order of preference: distances to the
# reference posterior first (comparable across families), the bound's gap last.
QUALITY_PREFERENCE = ("wasserstein_1", "mean_z_error_rms", "kl_divergence", "log_normalizer_error")


def info(name: str) -> MetricInfo:
    """The catalog entry of ``name``; a metric unknown to the catalog (a user model's) is
    labelled by its name and never ranked.  ``X_standard_error`` is labelled after ``X``."""
    if name in METRICS:
        return METRICS[name]
    base = name.removesuffix("_standard_error")
    if base != name and base in METRICS:
        m = METRICS[base]
        return MetricInfo(name, f"{m.label}: standard error", f"{m.latex} s.e.")
    return MetricInfo(name, name, name.replace("_", r"\_"))


def label(name: str) -> str:
    """Plain-text label of ``name`` (with its unit)."""
    return info(name).label


def latex_label(name: str) -> str:
    """LaTeX label of ``name``."""
    return info(name).latex


def key_metrics(names) -> list[str]:
    """The key metrics among ``names``, in catalog order."""
    present = set(names)
    return [m.name for m in CATALOG if m.key and m.name in present]


def best_within_error(
    means: np.ndarray, standard_errors: np.ndarray, name: str, *, num_errors: float = 2.0
) -> np.ndarray:
    """Which of one model's results are "best" for metric ``name``.

    The best mean (by the metric's direction) is marked, and with it every result whose
    score is within ``num_errors`` standard errors of the difference,
    ``num_errors · √(se_i² + se_best²)`` (a missing standard error, one seed, counts as 0:
    such a result is marked only when its value is at least as good, and the table says it
    rests on one seed).  All False for a metric without a direction.
    """
    metric = info(name)
    means = np.asarray(means, dtype=np.float64)
    scores = metric.score(means)
    if not metric.ranked or not np.isfinite(scores).any():
        return np.zeros(means.shape, dtype=bool)
    se = np.nan_to_num(metric.score_standard_error(means, standard_errors), nan=0.0)
    best = int(np.nanargmin(scores))
    margin = num_errors * np.sqrt(se**2 + se[best] ** 2)
    with np.errstate(invalid="ignore"):
        return np.isfinite(scores) & (scores - scores[best] <= margin)


def pareto_front(x: np.ndarray, y: np.ndarray, name: str) -> np.ndarray:
    """Indices of the Pareto front of (smaller cost ``x``, better ``y`` by the direction of
    ``name``), sorted by ``x``: no other point is both cheaper and better."""
    scores = info(name).score(y)
    if not info(name).ranked:
        return np.array([], dtype=int)
    order = np.lexsort((scores, np.asarray(x, dtype=np.float64)))
    front, best = [], math.inf
    for i in order:
        if np.isfinite(scores[i]) and scores[i] < best:
            front.append(i)
            best = scores[i]
    return np.array(front, dtype=int)


__all__ = [
    "CATALOG",
    "DIRECTIONS",
    "METRICS",
    "MetricInfo",
    "PosteriorSample",
    "QUALITY_PREFERENCE",
    "best_within_error",
    "info",
    "key_metrics",
    "label",
    "latex_label",
    "pareto_front",
]
