"""Registry of models: ``MODELS[name]`` is a factory ``(**args) -> Model``.

Adding a model: write a factory (keyword arguments with defaults, a docstring stating the
generative model and its references) in a module here and add one line below.  A spec may also
name a user model as ``"package.module:attr"`` or ``"path/to/file.py:attr"``.
"""

from __future__ import annotations

from collections.abc import Callable

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
    "vae_digits": vae_digits,  # amortized (Model.kind): fitted by encoder families
}

# Models of kind "amortized" (Model.kind): generative models fitted by encoder families
# (harness.vae), with no single target density and no reference.  The posterior-model
# contract tests leave them out; tests/test_vae.py covers them.
AMORTIZED_MODELS = frozenset({"vae_digits"})

__all__ = ["AMORTIZED_MODELS", "MODELS", "Model", "Reference", "build_model"]


def build_model(name: str, **args) -> Model:
    """Build the registered model ``name`` with keyword ``args``, or a user model
    (``"module:attr"`` / ``"file.py:attr"``, with ``args`` from :func:`harness.models.user.resolve`).
    """
    if user.is_user_model(name):
        return user.load(name, **args)
    return MODELS[name](**args)
