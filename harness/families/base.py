"""The variational-family contract.

A family is a plain ``build(model, *, seed, **hyperparameters) -> tfd.Distribution`` function.
The distribution it returns owns its trainable variables and is built on the model's
event-space bijector, so every draw lies in the model's support.  :class:`Family` is the registry
record that carries the function with its two names and its documented hyperparameters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class Family:
    """Registry record of a variational family.

    Attributes:
      name: snake_case id (registry key, MLflow value, CLI choice).
      pretty_name: Label for figures only.
      build: ``build(model, *, seed, **hyperparameters) -> tfd.Distribution``.
      hyperparameters: Documented hyperparameters with their defaults.
      description: One line for ``harness list`` and the README table.
      kind: ``svi`` for families fitted by stochastic gradient on the ELBO (``build`` returns
        the untrained surrogate); the baselines that share the axes have their own kind
        (``mcmc``, ``cavi``, ``laplace``, ``pathfinder``) and ``build`` runs the whole method and returns a
        :class:`harness.baselines.base.BaselineFit`; encoder families are ``amortized``.  The
        kind names the engine that fits the family (:data:`harness.engines.ENGINES`).
      supports: ``supports(model) -> bool``: whether the family applies to the model.  A spec
        skips the (model, family) cells it rejects, and fails if it rejects every listed model.
      requirement: What ``supports`` asks of a model, for error messages and ``harness list``.
      batchable: ``build`` takes ``batch_shape`` and returns independent replicates with
        variables of shape ``batch_shape + (unbatched shape)`` (for vectorized seeds).
      fixed_draws: ``fit.optimizer = "saa"`` applies (:mod:`harness.engines.saa`): its draws
        are a differentiable push-forward of base noise drawn with a stateless seed, so the
        ELBO of fixed draws is a deterministic function of its parameters, and that function
        is a sound stand-in for the ELBO: an affine map of the draws (the Gaussian families).
        The flows are push-forwards too but are not marked: their ~10³ parameters bend the
        map around a few hundred fixed draws (measured in docs/saa.md).
      check_horizon: The fewest steps of the continuation that confirms a fit the convergence
        rule called converged (:func:`harness.engines.svi._confirm`): a flow started at the
        Gaussian optimum sits on a plateau for thousands of steps, which a shorter check would
        take for the optimum.  0: as many steps as the fit has taken.
      ranges: Allowed values of hyperparameters that are this family's own; the shared
        :data:`harness.families.HYPERPARAMETER_RANGES` covers the common names (one name means
        one thing in every family).
    """

    name: str
    pretty_name: str
    build: Callable[..., Any]
    hyperparameters: Mapping[str, Any]
    description: str = ""
    kind: str = "svi"
    supports: Callable[[Any], bool] = dataclasses.field(default=lambda model: True, compare=False)
    requirement: str = ""
    batchable: bool = False
    fixed_draws: bool = False
    check_horizon: int = 0
    ranges: Mapping[str, Any] = dataclasses.field(default_factory=dict, compare=False)

    def check(self, model) -> None:
        """Raise ``ValueError`` with a one-line reason when the family does not apply."""
        if not self.supports(model):
            raise ValueError(
                f"family '{self.name}' does not apply to model '{model.name}': "
                f"it needs {self.requirement or 'a different model'}"
            )
