"""Property tests of the primitive table: every derivative rule against float64 numerical
derivatives over the op's domain, random compositions, second and third derivatives against
closed forms, and the documented conventions at non-differentiable points."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_edu import Value, grad, ops
from tinygrad_edu.custom import CustomPrimitive
from tinygrad_edu.engine import apply
from tinygrad_edu.testing import gradcheck, gradgradcheck, numerical_gradient
from tinygrad_edu.testing.gradcheck import COMPLEX_STEP_OPS
from tinygrad_edu.testing.strategies import expressions


def reals(lo, hi):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


def magnitudes(lo, hi):
    """Floats with lo <= |x| <= hi, either sign."""
    return reals(lo, hi) | reals(-hi, -lo)


# For each built-in primitive, points over (most of) its domain where the derivative exists:
# wider than the expression strategies' cautious domains, on purpose.
POINTS = {
    "add": st.tuples(reals(-1e3, 1e3), reals(-1e3, 1e3)),
    "sub": st.tuples(reals(-1e3, 1e3), reals(-1e3, 1e3)),
    "mul": st.tuples(reals(-1e3, 1e3), reals(-1e3, 1e3)),
    "div": st.tuples(reals(-1e3, 1e3), magnitudes(1e-2, 1e3)),
    "pow": st.tuples(reals(1e-2, 50.0), reals(-4.0, 4.0)),  # a > 0: both partials exist
    "neg": st.tuples(reals(-1e3, 1e3)),
    "abs": st.tuples(magnitudes(1e-3, 1e3)),
    "exp": st.tuples(reals(-50.0, 50.0)),
    "log": st.tuples(reals(1e-3, 1e3)),
    "sqrt": st.tuples(reals(1e-3, 1e3)),
    "tanh": st.tuples(reals(-20.0, 20.0)),
    "sigmoid": st.tuples(reals(-30.0, 30.0)),
    "softplus": st.tuples(reals(-30.0, 30.0)),
    "binary_cross_entropy_with_logits": st.tuples(reals(-30.0, 30.0), reals(-2.0, 2.0)),
    "relu": st.tuples(magnitudes(1e-3, 1e3)),
    "sin": st.tuples(reals(-100.0, 100.0)),
    "cos": st.tuples(reals(-100.0, 100.0)),
    "sum": st.lists(reals(-1e3, 1e3), min_size=1, max_size=6).map(tuple),
}


def builtin_names():
    """The primitives ops.py itself defines (tests and users may register more)."""
    return sorted(v.name for v in vars(ops).values() if isinstance(v, ops.Primitive) and not isinstance(v, CustomPrimitive))


def test_every_builtin_primitive_has_points_to_check():
    assert set(builtin_names()) - set(POINTS) == set(), "add points for the new primitive to POINTS"


def ops_apply(op, xs):
    return apply(op, *xs)


@pytest.mark.parametrize("name", sorted(POINTS))
def test_primitive_derivative_matches_central_differences(name):
    op = ops.PRIMITIVES[name]

    @given(POINTS[name])
    def check(point):
        assert gradcheck(lambda *xs: ops_apply(op, xs), point)

    check()


@pytest.mark.parametrize("name", sorted(COMPLEX_STEP_OPS))
def test_primitive_derivative_matches_complex_step_to_rounding(name):
    # The complex step has no cancellation error, so the rule must agree to ~1e-12 relative.
    op = ops.PRIMITIVES[name]

    @given(POINTS[name])
    def check(point):
        assert gradcheck(lambda *xs: ops_apply(op, xs), point, method="complex", atol=1e-12, rtol=1e-10)

    check()


@given(a=reals(-10.0, -0.1), b=st.integers(-3, 4))
def test_pow_with_value_exponent_negative_base_integer_exponent(a, b):
    # d/da exists for a negative base and an integer exponent; b is a constant Value here.
    assert gradcheck(lambda x: x ** Value(float(b)), [a])


EXPONENTS = [0.0, 1.0, 2.0, 3.0, -1.0, -2.0, 0.5, 1.5, -0.5, 2.5]


@pytest.mark.parametrize("c", EXPONENTS)
def test_pow_const_derivative(c):
    xs = magnitudes(1e-2, 20.0) if c == int(c) else reals(1e-2, 20.0)

    @given(xs)
    def check(x):
        assert gradcheck(lambda v: v**c, [x])
        assert gradcheck(lambda v: v**c, [x], method="complex", atol=1e-12, rtol=1e-10)

    check()


def test_sum_counts_a_repeated_input_each_time():
    x, y = Value(0.3), Value(-2.0)
    gx, gy = grad(ops_apply(ops.SUM, (x, y, x, x)), [x, y])
    assert (gx.data, gy.data) == (3.0, 1.0)


@given(expressions(n_inputs=st.integers(1, 4), max_ops=8))
def test_random_compositions_match_central_differences(case):
    fn, inputs = case
    assert gradcheck(fn, inputs)


@given(expressions(n_inputs=3, max_ops=8, ops=[o for o in COMPLEX_STEP_OPS] + ["pow_const"]))
def test_random_compositions_match_complex_step(case):
    fn, inputs = case
    assert gradcheck(fn, inputs, method="complex", atol=1e-10, rtol=1e-8)


@given(expressions(n_inputs=st.integers(1, 3), max_ops=6))
def test_random_compositions_second_derivatives(case):
    fn, inputs = case
    assert gradgradcheck(fn, inputs)


# Second derivatives against closed forms, through grad(create_graph=True).


def second_derivative(f, x):
    v = Value(x)
    (d1,) = grad(f(v), [v], create_graph=True)
    (d2,) = grad(d1, [v], allow_unused=True)
    return 0.0 if d2 is None else d2.data


def third_derivative(f, x):
    v = Value(x)
    (d1,) = grad(f(v), [v], create_graph=True)
    (d2,) = grad(d1, [v], create_graph=True)
    (d3,) = grad(d2, [v], allow_unused=True)
    return 0.0 if d3 is None else d3.data


def sig(x):
    return 1.0 / (1.0 + math.exp(-x))


SECOND = {
    "tanh": (lambda v: v.tanh(), lambda x: -2 * math.tanh(x) * (1 - math.tanh(x) ** 2), reals(-5, 5)),
    "sigmoid": (lambda v: v.sigmoid(), lambda x: sig(x) * (1 - sig(x)) * (1 - 2 * sig(x)), reals(-10, 10)),
    "exp": (lambda v: v.exp(), math.exp, reals(-20, 20)),
    "softplus": (lambda v: v.softplus(), lambda x: sig(x) * (1 - sig(x)), reals(-10, 10)),
    "log": (lambda v: v.log(), lambda x: -1 / x**2, reals(0.05, 100)),
    "sqrt": (lambda v: v.sqrt(), lambda x: -0.25 * x**-1.5, reals(0.05, 100)),
    "sin": (lambda v: v.sin(), lambda x: -math.sin(x), reals(-10, 10)),
    "cos": (lambda v: v.cos(), lambda x: -math.cos(x), reals(-10, 10)),
    "cube": (lambda v: v**3, lambda x: 6 * x, reals(-10, 10)),
    "reciprocal": (lambda v: 1.0 / v, lambda x: 2 / x**3, magnitudes(0.1, 10)),
    "relu": (lambda v: v.relu() * v, lambda x: 2.0 if x > 0 else 0.0, magnitudes(0.01, 10)),
    "abs": (lambda v: abs(v) * v, lambda x: 2.0 * math.copysign(1, x), magnitudes(0.01, 10)),
    "neg": (lambda v: -(v * v), lambda x: -2.0, reals(-10, 10)),
}


@pytest.mark.parametrize("name", sorted(SECOND))
def test_second_derivative_closed_form(name):
    f, expected, xs = SECOND[name]

    @given(xs)
    def check(x):
        assert second_derivative(f, x) == pytest.approx(expected(x), rel=1e-9, abs=1e-12)

    check()


THIRD = {
    "tanh": (lambda v: v.tanh(), lambda x: -2 * (1 - math.tanh(x) ** 2) * (1 - 3 * math.tanh(x) ** 2), reals(-5, 5)),
    "sin": (lambda v: v.sin(), lambda x: -math.cos(x), reals(-10, 10)),
    "exp": (lambda v: v.exp(), math.exp, reals(-20, 20)),
    "log": (lambda v: v.log(), lambda x: 2 / x**3, reals(0.05, 100)),
    "cube": (lambda v: v**3, lambda x: 6.0, reals(-10, 10)),
    "sigmoid": (lambda v: v.sigmoid(), lambda x: sig(x) * (1 - sig(x)) * (1 - 6 * sig(x) + 6 * sig(x) ** 2), reals(-10, 10)),
}


@pytest.mark.parametrize("name", sorted(THIRD))
def test_third_derivative_closed_form(name):
    f, expected, xs = THIRD[name]

    @given(xs)
    def check(x):
        assert third_derivative(f, x) == pytest.approx(expected(x), rel=1e-8, abs=1e-12)

    check()


@given(reals(0.1, 10.0), reals(-3.0, 3.0))
def test_pow_second_derivatives_in_both_arguments(a, b):
    x, y = Value(a), Value(b)
    gx, gy = grad(x**y, [x, y], create_graph=True)
    dxx, dxy = grad(gx, [x, y])
    dyx, dyy = grad(gy, [x, y])
    ln = math.log(a)
    approx = lambda v: pytest.approx(v, rel=1e-9, abs=1e-12)  # noqa: E731
    assert dxx.data == approx(b * (b - 1) * a ** (b - 2))
    assert dyy.data == approx(a**b * ln * ln)
    assert dxy.data == approx(a ** (b - 1) * (1 + b * ln))
    assert dyx.data == approx(a ** (b - 1) * (1 + b * ln))


@given(reals(0.1, 10.0), reals(-3.0, 3.0))
def test_pow_third_derivative_in_the_base(a, b):
    assert third_derivative(lambda v: v ** Value(b), a) == pytest.approx(
        b * (b - 1) * (b - 2) * a ** (b - 3), rel=1e-8, abs=1e-12
    )


# The conventions at non-differentiable points, as documented in ops.py.


@pytest.mark.parametrize("make", [lambda v: v.relu(), lambda v: abs(v)], ids=["relu", "abs"])
def test_derivative_at_the_kink_is_zero(make):
    x = Value(0.0)
    make(x).backward()
    assert x.grad == 0.0
    assert grad(make(x), [x])[0].data == 0.0
    assert second_derivative(make, 0.0) == 0.0


def test_numerical_derivative_at_the_kinks_is_not_the_convention():
    # Why the convention needs documenting: both sides average to 1/2 (relu) and 0 (abs).
    assert numerical_gradient(lambda v: v.relu(), [0.0]) == pytest.approx([0.5])
    assert numerical_gradient(lambda v: abs(v), [0.0]) == pytest.approx([0.0])


def test_pow_conventions_at_zero_and_negative_base():
    a, b = Value(0.0), Value(2.0)
    ga, gb = grad(a**b, [a, b])
    assert (ga.data, gb.data) == (0.0, 0.0)  # d/db 0**b = 0 (PyTorch's convention)
    a, b = Value(-2.0), Value(3.0)
    ga, gb = grad(a**b, [a, b])
    assert ga.data == 12.0
    assert math.isnan(gb.data)  # a negative base has a**b only at integer b: no derivative in b


def test_pow_const_zero_exponent_has_zero_derivative_even_at_zero():
    x = Value(0.0)
    (x**0).backward()
    assert x.grad == 0.0


@pytest.mark.parametrize("make, message", [(lambda v: v.sqrt(), "sqrt"), (lambda v: v**0.5, "** 0.5")])
def test_derivative_of_sqrt_at_zero_raises_naming_the_op(make, message):
    x = Value(0.0)
    with pytest.raises(ZeroDivisionError, match=message.replace("*", r"\*")):
        make(x).backward()
