"""VSBC: histogram of ``Pr_q(θ_i < θ_true_i)`` over simulations, one panel per coordinate.

The filled bars are p, the black outline is 1 − p (the mirror image the asymmetry test
compares against), the dashed line the uniform density of an exact posterior.  With more than
:data:`MAX_VSBC_PANELS` coordinates, those with the smallest p-values are shown.

Drawn by ``harness vsbc`` (one model × family), not by the report: no registry line.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from harness.figures import style as look

# At most this many coordinates (those with the smallest p-values).
MAX_VSBC_PANELS = 9


@dataclasses.dataclass(frozen=True)
class VsbcData:
    """Coordinates shown (sorted), their probabilities ``[M, d]``, p-values, the bins."""

    shown: np.ndarray
    probabilities: np.ndarray
    pvalues: np.ndarray
    bins: np.ndarray


def prepare(probabilities: np.ndarray, pvalues: np.ndarray) -> VsbcData:
    """The coordinates shown and the bins: about 10 simulations per bin (5 to 20 bins), so
    bar heights are not mostly noise."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    pvalues = np.asarray(pvalues, dtype=np.float64)
    shown = np.argsort(pvalues, kind="stable")[:MAX_VSBC_PANELS]
    shown.sort()
    bins = np.linspace(0.0, 1.0, int(np.clip(probabilities.shape[0] // 10, 5, 20)) + 1)
    return VsbcData(shown, probabilities, pvalues, bins)


def draw(data: VsbcData, stem: Path, *, title: str = "", style: str = "paper") -> list[Path]:
    """Draw :func:`prepare`'s histograms; writes ``stem.pdf`` and ``stem.png``."""
    with plt.rc_context(look.rc(style)):
        fig, axes = look.panel_grid(len(data.shown), style, extra_height=0.3)
        for ax, i in zip(axes, data.shown, strict=True):
            p = data.probabilities[:, i]
            ax.hist(p, bins=data.bins, density=True, color=look.OKABE_ITO[0], alpha=0.7, label="p")
            ax.hist(
                1.0 - p,
                bins=data.bins,
                density=True,
                histtype="step",
                color="black",
                linewidth=0.9,
                label="1 − p",
            )
            ax.axhline(1.0, color="0.4", linestyle="--", linewidth=0.8)
            ax.set_xlim(0, 1)
            ax.set_title(f"$\\theta_{{{i}}}$: KS p = {data.pvalues[i]:.2g}")
            ax.set_xlabel(r"$\Pr_q(\theta < \theta_\mathrm{true})$")
            ax.set_ylabel("density")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=2, frameon=False)
        if title:
            fig.suptitle(title)
        return look.save(fig, stem)


def vsbc_histogram(
    probabilities: np.ndarray,
    pvalues: np.ndarray,
    stem: Path,
    *,
    title: str = "",
    style: str = "paper",
) -> list[Path]:
    """:func:`prepare` then :func:`draw`; writes ``stem.pdf`` and ``stem.png``."""
    return draw(prepare(probabilities, pvalues), stem, title=title, style=style)
