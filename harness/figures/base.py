"""The :class:`Figure` record: what one report figure draws, from which results and inputs.

A figure module keeps its data preparation (``prepare``: the tidy table and inputs in, a plain
record of frames and arrays out; no matplotlib) apart from its drawing (``draw``: that record
in, ``stem.pdf`` and ``stem.png`` out), and declares both in one :class:`Figure`.
:data:`harness.figures.FIGURES` lists them; :func:`harness.report.write_report` walks it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

# Inputs a figure may need besides its rows of the tidy table, by their keyword in ``prepare``:
#   quality_metric, fallbacks: the preferred quality metric of the y axis, then the others
#     in order (a model without the preferred one uses the first it has);
#   histories: loss histories (columns run_id, seconds, loss; harness.tracking.loss_histories);
#   draws: run id → its logged arrays (``draws``, ``reference_mean``, ...; harness.tracking
#     .load_draws), a mapping read lazily, so only the runs a figure asks for are loaded.
INPUTS = ("quality_metric", "fallbacks", "histories", "draws")
# How many files a figure writes: one (""), one for the model the report names (its
# ``model`` option, else the first: "chosen"), or one per model with an ok cell ("each").
PER_MODEL = ("", "chosen", "each")
_STEM = re.compile(r"^[A-Za-z0-9_-]+$")


def posterior(table: pd.DataFrame) -> pd.DataFrame:
    """Rows of posterior-quality cells: every family but the VAE encoders (kind
    ``amortized``), whose models have no reference posterior."""
    return table[table["family_kind"] != "amortized"] if "family_kind" in table else table


def amortized(table: pd.DataFrame) -> pd.DataFrame:
    """Rows of amortized cells (VAE encoder families, :mod:`harness.vae`)."""
    if "family_kind" not in table:
        return table.iloc[:0]
    return table[table["family_kind"] == "amortized"]


def every(table: pd.DataFrame) -> pd.DataFrame:
    """Every row."""
    return table


@dataclasses.dataclass(frozen=True)
class Figure:
    """One figure of the report.

    Attributes:
      name: File stem under ``figures/`` (``name_<model>`` for a per-model figure).
      applies_to: Tidy table → the rows this figure draws; no rows, no figure.
      prepare: ``prepare(rows, **inputs)`` → the data ``draw`` takes (pure: no drawing, no
        I/O but through the ``draws`` mapping); a per-model figure also gets ``model=``.
      draw: ``draw(data, stem, *, style)`` → the written paths.
      needs: Names from :data:`INPUTS` that ``prepare`` takes as keywords.
      per_model: One of :data:`PER_MODEL`.
      options: Further keywords of ``prepare`` (e.g. the cost axis).
    """

    name: str
    applies_to: Callable[[pd.DataFrame], pd.DataFrame]
    prepare: Callable[..., Any]
    draw: Callable[..., list[Path]]
    needs: tuple[str, ...] = ()
    per_model: str = ""
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not _STEM.match(self.name):
            raise ValueError(f"figure name {self.name!r} is not a file stem ([A-Za-z0-9_-])")
        unknown = set(self.needs) - set(INPUTS)
        if unknown:
            raise ValueError(f"{self.name}: unknown inputs {sorted(unknown)} (known: {INPUTS})")
        if self.per_model not in PER_MODEL:
            raise ValueError(f"{self.name}: per_model {self.per_model!r} not in {PER_MODEL}")


__all__ = ["INPUTS", "PER_MODEL", "Figure", "amortized", "every", "posterior"]
