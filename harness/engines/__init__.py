"""Fitting engines: one per kind of method, behind one contract.

An engine is a module with ``run(cell, model, family, started, *, reuse=True) -> FitResult``
(``reuse``: the model came from the registry, so what it compiled may serve the next cell of
this process that differs only in seed).  :data:`ENGINES` maps ``Family.kind`` to its engine;
:func:`harness.fit.fit` dispatches through it.

* ``svi`` (:mod:`harness.engines.svi`): stochastic-gradient VI of a surrogate distribution;
  also ``run_replicates`` for seeds fitted as one batch.
* ``laplace``, ``cavi``, ``mcmc`` (:mod:`harness.engines.baseline`): a method that runs whole
  and returns a :class:`~harness.baselines.base.BaselineFit`.
* ``amortized`` (:mod:`harness.engines.amortized`): a VAE's encoder and decoder.

What they share (the compiled chunk loop, the XLA → graph fallback, timings, the construction
of the result) is in :mod:`harness.engines.common`; evaluating a fitted q in
:mod:`harness.engines.evaluation`.  Importing this package imports no TensorFlow; the engine
modules load when first used.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# Family.kind -> engine module.  The baselines keep their own kinds (the report styles them
# apart) and share one engine.
ENGINES: dict[str, str] = {
    "svi": "harness.engines.svi",
    "laplace": "harness.engines.baseline",
    "cavi": "harness.engines.baseline",
    "mcmc": "harness.engines.baseline",
    "pathfinder": "harness.engines.baseline",
    "amortized": "harness.engines.amortized",
}


def engine(kind: str) -> ModuleType:
    """The engine module of a family kind (imported on first use)."""
    try:
        return importlib.import_module(ENGINES[kind])
    except KeyError:
        raise ValueError(f"no engine for family kind {kind!r} (known: {sorted(ENGINES)})") from None
