"""gradcheck, gradgradcheck and assert_gradients_match: they pass on correct derivatives, catch
wrong ones with a readable table, explain kinks, and reject bad input clearly."""

import math

import pytest
from hypothesis import given, settings

from tinygrad_edu import Value, ops, primitive
from tinygrad_edu.engine import _data, apply
from tinygrad_edu.testing import (
    GradcheckError,
    assert_gradients_match,
    formula,
    gradcheck,
    gradgradcheck,
    numerical_gradient,
)
from tinygrad_edu.testing.strategies import expressions

# A primitive whose derivative is wrong: d/dx x^2 claimed to be 2x + 0.1.
wrong_square = primitive("gc_wrong_square", lambda x: x * x, lambda x: 2 * x + 0.1)
# Right first derivatives, wrong second ones: the rule uses plain floats, so under
# create_graph it returns a constant and the graph of the derivative is cut (a classic bug).
CUT_SQUARE = ops.register(
    ops.Primitive("gc_cut_square", 1, lambda m, x: x * x, lambda m, g, out, x: (g * 2.0 * float(x),))
)


def cut_square(x):
    return apply(CUT_SQUARE, x)


def f3(a, b, c):
    return (a * b + c.exp()).log() * b.tanh() + c**2 / a


def test_correct_gradients_pass():
    assert gradcheck(f3, [0.5, -1.2, 0.3]) is True
    assert gradcheck(f3, [0.5, -1.2, 0.3], method="complex") is True
    assert gradgradcheck(f3, [0.5, -1.2, 0.3]) is True
    assert_gradients_match(f3, [0.5, -1.2, 0.3], second_order=True)


def test_the_numerical_reference_matches_closed_forms():
    x, y = 0.7, -1.3
    expected = [math.cos(x) * math.exp(y), math.sin(x) * math.exp(y)]
    fn = lambda a, b: a.sin() * b.exp()  # noqa: E731
    assert numerical_gradient(fn, [x, y]) == pytest.approx(expected, rel=1e-8)
    assert numerical_gradient(fn, [x, y], method="complex") == pytest.approx(expected, rel=1e-14)
    # The step scales with |x|: at x = 1e8 a fixed 1e-6 step would be lost to rounding.
    assert numerical_gradient(lambda a: a * a, [1e8]) == pytest.approx([2e8], rel=1e-6)


def test_unused_inputs_have_zero_gradient():
    assert gradcheck(lambda a, b: a.exp(), [0.1, 2.0])
    assert gradgradcheck(lambda a, b: a * 3.0, [0.1, 2.0])


def test_a_wrong_derivative_fails_with_a_table_worst_first():
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda a, b: wrong_square(a) * b + b, [1.5, 2.0])
    err = info.value
    assert isinstance(err, AssertionError)
    lines = str(err).splitlines()
    assert lines[0] == "gradcheck failed for f(x0, x1) = gc_wrong_square(x0)*x1 + x1"
    assert "1 of 2 partial derivatives differ" in lines[1] and "atol=1e-05, rtol=0.001" in lines[1]
    header = lines[3].split()
    assert header == ["input", "value", "analytic", "numeric", "abs", "err", "rel", "err", "tolerance", "num", "err", "step"]
    bad, good = lines[4].split(), lines[5].split()
    # d/dx0 = (2*1.5 + 0.1) * 2 analytically (wrong), 2*1.5*2 = 6 numerically (right).
    assert bad[:5] == ["✗", "x0", "1.5", "6.2", "6"]
    assert float(bad[5]) == pytest.approx(0.2, rel=1e-6) and float(bad[6]) == pytest.approx(0.2 / 6, rel=1e-6)
    assert good[:2] == ["x1", "2"] and float(good[2]) == pytest.approx(3.25)
    assert "kink" not in str(err)


def test_rows_are_sorted_by_how_far_out_of_tolerance():
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda a, b, c: wrong_square(a) + 100 * wrong_square(b) + c, [1.0, 1.0, 1.0])
    names = [line.replace("✗", "").split()[0] for line in str(info.value).splitlines()[4:7]]
    assert names == ["x1", "x0", "x2"]


def test_long_tables_are_cut():
    n = 25
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda *xs: sum((wrong_square(x) for x in xs), Value(0.0)), [1.0] * n)
    text = str(info.value)
    assert f"{n} of {n} partial derivatives differ" in text
    assert "\n... 5 more\n" in text


