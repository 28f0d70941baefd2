"""An example metric as a user adds one: this file and one catalog line.

The largest |mean error| over coordinates, in units of the reference's standard deviation,
computed from q's fresh draws; undefined without a reference."""

from __future__ import annotations

import numpy as np


def worst_z(sample) -> float | None:
    reference = sample.model.reference
    if reference is None:
        return None
    z = (sample.draws.mean(axis=0) - reference.mean) / reference.standard_deviation
    return float(np.max(np.abs(z)))
