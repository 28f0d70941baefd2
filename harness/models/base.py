"""The model contract and the reference-posterior record.

A *model* is anything the harness can fit a surrogate posterior to: an unnormalized log density
over a flat real vector (after the model's own event-space bijector maps unconstrained reals into
its support), plus a *reference*: what we know about the true posterior, with error bars and a
record of where that knowledge came from.

Models are plain :class:`Model` records built by factory functions (one file per model in this
package, registered in :data:`harness.models.MODELS`).  inference_gym targets are adapted through
:func:`harness.models.gym.adapt`, not copied.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

REFERENCE_KINDS = ("analytic", "moments", "draws", "nuts")
# Reference files written by ``harness reference`` (one ``<model>.npz`` per model, shipped).
REFERENCE_DIR = Path(__file__).resolve().parents[1] / "data" / "references"


@dataclasses.dataclass(frozen=True)
class Modes:
    """The separated modes of a posterior that is a mixture of Gaussians, for mode-coverage
    metrics (:mod:`harness.metrics.modes`).

    The posterior is ``Σ_m weights[m] · N(means[m], covariances[m])`` on the model's
    (constrained) scale; a point belongs to the mode of highest responsibility
    ``weights[m] N(z; means[m], covariances[m])``.

    Attributes:
      weights: Mixture weights ``[M]``, positive, summing to 1.
      means: Component means ``[M, d]``.
      covariances: Component covariances ``[M, d, d]``.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray

    def __post_init__(self):
        m, d = np.shape(self.means)
        if np.shape(self.weights) != (m,) or np.shape(self.covariances) != (m, d, d):
            raise ValueError(
                f"modes: weights {np.shape(self.weights)} and covariances "
                f"{np.shape(self.covariances)} do not match means {np.shape(self.means)}"
            )
        if not np.all(self.weights > 0) or not np.isclose(np.sum(self.weights), 1.0):
            raise ValueError("modes: weights must be positive and sum to 1")

    @property
    def num_modes(self) -> int:
        return int(np.shape(self.weights)[0])


@dataclasses.dataclass(frozen=True)
class Reference:
    """What is known about the true posterior of a model, with provenance.

    Attributes:
      mean: Posterior mean per coordinate, shape ``[d]``.
      standard_deviation: Posterior standard deviation per coordinate, shape ``[d]``.
      mean_standard_error: Monte Carlo standard error of ``mean`` (zeros when exact).
      standard_deviation_standard_error: Monte Carlo standard error of ``standard_deviation``.
      kind: One of ``analytic`` (closed form), ``moments`` (published Monte Carlo moments),
        ``draws`` (exact sampler) or ``nuts`` (long NUTS run made by ``harness reference``).
      provenance: The closed form, or the command line and seed that produced the numbers.
      covariance: Full posterior covariance ``[d, d]`` when known exactly (enables exact KL).
      draws: Posterior draws ``[n, d]`` when available (enables coverage from draws and W1).
      log_normalizer: log Z = log ∫ p(x, z) dz when known exactly.
      modes: The posterior's separated modes (:class:`Modes`) when it is a known mixture of
        Gaussians; enables the mode-coverage metrics.
    """

    mean: np.ndarray
    standard_deviation: np.ndarray
    mean_standard_error: np.ndarray
    standard_deviation_standard_error: np.ndarray
    kind: str
    provenance: str
    covariance: np.ndarray | None = None
    draws: np.ndarray | None = None
    log_normalizer: float | None = None
    modes: Modes | None = None

    def __post_init__(self):
        if self.kind not in REFERENCE_KINDS:
            raise ValueError(f"reference kind {self.kind!r} is not one of {REFERENCE_KINDS}")
        d = np.shape(self.mean)
        for field in (
            "standard_deviation",
            "mean_standard_error",
            "standard_deviation_standard_error",
        ):
            if np.shape(getattr(self, field)) != d:
                raise ValueError(
                    f"reference {field} has shape {np.shape(getattr(self, field))}, expected {d}"
                )
        if self.covariance is not None and np.shape(self.covariance) != d + d:
            raise ValueError(
                f"reference covariance has shape {np.shape(self.covariance)}, expected {d + d}"
            )
        if self.draws is not None and (np.ndim(self.draws) != 2 or np.shape(self.draws)[1:] != d):
            raise ValueError(
                f"reference draws have shape {np.shape(self.draws)}, expected [n, {d[0]}]"
            )
        if self.modes is not None and np.shape(self.modes.means)[1:] != d:
            raise ValueError(
                f"reference modes have means {np.shape(self.modes.means)}, expected [M, {d[0]}]"
            )

    @property
    def dimension(self) -> int:
        return int(np.shape(self.mean)[0])

    @functools.cached_property
    def sorted_draws(self) -> np.ndarray | None:
        """``draws`` with each column sorted ascending (marginals only: the joint pairing is
        lost), computed once: what the marginal metrics (coverage, W1) need."""
        return None if self.draws is None else np.sort(np.asarray(self.draws, np.float64), axis=0)


