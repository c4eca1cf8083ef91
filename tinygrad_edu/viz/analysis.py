"""The analysis under every picture of a graph: what the nodes, edges, gradient flows, modules and
marks are, as plain data, with no drawing and no Graphviz. :func:`analyze` makes one
:class:`GraphAnalysis` of a graph (frozen records: :class:`Node`, :class:`Edge`, :class:`Cluster`,
:class:`Step`); the renderers (:mod:`.dot` writes it as DOT for Graphviz, behind :mod:`.graph`'s
static drawings and :mod:`.animate`'s GIF frames, and :mod:`.explorer` the interactive HTML page)
all read their numbers from it, so every picture shows the same ones.

Gradient flow along an edge ``parent -> op`` is ``|the parent's share of the op's VJP applied to the
output's grad|``, read from the primitive table (:mod:`tinygrad_edu.ops`); along ``op -> output``
it is ``|output.grad|``. Modules come from the parameter names of :mod:`tinygrad_edu.nn`
(``layers.0.neurons.3.w.1``). :func:`replay_backward` lists the steps of a backward pass in the
engine's own order without touching any ``.grad``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Iterable, Literal, Mapping

from ..engine import Value, topological_order
from ..ops import FLOAT_MATH

#: A leaf whose label looks like this (a dotted module path) is a parameter, e.g. ``layers.0.neurons.3.w.1``.
PARAMETER_NAME = re.compile(r"^(?:[A-Za-z_]\w*|\d+)(?:\.(?:[A-Za-z_]\w*|\d+))+$")

#: Gradient sizes below VANISHING or above EXPLODING (or NaN) mark a node, by default.
VANISHING, EXPLODING = 1e-6, 1e3
#: Renderers refuse a graph whose :func:`layout_size` exceeds this many times their ``max_nodes``.
LAYOUT_FACTOR = 3


class GraphTooLargeError(ValueError):
    """The graph has more nodes than ``max_nodes``; the message names the ways out, ``reason``
    says what was too large."""

    reason: str = ""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason


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


# --- one analysis of a graph, read by every renderer ---------------------------------------------

#: Where the gradients of an analysis come from (see :func:`analyze`).
Gradients = Literal["engine", "replay", "none", "given"]


@dataclass(frozen=True)
class Node:
    """One value of the graph. ``id`` is ``n{i}``, ``i`` its place in
    :func:`~tinygrad_edu.engine.topological_order` of the root. ``name`` is how text calls it (its
    label, else its formula up to 48 characters, else ``#i``), ``short`` what a small box shows
    (label, a constant's number, or a formula up to 24 characters, else ``""``). ``op`` is the
    primitive's name (``None`` for a leaf), ``sign`` its short mark (``*``, ``tanh``), ``formula``
    the op applied to its parents' names. ``grad`` is ``None`` where no gradient is known.
    ``module`` is the nn module it belongs to (:func:`assign_modules`), ``cluster`` the id of the
    :class:`Cluster` box it is in at the analysis' level. ``marks``: any of ``"root"``,
    ``"vanishing"``, ``"exploding"``, ``"highlight"``. ``value`` is the Value itself."""

    id: str
    label: str
    name: str
    short: str
    kind: str
    op: str | None
    sign: str | None
    formula: str | None
    parents: tuple[str, ...]
    data: float
    grad: float | None
    module: str | None
    cluster: str | None
    marks: frozenset[str]
    value: Value = field(compare=False, repr=False)


@dataclass(frozen=True)
class Edge:
    """The edge from input ``source`` into slot ``slot`` of the operation that makes ``target``.
    ``flow`` is the gradient along it, ``|the slot's share of target's VJP applied to target's grad|``
    (NaN where the rule is undefined); ``None`` while no gradient has passed it."""

    source: str
    target: str
    slot: int
    flow: float | None


@dataclass(frozen=True)
class Cluster:
    """A module box at the analysis' level (a neuron ``layers.0.neurons.3`` or a layer
    ``layers.0``). ``parent`` is the module whose frame it is drawn in (a neuron's layer; ``None``
    at the top). ``nodes`` are its members' ids (constants used only inside it included), ``params``
    its parameters' ids, ``grad_norm`` the Euclidean norm of their gradients (``None`` without
    parameters or gradients) and ``mark`` its ``"vanishing"``/``"exploding"`` mark."""

    id: str
    module: str
    parent: str | None
    nodes: tuple[str, ...]
    params: tuple[str, ...]
    grad_norm: float | None
    mark: str | None


@dataclass(frozen=True)
class Share:
    """What one backward step adds to one input slot (a :class:`Contribution`, by node id)."""

    parent: str
    slot: int
    local: float
    value: float
    total: float


@dataclass(frozen=True)
class Step:
    """One computed node's turn in backward (a :class:`BackwardStep`, by node id)."""

    node: str
    upstream: float
    shares: tuple[Share, ...]


