"""Hypothesis strategies for property-testing gradients: random expressions over the primitive table
(with a point where every operation is smooth and well-conditioned), Values, and small MLPs.

>>> from hypothesis import given
>>> from tinygrad_edu.testing import gradcheck
>>> from tinygrad_edu.testing.strategies import expressions
>>> @given(expressions(n_inputs=3, max_ops=6))
... def test_gradients(case):
...     fn, inputs = case
...     assert gradcheck(fn, inputs)
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Sequence, Union

try:
    from hypothesis import assume
    from hypothesis import strategies as st
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "tinygrad_edu.testing.strategies needs Hypothesis: pip install 'tinygrad_edu[testing]' (or hypothesis)"
    ) from err

from .. import ops
from ..custom import CustomPrimitive
from ..engine import Value, apply, topological_order
from .formula import _leaf_text, format_op
from .kinks import has_kinks
from .localize import kink_gap

#: Every intermediate result of a drawn expression stays within ±VALUE_BOUND (no overflow, and
#: derivatives small enough for float64 central differences to resolve).
VALUE_BOUND = 100.0
#: Inputs of an operation with a kink (relu, abs at 0) stay at least this far from the kink.
KINK_MARGIN = 0.05
#: Exponents drawn for the constant power ``x ** c`` (``ops.pow_const``).
POW_CONST_EXPONENTS = (2.0, 3.0, 0.5, -1.0, 1.5)


#: Where drawn points may put each built-in operation's inputs, by primitive name: inside its
#: domain with a margin, where its derivative is well-conditioned (log and sqrt not near 0, no
#: division by nearly 0, exp not near overflow). Read from each record's ``interior``; kinks and
#: the VALUE_BOUND apply on top of these.
DOMAINS: dict[str, Callable[..., bool]] = {name: ops.PRIMITIVES[name].interior for name in ops.BUILTIN_NAMES}


def _custom_domain(op: CustomPrimitive) -> Callable[..., bool]:
    # Inside the declared domain, also a little to either side, so the numerical steps stay inside.
    def inside(*xs: float) -> bool:
        return all(op.in_domain(*(x + d for x in xs)) for d in (-0.01, 0.0, 0.01))
    return inside


def domain_of(op: ops.Primitive) -> Callable[..., bool]:
    """The predicate on an operation's inputs that drawn points satisfy: the declared ``domain``
    for a custom primitive, the record's ``interior`` for every other one (``x ** c`` by its
    exponent)."""
    if isinstance(op, CustomPrimitive):
        return _custom_domain(op)
    return op.interior


def _smooth_at(op: ops.Primitive, xs: Sequence[float]) -> float | None:
    """``op``'s output at ``xs`` if the point is well inside its domain, away from kinks and
    within bounds; else None."""
    if op.kink_distance(*xs) < KINK_MARGIN:
        return None
    if not domain_of(op)(*xs):
        return None
    try:
        out = float(op.forward(ops.FLOAT_MATH, *xs))
    except (ArithmeticError, ValueError, TypeError):
        return None
    return out if math.isfinite(out) and abs(out) <= VALUE_BOUND else None


#: How far from a kink ``expressions(near_kinks=True)`` puts an operation's input (0: on it).
NEAR_KINK_OFFSETS = (0.0, 1e-12, -1e-12, 1e-9, -1e-9, 1e-6, -1e-6, 1e-3, -1e-3)
#: How far inside a domain edge ``expressions(near_domain_edges=True)`` puts an operation's input.
NEAR_EDGE_OFFSETS = (1e-8, 1e-6, 1e-4, 1e-2)


_SUB = ops.SUB  # x - c moves an input onto a target (``expressions`` has a parameter named ops)


def _defined_at(op: ops.Primitive, xs: Sequence[float]) -> float | None:
    """``op``'s output at ``xs`` if its forward rule is defined there, the result within bounds,
    and its derivative rule defined too (not so for hypot at (0, 0), whose kink it is)."""
    try:
        out = float(op.forward(ops.FLOAT_MATH, *xs))
        partials = [float(d) for d in op.vjp(ops.FLOAT_MATH, 1.0, out, *xs)]
    except (ArithmeticError, ValueError, TypeError):
        return None
    if not all(math.isfinite(d) for d in partials):
        return None
    return out if math.isfinite(out) and abs(out) <= VALUE_BOUND else None


def _kink_target(op: ops.Primitive, xs: Sequence[float], offset: float) -> tuple[int, float] | None:
    """(which input to move, where to) so that ``op``'s inputs sit ``offset`` from a kink: the
    nearest point kink of a one-input op, else a root of the record's kink measure along input 0
    (secant steps)."""
    if op.arity == 1 and op.kinks:
        return 0, min(op.kinks, key=lambda k: abs(xs[0] - k)) + offset
    rest = list(xs[1:])
    a, b = xs[0], xs[0] + 0.5
    try:
        fa, fb = kink_gap_signed(op, [a, *rest]), kink_gap_signed(op, [b, *rest])
        for _ in range(40):
            if abs(fb) <= 1e-13 * max(1.0, abs(b)) or fb == fa:
                break
            a, b, fa = b, b - fb * (b - a) / (fb - fa), fb
            fb = kink_gap_signed(op, [b, *rest])
    except (ArithmeticError, ValueError, TypeError):
        return None
    return (0, b + offset) if math.isfinite(b) and kink_gap(op, [b, *rest]) <= 1e-9 * max(1.0, abs(b)) else None


def kink_gap_signed(op: ops.Primitive, xs: Sequence[float]) -> float:
    """The record's signed kink measure (``op.kinks_at``), 0 on a kink."""
    return float(op.kinks_at(*xs))


