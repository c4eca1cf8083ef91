"""Fault localisation: when a gradient check of a whole function fails, find the primitive whose
rule is wrong.

Each primitive application in the recorded graph is checked on its own: its local partial
derivatives from the derivative rule (``op.vjp`` with an output gradient of 1) against a numerical
derivative of its forward rule (``op.forward``) at the node's actual inputs (Ridders' method, see
:mod:`.numeric`). At a kink (``op.kinks``, or wherever the two one-sided derivatives differ) the
rule's value must lie between the one-sided derivatives: a subgradient, with the convention named.
Second-order checks differentiate the rule itself (on ``Value``s, as ``grad(create_graph=True)``
does) against numerical derivatives of the float rule.

When every rule passes and the whole still fails, :func:`divergence` follows each input's
derivative forward through the graph, node by node, and compares it with the node values of
re-traced graphs at nearby points: the first node where they part is where the fault enters
(typically a value taken out of the graph with ``.data`` and put back as a constant).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from .. import ops
from ..engine import VALUE_MATH, Value, apply, enable_grad, grad, topological_order
from . import numeric
from .formula import _leaf_text as leaf_text
from .formula import format_op, formula

#: Local checks are tighter than whole-function ones: a rule is compared with an accurate
#: (extrapolated) numerical derivative of its own forward rule, so only rounding separates them.
LOCAL_ATOL = 1e-7
LOCAL_RTOL = 1e-5
#: A local mismatch must also exceed this many times the numerical error estimate.
ERROR_MARGIN = 10.0
#: Inputs closer than this (relative to max(1, |x|)) to a declared kink count as at the kink.
AT_KINK = 1e-9


@dataclass(frozen=True)
class LocalPartial:
    """One local partial derivative of one primitive at one point: the rule's value
    (``analytic``) against the numerical ``numeric`` (with its estimated ``error``). At a kink,
    ``interval`` holds the left and right derivatives, and ``ok`` means the rule's value lies
    between them. ``order`` is 1 for the derivative rule, 2 for the rule's own derivative
    (``index`` is then the pair ``(i, j)``: d/dx_j of the partial for input i)."""

    op: ops.Primitive
    inputs: tuple[float, ...]
    index: int | tuple[int, int]
    analytic: float
    numeric: float
    error: float
    ok: bool
    interval: tuple[float, float] | None = None
    order: int = 1

    @property
    def what(self) -> str:
        """``d/dx0`` (``d2/dx0dx1`` for second order) in the primitive's own input names."""
        if self.order == 1:
            return f"d/d{_arg(self.op, self.index)}"
        i, j = self.index  # type: ignore[misc]
        return f"d2/d{_arg(self.op, i)}d{_arg(self.op, j)}"

    def describe(self) -> str:
        call = self.op.format(*(f"{x:.10g}" for x in self.inputs)) if self.op.arity != -1 else f"{self.op.name}(...)"
        if self.interval is not None:
            lo, hi = sorted(self.interval)
            ref = f"one-sided derivatives [{lo:.6g}, {hi:.6g}] (a kink: the rule gives the convention {self.analytic:.6g})"
            return f"{self.what} {call}: rule {self.analytic:.6g}, {ref}"
        return f"{self.what} {call}: rule {self.analytic:.6g}, numeric {self.numeric:.6g} (± {self.error:.2g})"


def _arg(op: ops.Primitive, i: int) -> str:
    if op.arity == 1:
        return "x"
    if op.arity == 2:
        return "ab"[i]
    return f"x{i}"


@dataclass(frozen=True)
class Culprit:
    """A node of the graph whose primitive's rule failed its local check: ``node`` (a ``Value``),
    its failed ``partials`` and ``path``, the nodes from it to the output (both included)."""

    node: Value
    partials: tuple[LocalPartial, ...]
    path: tuple[Value, ...]

    @property
    def op(self) -> ops.Primitive:
        return self.node.op  # type: ignore[return-value]

    @property
    def inputs(self) -> tuple[float, ...]:
        return tuple(p.data for p in self.node.parents)


@dataclass(frozen=True)
class Divergence:
    """Where the derivative along an input first parts from the numerical one, walking the graph
    in topological order: ``node``, the ``input`` index, the derivative the rules give there
    (``analytic``) and the numerical one. ``reason`` says what that suggests."""

    node: Value
    input: int
    analytic: float
    numeric: float
    reason: str
    graph: str = ""  # which graph, when not the function's own: "the graph of d/dx0"


