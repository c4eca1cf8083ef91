"""Gradient checks: compare the engine's derivatives of any function of Values with an independent
float64 numerical reference, and explain a mismatch with a small table.

``gradcheck`` checks first derivatives, ``gradgradcheck`` second derivatives (through
``grad(create_graph=True)``); ``assert_gradients_match`` is the pytest-friendly form.
"""

from __future__ import annotations

import cmath
import math
import numbers
import random
from dataclasses import dataclass
from typing import Callable, Sequence

from .. import ops
from ..engine import Value, enable_grad, grad, no_grad, topological_order
from . import kinks, localize, numeric
from .formula import format_op, formula

Fn = Callable[..., Value]

#: Built-in primitives whose forward rule also computes correctly on complex numbers, so the
#: complex-step method applies (their records say ``complex_step=True``; ``abs`` is not analytic,
#: custom primitives take floats only).
COMPLEX_STEP_OPS = frozenset(name for name, op in ops.PRIMITIVES.items() if op.complex_step)


class GradcheckError(AssertionError):
    """Raised by :func:`gradcheck` and :func:`gradgradcheck` when the derivatives do not match.
    Its message is a table of the partial derivatives, worst first, then the culprits: the
    primitives whose rules fail their own check (see :mod:`.localize`). ``culprits`` holds those
    as data (:class:`~.localize.Culprit`: the node, the failed local partials, the path to the
    output), ``localization`` the whole :class:`~.localize.Localization`."""

    def __init__(self, message: str, localization=None, short: str | None = None):
        super().__init__(message)
        self.localization = localization
        self._short = short if short is not None else message

    def short(self, width: int = 100) -> str:
        """The message shortened for a terminal: the five worst rows, the main culprit, and no
        line longer than ``width`` characters (the pytest plugin shows this)."""
        return "\n".join(line if len(line) <= width else line[: max(width - 1, 10)] + "…"
                         for line in self._short.splitlines())

    @property
    def culprits(self) -> list:
        """The culprit nodes' records, worst first (empty when no single rule is to blame)."""
        return list(self.localization.culprits) if self.localization is not None else []


# ---------------------------------------------------------------------------------------------
# Evaluation


def _check_inputs(inputs, eps: float | None, atol: float, rtol: float) -> list[float]:
    if isinstance(inputs, (numbers.Real, Value)):
        inputs = (inputs,)
    try:
        items = list(inputs)
    except TypeError:
        raise TypeError(f"inputs must be a sequence of numbers (one per argument of fn), got {type(inputs).__name__}") from None
    if not items:
        raise ValueError("inputs is empty: give one number per argument of fn")
    point = []
    for i, v in enumerate(items):
        v = v.data if isinstance(v, Value) else v
        if not isinstance(v, numbers.Real) or isinstance(v, bool) or not math.isfinite(v):
            raise ValueError(f"inputs[{i}] must be a finite real number, got {v!r:.60}")
        point.append(float(v))
    for name, v, positive in (("eps", eps, True), ("atol", atol, False), ("rtol", rtol, False)):
        if name == "eps" and v is None:
            continue  # automatic
        if not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0 or (positive and v == 0):
            raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}"
                             f"{' (or None: automatic)' if name == 'eps' else ''}, got {v!r}")
    return point


def _call(fn: Fn, xs: list[Value]) -> Value:
    out = fn(*xs)
    if not isinstance(out, Value):
        raise TypeError(
            f"fn must return a Value built from the Values it is given, got {type(out).__name__}: {out!r:.60}"
        )
    return out


def _labels(inputs) -> list[str] | None:
    """The labels of inputs given as labelled Values (used in the report instead of x0, x1, …)."""
    if isinstance(inputs, Value):
        inputs = (inputs,)
    if isinstance(inputs, (list, tuple)) and inputs and all(isinstance(v, Value) and v.label for v in inputs):
        labels = [v.label for v in inputs]
        return labels if len(set(labels)) == len(labels) else None
    return None


