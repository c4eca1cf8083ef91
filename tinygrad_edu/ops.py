"""The primitive table: each primitive's forward rule and derivative rule, written once.

A rule is written against a small math namespace ``m`` (``m.exp``, ``m.log``, ``m.where``, …)
that plain floats (:data:`FLOAT_MATH`, here), ``Value`` graphs (``engine.VALUE_MATH``, for
higher-order gradients) and NumPy arrays (``batched.NUMPY_MATH``) all provide, so the scalar
engine, ``grad(create_graph=True)``, the batched engine and the graph labels share one rule.

Derivative rules are vector-Jacobian products: ``vjp(m, g, out, *xs)`` gets the output's
gradient ``g``, the output ``out`` and the inputs ``xs``, and returns one gradient per input.

Conventions at non-differentiable points follow PyTorch: ``relu'(0) = 0`` and ``abs'(0) = 0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True, eq=False)
class Primitive:
    """One operation of the engine: its forward rule, its derivative rule (a VJP) and its name.

    ``symbol`` is set for infix operators (``"+"``), ``prefix`` for unary prefix ones (``"-"``)
    and ``postfix`` for a constant power (``" ** 2"``); otherwise the operation prints as a call, ``name(x)``. ``domain`` says in words where the
    forward rule is defined (used in error messages and docs); ``kinks`` lists the inputs where
    the derivative is a convention rather than a limit (``relu`` and ``abs`` at 0);
    ``exponent`` is ``c`` on the ``x ** c`` primitives made by :func:`pow_const`.
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
    doc: str = field(default="", compare=False)

    def format(self, *args: str) -> str:
        """Render this operation applied to already-formatted arguments, e.g. ``(x * w)``."""
        if self.symbol is not None:
            return "(" + f" {self.symbol} ".join(args) + ")"
        if self.prefix is not None:
            return f"{self.prefix}{args[0]}"
        if self.postfix is not None:
            return f"({args[0]}{self.postfix})"
        return f"{self.name}({', '.join(args)})"

    def __repr__(self) -> str:
        return f"Primitive({self.name!r})"


class FloatMath:
    """The math namespace for plain Python floats, with ``math``-module error behaviour."""

    exp = staticmethod(math.exp)
    sin = staticmethod(math.sin)
    cos = staticmethod(math.cos)
    tanh = staticmethod(math.tanh)

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
        if a == 0.0 and b < 0.0:
            raise ZeroDivisionError("0.0 cannot be raised to a negative power")
        if a < 0.0 and b != math.floor(b):
            raise ValueError("math domain error: a negative base needs an integer exponent")
        return a**b

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
        return x if x > 0.0 else 0.0

    @staticmethod
    def step(x: float) -> float:
        """1 where x > 0 else 0: relu's derivative (0 at 0, as in PyTorch)."""
        return 1.0 if x > 0.0 else 0.0

    @staticmethod
    def sign(x: float) -> float:
        """abs's derivative: -1, 0 or 1 (0 at 0, as in PyTorch)."""
        return 1.0 if x > 0.0 else (-1.0 if x < 0.0 else 0.0)

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


def _pow_vjp(m, g, out, a, b):
    # d/db a**b = a**b * log(a): defined for a > 0; 0 at a == 0 (PyTorch's convention),
    # NaN for a negative base, where a**b is only defined at integer b.
    dlog = _log_or(m, a, m.where(a < 0, math.nan, 0.0))
    return g * b * m.pow(a, b - 1), g * out * dlog


def _pow_const(c: float) -> Primitive:
    if c == 0:
        vjp = lambda m, g, out, x: (g * 0.0,)  # noqa: E731  (x**0 is constant; avoids 0 * x**-1)
    else:
        vjp = lambda m, g, out, x: (g * c * m.pow(x, c - 1.0),)  # noqa: E731
    label = repr(int(c)) if c == int(c) and abs(c) < 1e15 else repr(c)
    return Primitive(
        f"**{label}", 1, lambda m, x: m.pow(x, c), vjp, postfix=f" ** {label}", exponent=c,
        domain="x > 0 unless the exponent is an integer",
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

_POW_CONST_CACHE: dict[float, Primitive] = {}


def pow_const(c: float) -> Primitive:
    """The primitive ``x ** c`` for a constant number ``c`` (one cached instance per exponent)."""
    op = _POW_CONST_CACHE.get(c)
    if op is None:
        op = _POW_CONST_CACHE[c] = _pow_const(float(c))
    return op


def register(op: Primitive) -> Primitive:
    """Add ``op`` to :data:`PRIMITIVES`; a name already taken by a different primitive is an error."""
    existing = PRIMITIVES.get(op.name)
    if existing is not None and existing is not op:
        raise ValueError(f"a primitive named {op.name!r} already exists; choose another name")
    PRIMITIVES[op.name] = op
    return op