def test_raise_exception_false_returns_false():
    assert gradcheck(lambda a: wrong_square(a), [1.0], raise_exception=False) is False
    assert gradcheck(lambda a: a * a, [1.0], raise_exception=False) is True
    assert gradgradcheck(lambda a: cut_square(a), [1.0], raise_exception=False) is False


def test_tolerances_are_used():
    # The error of wrong_square at x=1 is 0.1 against a derivative of 2: 5% relative.
    assert gradcheck(wrong_square, [1.0], rtol=0.06, raise_exception=False)
    assert not gradcheck(wrong_square, [1.0], rtol=0.04, raise_exception=False)
    assert gradcheck(wrong_square, [1.0], rtol=0.0, atol=0.11, raise_exception=False)


def test_a_function_that_cuts_its_graph_is_caught():
    # Using .data makes a constant: the engine sees d/dx = 1, the function's slope is 2x + 1.
    with pytest.raises(GradcheckError, match="numeric: central differences"):
        gradcheck(lambda x: Value(x.data**2) + x, [0.7])


# silu with its partial dropped (derivative 0), as benchmarks/gradcheck_eval.py breaks it.
silu_dropped = primitive("gc_silu_dropped", lambda x: x / (1 + math.exp(-x)), lambda x: 0.0)


def test_a_wrong_zero_derivative_is_not_hidden_by_a_step_where_f_looks_flat():
    # The gradient is -6.3e-5: small, so f (about 1.6) barely moves. The right derivative at steps
    # near 1e-12, where f looks flat, once came out as exactly 0 "with no error": a kink [-6.3e-5,
    # 0] was inferred and the wrong 0 passed as a subgradient. The rounding noise (noise / step)
    # now keeps such steps from counting as exact, so the wrong rule is caught and named.
    P = ops.PRIMITIVES

    def f(x):
        inner = apply(P["erfc"], apply(P["logaddexp"], x.log1p(), x))
        return apply(P["exp2"], silu_dropped(inner).softplus())

    def f_right(x):  # the same with the engine's own silu
        return apply(P["exp2"], apply(P["erfc"], apply(P["logaddexp"], x.log1p(), x)).silu().softplus())

    x = 2.663103984769041
    assert numerical_gradient(f, [x])[0] == pytest.approx(-6.3335496e-05, rel=1e-6)
    assert gradcheck(f_right, [x])
    with pytest.raises(GradcheckError) as info:
        gradcheck(f, [x])
    assert info.value.culprits[0].op.name == "gc_silu_dropped"


def test_at_a_kink_the_convention_passes_as_a_subgradient():
    # relu'(0) = 0 lies between the one-sided slopes 0 and b = 2: a subgradient, so it passes.
    assert gradcheck(lambda a, b: (a - 1.0).relu() * b, [1.0, 2.0])
    assert gradcheck(lambda a, b: (a - 1.0).relu() * b, [1.0, 2.0], eps=1e-6)
    assert gradcheck(lambda a: abs(a) * 3.0 + a, [0.0])


# A kinked primitive whose convention at the kink is outside the one-sided slopes [0, 1].
bad_kink = primitive("gc_bad_kink", lambda x: max(x, 0.0), lambda x: 1.0 if x > 0 else -0.5, kinks=(0.0,))


def test_at_a_kink_a_value_outside_the_one_sided_derivatives_fails_and_names_the_convention():
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda a, b: bad_kink(a - 1.0) * b, [1.0, 2.0])
    text = str(info.value)
    row = next(line for line in text.splitlines() if line.startswith("✗"))
    assert row.split()[1:5] == ["x0", "1", "-1", "[0,"]  # analytic -0.5 * 2; one-sided [0, 2]
    assert "gc_bad_kink's input x0 - 1.0 = 0 is at its kink at 0 (gc_bad_kink'(0) = -0.5 by convention)" in text
    assert "Culprit: 1 of 3" in text and "one-sided derivatives [0, 1]" in text
    [culprit] = info.value.culprits
    assert culprit.op.name == "gc_bad_kink" and culprit.partials[0].interval == (0.0, pytest.approx(1.0))


def test_near_a_kink_the_steps_stay_on_one_side():
    # |x| at 3e-7: a step of 1e-6 would cross 0; the steps shrink instead, and the check passes.
    assert gradcheck(lambda a: abs(a * 2.0), [3e-7])
    assert gradcheck(lambda a: abs(a * 2.0), [3e-7], eps=1e-6)
    assert numerical_gradient(lambda a: abs(a * 2.0), [3e-7], eps=1e-6) == pytest.approx([2.0], rel=1e-9)