_EDGE_GRID = (-10.0, -5.0, -2.0, -1.5, -1.0, -0.5, -0.1, 0.0, 0.1, 0.5, 1.0, 1.5, 2.0, 5.0, 10.0)
_EDGES: dict[ops.Primitive, list[tuple[float, float]]] = {}


def _domain_edges(op: ops.Primitive) -> list[tuple[float, float]]:
    """The edges of a one-input op's domain within [-10, 10], as (edge, inward direction): where
    its forward rule stops being defined, found by bisection between grid points (cached)."""
    if op in _EDGES:
        return _EDGES[op]

    def defined(t: float) -> bool:
        try:
            return math.isfinite(float(op.forward(ops.FLOAT_MATH, t)))
        except (ArithmeticError, ValueError, TypeError):
            return False

    edges = []
    for lo, hi in zip(_EDGE_GRID, _EDGE_GRID[1:]):
        d_lo, d_hi = defined(lo), defined(hi)
        if d_lo == d_hi:
            continue
        inside, outside = (lo, hi) if d_lo else (hi, lo)
        for _ in range(200):
            mid = (inside + outside) / 2
            if mid in (inside, outside):
                break
            inside, outside = (mid, outside) if defined(mid) else (inside, mid)
        edges.append((inside, 1.0 if outside < inside else -1.0))
    _EDGES[op] = edges
    return edges


class Expression:
    """A random expression DAG over ``n_inputs`` inputs, drawn by :func:`expressions`.

    Calling it with Values (or numbers) builds the graph with the primitives of the table, shared
    subexpressions shared; ``str()`` is the formula (``log(x0*x1 + exp(x2))``) and ``repr()`` a
    lambda, so a shrunk Hypothesis failure reads like math.
    """

    def __init__(self, n_inputs: int, steps: Sequence[tuple[ops.Primitive, tuple[int | float, ...]]]):
        if not steps:
            raise ValueError("an Expression needs at least one operation")
        self.n_inputs = n_inputs
        # Keep only the steps the output (the last step) depends on.
        live, need = [], {n_inputs + len(steps) - 1}
        for i in range(len(steps) - 1, -1, -1):
            if n_inputs + i in need:
                live.append(i)
                need.update(a for a in steps[i][1] if type(a) is int)
        index = {n_inputs + old: n_inputs + new for new, old in enumerate(reversed(live))}
        index.update({i: i for i in range(n_inputs)})
        self.steps: tuple[tuple[ops.Primitive, tuple[int, ...]], ...] = tuple(
            (steps[i][0], tuple(index[a] if type(a) is int else a for a in steps[i][1])) for i in reversed(live)
        )

    @property
    def ops(self) -> tuple[ops.Primitive, ...]:
        """The primitives of the expression, one per node, inputs first."""
        return tuple(op for op, _ in self.steps)

    def __call__(self, *xs: Value | float) -> Value:
        if len(xs) != self.n_inputs:
            raise TypeError(f"this expression takes {self.n_inputs} inputs, got {len(xs)}")
        nodes = list(xs)
        for op, args in self.steps:
            nodes.append(apply(op, *[nodes[a] if type(a) is int else a for a in args]))
        return nodes[-1]

    def __str__(self) -> str:
        texts = [(f"x{i}", 9) for i in range(self.n_inputs)]
        for op, args in self.steps:
            texts.append(format_op(op, [texts[a] if type(a) is int else _leaf_text(a) for a in args]))
        return texts[-1][0]

    def __repr__(self) -> str:
        return f"lambda {', '.join(f'x{i}' for i in range(self.n_inputs))}: {self}"


OpLike = Union[str, ops.Primitive, Callable]

