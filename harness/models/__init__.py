"""Registry of models: ``MODELS[name]`` is a factory ``(**args) -> Model``.

Adding a model: write a factory (keyword arguments with defaults, a docstring stating the
generative model and its references) in a module here and add one line below.  A spec may also
name a user model as ``"package.module:attr"`` or ``"path/to/file.py:attr"``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from harness.limits import POSITIVE, Range, count
from harness.models import user
from harness.models.base import Model, Reference
from harness.models.calendar_regression import calendar_regression
from harness.models.conjugate_normal_mean import conjugate_normal_mean
from harness.models.correlated_gaussian import correlated_gaussian
from harness.models.correlated_regression import correlated_regression_wine
from harness.models.eight_schools_noncentered import eight_schools_noncentered
from harness.models.gym import (
    banana,
    brownian_motion,
    brownian_motion_unknown_scales,
    eight_schools,
    ill_conditioned_gaussian,
    item_response_theory,
    log_gaussian_cox_process,
    lorenz_bridge,
    neals_funnel,
    stochastic_volatility,
)
from harness.models.hierarchical_regression import hierarchical_regression_wine
from harness.models.linear_regression import linear_regression
from harness.models.linear_regression_unknown_noise import linear_regression_unknown_noise
from harness.models.logistic_regression import logistic_regression_breast_cancer
from harness.models.multimodal_2d import multimodal_2d
from harness.models.multimodal_nd import multimodal_nd
from harness.models.shrinkage_regression import shrinkage_regression_breast_cancer
from harness.models.unscaled_regression import unscaled_regression_wine
from harness.models.vae_digits import vae_digits

DTYPES = ("float32", "float64")
_REGRESSION = {
    "num_features": count(1, 1000),
    "num_observations": count(1, 1_000_000),
    "prior_scale": POSITIVE,
    "dtype": DTYPES,
}


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """A model's registry line.

    Attributes:
      factory: ``factory(**arguments) -> Model``.
      ranges: Allowed values of its arguments (every numeric argument must have one).
      particle_size: ``particle_size(arguments) -> elements`` one particle costs in a step
        (arguments with defaults filled in), for the resource check of a spec; None skips it.
      amortized: A generative model fitted by encoder families (``Model.kind ==
        "amortized"``).
    """

    factory: Callable[..., Model]
    ranges: Mapping[str, Range | tuple[str, ...]] = dataclasses.field(default_factory=dict)
    particle_size: Callable[[Mapping[str, Any]], int] | None = None
    amortized: bool = False


# One line per model: its factory, the allowed values of its arguments (a Range for numbers, a
# tuple for strings; checked when a spec is loaded; dimensions are bounded where the model or
# its reference builds d × d matrices or d-column draws), the elements one Monte Carlo particle
# costs in a step's largest tensor (the model's dimension, or its data where the log likelihood
# evaluates every observation per particle: a step's memory is sample_size ×
# importance_sample_size × this, harness.limits.MAX_STEP_ELEMENTS), and whether it is
# amortized (a VAE: Model.kind "amortized", fitted by encoder families, no single target
# density and no reference).
REGISTRY: dict[str, ModelEntry] = {
    "correlated_gaussian": ModelEntry(
        correlated_gaussian,
        ranges={
            "dimension": count(1, 1000),
            # AR(1) correlation: |ρ| < 1 keeps the covariance positive definite.
            "correlation": Range(-1, 1, low_open=True, high_open=True),
            "dtype": DTYPES,
        },
        particle_size=lambda a: a["dimension"],
    ),
    "banana": ModelEntry(banana, ranges={"curvature": Range(-10, 10)}, particle_size=lambda a: 2),
    "eight_schools": ModelEntry(eight_schools, particle_size=lambda a: 10),
    "conjugate_normal_mean": ModelEntry(
        conjugate_normal_mean,
        ranges={
            "dimension": count(1, 1000),
            "num_observations": count(1, 1_000_000),
            "noise_scale": POSITIVE,
            "prior_scale": POSITIVE,
            "dtype": DTYPES,
        },
        particle_size=lambda a: a["dimension"] * (a["num_observations"] + 1),
    ),
    "linear_regression": ModelEntry(
        linear_regression,
        ranges={**_REGRESSION, "noise_scale": POSITIVE},
        particle_size=lambda a: a["num_features"] + a["num_observations"],
    ),
    "linear_regression_unknown_noise": ModelEntry(
        linear_regression_unknown_noise,
        ranges={**_REGRESSION, "a0": POSITIVE, "b0": POSITIVE},
        particle_size=lambda a: a["num_features"] + 1 + a["num_observations"],
    ),
    "neals_funnel": ModelEntry(neals_funnel, particle_size=lambda a: 10),
    "ill_conditioned_gaussian": ModelEntry(ill_conditioned_gaussian, particle_size=lambda a: 100),
    "brownian_motion": ModelEntry(brownian_motion, particle_size=lambda a: 30),
    "brownian_motion_unknown_scales": ModelEntry(
        brownian_motion_unknown_scales, particle_size=lambda a: 32
    ),
    "lorenz_bridge": ModelEntry(lorenz_bridge, particle_size=lambda a: 90),
    # 400 students × 100 questions
    "item_response_theory": ModelEntry(item_response_theory, particle_size=lambda a: 40_000),
    # the GP's covariance is 100 × 100
    "log_gaussian_cox_process": ModelEntry(
        log_gaussian_cox_process, particle_size=lambda a: 102 * 102
    ),
    "stochastic_volatility": ModelEntry(stochastic_volatility, particle_size=lambda a: 103),
    "eight_schools_noncentered": ModelEntry(
        eight_schools_noncentered, ranges={"dtype": DTYPES}, particle_size=lambda a: 10
    ),
    # 569 patients
    "logistic_regression_breast_cancer": ModelEntry(
        logistic_regression_breast_cancer, ranges={"dtype": DTYPES}, particle_size=lambda a: 9 * 569
    ),
    # 178 wines
    "hierarchical_regression_wine": ModelEntry(
        hierarchical_regression_wine, ranges={"dtype": DTYPES}, particle_size=lambda a: 10 + 178
    ),
    "unscaled_regression_wine": ModelEntry(
        unscaled_regression_wine, ranges={"dtype": DTYPES}, particle_size=lambda a: 6 * 178
    ),
    # 71 years
    "calendar_regression": ModelEntry(
        calendar_regression, ranges={"dtype": DTYPES}, particle_size=lambda a: 2 * 71
    ),
    "correlated_regression_wine": ModelEntry(
        correlated_regression_wine, ranges={"dtype": DTYPES}, particle_size=lambda a: 6 * 178
    ),
    # 569 patients
    "shrinkage_regression_breast_cancer": ModelEntry(
        shrinkage_regression_breast_cancer,
        ranges={"dtype": DTYPES},
        particle_size=lambda a: 30 * 569,
    ),
    # The log density evaluates every mode's quadratic form: M × d² per particle.
    "multimodal_2d": ModelEntry(
        multimodal_2d, ranges={"dtype": DTYPES}, particle_size=lambda a: 6 * 4
    ),
    "multimodal_nd": ModelEntry(
        multimodal_nd,
        ranges={
            "dimension": count(10, 50),
            # At most 8 (a handful of modes to count) and at most the dimension (orthonormal
            # directions): the factory refuses num_modes > dimension.
            "num_modes": count(2, 8),
            "dtype": DTYPES,
        },
        particle_size=lambda a: a["num_modes"] * a["dimension"] ** 2,
    ),
    # Full batch: every training image's encoder and decoder pass for each particle.
    "vae_digits": ModelEntry(
        vae_digits,
        ranges={
            "latent_size": count(1, 256),
            "hidden_units": count(1, 4096),
            "gap_num_points": count(1, 297),  # the test set's size
            "gap_num_steps": count(1, 1_000_000),
        },
        particle_size=lambda a: 1500 * (a["hidden_units"] + 64 + a["latent_size"]),
        amortized=True,
    ),
}

MODELS: dict[str, Callable[..., Model]] = {name: e.factory for name, e in REGISTRY.items()}
ARGUMENT_RANGES: dict[str, Mapping[str, Range | tuple[str, ...]]] = {
    name: e.ranges for name, e in REGISTRY.items() if e.ranges
}
AMORTIZED_MODELS = frozenset(name for name, e in REGISTRY.items() if e.amortized)


def particle_size(name: str, args: Mapping[str, Any]) -> int | None:
    """Elements one particle costs in a step of registered model ``name`` with ``args``
    (defaults filled in; see :class:`ModelEntry`), None for a model not in the table."""
    entry = REGISTRY.get(name)
    size = None if entry is None else entry.particle_size
    return None if size is None else int(size(args))


__all__ = [
    "AMORTIZED_MODELS",
    "ARGUMENT_RANGES",
    "DTYPES",
    "MODELS",
    "REGISTRY",
    "ModelEntry",
    "Model",
    "Reference",
    "build_model",
    "in_float64",
    "particle_size",
]


def build_model(name: str, **args) -> Model:
    """Build the registered model ``name`` with keyword ``args``, or a user model
    (``"module:attr"`` / ``"file.py:attr"``, with ``args`` from :func:`harness.models.user.resolve`).
    """
    if user.is_user_model(name):
        return user.load(name, **args)
    return MODELS[name](**args)


def in_float64(name: str, args: Mapping[str, Any], model: Model) -> Model | None:
    """Registered model ``name`` with ``args`` rebuilt in float64, when ``model`` (its float32
    build) can be: its factory takes ``dtype``.  ``model`` itself when it is float64 already;
    None otherwise (a user model, or a factory without ``dtype``).

    Searches whose stopping tests read differences of the log density (L-BFGS's relative
    decrease, Pathfinder's correction pairs) need float64: float32 round-off, about 10⁻⁷ of the
    log density's size, ends them short of the mode of a badly scaled regression.
    """
    import inspect

    import numpy as np

    if np.dtype(getattr(model.dtype, "as_numpy_dtype", model.dtype)) == np.float64:
        return model
    if user.is_user_model(name) or name not in MODELS:
        return None
    factory = MODELS[name]
    if "dtype" not in inspect.signature(factory).parameters:
        return None
    return factory(**{**dict(args), "dtype": "float64"})
