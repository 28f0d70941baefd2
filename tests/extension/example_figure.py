"""An example figure as a user adds one: this file and one registry line.

The example metric per family, mean over seeds, as bars (one panel for the whole sweep)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.figures import style as look
from harness.figures.base import Figure, posterior


def prepare(table: pd.DataFrame) -> pd.Series:
    """Mean of ``example_worst_z`` per family over its ok cells (pure: no drawing)."""
    ok = table[table["status"] == "ok"]
    if "example_worst_z" not in ok:
        return pd.Series(dtype=float)
    return ok.groupby("family_pretty_name")["example_worst_z"].mean()


def draw(data: pd.Series, stem: Path, *, style: str = "paper") -> list[Path]:
    import matplotlib.pyplot as plt

    with plt.rc_context(look.rc(style)):
        fig, ax = plt.subplots(figsize=(3.3, 2.2))
        ax.bar(list(data.index), data.to_numpy(), color=look.OKABE_ITO[: len(data)])
        ax.set_ylabel("worst |z| (reference sd)")
        return look.save(fig, stem)


EXAMPLE_FIGURE = Figure("example_worst_z", posterior, prepare, draw)
