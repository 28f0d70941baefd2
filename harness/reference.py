"""Reference posteriors by long NUTS runs: ``harness reference MODEL``.

A reference is only written when the run converged by the criteria of Vehtari et al. (2021):
rank-normalized split R-hat below 1.01 and bulk effective sample size above 1,000 for *every*
coordinate.  The file (``harness/data/references/<model>.npz`` by default) holds

* ``mean``, ``standard_deviation`` of all kept draws and their Monte Carlo standard errors
  (``mean_standard_error``, ``standard_deviation_standard_error``, from the effective sample
  size: arviz-stats' ``mcse``);
* ``draws``: the kept draws thinned to at most 4,000 (for coverage and W1 metrics);
* ``metadata``: JSON with the exact command line, seed, chain settings, per-coordinate
  diagnostics, sampler statistics, package versions and date; the same JSON is written beside
  the file as ``<model>.json`` for reading in review.

Models whose reference kind is ``nuts`` load the shipped file
(:func:`harness.models.base.nuts_reference`); nothing is sampled when a model is built.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import json
import math
import platform
from pathlib import Path

import numpy as np

from harness.models.base import REFERENCE_DIR

# Convergence criteria (Vehtari et al., 2021, §4: R-hat < 1.01 and bulk ESS > 100 per chain;
# 1,000 in total makes the reference's Monte Carlo error ≤ 3 % of a posterior sd).
MAX_POTENTIAL_SCALE_REDUCTION = 1.01
MIN_EFFECTIVE_SAMPLE_SIZE = 1000.0
# Draws stored in the file: enough for quantiles to ~0.02 sd, small enough to commit.
MAX_DRAWS_KEPT = 4000
_VERSIONED_PACKAGES = (
    "tensorflow",
    "tensorflow-probability",
    "numpy",
    "arviz-stats",
    "inference-gym",
)


@dataclasses.dataclass(frozen=True)
class ReferenceRun:
    """A NUTS run for a reference, with the verdict of the convergence checks.

    Attributes:
      model: Registered model name.
      arrays: The arrays of the reference file (``mean``, ``standard_deviation``, their
        standard errors, thinned ``draws``).
      metadata: Command line, settings, diagnostics, versions and date (JSON-serializable).
      failures: Why the run does not qualify as a reference (empty when it does).
    """

    model: str
    arrays: dict[str, np.ndarray]
    metadata: dict
    failures: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.failures


def run(
    model_name: str,
    *,
    num_chains: int = 4,
    num_warmup: int = 1000,
    num_draws: int = 2500,
    seed: int = 0,
    target_accept_prob: float = 0.8,
    command: str = "",
    model=None,
) -> ReferenceRun:
    """Run NUTS on a model and check it against the convergence criteria.

    Args:
      model_name: Registered model name (or, with ``model``, the name to record).
      num_chains: Independent chains.
      num_warmup: Warm-up steps per chain.
      num_draws: Kept draws per chain.
      seed: Seed of the run (recorded).
      target_accept_prob: Dual-averaging target (raise towards 0.95 for funnels).
      command: The command line to record (default: the equivalent ``harness reference``).
      model: A built model to use instead of building ``model_name`` from the registry.
    """
    from harness.baselines import nuts
    from harness.models import build_model

    if model is None:
        model = build_model(model_name)
    result = nuts.sample(
        model,
        num_chains=num_chains,
        num_warmup=num_warmup,
        num_draws=num_draws,
        seed=seed,
        target_accept_prob=target_accept_prob,
    )
    flat = result.draws.reshape(-1, model.dimension)
    thin = math.ceil(num_chains * num_draws / MAX_DRAWS_KEPT)
    kept = result.draws[:, ::thin].reshape(-1, model.dimension)
    arrays = {
        "mean": flat.mean(axis=0),
        "standard_deviation": flat.std(axis=0, ddof=1),
        "mean_standard_error": result.mean_standard_error,
        "standard_deviation_standard_error": result.standard_deviation_standard_error,
        "draws": kept,
    }
    rhat, ess = result.potential_scale_reduction, result.effective_sample_size
    failures = []
    if not np.all(rhat < MAX_POTENTIAL_SCALE_REDUCTION):
        worst = int(np.argmax(rhat))
        failures.append(
            f"R-hat {rhat[worst]:.4f} >= {MAX_POTENTIAL_SCALE_REDUCTION} at "
            f"coordinate {worst} ({int(np.sum(rhat >= MAX_POTENTIAL_SCALE_REDUCTION))}"
            f" coordinates)"
        )
    if not np.all(ess > MIN_EFFECTIVE_SAMPLE_SIZE):
        worst = int(np.argmin(ess))
        failures.append(
            f"bulk ESS {ess[worst]:.0f} <= {MIN_EFFECTIVE_SAMPLE_SIZE:.0f} at "
            f"coordinate {worst} ({int(np.sum(ess <= MIN_EFFECTIVE_SAMPLE_SIZE))} "
            f"coordinates)"
        )
    if not np.all(np.isfinite(flat)):
        failures.append("non-finite draws")
    command = command or (
        f"harness reference {model_name} --chains {num_chains} --warmup "
        f"{num_warmup} --draws {num_draws} --seed {seed} --target-accept "
        f"{target_accept_prob}"
    )
    metadata = {
        "model": model_name,
        "dimension": model.dimension,
        "command": command,
        "seed": seed,
        "num_chains": num_chains,
        "num_warmup": num_warmup,
        "num_draws": num_draws,
        "target_accept_prob": target_accept_prob,
        "thinning": thin,
        "num_draws_stored": int(kept.shape[0]),
        "potential_scale_reduction_max": float(np.max(rhat)),
        "effective_sample_size_min": float(np.min(ess)),
        "potential_scale_reduction": rhat.tolist(),
        "effective_sample_size": ess.tolist(),
        "step_size": result.step_size.tolist(),
        "inverse_mass_diagonal": result.inverse_mass_diagonal.tolist(),
        "num_leapfrog_steps": result.num_leapfrog_steps,
        "num_divergences": result.num_divergences,
        "mean_accept_prob": result.mean_accept_prob,
        "wall_seconds": result.wall_seconds,
        "mode": result.mode,
        "criteria": {
            "potential_scale_reduction_below": MAX_POTENTIAL_SCALE_REDUCTION,
            "effective_sample_size_above": MIN_EFFECTIVE_SAMPLE_SIZE,
        },
        "versions": {
            "python": platform.python_version(),
            **{p: _version(p) for p in _VERSIONED_PACKAGES},
        },
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return ReferenceRun(
        model=model_name, arrays=arrays, metadata=metadata, failures=tuple(failures)
    )


def default_path(model_name: str) -> Path:
    """Where the shipped reference of ``model_name`` lives."""
    return REFERENCE_DIR / f"{model_name}.npz"


def write(reference_run: ReferenceRun, path: str | Path | None = None) -> Path:
    """Write a converged run as ``path`` (``.npz``) plus a ``.json`` sidecar.

    Raises:
      ValueError: if the run failed the convergence checks (nothing is written).
    """
    if not reference_run.ok:
        raise ValueError(
            f"not writing a reference for {reference_run.model}: "
            + "; ".join(reference_run.failures)
        )
    path = Path(path) if path is not None else default_path(reference_run.model)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(reference_run.metadata, indent=1, sort_keys=True)
    with path.open("wb") as f:
        # Draws in float32: half the size, and 7 digits are far below their Monte Carlo error.
        np.savez_compressed(
            f,
            metadata=np.array(text),
            **{
                k: np.asarray(v, np.float32 if k == "draws" else np.float64)
                for k, v in reference_run.arrays.items()
            },
        )
    path.with_suffix(".json").write_text(text + "\n")
    return path


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"
