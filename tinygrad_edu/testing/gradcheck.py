"""Gradient checks: compare the engine's derivatives of any function of Values with an independent
float64 numerical reference, and explain a mismatch with a small table.

``gradcheck`` checks first derivatives, ``gradgradcheck`` second derivatives (through
``grad(create_graph=True)``); ``assert_gradients_match`` is the pytest-friendly form.
"""

from __future__ import annotations

import cmath
import math
import numbers
from dataclasses import dataclass
from typing import Callable, Sequence

from .. import ops
from ..engine import Value, grad, no_grad, topological_order

Fn = Callable[..., Value]

#: Built-in primitives whose forward rule also computes correctly on complex numbers, so the
#: complex-step method applies (``abs`` is not analytic; custom primitives take floats only).
COMPLEX_STEP_OPS = frozenset(
    ["add", "sub", "mul", "div", "pow", "neg", "exp", "log", "sqrt", "tanh", "sigmoid", "softplus", "relu", "sin", "cos", "sum"]
)


class GradcheckError(AssertionError):
    """Raised by :func:`gradcheck` and :func:`gradgradcheck` when the derivatives do not match.
    Its message is a table of the partial derivatives, worst first."""


# ---------------------------------------------------------------------------------------------
# Printing a graph as math


_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "**": 4}
_ATOM = 9


def format_op(op: ops.Primitive, args: Sequence[tuple[str, int]]) -> tuple[str, int]:
    """Render ``op`` applied to already-rendered ``(text, precedence)`` arguments as readable math
    with only the parentheses that are needed: ``x0*x1 + exp(x2)``. Returns ``(text, precedence)``."""
    if op.symbol is not None and len(args) == 2:
        prec = _PRECEDENCE.get(op.symbol, 1)
        (a, pa), (b, pb) = args
        right_assoc = op.symbol == "**"
        if pa < prec or (right_assoc and pa == prec):
            a = f"({a})"
        if pb < prec or (not right_assoc and pb == prec and op.symbol in "-/"):
            b = f"({b})"
        sep = f" {op.symbol} " if prec == 1 else op.symbol
        return f"{a}{sep}{b}", prec
    if op.prefix is not None:
        (a, pa), = args
        bare = pa >= 3 and not a.startswith(op.prefix)  # -(-x), not --x
        return (f"{op.prefix}{a}" if bare else f"{op.prefix}({a})"), 3
    if op.postfix is not None:
        (a, pa), = args
        return (f"{a}" if pa > 4 else f"({a})") + op.postfix.replace(" ", ""), 4
    return f"{op.name}({', '.join(a for a, _ in args)})", _ATOM


def _leaf_text(v: float) -> tuple[str, int]:
    text = repr(v)
    return text, (3 if text.startswith("-") else _ATOM)


def formula(out: Value, inputs: Sequence[Value] = (), max_chars: int = 300) -> str:
    """The graph that ends in ``out`` as one line of math, e.g. ``log(x0*x1 + exp(x2))``.

    Each of ``inputs`` prints as its label (or ``x0``, ``x1``, … when unlabelled), other leaves as
    their number. Shared subexpressions are written out each time; a part longer than
    ``max_chars`` is shown as ``…``."""
    names = {x: (x.label or f"x{i}") for i, x in enumerate(inputs)}
    text: dict[Value, tuple[str, int]] = {}
    for node in topological_order(out):
        if node.op is None:
            text[node] = (names[node], _ATOM) if node in names else (
                (node.label, _ATOM) if node.label else _leaf_text(node.data)
            )
        else:
            s, p = format_op(node.op, [text[p] for p in node.parents])
            text[node] = ("…", _ATOM) if len(s) > max_chars else (s, p)
    return text[out][0]


# ---------------------------------------------------------------------------------------------
# Evaluation


def _check_inputs(inputs, eps: float, atol: float, rtol: float) -> list[float]:
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
        if not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0 or (positive and v == 0):
            raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {v!r}")
    return point


