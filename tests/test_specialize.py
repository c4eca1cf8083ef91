"""The generated float functions of specialize.py against the rules they are written from: for every
primitive, the same floats, NaNs, signed zeros and errors as calling the table's rules; the source
reads like the rules; rules that cannot be written out are called, and keep their meaning."""

import contextlib
import dataclasses
import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_edu as te
from tinygrad_edu import Value, ops, specialize
from tinygrad_edu.custom import primitive
from tinygrad_edu.engine import _backward_order, _calling_rules, apply
from tinygrad_edu.ops import FLOAT_MATH
from tinygrad_edu.testing.strategies import expressions

SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 3.0, 1e-300, -1e-300, 1e300, 710.0, -710.0,
           math.inf, -math.inf, math.nan]
FLOATS = st.sampled_from(SPECIAL) | st.floats(-50.0, 50.0) | st.floats(allow_nan=True, allow_infinity=True)

BUILTIN = [ops.PRIMITIVES[name] for name in ops.BUILTIN_NAMES]  # not the custom ones other tests add
EXAMPLE_MEMBERS = [m for f in ops.FAMILIES.values() for m in f.members()] + [
    ops.pow_const(c) for c in (0.0, 0.5, -1.0, 2.0, 3.0, -2.5)] + [ops.rpow_const(c) for c in (0.0, 2.0, 0.5, -2.0)]
EVERY_OP = list({id(op): op for op in [*BUILTIN, *EXAMPLE_MEMBERS] if op.arity in (1, 2)}.values())


