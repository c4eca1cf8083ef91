"""Tests for tinygrad_edu/engine.py: Value, backward, grad, no_grad, and every documented error.

Derivatives are compared with closed forms written here by hand (the per-primitive finite-difference
property tests live in tests/test_ops.py)."""

import gc
import math
import sys

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import Value, enable_grad, grad, is_grad_enabled, no_grad
from tinygrad_edu.engine import topological_order


# --- construction -------------------------------------------------------------------------

@pytest.mark.parametrize("data", [3, 2.5, -0.0, np.float32(1.5), np.float64(-2.25), np.int64(7), np.int8(-3)])
def test_real_scalars_are_stored_as_python_float(data):
    v = Value(data)
    assert type(v.data) is float
    assert v.data == float(data)
    assert v.grad == 0.0 and v.op is None and v.parents == () and v.is_leaf


@pytest.mark.parametrize(
    "bad, type_name",
    [("1.0", "str"), (None, "NoneType"), (1 + 2j, "complex"), ([1.0], "list"), (np.array([1.0, 2.0]), "ndarray"),
     (True, "bool"), (Value(1.0), "Value")],
)
def test_non_real_data_raises_type_error_naming_the_type(bad, type_name):
    with pytest.raises(TypeError, match=type_name):
        Value(bad)


def test_operand_of_wrong_type_raises_type_error():
    with pytest.raises(TypeError, match="str"):
        Value(1.0) + "2"
    with pytest.raises(TypeError, match="list"):
        [1.0] * Value(2.0)


def test_repr_shows_data_grad_op_and_label():
    x = Value(0.5, label="x")
    assert repr(x) == "Value(data=0.5, grad=0.0, label='x')"
    y = x.tanh()
    y.backward()
    assert repr(y) == f"Value(data={math.tanh(0.5)!r}, grad=1.0, op='tanh')"


def test_comparisons_compare_data_but_equality_is_identity():
    a, b = Value(1.0), Value(2.0)
    assert (a < b) is True and (a <= 1.0) is True and (b > a) is True and (b >= 2.0) is True
    assert (a > b) is False
    twin = Value(1.0)
    assert a != twin and a == a
    assert len({a, twin, a}) == 2


def test_parents_are_ordered_and_keep_duplicates():
    a, b = Value(2.0), Value(3.0)
    assert (a - b).parents == (a, b)
    assert (b - a).parents == (b, a)
    assert (a + a).parents == (a, a)


# --- forward values of every operator, numbers on either side -------------------------------

@pytest.mark.parametrize(
    "expr, expected",
    [
        (lambda x: x + 2, 5.0), (lambda x: 2 + x, 5.0), (lambda x: x - 2, 1.0), (lambda x: 2 - x, -1.0),
        (lambda x: x * 2, 6.0), (lambda x: 2 * x, 6.0), (lambda x: x / 2, 1.5), (lambda x: 2 / x, 2 / 3),
        (lambda x: x ** 2, 9.0), (lambda x: 2 ** x, 8.0), (lambda x: x ** Value(0.5), math.sqrt(3)),
        (lambda x: -x, -3.0), (lambda x: abs(-x), 3.0), (lambda x: x.exp(), math.exp(3)), (lambda x: x.log(), math.log(3)),
        (lambda x: x.sqrt(), math.sqrt(3)), (lambda x: x.tanh(), math.tanh(3)), (lambda x: x.sigmoid(), 1 / (1 + math.exp(-3))),
        (lambda x: x.softplus(), math.log(1 + math.exp(3))),
        (lambda x: x.relu(), 3.0), (lambda x: (-x).relu(), 0.0), (lambda x: x.sin(), math.sin(3)), (lambda x: x.cos(), math.cos(3)),
        (lambda x: np.float64(2.0) * x, 6.0),
    ],
)
def test_forward_values(expr, expected):
    out = expr(Value(3.0))
    assert isinstance(out, Value)
    assert out.data == pytest.approx(expected, rel=1e-15)


# --- derivatives against closed forms -------------------------------------------------------

def test_chain_rule_on_tanh_neuron_matches_closed_form():
    x, w, b = Value(0.5), Value(-1.5), Value(0.2)
    y = (x * w + b).tanh()
    y.backward()
    t = math.tanh(0.5 * -1.5 + 0.2)
    assert x.grad == pytest.approx(w.data * (1 - t * t), rel=1e-14)
    assert w.grad == pytest.approx(x.data * (1 - t * t), rel=1e-14)
    assert b.grad == pytest.approx(1 - t * t, rel=1e-14)


