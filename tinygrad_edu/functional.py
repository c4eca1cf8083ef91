"""Forward and reverse mode as functions: ``jvp``, ``vjp``, ``jacobian``, ``hessian``, ``hvp``.

Reverse mode (``backward``, ``grad``, ``vjp``) pushes one output's gradient back to every input:
one sweep per output. Forward mode (``jvp``) pushes one input direction forward to every output:
one sweep per input. Both read the same derivative rules of each primitive (:mod:`tinygrad_edu.ops`),
one per input: for a scalar primitive, input ``i``'s vector-Jacobian product at ``g`` is ``g``
times the partial derivative, so at ``g = t_i`` it is that input's share of the Jacobian-vector
product, and the output's tangent is their sum. No primitive needs a second rule. Reverse mode
runs only the rules on paths to the inputs asked for, forward mode only those of inputs with a tangent.

Forward mode here is dual-number arithmetic carried over the recorded graph: ``f`` runs once on
``Value``s (recording its graph), then every node, in the order it was computed, gets its tangent
from its parents' tangents. The result is the same as carrying a (primal, tangent) pair through
each primitive as it runs; the graph is kept in memory like for ``backward``.

With ``create_graph=True`` the results are ``Value``s with their own graph (built with the same
rules), so everything here nests with ``grad(create_graph=True)`` and with itself to any order:
``hvp`` is forward-over-reverse, ``hessian`` forward-over-reverse too.
"""

from __future__ import annotations

import contextlib
import functools
import numbers
import operator
import sys
from dataclasses import dataclass
from typing import Callable, Sequence, Union

from .engine import VALUE_MATH, Value, _ARITHMETIC_ERRORS, _math_error, enable_grad, grad, topological_order
from .ops import FLOAT_MATH

Number = Union[int, float]
Primals = Union[Value, Number, Sequence[Union[Value, Number]]]

__all__ = ["jvp", "vjp", "jacobian", "hessian", "hvp", "count_rule_calls", "RuleCalls"]


def _as_values(primals: Primals, what: str) -> tuple[tuple[Value, ...], bool]:
    """The primals as Values (numbers become new leaves) and whether they came as a sequence."""
    single = isinstance(primals, (Value, numbers.Real))
    items = (primals,) if single else tuple(primals)
    if not items:
        raise ValueError(f"{what}: primals is empty: give at least one number or Value")
    values = []
    for i, p in enumerate(items):
        if isinstance(p, Value):
            values.append(p)
        elif isinstance(p, numbers.Real) and not isinstance(p, bool):
            values.append(Value(float(p), label=f"x{i}"))
        else:
            raise TypeError(f"{what}: primals must be numbers or Values, got {type(p).__name__}")
    if len(set(values)) != len(values):
        raise ValueError(f"{what}: the same Value is given twice as a primal; give distinct Values")
    return tuple(values), not single


def _as_tangents(tangents, n: int, what: str, name: str = "tangents", per: str = "primal") -> tuple:
    items = (tangents,) if isinstance(tangents, (Value, numbers.Real)) else tuple(tangents)
    if len(items) != n:
        raise ValueError(f"{what}: got {len(items)} {name} for {n} {per}s; give one per {per}")
    for t in items:
        if not isinstance(t, (Value, numbers.Real)) or isinstance(t, bool):
            raise TypeError(f"{what}: {name} must be numbers or Values, got {type(t).__name__}")
    return items


def _seeds(xs: tuple[Value, ...], ts: tuple, create_graph: bool) -> dict:
    """The starting tangent of each primal: a float, or a Value when building a graph."""
    return {x: t if (create_graph and type(t) is Value) else float(t.data if type(t) is Value else t)
            for x, t in zip(xs, ts)}


def _call(f: Callable, xs: tuple[Value, ...], what: str) -> tuple[tuple[Value, ...], bool]:
    """Run f on the Values with grad mode on; its outputs and whether it returned a sequence."""
    with enable_grad():
        result = f(*xs)
    single = isinstance(result, Value)
    outs = (result,) if single else tuple(result) if isinstance(result, (list, tuple)) else None
    if not outs or not all(isinstance(o, Value) for o in outs):
        raise TypeError(f"{what}: f must return a Value or a non-empty sequence of Values, got {result!r:.60}")
    return outs, not single


def _tangent(op, m, node, parents, tangents, create_graph: bool):
    """The tangent of ``node`` from its parents' tangents (None where a parent has none): the
    sum over inputs of the input's rule at ``g = t`` (a scalar's VJP at ``t`` is its JVP), run
    only for inputs that have a tangent."""
    if create_graph:
        out, args = node, parents
    else:
        out, args = node.data, [p.data for p in parents]
    rules = op.vjps
    if len(rules) == 1:
        return rules[0](m, tangents[0], out, *args)
    if len(rules) == 2:  # the common case, unrolled
        (da, db), (ta, tb) = rules, tangents
        if tb is None:
            return da(m, ta, out, *args)
        return db(m, tb, out, *args) if ta is None else da(m, ta, out, *args) + db(m, tb, out, *args)
    if rules:
        terms = [rule(m, t, out, *args) for rule, t in zip(rules, tangents) if t is not None]
    else:  # sum: the partials of its combined rule, times the tangents
        terms = [d * t for d, t in zip(op.vjp(m, 1.0, out, *args), tangents) if t is not None]
    return functools.reduce(operator.add, terms)


