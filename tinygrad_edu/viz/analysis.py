"""The analysis under every picture of a graph: what the nodes, edges, gradient flows, modules and
marks are, as plain data, with no drawing and no Graphviz. The renderers (:mod:`.graph` writes
DOT for Graphviz, :mod:`.animate` GIF frames, :mod:`.explorer` the interactive HTML page) all read
their numbers from here, so every picture shows the same ones.

Gradient flow along an edge ``parent -> op`` is ``|the parent's share of the op's VJP applied to the
output's grad|``, read from the primitive table (:mod:`tinygrad_edu.ops`); along ``op -> output``
it is ``|output.grad|``. Modules come from the parameter names of :mod:`tinygrad_edu.nn`
(``layers.0.neurons.3.w.1``). :func:`replay_backward` lists the steps of a backward pass in the
engine's own order without touching any ``.grad``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable

from ..engine import Value, topological_order
from ..ops import FLOAT_MATH

#: A leaf whose label looks like this (a dotted module path) is a parameter, e.g. ``layers.0.neurons.3.w.1``.
PARAMETER_NAME = re.compile(r"^(?:[A-Za-z_]\w*|\d+)(?:\.(?:[A-Za-z_]\w*|\d+))+$")

#: Gradient sizes below VANISHING or above EXPLODING (or NaN) mark a node, by default.
VANISHING, EXPLODING = 1e-6, 1e3
#: Renderers refuse a graph whose :func:`layout_size` exceeds this many times their ``max_nodes``.
LAYOUT_FACTOR = 3


def collect_values(root: Value, limit: int | None = None) -> list[Value] | None:
    """Every Value that ``root`` depends on, parents before children, root last (as
    ``engine.topological_order``), but ``None`` as soon as more than ``limit`` values are found,
    so refusing a huge graph is quick."""
    if not isinstance(root, Value):
        raise TypeError(f"expected a Value, got {type(root).__name__}")
    order: list[Value] = []
    seen: set[int] = set()
    stack: list = [root]
    while stack:
        node = stack.pop()
        if node is None:  # marker: the node below has all its parents in `order` now
            order.append(stack.pop())
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        if limit is not None and len(seen) > limit:
            return None
        stack.append(node)
        stack.append(None)
        stack.extend(node.parents)
    return order


def layout_size(values: list[Value]) -> int:
    """About how many nodes dot will lay out: the drawn nodes (a record per value, one per
    operation) plus a virtual node for every rank a long edge crosses. Ranks are longest paths
    from the leaves, with each leaf pulled next to its first use as dot does; ``values`` lists
    parents before children. A value used far apart (``x`` in a 100-term sum) costs much more
    than its one node, and dot's time grows faster than this count."""
    rank: dict[int, int] = {}
    first_use: dict[int, int] = {}
    for v in values:
        if not v.is_leaf:
            op_rank = 1 + max(rank.get(id(p), 0) for p in v.parents)
            rank[id(v)] = op_rank + 1
            for p in v.parents:
                if p.is_leaf:
                    first_use[id(p)] = min(first_use.get(id(p), op_rank), op_rank)
    for leaf_id, use in first_use.items():
        rank[leaf_id] = use - 1
    size = 0
    for v in values:
        size += 1
        if v.is_leaf:
            continue
        size += 1
        op_rank = rank[id(v)] - 1
        size += sum(op_rank - rank[id(p)] - 1 for p in v.parents)
    return size


def node_kind(v: Value) -> str:
    """``"operation"`` for a computed node; for a leaf, ``"parameter"`` if its label is a dotted
    module path (an nn parameter name), ``"input"`` if it has another label, else ``"constant"``."""
    if not v.is_leaf:
        return "operation"
    if PARAMETER_NAME.match(v.label):
        return "parameter"
    return "input" if v.label else "constant"


def module_of(name: str) -> str:
    """The module path of a parameter name: ``layers.0.neurons.3.w.1`` -> ``layers.0.neurons.3``,
    ``layers.0.neurons.3.b`` -> ``layers.0.neurons.3`` (trailing indices and one name dropped)."""
    parts = name.split(".")
    while parts and parts[-1].isdigit():
        parts.pop()
    return ".".join(parts[:-1])


def module_levels(module: str) -> list[str]:
    """The clusters a module sits in, outermost first: every prefix ending at an index
    (``layers.0``), then the module itself (``layers.0.neurons.3``)."""
    parts = module.split(".")
    levels = [".".join(parts[: i + 1]) for i, part in enumerate(parts) if part.isdigit()]
    if not levels or levels[-1] != module:
        levels.append(module)
    return levels


def _common_module(modules: Iterable[str]) -> str | None:
    common: list[str] | None = None
    for module in modules:
        levels = module_levels(module)
        common = levels if common is None else [a for a, b in zip(common, levels) if a == b]
    return common[-1] if common else None


def module_box(module: str, level: str) -> str:
    """The box a module is drawn in when collapsed to ``level``: itself for ``"neuron"``
    (``layers.0.neurons.3``), its outermost indexed level for ``"layer"`` (``layers.0``)."""
    return module if level == "neuron" else module_levels(module)[0]


