"""tinygrad_edu.viz.plots: the figures hold what they claim and are written as PNG files."""

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure

from tinygrad_edu.train import History
from tinygrad_edu.viz import plots

PNG = b"\x89PNG\r\n\x1a\n"


def inside(points):
    return ((points ** 2).sum(axis=1) <= 0.25).astype(float)


def test_decision_boundary(tmp_path):
    X = np.array([[0.0, 0.0], [0.9, 0.9], [0.1, -0.2]])
    y = inside(X)
    calls = []

    def predict(points):
        calls.append(points.shape)
        return inside(points)

    fig = plots.plot_decision_boundary(predict, X, y, tmp_path / "b.png", resolution=50)
    assert calls == [(2500, 2)]
    assert (tmp_path / "b.png").read_bytes()[:8] == PNG
    ax = fig.axes[0]
    assert ax.get_xlim() == (-1, 1) and ax.get_ylim() == (-1, 1)
    scattered = np.vstack([c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)])
    assert sorted(map(tuple, scattered)) == sorted(map(tuple, X))
    # the 0.5 contour of an exact circle indicator lies at distance ~0.5 from the origin
    contour = [c for c in ax.collections if hasattr(c, "get_paths") and c.get_paths() and
               getattr(c, "levels", None) is not None and list(c.levels) == [0.5]][0]
    vertices = np.vstack([p.vertices for p in contour.get_paths() if len(p.vertices)])
    assert np.allclose(np.hypot(vertices[:, 0], vertices[:, 1]), 0.5, atol=0.05)


def test_curves(tmp_path):
    h = History(epoch=[1, 2, 3], train_loss=[0.6, 0.4, 0.3], train_accuracy=[0.8, 0.9, 0.95],
                test_loss=[0.65, 0.45, 0.35], test_accuracy=[0.78, 0.88, 0.93])
    fig = plots.plot_curves(h, tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:8] == PNG
    loss_ax, acc_ax = fig.axes
    assert [line.get_label() for line in loss_ax.lines] == ["train loss", "test loss"]
    assert list(acc_ax.lines[1].get_ydata()) == pytest.approx([78, 88, 93])
    no_test = plots.plot_curves(History(epoch=[1], train_loss=[0.5], train_accuracy=[0.9]))
    assert len(no_test.axes[0].lines) == 1


def test_learning_curve(tmp_path):
    fig = plots.plot_learning_curve([100, 1000], [[0.8, 0.84], [0.97, 0.99]], tmp_path / "l.png",
                                    train_accuracy=[0.9, 0.98])
    assert (tmp_path / "l.png").read_bytes()[:8] == PNG
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert list(ax.lines[0].get_ydata()) == pytest.approx([82.0, 98.0])
    with pytest.raises(ValueError, match="got 1 test accuracies for 2 sizes"):
        plots.plot_learning_curve([100, 1000], [0.9])


def test_decision_grid_feeds_draw_decision_boundary_on_given_axes():
    assert plots.decision_grid(3).tolist() == [[-1, -1], [0, -1], [1, -1], [-1, 0], [0, 0], [1, 0],
                                               [-1, 1], [0, 1], [1, 1]]
    r = 41
    probs = (plots.decision_grid(r)[:, 0] > 0.2).astype(float).reshape(r, r)  # class 1 right of x = 0.2
    X = np.array([[0.5, 0.1], [-0.5, -0.3]])
    ax = Figure().add_subplot()
    filled = plots.draw_decision_boundary(ax, probs, X, [1.0, 0.0], radius=None, point_size=3)
    assert list(filled.levels) == pytest.approx(np.linspace(0, 1, 11))
    boundary = [c for c in ax.collections if list(getattr(c, "levels", [])) == [0.5]][0]
    vertices = np.vstack([p.vertices for p in boundary.get_paths() if len(p.vertices)])
    assert np.allclose(vertices[:, 0], 0.2, atol=0.05) and np.ptp(vertices[:, 1]) > 1.5  # vertical, not transposed
    scattered = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert [c.get_offsets().tolist() for c in scattered] == [[[0.5, 0.1]], [[-0.5, -0.3]]]
    assert all(c.get_sizes().tolist() == [3] and c.get_linewidths().tolist() == [0.3] for c in scattered)
    assert [line.get_linestyle() for line in ax.lines] == ["-"]  # the legend entry only: no circle without radius


def test_save_figure_follows_the_suffix_and_never_leaves_a_partial_file(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from tinygrad_edu.viz.plots import save_figure

    fig = Figure()
    fig.add_subplot().plot([0, 1], [1, 0])
    assert save_figure(fig, tmp_path / "a.png").read_bytes().startswith(b"\x89PNG")
    assert save_figure(fig, tmp_path / "a.svg").read_bytes().lstrip().startswith(b"<?xml")

    def dies_mid_write(f, **kwargs):
        f.write(b"\x89PNG half a picture")
        raise KeyboardInterrupt

    monkeypatch.setattr(fig, "savefig", dies_mid_write)
    with pytest.raises(KeyboardInterrupt):
        save_figure(fig, tmp_path / "b.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a.svg"]


def test_the_legend_and_colorbar_name_the_classes_given():
    X = np.array([[0.5, 0.1], [-0.5, -0.3]])
    fig = plots.plot_decision_boundary(lambda P: (P[:, 0] > 0).astype(float), X, np.array([1.0, 0.0]),
                                       resolution=20, radius=None, class_names=("upper moon", "lower moon"))
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["P = 0.5 boundary", "lower moon (1)", "upper moon (0)"]
    assert fig.axes[1].get_ylabel() == "P(lower moon)"
    default = plots.plot_decision_boundary(lambda P: (P[:, 0] > 0).astype(float), X, np.array([1.0, 0.0]),
                                           resolution=20, radius=None)
    assert [t.get_text() for t in default.axes[0].get_legend().get_texts()][1:] == ["inside (1)", "outside (0)"]
