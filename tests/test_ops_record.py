"""The primitive record is the one source of a primitive's facts: every math namespace provides
every function any rule uses; Value's methods and operators, the module's functions, the
expression parser, the strategies and the docs table are all made from the records."""

import math
import pathlib

import numpy as np
import pytest

import tinygrad_edu
from tinygrad_edu import Value, engine, ops
from tinygrad_edu.batched import NUMPY_MATH
from tinygrad_edu.expr import compile_expression, functions
from tinygrad_edu.symbolic import SYMBOLIC_MATH, local_derivatives
import tinygrad_edu.testing.gradcheck  # noqa: F401
gradcheck_module = __import__("sys").modules["tinygrad_edu.testing.gradcheck"]
from tinygrad_edu.testing.strategies import BUILTIN_OPS, DOMAINS, POW_CONST_EXPONENTS

ROOT = pathlib.Path(__file__).resolve().parents[1]
CANDIDATES = (0.7, 1.3, 0.35, 2.2, -0.45, -1.6, 3.1)


def every_builtin():
    """Every built-in primitive: the table, every family's example members and x ** c."""
    found = [ops.PRIMITIVES[n] for n in ops.BUILTIN_NAMES]
    found += [m for f in ops.FAMILIES.values() for m in f.members()]
    found += [ops.pow_const(c) for c in (*POW_CONST_EXPONENTS, 0.0)]
    return list(dict.fromkeys(found))


def a_point(op):
    """A point inside the op's interior, away from kinks: the first of a few candidate tuples."""
    n = 3 if op.arity == -1 else op.arity
    for i in range(len(CANDIDATES)):
        point = tuple(CANDIDATES[(i + 2 * j) % len(CANDIDATES)] for j in range(n))
        if op.interior(*point) and op.kink_distance(*point) > 0.05:
            return point
    raise AssertionError(f"no candidate point inside {op!r}'s interior")


class Recorder:
    """Wraps a namespace and records every function a rule looks up on it."""

    def __init__(self, base):
        self.base, self.used = base, set()

    def __getattr__(self, name):
        self.used.add(name)
        return getattr(self.base, name)


def used_by(op, point):
    """The namespace functions op's forward rule and derivative rule use (looked up at a point;
    rules evaluate both branches of a where, so every function is looked up at any point)."""
    fwd, bwd = Recorder(ops.FLOAT_MATH), Recorder(ops.FLOAT_MATH)
    out = op.forward(fwd, *point)
    op.vjp(bwd, 1.0, out, *point)
    return fwd.used, bwd.used


@pytest.mark.parametrize("op", every_builtin(), ids=repr)
def test_every_namespace_provides_every_function_the_rules_use(op):
    point = a_point(op)
    forward_uses, vjp_uses = used_by(op, point)
    # Floats run both rules; NumPy arrays both (the batched engine); Values the derivative rule
    # (grad(create_graph=True) and forward mode); complex numbers the forward rule (complex step).
    # The symbolic namespace (formulas for the pictures and the explorer) runs both too.
    namespaces = {"FLOAT_MATH": (ops.FLOAT_MATH, forward_uses | vjp_uses),
                  "NUMPY_MATH": (NUMPY_MATH, forward_uses | vjp_uses),
                  "VALUE_MATH": (engine.VALUE_MATH, vjp_uses),
                  "SYMBOLIC_MATH": (SYMBOLIC_MATH, forward_uses | vjp_uses)}
    if op.complex_step:
        namespaces["complex"] = (gradcheck_module._COMPLEX_MATH, forward_uses)
    for name, (namespace, needed) in namespaces.items():
        missing = {f for f in needed if not callable(getattr(namespace, f, None))}
        assert not missing, f"{name} lacks {sorted(missing)}, which {op!r} uses"


@pytest.mark.parametrize("op", every_builtin(), ids=repr)
def test_every_namespace_computes_what_floats_compute(op):
    # The rules give the same numbers on floats, arrays, Values and complex numbers (imaginary 0).
    point = a_point(op)
    out = op.forward(ops.FLOAT_MATH, *point)
    grads = op.vjp(ops.FLOAT_MATH, 0.75, out, *point)
    arrays = [np.array([x, x]) for x in point]
    got_out = op.forward(NUMPY_MATH, *arrays)
    got_grads = op.vjp(NUMPY_MATH, np.array([0.75, 0.75]), got_out, *arrays)
    assert np.allclose(got_out, out, rtol=1e-13, atol=0)
    assert np.allclose(np.array(np.broadcast_arrays(*got_grads, np.zeros(2))[:-1]), np.array(grads)[:, None], rtol=1e-13)
    values = [Value(x) for x in point]
    value_grads = op.vjp(engine.VALUE_MATH, Value(0.75), Value(out), *values)
    assert [float(engine._data(g)) for g in value_grads] == pytest.approx(grads, rel=1e-13)
    if op.complex_step:
        z = op.forward(gradcheck_module._COMPLEX_MATH, *(complex(x) for x in point))
        assert complex(z).real == pytest.approx(out, rel=1e-13) and abs(complex(z).imag) <= 1e-300


@pytest.mark.parametrize("op", every_builtin(), ids=repr)
def test_every_rule_writes_out_as_a_formula(op):
    # The symbolic namespace evaluates every derivative rule to a formula (no fallback ∂f/∂x).
    n = 3 if op.arity == -1 else op.arity
    formulas = local_derivatives(op, n)
    assert len(formulas) == n and not any(f.startswith("∂") for f in formulas), formulas


