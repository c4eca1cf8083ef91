"""Tracing: call a per-sample function once on placeholder Values, keep the graph it builds, and
schedule it: which nodes are parameters, inputs, constants (folded) and operations, and the groups
of operations that apply one primitive at one depth (read first by one primitive), each group's members in the order its
consumers read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from ..engine import Value, enable_grad, topological_order

if TYPE_CHECKING:
    from .tape import Tape

__all__ = ["trace", "Schedule", "schedule"]


def trace(fn: Callable[..., Value | Sequence[Value]], example: Sequence[float], params: Sequence[Value],
          *, passes: Sequence[str] | None = None) -> Tape:
    """Trace ``fn`` once, as a function of one sample, into a :class:`Tape`.

    ``fn`` is called with one placeholder ``Value`` per per-sample input (their data are the
    numbers in ``example``, e.g. the first row of your data) and returns a ``Value`` or a
    sequence of Values (the per-sample outputs). ``params`` are the leaves the tape reads live and
    differentiates; every other leaf ``fn`` uses is a constant, frozen at trace time. ``passes``
    names the optimisation passes to make (:mod:`tinygrad_edu.batched.passes`; default: all of
    them; ``()``: none, the graph replayed as traced).
    """
    from .tape import Tape

    example = [float(v) for v in np.asarray(example, dtype=np.float64).reshape(-1)]
    params = list(params)
    for i, p in enumerate(params):
        if not isinstance(p, Value) or not p.is_leaf:
            raise TypeError(f"trace: params[{i}] must be a leaf Value (a parameter), got {p!r:.60}")
    placeholders = [Value(v, label=f"input{i}") for i, v in enumerate(example)]
    with enable_grad():
        result = fn(*placeholders)
    if not isinstance(result, (Value, list, tuple)):
        raise TypeError(f"trace: fn must return a Value or a sequence of Values, got {type(result).__name__}")
    outputs = [result] if isinstance(result, Value) else list(result)
    for i, o in enumerate(outputs):
        if not isinstance(o, Value):
            raise TypeError(f"trace: fn must return a Value or a sequence of Values; output {i} is {type(o).__name__}")
    if not outputs:
        raise ValueError("trace: fn returned no outputs")
    return Tape(outputs, placeholders, params, passes)


@dataclass
class Schedule:
    """A traced graph, classified and grouped.

    ``params`` are the parameters the outputs use, in order of first use (so that a layer's weights
    are one contiguous block); ``inputs`` the placeholders; ``consts`` the constant nodes (leaves
    that are neither, and anything computed from constants alone, folded at trace time);
    ``groups`` the operations, as lists of nodes applying one primitive with one arity at one
    depth, read first by one primitive, in order of depth; ``needs_grad`` says, per node id, whether a gradient flows into it."""

    outputs: list[Value]
    params: list[Value]
    inputs: list[Value]
    consts: list[Value]
    groups: list[list[Value]]
    needs_grad: dict[int, bool]
    num_nodes: int


def schedule(outputs: Sequence[Value], placeholders: Sequence[Value], params: Sequence[Value]) -> Schedule:
    """Classify every node of the graph that ends in ``outputs`` and group the operations."""
    order = topological_order(*outputs)
    param_ids = {id(p) for p in params}
    input_ids = {id(x) for x in placeholders}

    # Classify every node: a parameter, an input, a constant (a leaf, or anything computed from
    # constants alone: folded now) or an operation; depth counts operations from the leaves.
    kind: dict[int, str] = {}
    consts: list[Value] = []
    depth: dict[int, int] = {}
    needs_grad: dict[int, bool] = {}
    computed: list[Value] = []
    for node in order:
        key = id(node)
        if key in param_ids:
            kind[key], depth[key], needs_grad[key] = "param", 0, True
        elif key in input_ids:
            kind[key], depth[key], needs_grad[key] = "input", 0, False
        elif node.is_leaf or all(kind[id(p)] == "const" for p in node.parents):
            kind[key], depth[key], needs_grad[key] = "const", 0, False
            consts.append(node)
        else:
            kind[key] = "op"
            depth[key] = 1 + max(depth[id(p)] for p in node.parents)
            needs_grad[key] = any(needs_grad[id(p)] for p in node.parents)
            computed.append(node)

    # Group operations by (depth, primitive, arity) and the primitive of their first consumer, in
    # order of depth, then first appearance: a layer's products (read by its sums) are a group of
    # their own even where other products stand at the same depth (then the matmul pass fuses it).
    consumer: dict[int, int] = {}
    for node in order:
        for p in node.parents:
            consumer.setdefault(id(p), id(node.op))
    grouped: dict[tuple, list[Value]] = {}
    for node in computed:
        key = (depth[id(node)], id(node.op), len(node.parents), consumer.get(id(node)))
        grouped.setdefault(key, []).append(node)
    groups = [grouped[key] for key in sorted(grouped, key=lambda k: k[0])]  # sort is stable

    # Order each group's members the way their consumers read them, slot by slot, walking back
    # from the outputs: a layer's products w[j][k] * x[k] come out as (k, j), so the sum that adds
    # them reads one contiguous block per k and each x[k] is one row broadcast over j.
    rank: dict[int, tuple[int, int, int]] = {}
    for i, o in enumerate(outputs):
        rank.setdefault(id(o), (-1, 0, i))
    for r, members in enumerate(reversed(groups)):
        members.sort(key=lambda node: rank[id(node)])
        for k in range(len(members[0].parents)):
            for i, node in enumerate(members):
                rank.setdefault(id(node.parents[k]), (r, k, i))

    # The parameters in order of first use, slot by slot: a layer's weights are one block.
    used: dict[int, Value] = {}
    for members in groups:
        for k in range(len(members[0].parents)):
            for m in members:
                p = m.parents[k]
                if kind[id(p)] == "param":
                    used.setdefault(id(p), p)
    for o in outputs:
        if kind[id(o)] == "param":
            used.setdefault(id(o), o)
    return Schedule(list(outputs), list(used.values()), list(placeholders), consts, groups, needs_grad, len(order))