def _trace(fn: Fn, point: list[float], labels: list[str] | None = None) -> tuple[list[Value], Value]:
    xs = [Value(v, label=labels[i] if labels else f"x{i}") for i, v in enumerate(point)]
    out = _call(fn, xs)
    if not math.isfinite(out.data):
        raise ValueError(f"fn returned {out.data} at {point}: gradients can only be checked where fn is finite")
    return xs, out


def _rounding_noise(out: Value) -> float:
    """The rounding error of evaluating the recorded graph once in float64, to first order: every
    node's value off by about an ulp, weighted by how much it moves the output (the engine's
    gradient; the rules may be wrong, but this is only a scale). It bounds how small a numerical
    step can usefully be: where a step shows no change in f, the derivative is not known to be 0."""
    computed = [n for n in topological_order(out) if n.op is not None]
    try:
        sensitivities = grad(out, computed, allow_unused=True)
    except (ArithmeticError, ValueError, NotImplementedError):
        return 0.0
    return numeric.rounding_noise([(n.data, 0.0 if g is None else g.data) for n, g in zip(computed, sensitivities)])


def _evaluate(fn: Fn, point: list[float]) -> float:
    """fn at ``point`` on the plain-float path (no graph recorded); raises where fn is undefined."""
    with no_grad():
        return _call(fn, [Value(v) for v in point]).data


def _along(f: Callable[[list[float]], float], point: list[float], i: int) -> Callable[[float], float]:
    """``f`` as a function of input ``i`` alone, the others held at ``point``."""
    def g(t: float) -> float:
        p = list(point)
        p[i] = t
        return f(p)
    return g


def _reference(f: Callable[[float], float], x: float, analytic: float, agrees, eps: float | None,
               kink: tuple[bool, float | None], what: str, noise: float = 0.0) -> numeric.Check:
    """The numerical check of one partial derivative: a fixed step ``eps * max(1, |x|)`` or the
    automatic one, kept clear of nearby kinks, a subgradient check at a kink. ``noise``: f's
    rounding error (:func:`_rounding_noise`)."""
    at_kink, max_step = kink
    step = None if eps is None else eps * max(1.0, abs(x))
    if step is not None and max_step is not None and step > max_step:
        step = None  # the given step would cross a kink: choose one that does not
    try:
        return numeric.check(analytic, f, x, agrees, step=step, at_kink=at_kink, max_step=max_step, noise=noise)
    except numeric.NotDefinedError:
        raise ValueError(
            f"fn is not defined on either side of {what} = {x!r} (at any step down to {numeric.MIN_STEP:g} relative): "
            "check at a point inside fn's domain"
        ) from None


class _ComplexMath:
    """The ops math namespace on complex numbers, for the complex-step derivative. Only the
    primitives whose record says ``complex_step=True`` are replayed with it."""

    exp, log, sqrt = staticmethod(cmath.exp), staticmethod(cmath.log), staticmethod(cmath.sqrt)
    tanh, sin, cos, tan = staticmethod(cmath.tanh), staticmethod(cmath.sin), staticmethod(cmath.cos), staticmethod(cmath.tan)
    asin, acos, atan = staticmethod(cmath.asin), staticmethod(cmath.acos), staticmethod(cmath.atan)
    sinh, cosh, asinh = staticmethod(cmath.sinh), staticmethod(cmath.cosh), staticmethod(cmath.asinh)
    acosh, atanh, log10 = staticmethod(cmath.acosh), staticmethod(cmath.atanh), staticmethod(cmath.log10)

    @staticmethod
    def log2(z):
        return cmath.log(z) / ops.LN2

    @staticmethod
    def exp2(z):
        return cmath.exp(z * ops.LN2)

    @staticmethod
    def log1p(z):
        # log|1 + z| + i arg(1 + z), the real part through log1p so a tiny z keeps its precision.
        x, y = z.real, z.imag
        return complex(0.5 * math.log1p(x * (2.0 + x) + y * y), math.atan2(y, 1.0 + x))

    @staticmethod
    def expm1(z):
        # exp(x + iy) - 1 = expm1(x) cos y - 2 sin²(y/2) + i exp(x) sin y: no cancellation for a tiny z.
        x, y = z.real, z.imag
        return complex(math.expm1(x) * math.cos(y) - 2.0 * math.sin(y / 2) ** 2, math.exp(x) * math.sin(y))

    @staticmethod
    def logaddexp(a, b):
        if a.real < b.real:
            a, b = b, a
        return a + _ComplexMath.log1p(cmath.exp(b - a))

    @staticmethod
    def sigmoid(z):
        if z.real >= 0:
            return 1 / (1 + cmath.exp(-z))
        e = cmath.exp(z)
        return e / (1 + e)

    @staticmethod
    def softplus(z):
        return z + cmath.log(1 + cmath.exp(-z)) if z.real >= 0 else cmath.log(1 + cmath.exp(z))

    @staticmethod
    def relu(z):
        return z if z.real > 0 else 0j

    @staticmethod
    def pow(a, b):
        return a**b

    @staticmethod
    def add_n(xs):
        return sum(xs, 0j)