def test_far_from_a_kink_relu_passes():
    assert gradcheck(lambda a, b: (a - 1.0).relu() * b + abs(b), [1.5, -2.0])


def test_gradgradcheck_catches_a_wrong_second_derivative():
    assert gradcheck(cut_square, [1.5])  # the first derivative is right
    with pytest.raises(GradcheckError) as info:
        gradgradcheck(lambda a, b: cut_square(a) * b, [1.5, 2.0])
    text = str(info.value)
    assert text.startswith("gradgradcheck failed for f(x0, x1) = gc_cut_square(x0)*x1")
    rows = {line.split()[1]: line.split() for line in text.splitlines()[4:8] if line.startswith("✗")}
    assert set(rows) == {"d2/dx0dx0"}  # d2/dx0^2 = 2*b = 4; the mixed ones survive (g carries b)
    assert rows["d2/dx0dx0"][3:5] == ["0", "4"]


def test_gradgradcheck_through_a_custom_primitive_is_refused():
    with pytest.raises(NotImplementedError, match="second derivatives through custom primitive"):
        gradgradcheck(wrong_square, [1.0])


def test_assert_gradients_match_raises_an_assertion_with_the_table():
    assert_gradients_match(lambda a: a.sigmoid(), [0.3])
    with pytest.raises(AssertionError, match="analytic"):
        assert_gradients_match(wrong_square, [0.3])
    assert_gradients_match(lambda a: cut_square(a), [0.3])
    with pytest.raises(AssertionError, match="gradgradcheck failed"):
        assert_gradients_match(lambda a: cut_square(a), [0.3], second_order=True)


@pytest.mark.parametrize(
    "inputs, kwargs, error, message",
    [
        ([], {}, ValueError, "inputs is empty"),
        ([1.0, math.nan], {}, ValueError, r"inputs\[1\] must be a finite real number"),
        ([True], {}, ValueError, "finite real number"),
        (["1"], {}, ValueError, "finite real number"),
        (None, {}, TypeError, "inputs must be a sequence"),
        ([1.0], {"eps": 0.0}, ValueError, "eps must be a finite number > 0"),
        ([1.0], {"atol": -1.0}, ValueError, "atol must be a finite number >= 0"),
        ([1.0], {"method": "forward"}, ValueError, "method must be 'central' or 'complex'"),
    ],
)
def test_bad_arguments(inputs, kwargs, error, message):
    with pytest.raises(error, match=message):
        gradcheck(lambda a: a * 2.0, inputs, **kwargs)


def test_a_single_number_or_values_are_accepted_as_inputs():
    assert gradcheck(lambda a: a.exp(), 0.5)
    assert gradcheck(lambda a: a.exp(), [Value(0.5)])


def test_fn_must_return_a_value():
    with pytest.raises(TypeError, match="fn must return a Value .* got float"):
        gradcheck(lambda a: 2.0, [1.0])


def test_fn_must_be_finite_and_defined_around_the_point():
    with pytest.raises(ValueError, match="fn returned inf"):
        gradcheck(lambda a: a / 0.0 if False else a.exp() * 1e308, [10.0])
    # Defined only at the point itself: no stencil fits on either side.
    only_at_one = primitive("gc_only_at_one", lambda x: x if x == 1.0 else math.log(-1.0), lambda x: 1.0)
    with pytest.raises(ValueError, match=r"fn is not defined on either side of x0 = 1.0"):
        gradcheck(only_at_one, [1.0])


def test_complex_step_refuses_ops_without_complex_support():
    with pytest.raises(ValueError, match="'abs' does not"):
        gradcheck(lambda a: abs(a), [1.0], method="complex")
    with pytest.raises(ValueError, match="'gc_wrong_square' does not"):
        gradcheck(wrong_square, [1.0], method="complex")