@dataclass(frozen=True)
class GraphAnalysis:
    """Everything a picture of the graph shows, as plain data: ``nodes`` (parents before children,
    the root last), ``edges`` (one per input slot), ``clusters`` (module boxes at ``level``, in
    numeric order: ``layers.2`` before ``layers.10``), the backward ``steps`` in the engine's order
    (when ``gradients == "replay"``), and where the gradients come from (``gradients``)."""

    root: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    clusters: tuple[Cluster, ...]
    steps: tuple[Step, ...]
    gradients: Gradients
    level: Literal["neuron", "layer"] | None
    digits: int
    vanishing: float
    exploding: float
    _values: tuple[Value, ...] = field(compare=False, repr=False)

    @property
    def has_grads(self) -> bool:
        """Whether the picture shows gradients at all (``False`` before ``backward``)."""
        return self.gradients != "none"

    def node(self, node_id: str) -> Node:
        return self.nodes[int(node_id[1:])]

    def node_of(self, value: Value) -> Node:
        """The node of a Value of the graph (``KeyError`` for another Value)."""
        for node in self.nodes:
            if node.value is value:
                return node
        raise KeyError(value)

    def edges_into(self, node_id: str) -> tuple[Edge, ...]:
        return tuple(e for e in self.edges if e.target == node_id)

    def grads_after(self, k: int) -> dict[str, float]:
        """The gradients known after the seed and the first ``k`` backward steps, by node id."""
        if self.gradients != "replay":
            raise ValueError("grads_after needs an analysis with grads='replay'")
        grads = {self.root: 1.0}
        for step in self.steps[:k]:
            for share in step.shares:
                grads[share.parent] = share.total
        return grads

    def after(self, k: int, highlight: Iterable[Value] = ()) -> GraphAnalysis:
        """The picture after the seed and the first ``k`` backward steps (an animation's frame):
        the gradients known by then, flows on the edges of the nodes that have passed theirs on,
        and ``highlight`` marked. Needs ``gradients == "replay"``."""
        return self.frame(self.grads_after(k), [s.node for s in self.steps[:k]], highlight)

    def frame(self, grads: Mapping[str, float], passed: Iterable[str], highlight: Iterable[Value] = ()) -> GraphAnalysis:
        """The same graph showing only ``grads`` (by node id; the others have none), flows only on
        the edges into the nodes ``passed`` (ids), and ``highlight`` marked."""
        by_id = {n.id: n.value for n in self.nodes}
        known = {by_id[i]: g for i, g in grads.items()}
        return _assemble(self._values, known.get, "given", [by_id[i] for i in passed], highlight, self.level,
                         self.digits, self.vanishing, self.exploding, self.steps)


