"""Registry of models: ``MODELS[name]`` is a factory ``(**args) -> Model``.

Adding a model: write a factory (keyword arguments with defaults, a docstring stating the
generative model and its references) in a module here and add one line below.  A spec may also
name a user model as ``"package.module:attr"`` or ``"path/to/file.py:attr"``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from harness.limits import POSITIVE, Range, count
from harness.models import user
from harness.models.base import Model, Reference
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

MODELS: dict[str, Callable[..., Model]] = {
    "correlated_gaussian": correlated_gaussian,
    "banana": banana,
    "eight_schools": eight_schools,
    "conjugate_normal_mean": conjugate_normal_mean,
    "linear_regression": linear_regression,
    "linear_regression_unknown_noise": linear_regression_unknown_noise,
    "neals_funnel": neals_funnel,
    "ill_conditioned_gaussian": ill_conditioned_gaussian,
    "brownian_motion": brownian_motion,
    "brownian_motion_unknown_scales": brownian_motion_unknown_scales,
    "lorenz_bridge": lorenz_bridge,
    "item_response_theory": item_response_theory,
    "log_gaussian_cox_process": log_gaussian_cox_process,
    "stochastic_volatility": stochastic_volatility,
    "eight_schools_noncentered": eight_schools_noncentered,
    "logistic_regression_breast_cancer": logistic_regression_breast_cancer,
    "hierarchical_regression_wine": hierarchical_regression_wine,
    "unscaled_regression_wine": unscaled_regression_wine,
    "correlated_regression_wine": correlated_regression_wine,
    "shrinkage_regression_breast_cancer": shrinkage_regression_breast_cancer,
    "multimodal_2d": multimodal_2d,
    "multimodal_nd": multimodal_nd,
    "vae_digits": vae_digits,  # amortized (Model.kind): fitted by encoder families
}

# Models of kind "amortized" (Model.kind): generative models fitted by encoder families
# (harness.vae), with no single target density and no reference.  The posterior-model
# contract tests leave them out; tests/test_vae.py covers them.
AMORTIZED_MODELS = frozenset({"vae_digits"})

# The allowed values of every model argument, checked when a spec is loaded: a Range for
# numbers, a tuple for strings.  Dimensions are bounded where the model or its reference
# builds d × d matrices (covariances, their inverses) or d-column draws.
DTYPES = ("float32", "float64")
_REGRESSION = {
    "num_features": count(1, 1000),
    "num_observations": count(1, 1_000_000),
    "prior_scale": POSITIVE,
    "dtype": DTYPES,
}
ARGUMENT_RANGES: dict[str, Mapping[str, Range | tuple[str, ...]]] = {
    "correlated_gaussian": {
        "dimension": count(1, 1000),
        # AR(1) correlation: |ρ| < 1 keeps the covariance positive definite.
        "correlation": Range(-1, 1, low_open=True, high_open=True),
        "dtype": DTYPES,
    },
    "banana": {"curvature": Range(-10, 10)},
    "conjugate_normal_mean": {
        "dimension": count(1, 1000),
        "num_observations": count(1, 1_000_000),
        "noise_scale": POSITIVE,
        "prior_scale": POSITIVE,
        "dtype": DTYPES,
    },
    "linear_regression": {**_REGRESSION, "noise_scale": POSITIVE},
    "linear_regression_unknown_noise": {**_REGRESSION, "a0": POSITIVE, "b0": POSITIVE},
    "eight_schools_noncentered": {"dtype": DTYPES},
    "logistic_regression_breast_cancer": {"dtype": DTYPES},
    "hierarchical_regression_wine": {"dtype": DTYPES},
    "unscaled_regression_wine": {"dtype": DTYPES},
    "correlated_regression_wine": {"dtype": DTYPES},
    "shrinkage_regression_breast_cancer": {"dtype": DTYPES},
    "multimodal_2d": {"dtype": DTYPES},
    "multimodal_nd": {
        "dimension": count(10, 50),
        # At most 8 (a handful of modes to count) and at most the dimension (orthonormal
        # directions): the factory refuses num_modes > dimension.
        "num_modes": count(2, 8),
        "dtype": DTYPES,
    },
    "vae_digits": {
        "latent_size": count(1, 256),
        "hidden_units": count(1, 4096),
        "gap_num_points": count(1, 297),  # the test set's size
        "gap_num_steps": count(1, 1_000_000),
    },
}

# Elements one Monte Carlo particle costs in a step's largest tensor (the model's dimension, or
# its data where the log likelihood evaluates every observation per particle): the step's
# memory is sample_size × importance_sample_size × this (harness.limits.MAX_STEP_ELEMENTS).
_PARTICLE_SIZE: dict[str, Callable[[Mapping[str, Any]], int]] = {
    "correlated_gaussian": lambda a: a["dimension"],
    "banana": lambda a: 2,
    "eight_schools": lambda a: 10,
    "conjugate_normal_mean": lambda a: a["dimension"] * (a["num_observations"] + 1),
    "linear_regression": lambda a: a["num_features"] + a["num_observations"],
    "linear_regression_unknown_noise": lambda a: a["num_features"] + 1 + a["num_observations"],
    "neals_funnel": lambda a: 10,
    "ill_conditioned_gaussian": lambda a: 100,
    "brownian_motion": lambda a: 30,
    "brownian_motion_unknown_scales": lambda a: 32,
    "lorenz_bridge": lambda a: 90,
    "item_response_theory": lambda a: 40_000,  # 400 students × 100 questions
    "log_gaussian_cox_process": lambda a: 102 * 102,  # the GP's covariance is 100 × 100
    "stochastic_volatility": lambda a: 103,
    "eight_schools_noncentered": lambda a: 10,
    "logistic_regression_breast_cancer": lambda a: 9 * 569,  # 569 patients
    "hierarchical_regression_wine": lambda a: 10 + 178,  # 178 wines
    "unscaled_regression_wine": lambda a: 6 * 178,
    "correlated_regression_wine": lambda a: 6 * 178,
    "shrinkage_regression_breast_cancer": lambda a: 30 * 569,  # 569 patients
    # The log density evaluates every mode's quadratic form: M × d² per particle.
    "multimodal_2d": lambda a: 6 * 4,
    "multimodal_nd": lambda a: a["num_modes"] * a["dimension"] ** 2,
    # Full batch: every training image's encoder and decoder pass for each particle.
    "vae_digits": lambda a: 1500 * (a["hidden_units"] + 64 + a["latent_size"]),
}


def particle_size(name: str, args: Mapping[str, Any]) -> int | None:
    """Elements one particle costs in a step of registered model ``name`` with ``args``
    (defaults filled in; see :data:`_PARTICLE_SIZE`), None for a model not in the table."""
    size = _PARTICLE_SIZE.get(name)
    return None if size is None else int(size(args))


__all__ = [
    "AMORTIZED_MODELS",
    "ARGUMENT_RANGES",
    "DTYPES",
    "MODELS",
    "Model",
    "Reference",
    "build_model",
    "particle_size",
]


def build_model(name: str, **args) -> Model:
    """Build the registered model ``name`` with keyword ``args``, or a user model
    (``"module:attr"`` / ``"file.py:attr"``, with ``args`` from :func:`harness.models.user.resolve`).
    """
    if user.is_user_model(name):
        return user.load(name, **args)
    return MODELS[name](**args)
