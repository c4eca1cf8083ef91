"""Property tests of the primitive table: every derivative rule against float64 numerical
derivatives over the op's domain, random compositions, second and third derivatives against
closed forms, and the documented conventions at non-differentiable points."""

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tinygrad_edu as te
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
    "mod": st.tuples(reals(-1e2, 1e2), magnitudes(0.1, 50.0)),
    "tan": st.tuples(reals(-1.5, 1.5)),
    "deg2rad": st.tuples(reals(-1e3, 1e3)),
    "asin": st.tuples(reals(-0.99, 0.99)),
    "acos": st.tuples(reals(-0.99, 0.99)),
    "atan": st.tuples(reals(-1e3, 1e3)),
    "sinh": st.tuples(reals(-20.0, 20.0)),
    "cosh": st.tuples(reals(-20.0, 20.0)),
    "asinh": st.tuples(reals(-1e3, 1e3)),
    "acosh": st.tuples(reals(1.01, 1e3)),
    "atanh": st.tuples(reals(-0.99, 0.99)),
    "log1p": st.tuples(reals(-0.99, 1e3)),
    "expm1": st.tuples(reals(-50.0, 50.0)),
    "log2": st.tuples(reals(1e-3, 1e3)),
    "log10": st.tuples(reals(1e-3, 1e3)),
    "exp2": st.tuples(reals(-50.0, 50.0)),
    "erf": st.tuples(reals(-6.0, 6.0)),
    "erfc": st.tuples(reals(-6.0, 6.0)),
    "floor": st.tuples(reals(-1e3, 1e3)),
    "ceil": st.tuples(reals(-1e3, 1e3)),
    "trunc": st.tuples(reals(-1e3, 1e3)),
    "round": st.tuples(reals(-1e3, 1e3)),
    "sign": st.tuples(magnitudes(1e-3, 1e3)),
    "atan2": st.tuples(reals(-1e2, 1e2), reals(-1e2, 1e2)),
    "hypot": st.tuples(reals(-1e2, 1e2), reals(-1e2, 1e2)),
    "maximum": st.tuples(reals(-1e3, 1e3), reals(-1e3, 1e3)),
    "minimum": st.tuples(reals(-1e3, 1e3), reals(-1e3, 1e3)),
    "logaddexp": st.tuples(reals(-50.0, 50.0), reals(-50.0, 50.0)),
    "silu": st.tuples(reals(-30.0, 30.0)),
    "logsigmoid": st.tuples(reals(-30.0, 30.0)),
    "softsign": st.tuples(reals(-1e3, 1e3)),
    "leaky_relu": st.tuples(magnitudes(1e-3, 1e3)),
    "elu": st.tuples(magnitudes(1e-3, 50.0)),
    "gelu": st.tuples(reals(-10.0, 10.0)),
    "hardtanh": st.tuples(reals(-5.0, 5.0)),
    "clamp": st.tuples(reals(-5.0, 5.0)),
    "where": st.tuples(reals(-1e3, 1e3), reals(-1e3, 1e3)),
}


def away_from_kinks(op, point):
    """Keep the numerical steps (at most ~1e-3 here) from crossing a kink or a jump, and keep
    (y, x) and (a, b) of atan2 and hypot off the origin, where the derivative does not exist."""
    assume(op.kink_distance(*point) > 1e-2)


def builtin_names():
    """The primitives ops.py itself defines (tests and users may register more)."""
    found = {v.name for v in vars(ops).values() if isinstance(v, (ops.Primitive, ops.Family))}
    return sorted(found - {v.name for v in ops.PRIMITIVES.values() if isinstance(v, CustomPrimitive)})


def test_every_builtin_primitive_has_points_to_check():
    assert set(builtin_names()) - set(POINTS) == set(), "add points for the new primitive to POINTS"


def ops_apply(op, xs):
    return apply(op, *xs)


@pytest.mark.parametrize("name", sorted(POINTS))
def test_primitive_derivative_matches_central_differences(name):
    op = ops.PRIMITIVES[name]

    @given(POINTS[name])
    def check(point):
        away_from_kinks(op, point)
        assert gradcheck(lambda *xs: ops_apply(op, xs), point)

    check()