def module_order(name: str) -> tuple:
    """A sort key putting modules in numeric order: ``layers.2`` before ``layers.10``."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in name.split("."))


def grad_norm(grads: Iterable[float]) -> float:
    """The Euclidean norm of some gradients (NaN if one is NaN)."""
    return math.sqrt(sum(g * g for g in grads))


def analyze(
    root: Value,
    *,
    grads: Literal["engine", "replay", "none"] | Mapping[Value, float] = "engine",
    passed: Iterable[Value] | None = None,
    highlight: Iterable[Value] = (),
    level: Literal["neuron", "layer"] | None = None,
    digits: int = 4,
    vanishing: float = VANISHING,
    exploding: float = EXPLODING,
    max_nodes: int | None = None,
) -> GraphAnalysis:
    """Analyse the graph that ends at ``root`` once, for every renderer.

    ``grads`` says which gradients to show: ``"engine"`` each value's ``.grad`` (none if all are 0,
    as before ``backward``); ``"replay"`` those of one fresh ``root.backward()`` replayed step by
    step without touching any ``.grad`` (:func:`replay_backward`; the analysis keeps the
    ``steps``); ``"none"`` data only; a mapping from Value to grad (values missing from it have
    none). ``passed`` lists the computed values that have passed their gradient on (only their
    edges carry a flow; default: all that have a gradient). ``highlight`` marks some values:
    Values, or records with a ``.node`` Value (gradcheck's culprits, :class:`~tinygrad_edu.testing.GradcheckError`).
    ``level`` (``"neuron"``, ``"layer"`` or ``None``) makes the module boxes of :attr:`~GraphAnalysis.clusters`.
    With ``max_nodes``, a graph of more values, or whose :func:`layout_size` exceeds
    ``LAYOUT_FACTOR * max_nodes``, raises :class:`GraphTooLargeError` at once (its ``reason`` says which).
    """
    if level not in (None, "neuron", "layer"):
        raise ValueError(f"level must be 'neuron', 'layer' or None, got {level!r}")
    values = collect_values(root, limit=max_nodes)
    if values is None:
        raise GraphTooLargeError(f"the graph has more than {max_nodes} values", f"the graph has more than {max_nodes} values")
    if max_nodes is not None:
        size = layout_size(values)
        if size > LAYOUT_FACTOR * max_nodes:
            reason = (f"the graph has {len(values)} values, but its long edges (values reused far apart) make about "
                      f"{size} nodes for dot to place, more than {LAYOUT_FACTOR} x max_nodes")
            raise GraphTooLargeError(reason, reason)
    steps: tuple[Step, ...] = ()
    if isinstance(grads, str):
        if grads not in ("engine", "replay", "none"):
            raise ValueError(f"grads must be 'engine', 'replay', 'none' or a mapping, got {grads!r}")
        source: Gradients = grads
        if grads == "engine" and not any(v.grad != 0.0 for v in values):
            source = "none"
        if source == "engine":
            grad_of = _engine_grad
        elif source == "replay":
            ids = {v: f"n{i}" for i, v in enumerate(values)}
            replayed = replay_backward(root)
            steps = tuple(Step(ids[s.node], s.upstream, tuple(Share(ids[c.parent], c.slot, c.local, c.value, c.total)
                                                              for c in s.contributions)) for s in replayed)
            known = {root: 1.0}
            for s in replayed:
                for c in s.contributions:
                    known[c.parent] = c.total
            grad_of = known.get
        else:
            grad_of = _no_grad
    else:
        source, grad_of = "given", grads.get
    return _assemble(tuple(values), grad_of, source, passed, highlight, level, digits, vanishing, exploding, steps)


def highlighted(item) -> Value:
    """The Value a ``highlight`` entry stands for: a Value, or a record's ``.node`` (a gradcheck culprit)."""
    value = item if isinstance(item, Value) else getattr(item, "node", None)
    if not isinstance(value, Value):
        raise TypeError(f"highlight takes Values or records with a .node Value (gradcheck's culprits), "
                        f"got {type(item).__name__}")
    return value


def _engine_grad(v: Value) -> float:
    return v.grad


def _no_grad(v: Value) -> None:
    return None


def _assemble(values, grad_of, source, passed, highlight, level, digits, vanishing, exploding, steps) -> GraphAnalysis:
    ids = {v: f"n{i}" for i, v in enumerate(values)}
    root = values[-1]
    shorts = short_names(list(values), digits)
    names = short_names(list(values), digits, limit=48)
    modules = assign_modules(values)
    done = None if passed is None else set(passed)
    marked = {id(highlighted(v)) for v in highlight}
    boxes = _boxes(values, modules, level) if level is not None else {}
    box_names = sorted(set(boxes.values()), key=module_order)
    box_ids = {b: f"c{i}" for i, b in enumerate(box_names)}

    def name(v: Value) -> str:
        return names[v] or f"#{ids[v][1:]}"

    nodes, edges = [], []
    for v in values:
        g = grad_of(v)
        kind = node_kind(v)
        marks = set()
        if v is root:
            marks.add("root")
        if g is not None and kind != "constant":
            state = health(g, vanishing, exploding)
            if state:
                marks.add(state)
        if id(v) in marked:
            marks.add("highlight")
        op = v.op
        nodes.append(Node(
            id=ids[v], label=v.label, name=name(v), short=shorts[v], kind=kind,
            op=op.name if op is not None else None, sign=op_sign(op) if op is not None else None,
            formula=op.format(*[name(p) for p in v.parents]) if op is not None else None,
            parents=tuple(ids[p] for p in v.parents), data=v.data, grad=g, module=modules[v],
            cluster=box_ids.get(boxes.get(v)), marks=frozenset(marks), value=v,
        ))
        if not v.is_leaf:
            flows = gradient_flows(v, g) if g is not None and (done is None or v in done) else (None,) * len(v.parents)
            edges.extend(Edge(ids[p], ids[v], slot, f) for slot, (p, f) in enumerate(zip(v.parents, flows)))
    clusters = []
    for b in box_names:
        members = [v for v in values if boxes.get(v) == b]
        params = [v for v in members if node_kind(v) == "parameter"]
        gs = [grad_of(v) for v in params]
        norm = grad_norm(gs) if params and source != "none" and all(g is not None for g in gs) else None
        levels = module_levels(b)
        clusters.append(Cluster(
            id=box_ids[b], module=b, parent=levels[-2] if len(levels) > 1 else None,
            nodes=tuple(ids[v] for v in members), params=tuple(ids[v] for v in params), grad_norm=norm,
            mark=health(norm, vanishing, exploding) if norm is not None else None,
        ))
    return GraphAnalysis(root=ids[root], nodes=tuple(nodes), edges=tuple(edges), clusters=tuple(clusters),
                         steps=steps, gradients=source, level=level, digits=digits, vanishing=vanishing,
                         exploding=exploding, _values=tuple(values))


def _boxes(values, modules: Mapping[Value, str | None], level: str) -> dict[Value, str]:
    """The module box of each value at ``level``; a constant used only inside one box goes with it."""
    boxes: dict[Value, str] = {}
    consumers: dict[Value, set] = {}
    for v in values:
        if modules[v] is not None:
            boxes[v] = module_box(modules[v], level)
        for p in v.parents:
            consumers.setdefault(p, set()).add(v)
    for v in values:
        if node_kind(v) == "constant":
            found = {boxes.get(c) for c in consumers.get(v, ())}
            if len(found) == 1 and None not in found:
                boxes[v] = found.pop()
    return boxes
