"""Chapter 5: vanishing gradients.

Compares a deep sigmoid network with a ReLU network of the same shape (10 hidden layers of 8):
the gradient norm of each layer's parameters after one backward pass, over several random
initialisations; the derivatives of the two activations; and both graphs drawn one box per
layer, coloured by gradient flow.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from _common import parse_args, save
from tinygrad_edu import Value
from tinygrad_edu.data import circle
from tinygrad_edu.nn import MLP, binary_cross_entropy_with_logits, mean
from tinygrad_edu.viz import draw_graph, save_graph

DEPTH, WIDTH = 10, 8
COLORS = {"sigmoid": "tab:purple", "relu": "tab:green"}


def layer_grad_norms(activation: str, X: np.ndarray, y: np.ndarray, seed: int) -> list[float]:
    """Backpropagate the mean loss over (X, y) through a fresh network; the gradient norm
    sqrt(sum of grad²) of each layer's weights and biases, input layer first."""
    model = MLP(2, [WIDTH] * DEPTH + [1], activation=activation, output_activation="sigmoid", seed=seed)
    loss = mean([binary_cross_entropy_with_logits(model.logits(x), t) for x, t in zip(X.tolist(), y.tolist())])
    model.zero_grad()
    loss.backward()
    return [float(np.sqrt(sum(p.grad**2 for p in layer.parameters()))) for layer in model.layers]


def plot_activations(points: int = 481):
    """sigmoid and relu with their derivatives, each computed by ``backward()`` at every z."""
    zs = np.linspace(-6, 6, points)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
    for ax, activation in zip(axes, ("sigmoid", "relu")):
        outs, slopes = [], []
        for z in zs:
            v = Value(float(z))
            out = getattr(v, activation)()
            out.backward()
            outs.append(out.data)
            slopes.append(v.grad)
        ax.plot(zs, outs, color=COLORS[activation], label=f"{activation}(z)")
        ax.plot(zs, slopes, "--", color="k", label=f"its derivative (max {max(slopes):g})")
        ax.axhline(0.25, color="grey", linewidth=0.6, linestyle=":")
        ax.set(xlabel="z", title=activation, ylim=(-0.1, 1.6))
        ax.legend(loc="upper left", fontsize=8)
    return fig


def plot_grad_norms(norms, seeds):
    """Gradient norm per layer, one thin line per initialisation, the median bold; ``norms(activation,
    seed)`` gives a fresh network's layer norms after one backward pass."""
    fig, ax = plt.subplots(figsize=(7.5, 4.4))
    for activation in ("sigmoid", "relu"):
        runs = np.array([norms(activation, seed) for seed in seeds])
        layers = np.arange(1, runs.shape[1] + 1)
        for run in runs:
            ax.semilogy(layers, run, color=COLORS[activation], alpha=0.25, linewidth=0.8)
        ax.semilogy(layers, np.median(runs, axis=0), "-o", color=COLORS[activation], linewidth=2,
                    label=f"{activation} network (median of {len(runs)} initialisations)")
        print(activation, " ".join(f"{n:.1e}" for n in np.median(runs, axis=0)))
    ax.set(xlabel=f"layer (1 = next to the input, {len(layers)} = output)",
           ylabel="gradient norm of the layer's parameters",
           title=f"Gradients on the way back through {DEPTH} hidden layers of {WIDTH}")
    ax.set_xticks(layers)
    ax.grid(alpha=0.3, which="major")
    ax.legend(fontsize=8)
    return fig


def layer_graph(activation: str, X: np.ndarray, y: np.ndarray):
    """The deep network's loss on the first four points after backward, drawn one box per layer,
    edges coloured by the gradient flowing back."""
    model = MLP(2, [WIDTH] * DEPTH + [1], activation=activation, output_activation="sigmoid", seed=0)
    loss = mean([binary_cross_entropy_with_logits(model.logits(x), t) for x, t in zip(X[:4].tolist(), y[:4].tolist())])
    loss.backward()
    return draw_graph(loss, collapse="layer", rankdir="TB", legend=False, title=f"{activation} network")


def main(argv=None) -> None:
    args = parse_args(__doc__.splitlines()[0], argv)
    seeds = range(2) if args.quick else range(8)
    X, y = circle(16 if args.quick else 64, seed=1)

    save(plot_activations(121 if args.quick else 481), args.out, "ch05-activations.png", dpi=70 if args.quick else 100)
    fig = plot_grad_norms(lambda activation, seed: layer_grad_norms(activation, X, y, seed), seeds)
    save(fig, args.out, "ch05-grad-norms.png", dpi=70 if args.quick else 100)
    for activation in ("sigmoid", "relu"):
        print(f"wrote {save_graph(layer_graph(activation, X, y), args.out / f'ch05-graph-{activation}.svg')}")


if __name__ == "__main__":
    main()
