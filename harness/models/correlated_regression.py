"""Linear regression with tiny, strongly correlated coefficients on the UCI wine data.

Colour intensity (absorbance units; 1.3–13, mean 5.1) of 178 wines regressed on alcohol
(% vol), hue, the OD280/OD315 ratio of diluted wines and proline (mg/L), all uncentred and in
their own units, with the same rstanarm-style autoscaled weakly informative priors as
:mod:`harness.models.unscaled_regression` (intercept on centred predictors
``N(ȳ, (2.5 s_y)²)``, slopes ``N(0, (2.5 s_y / s_k)²)``, ``σ ~ Exponential(1 / s_y)``)::

    colour_i ~ N(α + x_i · β, σ),   x = (alcohol, hue, od280/od315, proline)

Why it is hard (an ordinary posterior): the proline slope is ≈ 2·10⁻³ with posterior sd
≈ 5·10⁻⁴ (proline is measured in hundreds of mg/L) while the intercept's sd is ≈ 2.3:
posterior sds span more than three orders of magnitude (the posterior covariance of the
unconstrained event has condition number ≈ 3·10⁸).  Alcohol varies little around a large mean
(13 ± 0.8 %), so the uncentred intercept and the alcohol slope are correlated at −0.98.  A surrogate
with a unit initial scale is 10³ times too wide in the proline direction, and a diagonal one
cannot follow the intercept–alcohol ridge.  The event is ``[α, β_1..4, σ]`` (6 coordinates),
``σ`` through ``exp``.

Reference: NUTS run by ``harness reference correlated_regression_wine``
(``harness/data/references/correlated_regression_wine.npz``).
"""

from __future__ import annotations

import numpy as np

from harness.models.base import Model, nuts_reference
from harness.models.datasets import load_csv
from harness.models.unscaled_regression import original_units_regression

RESPONSE = "color_intensity"
PREDICTORS = ("alcohol", "hue", "od280_od315_of_diluted_wines", "proline")


def correlated_regression_wine(dtype: str = "float32") -> Model:
    """Build the original-units regression of wine colour intensity (d = 6).

    Args:
      dtype: ``float32`` or ``float64``.
    """
    columns = load_csv("wine")
    return original_units_regression(
        x=np.stack([columns[p] for p in PREDICTORS], axis=1),
        y=columns[RESPONSE],
        name="correlated_regression_wine",
        pretty_name="Correlated regression (wine)",
        description=(
            "colour intensity on 4 uncentred predictors, 178 wines; posterior sds 5e-4..2, "
            "|rho| 0.98; NUTS reference"
        ),
        dtype=dtype,
        reference=nuts_reference("correlated_regression_wine", missing_ok=True),
    )