_COMPLEX_MATH = _ComplexMath()


def _supports_complex_step(op: ops.Primitive) -> bool:
    return op.complex_step


def _complex_step(out: Value, xs: list[Value]) -> list[float]:
    """d out / d x_i = Im f(x + i h e_i) / h, replaying the recorded graph's forward rules on
    complex numbers: no subtraction, so exact to rounding for any tiny h."""
    order = topological_order(out)
    for node in order:
        if node.op is not None and not _supports_complex_step(node.op):
            raise ValueError(
                f"method='complex' needs every operation to accept complex numbers, but {node.op.name!r} "
                "does not; use method='central'"
            )
    h = 1e-20
    result = []
    for x in xs:
        vals: dict[Value, complex] = {}
        for node in order:
            if node.op is None:
                vals[node] = complex(node.data, h) if node is x else complex(node.data)
            else:
                vals[node] = complex(node.op.forward(_COMPLEX_MATH, *[vals[p] for p in node.parents]))
        result.append(vals[out].imag / h)
    return result


# ---------------------------------------------------------------------------------------------
# Verdict


@dataclass
class _Row:
    name: str
    value: float
    analytic: float
    numeric: float
    atol: float
    rtol: float
    check: numeric.Check | None = None  # None: an exact reference (complex step)

    @property
    def abs_err(self) -> float:
        if self.check is not None and self.check.interval is not None:  # distance to the subgradients
            lo, hi = sorted(self.check.interval)
            return abs(self.analytic - min(max(self.analytic, lo), hi))
        return abs(self.analytic - self.numeric)

    @property
    def tolerance(self) -> float:
        return self.atol + self.rtol * abs(self.numeric)

    @property
    def rel_err(self) -> float:
        if self.numeric != 0:
            return self.abs_err / abs(self.numeric)
        return 0.0 if self.abs_err == 0 else math.inf

    @property
    def ok(self) -> bool:
        if self.check is not None:
            return self.check.ok
        return self.abs_err <= self.tolerance  # False for NaN

    @property
    def badness(self) -> float:
        if not self.ok and math.isnan(self.abs_err):
            return math.inf
        return self.abs_err / (self.tolerance or 1e-300)

    def cells(self) -> list[str]:
        c = self.check
        if c is not None and c.interval is not None:
            lo, hi = sorted(c.interval)
            num = f"[{lo:.6g}, {hi:.6g}]"
        else:
            num = f"{self.numeric:.6g}"
        if c is None:
            err, step = "0", "exact"
        else:
            err = f"{c.error:.1g}"
            step = f"{c.step:.2g}" + ("" if c.stencil == "central" else f" {c.stencil}")
        return ["✗" if not self.ok else "", self.name, f"{self.value:.6g}", f"{self.analytic:.6g}", num,
                f"{self.abs_err:.6g}", f"{self.rel_err:.6g}", f"{self.tolerance:.2g}", err, step]


