"""The primitive table: each primitive's forward rule and derivative rule, written once.

A rule is written against a small math namespace ``m`` (``m.exp``, ``m.log``, ``m.where``, …)
that plain floats (:data:`FLOAT_MATH`, here), ``Value`` graphs (``engine.VALUE_MATH``, for
higher-order gradients) and NumPy arrays (``batched.NUMPY_MATH``) all provide, so the scalar
engine, ``grad(create_graph=True)``, the batched engine and the graph labels share one rule.

Derivative rules are vector-Jacobian products: ``vjp(m, g, out, *xs)`` gets the output's
gradient ``g``, the output ``out`` and the inputs ``xs``, and returns one gradient per input.

Conventions at non-differentiable points follow PyTorch: ``relu'(0) = 0`` and ``abs'(0) = 0``.
Every rule gives the same answer in every namespace: a result too large for a float is ``inf``
(IEEE 754, as in NumPy and PyTorch; never ``OverflowError``), an input outside the domain raises
like Python's ``math`` module, and a NaN input gives NaN (values and derivatives alike).
"""

from __future__ import annotations

import math
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True, eq=False)
class Primitive:
    """One operation of the engine: its forward rule, its derivative rule (a VJP) and its name.

    ``symbol`` is set for infix operators (``"+"``), ``prefix`` for unary prefix ones (``"-"``)
    and ``postfix`` for a constant power (``" ** 2"``); otherwise the operation prints as a call, ``name(x)``. ``domain`` says in words where the
    forward rule is defined (used in error messages and docs); ``kinks`` lists the inputs where
    the derivative is a convention rather than a limit (``relu`` and ``abs`` at 0);
    ``exponent`` is ``c`` on the ``x ** c`` primitives made by :func:`pow_const`, ``base`` is
    ``c`` on the ``c ** x`` primitives made by :func:`rpow_const`.
    """

    name: str
    arity: int  # number of inputs; -1 for n-ary (sum)
    forward: Callable[..., Any]
    vjp: Callable[..., tuple]
    symbol: str | None = None
    prefix: str | None = None
    postfix: str | None = None
    domain: str = "all real numbers"
    kinks: tuple[float, ...] = ()
    exponent: float | None = None  # set on the x ** c family (pow_const): c
    base: float | None = None  # set on the c ** x family (rpow_const): c
    doc: str = field(default="", compare=False)

    def format(self, *args: str) -> str:
        """Render this operation applied to already-formatted arguments, e.g. ``(x * w)``."""
        if self.symbol is not None:
            return "(" + f" {self.symbol} ".join(args) + ")"
        if self.prefix is not None:
            return f"{self.prefix}{args[0]}"
        if self.postfix is not None:
            return f"({args[0]}{self.postfix})"
        if self.base is not None:
            return f"({_number_label(self.base)} ** {args[0]})"
        return f"{self.name}({', '.join(args)})"

    def __repr__(self) -> str:
        return f"Primitive({self.name!r})"


class FloatMath:
    """The math namespace for plain Python floats: ``math``-module domain errors, but a result
    too large for a float is ``inf`` (as ``*`` gives) rather than ``OverflowError``, and NaN
    propagates through every function, ``relu`` and the derivatives ``step`` and ``sign`` too."""

    sin = staticmethod(math.sin)
    cos = staticmethod(math.cos)
    tanh = staticmethod(math.tanh)

    @staticmethod
    def exp(x: float) -> float:
        try:
            return math.exp(x)
        except OverflowError:  # x > 709.78...
            return math.inf

    @staticmethod
    def log(x: float) -> float:
        if x <= 0.0:
            raise ValueError("math domain error: log needs an input > 0")
        return math.log(x)

    @staticmethod
    def sqrt(x: float) -> float:
        if x < 0.0:
            raise ValueError("math domain error: sqrt needs an input >= 0")
        return math.sqrt(x)

    @staticmethod
    def pow(a: float, b: float) -> float:
        # Python raises ZeroDivisionError for 0.0 ** -1 itself, with the message we want.
        try:
            r = a**b
        except OverflowError:  # |a ** b| > 1.8e308: inf, negative for a negative base and an odd b
            return -math.inf if a < 0.0 and b % 2.0 == 1.0 else math.inf
        if type(r) is complex:  # a negative base and a fractional exponent
            raise ValueError("math domain error: a negative base needs an integer exponent")
        return r

    @staticmethod
    def sigmoid(x: float) -> float:
        # Two branches so that exp never overflows: exp of a non-positive number is at most 1.
        if x >= 0.0:
            return 1.0 / (1.0 + math.exp(-x))
        e = math.exp(x)
        return e / (1.0 + e)

    @staticmethod
    def softplus(x: float) -> float:
        # log(1 + exp(x)) as max(x, 0) + log(1 + exp(-|x|)): exp never overflows, no precision lost.
        return max(x, 0.0) + math.log1p(math.exp(-abs(x)))

    @staticmethod
    def relu(x: float) -> float:
        return 0.0 if x <= 0.0 else x  # NaN is not <= 0: it passes through

    @staticmethod
    def step(x: float) -> float:
        """1 where x > 0 else 0: relu's derivative (0 at 0, as in PyTorch; NaN at NaN)."""
        return 1.0 if x > 0.0 else (0.0 if x <= 0.0 else math.nan)

    @staticmethod
    def sign(x: float) -> float:
        """abs's derivative: -1, 0 or 1 (0 at 0, as in PyTorch; NaN at NaN)."""
        return 1.0 if x > 0.0 else (-1.0 if x < 0.0 else (0.0 if x == 0.0 else math.nan))

    @staticmethod
    def where(cond: bool, a: Any, b: Any) -> Any:
        return a if cond else b

    @staticmethod
    def add_n(xs) -> float:
        total = 0.0
        for x in xs:
            total += x
        return total


