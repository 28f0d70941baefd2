"""The small per-cell PNG of an MLflow run page (``cell.png``, logged by
:mod:`harness.tracking`): q's marginals (up to 6) over the reference and the loss curve, or for
a VAE cell its kept images and the loss curve.  Cheap on purpose (one figure, low dpi, no PDF).

Drawn for one run as it is logged, not by the report: no registry line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker

from harness.figures import style as look
from harness.figures.vae_images import VAE_IMAGE_ROWS, image, split_vae_images


@dataclasses.dataclass(frozen=True)
class LossCurve:
    """The finite part of a loss curve, its smoothed line and y range (None: no finite loss)."""

    seconds: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    ylim: tuple[float, float] | None


def loss_curve(losses: np.ndarray, loss_seconds: np.ndarray, *, smoothing: bool) -> LossCurve:
    """The finite losses, smoothed over :data:`~harness.figures.style.SMOOTHING_FRACTION` of
    the steps when ``smoothing``; the y range shows the last 80 % of the (smoothed) curve."""
    finite = np.isfinite(losses)
    if not finite.any():
        return LossCurve(loss_seconds[finite], losses[finite], losses[finite], None)
    values = losses[finite]
    smoothed = values
    if smoothing:
        window = max(1, int(round(look.SMOOTHING_FRACTION * losses.size)))
        smoothed = look.smooth(values, window)
    tail = smoothed[smoothed.size // 5 :]
    span = max(float(np.ptp(tail)), 1.0)
    ylim = (float(tail.min()) - 0.2 * span, float(tail.max()) + 0.5 * span)
    return LossCurve(loss_seconds[finite], values, smoothed, ylim)


@dataclasses.dataclass(frozen=True)
class CellData:
    """q draws (up to :data:`~harness.figures.style.MAX_MARGINALS` coordinates), the
    reference, per coordinate the shared and own bins, and the loss curve."""

    draws: np.ndarray | None
    reference: Mapping | None
    bins: list[np.ndarray]
    own_bins: list[np.ndarray]
    loss: LossCurve


def prepare(
    draws: np.ndarray | None,
    losses: np.ndarray,
    loss_seconds: np.ndarray,
    reference: Mapping | None,
) -> CellData:
    """The histograms' bins (25 shared, 20 of q's own range) and the smoothed loss curve."""
    d = 0 if draws is None else min(look.MAX_MARGINALS, draws.shape[1])
    bins, own = [], []
    for i in range(d):
        shared = look.shared_bins([draws[:, i], *look.reference_arrays(reference, i)], n=25)
        bins.append(shared)
        own.append(look.own_bins(draws[:, i], shared, n=20))
    return CellData(draws, reference, bins, own, loss_curve(losses, loss_seconds, smoothing=True))


def _loss_axis(ax, curve: LossCurve, *, color: str, raw: str, smoothed: bool) -> None:
    if curve.ylim is None:
        look.empty(ax, "no loss")
        return
    ax.plot(curve.seconds, curve.losses, color=raw, linewidth=0.5)
    if smoothed:
        ax.plot(curve.seconds, curve.smoothed, color=color, linewidth=1.0)
    ax.set_ylim(*curve.ylim)


def draw(data: CellData, path: Path, *, title: str) -> Path:
    """Draw :func:`prepare`'s panels; writes the PNG ``path``."""
    d = len(data.bins)
    # Fixed margins instead of constrained_layout, and one patch per histogram (``stairs``):
    # this figure is drawn for every cell, so it must cost well under 0.3 s.
    rc = {**look.rc("paper"), "figure.constrained_layout.use": False}
    panel, loss_panel, height = 1.5, 2.4, 1.9  # inches
    width = panel * d + loss_panel
    with plt.rc_context(rc):
        fig = plt.figure(figsize=(width, height))
        grid = fig.add_gridspec(
            1,
            d + 1,
            width_ratios=[panel] * d + [loss_panel],
            left=0.15 / width,
            right=1 - 0.65 / width,
            bottom=0.24,
            top=0.84,
            wspace=0.25,
        )
        axes = [fig.add_subplot(grid[0, i]) for i in range(d + 1)]
        fig.suptitle(title)
        for i, ax in enumerate(axes[:d]):
            look.reference_density(ax, i, data.reference, data.bins[i], stairs=True)
            counts, edges = np.histogram(data.draws[:, i], bins=data.own_bins[i], density=True)
            ax.stairs(counts, edges, color=look.OKABE_ITO[0], linewidth=1.0)
            ax.set_xlabel(f"z[{i}]")
            ax.set_yticks([])
            ax.xaxis.set_major_locator(ticker.MaxNLocator(3))
        ax = axes[d]
        _loss_axis(ax, data.loss, color=look.OKABE_ITO[3], raw="0.75", smoothed=True)
        ax.set_xlabel(look.axis_label("optimization_seconds"))
        ax.set_ylabel("loss (nats)")
        ax.yaxis.set_label_position("right")
        ax.yaxis.tick_right()
        ax.spines["right"].set_visible(True)
        ax.spines["left"].set_visible(False)
        return look.save(fig, Path(path).with_suffix(""), formats=("png",), dpi=80)[0]


def cell_figure(
    path: Path,
    *,
    draws: np.ndarray | None,
    losses: np.ndarray,
    loss_seconds: np.ndarray,
    reference: Mapping | None,
    title: str,
) -> Path:
    """:func:`prepare` then :func:`draw`: the PNG ``path`` of a posterior cell."""
    return draw(prepare(draws, losses, loss_seconds, reference), path, title=title)


def vae_cell_figure(
    path: Path,
    *,
    draws: np.ndarray | None,
    losses: np.ndarray,
    loss_seconds: np.ndarray,
    title: str,
) -> Path:
    """Small per-cell PNG of a VAE cell: its kept images and the training loss curve."""
    curve = loss_curve(losses, loss_seconds, smoothing=False)
    rc = {**look.rc("paper"), "figure.constrained_layout.use": True}
    with plt.rc_context(rc):
        fig, axes = plt.subplots(
            1, 4, figsize=(8.0, 1.9), gridspec_kw={"width_ratios": [1.6, 1.6, 1.6, 1.4]}
        )
        fig.suptitle(title)
        parts = split_vae_images(draws) if draws is not None else {}
        for ax, name in zip(axes[:3], VAE_IMAGE_ROWS, strict=True):
            if name in parts:
                image(ax, parts[name])
                ax.set_title(name)
            else:
                ax.set_visible(False)
        ax = axes[3]
        _loss_axis(ax, curve, color="0.6", raw="0.6", smoothed=False)
        ax.set_xlabel(look.axis_label("optimization_seconds"))
        ax.set_ylabel("−ELBO (nats/image)")
        return look.save(fig, Path(path).with_suffix(""), formats=("png",), dpi=80)[0]
