"""Kinks in a recorded graph, seen from its inputs: which operations with a kink (``op.kinks``:
relu and abs at 0, …) have an input at or near the kink, how far each input of the function may
move before one of them crosses it, and the note that names the convention used there.

The whole-function check uses this to keep its numerical steps on one side of a nearby kink, and
at a kink to check a subgradient (see :func:`.numeric.check`) rather than a derivative.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .. import ops
from ..engine import Value, topological_order
from .formula import formula
from .localize import AT_KINK, tangents


@dataclass(frozen=True)
class KinkHit:
    """``node``'s operation has a kink at ``kink``; its input ``parent`` is ``distance`` away
    from it when measured along the function's input number ``input`` (0 when at the kink)."""

    node: Value
    parent: Value
    kink: float
    input: int
    distance: float

    @property
    def at(self) -> bool:
        return abs(self.parent.data - self.kink) <= AT_KINK * max(1.0, abs(self.kink))


def kinks_along(out: Value, xs: Sequence[Value]) -> list[list[KinkHit]]:
    """For each input, the kinks its moving would reach, nearest first (distance along that input,
    to first order: |input of the op - kink| / |d input of the op / d x|)."""
    nodes = topological_order(out)
    kinked = [(n, p, k) for n in nodes if n.op is not None and n.op.arity == 1 for p in n.parents for k in n.op.kinks]
    result: list[list[KinkHit]] = [[] for _ in xs]
    if not kinked:
        return result
    for i, x in enumerate(xs):
        try:
            tangent = tangents(nodes, x)
        except (ArithmeticError, ValueError):
            continue
        for node, parent, k in kinked:
            slope = tangent.get(parent, 0.0)
            if slope == 0.0:
                continue  # moving x does not move this op's input
            gap = abs(parent.data - k)
            at = gap <= AT_KINK * max(1.0, abs(k))
            result[i].append(KinkHit(node, parent, k, i, 0.0 if at else gap / abs(slope)))
        result[i].sort(key=lambda h: h.distance)
    return result


def step_limits(hits: Sequence[KinkHit]) -> tuple[bool, float | None]:
    """(at a kink: check a subgradient, the largest numerical step that stays clear of the other
    kinks): a quarter of the distance to the nearest kink that is not at the point."""
    at = any(h.at for h in hits)
    away = [h.distance for h in hits if not h.at]
    return at, (min(away) / 4 if away else None)


def convention(op: ops.Primitive, k: float) -> float | None:
    """The derivative ``op``'s rule gives at its kink ``k`` (its convention), or None."""
    if op.arity != 1:
        return None
    try:
        return float(op.vjp(ops.FLOAT_MATH, 1.0, op.forward(ops.FLOAT_MATH, k), k)[0])
    except (ArithmeticError, ValueError, TypeError):
        return None


def notes(hits: Sequence[KinkHit], xs: Sequence[Value]) -> list[str]:
    """One line per operation at a kink (or near one), naming the convention its rule follows."""
    lines, seen = [], set()
    for h in hits:
        if (h.node, h.kink) in seen:
            continue
        seen.add((h.node, h.kink))
        op, p = h.node.op, h.parent
        conv = convention(op, h.kink)
        named = f" ({op.name}'({h.kink:g}) = {conv:g} by convention)" if conv is not None else ""
        where = "at" if h.at else f"within {abs(p.data - h.kink):.3g} of"
        lines.append(f"{op.name}'s input {formula(p, xs, 80)} = {p.data:.6g} is {where} its kink at {h.kink:g}{named}")
    return lines


__all__ = ["KinkHit", "kinks_along", "step_limits", "convention", "notes"]