@pytest.mark.parametrize(
    "fn, text",
    [
        (lambda a, b, c: (a - b) - c, "x0 - x1 - x2"),
        (lambda a, b, c: a - (b - c), "x0 - (x1 - x2)"),
        (lambda a, b, c: a / (b * c), "x0/(x1*x2)"),
        (lambda a, b, c: (a + b) * c, "(x0 + x1)*x2"),
        (lambda a, b, c: a ** (b**c), "x0**x1**x2"),
        (lambda a, b, c: (a**b) ** c, "(x0**x1)**x2"),
        (lambda a, b, c: -(a**2) + (-b) ** 3, "-x0**2 + (-x1)**3"),
        (lambda a, b, c: (a * b + c.exp()).log(), "log(x0*x1 + exp(x2))"),
        (lambda a, b, c: (a + 1.5) * -2.0, "(x0 + 1.5)*-2.0"),
        (lambda a, b, c: -(-a.tanh()) - (-b), "-(-tanh(x0)) - -x1"),
    ],
)
def test_formula_prints_minimal_parentheses(fn, text):
    xs = [Value(1.0), Value(2.0), Value(0.5)]
    assert formula(fn(*xs), xs) == text


def test_formula_uses_labels_and_cuts_huge_parts():
    x = Value(1.0, label="w")
    y = x
    for _ in range(40):
        y = y * y  # shared: the text would double each time
    assert formula(x.exp() + 1.0, [x]) == "exp(w) + 1.0"
    assert len(formula(y, [x], max_chars=100)) < 300


# Forward mode and higher orders: gradcheck(modes=("rev", "fwd"), order=k), like JAX's check_grads.


@settings(max_examples=40)
@given(expressions(n_inputs=3, max_ops=6))
def test_both_modes_and_second_order_pass_on_random_expressions(case):
    fn, inputs = case
    assert gradcheck(fn, inputs, modes=("rev", "fwd"), order=2)


# A rule that ignores the incoming gradient g: right when g = 1 (at the output, in reverse
# mode), wrong for any other tangent. Only forward mode feeds it one.
_IGNORES_G = ops.Primitive("t_ignores_g", 1, lambda m, x: m.sin(x), lambda m, g, out, x: (m.cos(x),))


def test_forward_mode_catches_a_rule_that_reverse_mode_misses():
    fn = lambda x: apply(_IGNORES_G, x * 2.0)  # noqa: E731
    assert gradcheck(fn, [0.4])
    with pytest.raises(GradcheckError, match=r"gradcheck \(forward mode\) failed"):
        gradcheck(fn, [0.4], modes=("rev", "fwd"))
    assert not gradcheck(fn, [0.4], modes="fwd", raise_exception=False)


# A rule whose derivative is right as a number but a constant in the graph: d/dx sin = cos(x.data),
# so its second derivative is 0 instead of -sin x. Only order=2 looks.
_FLAT = ops.Primitive("t_flat_sin", 1, lambda m, x: m.sin(x), lambda m, g, out, x: (g * ops.FLOAT_MATH.cos(_data(x)),))


@pytest.mark.parametrize("modes", [("rev",), ("fwd",), ("rev", "fwd")])
def test_order_two_catches_a_wrong_second_derivative(modes):
    fn = lambda x: apply(_FLAT, x)  # noqa: E731
    assert gradcheck(fn, [0.4], modes=modes)
    with pytest.raises(GradcheckError, match=r"gradcheck of d/dx0 \((rev|fwd)\)"):
        gradcheck(fn, [0.4], modes=modes, order=2)


def test_order_three_checks_third_derivatives():
    assert gradcheck(lambda x, y: (x * y).tanh() + x.atan() * y.exp(), [0.3, 0.8], modes=("rev", "fwd"), order=3)


@pytest.mark.parametrize("kwargs, message", [
    ({"modes": ("sideways",)}, "modes must be a non-empty sequence of 'rev' and 'fwd'"),
    ({"modes": ()}, "modes must be a non-empty sequence"),
    ({"order": 0}, "order must be an int >= 1"),
    ({"order": 1.5}, "order must be an int >= 1"),
])
def test_bad_modes_and_orders_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gradcheck(lambda x: x * x, [1.0], **kwargs)


def test_steps_stay_clear_of_kinks_that_are_not_points():
    # floor's jumps are at the integers, a % b's on the lines a = k·b: the records measure the
    # distance, so the numerical steps stop short of the jump 3e-7 away (they would cross it).
    assert gradcheck(lambda x: apply(ops.FLOOR, x * 3.0) * x, [1.0 / 3.0 + 1e-7])
    assert gradcheck(lambda a, b: apply(ops.MOD, a, b), [83.125, -0.5])


def test_at_a_tie_the_split_gradient_is_what_central_differences_see():
    # Why PyTorch splits a tie 0.5/0.5: it is the average of both sides, so gradcheck agrees.
    assert gradcheck(lambda a, b: apply(ops.MAXIMUM, a, b) * a, [1.0, 1.0])