@dataclass
class Localization:
    """The result of :func:`localize`: ``culprits`` (worst first), how many primitive
    applications were ``checked``, and, when no rule is wrong, the ``divergence`` (if found) and
    a ``note``."""

    culprits: list[Culprit] = field(default_factory=list)
    checked: int = 0
    divergence: Divergence | None = None
    note: str = ""


# ---------------------------------------------------------------------------------------------
# One rule at one point


def _local_ok(a: float, n: float, err: float) -> bool:
    return abs(a - n) <= max(LOCAL_ATOL + LOCAL_RTOL * abs(n), ERROR_MARGIN * err)  # False for NaN


def _forward_along(op: ops.Primitive, xs: Sequence[float], j: int) -> Callable[[float], float]:
    def f(t: float) -> float:
        args = list(xs)
        args[j] = t
        return op.forward(ops.FLOAT_MATH, *args)

    return f


def kink_gap(op: ops.Primitive, xs: Sequence[float]) -> float:
    """How far the inputs ``xs`` of ``op`` are from its nearest kink (``inf`` without kinks)."""
    distance = getattr(op, "kink_distance", None)  # the record's own measure, where it has one
    if distance is not None:
        return float(distance(*xs))
    return min((abs(x - k) for x in xs for k in op.kinks), default=math.inf)


def at_kink(op: ops.Primitive, xs: Sequence[float]) -> bool:
    """Whether ``xs`` sits on a kink of ``op`` (up to AT_KINK, relative to the inputs' size)."""
    return kink_gap(op, xs) <= AT_KINK * max([1.0, *(abs(x) for x in xs)])


def _declared_kink(op: ops.Primitive, xs: Sequence[float]) -> tuple[bool, float | None]:
    """(at a kink the record declares, half the distance to it otherwise) at the inputs ``xs``."""
    g = kink_gap(op, xs)
    if not math.isfinite(g):
        return False, None
    if at_kink(op, xs):
        return True, None
    return False, g / 2


def check_rule(op: ops.Primitive, *inputs: float) -> list[LocalPartial]:
    """Check ``op``'s derivative rule at ``inputs``: one :class:`LocalPartial` per input. A
    point where the rule or the forward rule is undefined gives no entry for that input."""
    xs = tuple(float(x) for x in inputs)
    try:
        out = op.forward(ops.FLOAT_MATH, *xs)
        partials = op.vjp(ops.FLOAT_MATH, 1.0, out, *xs)
    except (ArithmeticError, ValueError):
        return []
    result = []
    for j, x in enumerate(xs):
        a = float(partials[j])
        at_kink, max_step = _declared_kink(op, xs)
        try:
            c = numeric.check(a, _forward_along(op, xs, j), x, _local_ok, at_kink=at_kink, max_step=max_step)
        except numeric.NotDefinedError:
            continue
        result.append(LocalPartial(op, xs, j, a, c.value, c.error, c.ok, c.interval))
    return result


def check_rule_second_order(op: ops.Primitive, *inputs: float) -> list[LocalPartial]:
    """Check the derivative of ``op``'s derivative rule at ``inputs`` (what
    ``grad(create_graph=True)`` differentiates): for each pair (i, j), d/dx_j of the partial for
    input i, from the rule run on ``Value``s, against a numerical derivative of the float rule.
    A rule that cannot run on Values (a custom primitive's) gives no entries."""
    xs = tuple(float(x) for x in inputs)
    with enable_grad():
        leaves = [Value(x) for x in xs]
        try:
            out_v = apply(op, *leaves)
            rule = op.vjp(VALUE_MATH, Value(1.0), out_v, *leaves)
        except (ArithmeticError, ValueError, NotImplementedError):
            return []
    result = []
    for i, part in enumerate(rule):
        if isinstance(part, Value):
            second = grad(part, leaves, allow_unused=True)
        else:
            second = (None,) * len(xs)

        for j, x in enumerate(xs):
            a = 0.0 if second[j] is None else second[j].data

            def partial_i(t: float, i=i, j=j) -> float:
                args = list(xs)
                args[j] = t
                return op.vjp(ops.FLOAT_MATH, 1.0, op.forward(ops.FLOAT_MATH, *args), *args)[i]

            at_kink, max_step = _declared_kink(op, xs)
            try:
                c = numeric.check(a, partial_i, x, _local_ok, at_kink=at_kink, max_step=max_step)
            except numeric.NotDefinedError:
                continue
            result.append(LocalPartial(op, xs, (i, j), a, c.value, c.error, c.ok, c.interval, order=2))
    return result


