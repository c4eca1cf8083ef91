"""tinygrad_edu.data: the circle dataset, the split and the minibatches, and their seeds."""

import math

import numpy as np
import pytest

from tinygrad_edu import data


def test_circle_points_and_labels():
    X, y = data.circle(20000, seed=0)
    assert X.shape == (20000, 2) and y.shape == (20000,) and X.dtype == y.dtype == np.float64
    assert X.min() >= -1.0 and X.max() <= 1.0
    inside = X[:, 0] ** 2 + X[:, 1] ** 2 <= 0.25
    assert np.array_equal(y == 1.0, inside) and set(np.unique(y)) == {0.0, 1.0}
    # a uniform point falls inside the circle with probability (pi r^2) / 4 = pi / 16
    assert y.mean() == pytest.approx(math.pi / 16, abs=0.01)
    X2, y2 = data.circle(20000, radius=0.8, seed=0)
    assert y2.mean() == pytest.approx(math.pi * 0.64 / 4, abs=0.01)


def test_circle_is_reproducible():
    a, b, c = data.circle(50, seed=3), data.circle(50, seed=3), data.circle(50, seed=4)
    assert np.array_equal(a[0], b[0]) and not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("n", [0, -5, 2.5, True])
def test_circle_bad_sizes(n):
    with pytest.raises(ValueError, match="positive integer"):
        data.circle(n)


def test_train_test_split():
    X, y = data.circle(101, seed=0)
    X_tr, X_te, y_tr, y_te = data.train_test_split(X, y, 0.2, seed=1)
    assert len(X_te) == 21 and len(X_tr) == 80  # ceil(0.2 * 101), as scikit-learn
    rows = {tuple(r) for r in np.vstack([X_tr, X_te])}
    assert rows == {tuple(r) for r in X}
    for part_X, part_y in ((X_tr, y_tr), (X_te, y_te)):  # labels travel with their points
        assert np.array_equal(part_y == 1.0, (part_X ** 2).sum(axis=1) <= 0.25)
    again = data.train_test_split(X, y, 0.2, seed=1)
    other = data.train_test_split(X, y, 0.2, seed=2)
    assert np.array_equal(again[1], X_te) and not np.array_equal(other[1], X_te)
    assert np.array_equal(data.train_test_split(X, y, 10, shuffle=False)[1], X[:10])


def test_train_test_split_errors():
    X, y = data.circle(10, seed=0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        data.train_test_split(X, y, 1.5)
    with pytest.raises(ValueError, match="no training or no test data"):
        data.train_test_split(X[:1], y[:1], 0.2)
    with pytest.raises(ValueError, match="different lengths"):
        data.train_test_split(X, y[:5])


def test_minibatches_cover_every_row_once():
    X = np.arange(20.0).reshape(10, 2)
    y = np.arange(10.0)
    batches = list(data.minibatches(X, y, 4, seed=0))
    assert [len(b[0]) for b in batches] == [4, 4, 2] == [len(b[1]) for b in batches]
    assert data.num_batches(10, 4) == 3
    seen = np.concatenate([b[1] for b in batches])
    assert sorted(seen) == list(range(10)) and list(seen) != list(range(10))
    for Xb, yb in batches:
        assert np.array_equal(Xb[:, 0], 2 * yb)  # rows stay paired with their labels
    assert [list(b[1]) for b in data.minibatches(X, y, 4, shuffle=False)][0] == [0, 1, 2, 3]


def test_minibatches_shuffle_from_one_generator_changes_each_epoch_reproducibly():
    X, y = np.zeros((30, 2)), np.arange(30.0)

    def two_epochs(seed):
        rng = np.random.default_rng(seed)
        return [np.concatenate([b for _, b in data.minibatches(X, y, 8, seed=rng)]) for _ in range(2)]

    first, second = two_epochs(5)
    assert not np.array_equal(first, second)
    assert all(np.array_equal(a, b) for a, b in zip(two_epochs(5), (first, second)))


def test_minibatches_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        list(data.minibatches(np.zeros((3, 2)), np.zeros(3), 0))