FLOAT_MATH = FloatMath()


def _log_or(m, a, fill):
    """log(a) where a > 0, else ``fill``; safe to evaluate on every input (no domain error)."""
    positive = a > 0
    return m.where(positive, m.log(m.where(positive, a, 1.0)), fill)


def _is_zero(x):
    """x == 0 in every namespace (a Value's == is identity; NaN is not zero)."""
    return abs(x) <= 0


def _pow_vjp(m, g, out, a, b):
    # d/da a**b = b * a**(b-1). At (0, 0) that is 0 * 0**-1, and PyTorch gives 0 (a**0 is
    # constant): there the exponent b - 1 becomes 1 - 1, so 0 * 0**0 = 0 and 0**-1 never runs.
    # d/db a**b = a**b * log(a): defined for a > 0; 0 at a == 0 (PyTorch's convention),
    # NaN for a negative base, where a**b is only defined at integer b, and for a NaN base.
    da = b * m.pow(a, m.where(abs(a) + abs(b) <= 0, 1.0, b) - 1)  # both zero (NaN is not)
    dlog = _log_or(m, a, m.where(_is_zero(a), 0.0, math.nan))
    return g * da, g * out * dlog


def _number_label(c: float) -> str:
    return repr(int(c)) if c == int(c) and abs(c) < 1e15 else repr(c)


def _pow_const(c: float) -> Primitive:
    if c == 0:
        vjp = lambda m, g, out, x: (g * 0.0,)  # noqa: E731  (x**0 is constant; avoids 0 * x**-1)
    else:
        vjp = lambda m, g, out, x: (g * c * m.pow(x, c - 1.0),)  # noqa: E731
    label = _number_label(c)
    return Primitive(
        f"**{label}", 1, lambda m, x: m.pow(x, c), vjp, postfix=f" ** {label}", exponent=c,
        domain="x > 0 unless the exponent is an integer",
    )


def _rpow_const(c: float) -> Primitive:
    # d/dx c**x = c**x * log(c); 0 for c == 0 and NaN for c < 0, as d/db of POW. The base is a
    # number, not a node, so its own partial (b * c**(b-1), infinite at c == 0 and 0 < b < 1) is
    # never computed: (0.0 ** y).backward() gives y.grad == 0.
    dlog = math.log(c) if c > 0 else (0.0 if c == 0 else math.nan)
    return Primitive(
        f"{_number_label(c)}**", 1, lambda m, x: m.pow(c, x), lambda m, g, out, x: (g * out * dlog,),
        base=c, domain="x >= 0 if the base is 0; an integer x if the base is negative",
    )


