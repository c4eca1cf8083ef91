"""The rule table as formulas: a math namespace whose "numbers" are expression trees.

Evaluating a primitive's derivative rule (``op.vjp``) with :data:`SYMBOLIC_MATH` and named symbols
instead of floats writes the rule out, e.g. ``tanh``'s local derivative is ``1 - out * out``; the
pictures and the explorer's chain-rule panel show these, so no second list of derivative formulas
exists anywhere. :func:`local_derivatives` does this for one primitive.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

# Precedence: higher binds tighter.
_WHERE, _CMP, _ADD, _MUL, _NEG, _POW, _ATOM = range(7)
_BINARY = {"+": _ADD, "-": _ADD, "*": _MUL, "/": _MUL, "%": _MUL, "//": _MUL, "**": _POW}


class Expr:
    """A formula node: a symbol, a number, a call ``f(x)``, an operator, a comparison or a
    ``where``. Arithmetic with Exprs and plain numbers builds bigger Exprs (folding numbers,
    dropping ``* 1`` and ``+ 0``); ``str()`` writes it with the fewest parentheses."""

    __slots__ = ("kind", "args")

    def __init__(self, kind: str, *args: Any):
        self.kind, self.args = kind, args

    # building -----------------------------------------------------------------------------------
    def __add__(self, other): return _binary("+", self, other)
    def __radd__(self, other): return _binary("+", other, self)
    def __sub__(self, other): return _binary("-", self, other)
    def __rsub__(self, other): return _binary("-", other, self)
    def __mul__(self, other): return _binary("*", self, other)
    def __rmul__(self, other): return _binary("*", other, self)
    def __truediv__(self, other): return _binary("/", self, other)
    def __rtruediv__(self, other): return _binary("/", other, self)
    def __pow__(self, other): return _binary("**", self, other)
    def __rpow__(self, other): return _binary("**", other, self)
    def __neg__(self): return _neg(self)
    def __abs__(self): return Expr("call", "abs", self)
    def __gt__(self, other): return Expr("cmp", ">", self, _expr(other))
    def __ge__(self, other): return Expr("cmp", ">=", self, _expr(other))
    def __lt__(self, other): return Expr("cmp", "<", self, _expr(other))
    def __le__(self, other): return Expr("cmp", "<=", self, _expr(other))

    def __bool__(self):
        raise TypeError("a symbolic condition has no truth value: rules must branch with m.where")

    # writing ------------------------------------------------------------------------------------
    def __str__(self) -> str:
        return _write(self, frozenset())[0]

    def __repr__(self) -> str:
        return f"Expr({str(self)!r})"


def symbol(name: str) -> Expr:
    return Expr("sym", name)


def _number(x: float) -> Expr:
    return Expr("num", float(x))


def _expr(x) -> Expr:
    return x if isinstance(x, Expr) else _number(x)


def _value(e: Expr) -> float | None:
    return e.args[0] if e.kind == "num" else None


def _binary(op: str, a, b) -> Expr:
    a, b = _expr(a), _expr(b)
    x, y = _value(a), _value(b)
    if x is not None and y is not None:
        try:
            return _number({"+": x + y, "-": x - y, "*": x * y, "/": x / y if y else math.nan, "**": x**y,
                            "%": x % y if y else math.nan, "//": x // y if y else math.nan}[op])
        except (ArithmeticError, ValueError):
            pass
    if op == "*":
        if x == 1.0:
            return b
        if y == 1.0:
            return a
        if x == -1.0:
            return _neg(b)
        if x == 0.0 or y == 0.0:
            return _number(0.0)
        if a.kind == "neg":  # (-a) * b == -(a * b): keeps signs in front
            return _neg(_binary("*", a.args[0], b))
    if op in "+-" and y == 0.0:
        return a
    if op == "+" and x == 0.0:
        return b
    if op == "/" and y == 1.0:
        return a
    if op == "/" and a.kind == "neg":
        return _neg(_binary("/", a.args[0], b))
    if op == "**" and y == 1.0:
        return a
    return Expr("bin", op, a, b)


def _neg(a) -> Expr:
    a = _expr(a)
    if a.kind == "num":
        return _number(-a.args[0])
    if a.kind == "neg":
        return a.args[0]
    return Expr("neg", a)


def _format_number(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    return repr(x)


def _write(e: Expr, known: frozenset) -> tuple[str, int]:
    """The text of ``e`` and its precedence; ``known`` holds conditions known to be true here
    (inside ``where(c, x, y)``'s first branch, c), so a repeated test is not written twice."""
    kind = e.kind
    if kind == "sym":
        return e.args[0], _ATOM
    if kind == "num":
        x = e.args[0]
        return _format_number(x), (_NEG if x < 0 else _ATOM)
    if kind == "call":
        return f"{e.args[0]}({', '.join(_write(a, known)[0] for a in e.args[1:])})", _ATOM
    if kind == "neg":
        inner = e.args[0]
        if inner.kind == "bin" and inner.args[0] in "*/":  # -(a / b) is -a / b: negation commutes
            return "-" + _write(inner, known)[0], _MUL
        return "-" + _wrap(inner, known, _NEG), _NEG
    if kind == "bin":
        op, a, b = e.args
        prec = _BINARY[op]
        if op == "**":  # right-associative: 2 ** 3 ** 2 == 2 ** (3 ** 2)
            return f"{_wrap(a, known, prec + 1)} ** {_wrap(b, known, _NEG)}", prec
        # left-associative; the right side needs parentheses at equal precedence unless + or *
        right = prec if op in "+*" else prec + 1
        return f"{_wrap(a, known, prec)} {op} {_wrap(b, known, right)}", prec
    if kind == "cmp":
        op, a, b = e.args
        return f"{_wrap(a, known, _ADD)} {op} {_wrap(b, known, _ADD)}", _CMP
    if kind == "where":
        cond, a, b = e.args
        test = str(cond)
        if test in known:
            return _write(a, known)
        return f"{_wrap(a, known | {test}, _CMP)} if {test} else {_wrap(b, known, _WHERE)}", _WHERE
    raise ValueError(f"unknown formula node {kind!r}")


def _wrap(e: Expr, known: frozenset, at_least: int) -> str:
    text, prec = _write(e, known)
    return text if prec >= at_least else f"({text})"


class SymbolicMath:
    """The math namespace of :mod:`tinygrad_edu.ops` for formulas: every function returns an
    :class:`Expr` written as a call (``cos(x)``); ``where`` keeps both branches."""

    @staticmethod
    def _call(name: str):
        return staticmethod(lambda *xs: Expr("call", name, *[_expr(x) for x in xs]))

    exp, log, sqrt = _call("exp"), _call("log"), _call("sqrt")
    sin, cos, tanh = _call("sin"), _call("cos"), _call("tanh")
    sigmoid, softplus, relu = _call("sigmoid"), _call("softplus"), _call("relu")
    step, sign = _call("step"), _call("sign")  # step(x): 1 where x > 0 else 0; sign(x): -1, 0 or 1
    tan, asin, acos, atan = _call("tan"), _call("asin"), _call("acos"), _call("atan")
    sinh, cosh, asinh, acosh, atanh = _call("sinh"), _call("cosh"), _call("asinh"), _call("acosh"), _call("atanh")
    log1p, expm1, log2, log10, exp2 = _call("log1p"), _call("expm1"), _call("log2"), _call("log10"), _call("exp2")
    erf, erfc, floor, ceil = _call("erf"), _call("erfc"), _call("floor"), _call("ceil")
    trunc, round = _call("trunc"), _call("round")
    atan2, hypot, logaddexp = _call("atan2"), _call("hypot"), _call("logaddexp")
    maximum, minimum = _call("maximum"), _call("minimum")
    del _call

    @staticmethod
    def mod(a, b) -> Expr:
        return _binary("%", a, b)

    @staticmethod
    def floordiv(a, b) -> Expr:
        return _binary("//", a, b)

    @staticmethod
    def pow(a, b) -> Expr:
        return _binary("**", a, b)

    @staticmethod
    def where(cond, a, b) -> Expr:
        return Expr("where", cond, _expr(a), _expr(b))

    @staticmethod
    def add_n(xs) -> Expr:
        total = _number(0.0)
        for x in xs:
            total = total + x
        return total


SYMBOLIC_MATH = SymbolicMath()


def input_names(op, arity: int) -> list[str]:
    """The names a rule gives its inputs (``a, b`` for ``mul``, ``x`` for ``tanh``), read from the
    derivative rule's signature; a rule over any number of inputs (``sum``) names them ``x1, x2, ...``."""
    params = list(inspect.signature(op.vjp).parameters.values())[3:]  # after m, g, out
    if params and params[0].kind is inspect.Parameter.VAR_POSITIONAL:
        return [f"x{i + 1}" for i in range(arity)]
    return [p.name for p in params]


def local_derivatives(op, arity: int, names: list[str] | None = None, out: str = "out") -> list[str]:
    """The local derivative ``d out / d input`` of ``op`` for each of its ``arity`` inputs, as
    formulas: the derivative rule evaluated with an upstream gradient of 1 and symbols for the
    numbers, e.g. ``['b', 'a']`` for ``mul``. The symbols are the rule's own names (see
    :func:`input_names`) and ``out``, or the given ``names`` (say, of a graph's nodes)."""
    if names is None:
        names = input_names(op, arity)
    try:
        local = op.vjp(SYMBOLIC_MATH, _number(1.0), symbol(out), *[symbol(n) for n in names])
        return [str(_expr(d)) for d in local]
    except (TypeError, ValueError, ArithmeticError, AttributeError, NotImplementedError):
        # A rule written on plain floats (a custom primitive's user function) has no formula to show.
        return [f"∂{op.name}/∂{n}" for n in names]


__all__ = ["Expr", "SymbolicMath", "SYMBOLIC_MATH", "symbol", "input_names", "local_derivatives"]
