"""Matplotlib pictures of training: the decision boundary, loss and accuracy curves, and the
learning curve. Figures are built without pyplot, so they render headless (no display needed)
and never touch the global matplotlib state.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.contour import QuadContourSet
from matplotlib.figure import Figure

from .._io import atomic_write

if TYPE_CHECKING:
    from ..train import History

TRAIN_COLOR, TEST_COLOR = "#1f77b4", "#d62728"


def save_figure(fig: Figure, path: str | os.PathLike, *, dpi: int = 120, **savefig_options) -> Path:
    """Save ``fig`` to ``path`` in the format its suffix names (``.png``, ``.svg``, ``.pdf``, ...),
    trimmed to its content, atomically: an interrupted save leaves no partial file. Returns the path."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format=fmt, dpi=dpi, bbox_inches="tight", **savefig_options)
    return path


def _save(fig: Figure, path: str | os.PathLike | None, dpi: int = 120) -> Figure:
    if path is not None:
        save_figure(fig, path, dpi=dpi)
    return fig


def decision_grid(resolution: int = 200) -> np.ndarray:
    """The points where a decision boundary is evaluated: a ``resolution`` x ``resolution`` grid
    over [-1, 1]², row after row, as a ``(resolution², 2)`` array. ``predict_proba`` of it,
    reshaped to ``(resolution, resolution)``, is what :func:`draw_decision_boundary` draws."""
    ticks = np.linspace(-1.0, 1.0, resolution)
    xx, yy = np.meshgrid(ticks, ticks)
    return np.c_[xx.ravel(), yy.ravel()]


def draw_decision_boundary(ax: Axes, probs: np.ndarray, X: np.ndarray, y: np.ndarray, *,
                           radius: float | None = 0.5, point_size: float = 7, point_edge: float = 0.3,
                           class_names: tuple[str, str] = ("outside", "inside")) -> QuadContourSet:
    """Draw onto ``ax``: ``probs`` (P(class 1) on the :func:`decision_grid`, shape ``(resolution,
    resolution)``) as filled contours, its 0.5 level in black as the decision boundary, the points
    ``X`` coloured by their label ``y`` (``point_size`` in points², with a white edge ``point_edge``
    wide; the legend names classes 0 and 1 by ``class_names``) and, if ``radius`` is given, the true
    circle dashed. Returns the filled contours (for a colorbar)."""
    probs = np.asarray(probs, dtype=np.float64)
    ticks = np.linspace(-1.0, 1.0, probs.shape[0])
    filled = ax.contourf(ticks, ticks, probs, levels=np.linspace(0.0, 1.0, 11), cmap="RdBu", alpha=0.75)
    if probs.min() < 0.5 < probs.max():
        ax.contour(ticks, ticks, probs, levels=[0.5], colors="k", linewidths=1.5)
        ax.plot([], [], "k-", linewidth=1.5, label="P = 0.5 boundary")
    y = np.asarray(y)
    for label, color, name in ((1.0, "#08306b", f"{class_names[1]} (1)"), (0.0, "#67000d", f"{class_names[0]} (0)")):
        pts = X[y == label]
        ax.scatter(pts[:, 0], pts[:, 1], s=point_size, c=color, edgecolors="white", linewidths=point_edge,
                   label=name)
    if radius is not None:
        t = np.linspace(0.0, 2.0 * np.pi, 256)
        ax.plot(radius * np.cos(t), radius * np.sin(t), "--", color="0.15", linewidth=1, label="true circle")
    ax.set(xlim=(-1, 1), ylim=(-1, 1), aspect="equal")
    return filled


