"""Chapter 1: a derivative by hand, then with ``Value``.

Makes the picture of y = tanh(x·w + b) as a function of w with its tangent at w = -1.5 (slope =
``w.grad``), the drawn computation graph of y after ``backward()``, and the interactive explorer of
that graph (one HTML file, embedded in the chapter).
"""

from __future__ import annotations

import numpy as np
import matplotlib.pyplot as plt

from _common import parse_args, save
from tinygrad_edu import Value
from tinygrad_edu.viz import draw_graph, save_graph

X, W, B = 0.5, -1.5, 0.2


def neuron(x: float, w: float, b: float) -> tuple[Value, dict[str, Value]]:
    """y = tanh(x·w + b) with named leaves, after ``backward()``."""
    leaves = {"x": Value(x, label="x"), "w": Value(w, label="w"), "b": Value(b, label="b")}
    y = (leaves["x"] * leaves["w"] + leaves["b"]).tanh()
    y.label = "y"
    y.backward()
    return y, leaves


def plot_tangent(x: float, w: float, b: float, y: float, slope: float, points: int = 600):
    """y = tanh(x·w + b) against w, with its tangent at (w, y) of slope dy/dw = ``slope``."""
    ws = np.linspace(-5, 3, points)
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    ax.plot(ws, np.tanh(x * ws + b), color="tab:blue", label=f"y = tanh({x:g}·w + {b:g})")
    near = np.linspace(w - 1.6, w + 1.6, 2)
    ax.plot(near, y + slope * (near - w), "--", color="tab:red",
            label=f"tangent at w = {w:g}: slope dy/dw = w.grad = {slope:.4f}")
    ax.plot([w], [y], "o", color="tab:red")
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.set(xlabel="w", ylabel="y", title="The derivative is the slope of the tangent")
    ax.legend(loc="upper left", fontsize=8)
    return fig


def main(argv=None) -> None:
    args = parse_args(__doc__.splitlines()[0], argv)
    y, leaves = neuron(X, W, B)

    # The tangent: near w = W, y changes like y.data + w.grad * (w - W).
    fig = plot_tangent(X, W, B, y.data, leaves["w"].grad, points=200 if args.quick else 600)
    save(fig, args.out, "ch01-tangent.png", dpi=70 if args.quick else 110)

    graph = draw_graph(y, title="y = tanh(x·w + b) after y.backward()")
    print(f"wrote {save_graph(graph, args.out / 'ch01-graph.svg')}")
    print(f"wrote {y.explore(title='y = tanh(x·w + b), step by step').save(args.out / 'ch01-explorer.html')}")


if __name__ == "__main__":
    main()