def test_binary_operator_derivatives_both_sides():
    a, b = Value(1.7), Value(-0.6)
    out = a * b + a / b - b / a + a ** 3 + 2.0 ** a + a ** Value(2.5)
    out.backward()
    da = b.data + 1 / b.data + b.data / a.data**2 + 3 * a.data**2 + math.log(2) * 2.0**a.data + 2.5 * a.data**1.5
    db = a.data - a.data / b.data**2 - 1 / a.data
    assert a.grad == pytest.approx(da, rel=1e-13)
    assert b.grad == pytest.approx(db, rel=1e-13)


def test_value_exponent_gets_log_derivative():
    a, b = Value(2.0), Value(3.0)
    (a ** b).backward()
    assert a.grad == pytest.approx(3 * 4.0, rel=1e-15)
    assert b.grad == pytest.approx(8.0 * math.log(2.0), rel=1e-15)


def test_negative_base_integer_exponent_forward_and_base_gradient():
    a = Value(-2.0)
    y = a ** 3
    y.backward()
    assert y.data == -8.0 and a.grad == 12.0


def test_nary_sum_is_one_node_with_unit_gradients():
    xs = [Value(float(i)) for i in range(5)]
    s = tg.sum(xs + [10])
    assert s.data == 20.0
    assert s.op.name == "sum" and len(s.parents) == 6
    assert len(topological_order(s)) == 7  # the sum node, its five inputs and the wrapped constant
    (s * s).backward()
    assert all(x.grad == 40.0 for x in xs)
    assert tg.sum([]).data == 0.0


@pytest.mark.parametrize("x, relu_grad, abs_grad", [(0.0, 0.0, 0.0), (2.0, 1.0, 1.0), (-2.0, 0.0, -1.0)])
def test_non_differentiable_points_follow_pytorch(x, relu_grad, abs_grad):
    a = Value(x)
    a.relu().backward()
    assert a.grad == relu_grad
    b = Value(x)
    abs(b).backward()
    assert b.grad == abs_grad


def test_stable_tanh_and_sigmoid_at_extremes():
    assert Value(1000.0).sigmoid().data == 1.0
    assert Value(-1000.0).sigmoid().data == 0.0
    assert Value(-1000.0).tanh().data == -1.0
    assert Value(1000.0).softplus().data == 1000.0
    assert Value(-1000.0).softplus().data == 0.0
    s = Value(-1000.0)
    s.sigmoid().backward()
    assert s.grad == 0.0


# --- accumulation, shared nodes, second backward -------------------------------------------

def test_node_used_twice_gets_both_contributions():
    a = Value(3.0)
    b = a + a
    c = b * b  # c = 4a², dc/da = 8a
    c.backward()
    assert a.grad == 24.0
    assert b.grad == 2 * b.data


def test_leaf_grads_accumulate_and_intermediates_are_recomputed():
    x = Value(2.0)
    h = x * x
    y = h * 3.0
    y.backward()
    assert (x.grad, h.grad) == (12.0, 3.0)
    y.backward()
    assert x.grad == 24.0  # leaf: accumulated
    assert h.grad == 3.0  # intermediate: the latest backward, not doubled
    y.zero_grad()
    assert x.grad == 0.0 and h.grad == 0.0 and y.grad == 0.0


def test_backward_with_explicit_gradient_and_on_a_leaf():
    x = Value(2.0)
    (x * x).backward(grad=0.5)
    assert x.grad == 2.0
    x.backward()
    assert x.grad == 3.0


def test_topological_order_puts_parents_first():
    a = Value(1.0)
    b = a * 2
    c = a + b
    d = c * b
    order = topological_order(d)
    pos = {id(v): i for i, v in enumerate(order)}
    assert len(order) == len(pos)
    for v in order:
        for p in v.parents:
            assert pos[id(p)] < pos[id(v)]
    assert order[-1] is d


# --- grad() ------------------------------------------------------------------------------------

def test_grad_returns_values_and_leaves_dot_grad_untouched():
    x, y = Value(1.5), Value(-2.0)
    z = x * y + x.sin()
    gx, gy = grad(z, [x, y])
    assert gx.data == pytest.approx(y.data + math.cos(1.5), rel=1e-15)
    assert gy.data == 1.5
    assert x.grad == 0.0 and y.grad == 0.0 and z.grad == 0.0
    z.backward()
    before = [(v, v.grad) for v in topological_order(z)]
    grad(z, [x, y])
    assert [(v, v.grad) for v in topological_order(z)] == before


def test_second_and_third_derivatives_through_create_graph():
    x = Value(0.7)
    y = x.tanh()
    (d1,) = grad(y, x, create_graph=True)
    (d2,) = grad(d1, x, create_graph=True)
    (d3,) = grad(d2, x)
    t = math.tanh(0.7)
    assert d1.data == pytest.approx(1 - t**2, rel=1e-14)
    assert d2.data == pytest.approx(-2 * t * (1 - t**2), rel=1e-13)
    assert d3.data == pytest.approx(-2 * (1 - t**2) ** 2 + 4 * t**2 * (1 - t**2), rel=1e-12)


