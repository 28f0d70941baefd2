"""Registry of models: ``MODELS[name]`` is a factory ``(**args) -> Model``.

Adding a model: write a factory (keyword arguments with defaults, a docstring stating the
generative model and its references) in a module here and add one line below.  A spec may also
name a user model as ``"package.module:attr"`` or ``"path/to/file.py:attr"``.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.models.base import Model, Reference
from harness.models.correlated_gaussian import correlated_gaussian
from harness.models.gym import banana, eight_schools

MODELS: dict[str, Callable[..., Model]] = {
    "correlated_gaussian": correlated_gaussian,
    "banana": banana,
    "eight_schools": eight_schools,
}

__all__ = ["MODELS", "Model", "Reference", "build_model"]


def build_model(name: str, **args) -> Model:
    """Build the registered model ``name`` with keyword ``args``."""
    return MODELS[name](**args)
