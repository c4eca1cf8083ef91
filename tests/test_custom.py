"""Custom primitives: tinygrad_edu.primitive adds a table entry that records, prints and
differentiates like a built-in one."""

import math

import numpy as np
import pytest

import tinygrad_edu
from tinygrad_edu import Value, grad, ops, primitive
from tinygrad_edu.custom import CustomPrimitive
from tinygrad_edu.testing import formula

# Registered once per test session: names are global, like the built-in ones.
softplus = primitive(
    "t_softplus", lambda x: math.log1p(math.exp(x)), lambda x: 1.0 / (1.0 + math.exp(-x)), domain=(-30.0, 30.0)
)
hypot = primitive("t_hypot", math.hypot, lambda a, b: (a / math.hypot(a, b), b / math.hypot(a, b)), arity=2)
mylog = primitive("t_log", lambda x: math.log(x), lambda x: 1.0 / x, domain=(0.0, math.inf))
bad_shape = primitive("t_bad_shape", lambda x: x, lambda x: (1.0, 2.0))
ramp = primitive("t_ramp", lambda x: max(x, 0.0), lambda x: 1.0 if x > 0 else 0.0, kinks=(0.0,))


PARTIAL_CALLS: list = []


def _d_da(a, b):
    PARTIAL_CALLS.append("a")
    return 2.0 * a * b


def _d_db(a, b):
    PARTIAL_CALLS.append("b")
    return a * a


# One partial per input, as the built-in rules are written.
a2b = primitive("t_a2b", lambda a, b: a * a * b, (_d_da, _d_db))


def test_per_input_partials_give_the_gradients_and_only_the_needed_ones_run():
    a, b = Value(1.5), Value(-2.0)
    y = a2b(a, b)
    assert y.op.vjps and len(y.op.vjps) == 2
    PARTIAL_CALLS.clear()
    (gb,) = grad(y * 3.0, [b])
    assert gb.data == 3.0 * 1.5 * 1.5 and PARTIAL_CALLS == ["b"]
    PARTIAL_CALLS.clear()
    y.backward()
    assert (a.grad, b.grad) == (2.0 * 1.5 * -2.0, 1.5 * 1.5) and sorted(PARTIAL_CALLS) == ["a", "b"]
    # the combined rule, read by the other interpreters, also works on arrays (the batched engine)
    ga, gb = a2b.op.vjp(None, np.array([1.0, 2.0]), None, np.array([1.0, 3.0]), np.array([4.0, 5.0]))
    assert list(ga) == [8.0, 60.0] and list(gb) == [1.0, 18.0]


def test_per_input_partials_run_in_the_batched_engine_like_in_the_scalar_one():
    from tinygrad_edu.batched import trace

    w = Value(0.75)
    tape = trace(lambda x, y: a2b(x * w, y), [1.0, 2.0], [w])
    X = np.array([[1.0, 2.0], [-0.5, 3.0], [2.0, -1.0]])
    tape.backward(X, np.ones(3))
    # d/dw sum (x w)^2 y = sum 2 x^2 w y (closed form)
    assert w.grad == pytest.approx(sum(2 * x * x * 0.75 * y for x, y in X), rel=1e-14)
    assert list(tape.forward(X)) == pytest.approx([(x * 0.75) ** 2 * y for x, y in X], rel=1e-15)


def test_per_input_partials_are_checked():
    with pytest.raises(ValueError, match="derivative has 1 functions for 2 inputs"):
        primitive("t_a2b_short", lambda a, b: a * b, (lambda a, b: b,))
    with pytest.raises(TypeError, match="derivative 1 must be a function of floats"):
        primitive("t_a2b_bad", lambda a, b: a * b, (lambda a, b: b, 2.0))
    wrong = primitive("t_a2b_wrong", lambda a, b: a * b, (lambda a, b: b, lambda a, b: (a, a)))
    with pytest.raises(TypeError, match="derivative 1 of custom primitive 't_a2b_wrong' must return one float"):
        wrong(Value(1.0), Value(2.0)).backward()


def test_exported_at_the_top_level():
    assert tinygrad_edu.primitive is primitive


def test_forward_and_backward_match_closed_forms():
    x = Value(0.7)
    y = softplus(x * 2.0)
    y.backward()
    assert y.data == pytest.approx(math.log(1 + math.exp(1.4)), rel=1e-15)
    assert x.grad == pytest.approx(2.0 / (1.0 + math.exp(-1.4)), rel=1e-15)


def test_several_inputs_get_their_partials_in_order():
    a, b = Value(3.0), Value(4.0)
    ga, gb = grad(hypot(a, b) * 2.0, [a, b])
    assert (ga.data, gb.data) == pytest.approx((1.2, 1.6))