def _table(rows: list[_Row], first: str, max_rows: int = 20) -> str:
    rows = sorted(rows, key=lambda r: r.badness, reverse=True)
    shown = rows[:max_rows]
    head = ["", first, "value", "analytic", "numeric", "abs err", "rel err", "tolerance", "num err", "step"]
    body = [r.cells() for r in shown]
    widths = [max(len(line[c]) for line in [head, *body]) for c in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in [head, *body]]
    if len(rows) > len(shown):
        lines.append(f"... {len(rows) - len(shown)} more, within tolerance" if all(r.ok for r in rows[max_rows:])
                     else f"... {len(rows) - len(shown)} more")
    return "\n".join(lines)


def _agrees(atol: float, rtol: float):
    # The numerical reference is known to within its estimated error: a difference that small
    # cannot be told from it (this only matters where the reference is inaccurate, near edges).
    return lambda a, n, err: abs(a - n) <= atol + rtol * abs(n) + (err if math.isfinite(err) else 0.0)  # False for NaN


@dataclass
class _Composed:
    """The composite check at kinks (see :func:`_composed_conventions`): the local rules'
    ``localization`` and, when some row still fails, why (``note``)."""

    localization: localize.Localization
    note: str = ""


def _composed_conventions(f: Callable[[list[float]], float], point: list[float], out: Value, xs: list[Value],
                          rows: list[_Row], hits: list, agrees, noise: float) -> _Composed | None:
    """Where partials fail at a kink, accept those whose analytic value is what the rules'
    documented conventions compose to: (a) every rule passes its own check (:mod:`.localize`),
    (b) the engine's gradient is the chain rule applied to the rules' values, node by node, and
    (c) the recorded graph's one-sided derivatives (:func:`.kinks.one_sided_chain`) match
    ``fn``'s numerical ones, so the graph is what ``fn`` computes. Such rows are marked ok in
    place (their stencil says ``conventions``). Returns None when no failing row is at a kink."""
    bad = [k for k, r in enumerate(rows) if not r.ok and any(h.at for h in hits[k])]
    if not bad:
        return None
    loc = localize.localize(out, xs)
    if loc.culprits:
        return _Composed(loc)
    nodes = topological_order(out)
    notes = []
    for k in bad:
        row, x = rows[k], xs[k]
        try:
            chain = localize.tangents(nodes, x)[out]
            sides = [kinks.one_sided_chain(nodes, x, d) for d in (-1.0, 1.0)]
            _, max_step = kinks.step_limits(hits[k])
            along = _along(f, point, k)
            measured = [numeric.derivative(along, point[k], side=d, max_step=max_step, noise=noise) for d in (-1, 1)]
        except (ArithmeticError, ValueError):
            notes.append(f"along {x.label}, the one-sided derivatives could not be computed at the kink")
            continue
        if not agrees(row.analytic, chain, 1e-12 * max(1.0, abs(chain))):  # (rounding between the two sums)
            notes.append(f"along {x.label}, the engine's derivative {row.analytic:.6g} is not the chain rule applied to "
                         f"the rules' values ({chain:.6g}): the fault is in how the gradients are combined")
            continue
        left, right = -sides[0][0], sides[1][0]
        if not all(agrees(c, m.value, m.error + e) for c, m, (_, e) in zip((left, right), measured, sides)):
            notes.append(f"along {x.label}, fn's one-sided derivatives [{measured[0].value:.6g}, {measured[1].value:.6g}] "
                         f"are not those of the recorded graph [{left:.6g}, {right:.6g}]: fn computes something the "
                         "graph does not record (e.g. a value taken out with .data and put back)")
            continue
        c = row.check
        error = max(m.error for m in measured)
        row.check = numeric.Check((left + right) / 2, error, c.step if c is not None else 0.0, "conventions", True,
                                  (left, right))
    if notes:
        return _Composed(loc, "; ".join(notes))
    return _Composed(loc)


