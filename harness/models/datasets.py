"""Data sets shipped inside the package (``harness/data/``): no network at run time.

``breast_cancer.csv``: Wisconsin Diagnostic Breast Cancer (Street, Wolberg & Mangasarian,
1993; UCI Machine Learning Repository), 569 tumours × 30 features and ``benign`` (1) /
malignant (0), as bundled with scikit-learn 1.9.1 (``sklearn.datasets.load_breast_cancer``).

``wine.csv``: UCI Wine (Forina et al.; Aeberhard, Coomans & de Vel, 1992), 178 wines × 13
chemical measurements and ``cultivar`` (0, 1, 2), as bundled with scikit-learn 1.9.1
(``sklearn.datasets.load_wine``).

``digits.csv``: UCI optical recognition of handwritten digits (Alpaydin & Kaynak, 1998), 1,797
images of 8×8 pixels (intensities 0–16, columns ``pixel_0 … pixel_63`` row by row) and
``digit``, as bundled with scikit-learn 1.9.1 (``sklearn.datasets.load_digits``); binarized and
split in :mod:`harness.models.vae_digits`.

All three were written from scikit-learn's bundled copies with a header row of the feature names
(spaces and slashes replaced by underscores); values are unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parents[1] / "data"


def load_csv(name: str) -> dict[str, np.ndarray]:
    """Columns of ``harness/data/<name>.csv`` by header name, as float64 arrays."""
    path = DATA_DIR / f"{name}.csv"
    with path.open() as f:
        header = f.readline().strip().split(",")
    values = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64)
    return {column: values[:, i] for i, column in enumerate(header)}


def standardize(x: np.ndarray) -> np.ndarray:
    """Centre each column and scale it to unit (population) standard deviation."""
    return (x - x.mean(axis=0)) / x.std(axis=0)