def test_mixed_second_derivative_of_product_and_power():
    x, y = Value(1.3), Value(0.4)
    z = x ** y * x  # x^(y+1)
    (dx,) = grad(z, x, create_graph=True)
    dxx, dxy = grad(dx, [x, y])
    p = y.data + 1
    assert dxx.data == pytest.approx(p * (p - 1) * x.data ** (p - 2), rel=1e-13)
    assert dxy.data == pytest.approx(x.data ** (p - 1) * (1 + p * math.log(x.data)), rel=1e-13)


def test_grad_with_multiple_outputs_and_grad_outputs():
    x = Value(2.0)
    g = grad([x * x, x * 3.0], x, grad_outputs=[1.0, 2.0])[0]
    assert g.data == 4.0 + 6.0


def test_grad_unused_input_is_an_error_unless_allowed():
    x, unused = Value(1.0), Value(2.0)
    with pytest.raises(ValueError, match="allow_unused=True"):
        grad(x * 2, [x, unused])
    assert grad(x * 2, [x, unused], allow_unused=True)[1] is None


def spied_mul(calls: list):
    """A primitive computing a * b whose two per-input rules note each call in ``calls``."""
    def rule(i, d):
        def vjp_i(m, g, out, a, b):
            calls.append(i)
            return g * d(a, b)
        return vjp_i
    return tg.ops.Primitive("t_spied_mul", 2, lambda m, a, b: a * b,
                            vjps=(rule("a", lambda a, b: b), rule("b", lambda a, b: a)))


def test_grad_runs_no_rule_for_a_parent_off_the_paths_to_the_inputs():
    calls = []
    op = spied_mul(calls)
    x, w, c = Value(3.0), Value(-2.0), Value(0.5)
    h = tg.engine.apply(op, x, w)            # x: data, w: a weight
    y = tg.engine.apply(op, h.tanh(), c)     # c: a constant nobody asks about
    (gw,) = grad(y, [w])
    t = math.tanh(-6.0)
    assert gw.data == pytest.approx(0.5 * (1 - t * t) * 3.0, rel=1e-14)  # closed form
    assert sorted(calls) == ["a", "b"]  # y's rule for h (not c), h's rule for w (not x)
    calls.clear()
    grad(y, [x, w, c])
    assert sorted(calls) == ["a", "a", "b", "b"]
    calls.clear()
    y.backward()  # backward gives every node its gradient (the pictures show them all)
    assert sorted(calls) == ["a", "a", "b", "b"] and x.grad == pytest.approx(0.5 * (1 - t * t) * -2.0)


def test_grad_with_respect_to_an_intermediate_node_stops_there():
    calls = []
    op = spied_mul(calls)
    x, w = Value(3.0), Value(-2.0)
    h = tg.engine.apply(op, x, w)
    y = h * h
    assert grad(y, [h])[0].data == 2.0 * -6.0
    assert calls == []  # nothing below h is needed


def test_grad_rejects_non_values_and_mismatched_grad_outputs():
    x = Value(1.0)
    with pytest.raises(TypeError, match="inputs must be Values"):
        grad(x * 2, [1.0])
    with pytest.raises(ValueError, match="2 grad_outputs for 1 outputs"):
        grad(x * 2, x, grad_outputs=[1.0, 1.0])


# --- no_grad -----------------------------------------------------------------------------------

def test_no_grad_records_no_graph_and_restores_state():
    x = Value(2.0)
    with no_grad():
        assert not is_grad_enabled()
        y = x * 3 + 1
        with enable_grad():
            z = x * 2
        assert not is_grad_enabled()
    assert is_grad_enabled()
    assert y.data == 7.0 and y.is_leaf and y.parents == ()
    assert z.op is not None


def test_no_grad_as_decorator_and_after_an_exception():
    @no_grad()
    def f(v):
        return v.exp()

    assert f(Value(0.0)).is_leaf
    with pytest.raises(RuntimeError):
        with no_grad():
            raise RuntimeError("boom")
    assert is_grad_enabled()


# --- math-domain errors ----------------------------------------------------------------------

@pytest.mark.parametrize(
    "make, error, text",
    [
        (lambda: Value(0.0).log(), ValueError, "log(0.0)"),
        (lambda: Value(-1.0).log(), ValueError, "log(-1.0)"),
        (lambda: Value(-1.0).sqrt(), ValueError, "sqrt(-1.0)"),
        (lambda: Value(1.5) / 0, ZeroDivisionError, "1.5 / 0.0"),
        (lambda: 1.5 / Value(0.0), ZeroDivisionError, "1.5 / 0.0"),
        (lambda: Value(0.0) ** -1, ZeroDivisionError, "0.0 ** -1"),
        (lambda: Value(-8.0) ** (1 / 3), ValueError, "(-8.0) ** 0.333"),
        (lambda: Value(-8.0) ** Value(0.5), ValueError, "(-8.0) ** 0.5"),
    ],
)
def test_math_domain_errors_name_the_operation_and_input(make, error, text):
    with pytest.raises(error) as info:
        make()
    assert text in str(info.value)