def _method_text(method: str, eps: float | None) -> str:
    if method == "complex":
        return "complex step"
    return "central differences, " + ("automatic step (Ridders' extrapolation)" if eps is None else f"eps={eps:g}")


def _verdict(kind: str, out: Value, xs: list[Value], rows: list[_Row], first: str, method: str,
             atol: float, rtol: float, raise_exception: bool, hits: list, fn: Fn | None = None,
             order: int = 1, composed: _Composed | None = None, strict_kinks: bool = False,
             diverge: Callable[[], tuple] | None = None) -> bool:
    bad = [r for r in rows if not r.ok]
    if not bad:
        return True
    if not raise_exception:
        return False
    args = ", ".join(x.label for x in xs)
    head = [
        f"{kind} failed for f({args}) = {formula(out, xs)}",
        f"{len(bad)} of {len(rows)} {'partial' if first == 'input' else 'second partial'} derivatives differ "
        f"by more than atol + rtol*|numeric| (atol={atol:g}, rtol={rtol:g}; numeric: {method}):",
        "",
    ]
    notes = []
    near = [h for per_input in hits for h in per_input]
    if near:
        notes += ["", "At or near a kink, where the derivative is a convention: checked as a subgradient, the "
                      "analytic derivative must lie between the one-sided derivatives (shown as [left, right]):"]
        notes += [f"- {n}" for n in kinks.notes(near, xs)[:5]]
    loc = composed.localization if composed is not None else localize.localize(out, xs, order=order)
    if not loc.culprits:
        if composed is not None and composed.note:
            loc.note = "at a kink, " + composed.note
        elif any(h.at for h in near) and strict_kinks:
            loc.note = ("at a kink, the chain rule combined the rules' conventions into a value that is not between "
                        "the one-sided derivatives of the whole (as in relu(x) - relu(-x) at 0, whose conventions "
                        "give 0 where the slope is 1 on both sides): check at a point away from the kink, or "
                        "without strict_kinks=True to accept the value the conventions compose to")
        elif diverge is not None:
            loc.divergence, loc.note = diverge()
        elif fn is not None and order == 1:
            loc.divergence, loc.note = localize.divergence(fn, out, xs, atol=atol, rtol=rtol)
        elif order > 1:
            loc.note = "so the fault is in how the derivative graph is built or combined, not in one rule"
    full = head + [_table(rows, first)] + notes + ["", localize.report(loc, out, xs)]
    short = head + [_table(rows, first, max_rows=5)] + notes[:3] + ["", localize.report(loc, out, xs, max_culprits=1)]
    raise GradcheckError("\n".join(full), loc, "\n".join(short))


# ---------------------------------------------------------------------------------------------
# Public API


def numerical_gradient(fn: Fn, inputs: Sequence[float], *, eps: float | None = None, method: str = "central") -> list[float]:
    """The gradient of ``fn`` at ``inputs`` by float64 numerics: central differences
    (``method="central"``) with step ``eps * max(1, |x|)``, or with ``eps=None`` (the default) an
    automatic step (Ridders' extrapolation, see :mod:`.numeric`); one-sided where only one side
    is in fn's domain, and no step crosses a nearby kink. ``method="complex"`` uses the complex step on the recorded graph."""
    point = _check_inputs(inputs, eps, 0.0, 0.0)
    if method == "central":
        f = lambda p: _evaluate(fn, p)  # noqa: E731
        never = lambda a, n, e: True  # noqa: E731  (only the estimate is wanted)
        xs, out = _trace(fn, point)
        hits, noise = kinks.kinks_along(out, xs), _rounding_noise(out)
        return [_reference(_along(f, point, i), x, 0.0, never, eps, (False, kinks.step_limits(hits[i])[1]), f"x{i}",
                           noise).value for i, x in enumerate(point)]
    if method == "complex":
        return _complex_step(*reversed(_trace(fn, point)))
    raise ValueError(f"method must be 'central' or 'complex', got {method!r}")