def test_records_a_table_node_drawn_with_its_name():
    x = Value(1.0, label="x")
    y = softplus(x)
    assert isinstance(y.op, CustomPrimitive)
    assert y.op is ops.PRIMITIVES["t_softplus"] is softplus.op
    assert y.parents == (x,)
    assert formula(y.exp(), [x]) == "exp(t_softplus(x))"
    assert softplus.__name__ == "t_softplus"


def test_plain_numbers_are_accepted():
    y = hypot(3, 4.0)
    assert y.data == 5.0 and all(p.is_leaf for p in y.parents)


def test_a_node_used_twice_accumulates():
    x = Value(2.0)
    mylog(x * x).backward()  # d/dx log(x^2) = 2/x
    assert x.grad == pytest.approx(1.0)


def test_declared_domain_and_kinks_are_kept():
    assert softplus.op.valid == (-30.0, 30.0) and softplus.op.domain == "-30.0 < x < 30.0"
    assert softplus.op.in_domain(0.0) and not softplus.op.in_domain(31.0)
    assert mylog.op.domain == "0.0 < x < inf"
    assert ramp.op.kinks == (0.0,)
    assert hypot.op.in_domain(-5.0, 1e9)  # no domain declared: everywhere


def test_domain_predicate():
    op = primitive("t_pred", lambda x: x, lambda x: 1.0, domain=lambda x: x != 3).op
    assert op.in_domain(2.0) and not op.in_domain(3.0)


def test_scalar_functions_are_kept_for_other_engines():
    assert softplus.op.scalar_forward(0.0) == math.log(2.0)
    assert hypot.op.scalar_derivative(3.0, 4.0) == (0.6, 0.8)


def test_rules_vectorise_over_numpy_arrays():
    a, b = np.array([3.0, 5.0, 8.0]), np.array([4.0, 12.0, 15.0])
    out = hypot.op.forward(None, a, b)
    np.testing.assert_allclose(out, [5.0, 13.0, 17.0])
    ga, gb = hypot.op.vjp(None, np.array([1.0, 2.0, 1.0]), out, a, b)
    np.testing.assert_allclose(ga, [0.6, 10 / 13, 8 / 17])
    np.testing.assert_allclose(gb, [0.8, 24 / 13, 15 / 17])
    (g,) = softplus.op.vjp(None, np.ones(2), None, np.array([0.0, 1.0]))
    np.testing.assert_allclose(g, [0.5, 1 / (1 + math.exp(-1))])


def test_second_derivatives_are_refused_clearly():
    x = Value(0.5)
    (d1,) = grad(softplus(x), [x], create_graph=False)
    assert d1.data == pytest.approx(1 / (1 + math.exp(-0.5)))
    with pytest.raises(NotImplementedError, match="second derivatives through custom primitive 't_softplus'"):
        grad(softplus(x), [x], create_graph=True)


def test_domain_errors_name_the_primitive():
    with pytest.raises(ValueError, match=r"t_log\(-1.0\)"):
        mylog(Value(-1.0))


def test_a_derivative_of_the_wrong_shape_is_reported():
    x = Value(1.0)
    with pytest.raises(TypeError, match="must return one float"):
        bad_shape(x).backward()
    bad = primitive("t_bad_pair", lambda a, b: a + b, lambda a, b: 1.0)
    with pytest.raises(TypeError, match=r"a tuple of 2 floats"):
        bad(1.0, 2.0).backward()


def test_wrong_number_of_arguments():
    with pytest.raises(TypeError, match=r"t_hypot\(\) takes 2 inputs, got 1"):
        hypot(Value(1.0))


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(name="t_softplus"), ValueError, "already exists"),
        (dict(name="exp"), ValueError, "already exists"),
        (dict(name="my op"), ValueError, "identifier"),
        (dict(name="t_x", forward=3.0), TypeError, "forward must be a function"),
        (dict(name="t_x", derivative=None), TypeError, "derivative must be a function"),
        (dict(name="t_x", forward=lambda *xs: sum(xs)), TypeError, "pass arity="),
        (dict(name="t_x", arity=0), ValueError, "arity must be a positive int"),
        (dict(name="t_x", domain=(2.0, 1.0)), ValueError, "lo < hi"),
        (dict(name="t_x", domain="positive"), TypeError, "interval"),
    ],
)
def test_bad_definitions_are_rejected(kwargs, error, message):
    args = dict(name="t_x", forward=lambda x: x, derivative=lambda x: 1.0) | kwargs
    with pytest.raises(error, match=message):
        primitive(args.pop("name"), args.pop("forward"), args.pop("derivative"), **args)
    assert "t_x" not in ops.PRIMITIVES


def test_arity_from_varargs_when_given():
    total = primitive("t_total", lambda *xs: sum(xs), lambda *xs: (1.0,) * len(xs), arity=3)
    xs = [Value(1.0), Value(2.0), Value(3.0)]
    assert [g.data for g in grad(total(*xs), xs)] == [1.0, 1.0, 1.0]
