"""Data for the circle task, as NumPy arrays: the dataset, a seeded train/test split and a
shuffling minibatch iterator. The same seed always gives the same arrays.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def circle(n: int, radius: float = 0.5, seed: int | np.random.Generator | None = None,
           ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points drawn uniformly from the square [-1, 1]², labelled 1.0 when inside the circle
    of ``radius`` around the origin (``x² + y² <= radius²``) and 0.0 outside, as in the article.

    Returns ``X`` of shape ``(n, 2)`` and ``y`` of shape ``(n,)``, both float64.
    """
    n = _positive_int("the number of samples", n)
    if not (isinstance(radius, (int, float)) and radius > 0 and math.isfinite(radius)):
        raise ValueError(f"radius must be a positive number, got {radius!r}")
    X = np.random.default_rng(seed).uniform(-1.0, 1.0, size=(n, 2))
    y = ((X**2).sum(axis=1) <= radius**2).astype(np.float64)
    return X, y


def train_test_split(X: np.ndarray, y: np.ndarray, test_size: float | int = 0.2,
                     seed: int | np.random.Generator | None = None, shuffle: bool = True,
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split into ``X_train, X_test, y_train, y_test`` (scikit-learn's order).

    ``test_size`` is a fraction in (0, 1) (the test set gets ``ceil(test_size * n)`` samples, as in
    scikit-learn) or a count. The rows are shuffled with ``seed`` first unless ``shuffle=False``.
    """
    X, y = np.asarray(X), np.asarray(y)
    n = len(X)
    if len(y) != n:
        raise ValueError(f"X and y have different lengths ({n} and {len(y)})")
    if isinstance(test_size, float):
        if not 0.0 < test_size < 1.0:
            raise ValueError(f"test_size as a fraction must be between 0 and 1, got {test_size}")
        n_test = math.ceil(test_size * n)
    elif isinstance(test_size, (int, np.integer)) and not isinstance(test_size, bool):
        n_test = int(test_size)
    else:
        raise TypeError(f"test_size must be a float fraction or an int count, got {test_size!r}")
    if not 1 <= n_test <= n - 1:
        raise ValueError(f"a test set of {n_test} out of {n} samples leaves no training or no test data; "
                         "use more samples or another test_size")
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    test, train = order[:n_test], order[n_test:]
    return X[train], X[test], y[train], y[test]


def minibatches(X: np.ndarray, y: np.ndarray, batch_size: int, *, shuffle: bool = True,
                seed: int | np.random.Generator | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(X_batch, y_batch)`` covering every row once; the last batch may be smaller
    (like Keras and PyTorch's ``DataLoader``). With ``shuffle`` the order is a fresh permutation
    from ``seed`` (pass one ``Generator`` across epochs to get a new order each epoch)."""
    batch_size = _positive_int("batch_size", batch_size)
    n = len(X)
    if len(y) != n:
        raise ValueError(f"X and y have different lengths ({n} and {len(y)})")
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        yield X[idx], y[idx]


def num_batches(n: int, batch_size: int) -> int:
    """How many batches :func:`minibatches` yields for ``n`` rows."""
    return -(-n // batch_size)


__all__ = ["circle", "train_test_split", "minibatches", "num_batches"]