def _fast_check(fn: Fn, point: list[float], analytic: list[float], agrees, eps: float | None, noise: float) -> bool:
    """One directional derivative along a fixed pseudo-random unit direction instead of n partials."""
    rng = random.Random(0)
    v = [rng.gauss(0.0, 1.0) for _ in point]
    norm = math.sqrt(math.fsum(c * c for c in v))
    v = [c / norm for c in v]
    along = lambda t: _evaluate(fn, [p + t * c for p, c in zip(point, v)])  # noqa: E731
    a = math.fsum(g * c for g, c in zip(analytic, v))
    try:
        return _reference(along, 0.0, a, agrees, eps, (False, None), "the direction", noise).ok
    except ValueError:
        return False


def gradcheck(
    fn: Fn,
    inputs: Sequence[float],
    *,
    eps: float | None = None,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
    method: str = "central",
    fast_mode: bool = False,
    modes: Sequence[str] = ("rev",),
    order: int = 1,
    strict_kinks: bool = False,
) -> bool:
    """Check the engine's gradient of ``fn`` at ``inputs`` against a float64 numerical one.

    ``fn`` is called with one ``Value`` per number in ``inputs`` (labelled ``x0``, ``x1``, …, or
    as the inputs when they are labelled ``Value``s) and must return a ``Value``. Each partial
    derivative passes when ``|analytic - numeric| <= atol + rtol * |numeric| + error``, where
    ``error`` is the numerical derivative's estimated error (tiny, except near a domain edge).

    The numerical gradient uses central differences on the plain-float path (``fn`` under
    ``no_grad``): it sees exactly what ``fn`` computes, including any accidental use of ``.data``
    that cuts the graph. The step is chosen automatically (``eps=None``: Ridders' extrapolation
    over shrinking steps, whose spread is the estimated numerical error, shown next to the
    tolerance) or fixed as ``eps * max(1, |x|)``. Steps stay clear of nearby kinks; at a kink
    (``relu``, ``abs`` at 0, …) the analytic derivative must lie between the one-sided derivatives
    (a subgradient check); near a domain edge (log, sqrt near 0) a one-sided stencil stays inside.
    Where kinks meet, the rules' conventions may compose into a value outside the whole's
    one-sided derivatives (``relu(x) - relu(-x)`` at 0 gives 0): such a value passes when it is
    exactly what the conventions compose to, that is when every rule passes its own check, the
    engine's gradient is the chain rule applied to the rules' values, and the one-sided derivatives
    of the recorded graph (its kinked operations' directional derivatives composed with the other
    rules) match the numerical ones of ``fn``; ``strict_kinks=True`` fails it instead.
    ``method="complex"`` uses the complex step instead, replaying the recorded graph's forward rules
    on complex numbers: exact to rounding, but only when every op supports complex input (not
    ``abs`` or custom primitives), and blind to a graph that ``fn`` cut.

    ``modes`` chooses how the engine computes the gradient being checked: ``"rev"`` (reverse
    mode, ``grad``) and/or ``"fwd"`` (forward mode, one ``jvp`` per input), like JAX's
    ``check_grads``. ``order=k`` also checks derivatives up to the k-th: each partial derivative,
    computed in each mode with ``create_graph=True``, is itself checked the same way (``order=2``
    checks the Hessian in every combination of modes).

    ``fast_mode=True`` first checks one directional derivative along a pseudo-random direction
    (one numerical derivative instead of one per input) and runs the full check only if it fails.

    Returns True; on a mismatch raises :class:`GradcheckError` with a table of the partial
    derivatives, worst first, notes on kinks, and the culprits: the primitives whose rules fail
    their own check at their node's inputs (or, when every rule passes, where the derivatives
    first part). Returns False instead when ``raise_exception=False``.
    """
    point = _check_inputs(inputs, eps, atol, rtol)
    if method not in ("central", "complex"):
        raise ValueError(f"method must be 'central' or 'complex', got {method!r}")
    modes = (modes,) if isinstance(modes, str) else tuple(modes)
    if not modes or any(mode not in ("rev", "fwd") for mode in modes):
        raise ValueError(f"modes must be a non-empty sequence of 'rev' and 'fwd', got {modes!r}")
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise ValueError(f"order must be an int >= 1, got {order!r}")
    return _gradcheck(fn, point, _labels(inputs), eps, atol, rtol, raise_exception, method, fast_mode, modes, order,
                      "gradcheck", strict_kinks)


