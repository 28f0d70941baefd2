"""The outcome of a baseline: what ``harness.fit`` needs to put it on the same axes as SVI.

A baseline is registered in :data:`harness.families.FAMILIES` like a variational family, with a
``kind`` other than ``svi``; its ``build(model, *, seed, **hyperparameters)`` runs the whole
method and returns a :class:`BaselineFit`.  ``harness.fit`` turns that into a ``FitResult`` with
the same metrics (:func:`harness.metrics.summary.posterior_metrics`) as the variational fits.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class BaselineFit:
    """What a baseline produced.

    Exactly one of ``surrogate_posterior`` and ``draws`` is set.

    Attributes:
      surrogate_posterior: A fitted ``tfd.Distribution`` on the model's constrained scale (CAVI,
        Laplace): evaluated like a variational fit, with fresh draws and log weights.
      draws: Posterior draws ``[n, d]`` on the constrained scale when there is no density
        (NUTS): the ELBO, k̂ and every metric built on log weights are undefined.
      losses: Objective per iteration (−ELBO per CAVI sweep); may be empty.
      fit_seconds: Wall-clock seconds of the method (tracing excluded where it is separate).
      compile_seconds: Tracing/compilation seconds when measured separately, else NaN.
      num_steps_run: Iterations, sweeps or draws, as the baseline defines them.
      num_gradient_evaluations: Gradients of the log density evaluated (0 for closed forms).
      mode: How it ran: ``xla``, ``graph`` or ``numpy``.
      metrics: Baseline-specific metrics (e.g. NUTS's R-hat and ESS), finite floats.
      converged: The method's own convergence verdict (Laplace: a mode with a positive-definite
        Hessian and a small Newton decrement; NUTS: R̂ < 1.01 and bulk ESS ≥ 400; CAVI: the
        ELBO's change below its tolerance before the sweep limit).
      convergence_reason: One line: why converged, or why not.
    """

    surrogate_posterior: Any = None
    draws: np.ndarray | None = None
    losses: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    fit_seconds: float = float("nan")
    compile_seconds: float = float("nan")
    num_steps_run: int = 0
    num_gradient_evaluations: float = 0.0
    mode: str = ""
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    converged: bool = True
    convergence_reason: str = ""

    def __post_init__(self):
        if (self.surrogate_posterior is None) == (self.draws is None):
            raise ValueError("a BaselineFit has either a surrogate_posterior or draws")