# ---------------------------------------------------------------------------------------------
# Every rule of a graph


def _children(order: list[Value]) -> dict[Value, list[Value]]:
    children: dict[Value, list[Value]] = {}
    for node in order:
        for p in node.parents:
            children.setdefault(p, []).append(node)
    return children


def path_to(node: Value, out: Value, children: dict[Value, list[Value]]) -> tuple[Value, ...]:
    """The shortest chain of nodes from ``node`` to ``out`` (both included)."""
    came_from: dict[Value, Optional[Value]] = {node: None}
    queue = [node]
    for current in queue:
        if current is out:
            break
        for c in children.get(current, ()):
            if c not in came_from:
                came_from[c] = current
                queue.append(c)
    if out not in came_from:
        return (node,)
    chain = [out]
    while came_from[chain[-1]] is not None:
        chain.append(came_from[chain[-1]])  # type: ignore[arg-type]
    return tuple(reversed(chain))


def localize(out: Value, inputs: Sequence[Value] = (), *, order: int = 1) -> Localization:
    """Check every primitive application in the graph that ends in ``out`` on its own and return
    the :class:`Localization`: the culprits (nodes whose rule fails), worst first by how much
    their error moves the output. ``order=2`` also checks each rule's own derivative."""
    nodes = topological_order(out)
    children = _children(nodes)
    computed = [n for n in nodes if n.op is not None]
    # How much each node moves the output, to rank culprits (rules may be wrong: a rough weight).
    try:
        weights = dict(zip(computed, (abs(g.data) if g is not None else 0.0
                                      for g in grad(out, computed, allow_unused=True))))
    except (ArithmeticError, ValueError, NotImplementedError):
        weights = {}
    result = Localization()
    seen: dict[tuple, list[LocalPartial]] = {}  # one check per (primitive, inputs): graphs repeat
    for node in computed:
        xs = tuple(p.data for p in node.parents)
        key = (id(node.op), xs, order)
        if key not in seen:
            checks = check_rule(node.op, *xs)
            if order >= 2:
                checks += check_rule_second_order(node.op, *xs)
            seen[key] = checks
        result.checked += 1
        bad = tuple(c for c in seen[key] if not c.ok)
        if bad:
            result.culprits.append(Culprit(node, bad, path_to(node, out, children)))

    def impact(c: Culprit) -> float:
        worst = max(abs(p.analytic - p.numeric) for p in c.partials)
        return -(worst * weights.get(c.node, 1.0)) if not math.isnan(worst) else -math.inf

    result.culprits.sort(key=impact)
    return result


# ---------------------------------------------------------------------------------------------
# No rule is wrong: where do the derivatives part?


def tangents(nodes: Sequence[Value], x: Value) -> dict[Value, float]:
    """d node / d x for every node of ``nodes`` (in topological order), pushed forward with the
    rules' local partials (float). Raises what a rule raises where it is undefined."""
    tangent: dict[Value, float] = {}
    for node in nodes:
        if node.op is None:
            tangent[node] = 1.0 if node is x else 0.0
        else:
            local = node.op.vjp(ops.FLOAT_MATH, 1.0, node.data, *[p.data for p in node.parents])
            tangent[node] = math.fsum(float(d) * tangent[p] for d, p in zip(local, node.parents) if tangent[p])
    return tangent


def _retrace(fn: Callable[..., Value], point: list[float]) -> Optional[list[Value]]:
    try:
        with enable_grad():
            ys = [Value(v) for v in point]
            out = fn(*ys)
    except (ArithmeticError, ValueError):
        return None
    return topological_order(out) if isinstance(out, Value) else None


