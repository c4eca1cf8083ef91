"""Kinks in a recorded graph, seen from its inputs: which operations with a kink (relu and abs at
0, a tie of maximum, …: ``op.kinks`` / ``op.kink_distance`` of the primitive's record) have their
inputs at or near one, how far each input of the function may move before one of them is
reached, and the note that names the convention used there.

The whole-function check uses this to keep its numerical steps clear of a nearby kink, and at a
kink to check a subgradient instead of a derivative (see :func:`.numeric.check`).

Where several kinks meet, the rules' conventions need not compose into a subgradient of the
whole (``relu(x) - relu(-x)`` at 0 gives 0, the slope is 1). :func:`one_sided_chain` gives the
one-sided derivatives of the recorded graph itself, composing each kinked operation's
*directional* derivative (from its forward rule, in the direction its inputs move) with the other
rules: what the whole function's one-sided derivatives must be if the graph is what it computes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from .. import ops
from ..engine import Value, topological_order
from . import numeric
from .formula import formula
from .localize import at_kink, kink_gap, tangents


def has_kinks(op: ops.Primitive) -> bool:
    return bool(op.kinks) or getattr(op, "kinks_at", None) is not None


@dataclass(frozen=True)
class KinkHit:
    """``node``'s operation has a kink ``gap`` away from its inputs (in their units);
    ``distance`` is how far the function's input number ``input`` must move to reach it (to
    first order; 0 when ``at`` it)."""

    node: Value
    input: int
    gap: float
    distance: float
    at: bool


def kinks_along(out: Value, xs: Sequence[Value]) -> list[list[KinkHit]]:
    """For each input, the kinks its moving would reach, nearest first."""
    nodes = topological_order(out)
    kinked = [n for n in nodes if n.op is not None and has_kinks(n.op)]
    result: list[list[KinkHit]] = [[] for _ in xs]
    if not kinked:
        return result
    for i, x in enumerate(xs):
        try:
            tangent = tangents(nodes, x)
        except (ArithmeticError, ValueError):
            continue
        for node in kinked:
            values = [p.data for p in node.parents]
            slope = math.fsum(abs(tangent.get(p, 0.0)) for p in node.parents)
            if slope == 0.0:
                continue  # moving x does not move this op's inputs
            g = kink_gap(node.op, values)
            if not math.isfinite(g):
                continue
            at = at_kink(node.op, values)
            result[i].append(KinkHit(node, i, g, 0.0 if at else g / slope, at))
        result[i].sort(key=lambda h: h.distance)
    return result


def step_limits(hits: Sequence[KinkHit]) -> tuple[bool, float | None]:
    """(at a kink: check a subgradient, the largest numerical step that stays clear of the other
    kinks): a quarter of the distance to the nearest kink that is not at the point."""
    at = any(h.at for h in hits)
    away = [h.distance for h in hits if not h.at]
    return at, (min(away) / 4 if away else None)


def _directional(op: ops.Primitive, values: Sequence[float], direction: Sequence[float]) -> tuple[float, float]:
    """The one-sided directional derivative of ``op`` at ``values`` along ``direction`` (the limit
    of (op(v + t d) - op(v)) / t as t -> 0+), numerically from its forward rule: (value, error)."""
    size = max(abs(d) for d in direction)
    unit = [d / size for d in direction]

    def along(t: float) -> float:
        return op.forward(ops.FLOAT_MATH, *(v + t * u for v, u in zip(values, unit)))

    est = numeric.derivative(along, 0.0, side=1)
    return size * est.value, size * est.error


def one_sided_chain(nodes: Sequence[Value], x: Value, direction: float) -> tuple[float, float]:
    """The one-sided derivative of the last of ``nodes`` (a topological order) as ``x`` moves by
    ``direction`` (+1: the right derivative; -1: minus the left one), composed node by node: a
    kinked operation at its kink contributes its directional derivative from its forward rule,
    every other one its rule's partials. Returns (value, estimated error)."""
    tangent: dict[Value, float] = {}
    error: dict[Value, float] = {}
    for node in nodes:
        if node.op is None:
            tangent[node], error[node] = (direction if node is x else 0.0), 0.0
            continue
        values = [p.data for p in node.parents]
        moves = [tangent[p] for p in node.parents]
        incoming = math.fsum(error[p] for p in node.parents)
        if not any(moves):
            tangent[node], error[node] = 0.0, incoming
        elif has_kinks(node.op) and at_kink(node.op, values):
            d, e = _directional(node.op, values, moves)
            slope = abs(d) / max(abs(m) for m in moves)  # how much the inputs' errors carry over
            tangent[node], error[node] = d, e + slope * incoming
        else:
            local = [float(v) for v in node.op.vjp(ops.FLOAT_MATH, 1.0, node.data, *values)]
            tangent[node] = math.fsum(v * m for v, m in zip(local, moves) if m)
            error[node] = math.fsum(abs(v) * error[p] for v, p in zip(local, node.parents))
    out = nodes[-1]
    return tangent[out], error[out]


def convention(op: ops.Primitive, xs: Sequence[float]) -> str:
    """What ``op``'s rule gives at the kink at ``xs``: ``relu'(0) = 0``, or the record's words."""
    if op.arity == 1:
        x = min(op.kinks, key=lambda k: abs(xs[0] - k)) if op.kinks else xs[0]  # 0, not -0
        try:
            d = float(op.vjp(ops.FLOAT_MATH, 1.0, op.forward(ops.FLOAT_MATH, x), x)[0])
            return f"{op.name}'({x:g}) = {d:g}"
        except (ArithmeticError, ValueError, TypeError):
            pass
    return getattr(op, "convention", "") or ""


def notes(hits: Sequence[KinkHit], xs: Sequence[Value]) -> list[str]:
    """One line per operation at a kink (or near one), naming the convention its rule follows."""
    lines, seen = [], set()
    for h in hits:
        if h.node in seen:
            continue
        seen.add(h.node)
        op, parents = h.node.op, h.node.parents
        conv = convention(op, [p.data for p in parents])
        named = f" ({conv} by convention)" if conv else ""
        where = "at" if h.at else f"within {h.gap:.3g} of"
        if op.arity == 1:
            p = parents[0]
            kink = f"its kink at {min(op.kinks, key=lambda k: abs(p.data - k)):g}" if op.kinks else "a kink"
            lines.append(f"{op.name}'s input {formula(p, xs, 80)} = {p.data:.6g} is {where} {kink}{named}")
        else:
            lines.append(f"{formula(h.node, xs, 80)} is {where} a kink{named}")
    return lines


__all__ = ["KinkHit", "kinks_along", "step_limits", "convention", "notes", "has_kinks", "one_sided_chain"]