def _analytic(out: Value, xs: list[Value], mode: str) -> list[float]:
    """The engine's gradient of ``out``: one reverse sweep (``"rev"``), or one forward sweep per
    input (``"fwd"``, :mod:`tinygrad_edu.functional`'s tangents)."""
    if mode == "rev":
        return [0.0 if g is None else g.data for g in grad(out, xs, allow_unused=True)]
    from ..functional import _push_forward  # forward mode, on the graph already traced

    order = topological_order(out)
    return [0.0 if t is None else float(t) for x in xs for t in _push_forward([out], {x: 1.0}, False, order)]


def _partial(fn: Fn, i: int, mode: str) -> Fn:
    """The function ``d fn / d x_i`` of the same inputs, as a Value with a graph (reverse mode
    through ``grad(create_graph=True)``, forward mode through ``jvp(create_graph=True)``)."""
    from ..functional import jvp

    def derivative(*vs: Value) -> Value:
        with enable_grad():  # also on the plain-float path of the numerical derivative
            if mode == "rev":
                (g,) = grad(_call(fn, list(vs)), vs[i], create_graph=True, allow_unused=True)
            else:
                g = jvp(fn, vs, [1.0 if j == i else 0.0 for j in range(len(vs))], create_graph=True)[1]
            return vs[i] * 0.0 if g is None else g  # 0: fn does not depend on x_i
    return derivative


def _gradcheck(fn: Fn, point: list[float], labels, eps: float | None, atol: float, rtol: float,
               raise_exception: bool, method: str, fast_mode: bool, modes: tuple[str, ...], order: int,
               kind: str, strict_kinks: bool = False) -> bool:
    xs, out = _trace(fn, point, labels)
    hits = kinks.kinks_along(out, xs)
    agrees = _agrees(atol, rtol)
    noise = _rounding_noise(out) if method == "central" else 0.0
    for mode in modes:
        analytic = _analytic(out, xs, mode)
        if fast_mode and method == "central" and not any(h.at for per in hits for h in per):
            if _fast_check(fn, point, analytic, agrees, eps, noise):
                continue
        composed: _Composed | None = None
        if method == "complex":
            rows = [_Row(x.label, x.data, a, n, atol, rtol) for x, a, n in zip(xs, analytic, _complex_step(out, xs))]
        else:
            f = lambda p: _evaluate(fn, p)  # noqa: E731
            checks = [_reference(_along(f, point, i), point[i], analytic[i], agrees, eps, kinks.step_limits(hits[i]),
                                 x.label, noise) for i, x in enumerate(xs)]
            rows = [_Row(x.label, x.data, a, c.value, atol, rtol, c) for x, a, c in zip(xs, analytic, checks)]
            if not strict_kinks:
                composed = _composed_conventions(f, point, out, xs, rows, hits, agrees, noise)
        name = kind if modes == ("rev",) else f"{kind} ({'reverse' if mode == 'rev' else 'forward'} mode)"
        if not _verdict(name, out, xs, rows, "input", _method_text(method, eps), atol, rtol, raise_exception,
                        hits, fn, composed=composed, strict_kinks=strict_kinks):
            return False
    if order > 1:
        for i in range(len(xs)):
            for mode in modes:
                if not _gradcheck(_partial(fn, i, mode), point, labels, eps, atol, rtol, raise_exception, "central",
                                  fast_mode, modes, order - 1, f"{kind} of d/d{xs[i].label} ({mode})", strict_kinks):
                    return False
    return True