def _call(fn: Fn, xs: list[Value]) -> Value:
    out = fn(*xs)
    if not isinstance(out, Value):
        raise TypeError(
            f"fn must return a Value built from the Values it is given, got {type(out).__name__}: {out!r:.60}"
        )
    return out


def _trace(fn: Fn, point: list[float]) -> tuple[list[Value], Value]:
    xs = [Value(v, label=f"x{i}") for i, v in enumerate(point)]
    out = _call(fn, xs)
    if not math.isfinite(out.data):
        raise ValueError(f"fn returned {out.data} at {point}: gradients can only be checked where fn is finite")
    return xs, out


def _evaluate(fn: Fn, point: list[float], what: str) -> float:
    """fn at ``point`` on the plain-float path (no graph recorded)."""
    try:
        with no_grad():
            return _call(fn, [Value(v) for v in point]).data
    except (ArithmeticError, ValueError) as err:
        raise ValueError(
            f"fn is not defined at {what} (a point the numerical derivative needs): {err}. "
            "Check at a point further inside fn's domain, or pass a smaller eps."
        ) from None


def _steps(point: list[float], eps: float) -> list[float]:
    return [eps * max(1.0, abs(v)) for v in point]


def _central(f: Callable[[list[float], str], object], point: list[float], eps: float) -> list:
    """Central differences (f(x + h) - f(x - h)) / 2h of ``f`` in each input; ``f`` may return a
    float or a list of floats."""
    result = []
    for i, h in enumerate(_steps(point, eps)):
        up, down = list(point), list(point)
        up[i] += h
        down[i] -= h
        span = up[i] - down[i]  # the step actually taken, after rounding
        fu, fd = f(up, f"x{i} = {point[i]!r} + {h:.3g}"), f(down, f"x{i} = {point[i]!r} - {h:.3g}")
        if isinstance(fu, list):
            result.append([(a - b) / span for a, b in zip(fu, fd)])
        else:
            result.append((fu - fd) / span)
    return result


class _ComplexMath:
    """The ops math namespace on complex numbers, for the complex-step derivative."""

    exp, log, sqrt = staticmethod(cmath.exp), staticmethod(cmath.log), staticmethod(cmath.sqrt)
    tanh, sin, cos = staticmethod(cmath.tanh), staticmethod(cmath.sin), staticmethod(cmath.cos)

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
    if op.exponent is not None:  # ops.pow_const(c)
        return op is ops.pow_const(op.exponent)
    return op.name in COMPLEX_STEP_OPS and ops.PRIMITIVES.get(op.name) is op


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

    @property
    def abs_err(self) -> float:
        return abs(self.analytic - self.numeric)

    @property
    def rel_err(self) -> float:
        if self.numeric != 0:
            return self.abs_err / abs(self.numeric)
        return 0.0 if self.abs_err == 0 else math.inf

    @property
    def ok(self) -> bool:
        return self.abs_err <= self.atol + self.rtol * abs(self.numeric)  # False for NaN

    @property
    def badness(self) -> float:
        if not self.ok and math.isnan(self.abs_err):
            return math.inf
        return self.abs_err / (self.atol + self.rtol * abs(self.numeric) or 1e-300)


def _table(rows: list[_Row], first: str, max_rows: int = 20) -> str:
    rows = sorted(rows, key=lambda r: r.badness, reverse=True)
    shown = rows[:max_rows]
    head = ["", first, "value", "analytic", "numeric", "abs err", "rel err"]
    body = [
        ["✗" if not r.ok else "", r.name] + [f"{v:.6g}" for v in (r.value, r.analytic, r.numeric, r.abs_err, r.rel_err)]
        for r in shown
    ]
    widths = [max(len(line[c]) for line in [head, *body]) for c in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in [head, *body]]
    if len(rows) > len(shown):
        lines.append(f"... {len(rows) - len(shown)} more, within tolerance" if all(r.ok for r in rows[max_rows:])
                     else f"... {len(rows) - len(shown)} more")
    return "\n".join(lines)


