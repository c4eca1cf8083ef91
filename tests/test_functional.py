"""Forward mode and the functional API against independent references: float64 central
differences (the directional derivative, the Jacobian, the Hessian) and closed forms; forward and
reverse mode agree; everything nests with grad(create_graph=True)."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_edu as te
from tinygrad_edu import Value, grad
from tinygrad_edu.functional import hessian, hvp, jacobian, jvp, vjp
from tinygrad_edu.testing import numerical_gradient
from tinygrad_edu.testing.strategies import expressions

tangent_values = st.floats(-2.0, 2.0, allow_nan=False)


def data(x):
    if isinstance(x, Value):
        return x.data
    return type(x)(data(v) for v in x)


@given(expressions(n_inputs=st.integers(1, 4), max_ops=8), st.lists(tangent_values, min_size=4, max_size=4))
def test_jvp_is_the_directional_derivative_by_central_differences(case, tangent):
    fn, point = case
    t = tangent[: len(point)]
    out, out_t = jvp(fn, point, t)
    numeric = numerical_gradient(fn, point)
    assert out.data == fn(*point).data
    expected = sum(n * ti for n, ti in zip(numeric, t))
    assert out_t.data == pytest.approx(expected, rel=1e-4, abs=1e-5 * (1 + sum(abs(n) for n in numeric)))


def central(f, point, i, h=1e-6):
    up, down = list(point), list(point)
    step = h * max(1.0, abs(point[i]))
    up[i] += step
    down[i] -= step
    return [(a - b) / (up[i] - down[i]) for a, b in zip(f(up), f(down))]


def three_outputs(x, y):
    return (x * y).sin(), x.exp() * y - y.atan(), te.hypot(x, y)


def three_floats(p):
    x, y = p
    return [math.sin(x * y), math.exp(x) * y - math.atan(y), math.hypot(x, y)]


@pytest.mark.parametrize("mode", ["fwd", "rev", "auto"])
def test_jacobian_matches_central_differences_in_every_mode(mode):
    point = (0.4, -1.3)
    J = data(jacobian(three_outputs, point, mode=mode))
    columns = [central(three_floats, point, j) for j in range(2)]
    for i in range(3):
        for j in range(2):
            assert J[i][j] == pytest.approx(columns[j][i], rel=1e-7, abs=1e-9)


@given(st.floats(-2, 2), st.floats(-2, 2), st.floats(0.2, 3))
def test_forward_and_reverse_jacobians_agree_to_rounding(a, b, c):
    def f(x, y, z):
        return (x * y + z.log(), (x - y).tanh() * z, te.logaddexp(x, y), x.sigmoid())

    fwd, rev = data(jacobian(f, (a, b, c), mode="fwd")), data(jacobian(f, (a, b, c), mode="rev"))
    for rf, rr in zip(fwd, rev):
        assert rf == pytest.approx(rr, rel=1e-13, abs=1e-15)


def test_jacobian_shapes_follow_the_inputs_and_outputs():
    assert isinstance(jacobian(lambda x: x * x, 3.0), Value)
    assert data(jacobian(lambda x: x * x, 3.0)) == 6.0
    assert data(jacobian(lambda x, y: x * y, (2.0, 5.0))) == (5.0, 2.0)
    assert data(jacobian(lambda x: (x, x * x), [3.0])) == ((1.0,), (6.0,))
    assert data(jacobian(lambda x: [x * 2, x * x], 3.0)) == (2.0, 6.0)
    assert data(jacobian(lambda x, y: (x + 0.0, x * 0.0 + 1.0), (1.0, 2.0))) == ((1.0, 0.0), (0.0, 0.0))


def f_closed(x, y):
    return x * x * y + (x * y).sin()


def hessian_closed(x, y):
    s = math.sin(x * y)
    c = math.cos(x * y)
    return ((2 * y - y * y * s, 2 * x + c - x * y * s), (2 * x + c - x * y * s, -x * x * s))


@given(st.floats(-2, 2), st.floats(-2, 2))
def test_hessian_is_the_closed_form(x, y):
    H = data(hessian(f_closed, (x, y)))
    expected = hessian_closed(x, y)
    for row, erow in zip(H, expected):
        assert row == pytest.approx(erow, rel=1e-12, abs=1e-12)


def test_hessian_matches_central_differences_of_the_gradient_for_new_primitives():
    def f(x, y, z):
        return te.atan2(x, y) * z.softsign() + (x * z).gelu() + te.maximum(y, z).expm1()

    point = (0.6, 1.4, -0.8)

    def gradient(p):
        vs = [Value(v) for v in p]
        return [g.data for g in grad(f(*vs), vs)]

    H = data(hessian(f, point))
    for j in range(3):
        col = central(gradient, point, j)
        for i in range(3):
            assert H[i][j] == pytest.approx(col[i], rel=1e-6, abs=1e-8)


@given(st.floats(-2, 2), st.floats(-2, 2), tangent_values, tangent_values)
def test_hvp_is_the_hessian_times_v(x, y, v0, v1):
    out, (h0, h1) = hvp(f_closed, (x, y), (v0, v1))
    H = hessian_closed(x, y)
    assert out.data == f_closed(Value(x), Value(y)).data
    assert h0.data == pytest.approx(H[0][0] * v0 + H[0][1] * v1, rel=1e-10, abs=1e-12)
    assert h1.data == pytest.approx(H[1][0] * v0 + H[1][1] * v1, rel=1e-10, abs=1e-12)


def test_single_primal_forms():
    out, t = jvp(lambda x: x.sin(), 0.5, 2.0)
    assert (out.data, t.data) == (math.sin(0.5), 2.0 * math.cos(0.5))
    out, h = hvp(lambda x: x.sin(), 0.5, 3.0)
    assert h.data == pytest.approx(-3.0 * math.sin(0.5), rel=1e-15)
    assert data(hessian(lambda x: x**3, 2.0)) == 12.0


def test_vjp_pullback_is_the_vector_jacobian_product_and_can_be_called_again():
    outs, pullback = vjp(three_outputs, (0.4, -1.3))
    assert len(outs) == 3
    J = data(jacobian(three_outputs, (0.4, -1.3), mode="fwd"))
    for cot in ([1.0, 0.0, 0.0], [0.5, -2.0, 3.0]):
        got = data(pullback(cot))
        for j in range(2):
            assert got[j] == pytest.approx(sum(c * J[i][j] for i, c in enumerate(cot)), rel=1e-13)
    out, pb = vjp(lambda x, y: x * 2.0, (1.0, 7.0))
    assert data(pb(1.0)) == (2.0, 0.0)  # an unused primal gets 0


# Nesting: every function composes with grad(create_graph=True) and with itself.


def test_reverse_over_forward_gives_the_second_derivative():
    x = Value(0.7)
    _, t = jvp(lambda v: v.tanh(), x, 1.0, create_graph=True)
    (d2,) = grad(t, x)
    th = math.tanh(0.7)
    assert d2.data == pytest.approx(-2 * th * (1 - th * th), rel=1e-14)


def test_forward_over_forward_gives_the_third_derivative():
    def first(v):
        return jvp(lambda u: u.sin() * u, v, 1.0, create_graph=True)[1]

    def second(v):
        return jvp(first, v, 1.0, create_graph=True)[1]

    x = 0.9
    _, third = jvp(second, x, 1.0)
    assert third.data == pytest.approx(-3 * math.sin(x) - x * math.cos(x), rel=1e-13)


def test_forward_over_reverse_and_reverse_over_reverse_agree_to_fourth_order():
    def d_rev(f):
        def g(v):
            return grad(f(v), v, create_graph=True)[0]
        return g

    def d_fwd(f):
        def g(v):
            return jvp(f, v, 1.0, create_graph=True)[1]
        return g

    f = lambda v: (v * v).exp()  # noqa: E731  d4/dx4 exp(x²) = (16x⁴ + 48x² + 12) exp(x²)
    x = Value(0.3)
    for chain in ([d_rev] * 4, [d_fwd] * 4, [d_fwd, d_rev, d_fwd, d_rev], [d_rev, d_fwd, d_rev, d_fwd]):
        g = f
        for d in chain:
            g = d(g)
        assert g(x).data == pytest.approx((16 * 0.3**4 + 48 * 0.09 + 12) * math.exp(0.09), rel=1e-12)


def test_hessian_with_create_graph_is_differentiable():
    x, y = Value(0.5), Value(-0.4)
    H = hessian(lambda a, b: a**3 * b, (x, y), create_graph=True)
    (d,) = grad(H[0][0], [x])  # d/dx 6xy = 6y
    assert d.data == pytest.approx(6 * -0.4, rel=1e-14)


def test_primals_given_as_values_join_the_outer_graph():
    x = Value(1.5)
    out, t = jvp(lambda v: v * v, x, 1.0)
    assert out.parents == (x, x) and t.data == 3.0


def test_a_value_given_twice_is_refused():
    # torch.func.jvp would perturb the two slots separately; one node cannot be, so say so.
    x = Value(2.0)
    with pytest.raises(ValueError, match="the same Value is given twice"):
        jvp(lambda a, b: a * b, (x, x), (1.0, 1.0))


@settings(max_examples=20)
@given(expressions(n_inputs=st.integers(1, 3), max_ops=6))
def test_forward_mode_in_no_grad_still_differentiates(case):
    fn, point = case
    with te.no_grad():
        _, t = jvp(fn, point, [1.0] + [0.0] * (len(point) - 1))
    assert t.data == pytest.approx(numerical_gradient(fn, point)[0], rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("call, error, message", [
    (lambda: jvp(lambda x: x, (1.0, 2.0), (1.0,)), ValueError, "got 1 tangents for 2 primals"),
    (lambda: jvp(lambda x: x, "a", 1.0), TypeError, "primals must be numbers or Values"),
    (lambda: jvp(lambda x: 3.0, 1.0, 1.0), TypeError, "f must return a Value"),
    (lambda: jvp(lambda x: x, [], []), ValueError, "primals is empty"),
    (lambda: jacobian(lambda x: x, 1.0, mode="sideways"), ValueError, "mode must be 'auto', 'fwd' or 'rev'"),
    (lambda: hessian(lambda x: (x, x), 1.0), ValueError, "f must return one Value"),
    (lambda: hvp(lambda x: x * x, 1.0, (1.0, 2.0)), ValueError, "got 2 entries in v for 1 primals"),
    (lambda: vjp(lambda x: (x, x), 1.0)[1](1.0), ValueError, "got 1 cotangents for 2 outputs"),
    (lambda: jvp(lambda x: x.sqrt(), 0.0, 1.0), ZeroDivisionError, r"in jvp, the derivative of sqrt\(0.0\)"),
])
def test_bad_calls_say_what_was_wrong(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_vjp_and_jvp_run_no_rule_for_a_constant():
    calls = []

    def rule(i, d):
        def vjp_i(m, g, out, a, b):
            calls.append(i)
            return g * d(a, b)
        return vjp_i

    op = te.ops.Primitive("t_spied_mul_f", 2, lambda m, a, b: a * b,
                          vjps=(rule("a", lambda a, b: b), rule("b", lambda a, b: a)))
    f = lambda x: te.engine.apply(op, x, 2.5).sin()  # noqa: E731  (2.5 becomes a constant leaf)
    out, pullback = vjp(f, 0.75)
    assert pullback(2.0).data == pytest.approx(2.0 * math.cos(1.875) * 2.5, rel=1e-14)
    assert calls == ["a"]
    calls.clear()
    _, tangent = jvp(f, 0.75, 3.0)
    assert tangent.data == pytest.approx(3.0 * math.cos(1.875) * 2.5, rel=1e-14)
    assert calls == ["a"]  # only the input with a tangent


def test_jvp_through_a_three_input_primitive_and_a_sum_with_a_constant():
    weighted = te.ops.Primitive("t_weighted3_f", 3, lambda m, a, b, c: a + 2.0 * b + 3.0 * c * c,
                                vjps=(lambda m, g, out, a, b, c: g, lambda m, g, out, a, b, c: 2.0 * g,
                                      lambda m, g, out, a, b, c: 6.0 * g * c))
    f = lambda x, y: te.sum([te.engine.apply(weighted, x, 4.0, y), x * y, 1.5])  # noqa: E731
    _, tangent = jvp(f, (0.5, -2.0), (1.0, 3.0))
    # d/dx = 1 + y, d/dy = 6y + x (closed form)
    assert tangent.data == pytest.approx((1 + -2.0) * 1.0 + (6 * -2.0 + 0.5) * 3.0, rel=1e-15)