def exact_reference(
    mean,
    covariance,
    *,
    provenance: str,
    log_normalizer: float | None = None,
    draws: np.ndarray | None = None,
) -> Reference:
    """A :class:`Reference` for an exactly known Gaussian posterior (standard errors zero)."""
    mean = np.asarray(mean, dtype=np.float64)
    covariance = np.asarray(covariance, dtype=np.float64)
    std = np.sqrt(np.diag(covariance))
    return Reference(
        mean=mean,
        standard_deviation=std,
        mean_standard_error=np.zeros_like(mean),
        standard_deviation_standard_error=np.zeros_like(mean),
        kind="analytic",
        provenance=provenance,
        covariance=covariance,
        draws=draws,
        log_normalizer=log_normalizer,
    )


def load_reference_file(path: str | Path) -> Reference:
    """Load a reference file written by ``harness reference`` (see :mod:`harness.reference`).

    The ``.npz`` holds ``mean``, ``standard_deviation``, their standard errors, thinned
    ``draws`` and ``metadata`` (JSON: command line, seed, diagnostics, versions, date).

    Raises:
      FileNotFoundError: naming the missing file and the command that makes it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no reference file {path}: make it with `harness reference {path.stem}`"
        )
    with np.load(path, allow_pickle=False) as f:
        metadata = json.loads(str(f["metadata"]))
        return Reference(
            mean=f["mean"],
            standard_deviation=f["standard_deviation"],
            mean_standard_error=f["mean_standard_error"],
            standard_deviation_standard_error=f["standard_deviation_standard_error"],
            draws=f["draws"].astype(np.float64),
            kind="nuts",
            provenance=(
                f"{metadata['command']} (seed {metadata['seed']}, "
                f"{metadata['date']}, file {path.name})"
            ),
        )


def nuts_reference(name: str, *, missing_ok: bool = False) -> Reference | None:
    """The shipped NUTS reference of the registered model ``name``.

    Args:
      name: Registered model name (the file is ``REFERENCE_DIR/<name>.npz``).
      missing_ok: Return None when the file does not exist yet (so that ``harness reference``
        can build the model to make it); the registry's contract test requires every
        shipped model to have its reference.
    """
    path = REFERENCE_DIR / f"{name}.npz"
    if missing_ok and not path.is_file():
        return None
    return load_reference_file(path)


@dataclasses.dataclass(frozen=True)
class Model:
    """A target posterior in the harness's contract.

    Attributes:
      name: snake_case id (registry key, MLflow value, file stem, CLI choice).
      pretty_name: Label for figures only.
      dimension: Length of the flat unconstrained event vector.
      dtype: TensorFlow dtype of the event.
      default_event_space_bijector: Maps unconstrained ``R^d`` onto the support (a ``tfb``
        bijector with vector event shape ``[d]``).
      unnormalized_log_prob: ``x -> log p(x, data)`` on the *constrained* space, batched over
        leading dimensions of ``x`` (shape ``[..., d]`` → ``[...]``).
      reference: What is known about the true posterior (on the constrained space).
      description: One line for ``harness list``.
      prior: Optional ``tfd.JointDistribution`` prior (for structured families).
      log_likelihood: Optional ``x -> log p(data | x)`` (for the prior/likelihood ELBO form).
      prior_distribution: Optional vector-valued ``tfd.Distribution`` over ``x`` (same space as
        ``unnormalized_log_prob``) such that ``log p(x, data) = prior.log_prob(x) +
        log_likelihood(x)``.
      simulate: Optional ``seed -> (true_params, Model)`` for simulation-based calibration:
        true parameters drawn from the prior (constrained scale, ``[d]``) and the same model
        given fresh data simulated from them.
      data: Optional mapping of the model's data and prior hyperparameters as float64 numpy
        arrays (for baselines with closed-form updates, e.g. CAVI).  Each model documents its
        keys; the conjugate regression models use ``x`` (design matrix ``[n, p]``), ``y``
        (``[n]``), ``mean0``, ``precision0`` and, where the noise is unknown, ``a0``, ``b0``.
      kind: ``posterior`` (one target density, the contract above) or ``amortized`` (a
        generative model with learned weights over a data set, fitted by an encoder family:
        see :mod:`harness.engines.amortized`; its ``unnormalized_log_prob`` raises and it has no reference).
    """

    name: str
    pretty_name: str
    dimension: int
    dtype: Any
    default_event_space_bijector: Any
    unnormalized_log_prob: Callable[[Any], Any]
    reference: Reference | None
    description: str = ""
    prior: Any = None
    log_likelihood: Callable[[Any], Any] | None = None
    prior_distribution: Any = None
    simulate: Callable[[Any], tuple[np.ndarray, Model]] | None = None
    data: Mapping[str, np.ndarray] | None = None
    kind: str = "posterior"

    @property
    def event_shape(self) -> tuple[int]:
        return (self.dimension,)

    @property
    def reference_kind(self) -> str:
        return self.reference.kind if self.reference is not None else "none"