@pytest.mark.parametrize("member", [m for f in ops.FAMILIES.values() for m in f.members()], ids=repr)
def test_every_family_member_matches_central_differences(member):
    @given(POINTS[member.name])
    def check(point):
        away_from_kinks(member, point)
        assert gradcheck(lambda *xs: ops_apply(member, xs), point)

    check()


# Every record with one rule per input: the built-ins, every family member, x ** c and c ** x.
PER_INPUT = [ops.PRIMITIVES[n] for n in ops.BUILTIN_NAMES if ops.PRIMITIVES[n].vjps]
PER_INPUT += [m for f in ops.FAMILIES.values() for m in f.members()]
PER_INPUT += [ops.pow_const(2.0), ops.pow_const(-0.5), ops.rpow_const(2.0)]


def test_every_fixed_arity_primitive_declares_one_rule_per_input():
    for op in [ops.PRIMITIVES[n] for n in ops.BUILTIN_NAMES] + PER_INPUT:
        if op.arity == -1:
            assert op.vjps == (), op  # sum: only its combined rule
        else:
            assert len(op.vjps) == op.arity, op
            assert not any(hasattr(r, "derived_from") for r in op.vjps), f"{op} declares a combined rule"


@pytest.mark.parametrize("op", PER_INPUT, ids=repr)
def test_each_per_input_rule_is_its_component_of_the_combined_rule_and_the_partial(op):
    points = POINTS[op.name] if op.name in POINTS else st.tuples(reals(0.3, 5.0))  # x ** c, c ** x: positive x

    @settings(max_examples=15)
    @given(points, reals(-2.0, 2.0))
    def check(point, g):
        assume(g != 0.0)
        away_from_kinks(op, point)
        out = op.forward(ops.FLOAT_MATH, *point)
        combined = op.vjp(ops.FLOAT_MATH, g, out, *point)
        parts = [rule(ops.FLOAT_MATH, g, out, *point) for rule in op.vjps]
        assert parts == list(combined)  # the same numbers, whichever form an interpreter reads
        numeric = numerical_gradient(lambda *xs: ops_apply(op, xs), list(point))  # float64, independent
        for i, (part, d) in enumerate(zip(parts, numeric)):
            assert part == pytest.approx(g * d, rel=1e-5, abs=1e-8 * max(1.0, abs(out))), f"input {i}"

    check()


def test_a_combined_rule_gives_per_input_rules_and_the_reverse():
    old = ops.Primitive("t_old_form", 2, lambda m, a, b: a * b * b, lambda m, g, out, a, b: (g * b * b, 2.0 * g * a * b))
    assert [r(ops.FLOAT_MATH, 0.5, 12.0, 3.0, 2.0) for r in old.vjps] == [2.0, 6.0]
    new = ops.Primitive("t_new_form", 2, lambda m, a, b: a * b * b,
                        vjps=(lambda m, g, out, a, b: g * b * b, lambda m, g, out, a, b: 2.0 * g * a * b))
    assert new.vjp(ops.FLOAT_MATH, 0.5, 12.0, 3.0, 2.0) == (2.0, 6.0)
    import inspect
    assert list(inspect.signature(new.vjp).parameters) == ["m", "g", "out", "a", "b"]  # read by symbolic
    with pytest.raises(TypeError, match="needs a derivative rule"):
        ops.Primitive("t_no_rule", 1, lambda m, x: x)
    with pytest.raises(TypeError, match="takes 2 inputs but has 1 rules"):
        ops.Primitive("t_short", 2, lambda m, a, b: a, vjps=(lambda m, g, out, a, b: g,))


@pytest.mark.parametrize("name", sorted(COMPLEX_STEP_OPS))
def test_primitive_derivative_matches_complex_step_to_rounding(name):
    # The complex step has no cancellation error, so the rule must agree to ~1e-12 relative.
    op = ops.PRIMITIVES[name]

    @given(POINTS[name])
    def check(point):
        away_from_kinks(op, point)
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


