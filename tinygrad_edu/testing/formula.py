"""The formula printer: a recorded graph as one line of readable math, ``log(x0*x1 + exp(x2))``,
with only the parentheses that are needed. Gradient-check reports, the localisation's paths and
the strategies' expressions print with it.
"""

from __future__ import annotations

from typing import Sequence

from .. import ops
from ..engine import Value, topological_order

_ATOM = 9


def format_op(op: ops.Primitive, args: Sequence[tuple[str, int]]) -> tuple[str, int]:
    """Render ``op`` applied to already-rendered ``(text, precedence)`` arguments as readable math
    with only the parentheses that are needed: ``x0*x1 + exp(x2)``. Returns ``(text, precedence)``.
    The notation and precedence come from the op's record (:class:`~tinygrad_edu.ops.Primitive`)."""
    if op.notation == "infix" and len(args) == 2:
        prec = op.precedence
        (a, pa), (b, pb) = args
        right_assoc = op.symbol == "**"
        if pa < prec or (right_assoc and pa == prec):
            a = f"({a})"
        if pb < prec or (not right_assoc and pb == prec and op.symbol not in ("+", "*")):
            b = f"({b})"
        sep = f" {op.symbol} " if prec == 1 else op.symbol
        return f"{a}{sep}{b}", prec
    if op.notation == "prefix":
        (a, pa), = args
        bare = pa >= op.precedence and not a.startswith(op.symbol)  # -(-x), not --x
        return (f"{op.symbol}{a}" if bare else f"{op.symbol}({a})"), op.precedence
    if op.notation == "postfix":
        (a, pa), = args
        return (f"{a}" if pa > op.precedence else f"({a})") + op.symbol.replace(" ", ""), op.precedence
    return op.format(*(a for a, _ in args)), _ATOM


def _leaf_text(v: float) -> tuple[str, int]:
    text = repr(v)
    return text, (3 if text.startswith("-") else _ATOM)


def formula(out: Value, inputs: Sequence[Value] = (), max_chars: int = 300, highlight: Value | None = None) -> str:
    """The graph that ends in ``out`` as one line of math, e.g. ``log(x0*x1 + exp(x2))``.

    Each of ``inputs`` prints as its label (or ``x0``, ``x1``, … when unlabelled), other leaves as
    their number. Shared subexpressions are written out each time; a part longer than
    ``max_chars`` is shown as ``…``, except around the ``highlight`` node, which is drawn in
    ``⟦ ⟧`` (a culprit of a failed check)."""
    names = {x: (x.label or f"x{i}") for i, x in enumerate(inputs)}
    text: dict[Value, tuple[str, int]] = {}
    for node in topological_order(out):
        if node.op is None:
            text[node] = (names[node], _ATOM) if node in names else (
                (node.label, _ATOM) if node.label else _leaf_text(node.data)
            )
        else:
            s, p = format_op(node.op, [text[p] for p in node.parents])
            text[node] = ("…", _ATOM) if len(s) > max_chars and "⟦" not in s else (s, p)
        if node is highlight:
            text[node] = (f"⟦{text[node][0]}⟧", _ATOM)
    return text[out][0]


__all__ = ["format_op", "formula"]