def _kink_notes(out: Value, xs: list[Value], steps: list[float]) -> list[str]:
    """Operations with a kink (relu, abs at 0) whose input is at the kink, or close enough that the
    numerical steps cross it."""
    notes = []
    for node in topological_order(out):
        op = node.op
        if op is None or not op.kinks:
            continue
        for p in node.parents:
            for k in op.kinks:
                dist = abs(p.data - k)
                sens = grad(p, xs, allow_unused=True) if p.op is not None or p in xs else (None,)
                if all(s is None for s in sens):
                    continue  # a constant: no input moves it
                reach = sum(abs(s.data) * h for s, h in zip(sens, steps) if s is not None)
                if dist <= 2 * reach:
                    where = "at" if dist == 0 else f"within {dist:.3g} of"
                    notes.append(
                        f"{op.name}'s input {formula(p, xs, 80)} = {p.data:.6g} is {where} its kink at {k:g}, "
                        f"where the derivative is a convention{_convention(op, k)} while the numerical derivative "
                        "averages both sides. Check at a point away from the kink."
                    )
    return notes


def _convention(op: ops.Primitive, k: float) -> str:
    if op.arity != 1:
        return ""
    try:
        d = op.vjp(ops.FLOAT_MATH, 1.0, op.forward(ops.FLOAT_MATH, k), k)[0]
    except (ArithmeticError, ValueError, TypeError):
        return ""
    return f" ({op.name}'({k:g}) = {d:g})"


def _verdict(kind: str, out: Value, xs: list[Value], rows: list[_Row], first: str, method: str,
             eps: float, atol: float, rtol: float, raise_exception: bool) -> bool:
    bad = [r for r in rows if not r.ok]
    if not bad:
        return True
    if not raise_exception:
        return False
    args = ", ".join(x.label for x in xs)
    parts = [
        f"{kind} failed for f({args}) = {formula(out, xs)}",
        f"{len(bad)} of {len(rows)} {'partial' if first == 'input' else 'second partial'} derivatives differ "
        f"by more than atol + rtol*|numeric| (atol={atol:g}, rtol={rtol:g}; numeric: {method}):",
        "",
        _table(rows, first),
    ]
    notes = _kink_notes(out, xs, _steps([x.data for x in xs], eps))
    if notes:
        parts += ["", "Near a kink, so the mismatch may be expected:"] + [f"- {n}" for n in notes[:5]]
    raise GradcheckError("\n".join(parts))


# ---------------------------------------------------------------------------------------------
# Public API


def numerical_gradient(fn: Fn, inputs: Sequence[float], *, eps: float = 1e-6, method: str = "central") -> list[float]:
    """The gradient of ``fn`` at ``inputs`` by float64 numerics: central differences with step
    ``eps * max(1, |x|)`` (``method="central"``), or the complex step on the recorded graph
    (``method="complex"``)."""
    point = _check_inputs(inputs, eps, 0.0, 0.0)
    if method == "central":
        return _central(lambda p, what: _evaluate(fn, p, what), point, eps)
    if method == "complex":
        return _complex_step(*reversed(_trace(fn, point)))
    raise ValueError(f"method must be 'central' or 'complex', got {method!r}")


