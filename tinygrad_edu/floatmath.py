"""The math namespace of the primitive rules (:mod:`tinygrad_edu.ops`) for plain Python floats.

Every function behaves like Python's ``math`` module for the domain: an input outside it raises
``ValueError`` (or ``ZeroDivisionError`` for a division by zero) saying what the input must be.
A result too large for a float is ``inf`` (never ``OverflowError``), and the results are the C
library's.
"""

from __future__ import annotations

import math
from typing import Any


def _domain(name: str, need: str) -> ValueError:
    return ValueError(f"math domain error: {name} needs an input {need}")


def _finite_or_same(rounding):
    """A rounding function of ``math`` that returns a float, and passes inf and NaN through
    (``math.floor(inf)`` raises; ``torch.floor(inf)`` is inf)."""
    def fn(x: float) -> float:
        return float(rounding(x)) if math.isfinite(x) else x
    fn.__name__ = rounding.__name__
    return staticmethod(fn)


def _outside_raises(fn, outside, need: str):
    """``fn`` that raises ``ValueError`` saying what the input must be where ``outside(x)``."""
    name = fn.__name__

    def checked(x: float) -> float:
        if outside(x):
            raise _domain(name, need)
        return fn(x)
    checked.__name__ = name
    return staticmethod(checked)


def _inf_on_overflow(fn, odd: bool = False, name: str = ""):
    """``fn`` with ``inf`` (``-inf`` for an odd function of a negative input) where the result is
    too large for a float, instead of ``OverflowError``."""
    def safe(x: float) -> float:
        try:
            return fn(x)
        except OverflowError:
            return math.copysign(math.inf, x) if odd else math.inf
    safe.__name__ = name or fn.__name__
    return staticmethod(safe)


class FloatMath:
    """The math namespace for plain Python floats: ``math``-module domain errors, but a result
    too large for a float is ``inf`` (as ``*`` gives) rather than ``OverflowError``, and NaN
    propagates through every function, ``relu`` and the derivatives ``step`` and ``sign`` too."""

    sin = staticmethod(math.sin)
    cos = staticmethod(math.cos)
    tan = staticmethod(math.tan)
    tanh = staticmethod(math.tanh)
    atan = staticmethod(math.atan)
    asinh = staticmethod(math.asinh)
    erf = staticmethod(math.erf)
    erfc = staticmethod(math.erfc)
    atan2 = staticmethod(math.atan2)
    hypot = staticmethod(math.hypot)
    floor = _finite_or_same(math.floor)
    ceil = _finite_or_same(math.ceil)
    trunc = _finite_or_same(math.trunc)

    @staticmethod
    def round(x: float) -> float:
        """Round to the nearest integer, halves to even (like ``torch.round`` and ``numpy.rint``)."""
        return round(x, 0)

    # A result too large for a float is inf (never OverflowError).
    exp = _inf_on_overflow(math.exp)  # x > 709.78...
    sinh = _inf_on_overflow(math.sinh, odd=True)  # |x| > 710.47...
    cosh = _inf_on_overflow(math.cosh)
    expm1 = _inf_on_overflow(math.expm1)  # x > 709.78...
    exp2 = _inf_on_overflow(lambda x: math.pow(2.0, x), name="exp2")  # x >= 1024

    # Functions with a domain: an input outside it raises; NaN is not outside, it gives NaN.
    log = _outside_raises(math.log, lambda x: x <= 0.0, "> 0")
    log2 = _outside_raises(math.log2, lambda x: x <= 0.0, "> 0")
    log10 = _outside_raises(math.log10, lambda x: x <= 0.0, "> 0")
    log1p = _outside_raises(math.log1p, lambda x: x <= -1.0, "> -1")
    sqrt = _outside_raises(math.sqrt, lambda x: x < 0.0, ">= 0")
    asin = _outside_raises(math.asin, lambda x: x < -1.0 or x > 1.0, "in [-1, 1]")
    acos = _outside_raises(math.acos, lambda x: x < -1.0 or x > 1.0, "in [-1, 1]")
    acosh = _outside_raises(math.acosh, lambda x: x < 1.0, ">= 1")
    atanh = _outside_raises(math.atanh, lambda x: x <= -1.0 or x >= 1.0, "in (-1, 1)")

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
    def mod(a: float, b: float) -> float:
        """``a % b`` with Python's sign rule (the result has the sign of ``b``), like ``torch.remainder``."""
        return a % b  # ZeroDivisionError for b == 0

    @staticmethod
    def floordiv(a: float, b: float) -> float:
        return a // b

    @staticmethod
    def maximum(a: float, b: float) -> float:
        """The larger of ``a`` and ``b``; NaN if either is NaN (like ``torch.maximum``)."""
        return a if a >= b else (b if b > a else a + b)

    @staticmethod
    def minimum(a: float, b: float) -> float:
        """The smaller of ``a`` and ``b``; NaN if either is NaN (like ``torch.minimum``)."""
        return a if a <= b else (b if b < a else a + b)

    @staticmethod
    def logaddexp(a: float, b: float) -> float:
        """log(exp(a) + exp(b)) without overflow: max(a, b) + log1p(exp(-|a - b|))."""
        if a == b:  # also a = b = ±inf, where a - b is NaN
            return a + math.log(2.0)
        big = a if a > b else b
        return big + math.log1p(math.exp(-abs(a - b)))

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
        """-1, 0 or 1 (0 at 0, as in PyTorch; NaN at NaN): abs's derivative, and the sign primitive."""
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

__all__ = ["FloatMath", "FLOAT_MATH"]