def phi(x):
    return math.exp(-x * x / 2) / math.sqrt(2 * math.pi)


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
    "tan": (lambda v: v.tan(), lambda x: 2 * math.tan(x) * (1 + math.tan(x) ** 2), reals(-1.3, 1.3)),
    "asin": (lambda v: v.asin(), lambda x: x / (1 - x * x) ** 1.5, reals(-0.95, 0.95)),
    "acos": (lambda v: v.acos(), lambda x: -x / (1 - x * x) ** 1.5, reals(-0.95, 0.95)),
    "atan": (lambda v: v.atan(), lambda x: -2 * x / (1 + x * x) ** 2, reals(-10, 10)),
    "sinh": (lambda v: v.sinh(), math.sinh, reals(-10, 10)),
    "cosh": (lambda v: v.cosh(), math.cosh, reals(-10, 10)),
    "asinh": (lambda v: v.asinh(), lambda x: -x / (x * x + 1) ** 1.5, reals(-10, 10)),
    "acosh": (lambda v: v.acosh(), lambda x: -x / (x * x - 1) ** 1.5, reals(1.05, 10)),
    "atanh": (lambda v: v.atanh(), lambda x: 2 * x / (1 - x * x) ** 2, reals(-0.95, 0.95)),
    "log1p": (lambda v: v.log1p(), lambda x: -1 / (1 + x) ** 2, reals(-0.9, 10)),
    "expm1": (lambda v: v.expm1(), math.exp, reals(-10, 10)),
    "log2": (lambda v: v.log2(), lambda x: -1 / (x * x * math.log(2)), reals(0.05, 100)),
    "log10": (lambda v: v.log10(), lambda x: -1 / (x * x * math.log(10)), reals(0.05, 100)),
    "exp2": (lambda v: v.exp2(), lambda x: 2**x * math.log(2) ** 2, reals(-10, 10)),
    "erf": (lambda v: v.erf(), lambda x: -4 * x / math.sqrt(math.pi) * math.exp(-x * x), reals(-4, 4)),
    "erfc": (lambda v: v.erfc(), lambda x: 4 * x / math.sqrt(math.pi) * math.exp(-x * x), reals(-4, 4)),
    "silu": (lambda v: v.silu(), lambda x: sig(x) * (1 - sig(x)) * (2 + x * (1 - 2 * sig(x))), reals(-10, 10)),
    "logsigmoid": (lambda v: v.logsigmoid(), lambda x: -sig(x) * (1 - sig(x)), reals(-10, 10)),
    "softsign": (lambda v: v.softsign(), lambda x: -2 * math.copysign(1, x) / (1 + abs(x)) ** 3, reals(0.01, 10)),
    "gelu": (lambda v: v.gelu(), lambda x: phi(x) * (2 - x * x), reals(-6, 6)),
    "elu": (lambda v: v.elu(alpha=0.7), lambda x: 0.7 * math.exp(x) if x <= 0 else 0.0, reals(-5, 5)),
    "leaky_relu": (lambda v: v.leaky_relu(0.2) * v, lambda x: 2.0 if x > 0 else 0.4, reals(-5, 5)),
    "logaddexp": (lambda v: te.logaddexp(v, 0.3), lambda x: sig(x - 0.3) * (1 - sig(x - 0.3)), reals(-10, 10)),
    "atan2 in y": (lambda v: te.atan2(v, 1.5), lambda y: -2 * y * 1.5 / (1.5**2 + y * y) ** 2, reals(-5, 5)),
    "atan2 in x": (lambda v: te.atan2(0.8, v), lambda x: 2 * x * 0.8 / (0.64 + x * x) ** 2, reals(0.1, 5)),
    "hypot": (lambda v: te.hypot(v, 2.0), lambda x: 4.0 / (x * x + 4.0) ** 1.5, reals(-5, 5)),
    "maximum": (lambda v: te.maximum(v * v, 2.0), lambda x: 2.0 if x * x > 2.0 else 0.0, reals(-5, 5)),
    "clamp": (lambda v: te.clamp(v * v, max=2.0), lambda x: 2.0 if x * x <= 2.0 else 0.0, reals(-5, 5)),
    "mod": (lambda v: (v * v) % 1.5, lambda x: 2.0, reals(-5, 5)),
    "floor": (lambda v: v.floor() * v, lambda x: 0.0, reals(-5, 5)),
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