def _push_forward(outs: Sequence[Value], seeds: dict, create_graph: bool, order=None) -> list:
    """Forward accumulation: each node's tangent from its parents', in topological order; the
    tangents of ``outs`` (None where an output does not depend on a seeded Value)."""
    order = topological_order(*outs) if order is None else order
    m = VALUE_MATH if create_graph else FLOAT_MATH
    tangent = dict(seeds)
    node = None
    try:
        with enable_grad() if create_graph else contextlib.nullcontext():
            for node in order:
                if node._op is None or node in seeds:
                    continue
                ts = [tangent.get(p) for p in node._prev]
                if all(t is None for t in ts):
                    continue
                tangent[node] = _tangent(node._op, m, node, node._prev, ts, create_graph)
    except _ARITHMETIC_ERRORS as err:
        raise _math_error(node._op, [p.data for p in node._prev], err, "in jvp, the derivative of ") from None
    return [tangent.get(o) for o in outs]


def _as_value(t, create_graph: bool) -> Value:
    if t is None:
        return Value(0.0)
    if type(t) is Value:
        return t if create_graph else Value(t.data)
    return Value(float(t))


def jvp(
    f: Callable[..., Value | Sequence[Value]],
    primals: Primals,
    tangents,
    *,
    create_graph: bool = False,
) -> tuple:
    """Forward mode: ``(outputs, output_tangents)``, the outputs of ``f`` at ``primals`` and their
    directional derivative along ``tangents`` (the Jacobian times the tangent vector), like
    ``torch.func.jvp``.

    ``primals`` and ``tangents`` are a number or ``Value`` each, or equal-length sequences of them;
    ``f`` takes one ``Value`` per primal and returns a ``Value`` or a sequence of them, and the
    output tangents have the same shape. Given Values are used as they are (so ``f``'s graph joins
    theirs); numbers become new leaves. With ``create_graph=True`` the output tangents carry a
    graph (differentiable again by ``grad`` or ``jvp``); otherwise they are new leaves.
    """
    xs, _ = _as_values(primals, "jvp")
    seeds = _seeds(xs, _as_tangents(tangents, len(xs), "jvp"), create_graph)
    outs, many = _call(f, xs, "jvp")
    out_tangents = tuple(_as_value(t, create_graph) for t in _push_forward(outs, seeds, create_graph))
    return (outs, out_tangents) if many else (outs[0], out_tangents[0])


def vjp(f: Callable[..., Value | Sequence[Value]], primals: Primals, *, create_graph: bool = False) -> tuple:
    """Reverse mode: ``(outputs, pullback)``, like ``torch.func.vjp``. ``pullback(cotangents)``
    (one number or Value per output) returns the vector-Jacobian product: one gradient per primal
    (0.0 for a primal the outputs do not use). It can be called any number of times; with
    ``create_graph=True`` its results carry a graph (differentiable again)."""
    xs, many_in = _as_values(primals, "vjp")
    outs, many_out = _call(f, xs, "vjp")

    def pullback(cotangents) -> Value | tuple[Value, ...]:
        cs = _as_tangents(cotangents, len(outs), "vjp pullback", "cotangents", "output")
        gs = grad(outs, xs, grad_outputs=cs, create_graph=create_graph, allow_unused=True)
        result = tuple(Value(0.0) if g is None else g for g in gs)
        return result if many_in else result[0]

    return (outs if many_out else outs[0]), pullback


def _shape(rows: list[list[Value]], many_out: bool, many_in: bool):
    if many_out and many_in:
        return tuple(tuple(r) for r in rows)
    if many_out:
        return tuple(r[0] for r in rows)
    if many_in:
        return tuple(rows[0])
    return rows[0][0]


