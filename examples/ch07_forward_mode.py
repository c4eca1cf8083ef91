"""Chapter 7: forward and reverse mode on the same graph, and what each costs.

Draws the graph of tanh(x·w + b) twice: tangents flowing forward from x (forward mode, jvp), and
gradients flowing back from the output (reverse mode, backward). Then counts the derivative-rule
applications that a whole Jacobian takes in each mode, for a function with n inputs and m
outputs, prints the table and plots it.
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from _common import parse_args, save
from tinygrad_edu import Value, sum as vsum
from tinygrad_edu.functional import count_rule_calls, jacobian, jvp


def layer_function(n: int, m: int, hidden: int = 4):
    """A small fixed network from n inputs to m outputs: y_k = sum_h c_kh tanh(sum_j a_hj x_j)."""
    def f(*xs: Value):
        hs = [vsum(x * (0.1 * (h + 1) - 0.05 * j) for j, x in enumerate(xs)).tanh() for h in range(hidden)]
        return [vsum(hv * (0.2 * (k + 1) - 0.1 * h) for h, hv in enumerate(hs)) for k in range(m)]
    return f


def rule_calls(n: int, m: int, mode: str) -> int:
    """Derivative-rule applications for the whole Jacobian of layer_function(n, m) in one mode."""
    f = layer_function(n, m)
    return count_rule_calls(lambda: jacobian(f, [0.1 * (j + 1) for j in range(n)], mode=mode))[1].derivative


def draw_graph_panel(ax, title: str, labels: dict[str, str], forward: bool) -> None:
    """tanh(x·w + b) as boxes and arrows: arrows point along the flow (tangents forward, gradients back)."""
    pos = {"x": (0, 2), "w": (0, 1), "b": (0, 0), "x·w": (1.3, 1.5), "x·w + b": (2.6, 0.75), "tanh": (3.9, 0.75)}
    edges = [("x", "x·w"), ("w", "x·w"), ("x·w", "x·w + b"), ("b", "x·w + b"), ("x·w + b", "tanh")]
    color = "tab:blue" if forward else "tab:red"
    for a, b in edges:
        (xa, ya), (xb, yb) = pos[a], pos[b]
        start, end = ((xa + 0.45, ya), (xb - 0.45, yb)) if forward else ((xb - 0.45, yb), (xa + 0.45, ya))
        ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="-|>", color=color, lw=1.6), zorder=3)
    for name, (px, py) in pos.items():
        ax.text(px, py, f"{name}\n{labels[name]}", ha="center", va="center", fontsize=8.5,
                bbox=dict(boxstyle="round,pad=0.3", fc="white", ec=color))
    ax.set(xlim=(-0.6, 4.5), ylim=(-0.5, 2.5), title=title)
    ax.axis("off")


def main(argv=None) -> None:
    args = parse_args(__doc__.splitlines()[0], argv)

    # The same graph, both ways: forward mode seeds x's tangent with 1, reverse mode the output's gradient.
    x, w, b = Value(0.5, "x"), Value(-1.5, "w"), Value(0.2, "b")

    def graph(xv: Value):
        xw = xv * w
        z = xw + b
        return xw, z, z.tanh()

    (xw, z, y), ts = jvp(graph, x, 1.0)  # one forward sweep: the tangent of every node along x
    tangents = dict(zip(("x·w", "x·w + b", "tanh"), (t.data for t in ts)))
    y.backward()  # one reverse sweep: the gradient of tanh for every node
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.5, 5.6))
    draw_graph_panel(top, "forward mode: tangents d/dx flow with the values (seed: dx = 1)", {
        "x": "value 0.5, tangent 1", "w": "value -1.5, tangent 0", "b": "value 0.2, tangent 0",
        **{k: f"value {v.data:.3g}, tangent {tangents[k]:.3g}" for k, v in (("x·w", xw), ("x·w + b", z), ("tanh", y))},
    }, forward=True)
    draw_graph_panel(bottom, "reverse mode: gradients d tanh/d· flow back (seed: d tanh = 1)", {
        **{k: f"value {v.data:.3g}, grad {v.grad:.3g}" for k, v in (("x", x), ("w", w), ("b", b), ("x·w", xw),
                                                                       ("x·w + b", z), ("tanh", y))},
    }, forward=False)
    fig.tight_layout()
    save(fig, args.out, "ch07-both-modes.png", dpi=60 if args.quick else 110)

    sizes = [1, 2, 4, 8] if args.quick else [1, 2, 4, 8, 16, 32, 64]
    print("derivative-rule applications for the whole Jacobian (n inputs, m outputs)")
    print(f"{'n':>4} {'m':>4} {'forward':>9} {'reverse':>9}")
    table = {}
    for n, m in [(s, 1) for s in sizes] + [(1, s) for s in sizes[1:]]:
        table[n, m] = (rule_calls(n, m, "fwd"), rule_calls(n, m, "rev"))
        print(f"{n:>4} {m:>4} {table[n, m][0]:>9} {table[n, m][1]:>9}")

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8), sharey=True)
    for ax, key, label in ((left, lambda s: (s, 1), "n inputs (m = 1 output)"),
                           (right, lambda s: (1, s), "m outputs (n = 1 input)")):
        ax.loglog(sizes, [table[key(s)][0] for s in sizes], "-o", color="tab:blue", label="forward mode (jvp per input)")
        ax.loglog(sizes, [table[key(s)][1] for s in sizes], "-s", color="tab:red", label="reverse mode (grad per output)")
        ax.set(xlabel=label, title=f"Jacobian of a function with {label.split(' (')[0]}")
        ax.grid(alpha=0.3, which="both")
    left.set_ylabel("derivative-rule applications")
    left.legend()
    fig.tight_layout()
    save(fig, args.out, "ch07-rule-applications.png", dpi=60 if args.quick else 110)


if __name__ == "__main__":
    main()