# --- overflow and NaN: one policy, every primitive, every engine -------------------------------

BIG = 1.7976931348623157e308  # the largest float
TINY = 5e-324  # the smallest positive float
INF, NAN = math.inf, math.nan


def three_engines(op, xs):
    """(output, gradients) of ``op`` at ``xs`` from backward(), from grad(create_graph=True) (the
    rules on Values) and from the batched engine (the rules on NumPy arrays)."""
    import numpy as np

    from tinygrad_edu.batched import trace

    leaves = [Value(x) for x in xs]
    out = apply(op, *leaves)
    out.backward()
    results = [(out.data, [v.grad for v in leaves])]
    leaves = [Value(x) for x in xs]
    out = apply(op, *leaves)
    results.append((out.data, [g.data for g in grad(out, leaves, create_graph=True)]))
    leaves = [Value(x) for x in xs]
    tape = trace(lambda _: apply(op, *leaves), [0.0], leaves)
    value = tape.mean_backward(np.zeros((1, 1)))
    results.append((value, [v.grad for v in leaves]))
    return results


def same(got, want, rel=0.0):
    if math.isnan(want):
        return math.isnan(got)
    if math.isinf(want) or rel == 0.0:
        return got == want
    return got == pytest.approx(want, rel=rel)


# Each primitive where its value or its derivative is too large for a float: the result is inf
# (IEEE 754, as NumPy and PyTorch give), never OverflowError; the expected numbers are closed forms.
OVERFLOW_CASES = [
    ("add", (1e308, 1e308), INF, (1.0, 1.0)),
    ("sub", (1e308, -1e308), INF, (1.0, -1.0)),
    ("mul", (1e200, 1e200), INF, (1e200, 1e200)),
    ("div", (1e300, 1e-10), INF, (1e10, -INF)),  # d/db = -a / b**2 = -1e320
    ("pow", (10.0, 400.0), INF, (INF, INF)),
    ("pow", (-10.0, 401.0), -INF, (INF, NAN)),  # a negative base: no derivative in b
    ("neg", (-BIG,), BIG, (-1.0,)),
    ("abs", (-BIG,), BIG, (-1.0,)),
    ("exp", (1000.0,), INF, (INF,)),
    ("log", (TINY,), math.log(TINY), (INF,)),  # log'(x) = 1/x = 2e323
    ("sqrt", (BIG,), math.sqrt(BIG), (0.5 / math.sqrt(BIG),)),
    ("tanh", (BIG,), 1.0, (0.0,)),
    ("sigmoid", (BIG,), 1.0, (0.0,)),
    ("softplus", (BIG,), BIG, (1.0,)),
    ("relu", (BIG,), BIG, (1.0,)),
    ("sin", (1e300,), math.sin(1e300), (math.cos(1e300),)),
    ("cos", (1e300,), math.cos(1e300), (-math.sin(1e300),)),
    ("sum", (1e308, 1e308, -1e308), INF, (1.0, 1.0, 1.0)),  # added left to right: inf + -1e308
    ("binary_cross_entropy_with_logits", (1e308, -2.0), INF, (3.0, -1e308)),  # 1e308 + 2e308; sigmoid - t
    ("x ** 2", (1e200,), INF, (2e200,)),
    ("x ** 3", (1e155,), INF, (INF,)),  # 3e310
    ("x ** -1", (TINY,), INF, (-INF,)),
    ("10 ** x", (400.0,), INF, (INF,)),
    ("0.5 ** x", (-2000.0,), INF, (-INF,)),  # 0.5**x * log(0.5)
    ("sinh", (1000.0,), INF, (INF,)),
    ("sinh", (-1000.0,), -INF, (INF,)),
    ("cosh", (-1000.0,), INF, (-INF,)),
    ("expm1", (1000.0,), INF, (INF,)),
    ("exp2", (1100.0,), INF, (INF,)),
    ("log2", (TINY,), -1074.0, (INF,)),  # 1 / (TINY ln 2)
    ("log1p", (TINY,), TINY, (1.0,)),
    ("atan", (BIG,), math.pi / 2, (0.0,)),  # 1 / (1 + BIG**2): BIG**2 overflows to inf
    ("logaddexp", (1e308, 1e308), 1e308 + math.log(2.0), (0.5, 0.5)),
    ("hypot", (BIG, BIG), INF, (0.0, 0.0)),  # a / inf
    ("maximum", (BIG, -BIG), BIG, (1.0, 0.0)),
    ("silu", (BIG,), BIG, (1.0,)),
    ("logsigmoid", (-BIG,), -BIG, (1.0,)),
]
# The primitives written before the new ones all have a case; the new ones' overflow and NaN
# behaviour is also tested in test_ops_conventions.py.
OVERFLOW_CHECKED = ("add", "sub", "mul", "div", "pow", "neg", "abs", "exp", "log", "sqrt", "tanh", "sigmoid",
                    "softplus", "relu", "sin", "cos", "sum", "binary_cross_entropy_with_logits")


