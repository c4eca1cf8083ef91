"""Chapter 3: gradient descent as walking down a valley.

Draws the loss surface L(p, q) = p² + 10·q² as a contour plot with the paths that plain gradient
descent takes from the same start at four learning rates (too small, good, overshooting,
diverging), and the loss along each path. Every gradient comes from ``Value.backward``.
"""

from __future__ import annotations

import numpy as np
import matplotlib.pyplot as plt

from _common import parse_args, save
from tinygrad_edu import Value

START = (-4.0, 1.5)
RATES = {  # learning rate -> what happens, for the legend
    0.01: "too small: crawls",
    0.05: "good",
    0.098: "too large: overshoots, zigzags",
    0.11: "far too large: diverges",
}


def loss(p, q):
    """A valley: gentle along p, ten times steeper along q. Works on floats, arrays and Values."""
    return p**2 + 10 * q**2


def descend(lr: float, steps: int, start=START) -> np.ndarray:
    """Plain gradient descent on ``loss``; returns the visited points, shape (steps + 1, 2)."""
    p, q = Value(start[0], label="p"), Value(start[1], label="q")
    path = [(p.data, q.data)]
    for _ in range(steps):
        L = loss(p, q)
        L.zero_grad()
        L.backward()
        p.data -= lr * p.grad
        q.data -= lr * q.grad
        path.append((p.data, q.data))
    return np.array(path)


def plot_valley(paths: dict, loss, grid: int = 300):
    """The valley ``loss(p, q)`` as contours with each learning rate's descent path (``paths``:
    learning rate -> visited (p, q) points), and the loss along each path."""
    P, Q = np.meshgrid(np.linspace(-4.5, 4.5, grid), np.linspace(-2.6, 2.6, grid))
    fig, (ax, ax_loss) = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [1.6, 1]})
    levels = np.geomspace(0.05, 120, 14)
    ax.contourf(P, Q, loss(P, Q), levels=levels, cmap="Blues_r", alpha=0.35)
    ax.contour(P, Q, loss(P, Q), levels=levels, colors="grey", linewidths=0.6)
    ax.plot(0, 0, marker="*", color="k", markersize=14, zorder=5)
    colors = ["tab:blue", "tab:green", "tab:orange", "tab:red"]
    for (lr, path), color in zip(paths.items(), colors):
        path = np.asarray(path)
        label = f"lr = {lr}: {RATES[lr]}" if lr in RATES else f"lr = {lr}"
        inside = np.flatnonzero(np.abs(path[:, 1]) > 2.6)  # a diverging path leaves the picture:
        shown = path[: inside[0] + 1] if inside.size else path  # draw it up to the edge
        ax.plot(shown[:, 0], shown[:, 1], "-o", color=color, markersize=3, linewidth=1.2, label=label)
        ax_loss.semilogy(loss(path[:, 0], path[:, 1]), "-o", color=color, markersize=3, label=label)
    steps = max(len(path) for path in paths.values()) - 1
    ax.set(xlim=(-4.5, 4.5), ylim=(-2.6, 2.6), xlabel="p", ylabel="q",
           title=f"L(p, q) = p² + 10·q²: {steps} steps from the same start")
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=8)
    ax_loss.set(xlabel="step", ylabel="loss (log scale)", title="The loss along each path")
    ax_loss.grid(True, which="major", alpha=0.3)
    return fig


def main(argv=None) -> None:
    args = parse_args(__doc__.splitlines()[0], argv)
    paths = {lr: descend(lr, steps=30) for lr in RATES}
    fig = plot_valley(paths, loss, grid=80 if args.quick else 300)
    save(fig, args.out, "ch03-valley.png", dpi=80 if args.quick else 110)


if __name__ == "__main__":
    main()