def jacobian(
    f: Callable[..., Value | Sequence[Value]],
    primals: Primals,
    *,
    mode: str = "auto",
    create_graph: bool = False,
):
    """The Jacobian of ``f`` at ``primals``: ``J[i][j] = d output_i / d primal_j``, like
    ``torch.autograd.functional.jacobian`` (a tuple of rows; a row is a tuple over the primals;
    a single output or a single primal drops that level, both give one ``Value``).

    ``mode="fwd"`` builds it column by column with one forward sweep per primal, ``"rev"`` row by
    row with one reverse sweep per output; ``"auto"`` (the default) chooses forward when there are
    fewer primals than outputs. Both give the same numbers.
    """
    if mode not in ("auto", "fwd", "rev"):
        raise ValueError(f"jacobian: mode must be 'auto', 'fwd' or 'rev', got {mode!r}")
    xs, many_in = _as_values(primals, "jacobian")
    outs, many_out = _call(f, xs, "jacobian")
    if mode == "auto":
        mode = "fwd" if len(xs) < len(outs) else "rev"
    if mode == "rev":
        rows = []
        for o in outs:
            gs = grad(o, xs, create_graph=create_graph, allow_unused=True)
            rows.append([_as_value(g, create_graph) for g in gs])
    else:
        order = topological_order(*outs)
        columns = []
        for x in xs:
            ts = _push_forward(outs, {x: 1.0}, create_graph, order)
            columns.append([_as_value(t, create_graph) for t in ts])
        rows = [list(r) for r in zip(*columns)]
    return _shape(rows, many_out, many_in)


def _gradient_graph(f: Callable[..., Value], primals: Primals, what: str):
    xs, many_in = _as_values(primals, what)
    outs, many_out = _call(f, xs, what)
    if many_out and len(outs) != 1:
        raise ValueError(f"{what}: f must return one Value (a scalar function), got {len(outs)} outputs")
    gs = grad(outs[0], xs, create_graph=True, allow_unused=True)
    return xs, many_in, outs[0], [Value(0.0) if g is None else g for g in gs]


def hessian(f: Callable[..., Value], primals: Primals, *, create_graph: bool = False):
    """The Hessian of the scalar function ``f`` at ``primals``: ``H[i][j] = d²f / dx_i dx_j``
    (a tuple of rows; one primal gives one ``Value``), like ``torch.func.hessian``. Computed
    forward-over-reverse: the gradient's graph (``grad(create_graph=True)``), then one forward
    sweep per primal over it."""
    xs, many_in, _, gs = _gradient_graph(f, primals, "hessian")
    order = topological_order(*gs)
    columns = [[_as_value(t, create_graph) for t in _push_forward(gs, {x: 1.0}, create_graph, order)] for x in xs]
    rows = [list(r) for r in zip(*columns)]  # H is symmetric; rows = columns up to rounding
    return _shape(rows, many_in, many_in)


def hvp(f: Callable[..., Value], primals: Primals, v, *, create_graph: bool = False) -> tuple:
    """``(output, H v)``: the scalar function ``f`` at ``primals`` and its Hessian times the
    vector ``v`` (one number or Value per primal), like ``torch.autograd.functional.hvp``.
    Forward-over-reverse: one forward sweep along ``v`` over the gradient's graph, so it costs a
    few gradient evaluations, never the whole Hessian."""
    xs, many_in, out, gs = _gradient_graph(f, primals, "hvp")
    seeds = _seeds(xs, _as_tangents(v, len(xs), "hvp", "entries in v"), create_graph)
    products = tuple(_as_value(t, create_graph) for t in _push_forward(gs, seeds, create_graph))
    return out, (products if many_in else products[0])


@dataclass(frozen=True)
class RuleCalls:
    """How many times primitive rules ran: ``forward`` rules (computing values) and ``derivative``
    rules, counted by :func:`count_rule_calls`: each per-input rule once per gradient or tangent it
    gives (``mul``'s rule for ``a``, its rule for ``b``), a primitive with only a combined rule
    (``sum``) once per node."""

    forward: int
    derivative: int


def _rule_code() -> tuple[set, set]:
    """The code objects of every rule in the table (families and ``x ** c`` included)."""
    from . import ops

    members = [*ops.PRIMITIVES.values(), ops.pow_const(0.0), ops.pow_const(2.0)]
    members += [m for f in ops.FAMILIES.values() for m in f.members()]
    rules = [rule for op in members for rule in (op.vjp, *op.vjps)]
    declared = {rule.__code__ for rule in rules if not hasattr(rule, "derived_from")}  # not the made ones
    return {op.forward.__code__ for op in members}, declared


def count_rule_calls(thunk: Callable[[], object]) -> tuple[object, RuleCalls]:
    """Run ``thunk()`` and count the primitive rules it applies: ``(result, RuleCalls)``.

    A teaching and benchmarking aid (it uses Python's profiling hook, so the thunk runs several
    times slower): it shows that a forward-mode Jacobian applies each node's derivative rule once
    per input, a reverse-mode one once per output. Inside, ``backward()`` and ``grad()`` call the
    rules one by one rather than run them written out (:mod:`tinygrad_edu.specialize`), and a
    call of a written-out operator counts as its forward rule."""
    from . import specialize
    from .engine import _calling_rules

    forward_code, vjp_code = _rule_code()
    forward_code |= specialize.method_codes()
    counts = [0, 0]

    def profile(frame, event, arg):
        if event == "call":
            code = frame.f_code
            if code in forward_code:
                counts[0] += 1
            elif code in vjp_code:
                counts[1] += 1

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        with _calling_rules():
            result = thunk()
    finally:
        sys.setprofile(previous)
    return result, RuleCalls(*counts)