def test_value_methods_operators_and_functions_come_from_the_table():
    for name in ops.BUILTIN_NAMES:
        op = ops.PRIMITIVES[name]
        if op.method:
            assert callable(getattr(Value, op.method)), name
        if op.function:
            assert callable(getattr(tinygrad_edu, name)) and name in tinygrad_edu.__all__, name
    for family in ops.FAMILIES.values():
        if family.method:
            assert callable(getattr(Value, family.method))
    for name in ops.BUILTIN_NAMES:
        op = ops.PRIMITIVES[name]
        if op.method and not op.method.startswith("__") and op.arity == 1 and not op.params:
            (point,) = a_point(op)
            x = Value(point)
            y = getattr(x, op.method)()
            assert y.op is op and y.parents == (x,) and y.data == op.forward(ops.FLOAT_MATH, point)


def test_operators_apply_their_primitives_with_numbers_on_either_side():
    a = Value(7.5)
    for expr, op, data in [(a % 2, ops.MOD, 1.5), (-7.5 % Value(2.0), ops.MOD, 0.5), (a + 1, ops.ADD, 8.5),
                           (2 - a, ops.SUB, -5.5), (a * 2, ops.MUL, 15.0), (3 / a, ops.DIV, 0.4)]:
        assert expr.op is op and expr.data == data


def test_family_members_are_cached_and_print_their_parameters():
    assert ops.LEAKY_RELU(0.2) is ops.LEAKY_RELU(negative_slope=0.2)
    assert ops.LEAKY_RELU() is ops.PRIMITIVES["leaky_relu"]
    assert ops.LEAKY_RELU(0.2).format("x") == "leaky_relu(x, negative_slope=0.2)"
    assert ops.ELU().format("x") == "elu(x)"
    assert ops.CLAMP(min=0.0).format("x") == "clamp(x, min=0.0)"
    assert ops.WHERE(True).format("a", "b") == "where(a, b, condition=True)"
    for bad, error, text in [(lambda: ops.LEAKY_RELU("0.1"), TypeError, "negative_slope must be a real number"),
                             (lambda: ops.ELU(alpha=math.inf), ValueError, "alpha must be finite"),
                             (lambda: ops.GELU("fast"), ValueError, "approximate must be 'none' or 'tanh'"),
                             (lambda: ops.CLAMP(), TypeError, "clamp needs min or max"),
                             (lambda: ops.HARDTANH(1.0, -1.0), ValueError, "must not be greater"),
                             (lambda: ops.WHERE(1), TypeError, "condition must be a bool"),
                             (lambda: ops.LEAKY_RELU(slope=0.1), TypeError, "unknown parameter 'slope'"),
                             (lambda: Value(1.0).leaky_relu([0.1]), TypeError, "must be a real number")]:
        with pytest.raises(error, match=text):
            bad()


def test_the_parser_offers_every_call_primitive_with_its_arity_and_parameters():
    names = functions()
    for name in ops.BUILTIN_NAMES:
        op = ops.PRIMITIVES[name]
        if op.is_call and name != "where":
            assert name in names
    x, y = 0.6, -1.4
    cases = {
        "atan2(x, y)": math.atan2(x, y), "hypot(x, y)": math.hypot(x, y), "maximum(x, y)": x,
        "x % y": x % y, "sum(x, y, x)": 2 * x + y, "leaky_relu(y, negative_slope=0.2)": 0.2 * y,
        "clamp(y, min=-1)": -1.0, "gelu(x, approximate='tanh')": ops.GELU("tanh").forward(ops.FLOAT_MATH, x),
        "log1p(x) - log(1 + x)": 0.0, "floor(y) + ceil(y) + round(y) + trunc(y) + sign(y)": -2 - 1 - 1 - 1 - 1,
    }
    for text, expected in cases.items():
        assert compile_expression(text)(x=x, y=y).data == pytest.approx(expected, abs=1e-15), text


@pytest.mark.parametrize("text, message", [
    ("atan2(x)", "atan2 takes exactly 2 arguments"),
    ("exp(x, y)", "exp takes exactly one argument"),
    ("leaky_relu(x, slope=0.1)", "no parameter slope"),
    ("exp(x, base=2)", "no parameter base"),
    ("gelu(x, approximate='fast')", "approximate must be 'none' or 'tanh'"),
    ("leaky_relu(x, negative_slope=y)", "a parameter must be a number"),
    ("where(x, y)", "unknown function where"),
])
def test_the_parser_rejects_bad_calls_in_one_line(text, message):
    from tinygrad_edu.expr import ExpressionError

    with pytest.raises(ExpressionError, match=message) as info:
        compile_expression(text)
    assert "\n" not in str(info.value)


def test_strategies_read_domains_and_ops_from_the_table():
    assert set(ops.BUILTIN_NAMES) <= set(BUILTIN_OPS) and "pow_const" in BUILTIN_OPS
    for name in ops.BUILTIN_NAMES:
        assert DOMAINS[name] is ops.PRIMITIVES[name].interior


def test_complex_step_support_is_the_records_flag():
    assert gradcheck_module.COMPLEX_STEP_OPS == {n for n, op in ops.PRIMITIVES.items() if op.complex_step}
    assert {"exp", "asin", "log1p", "expm1", "logaddexp", "silu"} <= gradcheck_module.COMPLEX_STEP_OPS
    assert not {"abs", "floor", "mod", "maximum", "erf", "gelu"} & gradcheck_module.COMPLEX_STEP_OPS


def test_the_docs_table_is_the_one_made_from_the_records():
    text = (ROOT / "docs" / "engine.md").read_text(encoding="utf-8")
    start, end = "<!-- primitive-table: start -->", "<!-- primitive-table: end -->"
    table = text[text.index(start) + len(start): text.index(end)].strip()
    assert table == ops.markdown_table(), (
        "regenerate it: python -c 'from tinygrad_edu.ops import markdown_table; print(markdown_table())'")
