"""Quality against gradient evaluations of the target (log x): :mod:`quality_vs_speed` on an
axis that does not depend on the machine (as Pathfinder's and Agrawal et al.'s papers compare
methods).  Drawn when the runs logged ``num_gradient_evaluations``."""

from __future__ import annotations

import pandas as pd

from harness.figures import quality_vs_speed
from harness.figures.base import Figure, posterior

COST = "num_gradient_evaluations"


def applies_to(table: pd.DataFrame) -> pd.DataFrame:
    """Posterior-quality rows, when the runs logged gradient evaluations."""
    rows = posterior(table)
    return rows if COST in rows else rows.iloc[:0]


FIGURE = Figure(
    "quality_vs_gradients",
    applies_to=applies_to,
    prepare=quality_vs_speed.prepare,
    draw=quality_vs_speed.draw,
    needs=("quality_metric", "fallbacks"),
    options={"cost": COST},
)
