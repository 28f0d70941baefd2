"""Registry of variational families: ``FAMILIES[name] -> Family``.

Adding a family: write ``build_<name>(model, *, seed, **hyperparameters)`` in a module here,
with its hyperparameters as keyword arguments with documented defaults, and add one line below.
"""

from __future__ import annotations

from harness.families.base import Family
from harness.families.flows import build_iaf
from harness.families.gaussian import build_full_rank, build_mean_field

FAMILIES: dict[str, Family] = {
    "mean_field": Family("mean_field", "Mean-field", build_mean_field,
                         {"initial_scale": 0.1},
                         "factored normal (diagonal covariance)"),
    "full_rank": Family("full_rank", "Full-rank", build_full_rank,
                        {"initial_scale": 0.1},
                        "normal with lower-triangular scale (full covariance)"),
    "iaf": Family("iaf", "IAF", build_iaf,
                  {"num_layers": 2, "hidden_units": 32, "num_hidden_layers": 1,
                   "initial_scale": 0.1},
                  "inverse autoregressive flow on a mean-field base"),
}

__all__ = ["FAMILIES", "Family"]