def assign_modules(values: Iterable[Value]) -> dict[Value, str | None]:
    """The module each value belongs to, for clustering (``None``: outside every module).

    A parameter belongs to its own module. A computed node belongs to the common module of the
    parameters it uses directly, if it uses any (``w * x`` sits with ``w``'s neuron); otherwise,
    when all its inputs are computed nodes, to their common module (``tanh`` of a neuron's sum
    stays in that neuron; a sum over two layers' outputs goes to nothing finer than both). Inputs,
    constants, and nodes that mix in an input or constant without a parameter (a loss
    ``out - y``), belong to no module. ``values`` must list parents before children.
    """
    assigned: dict[Value, str | None] = {}
    for v in values:
        kind = node_kind(v)
        if kind == "parameter":
            assigned[v] = module_of(v.label) or None
        elif kind != "operation":
            assigned[v] = None
        else:
            params = [assigned[p] for p in v.parents if p.is_leaf and assigned[p] is not None]
            if params:
                assigned[v] = _common_module(params)
            elif all(not p.is_leaf and assigned[p] is not None for p in v.parents):
                assigned[v] = _common_module(assigned[p] for p in v.parents)
            else:
                assigned[v] = None
    return assigned


def gradient_flows(v: Value, grad: float | None = None) -> tuple[float, ...]:
    """How much gradient flows from ``v`` into each of its parents (one entry per parent slot):
    ``|vjp contribution|``, by the rule of ``v.op`` applied to ``grad`` (default ``v.grad``).
    NaN where the derivative is undefined there."""
    if v.is_leaf:
        return ()
    g = v.grad if grad is None else grad
    try:
        local = v.op.vjp(FLOAT_MATH, g, v.data, *[p.data for p in v.parents])
    except (ArithmeticError, ValueError):
        return (math.nan,) * len(v.parents)
    return tuple(abs(x) for x in local)



# --- numbers, names and marks --------------------------------------------------------------------


def format_number(x: float, digits: int = 4) -> str:
    """``x`` to ``digits`` significant digits, with ``-0`` written as ``0``."""
    text = f"{x:.{digits}g}"
    return "0" if text == "-0" else text


def health(g: float, vanishing: float = VANISHING, exploding: float = EXPLODING) -> str | None:
    """``"exploding"`` when ``|g| > exploding`` or NaN, ``"vanishing"`` when ``|g| < vanishing``, else None."""
    if math.isnan(g) or abs(g) > exploding:
        return "exploding"
    if abs(g) < vanishing:
        return "vanishing"
    return None


def op_sign(op) -> str:
    """The short mark of an operation for a small node: ``*`` for mul, ``** 2``, ``tanh``."""
    if op.is_call or op.arity == -1:
        return op.name
    return op.format(*[""] * op.arity).strip("() ") or op.name


def short_names(values: list[Value], digits: int = 4, limit: int = 24) -> dict[Value, str]:
    """A readable name per value: its label, else its formula from the primitive table when short
    (``(x * w)``), else ''. Constants show their number. ``values`` lists parents first."""
    names: dict[Value, str] = {}
    for v in values:
        if v.label:
            names[v] = v.label
        elif v.is_leaf:
            names[v] = format_number(v.data, digits)
        else:
            args = [names[p] for p in v.parents]
            if all(args) and v.op.arity != -1:
                if v.op.is_call:  # drop (..) inside f(..)
                    args = [a[1:-1] if a.startswith("(") and a.endswith(")") else a for a in args]
                text = v.op.format(*args)
                names[v] = text if len(text) <= limit else ""
            else:
                names[v] = ""
    return names


# --- the backward pass, step by step -------------------------------------------------------------


@dataclass(frozen=True)
class Contribution:
    """What one backward step adds to one parent slot: ``upstream * local`` (``value``), the local
    derivative ``d node / d parent`` on its own (``local``) and the parent's gradient after the
    addition (``total``)."""

    slot: int
    parent: Value
    local: float
    value: float
    total: float


@dataclass(frozen=True)
class BackwardStep:
    """One computed node's turn in backward: its gradient (``upstream``), final from here on, and
    what it passes to each parent."""

    node: Value
    upstream: float
    contributions: tuple[Contribution, ...]


def _vjp(v: Value, g: float) -> tuple[float, ...]:
    """The rule of ``v.op`` applied to ``g``; NaN for every input where the rule fails."""
    try:
        return tuple(v.op.vjp(FLOAT_MATH, g, v.data, *[p.data for p in v.parents]))
    except (ArithmeticError, ValueError):
        return (math.nan,) * len(v.parents)


def replay_backward(root: Value, seed: float = 1.0) -> list[BackwardStep]:
    """The steps of ``root.backward(seed)`` in the engine's order (reverse topological order of the
    computed nodes, :func:`~tinygrad_edu.engine.topological_order`), applying each primitive's rule,
    without touching any ``.grad``: the gradients are those of this one backward, all starting at 0."""
    grads: dict[Value, float] = {root: seed}
    steps = []
    for v in reversed(topological_order(root)):
        if v.is_leaf:
            continue
        g = grads.get(v, 0.0)
        local = _vjp(v, 1.0)
        contributions = []
        for slot, (p, gp) in enumerate(zip(v.parents, _vjp(v, g))):
            grads[p] = grads.get(p, 0.0) + gp
            contributions.append(Contribution(slot, p, local[slot], gp, grads[p]))
        steps.append(BackwardStep(v, g, tuple(contributions)))
    return steps
