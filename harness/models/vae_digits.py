"""Variational autoencoder on binarized 8×8 digits: an *amortized* model (``Model.kind``).

Unlike the other models this is not one posterior but a generative model with learned weights
over a data set; it is fitted by an encoder family (``encoder_diagonal``,
``encoder_full_covariance``, ``encoder_iaf``) through :func:`harness.engines.amortized.run`.

Data: scikit-learn's bundled UCI optical digits (Alpaydin & Kaynak, 1998), 1,797 images of
8×8 pixels with intensities 0–16, shipped as ``harness/data/digits.csv`` (written from
``sklearn.datasets.load_digits`` of scikit-learn 1.9.1, values unchanged; columns
``pixel_0 … pixel_63`` row by row, then ``digit``).  Each pixel is binarized as
``intensity / 16 > 0.5`` (so a Bernoulli likelihood applies), and the images are split once,
by a permutation from ``numpy.random.default_rng(SPLIT_SEED)``, into ``NUM_TEST = 297`` test
and 1,500 training images: the split never depends on a cell's seed, so every cell is
evaluated on the same test images.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from harness.models.base import Model
from harness.models.datasets import DATA_DIR

# Seed of the one train/test permutation, and the test-set size (1,797 − 297 = 1,500 training
# images: a round training-set size, and a test set large enough that the test ELBO's spread
# over images, not its Monte Carlo error, dominates).
SPLIT_SEED = 0
NUM_TEST = 297
IMAGE_SHAPE = (8, 8)
NUM_PIXELS = 64
# Digits intensities run 0..16; a pixel is "on" above half intensity.
MAX_INTENSITY = 16.0


@functools.lru_cache(maxsize=1)
def binarized_digits() -> dict[str, np.ndarray]:
    """The binarized digits split into ``x_train`` ``[1500, 64]`` and ``x_test`` ``[297, 64]``
    (float64 0/1 pixels), with their labels ``y_train``, ``y_test`` (figures only)."""
    values = np.loadtxt(DATA_DIR / "digits.csv", delimiter=",", skiprows=1, dtype=np.float64)
    pixels = (values[:, :NUM_PIXELS] / MAX_INTENSITY > 0.5).astype(np.float64)
    labels = values[:, NUM_PIXELS].astype(np.int64)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(values))
    test, train = order[:NUM_TEST], order[NUM_TEST:]
    out = {
        "x_train": pixels[train],
        "x_test": pixels[test],
        "y_train": labels[train],
        "y_test": labels[test],
    }
    for array in out.values():
        array.flags.writeable = False
    return out


@dataclasses.dataclass(frozen=True)
class AmortizedModel(Model):
    """A :class:`~harness.models.base.Model` of kind ``amortized``: a VAE's generative side.

    Attributes (beyond :class:`Model`'s; ``dimension`` is the latent size, ``data`` holds
    ``x_train`` and ``x_test``):
      decoder_hidden_units: Width of the decoder's hidden layer.
      gap_num_points: Test images on which the amortization gap is measured.
      gap_num_steps: Adam steps of each test image's own q for the amortization gap.
    """

    decoder_hidden_units: int = 64
    gap_num_points: int = 50
    gap_num_steps: int = 300


def _no_single_target(x):
    raise ValueError(
        "vae_digits is an amortized model: it has no single target density; "
        "fit it with an encoder family (encoder_diagonal, encoder_full_covariance, "
        "encoder_iaf)"
    )


def vae_digits(
    latent_size: int = 4, hidden_units: int = 64, gap_num_points: int = 50, gap_num_steps: int = 300
) -> AmortizedModel:
    """Variational autoencoder (Kingma & Welling, 2014; Rezende et al., 2014) on binarized digits.

    Generative model, for each image ``x_n`` (64 binary pixels)::

        z_n ~ Normal(0, I_latent_size)
        h_n = relu(W₁ z_n + b₁)                       (hidden_units wide)
        x_n,j ~ Bernoulli(logits = (W₂ h_n + b₂)_j)    independently over the 64 pixels

    The decoder weights ``W, b`` are learned jointly with the encoder (maximum ELBO); the
    encoder family, ``q(z | x)``, is the grid axis.  Data: see the module docstring (UCI optical
    digits, Alpaydin & Kaynak 1998, binarized at half intensity, fixed split of 1,500 training
    and 297 test images).

    Args:
      latent_size: Dimension of z.
      hidden_units: Width of the decoder's hidden layer.
      gap_num_points: Test images (the first of the fixed test set) on which the amortization
        gap (Cremer, Li & Duvenaud, 2018) is measured.
      gap_num_steps: Adam steps (at the cell's learning rate and sample size) of each of those
        images' own q, started from the encoder's output.
    """
    data = binarized_digits()
    return AmortizedModel(
        name="vae_digits",
        pretty_name="VAE (digits)",
        dimension=int(latent_size),
        dtype="float32",
        default_event_space_bijector=None,
        unnormalized_log_prob=_no_single_target,
        reference=None,
        description=f"VAE, {latent_size}-d latent, Bernoulli MLP decoder, binarized 8x8 digits",
        data={"x_train": data["x_train"], "x_test": data["x_test"]},
        kind="amortized",
        decoder_hidden_units=int(hidden_units),
        gap_num_points=int(gap_num_points),
        gap_num_steps=int(gap_num_steps),
    )
