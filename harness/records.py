"""The records every layer shares: what to fit (:class:`Cell`, with its :class:`FitSettings`
and :class:`MetricSettings`) and what came of it (:class:`FitResult`).

Plain, picklable data with no dependency on the rest of the harness (the lowest layer; see
``docs/architecture.md``): specs produce cells, engines produce results, executors carry both,
tracking and reports read them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class FitSettings:
    """Settings of one fit (one value per setting; grids are expanded into several of these).

    Attributes:
      num_steps: The step budget: the most optimisation steps a fit may take (learning-rate
        pilots included).  With ``stopping = "converged"`` a fit ends earlier, when the
        convergence rule holds (:mod:`harness.convergence`).
      stopping: ``converged`` (stop when the convergence rule holds, at most ``num_steps``) or
        ``budget`` (run exactly ``num_steps``, for speed studies; the verdict is still given).
      convergence_tolerance: Nats: the loss decrease still expected (over a window at this
        learning rate, or from lowering it) below which a fit counts as converged.
      sample_size: Monte Carlo particles per step for the ELBO gradient.
      learning_rate: Adam's (initial) learning rate, or ``auto``: chosen per cell by short
        pilot runs over a grid (:data:`harness.engines.svi.PILOT_LEARNING_RATES`) from the same start
        and noise; the chosen value is logged (``learning_rate_chosen``).
      jit_compile: Try to compile the fitting loop with XLA (falls back to graph mode).
      elbo_sample_size: Fresh draws for the final ELBO estimate and the calibration metrics.
      num_draws_kept: Posterior draws kept in the result for figures.
      learning_rate_schedule: ``adaptive`` (default: lowered by the convergence rule after each
        stationary phase), ``constant``, ``cosine`` (cosine decay to 0 at ``num_steps``) or
        ``exponential`` (decay by 100× over ``num_steps``).
      initialization: ``mode`` (default: start at the Gaussian found by
        :func:`harness.mode.initial_gaussian`, parameters whitened by it; see
        :mod:`harness.families.gaussian`), ``pathfinder`` (start at single-path Pathfinder's
        normal, :func:`harness.baselines.pathfinder.initial_gaussian`, whitened the same way;
        NUTS starts its chains from Pathfinder draws) or ``uniform`` (loc ~ U(−2, 2), scale
        ``initial_scale``).
      importance_sample_size: K of the training objective: 1 is the ELBO, K > 1 the
        importance-weighted bound (IWAE, Burda et al., 2016); each step draws
        ``sample_size × K`` particles.  (Not the ``[metrics]`` K of the reported ``iw_elbo``.)
      gradient_estimator: ``reparameterization`` or ``sticking_the_landing`` (Roeder et al.,
        2017: the score term of log q is dropped; with K > 1 its importance-weighted form,
        DReG, Tucker et al., 2019).
      vectorize_seeds: Fit the seeds of a (model, family, settings) group as one batch of
        independent surrogates in one compiled loop, where the family allows it (Gaussian
        families).  Each seed keeps its own initial values; the Monte Carlo noise of the
        batch comes from one seed derived from the whole group, so results equal separate
        fits in distribution, not bit for bit, and depend on which seeds share the batch.
        The batch shares one learning rate, lowered on the summed loss.
      optimizer: ``adam`` (default: stochastic gradients, the settings above) or ``saa``
        (sample average approximation, Burroni, Domke and Sheldon, 2024: L-BFGS on the ELBO of
        fixed draws, their number doubled until the solution is stable; no learning rate;
        :mod:`harness.engines.saa`).  The step budget of an ``saa`` fit is ``num_steps ×
        sample_size`` gradient evaluations, an Adam fit's at the same settings.
      saa_initial_sample_size: ``saa``: draws of the first stage (at least the dimension + 1).
      saa_max_sample_size: ``saa``: the most draws of a stage; the schedule doubles up to it.
      saa_tolerance: ``saa``: L-BFGS stops a stage when the largest gradient entry (nats per
        unit of a whitened parameter) is below it.
    """

    num_steps: int = 50000
    stopping: str = "converged"
    convergence_tolerance: float = 0.25
    sample_size: int = 8
    learning_rate: float | str = "auto"
    jit_compile: bool = True
    elbo_sample_size: int = 4096
    num_draws_kept: int = 1000
    learning_rate_schedule: str = "adaptive"
    initialization: str = "mode"
    importance_sample_size: int = 1
    gradient_estimator: str = "reparameterization"
    vectorize_seeds: bool = False
    optimizer: str = "adam"
    saa_initial_sample_size: int = 16
    saa_max_sample_size: int = 4096
    saa_tolerance: float = 1e-3


@dataclasses.dataclass(frozen=True)
class MetricSettings:
    """How a fitted surrogate is evaluated (``[metrics]`` table of a spec; one value each).

    Attributes:
      iw_elbo_k: K of the importance-weighted ELBO ``iw_elbo`` (and a VAE's ``test_iw_elbo``).
        Its groups of K come from the ELBO's fresh draws, topped up with more fresh draws to at
        least ``harness.metrics.quality.IW_MIN_GROUPS`` groups when K is large.  (Not
        ``[fit] importance_sample_size``, the K of the training objective.)
    """

    iw_elbo_k: int = 64


# Settings renamed since cells were first identified: their identity keeps the first name, so
# a renamed setting changes no cell id (resume, and comparisons across versions, hold).
IDENTITY_NAMES: dict[str, dict[str, str]] = {"metrics": {"iw_elbo_k": "importance_sample_size"}}


def _frozen_names(settings: dict[str, Any], table: str = "metrics") -> dict[str, Any]:
    names = IDENTITY_NAMES.get(table, {})
    return {names.get(k, k): v for k, v in settings.items()}


# Fit settings added since cells were first identified: at their default they are left out of
# the identity, so adding a setting changes no existing cell's id (resume keeps its runs); a
# cell that sets one is another cell.
LATER_FIT_SETTINGS = (
    "optimizer",
    "saa_initial_sample_size",
    "saa_max_sample_size",
    "saa_tolerance",
)


def _identity_settings(fit: FitSettings) -> dict[str, Any]:
    defaults = FitSettings()
    return {
        k: v
        for k, v in dataclasses.asdict(fit).items()
        if not (k in LATER_FIT_SETTINGS and v == getattr(defaults, k))
    }


@dataclasses.dataclass(frozen=True)
class Cell:
    """One unit of work: a model × family × fit settings × seed.

    Attributes hold plain data only (picklable for spawned workers); ``model_args`` and
    ``hyperparameters`` are sorted ``(key, value)`` tuples so that cells are hashable.
    """

    experiment: str
    model: str
    model_args: tuple[tuple[str, Any], ...]
    family: str
    hyperparameters: tuple[tuple[str, Any], ...]
    fit: FitSettings
    seed: int
    metrics: MetricSettings = MetricSettings()

    @property
    def identity(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "model": self.model,
            "model_args": dict(self.model_args),
            "family": self.family,
            "hyperparameters": dict(self.hyperparameters),
            "fit": _identity_settings(self.fit),
            "metrics": _frozen_names(dataclasses.asdict(self.metrics)),
            "seed": self.seed,
        }

    @property
    def cell_id(self) -> str:
        """Stable hash of the cell's identity (experiment, model+args, family+hps, fit, seed)."""
        blob = json.dumps(self.identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def compile_key(self) -> str:
        """Everything that shapes the cell's compiled loop: its identity without the seed and
        the experiment.  Cells with one key fit in one compiled loop (one group)."""
        identity = self.identity
        identity.pop("seed")
        identity.pop("experiment")
        return json.dumps(identity, sort_keys=True, default=str)

    @property
    def run_name(self) -> str:
        # A user model's name is a path or module ("models/m.py:target"): made path-free.
        model = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.model)
        return f"{model}/{self.family}/{self.seed}"

    @property
    def stateless_seed(self) -> tuple[int, int]:
        """Two int32 words for TFP stateless ops, derived from model (with its arguments),
        family (with its hyperparameters) and seed only: every fit setting of a grid, and
        every experiment, starts from the same point with the same Monte Carlo noise (common
        random numbers), so a learning-rate or budget study compares settings, not seeds."""
        identity = {
            "model": self.model,
            "model_args": dict(self.model_args),
            "family": self.family,
            "hyperparameters": dict(self.hyperparameters),
            "seed": self.seed,
        }
        blob = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
        digest = hashlib.sha256(("seed:" + blob).encode()).digest()
        return (
            int.from_bytes(digest[:4], "little") >> 1,
            int.from_bytes(digest[4:8], "little") >> 1,
        )


@dataclasses.dataclass(frozen=True)
class FitResult:
    """The outcome of fitting one cell: pure data, picklable, written by the driver only.

    Attributes:
      cell: The cell that was fitted.
      status: ``ok``, ``diverged`` or ``error``.
      reason: Why the status is not ``ok`` (empty when ok).
      losses: Per-step loss (−ELBO estimate), ``[num_steps_run]``.
      loss_seconds: Fit wall-clock seconds (compilation excluded) at the end of each step.
      compile_seconds: Tracing + XLA compilation time.
      fit_seconds: Wall-clock time of the optimisation steps, compilation excluded.
      num_steps_run: Steps actually run.
      metrics: Metric name → float; undefined metrics are absent.
      draws: Up to ``num_draws_kept`` posterior draws ``[n, d]`` for figures (or None).
      fit_mode: ``xla`` or ``graph`` (or the baseline's own mode).
      fallback_reason: Why XLA was not used, when it was requested.
      device: Where TensorFlow ran (``CPU`` or the GPU's name).
      started_at: Unix time (s) at which the cell started.
      traceback: Formatted traceback for ``status = error``.
      diverged_step: For ``status = diverged``: the first step whose loss was not finite, or
        ``num_steps_run`` when the fit ended finite but the fitted surrogate's draws or log
        densities were not; None otherwise.
      converged: The convergence verdict (:mod:`harness.convergence` for the variational fits;
        each baseline's own criterion); None where none applies (an error).
      convergence_reason: One line: why converged, or why not.
      fit_params: Values chosen during the fit, logged as parameters (e.g.
        ``learning_rate_chosen``, ``initialization_chosen``).
    """

    cell: Cell
    status: str
    reason: str = ""
    losses: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    loss_seconds: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    compile_seconds: float = float("nan")
    fit_seconds: float = float("nan")
    num_steps_run: int = 0
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    draws: np.ndarray | None = None
    fit_mode: str = ""
    fallback_reason: str = ""
    device: str = ""
    started_at: float = 0.0
    traceback: str = ""
    diverged_step: int | None = None
    converged: bool | None = None
    convergence_reason: str = ""
    fit_params: dict[str, str] = dataclasses.field(default_factory=dict)


def describe(result: FitResult) -> dict[str, Any]:
    """Flat summary of a result (for progress lines and tests)."""
    return {"cell": result.cell.run_name, "status": result.status, **result.metrics}
