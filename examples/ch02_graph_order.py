"""Chapter 2: the graph and the topological order.

Draws the graph of ``b = a + a; c = b * b`` (a value used twice) after ``backward()``, its
interactive explorer (one HTML file, embedded in the chapter), and an animation of the backward
pass through a two-input neuron, one operation per frame.
"""

from __future__ import annotations

from _common import parse_args
from tinygrad_edu import Value
from tinygrad_edu.viz import animate_backward, draw_graph, save_graph


def reused(a: float = 3.0) -> Value:
    a = Value(a, label="a")
    b = a + a
    b.label = "b"
    c = b * b
    c.label = "c"
    return c


def neuron() -> Value:
    x1, x2 = Value(2.0, label="x1"), Value(0.0, label="x2")
    w1, w2 = Value(-3.0, label="w1"), Value(1.0, label="w2")
    b = Value(6.8813735870195432, label="b")
    n = x1 * w1 + x2 * w2 + b
    n.label = "n"
    out = n.tanh()
    out.label = "out"
    return out


def main(argv=None) -> None:
    args = parse_args(__doc__.splitlines()[0], argv)
    c = reused()
    c.backward()
    print(f"wrote {save_graph(draw_graph(c, title='b = a + a;  c = b * b  after c.backward()'), args.out / 'ch02-reuse.svg')}")
    print(f"wrote {c.explore(title='b = a + a;  c = b * b, step by step').save(args.out / 'ch02-explorer.html')}")
    gif = animate_backward(neuron(), args.out / "ch02-backward.gif", frame_ms=900, dpi=60 if args.quick else 80)
    print(f"wrote {gif}")


if __name__ == "__main__":
    main()