def plot_decision_boundary(predict_proba: Callable[[np.ndarray], np.ndarray], X: np.ndarray, y: np.ndarray,
                           path: str | os.PathLike | None = None, *, resolution: int = 200,
                           radius: float | None = 0.5, title: str | None = None,
                           class_names: tuple[str, str] = ("outside", "inside")) -> Figure:
    """Filled contours of ``predict_proba`` (rows of points -> P(class 1)) over [-1, 1]², its 0.5
    level as the decision boundary, the points ``X`` coloured by their label ``y`` and, if
    ``radius`` is given, the true circle dashed (see :func:`draw_decision_boundary`), with a
    colorbar and a legend naming the classes by ``class_names`` (0, 1). Saved to ``path`` when given."""
    probs = np.asarray(predict_proba(decision_grid(resolution)), dtype=np.float64).reshape(resolution, resolution)

    fig = Figure(figsize=(6, 5.4))
    ax = fig.add_subplot()
    filled = draw_decision_boundary(ax, probs, X, y, radius=radius, class_names=class_names)
    fig.colorbar(filled, ax=ax, label=f"P({class_names[1]})")
    ax.set(xlabel="x", ylabel="y")
    ax.set_title(title or "Decision boundary and points", fontsize=10)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=4, fontsize=8, frameon=False)
    return _save(fig, path)


def plot_curves(history: History, path: str | os.PathLike | None = None) -> Figure:
    """Loss and accuracy per epoch, train vs test, from a :class:`~tinygrad_edu.train.History`."""
    fig = Figure(figsize=(10, 4))
    loss_ax, acc_ax = fig.subplots(1, 2)
    epochs = history.epoch
    for ax, train, test, name in ((loss_ax, history.train_loss, history.test_loss, "loss"),
                                  (acc_ax, history.train_accuracy, history.test_accuracy, "accuracy")):
        scale = 100.0 if name == "accuracy" else 1.0
        ax.plot(epochs, np.asarray(train) * scale, "-o", ms=3, color=TRAIN_COLOR, label=f"train {name}")
        if test:
            ax.plot(epochs, np.asarray(test) * scale, "-o", ms=3, color=TEST_COLOR, label=f"test {name}")
        ax.set(xlabel="epoch", ylabel=name + (" (%)" if scale != 1.0 else ""), title=name.capitalize())
        ax.grid(alpha=0.3)
        ax.legend()
    if history.interrupted:
        fig.suptitle("training interrupted", color=TEST_COLOR)
    return _save(fig, path)


def plot_learning_curve(sizes: Sequence[int], test_accuracy: Sequence[float] | Sequence[Sequence[float]],
                        path: str | os.PathLike | None = None, *,
                        train_accuracy: Sequence[float] | Sequence[Sequence[float]] | None = None) -> Figure:
    """Accuracy against training-set size (log scale). Each accuracy is one number per size, or a
    list per size (several seeds): then the mean is drawn with the min-max range shaded."""
    fig = Figure(figsize=(6, 4.2))
    ax = fig.add_subplot()
    for values, color, name in ((test_accuracy, TEST_COLOR, "test"), (train_accuracy, TRAIN_COLOR, "train")):
        if values is None:
            continue
        runs = [np.atleast_1d(np.asarray(v, dtype=np.float64)) * 100.0 for v in values]
        if len(runs) != len(sizes):
            raise ValueError(f"got {len(runs)} {name} accuracies for {len(sizes)} sizes")
        mean = [r.mean() for r in runs]
        ax.plot(sizes, mean, "-o", color=color, label=f"{name} accuracy")
        if any(len(r) > 1 for r in runs):
            ax.fill_between(sizes, [r.min() for r in runs], [r.max() for r in runs], color=color, alpha=0.2)
        if name == "test":
            for s, m in zip(sizes, mean):
                ax.annotate(f"{m:.1f}%", (s, m), textcoords="offset points", xytext=(0, -14), ha="center",
                            fontsize=8)
    ax.set_xscale("log")
    ax.set(xlabel="training-set size (samples)", ylabel="accuracy (%)",
           title="More data helps: accuracy vs training-set size")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return _save(fig, path)


__all__ = ["save_figure", "decision_grid", "draw_decision_boundary", "plot_decision_boundary", "plot_curves", "plot_learning_curve"]