def divergence(fn: Callable[..., Value], out: Value, xs: Sequence[Value], *,
               atol: float = 1e-5, rtol: float = 1e-3, graph: str = "") -> tuple[Divergence | None, str]:
    """Follow each input's derivative forward through the recorded graph with the rules' local
    partials and compare it, node by node in topological order, with central differences of the
    node values of graphs re-traced at nearby points. Returns the first node where they part (or
    None) and a sentence for the report. ``fn`` may itself build a derivative graph (``graph``
    names it in the report, e.g. "the graph of d/dx0" for second derivatives)."""
    nodes = topological_order(out)
    point = [x.data for x in xs]
    for i, x in enumerate(xs):
        h = 1e-4 * max(1.0, abs(point[i]))
        traced = None
        for _ in range(6):
            traced = [_retrace(fn, [v + s * (i == k) for k, v in enumerate(point)]) for s in (h, -h, h / 2, -h / 2)]
            if all(t is not None for t in traced):
                break
            h /= 10
        if traced is None or any(t is None for t in traced):
            return None, f"fn is not defined near the point along {x.label}, so the nodes cannot be compared"
        if any(len(t) != len(nodes) or any(a.op is not b.op for a, b in zip(t, nodes)) for t in traced):
            return None, ("fn records a different graph at nearby points (its control flow depends on the values), "
                          "so its nodes cannot be compared one by one")
        try:
            tangent = tangents(nodes, x)
        except (ArithmeticError, ValueError):
            return None, "a derivative rule is undefined at the inputs of one of its nodes"
        for k, node in enumerate(nodes):
            up, down, up2, down2 = (t[k].data for t in traced)
            wide, narrow = (up - down) / (2 * h), (up2 - down2) / h
            num = narrow + (narrow - wide) / 3  # Richardson
            err = abs(narrow - wide)
            a = tangent[node]
            if abs(a - num) > atol + rtol * abs(num) + ERROR_MARGIN * err:
                if node.op is None:
                    reason = (f"the constant {node.data:.6g} is not an input of the graph, yet it changes when {x.label} "
                              "moves: fn computed it outside the graph (e.g. took a value out with .data and put it back)")
                else:
                    reason = ("every rule passes on its own here, yet the derivative entering this node already differs: "
                              "the fault is in how the gradients are combined")
                return Divergence(node, i, a, num, reason, graph), reason
    return None, ("every node's derivative along every input agrees with the numerical one, so the fault is in "
                  "how backward combines the gradients of the rules (accumulation), not in a rule")


# ---------------------------------------------------------------------------------------------
# Report


def describe_path(path: Sequence[Value], xs: Sequence[Value], max_chars: int = 24) -> str:
    """``softplus_wrong(x0*x1) → ·*x2 → · + 1.0 → log(·)``: each step of ``path`` printed with
    the formula printer, ``·`` standing for the node it comes from."""
    names = {x: x.label or f"x{k}" for k, x in enumerate(xs)}

    def text(v: Value) -> tuple[str, int]:
        if v.op is None:
            return (names[v], 9) if v in names else ((v.label, 9) if v.label else leaf_text(v.data))
        s = formula(v, xs, 4 * max_chars)
        if len(s) <= max_chars and s != "…":
            return s, 9
        return format_op(v.op, [("…", 9)] * len(v.parents))  # too long: the outer operation only

    steps = [formula(path[0], xs, 60)]
    for prev, node in zip(path, path[1:]):
        args = [("·", 9) if p is prev else text(p) for p in node.parents]
        steps.append(format_op(node.op, args)[0])
    return " → ".join(steps)


def report(loc: Localization, out: Value, xs: Sequence[Value], max_culprits: int = 3) -> str:
    """The culprit section of a failure message."""
    if not loc.culprits:
        lines = [f"Every primitive's rule passes its own check ({loc.checked} application"
                 f"{'' if loc.checked == 1 else 's'} checked)."]
        if loc.divergence is not None:
            d = loc.divergence
            where = f"the constant {d.node.data:.6g}" if d.node.op is None else f"{formula(d.node, xs, 80)} = {d.node.data:.6g}"
            lines.append(f"The derivatives first part{' in ' + d.graph if d.graph else ''} at {where} "
                         f"(along {xs[d.input].label}: {d.analytic:.6g} from the rules, {d.numeric:.6g} numerically):")
            lines.append(d.reason + ".")
        elif loc.note:
            lines.append(loc.note[0].upper() + loc.note[1:] + ".")
        return "\n".join(lines)
    n = len(loc.culprits)
    lines = [f"Culprit{'s' if n > 1 else ''}: {n} of {loc.checked} primitive applications fail their own check"
             + ((" (the one that matters most shown)" if max_culprits == 1 else f" (the {max_culprits} that matter most shown)")
                if n > max_culprits else "") + ":"]
    for c in loc.culprits[:max_culprits]:
        name = c.op.name
        lines.append(f"- {name} at {formula(c.node, xs, 80)} = {c.node.data:.6g}, inputs {', '.join(f'{v:.6g}' for v in c.inputs)}")
        for p in c.partials[:4]:
            lines.append(f"    {p.describe()}")
        if len(c.path) > 1:
            lines.append(f"    path to the output: {describe_path(c.path, xs)}")
    return "\n".join(lines)


__all__ = [
    "LocalPartial", "Culprit", "Divergence", "Localization", "check_rule", "check_rule_second_order", "localize",
    "divergence", "path_to", "describe_path", "report",
]
