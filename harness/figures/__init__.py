"""Figures: the only package that draws.  One module per figure, one registry line each.

A report figure's module has a pure ``prepare`` (the tidy table of
:func:`harness.report.tidy` and the inputs it declares in, a record of frames and arrays out),
a ``draw`` (that record in, ``stem.pdf`` and ``stem.png`` out) and a :class:`Figure` record
that says which results it applies to and what it needs.  :func:`harness.report.write_report`
walks :data:`FIGURES`.  Adding a figure is one module and one line below.

The shared look (palette, family and series styles, sizes, axes, saving) is
:mod:`harness.figures.style`.  The per-cell figure (:mod:`~harness.figures.cell`, drawn as a
run is logged) and the VSBC figure (:mod:`~harness.figures.vsbc`, drawn by ``harness vsbc``)
are not report figures.
"""

from __future__ import annotations

from harness.figures import (
    elbo_vs_time,
    khat_heatmap,
    marginals,
    quality_vs_gradients,
    quality_vs_speed,
    std_ratio,
    time_breakdown,
    vae_amortization_gap,
    vae_images,
    vae_likelihood_vs_time,
)
from harness.figures.base import INPUTS, PER_MODEL, Figure, amortized, every, posterior

# In the report's order.
FIGURES: list[Figure] = [
    quality_vs_speed.FIGURE,
    quality_vs_gradients.FIGURE,
    elbo_vs_time.FIGURE,
    time_breakdown.FIGURE,
    khat_heatmap.FIGURE,
    std_ratio.FIGURE,
    marginals.FIGURE,
    vae_likelihood_vs_time.FIGURE,
    vae_amortization_gap.FIGURE,
    vae_images.FIGURE,
]

__all__ = ["FIGURES", "INPUTS", "PER_MODEL", "Figure", "amortized", "every", "posterior"]