def op_named(name):
    if name.startswith("x ** "):
        return ops.pow_const(float(name[5:]))
    if name.endswith(" ** x"):
        return ops.rpow_const(float(name[:-5]))
    return ops.PRIMITIVES[name]


def test_every_builtin_primitive_has_an_overflow_case():
    assert set(OVERFLOW_CHECKED) <= {name for name, *_ in OVERFLOW_CASES} <= {*builtin_names(), "x ** 2", "x ** 3",
                                                                              "x ** -1", "10 ** x", "0.5 ** x"}


@pytest.mark.parametrize("name, xs, out, grads", OVERFLOW_CASES, ids=[f"{c[0]}{c[1]}" for c in OVERFLOW_CASES])
def test_overflow_gives_inf_in_every_engine(name, xs, out, grads):
    rel = 1e-12 if name in ("sin", "cos") else 0.0  # NumPy's sin may differ from the C library's by ulps
    for engine, (got_out, got_grads) in zip(("backward", "grad", "batched"), three_engines(op_named(name), xs)):
        assert same(got_out, out, rel), (engine, got_out, out)
        for got, want in zip(got_grads, grads):
            assert same(got, want, rel), (engine, got_grads, grads)


NAN_OPS = [*OVERFLOW_CHECKED, "x ** 2", "x ** 0.5", "2 ** x", "tan", "asin", "atan", "sinh", "log1p", "log2", "erf",
           "logaddexp", "hypot", "atan2", "maximum", "minimum", "silu", "gelu", "leaky_relu", "elu", "hardtanh", "clamp"]


@pytest.mark.parametrize("name", NAN_OPS)
def test_a_nan_input_gives_a_nan_output_and_nan_gradients_in_every_engine(name):
    # NaN stays visible: NaN in any input gives NaN out, and unless the primitive is linear (its
    # derivatives are constants: d(a + b)/da is 1 whatever b is) some gradient is NaN too; relu
    # and abs included, unlike a 'NaN > 0 is false' shortcut that gives 0. The engines agree.
    op = op_named(name)
    arity = 3 if op.arity == -1 else op.arity
    for i in range(arity):
        xs = [1.5] * arity
        xs[i] = NAN
        results = three_engines(op, xs)
        for engine, (got_out, got_grads) in zip(("backward", "grad", "batched"), results):
            assert math.isnan(got_out), (engine, i, got_out)
            if name not in ("add", "sub", "sum", "neg"):
                assert any(math.isnan(g) for g in got_grads), (engine, i, got_grads)
            assert all(same(g, r) for g, r in zip(got_grads, results[0][1])), (engine, results)