#: The names of the built-in primitives (the table as ops.py defines it); "pow_const" stands for
#: ``x ** c`` with c from :data:`POW_CONST_EXPONENTS`, and a parametrised primitive's name
#: (``leaky_relu``) for its family's example members.
BUILTIN_OPS = (*ops.BUILTIN_NAMES, "pow_const")


def _resolve(op: OpLike) -> list[ops.Primitive]:
    if op == "pow_const":
        return [ops.pow_const(c) for c in POW_CONST_EXPONENTS]
    if isinstance(op, str):
        if op in ops.FAMILIES:
            return ops.FAMILIES[op].members()
        if op not in ops.PRIMITIVES:
            raise ValueError(f"unknown primitive {op!r}; known: {', '.join(sorted(ops.PRIMITIVES))}, pow_const")
        return [ops.PRIMITIVES[op]]
    if isinstance(op, ops.Primitive):
        return [op]
    if callable(op) and isinstance(getattr(op, "op", None), ops.Primitive):  # made by tinygrad_edu.primitive
        return [op.op]
    raise TypeError(f"ops entries must be primitive names, Primitives or functions made by primitive(), got {op!r}")


def _resolve_all(ops_: str | Iterable[OpLike] | None) -> list[ops.Primitive]:
    if ops_ is None:
        ops_ = BUILTIN_OPS
    elif ops_ == "all":
        ops_ = [*ops.PRIMITIVES, "pow_const"]
    elif isinstance(ops_, str) or not isinstance(ops_, Iterable):
        ops_ = [ops_]  # one name or primitive
    table = [p for o in ops_ for p in _resolve(o)]
    if not table:
        raise ValueError("ops is empty: give at least one primitive")
    return list(dict.fromkeys(table))  # drop duplicates, keep the order (Hypothesis shrinks towards the first)


_INPUTS = st.floats(0.2, 3.0) | st.floats(-3.0, -0.2)


def expressions(
    n_inputs: int | st.SearchStrategy[int] = st.integers(1, 3),
    max_ops: int = 6,
    ops: str | Iterable[OpLike] | None = None,
    *,
    near_kinks: bool = False,
    near_domain_edges: bool = False,
) -> st.SearchStrategy[tuple[Expression, tuple[float, ...]]]:
    """Draw ``(fn, inputs)``: a random :class:`Expression` DAG of 1 to ``max_ops`` operations over
    ``n_inputs`` inputs, and a point where every operation of it is smooth.

    ``ops`` chooses the operations: primitive names, ``Primitive`` objects or functions made by
    :func:`tinygrad_edu.primitive`; ``"pow_const"`` stands for ``x ** c`` (c in
    :data:`POW_CONST_EXPONENTS`); the default is every built-in (:data:`BUILTIN_OPS`) and
    ``"all"`` is every primitive in the table, registered custom ones included.

    At the drawn point every operation's inputs are in its domain (:func:`domain_of`), at least
    :data:`KINK_MARGIN` from a kink, and every result within ±:data:`VALUE_BOUND`. An operation
    whose inputs would break that is skipped; a draw left with no operation is rejected.
    Hypothesis shrinks towards fewer operations, the first of ``ops`` and the input ``x0``.

    ``near_kinks=True`` aims at the places where checks go wrong: an operation with a kink (relu
    at 0, a tie of maximum, …) gets, half the time, its input shifted by a constant (``x - c``)
    onto the kink or within :data:`NEAR_KINK_OFFSETS` of it. ``near_domain_edges=True`` does the
    same for one-input operations and the edges of their domain (log and sqrt near 0, asin near
    ±1: found from the forward rule), at :data:`NEAR_EDGE_OFFSETS` inside.
    """
    if not isinstance(max_ops, int) or max_ops < 1:
        raise ValueError(f"max_ops must be an int >= 1, got {max_ops!r}")
    if isinstance(n_inputs, int):
        if n_inputs < 1:
            raise ValueError(f"n_inputs must be >= 1, got {n_inputs}")
        n_inputs = st.just(n_inputs)
    table = _resolve_all(ops)

    @st.composite
    def draw_step(draw, vals: list[float], n_in: int, steep: set[int]):
        """One operation and its inputs (node indices), drawn as one unit so that Hypothesis can
        delete a whole step while shrinking; None if the op is not smooth at those inputs."""
        op = draw(st.sampled_from(table))
        arity = op.arity if op.arity != -1 else draw(st.integers(2, 4))
        # Once there is a step, the first input is the newest node 3 times in 4 (shrinks to a
        # chain of compositions), any node otherwise (shrinks to x0). The other inputs count back
        # from the newest node, so recent results get reused: shared subexpressions.
        newest = len(vals) - 1
        chain = len(vals) > n_in and draw(st.integers(0, 3)) < 3
        first = newest if chain else draw(st.integers(0, newest))
        args = (first, *(newest - draw(st.integers(0, newest)) for _ in range(arity - 1)))
        xs = [vals[a] for a in args]
        target, at_edge = None, False
        if any(a in steep for a in args):
            pass  # already next to a domain edge: a second target there is beyond float64's resolution
        elif near_kinks and has_kinks(op) and getattr(op, "continuous", True) and draw(st.booleans()):
            # (not onto a jump: at floor's integers no derivative can be checked numerically)
            target = _kink_target(op, xs, draw(st.sampled_from(NEAR_KINK_OFFSETS)))
        elif near_domain_edges and op.arity == 1 and draw(st.booleans()):
            edges = _domain_edges(op)
            if edges:
                edge, inward = draw(st.sampled_from(edges))
                target = (0, edge + inward * draw(st.sampled_from(NEAR_EDGE_OFFSETS)))
                at_edge = True
        if target is not None:  # x - c lands on the target; then the op, checked only for being defined
            j, t = target
            c = xs[j] - t
            moved = xs[j] - c
            xs[j] = moved
            out = _defined_at(op, xs)
            if out is None:
                return None
            new_args = tuple(len(vals) if k == j else a for k, a in enumerate(args))
            return [(_SUB, (args[j], c), moved), (op, new_args, out)], at_edge
        out = _smooth_at(op, xs)
        return None if out is None else ([(op, args, out)], False)

    @st.composite
    def draw_expression(draw):
        n = draw(n_inputs)
        point = tuple(draw(_INPUTS) for _ in range(n))
        vals = list(point)
        steps: list = []
        steep: set[int] = set()  # nodes that depend on an input put next to a domain edge
        for _ in range(draw(st.integers(1, max_ops))):
            placed, at_edge = draw(draw_step(vals, n, steep)) or ((), False)
            for step in placed:
                if (at_edge and step is placed[-1]) or any(type(a) is int and a in steep for a in step[1]):
                    steep.add(len(vals))
                steps.append(step[:2])
                vals.append(step[2])
        assume(steps)
        return Expression(n, steps), point

    return draw_expression()


