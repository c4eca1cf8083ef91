"""HIPS autograd's scalar tests, ported: an independent check of the primitives by another
project's test suite (github.com/HIPS/autograd, tests/test_scalar_ops.py, test_binary_ops.py and
the scalar cases of test_systematic.py).

Their ``check_grads(fun)(x)`` checks forward and reverse mode to second order against numerical
derivatives; here that is ``gradcheck(fun, x, modes=("rev", "fwd"), order=2)``. NumPy names map
to ours (``np.arcsin`` is ``Value.asin``, ``np.mod`` is ``%``); array arguments become every
element of their broadcast, one scalar check each. Not ported, because the engine has no such
primitive and HIPS tests NumPy's own names for them: ``rad2deg``/``degrees`` (a multiplication by
a constant; ``deg2rad``/``radians`` are ported), ``sinc``, ``logaddexp2``, ``fabs`` (is ``abs``), ``square`` (is
``x ** 2``, ported as such), complex inputs and the reductions of test_systematic.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_edu as te
from tinygrad_edu import Value, grad
from tinygrad_edu.testing import gradcheck

npr = np.random.RandomState(1)  # HIPS: npr.seed(1)


def check_grads(fun, modes=("fwd", "rev"), order=2):
    """autograd.test_util.check_grads for scalar functions, element by element for arrays."""
    def check(*args):
        arrays = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in args))
        for point in zip(*(a.ravel().tolist() for a in arrays)):
            assert gradcheck(fun, list(point), modes=tuple(m for m in ("rev", "fwd") if m in modes), order=order)
    return check


def randn():
    return float(npr.randn())


def rand():
    return float(npr.rand())


# tests/test_scalar_ops.py --------------------------------------------------------------------


def test_abs():
    fun = lambda x: 3.0 * abs(x)  # noqa: E731
    check_grads(fun)(1.1)
    check_grads(fun)(-1.1)
    check_grads(fun, order=1)(0.0)


def test_sin():
    check_grads(lambda x: 3.0 * x.sin())(randn())


def test_sign():
    fun = lambda x: 3.0 * x.sign()  # noqa: E731
    check_grads(fun)(1.1)
    check_grads(fun)(-1.1)


UNARY = {  # name: (fun, point), HIPS's points
    "exp": (lambda x: 3.0 * x.exp(), lambda: randn()),
    "log": (lambda x: 3.0 * x.log(), lambda: abs(randn())),
    "log2": (lambda x: 3.0 * x.log2(), lambda: abs(randn())),
    "log10": (lambda x: 3.0 * x.log10(), lambda: abs(randn())),
    "log1p": (lambda x: 3.0 * x.log1p(), lambda: abs(randn())),
    "expm1": (lambda x: 3.0 * x.expm1(), lambda: abs(randn())),
    "exp2": (lambda x: 3.0 * x.exp2(), lambda: abs(randn())),
    "neg": (lambda x: 3.0 * -x, lambda: randn()),
    "cos": (lambda x: 3.0 * x.cos(), lambda: randn()),
    "tan": (lambda x: 3.0 * x.tan(), lambda: randn()),
    "cosh": (lambda x: 3.0 * x.cosh(), lambda: randn()),
    "sinh": (lambda x: 3.0 * x.sinh(), lambda: randn()),
    "tanh": (lambda x: 3.0 * x.tanh(), lambda: randn()),
    "arccos": (lambda x: 3.0 * x.acos(), lambda: 0.1),
    "arcsin": (lambda x: 3.0 * x.asin(), lambda: 0.1),
    "arctan": (lambda x: 3.0 * x.atan(), lambda: 0.2),
    "arccosh": (lambda x: 3.0 * x.acosh(), lambda: randn() ** 2 + 1.2),
    "arcsinh": (lambda x: 3.0 * x.asinh(), lambda: randn()),
    "arctanh": (lambda x: 3.0 * x.atanh(), lambda: 0.2),
    "sqrt": (lambda x: 3.0 * x.sqrt(), lambda: 10.0 * rand()),
    "reciprocal": (lambda x: 1.0 / x, lambda: rand()),
    "negative": (lambda x: -x, lambda: rand()),
    "deg2rad": (lambda x: 3.0 * x.deg2rad(), lambda: 10.0 * rand()),
    "radians": (lambda x: 3.0 * x.deg2rad(), lambda: 10.0 * rand()),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary(name):
    fun, point = UNARY[name]
    check_grads(fun)(point())


def test_power_arg0():
    # the +1.'s here are to avoid regimes where numerical diffs fail
    make_fun = lambda y: lambda x: x**y  # noqa: E731
    fun = make_fun(randn() ** 2 + 1.0)
    check_grads(fun)(rand() ** 2 + 1.0)
    # test y == 0. as a special case, c.f. HIPS autograd #116
    fun = make_fun(0.0)
    x = Value(0.0)
    (d,) = grad(fun(x), x, create_graph=True)
    assert d.data == 0.0
    assert grad(d, x, allow_unused=True)[0] in (None,) or grad(d, x, allow_unused=True)[0].data == 0.0


def test_power_arg1():
    x = randn() ** 2
    check_grads(lambda y: x**y)(rand() ** 2)


def test_power_arg1_zero():
    check_grads(lambda y: 0.0**y)(rand() ** 2)


@pytest.mark.parametrize("name, fun", [
    ("mod", lambda x, y: x % y), ("divide", lambda x, y: x / y), ("multiply", lambda x, y: x * y),
    ("true_divide", lambda x, y: x / y),
])
def test_binary_scalar(name, fun):
    check_grads(fun)(rand(), rand())


# tests/test_binary_ops.py --------------------------------------------------------------------

rs = np.random.RandomState(0)


def arg_pairs():
    scalar = 2.0
    vector = rs.randn(4)
    mat = rs.randn(3, 4)
    mat2 = rs.randn(1, 4)
    allargs = [scalar, vector, mat, mat2]
    for a in allargs:
        for b in allargs:
            yield a, b


def gap_from_zero(x):
    return np.sqrt(np.asarray(x) ** 2 + 0.5)


def test_mul():
    for a, b in arg_pairs():
        check_grads(lambda x, y: x * y)(a, b)


def test_add():
    for a, b in arg_pairs():
        check_grads(lambda x, y: x + y)(a, b)


def test_sub():
    for a, b in arg_pairs():
        check_grads(lambda x, y: x - y)(a, b)


def test_div():
    for a, b in arg_pairs():
        check_grads(lambda x, y: x / y)(gap_from_zero(a), gap_from_zero(b))


def test_mod():
    for a, b in arg_pairs():
        if a is not b:  # Gradient undefined at x == y
            check_grads(lambda x, y: x % y)(gap_from_zero(a), gap_from_zero(b))


def test_pow():
    for a, b in arg_pairs():
        check_grads(lambda x, y: x**y)(np.abs(a) + 1.1, b)


def test_arctan2():
    for a, b in arg_pairs():
        check_grads(te.atan2)(a, b)


def test_hypot():
    for a, b in arg_pairs():
        check_grads(te.hypot, modes=["rev"])(a, b)


def test_comparison_grads():
    # Comparisons give bools (no graph); where() turns one into a number: the gradient is 0.
    compare = [lambda x, y: x < y, lambda x, y: x <= y, lambda x, y: x > y, lambda x, y: x >= y,
               lambda x, y: x.data == y.data, lambda x, y: x.data != y.data]
    for a, b in arg_pairs():
        for pa, pb in zip(*(arr.ravel().tolist() for arr in np.broadcast_arrays(a, b))):
            for cmp in compare:
                x, y = Value(pa), Value(pb)
                out = te.where(cmp(x, y), Value(1.0), Value(0.0)) + 0.0 * (x + y)
                assert [g.data for g in grad(out, [x, y])] == [0.0, 0.0]
                assert out.data == float(cmp(x, y))


# tests/test_systematic.py, the scalar (element-wise) checks ----------------------------------


def transform(lims, x):
    return np.asarray(x) * (lims[1] - lims[0]) + lims[0]


def unary_ufunc_check(fun, lims=(-2, 2)):
    scalar = transform(lims, 0.4)
    vector = transform(lims, npr.rand(2))
    mat = transform(lims, npr.rand(3, 2))
    mat2 = transform(lims, npr.rand(1, 2))
    for arg in (scalar, vector, mat, mat2):
        check_grads(fun)(arg)


SYSTEMATIC_UNARY = {
    "sin": (lambda x: x.sin(), (-2, 2)), "abs": (lambda x: abs(x), (0.1, 4.0)),
    "arccosh": (lambda x: x.acosh(), (1.1, 4.0)), "arcsinh": (lambda x: x.asinh(), (-0.9, 0.9)),
    "arctanh": (lambda x: x.atanh(), (-0.9, 0.9)), "ceil": (lambda x: x.ceil(), (-1.5, 1.5)),
    "cos": (lambda x: x.cos(), (-2, 2)), "cosh": (lambda x: x.cosh(), (-2, 2)), "exp": (lambda x: x.exp(), (-2, 2)),
    "deg2rad": (lambda x: x.deg2rad(), (-2, 2)), "radians": (lambda x: x.deg2rad(), (-2, 2)),
    "exp2": (lambda x: x.exp2(), (-2, 2)), "expm1": (lambda x: x.expm1(), (-2, 2)),
    "fabs": (lambda x: abs(x), (-2, 2)), "floor": (lambda x: x.floor(), (-1.5, 1.5)),
    "log": (lambda x: x.log(), (0.2, 2.0)), "log10": (lambda x: x.log10(), (0.2, 2.0)),
    "log1p": (lambda x: x.log1p(), (0.2, 2.0)), "log2": (lambda x: x.log2(), (0.2, 2.0)),
    "sign": (lambda x: x.sign(), (-2, 2)), "sinh": (lambda x: x.sinh(), (-2, 2)),
    "sqrt": (lambda x: x.sqrt(), (1.0, 3.0)), "square": (lambda x: x**2, (-2, 2)),
    "tan": (lambda x: x.tan(), (-1.1, 1.1)), "tanh": (lambda x: x.tanh(), (-2, 2)),
}


@pytest.mark.parametrize("name", sorted(SYSTEMATIC_UNARY))
def test_systematic_unary(name):
    fun, lims = SYSTEMATIC_UNARY[name]
    unary_ufunc_check(fun, lims)


def binary_ufunc_check(fun, lims_A=(-2, 2), lims_B=(-2, 2), same_args=True):
    scalars = (0.6, 0.6) if same_args else (0.6, 0.7)
    a_args = [scalars[0], npr.rand(2), npr.rand(3, 2), npr.rand(1, 2)]
    b_args = [scalars[1], *(a_args[1:] if same_args else (npr.rand(2), npr.rand(3, 2), npr.rand(1, 2)))]
    for a in a_args:
        for b in b_args:
            check_grads(fun)(transform(lims_A, a), transform(lims_B, b))


SYSTEMATIC_BINARY = {
    "add": (lambda x, y: x + y, {}), "logaddexp": (te.logaddexp, {}),
    "remainder": (lambda x, y: x % y, {"lims_A": (-0.9, 0.9), "lims_B": (0.7, 1.9), "same_args": False}),
    "true_divide": (lambda x, y: x / y, {"lims_B": (0.8, 1.2)}),
    "mod": (lambda x, y: x % y, {"lims_B": (0.8, 2.1), "same_args": False}),
    "true_divide_neg": (lambda x, y: x / y, {"lims_B": (-0.3, -2.0)}),
    "mod_neg": (lambda x, y: x % y, {"lims_B": (-0.3, -2.0), "same_args": False}),
    "op_mul": (lambda x, y: x * y, {}), "op_add": (lambda x, y: x + y, {}), "op_sub": (lambda x, y: x - y, {}),
    "op_mod": (lambda x, y: x % y, {"lims_B": (0.3, 2.0), "same_args": False}),
    "op_mod_neg": (lambda x, y: x % y, {"lims_B": (-0.3, -2.0), "same_args": False}),
}


@pytest.mark.parametrize("name", sorted(SYSTEMATIC_BINARY))
def test_systematic_binary(name):
    fun, kwargs = SYSTEMATIC_BINARY[name]
    binary_ufunc_check(fun, **kwargs)