def same_float(a: float, b: float) -> bool:
    """Identical floats, 0.0 and -0.0 told apart; any NaN equals any NaN (which NaN an operation
    on two NaNs gives, and its sign, is the CPU's and compiler's choice: CPython's specialised
    float multiplication may give the other operand's than the generic one)."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return struct.pack("<d", a) == struct.pack("<d", b)


def outcome(fn):
    """(result, None) or (None, (exception type, message))."""
    try:
        return fn(), None
    except (ArithmeticError, ValueError) as err:
        return None, (type(err), str(err))


def leaf(x: float) -> Value:
    return Value(x)


@pytest.mark.parametrize("op", EVERY_OP, ids=lambda op: f"{op.name}{dict(op.params) or ''}")
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_the_generated_backward_gives_the_floats_and_errors_of_the_rules(op, data):
    xs = [data.draw(FLOATS, label=f"x{i}") for i in range(op.arity)]
    g = data.draw(FLOATS, label="g")
    out, err = outcome(lambda: op.forward(FLOAT_MATH, *xs))
    if err is not None:
        return  # no node: the forward rule refused these inputs
    node = Value(out, _op=op, _prev=tuple(leaf(x) for x in xs))
    node.grad = g
    got, got_err = outcome(lambda: op.float_backward(node))
    expected = [outcome(lambda i=i: 0.0 + rule(FLOAT_MATH, g, out, *xs)) for i, rule in enumerate(op.vjps)]
    first_error = next((e for _, e in expected if e is not None), None)
    if first_error is not None:
        assert got_err == first_error
    else:
        assert got_err is None
        for parent, (value, _) in zip(node.parents, expected):
            assert same_float(parent.grad, value), [struct.pack("<d", v).hex() for v in (*xs, g, parent.grad, value)]
    # grad()'s step: only the needed parents' rules run, and their values are stored as they are
    for needed in [set(node.parents), {node.parents[-1]}]:
        grads: dict = {}
        _, got_err = outcome(lambda: op.float_grad(node, g, grads, needed))
        wanted = [(i, p) for i, p in enumerate(node.parents) if p in needed]
        first_error = next((expected[i][1] for i, _ in wanted if expected[i][1] is not None), None)
        assert got_err == first_error
        if got_err is None:
            assert set(grads) == needed
            for i, p in wanted:
                assert same_float(grads[p], op.vjps[i](FLOAT_MATH, g, out, *xs))


@pytest.mark.parametrize("op", [op for op in BUILTIN if op.method and op.arity in (1, 2)],
                         ids=lambda op: op.name)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_the_generated_operators_and_methods_give_the_values_and_errors_of_apply(op, data):
    xs = [data.draw(FLOATS, label=f"x{i}") for i in range(op.arity)]
    method = getattr(Value, op.method)
    got, got_err = outcome(lambda: method(*[Value(x) for x in xs]))
    expected, expected_err = outcome(lambda: apply(op, *xs))
    assert got_err == expected_err
    if got_err is None:
        assert same_float(got.data, expected.data)
        assert got.op is op and all(same_float(p.data, x) for p, x in zip(got.parents, xs))
    if op.arity == 2 and got_err is None:  # a number on either side is made a leaf, as Value(x) is
        assert same_float(method(Value(xs[0]), xs[1]).data, expected.data)
        assert same_float(getattr(Value, "__r" + op.method[2:])(Value(xs[1]), xs[0]).data, expected.data)


def test_rules_that_are_one_expression_are_written_out_and_the_others_called():
    called = set()
    for op in [*BUILTIN, *EXAMPLE_MEMBERS]:
        source = specialize.backward_source(op)
        if "_rule" in source or "_vjp" in source:
            called.add(f"{op.name}{op.params}")
        assert ("_rule" in source or "_vjp" in source) == any(
            name in specialize.grad_source(op) for name in ("_rule", "_vjp"))
    # sum takes any number of inputs; gelu(approximate='tanh')'s rule has a local variable
    assert called == {"sum()", "gelu(('approximate', 'tanh'),)"}
    forward_called = {op.name for op in BUILTIN
                      if op.method and specialize.method_source(op, "f", "", "") is None}
    assert forward_called == set()


def test_the_generated_source_reads_like_the_rules():
    assert specialize.backward_source(ops.MUL) == (
        "def mul_backward(_node):\n"
        "    _x0, _x1 = _node._prev\n"
        "    g, a, b = _node.grad, _x0.data, _x1.data\n"
        "    _x0.grad += g * b\n"
        "    _x1.grad += g * a"
    )
    # m.step(x) is FloatMath.step's one expression, written out
    assert specialize.backward_source(ops.RELU) == (
        "def relu_backward(_node):\n"
        "    _x0, = _node._prev\n"
        "    g, x = _node.grad, _x0.data\n"
        "    _x0.grad += g * (1.0 if x > 0.0 else 0.0 if x <= 0.0 else math.nan)"
    )
    source, _ = specialize.method_source(ops.RELU, "relu", "", "return _data")
    assert "_data = 0.0 if x <= 0.0 else x" in source


def test_grad_runs_the_rules_of_the_needed_inputs_only():
    assert specialize.grad_source(ops.MUL) == (
        "def mul_grad(_node, _g, _grads, _needed):\n"
        "    _x0, _x1 = _node._prev\n"
        "    g, a, b = _g, _x0.data, _x1.data\n"
        "    if _x0 in _needed:\n"
        "        _gp = g * b\n"
        "        _old = _grads.get(_x0)\n"
        "        _grads[_x0] = _gp if _old is None else _old + _gp\n"
        "    if _x1 in _needed:\n"
        "        _gp = g * a\n"
        "        _old = _grads.get(_x1)\n"
        "        _grads[_x1] = _gp if _old is None else _old + _gp"
    )
    x, w = Value(0.0), Value(3.0)
    y = x.sqrt() * w  # sqrt's derivative at 0 divides by zero, but x is not asked for
    (gw,) = te.grad(y, [w])
    assert gw.data == 0.0  # d/dw sqrt(x)·w = sqrt(x) = 0
    with pytest.raises(ZeroDivisionError, match="in grad, the derivative of sqrt"):
        te.grad(y, [x])


def test_two_rules_on_one_line_are_told_apart():
    source = specialize.backward_source(ops.MAXIMUM)  # its two lambdas differ in one sign, on one line
    assert "_x0.grad += g * (0.5 * (1.0 + m.sign(a - b)))" in source
    assert "_x1.grad += g * (0.5 * (1.0 - m.sign(a - b)))" in source
    a, b = Value(3.0), Value(1.0)
    te.maximum(a, b).backward()
    assert (a.grad, b.grad) == (1.0, 0.0)


def test_family_members_keep_their_own_parameters():
    grads = []
    for slope in (0.1, 0.3):
        x = Value(-2.0)
        x.leaky_relu(slope).backward()
        grads.append(x.grad)
    assert grads == [0.1, 0.3]
    y = Value(2.0)
    (y ** 3).backward()
    assert y.grad == 3 * 2.0**2  # d/dy y**3 = 3y²
    z = Value(2.0)
    (3.0 ** z).backward()
    assert z.grad == pytest.approx(3.0**2 * math.log(3.0), rel=1e-15)


def test_a_rule_without_source_is_called():
    derivative = eval("lambda x: 3.0 * x * x")  # noqa: S307  (no source file to read)
    cube = primitive("spec_cube_nosource", lambda x: x**3, derivative)
    assert "_rule0(" in specialize.backward_source(cube.op)
    x = Value(2.0)
    cube(x).backward()
    assert x.grad == 12.0


SCALE = 2.0


def test_a_rule_reading_a_global_of_another_module_sees_it_change():
    global SCALE
    scaled = primitive("spec_scaled", lambda x: SCALE * x, lambda x: SCALE)
    x = Value(1.0)
    scaled(x).backward()
    assert x.grad == 2.0
    SCALE = 5.0
    try:
        x.grad = 0.0
        scaled(x).backward()
        assert x.grad == 5.0  # not the 2.0 it had when the function was generated
    finally:
        SCALE = 2.0


def test_a_replaced_record_uses_its_own_rules():
    wrong = dataclasses.replace(ops.MUL, vjps=(lambda m, g, out, a, b: g * a, lambda m, g, out, a, b: g * b))
    a, b = Value(2.0), Value(5.0)
    Value(10.0, _op=wrong, _prev=(a, b)).backward()
    assert (a.grad, b.grad) == (2.0, 5.0)  # the wrong rule's answer
    c, d = Value(2.0), Value(5.0)
    (c * d).backward()
    assert (c.grad, d.grad) == (5.0, 2.0)  # MUL itself is untouched


def test_a_number_on_either_side_becomes_a_leaf():
    x = Value(3.0)
    for y in (x * 2, 2 * x, x - 1, 1 - x, x / 4, 4 / x):
        assert all(p.is_leaf for p in y.parents if p is not x)
    with pytest.raises(TypeError, match="Value needs a real number"):
        x * "2"
    with pytest.raises(TypeError, match="Value needs a real number"):
        x + True


def test_errors_in_generated_code_name_the_operation():
    with pytest.raises(ZeroDivisionError, match=r"^\(1\.0 / 0\.0\): float division by zero$"):
        Value(1.0) / 0.0
    with pytest.raises(ValueError, match=r"^log\(-1\.0\): math domain error"):
        Value(-1.0).log()
    y = Value(0.0)
    z = y.sqrt()
    with pytest.raises(ZeroDivisionError, match=r"^in backward, the derivative of sqrt\(0\.0\)"):
        z.backward()


def test_backward_marks_met_nodes_by_a_zero_of_its_own():
    # The walk relies on float("0") making a new object each time, as CPython and PyPy do.
    assert float("0") is not float("0")
    x = Value(3.0)
    h = x * 2.0
    y1 = h * h  # d/dx (2x)² = 8x = 24
    y1.backward()
    assert x.grad == 24.0
    y2 = h + h * 3.0  # shares h, whose grad the last walk left at a number
    y2.backward()
    assert x.grad == 24.0 + 8.0  # d/dx (2x + 6x) = 8
    order = _backward_order(y2)
    assert len(order) == len(set(order)) == 3  # h, h * 3, y2: each once, leaves left out
    assert order.index(h) < order.index(y2)


@settings(max_examples=150, deadline=None)
@given(expressions(max_ops=8, near_kinks=True))
def test_written_out_steps_and_the_plain_loops_agree_on_random_graphs(case):
    fn, point = case
    runs = []
    for by_rules in (False, True):
        with _calling_rules() if by_rules else contextlib.nullcontext():
            xs = [Value(x) for x in point]
            y = fn(*xs)
            y.backward()
            grads = te.grad(y, xs, allow_unused=True)
            runs.append(([x.grad for x in xs], [g.data if g is not None else None for g in grads]))
    (backward_fast, grad_fast), (backward_rules, grad_rules) = runs
    assert all(same_float(a, b) for a, b in zip(backward_fast, backward_rules)), (fn, point)
    assert all(a is b is None or same_float(a, b) for a, b in zip(grad_fast, grad_rules)), (fn, point)
