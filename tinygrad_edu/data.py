"""Toy two-class datasets in the square [-1, 1]², as NumPy arrays: the article's circle task, and
two-moons, XOR, two spirals and Gaussian blobs (the tasks of TensorFlow Playground and
scikit-learn's ``make_*``); a seeded train/test split and a shuffling minibatch iterator. The same
seed always gives the same arrays. :data:`TASKS` maps each task's name to its generator.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _noise(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) \
            or not math.isfinite(value) or not 0.0 <= value <= 10.0:
        raise ValueError(f"noise must be a number between 0 and 10 (a standard deviation), got {value!r}")
    return float(value)


def _jitter(X: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """``X`` plus Gaussian noise of standard deviation ``noise`` (no draw at all when it is 0)."""
    if noise > 0.0:
        X = X + rng.normal(0.0, noise, size=X.shape)
    return X


def _two_classes(n: int, rng: np.random.Generator) -> np.ndarray:
    """Labels for ``n`` points, half 0.0 and half 1.0 (class 0 gets the extra one), in random order."""
    y = np.zeros(n)
    y[n // 2 + n % 2:] = 1.0
    return y[rng.permutation(n)]


def circle(n: int, radius: float = 0.5, seed: int | np.random.Generator | None = None, *,
           noise: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points drawn uniformly from the square [-1, 1]², labelled 1.0 when inside the circle
    of ``radius`` around the origin (``x² + y² <= radius²``) and 0.0 outside, as in the article.
    ``noise`` > 0 moves each point by Gaussian noise of that standard deviation *after* labelling,
    so the classes overlap near the circle (0, the article's task, draws nothing extra).

    Returns ``X`` of shape ``(n, 2)`` and ``y`` of shape ``(n,)``, both float64.
    """
    n = _positive_int("the number of samples", n)
    if not (isinstance(radius, (int, float)) and radius > 0 and math.isfinite(radius)):
        raise ValueError(f"radius must be a positive number, got {radius!r}")
    noise = _noise(noise)
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1.0, 1.0, size=(n, 2))
    y = ((X**2).sum(axis=1) <= radius * radius).astype(np.float64)  # radius**2 would raise OverflowError past 1e154
    return _jitter(X, noise, rng), y


def moons(n: int, seed: int | np.random.Generator | None = None, *, noise: float = 0.05
          ) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles (scikit-learn's ``make_moons``, scaled into [-1, 1]²): class 0
    on the upper arc ``(cos t, sin t)``, class 1 on the lower ``(1 - cos t, 0.5 - sin t)`` for
    ``t`` uniform in [0, π], both then mapped by ``(x - 0.5) / 1.6, (y - 0.25) / 1.6``, plus
    Gaussian ``noise`` (standard deviation, in the output's units). Half the points per class."""
    n, noise = _positive_int("the number of samples", n), _noise(noise)
    rng = np.random.default_rng(seed)
    y = _two_classes(n, rng)
    t = rng.uniform(0.0, math.pi, n)
    upper = y == 0.0
    X = np.where(upper[:, None], np.c_[np.cos(t), np.sin(t)], np.c_[1.0 - np.cos(t), 0.5 - np.sin(t)])
    X = (X - [0.5, 0.25]) / 1.6
    return _jitter(X, noise, rng), y


def xor(n: int, seed: int | np.random.Generator | None = None, *, noise: float = 0.0
        ) -> tuple[np.ndarray, np.ndarray]:
    """The XOR pattern: points uniform in [-1, 1]², labelled 1.0 where both coordinates have the
    same sign (``x * y > 0``: the first and third quadrants) and 0.0 elsewhere; a point on an axis
    is class 0. ``noise`` moves each point after labelling, as in :func:`circle`."""
    n, noise = _positive_int("the number of samples", n), _noise(noise)
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1.0, 1.0, size=(n, 2))
    y = (X[:, 0] * X[:, 1] > 0.0).astype(np.float64)
    return _jitter(X, noise, rng), y


def spirals(n: int, seed: int | np.random.Generator | None = None, *, noise: float = 0.02,
            turns: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals: a point at ``s`` uniform in [0, 1] sits at radius ``0.05 + 0.85 s``
    and angle ``2π turns s``, plus π for class 1, plus Gaussian ``noise``. Half the points per class."""
    n, noise = _positive_int("the number of samples", n), _noise(noise)
    if isinstance(turns, bool) or not isinstance(turns, (int, float)) or not 0.0 < turns <= 10.0:
        raise ValueError(f"turns must be a number in (0, 10], got {turns!r}")
    rng = np.random.default_rng(seed)
    y = _two_classes(n, rng)
    s = rng.uniform(0.0, 1.0, n)
    radius, angle = 0.05 + 0.85 * s, 2.0 * math.pi * turns * s + math.pi * y
    X = np.c_[radius * np.cos(angle), radius * np.sin(angle)]
    return _jitter(X, noise, rng), y


#: The two centres of :func:`blobs`: class 0 lower left, class 1 upper right.
BLOB_CENTERS = ((-0.4, -0.3), (0.4, 0.3))


def blobs(n: int, seed: int | np.random.Generator | None = None, *, noise: float = 0.25
          ) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian blobs (scikit-learn's ``make_blobs`` with two centres): class 0 around
    ``BLOB_CENTERS[0]``, class 1 around ``BLOB_CENTERS[1]``, each with standard deviation
    ``noise`` in both coordinates. Half the points per class."""
    n, noise = _positive_int("the number of samples", n), _noise(noise)
    rng = np.random.default_rng(seed)
    y = _two_classes(n, rng)
    centers = np.asarray(BLOB_CENTERS)[y.astype(np.intp)]
    return _jitter(centers, noise, rng) if noise > 0.0 else centers.copy(), y


#: Every task by name: ``TASKS[name](n, seed=..., noise=...) -> (X, y)``.
TASKS = {"circle": circle, "moons": moons, "xor": xor, "spirals": spirals, "blobs": blobs}
#: What classes 0 and 1 of each task are, in words (for legends).
CLASS_NAMES = {"circle": ("outside", "inside"), "moons": ("upper moon", "lower moon"),
               "xor": ("signs differ", "same signs"), "spirals": ("spiral 0", "spiral 1"),
               "blobs": ("lower-left blob", "upper-right blob")}


def make_task(name: str, n: int, *, noise: float | None = None,
              seed: int | np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points of the task called ``name`` (a key of :data:`TASKS`); ``noise=None`` keeps the
    task's default noise."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    kwargs = {} if noise is None else {"noise": noise}
    return TASKS[name](n, seed=seed, **kwargs)


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
    order = batch_order(n, seed) if shuffle else np.arange(n)
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
    order = batch_order(n, seed) if shuffle else np.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        yield X[idx], y[idx]


def batch_order(n: int, seed: int | np.random.Generator | None = None) -> np.ndarray:
    """The order in which an epoch visits ``n`` shuffled rows: a permutation drawn from ``seed``
    (a ``Generator`` passes through, its stream goes on). :func:`minibatches` and the batched
    engine's array loop both draw it here, so both visit the rows in the same order."""
    return np.random.default_rng(seed).permutation(n)


def num_batches(n: int, batch_size: int) -> int:
    """How many batches :func:`minibatches` yields for ``n`` rows."""
    return -(-n // batch_size)


__all__ = ["circle", "moons", "xor", "spirals", "blobs", "TASKS", "make_task", "BLOB_CENTERS", "train_test_split", "minibatches", "batch_order", "num_batches"]