def gradcheck(
    fn: Fn,
    inputs: Sequence[float],
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
    method: str = "central",
) -> bool:
    """Check the engine's gradient of ``fn`` at ``inputs`` against a float64 numerical one.

    ``fn`` is called with one ``Value`` per number in ``inputs`` (labelled ``x0``, ``x1``, …) and
    must return a ``Value``. Each partial derivative passes when
    ``|analytic - numeric| <= atol + rtol * |numeric|``.

    The numerical gradient uses central differences on the plain-float path (``fn`` under
    ``no_grad``), step ``eps * max(1, |x|)``: it sees exactly what ``fn`` computes, including any
    accidental use of ``.data`` that cuts the graph. ``method="complex"`` uses the complex step
    instead, replaying the recorded graph's forward rules on complex numbers: exact to rounding
    (no cancellation), but available only when every op supports complex input (not ``abs`` or
    custom primitives), and blind to a graph that ``fn`` cut.

    Returns True; on a mismatch raises :class:`GradcheckError` with a table of the partial
    derivatives, worst first, and a note when an input sits at a kink (``relu``, ``abs`` at 0),
    or returns False when ``raise_exception=False``.
    """
    point = _check_inputs(inputs, eps, atol, rtol)
    if method not in ("central", "complex"):
        raise ValueError(f"method must be 'central' or 'complex', got {method!r}")
    xs, out = _trace(fn, point)
    analytic = [0.0 if g is None else g.data for g in grad(out, xs, allow_unused=True)]
    if method == "complex":
        numeric, how = _complex_step(out, xs), "complex step"
    else:
        numeric, how = _central(lambda p, what: _evaluate(fn, p, what), point, eps), f"central differences, eps={eps:g}"
    rows = [_Row(x.label, x.data, a, n, atol, rtol) for x, a, n in zip(xs, analytic, numeric)]
    return _verdict("gradcheck", out, xs, rows, "input", how, eps, atol, rtol, raise_exception)


def gradgradcheck(
    fn: Fn,
    inputs: Sequence[float],
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
) -> bool:
    """Check the engine's second derivatives of ``fn`` (the Hessian, through
    ``grad(create_graph=True)``) against central differences of its first derivatives.

    Arguments, tolerances and the error are as in :func:`gradcheck`; the table has one row per
    pair of inputs (``d2/dx0dx1``). Run :func:`gradcheck` first: the reference here is built from
    the (float) first derivatives. Custom primitives have no second derivatives and raise
    ``NotImplementedError``.
    """
    point = _check_inputs(inputs, eps, atol, rtol)
    xs, out = _trace(fn, point)
    first = grad(out, xs, create_graph=True, allow_unused=True)
    analytic = []
    for g in first:
        row = grad(g, xs, allow_unused=True) if g is not None else (None,) * len(xs)
        analytic.append([0.0 if h is None else h.data for h in row])

    def gradient_at(p: list[float], what: str) -> list[float]:
        try:
            ys = [Value(v) for v in p]
            return [0.0 if g is None else g.data for g in grad(_call(fn, ys), ys, allow_unused=True)]
        except (ArithmeticError, ValueError) as err:
            raise ValueError(
                f"fn's gradient is not defined at {what} (a point the numerical derivative needs): {err}. "
                "Check at a point further inside fn's domain, or pass a smaller eps."
            ) from None

    columns = _central(gradient_at, point, eps)  # columns[j][i] = d/dx_j (df/dx_i)
    rows = [
        _Row(f"d2/d{xs[i].label}d{xs[j].label}", xs[j].data, analytic[i][j], columns[j][i], atol, rtol)
        for i in range(len(xs)) for j in range(len(xs))
    ]
    return _verdict("gradgradcheck", out, xs, rows, "derivative", f"central differences of the gradient, eps={eps:g}",
                    eps, atol, rtol, raise_exception)


def assert_gradients_match(
    fn: Fn,
    inputs: Sequence[float],
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    second_order: bool = False,
) -> None:
    """Assert that ``fn``'s gradients at ``inputs`` match the numerical ones (and, with
    ``second_order=True``, its second derivatives too); for use in tests. A mismatch raises
    :class:`GradcheckError`, an ``AssertionError`` whose message is the table of :func:`gradcheck`."""
    __tracebackhide__ = True  # pytest: show the caller's line, not this one
    gradcheck(fn, inputs, eps=eps, atol=atol, rtol=rtol)
    if second_order:
        gradgradcheck(fn, inputs, eps=eps, atol=atol, rtol=rtol)


__all__ = [
    "GradcheckError", "gradcheck", "gradgradcheck", "assert_gradients_match", "numerical_gradient", "formula",
    "format_op", "COMPLEX_STEP_OPS",
]
