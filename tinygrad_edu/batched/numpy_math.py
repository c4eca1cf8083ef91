"""The math namespace of :mod:`tinygrad_edu.ops` for NumPy arrays: the rules of the primitive table,
called with :class:`NumpyMath` instead of ``FLOAT_MATH``, work on a whole batch at once.

:data:`NUMPY_MATH` raises where the scalar engine raises; the tape runs :data:`TAPE_MATH`, an
unchecked instance, inside its own ``np.errstate``, and replays a failing group with the scalar
rules to raise the scalar engine's error.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

__all__ = ["NUMPY_MATH", "NumpyMath", "TAPE_MATH", "ARITHMETIC_ERRORS", "RAISE", "WRITES_INTO", "EXPANSIONS", "SMALL", "INLINE",
           "INLINE_NAMES"]

#: What a rule raises on bad input (FloatingPointError is an ArithmeticError).
ARITHMETIC_ERRORS = (ArithmeticError, ValueError)
#: The floating-point errors that raise: domain errors, which the tape replays to name the op and
#: the sample. Overflow is no error (inf, as in the scalar engine); neither is underflow.
RAISE = {"divide": "raise", "invalid": "raise", "over": "ignore", "under": "ignore"}

class NumpyMath:
    """The math namespace of :mod:`tinygrad_edu.ops` for NumPy arrays (elementwise), with the same
    formulas as ``FLOAT_MATH``. With ``checked=True`` (:data:`NUMPY_MATH`), a domain error raises
    ``ValueError``/``ZeroDivisionError`` like the scalar engine instead of producing NaN or inf;
    overflow gives inf, as in the scalar engine. The tape uses an unchecked instance inside its
    own ``np.errstate``."""

    def __init__(self, checked: bool = True):
        self.checked = checked

    def _call(self, name: str, fn: Callable, *args):
        if not self.checked:
            return fn(*args)
        with np.errstate(**RAISE):
            try:
                return fn(*args)
            except FloatingPointError as err:
                raise _numpy_error(name, err) from None

    def exp(self, x):
        return self._call("exp", np.exp, x)

    def log(self, x):
        return self._call("log", np.log, x)

    def sqrt(self, x):
        return self._call("sqrt", np.sqrt, x)

    def pow(self, a, b):
        return self._call("pow", np.power, a, b)

    @staticmethod
    def tanh(x):
        # NumPy's vectorised tanh differs from the C library's (math.tanh) by up to 2 ulps for about
        # a fifth of inputs, and near +-1 the rules' 1 - tanh**2 (or a log(tanh)) magnify that far past
        # 1e-12; the C library's tanh keeps this engine within 1e-12 of the scalar one. (NumPy's exp,
        # log, sin and cos may also differ from the C library's by an ulp, on CPUs where NumPy uses
        # SIMD versions, e.g. AVX-512; the rules do not magnify those past 1e-12, which is what the
        # tests check against the scalar engine.)
        return _elementwise(math.tanh, x)

    sin = staticmethod(np.sin)
    cos = staticmethod(np.cos)
    sign = staticmethod(np.sign)
    where = staticmethod(np.where)
    atan = staticmethod(np.arctan)
    asinh = staticmethod(np.arcsinh)
    floor = staticmethod(np.floor)
    ceil = staticmethod(np.ceil)
    trunc = staticmethod(np.trunc)
    round = staticmethod(np.rint)  # halves to even, like FLOAT_MATH.round and torch.round
    atan2 = staticmethod(np.arctan2)
    hypot = staticmethod(np.hypot)
    maximum = staticmethod(np.maximum)  # NaN if either input is NaN, like FLOAT_MATH's
    minimum = staticmethod(np.minimum)
    floordiv = staticmethod(np.floor_divide)

    # Functions with a domain or a range: checked like log (a domain error or an overflow raises).
    def tan(self, x):
        return self._call("tan", np.tan, x)

    def asin(self, x):
        return self._call("asin", np.arcsin, x)

    def acos(self, x):
        return self._call("acos", np.arccos, x)

    def sinh(self, x):
        return self._call("sinh", np.sinh, x)

    def cosh(self, x):
        return self._call("cosh", np.cosh, x)

    def acosh(self, x):
        return self._call("acosh", np.arccosh, x)

    def atanh(self, x):
        return self._call("atanh", np.arctanh, x)

    def log1p(self, x):
        return self._call("log1p", np.log1p, x)

    def expm1(self, x):
        return self._call("expm1", np.expm1, x)

    def log2(self, x):
        return self._call("log2", np.log2, x)

    def log10(self, x):
        return self._call("log10", np.log10, x)

    def exp2(self, x):
        return self._call("exp2", np.exp2, x)

    def mod(self, a, b):
        return self._call("mod", np.remainder, a, b)  # Python's sign rule, like FLOAT_MATH.mod

    @staticmethod
    def logaddexp(a, b):
        return np.logaddexp(a, b)

    # NumPy has no erf: the C library's, element by element (as tanh above).
    @staticmethod
    def erf(x):
        return _elementwise(math.erf, x)

    @staticmethod
    def erfc(x):
        return _elementwise(math.erfc, x)

    @staticmethod
    def sigmoid(x):
        # Up to SMALL elements: 1 - exp(-softplus(x)) = -expm1(-softplus(x)) (EXPANSIONS), softplus
        # being one logaddexp(0, x): 4 calls. Larger: FLOAT_MATH's two branches in one, since
        # logaddexp and expm1 cost 10-20 ns per element (no SIMD) where exp costs 1: the numerator
        # is 1 where x >= 0 and exp(x) elsewhere (x's sign bit picks the same branch; at -0.0 both
        # give 0.5), over 1 + exp(-|x|), 6 calls. Both within 2 ulps of FLOAT_MATH's formula over
        # the whole range, subnormal results included, with the same NaNs, infinities and signed
        # zeros. A NaN sets the "invalid" flag in the first (logaddexp), as in softplus (the tape
        # then replays the group and gives NaN, as the scalar engine does).
        if getattr(x, "size", 1) <= SMALL:
            s = np.logaddexp(_ZERO, x)
            if not isinstance(s, np.ndarray):  # a scalar: no in-place operations
                return -np.expm1(-s)
            np.negative(s, out=s)
            np.expm1(s, out=s)
            return np.negative(s, out=s)
        e = np.copysign(x, _MINUS_ONE)  # -|x| in one call
        np.exp(e, out=e)
        num = np.where(np.signbit(x), e, _ONE)
        np.add(e, _ONE, out=e)
        return np.divide(num, e, out=num)

    @staticmethod
    def softplus(x):
        # FLOAT_MATH's formula, max(x, 0) + log1p(exp(-|x|)), is NumPy's logaddexp(0, x) (which
        # computes log(e^a + e^b) as max + log1p(exp(-|a - b|))): one call instead of five, up to
        # SMALL elements (a NaN input then sets the "invalid" flag: the tape replays the group, and
        # gives NaN as the scalar engine does). Larger arrays take the five calls, each SIMD.
        if getattr(x, "size", 1) <= SMALL:
            return np.logaddexp(_ZERO, x)
        r = np.copysign(x, _MINUS_ONE)  # -|x|
        np.exp(r, out=r)
        np.log1p(r, out=r)
        return np.add(np.maximum(x, _ZERO), r, out=r)

    @staticmethod
    def relu(x, out=None):
        # x where x > 0, else +0.0 (for -0.0 too); NaN stays NaN: maximum propagates it, and
        # + 0.0 turns -0.0 into 0.0. ``out``: an array of the result's shape to write into.
        r = np.maximum(x, _ZERO, out=out)
        r += _ZERO
        return r

    @staticmethod
    def step(x):
        """1.0 where x > 0 else 0.0 (relu's derivative, 0 at 0 as in PyTorch), NaN at NaN, in one
        call."""
        return np.heaviside(x, _ZERO)

    # Matrix products, for the layers the matmul pass fuses (batched/dense.py). ``out``: a
    # C-contiguous float64 array of the result's shape to write into (see WRITES_INTO).
    @staticmethod
    def matmul(a, b, out=None):
        return np.dot(a, b, out=out)

    @staticmethod
    def matmul_tn(a, b, out=None):
        """``a.T @ b``."""
        return np.dot(a.T, b, out=out)

    @staticmethod
    def matmul_nt(a, b, out=None):
        """``a @ b.T``."""
        return np.dot(a, b.T, out=out)

    @staticmethod
    def add_n(xs):
        total = xs[0]
        for x in xs[1:]:
            total = total + x
        return total


#: The functions NumpyMath computes as a composition of its other functions, written once here: the
#: lowering (batched/lowering.py) records them as that composition, so that a part the step has
#: already computed is reused (the loss's softplus, in sigmoid). NumpyMath's own method makes the
#: same NumPy calls in the same order (in place), so either gives the same bits.
EXPANSIONS = {"sigmoid": lambda m, x: -m.expm1(-m.softplus(x))}  # for arrays of at most SMALL elements

#: NumpyMath's functions that are one NumPy expression on the tape's (unchecked) math: the
#: lowering writes the expression in place of a call of the method, one Python call fewer per
#: operation, the same NumPy calls. ``softplus`` only for arrays of at most SMALL elements.
INLINE = {"matmul": "_dot({}, {})", "matmul_tn": "_dot({}.T, {})", "matmul_nt": "_dot({}, {}.T)",
          "expm1": "_expm1({})", "step": "_heaviside({}, _zero)", "relu": "_add(_maximum({}, _zero), _zero)",
          "softplus": "_logaddexp(_zero, {})"}
#: The calls that take ``out=`` (NumpyMath's, and INLINE's outermost): the generated step writes a
#: parameter's gradient, or a layer's inputs, made by one of them straight into its place instead
#: of copying it there.
WRITES_INTO = frozenset({"matmul", "matmul_tn", "matmul_nt", "relu", "_dot", "_add"})


def _elementwise(fn: Callable[[float], float], x) -> np.ndarray:
    """The C library's ``fn`` applied to every element of ``x``."""
    x = np.asarray(x, dtype=np.float64)
    return np.fromiter(map(fn, x.ravel().tolist()), np.float64, x.size).reshape(x.shape)


# 0-d arrays: as operands of ufuncs they cost less than Python floats, with the same result.
_ZERO, _ONE, _MINUS_ONE = np.array(0.0), np.array(1.0), np.array(-1.0)

#: Arrays of at most this many elements take sigmoid's and softplus's formulas of fewest calls
#: (logaddexp, expm1); larger ones those of more, cheaper calls (SIMD exp and log1p). Measured on
#: 4000 elements: logaddexp 50-80 us against 15 for the five calls; on 32, a call's fixed cost wins.
SMALL = 256


def _numpy_error(name: str, err: FloatingPointError) -> Exception:
    text = str(err)
    if "divide by zero" in text and name == "pow":
        return ZeroDivisionError(f"0.0 cannot be raised to a negative power ({text})")
    return ValueError(f"math domain error: {name} got an input outside its domain ({text})")


#: The checked NumPy namespace (public): raises where the scalar engine raises.
NUMPY_MATH = NumpyMath(checked=True)
TAPE_MATH = NumpyMath(checked=False)  # the tape runs it under np.errstate(all="raise")

#: The names the expressions of INLINE use.
INLINE_NAMES = {"_dot": np.dot, "_expm1": np.expm1, "_heaviside": np.heaviside, "_add": np.add,
                "_maximum": np.maximum, "_logaddexp": np.logaddexp, "_zero": _ZERO}
