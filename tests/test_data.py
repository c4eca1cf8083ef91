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


# The other tasks: each checked against its geometric definition, with noise 0 exactly and with
# noise through the spread of the points around it.

def test_moons_lie_on_their_arcs():
    X, y = data.moons(2001, seed=0, noise=0.0)
    assert X.shape == (2001, 2) and y.shape == (2001,) and X.dtype == np.float64
    assert (y == 0).sum() == 1001 and (y == 1).sum() == 1000
    u, v = X[:, 0] * 1.6 + 0.5, X[:, 1] * 1.6 + 0.25  # back to scikit-learn's coordinates
    upper, lower = y == 0, y == 1
    assert np.allclose(u[upper] ** 2 + v[upper] ** 2, 1.0) and (v[upper] >= -1e-12).all()
    assert np.allclose((u[lower] - 1) ** 2 + (v[lower] - 0.5) ** 2, 1.0) and (v[lower] <= 0.5 + 1e-12).all()
    assert np.abs(X).max() <= 1.0
    noisy, y2 = data.moons(2001, seed=0, noise=0.1)
    assert np.array_equal(y, y2)
    assert np.std(noisy - X) == pytest.approx(0.1, rel=0.1)


def test_xor_labels_are_same_sign_quadrants():
    X, y = data.xor(4000, seed=1)
    assert np.abs(X).max() <= 1.0
    assert np.array_equal(y == 1.0, np.sign(X[:, 0]) == np.sign(X[:, 1]))
    assert y.mean() == pytest.approx(0.5, abs=0.03)
    Xn, yn = data.xor(4000, seed=1, noise=0.2)
    assert np.array_equal(yn, y) and np.std(Xn - X) == pytest.approx(0.2, rel=0.1)


def test_spirals_follow_their_curves():
    X, y = data.spirals(1000, seed=2, noise=0.0, turns=1.0)
    r = np.hypot(X[:, 0], X[:, 1])
    s = (r - 0.05) / 0.85
    assert (s >= -1e-12).all() and (s <= 1 + 1e-12).all()
    # the angle of a point is 2 pi s (+ pi for class 1), up to whole turns
    expected = 2 * math.pi * s + math.pi * y
    diff = np.angle(np.exp(1j * (np.arctan2(X[:, 1], X[:, 0]) - expected)))
    assert np.abs(diff).max() < 1e-9
    assert (y == 0).sum() == (y == 1).sum() == 500


def test_blobs_centres_and_spread():
    X, y = data.blobs(20000, seed=3, noise=0.2)
    for label, centre in enumerate(data.BLOB_CENTERS):
        pts = X[y == label]
        assert np.allclose(pts.mean(axis=0), centre, atol=0.01)
        assert np.allclose(pts.std(axis=0), 0.2, rtol=0.05)


@pytest.mark.parametrize("name", sorted(data.TASKS))
def test_every_task_is_seeded_and_checks_its_arguments(name):
    a, b, c = (data.make_task(name, 300, seed=s) for s in (7, 7, 8))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and not np.array_equal(a[0], c[0])
    assert set(np.unique(a[1])) == {0.0, 1.0}
    with pytest.raises(ValueError, match="positive integer"):
        data.make_task(name, 0)
    for noise in (-0.1, math.inf, math.nan, 100.0, "0.1"):
        with pytest.raises(ValueError, match="noise"):
            data.make_task(name, 10, noise=noise)


def test_circle_without_noise_is_the_article_data_and_noise_moves_points_only():
    X, y = data.circle(500, seed=0)
    X0, y0 = data.circle(500, seed=0, noise=0.0)
    Xn, yn = data.circle(500, seed=0, noise=0.05)
    assert np.array_equal(X, X0) and np.array_equal(y, yn)
    assert 0 < np.abs(Xn - X).max() < 0.5


def test_make_task_unknown_name():
    with pytest.raises(ValueError, match="unknown task 'ring'; choose one of circle, moons"):
        data.make_task("ring", 10)


def test_minibatches_visit_rows_in_batch_order():
    # the batched engine's array loop draws the same permutation through data.batch_order
    X, y = np.zeros((23, 2)), np.arange(23.0)
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    for _ in range(2):  # two epochs: one Generator's stream goes on alike
        visited = np.concatenate([yb for _, yb in data.minibatches(X, y, 4, seed=rng_a)])
        order = data.batch_order(23, rng_b)
        assert np.array_equal(visited, order) and sorted(order.tolist()) == list(range(23))
