"""``tinygrad-edu graph``: draw the computation graph of an expression after backward, with its
gradient flow, e.g. ``tinygrad-edu graph "tanh(x*w + b)" --set x=0.5 --set w=-1.5 --set b=0.2``."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..expr import ExpressionError, UndefinedVariableError, compile_expression
from ._common import CLIError, assignment, positive_int, set_values, shown

_SUFFIXES = (".html", ".svg", ".png", ".pdf", ".dot", ".gv")
#: The options that take a value, so that an expression starting with a minus is told from them.
EXPRESSION_VALUE_OPTIONS = ("--set", "--out", "--animate", "--rankdir", "--max-nodes")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "graph",
        help="draw an expression's computation graph and its gradient flow",
        description=(
            "Evaluate an arithmetic expression (numbers, variables, + - * / **, and functions such as "
            "tanh, exp, log, relu, sigmoid), run backward, and draw the graph with Graphviz: edge colour "
            "and width show the gradient flowing along each edge. The format follows the --out suffix: .html "
            "writes an interactive explorer that steps through the forward and backward pass. "
            'An expression may start with a minus: tinygrad-edu graph "-x*w" --set x=1 --set w=2.'
        ),
    )
    parser.add_argument("expression", help='the expression, e.g. "tanh(x*w + b)"')
    parser.add_argument("--set", dest="assignments", metavar="NAME=VALUE", action="append", default=[],
                        type=assignment, help="give a variable its value (repeat for each variable)")
    parser.add_argument("--out", type=Path, default=Path("graph.svg"),
                        help="output file: .html (an interactive explorer, one offline file), .svg, .png, .pdf, "
                             "or .dot for the DOT source (default: graph.svg)")
    parser.add_argument("--animate", type=Path, metavar="GIF", help="also save backprop, step by step, as this GIF")
    parser.add_argument("--rankdir", choices=("LR", "TB", "RL", "BT"), default="LR",
                        help="layout direction: LR (left to right, default) or TB (top to bottom)")
    parser.add_argument("--max-nodes", type=positive_int, default=500,
                        help="refuse graphs larger than this many values rather than wait for dot (default: 500)")
    parser.add_argument("--no-backward", action="store_true", help="draw the forward pass only (data, no gradients)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..viz.animate import animate_backward
    from ..viz.explorer import explore
    from ..viz.graph import GraphTooLargeError, GraphvizNotFoundError, draw_graph, save_graph
    from ..viz.layout import LayoutError

    if args.out.suffix.lower() not in _SUFFIXES:
        raise CLIError(f"cannot tell the format from --out {args.out}: use a name ending in .html, .svg, .png, .pdf "
                       "or .dot")
    if args.animate is not None and args.animate.suffix.lower() != ".gif":
        raise CLIError(f"--animate writes a GIF: use a name ending in .gif, got {args.animate}")
    if args.animate is not None and args.no_backward:
        raise CLIError("--animate shows the backward pass, which --no-backward leaves out: drop one of them")
    args.expression = args.expression.strip()
    try:
        expression = compile_expression(args.expression)
    except ExpressionError as err:
        raise CLIError(f"cannot use the expression: {err}") from None
    values = set_values(args.assignments, expression.variables)
    try:
        out = expression.evaluate(values)
        if not args.no_backward:
            out.backward()
    except UndefinedVariableError as err:
        raise CLIError(f"no value for {', '.join(err.names)}: give each with --set NAME=VALUE") from None
    except (ArithmeticError, ValueError) as err:
        raise CLIError(f"cannot evaluate {shown(args.expression)}: {err}") from None

    print(f"{args.expression} = {out.data:.6g}")
    if not args.no_backward and expression.variables:
        leaves = _leaves_by_label(out)
        print("  " + "  ".join(f"d/d{name} = {leaves[name].grad:.6g}" for name in expression.variables if name in leaves))
    try:
        if args.out.suffix.lower() == ".html":
            explore(out, rankdir=args.rankdir, max_nodes=args.max_nodes, backward=not args.no_backward,
                    title=args.expression).save(args.out)
        else:
            save_graph(draw_graph(out, rankdir=args.rankdir, max_nodes=args.max_nodes), args.out)
        print(f"wrote {args.out}")
        if args.animate is not None:
            animate_backward(out, args.animate, rankdir=args.rankdir, max_nodes=args.max_nodes)
            print(f"wrote {args.animate}")
    except GraphTooLargeError as err:
        raise CLIError(f"too large to draw quickly: {err.reason}; pass a larger --max-nodes to wait for dot anyway") from None
    except (GraphvizNotFoundError, LayoutError) as err:
        raise CLIError(str(err)) from None
    return 0


def _leaves_by_label(root) -> dict:
    from ..viz.graph import collect_values

    return {v.label: v for v in collect_values(root) if v.is_leaf and v.label}
