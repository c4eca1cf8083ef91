"""Tests of tinygrad_edu.symbolic: the rule table written out as formulas."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_edu import ops
from tinygrad_edu.symbolic import SYMBOLIC_MATH, Expr, input_names, local_derivatives, symbol

# Closed forms, written by hand (d out / d input, in the rule's own names; out is the output).
EXPECTED = {
    "add": ["1", "1"], "sub": ["1", "-1"], "mul": ["b", "a"], "div": ["1 / b", "-out / b"],
    "neg": ["-1"], "abs": ["sign(x)"], "exp": ["out"], "log": ["1 / x"], "sqrt": ["1 / (2 * out)"],
    "tanh": ["1 - out * out"], "sigmoid": ["out * (1 - out)"], "softplus": ["sigmoid(x)"],
    "relu": ["step(x)"], "sin": ["cos(x)"], "cos": ["-sin(x)"],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_local_derivatives_of_the_table_match_the_closed_forms(name):
    op = ops.PRIMITIVES[name]
    assert local_derivatives(op, op.arity) == EXPECTED[name]


def test_power_rules_read_as_calculus():
    assert local_derivatives(ops.pow_const(2), 1) == ["2 * x"]
    assert local_derivatives(ops.pow_const(3), 1) == ["3 * x ** 2"]
    assert local_derivatives(ops.pow_const(0), 1) == ["0"]
    da, db = local_derivatives(ops.POW, 2)
    assert da == "b * a ** ((1 if abs(a) + abs(b) <= 0 else b) - 1)"  # at (0, 0): 0 * 0**0, not 0 * 0**-1
    assert db.startswith("out * (log(a) if a > 0 else")  # a**b * log(a) where defined


def test_inputs_are_named_as_the_rule_names_them_and_sum_takes_any_number():
    assert input_names(ops.MUL, 2) == ["a", "b"]
    assert input_names(ops.TANH, 1) == ["x"]
    assert input_names(ops.SUM, 3) == ["x1", "x2", "x3"]
    assert local_derivatives(ops.SUM, 3) == ["1", "1", "1"]


def test_a_graph_s_own_names_can_stand_for_the_inputs():
    assert local_derivatives(ops.MUL, 2, ["x", "w"], "n") == ["w", "x"]
    assert local_derivatives(ops.TANH, 1, ["n"], "y") == ["1 - y * y"]


def test_every_rule_evaluates_in_the_namespace():
    for op in [ops.PRIMITIVES[name] for name in [*EXPECTED, "pow", "sum"]] + [ops.pow_const(-0.5)]:
        arity = 3 if op.arity == -1 else op.arity
        names = [symbol(n) for n in input_names(op, arity)]
        assert all(isinstance(d, (Expr, float)) for d in op.vjp(SYMBOLIC_MATH, symbol("g"), symbol("out"), *names))
        assert isinstance(op.forward(SYMBOLIC_MATH, *names), Expr)


def test_a_rule_on_plain_floats_gets_a_named_derivative_instead_of_a_formula():
    from tinygrad_edu.custom import primitive

    primitive("t_sym_cube", lambda x: math.pow(x, 3), lambda x: 3 * math.pow(x, 2))
    op = ops.PRIMITIVES["t_sym_cube"]
    assert local_derivatives(op, 1) == [f"∂t_sym_cube/∂{input_names(op, 1)[0]}"]


def test_a_symbolic_condition_cannot_be_used_as_a_bool():
    with pytest.raises(TypeError, match="m.where"):
        bool(symbol("x") > 0)


# Parentheses: a formula's text, read back as Python, computes what the tree computes.
_leaf = st.sampled_from(["a", "b", "c"]).map(symbol) | st.sampled_from([1.0, 2.0, 0.5, 3.0])


def _tree(children):
    return st.tuples(st.sampled_from(["+", "-", "*", "/", "neg"]), children, children)


@given(st.recursive(_leaf, _tree, max_leaves=8))
def test_written_formulas_keep_their_meaning(spec):
    env = {"a": 1.5, "b": -2.25, "c": 0.75}

    def build(s):
        if not isinstance(s, tuple):
            return s
        op, x, y = s[0], build(s[1]), build(s[2])
        if op == "neg":
            return -x if isinstance(x, Expr) else -x
        if op == "/" and not isinstance(x, Expr) and not isinstance(y, Expr) and not y:
            return math.nan  # two plain numbers: Python's 1.0 / 0.0 would raise before any formula is built
        return {"+": lambda: x + y, "-": lambda: x - y, "*": lambda: x * y, "/": lambda: x / y}[op]()

    def value(s):
        if isinstance(s, Expr):
            return env[str(s)]
        if not isinstance(s, tuple):
            return s
        op, x, y = s[0], value(s[1]), value(s[2])
        return {"+": x + y, "-": x - y, "*": x * y, "/": x / y if y else math.nan, "neg": -x}[op]

    want = value(spec)
    formula = build(spec)
    text = str(formula) if isinstance(formula, Expr) else repr(formula)
    if text == "nan" or not math.isfinite(want):
        return
    got = eval(text, {"__builtins__": {}, "nan": math.nan}, dict(env))  # the test reads our own formula back
    assert got == pytest.approx(want, rel=1e-9, abs=1e-12), text