def gradgradcheck(
    fn: Fn,
    inputs: Sequence[float],
    *,
    eps: float | None = None,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
) -> bool:
    """Check the engine's second derivatives of ``fn`` (the Hessian, through
    ``grad(create_graph=True)``) against numerical derivatives of its first derivatives.

    Arguments, tolerances, steps and the error are as in :func:`gradcheck`; the table has one row
    per pair of inputs (``d2/dx0dx1``), and the culprits include rules whose own derivative is
    wrong. Run :func:`gradcheck` first: the reference here is built from the (float) first
    derivatives. Custom primitives have no second derivatives and raise ``NotImplementedError``.
    At kinks, the analytic second derivative must lie between the one-sided derivatives of the
    first (no composed conventions are accepted here: ``gradcheck(..., order=2)`` accepts them).
    """
    point = _check_inputs(inputs, eps, atol, rtol)
    xs, out = _trace(fn, point, _labels(inputs))
    first = grad(out, xs, create_graph=True, allow_unused=True)
    analytic = []
    for g in first:
        row = grad(g, xs, allow_unused=True) if g is not None else (None,) * len(xs)
        analytic.append([0.0 if h is None else h.data for h in row])

    memo: dict[tuple[float, ...], list[float]] = {}

    def gradient_at(p: list[float]) -> list[float]:
        key = tuple(p)
        if key not in memo:
            ys = [Value(v) for v in p]
            memo[key] = [0.0 if g is None else g.data for g in grad(_call(fn, ys), ys, allow_unused=True)]
        return memo[key]

    hits = kinks.kinks_along(out, xs)
    agrees = _agrees(atol, rtol)
    rows = []
    noises = [_rounding_noise(g) if g is not None else 0.0 for g in first]
    for i in range(len(xs)):
        for j in range(len(xs)):
            f = _along(lambda p, i=i: gradient_at(p)[i], point, j)
            c = _reference(f, point[j], analytic[i][j], agrees, eps, kinks.step_limits(hits[j]), xs[j].label, noises[i])
            rows.append(_Row(f"d2/d{xs[i].label}d{xs[j].label}", xs[j].data, analytic[i][j], c.value, atol, rtol, c))
    n = len(xs)

    def diverge() -> tuple:
        """Where, in the graph of a failing first derivative, the second derivatives first part."""
        note = "so the fault is in how the derivative graph is built or combined, not in one rule"
        for i in sorted({k // n for k, r in enumerate(rows) if not r.ok}):
            derivative = _partial(fn, i, "rev")
            ys = [Value(v, label=x.label) for v, x in zip(point, xs)]
            try:
                found, note = localize.divergence(derivative, derivative(*ys), ys, atol=atol, rtol=rtol,
                                                  graph=f"the graph of d/d{xs[i].label}")
            except (ArithmeticError, ValueError, NotImplementedError):
                continue
            if found is not None:
                return found, note
        return None, note

    return _verdict("gradgradcheck", out, xs, rows, "derivative", _method_text("central", eps) + " of the gradient",
                    atol, rtol, raise_exception, hits, fn, order=2, diverge=diverge)


def assert_gradients_match(
    fn: Fn,
    inputs: Sequence[float],
    *,
    eps: float | None = None,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    second_order: bool = False,
    fast_mode: bool = False,
    strict_kinks: bool = False,
) -> None:
    """Assert that ``fn``'s gradients at ``inputs`` match the numerical ones (and, with
    ``second_order=True``, its second derivatives too); for use in tests. A mismatch raises
    :class:`GradcheckError`, an ``AssertionError`` whose message is the table of :func:`gradcheck`
    and the culprits. ``strict_kinks`` as in :func:`gradcheck`."""
    __tracebackhide__ = True  # pytest: show the caller's line, not this one
    gradcheck(fn, inputs, eps=eps, atol=atol, rtol=rtol, fast_mode=fast_mode, strict_kinks=strict_kinks)
    if second_order:
        gradgradcheck(fn, inputs, eps=eps, atol=atol, rtol=rtol)


__all__ = [
    "GradcheckError", "gradcheck", "gradgradcheck", "assert_gradients_match", "numerical_gradient", "formula",
    "format_op", "COMPLEX_STEP_OPS",
]
