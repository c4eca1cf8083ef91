"""Chapter 4: a neuron, a layer, an MLP, trained on the circle task.

Trains the article's network (2 inputs, 8 ReLU units, 1 sigmoid output; SGD lr 0.1, batch 32,
50 epochs on 4000 of 5000 points) and draws the decision boundary as it forms: a grid of
snapshots, the same as a GIF, the final boundary with the test points, and the loss and
accuracy curves.
"""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from _common import parse_args, save
from tinygrad_edu._io import atomic_write
from tinygrad_edu.data import circle, train_test_split
from tinygrad_edu.nn import MLP
from tinygrad_edu.optim import SGD
from tinygrad_edu.train import fit, predict_proba
from tinygrad_edu.viz.plots import decision_grid, draw_decision_boundary, plot_curves, plot_decision_boundary


def draw_boundary(ax, probs: np.ndarray, X: np.ndarray, y: np.ndarray, title: str) -> None:
    """One snapshot: the library's decision-boundary drawing, small points without edges, no ticks."""
    draw_decision_boundary(ax, probs, X, y, point_size=4, point_edge=0)
    ax.set(xticks=[], yticks=[])
    ax.set_title(title, fontsize=9)


def train_with_snapshots(X_train, y_train, X_test, y_test, epochs: int, snap_at: list[int], grid: int = 120,
                         engine: str = "scalar"):
    """Train the article's network (SGD lr 0.1, batch 32, seed 0) and keep the decision grid's
    probabilities, with the test accuracy, after each epoch in ``snap_at`` (0: before training).
    Returns (model, history, snapshots)."""
    model = MLP(2, [8, 1], activation="relu", output_activation="sigmoid", seed=0)
    points = decision_grid(grid)
    snapshots: dict[int, tuple[np.ndarray, float]] = {}

    def snapshot(epoch: int, history) -> None:
        if epoch in snap_at:
            accuracy = history.test_accuracy[-1] if history is not None else float("nan")
            snapshots[epoch] = (predict_proba(model, points).reshape(grid, grid), accuracy)

    snapshot(0, None)
    history = fit(model, X_train, y_train, X_test=X_test, y_test=y_test, optimizer=SGD(model.parameters(), lr=0.1),
                  epochs=epochs, batch_size=32, seed=0, callback=snapshot, progress=False, engine=engine)
    return model, history, snapshots


def snapshot_title(epoch: int, snapshots: dict) -> str:
    accuracy = snapshots[epoch][1]
    return f"epoch {epoch}" + ("" if np.isnan(accuracy) else f": test accuracy {100 * accuracy:.1f}%")


def plot_snapshots(snapshots: dict, X: np.ndarray, y: np.ndarray, cols: int = 4):
    """The decision boundary at each snapshot, in a grid of small plots over the points (X, y)."""
    rows = -(-len(snapshots) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.1 * rows), squeeze=False)
    for ax, epoch in zip(axes.flat, snapshots):
        draw_boundary(ax, snapshots[epoch][0], X, y, snapshot_title(epoch, snapshots))
    fig.suptitle("The decision boundary (black) forming during training; the true circle dashed", fontsize=11)
    return fig


def plot_final_boundary(model, history, X_test, y_test, grid: int = 120):
    """The trained network's decision boundary over the test points."""
    return plot_decision_boundary(lambda P: predict_proba(model, P), X_test, y_test, resolution=grid,
                                  title=f"After {len(history.train_loss)} epochs: test accuracy "
                                        f"{100 * history.test_accuracy[-1]:.1f}%")


def main(argv=None) -> None:
    args = parse_args(__doc__.splitlines()[0], argv)
    n, epochs, snap_at, grid = (600, 4, [0, 1, 2, 4], 40) if args.quick else (5000, 50, [0, 1, 2, 5, 10, 20, 35, 50], 120)

    X, y = circle(n, seed=0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, seed=0)
    model, history, snapshots = train_with_snapshots(X_train, y_train, X_test, y_test, epochs, snap_at, grid)
    print(model)
    print(f"after {epochs} epochs: {history.summary()}")

    shown_X, shown_y = X_test[:300], y_test[:300]
    save(plot_snapshots(snapshots, shown_X, shown_y), args.out, "ch04-boundary-forming.png", dpi=60 if args.quick else 90)

    frames = []
    for epoch in snap_at:
        fig, ax = plt.subplots(figsize=(3.6, 3.8))
        draw_boundary(ax, snapshots[epoch][0], shown_X, shown_y, snapshot_title(epoch, snapshots))
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=60 if args.quick else 80)
        plt.close(fig)
        frames.append(Image.open(buffer).convert("RGB"))
    durations = [700] * (len(frames) - 1) + [2500]  # hold the final boundary
    gif = args.out / "ch04-boundary.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=durations, loop=0)
    print(f"wrote {gif}")

    save(plot_final_boundary(model, history, X_test, y_test, grid), args.out, "ch04-boundary.png",
         dpi=60 if args.quick else 100)
    save(plot_curves(history), args.out, "ch04-curves.png", dpi=60 if args.quick else 90)


if __name__ == "__main__":
    main()