def values(
    min_value: float = -10.0, max_value: float = 10.0, *, label: str = ""
) -> st.SearchStrategy[Value]:
    """Draw leaf ``Value``s with finite data in ``[min_value, max_value]``."""
    return st.floats(min_value, max_value, allow_nan=False, allow_infinity=False).map(lambda x: Value(x, label=label))


def _kinks_clear(out: Value) -> bool:
    return all(
        abs(p.data - k) >= KINK_MARGIN
        for node in topological_order(out) if node.op is not None
        for p in node.parents for k in node.op.kinks
    )


def mlps(
    nin: int | st.SearchStrategy[int] = st.integers(1, 3),
    hidden: st.SearchStrategy[list[int]] = st.lists(st.integers(1, 4), min_size=0, max_size=2),
    activations: Sequence[str] = ("relu", "tanh", "sigmoid"),
    output_activations: Sequence[str] = ("linear", "tanh", "sigmoid"),
) -> st.SearchStrategy:
    """Draw ``(model, x)``: a small :class:`tinygrad_edu.nn.MLP` with one output and weights drawn
    in [-1, 1], and an input ``x`` (a list of ``nin`` floats in [-2, 2]) at which no ReLU's input is
    within :data:`KINK_MARGIN` of 0. ``model(x)`` is then a ``Value`` whose gradients can be
    checked, e.g. ``gradcheck(lambda *xs: model(list(xs)), x)``."""
    from ..nn import MLP  # imported here: nn is optional for the other strategies

    if isinstance(nin, int):
        nin = st.just(nin)

    @st.composite
    def draw_mlp(draw):
        n = draw(nin)
        model = MLP(n, [*draw(hidden), 1], activation=draw(st.sampled_from(list(activations))),
                    output_activation=draw(st.sampled_from(list(output_activations))), seed=0)
        weight = st.floats(-1.0, 1.0)
        model.load_state_dict({name: draw(weight) for name, _ in model.named_parameters()})
        x = [draw(st.floats(-2.0, 2.0)) for _ in range(n)]
        assume(_kinks_clear(model(x)))
        return model, x

    return draw_mlp()


__all__ = [
    "expressions", "values", "mlps", "Expression", "DOMAINS", "BUILTIN_OPS", "domain_of",
    "VALUE_BOUND", "KINK_MARGIN", "POW_CONST_EXPONENTS", "NEAR_KINK_OFFSETS", "NEAR_EDGE_OFFSETS",
]