# The table. Each entry: forward, then its derivative right beside it.
ADD = Primitive("add", 2, lambda m, a, b: a + b, lambda m, g, out, a, b: (g, g), symbol="+")
SUB = Primitive("sub", 2, lambda m, a, b: a - b, lambda m, g, out, a, b: (g, -g), symbol="-")
MUL = Primitive("mul", 2, lambda m, a, b: a * b, lambda m, g, out, a, b: (g * b, g * a), symbol="*")
DIV = Primitive(
    "div", 2, lambda m, a, b: a / b, lambda m, g, out, a, b: (g / b, -g * out / b), symbol="/",
    domain="b != 0",
)
POW = Primitive(
    "pow", 2, lambda m, a, b: m.pow(a, b), _pow_vjp, symbol="**",
    domain="a > 0, or a < 0 with an integer b, or a == 0 with b >= 0",
)
NEG = Primitive("neg", 1, lambda m, x: -x, lambda m, g, out, x: (-g,), prefix="-")
ABS = Primitive("abs", 1, lambda m, x: abs(x), lambda m, g, out, x: (g * m.sign(x),), kinks=(0.0,))
EXP = Primitive("exp", 1, lambda m, x: m.exp(x), lambda m, g, out, x: (g * out,), domain="x <= 709.78")
LOG = Primitive("log", 1, lambda m, x: m.log(x), lambda m, g, out, x: (g / x,), domain="x > 0")
SQRT = Primitive(
    "sqrt", 1, lambda m, x: m.sqrt(x), lambda m, g, out, x: (g / (2.0 * out),), domain="x >= 0 (x > 0 for the derivative)"
)
TANH = Primitive("tanh", 1, lambda m, x: m.tanh(x), lambda m, g, out, x: (g * (1.0 - out * out),))
SIGMOID = Primitive("sigmoid", 1, lambda m, x: m.sigmoid(x), lambda m, g, out, x: (g * out * (1.0 - out),))
SOFTPLUS = Primitive("softplus", 1, lambda m, x: m.softplus(x), lambda m, g, out, x: (g * m.sigmoid(x),))
RELU = Primitive("relu", 1, lambda m, x: m.relu(x), lambda m, g, out, x: (g * m.step(x),), kinks=(0.0,))
SIN = Primitive("sin", 1, lambda m, x: m.sin(x), lambda m, g, out, x: (g * m.cos(x),))
COS = Primitive("cos", 1, lambda m, x: m.cos(x), lambda m, g, out, x: (-g * m.sin(x),))
SUM = Primitive("sum", -1, lambda m, *xs: m.add_n(xs), lambda m, g, out, *xs: (g,) * len(xs))
# nn.binary_cross_entropy_with_logits's graph, softplus(z) - z * t, as one primitive: the same
# forward, and the derivative sigmoid(z) - t in one rule (the batched engine's fuse_logit_bce pass).
BCE_WITH_LOGITS = Primitive(
    "binary_cross_entropy_with_logits", 2, lambda m, z, t: m.softplus(z) - z * t,
    lambda m, g, out, z, t: (g * (m.sigmoid(z) - t), -g * z),
)

#: Every primitive by name. Custom primitives are added with :func:`register`.
PRIMITIVES: dict[str, Primitive] = {
    p.name: p for p in (ADD, SUB, MUL, DIV, POW, NEG, ABS, EXP, LOG, SQRT, TANH, SIGMOID, SOFTPLUS, RELU, SIN, COS, SUM,
                        BCE_WITH_LOGITS)
}


class _Interned:
    """One primitive per constant, made on demand: the same instance for a constant as long as any
    graph (or anyone) holds it, and the ``size`` most recently made kept alive besides, so identity
    comparisons hold and memory stays bounded however many distinct constants a program uses."""

    def __init__(self, make: Callable[[float], Primitive], size: int = 256):
        self._make, self._size = make, size
        self.recent: dict[float, Primitive] = {}  # the lookup of the hot path; oldest dropped first
        self._live: weakref.WeakValueDictionary[float, Primitive] = weakref.WeakValueDictionary()

    def miss(self, c: float) -> Primitive:
        """The primitive for ``c`` when it is not among the recent ones."""
        c = float(c)
        op = self._live.get(c)
        if op is None:
            op = self._live[c] = self._make(c)
        recent = self.recent
        recent[c] = op
        if len(recent) > self._size:
            del recent[next(iter(recent))]
        return op

    def __len__(self) -> int:
        return len(self._live)


_POW_CONST_CACHE = _Interned(_pow_const)
_RPOW_CONST_CACHE = _Interned(_rpow_const)
_POW_CONST_RECENT, _RPOW_CONST_RECENT = _POW_CONST_CACHE.recent, _RPOW_CONST_CACHE.recent


def pow_const(c: float) -> Primitive:
    """The primitive ``x ** c`` for a constant number ``c`` (one instance per exponent while in use)."""
    op = _POW_CONST_RECENT.get(c)
    return op if op is not None else _POW_CONST_CACHE.miss(c)


def rpow_const(c: float) -> Primitive:
    """The primitive ``c ** x`` for a constant number ``c`` (one instance per base while in use)."""
    op = _RPOW_CONST_RECENT.get(c)
    return op if op is not None else _RPOW_CONST_CACHE.miss(c)


def register(op: Primitive) -> Primitive:
    """Add ``op`` to :data:`PRIMITIVES`; a name already taken by a different primitive is an error."""
    existing = PRIMITIVES.get(op.name)
    if existing is not None and existing is not op:
        raise ValueError(f"a primitive named {op.name!r} already exists; choose another name")
    PRIMITIVES[op.name] = op
    return op
