"""VAE images, one row per encoder family: test images, their reconstructions and decoded
prior draws of the family's lowest-seed ok cell (its logged ``draws``), as pixel
probabilities (white 0, black 1).  One figure per amortized model."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from harness.figures import style as look
from harness.figures.base import Figure, amortized

# Rows of a VAE cell's kept images (harness.vae.DRAW_ROWS; repeated here so that drawing needs
# no TensorFlow): test images, their reconstructions, decoded prior draws, 16 each.
VAE_IMAGE_ROWS = {"test images": 16, "reconstructions": 16, "prior samples": 16}
VAE_IMAGE_SHAPE = (8, 8)
VAE_MOSAIC_COLUMNS = 8


def mosaic(
    images: np.ndarray, shape: tuple[int, int] = VAE_IMAGE_SHAPE, columns: int = VAE_MOSAIC_COLUMNS
) -> np.ndarray:
    """Flat images ``[n, h·w]`` → one ``[rows·(h+1)−1, columns·(w+1)−1]`` array, a 1-pixel
    gap (NaN, drawn as background) between images."""
    h, w = shape
    n = images.shape[0]
    rows = max(1, math.ceil(n / columns))
    out = np.full((rows * (h + 1) - 1, columns * (w + 1) - 1), np.nan)
    for i in range(n):
        r, c = divmod(i, columns)
        out[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = images[i].reshape(h, w)
    return out


def split_vae_images(draws: np.ndarray) -> dict[str, np.ndarray]:
    """A VAE cell's kept images ``[48, 64]`` → name → ``[16, 64]`` (:data:`VAE_IMAGE_ROWS`)."""
    out, start = {}, 0
    for name, rows in VAE_IMAGE_ROWS.items():
        out[name] = draws[start : start + rows]
        start += rows
    return out


def image(ax, images: np.ndarray) -> None:
    """``images`` as one :func:`mosaic` on ``ax``, without ticks or frame."""
    cmap = plt.get_cmap("gray_r").with_extremes(bad="#DDDDDD")  # gaps between images
    ax.imshow(mosaic(images), cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


@dataclasses.dataclass(frozen=True)
class ImagesData:
    """Family → its kept images ``[48, 64]``, family → label (pretty name)."""

    images: dict[str, np.ndarray]
    labels: dict[str, str]


def prepare(table: pd.DataFrame, *, model: str, draws: Mapping[str, Mapping | None]) -> ImagesData:
    """The kept images of ``model``'s lowest-seed ok cell per family.

    Args:
      draws: Run id → its logged arrays (``harness.tracking.load_draws``), or None.
    """
    rows = look.ok_rows(table)
    rows = rows[rows["model"] == model]
    images, labels = {}, {}
    for family, sub in rows.groupby("family", sort=False):
        logged = draws.get(sub.sort_values("seed")["run_id"].iloc[0])
        if logged is not None and "draws" in logged:
            images[family] = logged["draws"]
            labels[family] = sub["family_pretty_name"].iloc[0]
    return ImagesData(images, labels)


def draw(data: ImagesData, stem: Path, *, style: str = "paper") -> list[Path]:
    """Draw :func:`prepare`'s images; writes ``stem.pdf`` and ``stem.png``."""
    families = list(data.images)
    column, page, _, _ = look.STYLES[style]
    panels = list(VAE_IMAGE_ROWS)
    with plt.rc_context(look.rc(style)):
        height = 0.95 * page / len(panels) * 2 / 8 * max(1, len(families)) + 0.5
        fig, axes = plt.subplots(
            max(1, len(families)), len(panels), figsize=(page, height), squeeze=False
        )
        for row, family in enumerate(families):
            parts = split_vae_images(data.images[family])
            for col, name in enumerate(panels):
                ax = axes[row, col]
                image(ax, parts[name])
                if row == 0:
                    ax.set_title(name)
                if col == 0:  # horizontal row label: a long name never outgrows its row
                    ax.set_ylabel(
                        look.wrap(data.labels.get(family, family), 12),
                        rotation=0,
                        ha="right",
                        va="center",
                    )
        if not families:
            look.empty(axes[0, 0], "no images")
        return look.save(fig, stem)


def plot(
    images: Mapping[str, np.ndarray], labels: Mapping[str, str], stem: Path, *, style: str = "paper"
) -> list[Path]:
    """Draw ``images`` (family → kept images) labelled by ``labels`` (family → label)."""
    return draw(ImagesData(dict(images), dict(labels)), stem, style=style)


FIGURE = Figure(
    "vae_images",
    applies_to=amortized,
    prepare=prepare,
    draw=draw,
    needs=("draws",),
    per_model="each",
)