def test_relu_and_abs_of_nan_follow_nan_and_agree_between_engines():
    for name in ("relu", "abs"):
        results = three_engines(ops.PRIMITIVES[name], [NAN])
        for out, (g,) in results:
            assert math.isnan(out) and math.isnan(g), (name, results)


def test_nan_base_with_zero_exponent_is_one_but_its_derivatives_show_the_nan():
    # nan ** 0 == 1 (IEEE 754, Python and NumPy); d/da = 0 * nan**-1 and d/db = 1 * log(nan).
    for out, (ga, gb) in three_engines(ops.POW, [NAN, 0.0]):
        assert out == 1.0 and math.isnan(ga) and math.isnan(gb)


# --- pow at zero: PyTorch's gradients, computed without dividing by zero ---------------------

@pytest.mark.parametrize("y", [0.25, 0.5, 0.999])
def test_zero_to_a_fractional_power_has_zero_derivative_in_the_exponent(y):
    # d/dy 0**y = 0**y * log(0) -> 0 for y > 0 (PyTorch and HIPS autograd give 0); the number 0.0
    # is no node, so its own (infinite) partial is never computed.
    v = Value(y)
    (0.0**v).backward()
    assert v.grad == 0.0
    for out, (g,) in three_engines(ops.rpow_const(0.0), [y]):
        assert (out, g) == (0.0, 0.0)


def test_pow_at_zero_zero_gives_zero_gradients_like_pytorch():
    # torch.pow(x, y) at x = y = 0: value 1, x.grad = 0 (y * x**(y-1) masked where y == 0), y.grad = 0.
    for out, grads in three_engines(ops.POW, [0.0, 0.0]):
        assert out == 1.0 and grads == [0.0, 0.0]


@pytest.mark.parametrize("a, b", [(0.0, 2.0), (0.0, 1.0), (0.0, 3.5), (2.0, 0.0), (-3.0, 0.0), (1e-3, 0.0)])
def test_pow_gradients_near_zero_match_closed_forms(a, b):
    da = 0.0 if b == 0.0 else b * a ** (b - 1)
    db = a**b * math.log(a) if a > 0 else (0.0 if a == 0 else NAN)
    for out, (ga, gb) in three_engines(ops.POW, [a, b]):
        assert out == a**b
        assert ga == pytest.approx(da, rel=1e-15, abs=0.0)
        assert same(gb, db, 1e-15)


def test_the_base_partial_at_zero_with_a_fractional_exponent_still_raises_like_sqrt():
    # d/dx x**0.5 at 0 is infinite: as for sqrt'(0), backward names the operation.
    x, y = Value(0.0), Value(0.5)
    with pytest.raises(ZeroDivisionError, match=r"derivative of \(0\.0 \*\* 0\.5\)"):
        (x**y).backward()


def test_constant_base_power_is_one_primitive_with_the_log_derivative():
    x = Value(3.0)
    y = 2**x
    assert y.op is ops.rpow_const(2.0) and y.parents == (x,) and y.op.format("x") == "(2 ** x)"
    y.backward()
    assert x.grad == pytest.approx(8.0 * math.log(2.0), rel=1e-15)
    (d1,) = grad(2**x, x, create_graph=True)
    (d2,) = grad(d1, x)
    assert d2.data == pytest.approx(8.0 * math.log(2.0) ** 2, rel=1e-14)


# --- the per-constant primitives stay bounded and keep their identity -------------------------

def test_pow_const_cache_is_bounded_and_identity_holds_while_in_use():
    import gc
    import tracemalloc

    x = Value(1.5)
    kept = x ** 123.25  # a graph holding its primitive: pow_const must keep returning that one
    assert ops.pow_const(2) is ops.pow_const(2.0)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(20_000):
        (x ** (i + 0.5)).backward()
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert grown < 1_000_000, grown  # was ~800 bytes per exponent, kept forever (16 MB here)
    assert len(ops._POW_CONST_CACHE) <= 300
    assert kept.op is ops.pow_const(123.25)
    assert ops.pow_const(2) is ops.pow_const(2.0)