@pytest.mark.parametrize("make, expected", [
    (lambda: Value(1e200) * Value(1e200), math.inf),
    (lambda: Value(1e200) ** 2, math.inf),
    (lambda: Value(-10.0) ** 401, -math.inf),
    (lambda: Value(10.0) ** Value(400.0), math.inf),
    (lambda: 10 ** Value(400.0), math.inf),
    (lambda: Value(1000.0).exp(), math.inf),
])
def test_overflow_gives_inf_like_multiplication_never_overflow_error(make, expected):
    # One policy (docs/engine.md): Python raises OverflowError for 1e200 ** 2 and math.exp(1000)
    # but not for 1e200 * 1e200; the engine gives inf for all three, as NumPy and PyTorch do.
    assert make().data == expected


def test_infinite_derivative_in_backward_names_the_operation():
    x = Value(0.0)
    with pytest.raises(ZeroDivisionError, match=r"derivative of sqrt\(0.0\)"):
        x.sqrt().backward()
    with pytest.raises(ZeroDivisionError, match=r"derivative of sqrt\(0.0\)"):
        grad(x.sqrt(), x)


def test_no_grad_still_checks_domains():
    with no_grad(), pytest.raises(ValueError, match="log"):
        Value(-1.0).log()


# --- grad mode is per thread -----------------------------------------------------------------

def test_another_threads_no_grad_does_not_drop_this_threads_graph():
    import threading

    inside, done = threading.Event(), threading.Event()

    def other():
        with no_grad():
            inside.set()
            done.wait(10)

    t = threading.Thread(target=other)
    t.start()
    try:
        assert inside.wait(10)
        x = Value(2.0)
        ys = [x * x for _ in range(1000)]  # built while the other thread sits in no_grad
        assert is_grad_enabled()
        assert all(y.parents == (x, x) for y in ys)
        (g,) = grad(tg.sum(ys), x)
        assert g.data == 4000.0
    finally:
        done.set()
        t.join()


def run_interleaved(steps):
    """Run ``steps`` ((thread number, function) pairs) in this exact order, each step in its own
    thread of two; returns what each step returned."""
    import threading

    turn, results, cond = [0], [None] * len(steps), threading.Condition()

    def worker(me):
        for k, (who, fn) in enumerate(steps):
            if who != me:
                continue
            with cond:
                assert cond.wait_for(lambda: turn[0] == k, timeout=10), f"step {k} never came"
            results[k] = fn()
            with cond:
                turn[0] += 1
                cond.notify_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert turn[0] == len(steps)
    return results


@pytest.mark.parametrize("second", [no_grad, enable_grad])
@pytest.mark.parametrize("first_leaves_first", [True, False])
def test_interleaved_grad_modes_in_two_threads_leave_recording_on(second, first_leaves_first):
    # With one process-wide flag: A enters no_grad, B enters no_grad (saving False), A leaves
    # (restoring True), B leaves (restoring False): recording stayed off for good.
    a, b = no_grad(), second()
    records = lambda: (Value(1.0) * 2).op is not None  # noqa: E731
    exits = [(0, lambda: a.__exit__(None, None, None)), (1, lambda: b.__exit__(None, None, None))]
    results = run_interleaved([
        (0, a.__enter__), (1, b.__enter__),
        (0, records), (1, records),
        *(exits if first_leaves_first else exits[::-1]),
        (0, records), (1, records), (0, is_grad_enabled), (1, is_grad_enabled),
    ])
    assert results[2:4] == [False, second is enable_grad]
    assert results[6:] == [True, True, True, True]
    assert is_grad_enabled() and records()


def test_a_new_thread_records_even_when_started_inside_no_grad():
    import threading

    seen = []
    with no_grad():
        t = threading.Thread(target=lambda: seen.append((is_grad_enabled(), (Value(1.0) + 1).op is not None)))
        t.start()
        t.join()
        assert (Value(1.0) + 1).op is None
    assert seen == [(True, True)]


# --- scale -----------------------------------------------------------------------------------

def test_backward_of_a_million_node_chain_without_recursion():
    limit = sys.getrecursionlimit()
    x = Value(1.0)
    y = x
    for _ in range(1_000_000):
        y = y + 1e-6  # d y/dx = 1, data grows by 1 in total
    y.backward()
    assert x.grad == 1.0
    assert y.data == pytest.approx(2.0, rel=1e-9)
    assert sys.getrecursionlimit() == limit
    del y  # freeing a deep chain must not overflow the C stack
    gc.collect()
    assert x.grad == 1.0
