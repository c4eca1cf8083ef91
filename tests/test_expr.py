"""The safe expression parser: what it builds (values and gradients against closed forms and
finite differences) and everything it must refuse before evaluating."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_edu import Value
from tinygrad_edu.expr import (
    MAX_DEPTH,
    ExpressionError,
    UndefinedVariableError,
    compile_expression,
    functions,
    parse_expression,
)


def test_tanh_neuron_value_and_gradients_match_closed_form():
    x, w, b = 0.5, -1.5, 0.2
    y = parse_expression("tanh(x*w + b)", {"x": x, "w": w, "b": b})
    t = math.tanh(x * w + b)
    assert y.data == pytest.approx(t, abs=1e-15)
    y.backward()
    leaves = {v.label: v for v in _leaves(y)}
    d = 1 - t * t
    assert leaves["x"].grad == pytest.approx(w * d)
    assert leaves["w"].grad == pytest.approx(x * d)
    assert leaves["b"].grad == pytest.approx(d)


def test_one_leaf_per_variable_and_constant_powers():
    y = parse_expression("x*x + x**3", {"x": 2.0})
    assert y.data == 12.0
    labelled = [v for v in _leaves(y) if v.label]
    assert len(labelled) == 1  # x is one node used three times
    cube = y.parents[1]
    assert cube.op.name == "**3"  # a constant exponent is the x ** c primitive
    y.backward()
    assert labelled[0].grad == pytest.approx(2 * 2.0 + 3 * 2.0**2)


def test_values_are_used_as_given():
    a = Value(3.0, label="a")
    y = parse_expression("2 * a - a / 4", {"a": a})
    y.backward()
    assert a.grad == pytest.approx(2 - 0.25)


def test_functions_come_from_the_primitive_table():
    names = set(functions())
    assert {"exp", "log", "sqrt", "tanh", "sigmoid", "relu", "sin", "cos", "abs"} <= names
    assert not {"add", "mul", "neg", "mod", "where"} & names


@pytest.mark.parametrize(
    "text, reference",
    [
        ("exp(x) - log(y)", lambda x, y: math.exp(x) - math.log(y)),
        ("sqrt(y) / (1 + x**2)", lambda x, y: math.sqrt(y) / (1 + x**2)),
        ("sigmoid(x) * relu(y - 1)", lambda x, y: 1 / (1 + math.exp(-x)) * max(y - 1, 0.0)),
        ("sin(x) * cos(y) + abs(x - y)", lambda x, y: math.sin(x) * math.cos(y) + abs(x - y)),
        ("-x + +y - -2", lambda x, y: -x + y + 2),
        ("y ** x", lambda x, y: y**x),
        ("2 ** x * 3 ** -2", lambda x, y: 2**x * 3**-2),
    ],
)
def test_gradients_match_finite_differences(text, reference):
    x0, y0 = 0.7, 2.3
    out = parse_expression(text, {"x": x0, "y": y0})
    assert out.data == pytest.approx(reference(x0, y0), rel=1e-12)
    out.backward()
    leaves = {v.label: v for v in _leaves(out) if v.label}
    h = 1e-6
    dx = (reference(x0 + h, y0) - reference(x0 - h, y0)) / (2 * h)
    assert leaves["x"].grad == pytest.approx(dx, rel=1e-6, abs=1e-8)
    if "y" in leaves:
        dy = (reference(x0, y0 + h) - reference(x0, y0 - h)) / (2 * h)
        assert leaves["y"].grad == pytest.approx(dy, rel=1e-6, abs=1e-8)


# Random expressions: the text and its value are built side by side by an independent evaluator.
_leaf = st.one_of(
    st.sampled_from([("x", 0.8), ("y", -1.3)]),
    st.integers(1, 9).map(lambda n: (str(n), float(n))),
)


def _combine(children):
    binary = st.tuples(children, st.sampled_from(["+", "-", "*"]), children).map(
        lambda t: (f"({t[0][0]} {t[1]} {t[2][0]})",
                   {"+": t[0][1] + t[2][1], "-": t[0][1] - t[2][1], "*": t[0][1] * t[2][1]}[t[1]])
    )
    unary = st.tuples(st.sampled_from(["tanh", "sin", "-"]), children).map(
        lambda t: (f"{t[0]}({t[1][0]})" if t[0] != "-" else f"-{t[1][0]}",
                   {"tanh": math.tanh, "sin": math.sin, "-": lambda v: -v}[t[0]](t[1][1]))
    )
    return st.one_of(binary, unary)


@given(st.recursive(_leaf, _combine, max_leaves=12))
def test_random_expressions_evaluate_like_python_math(case):
    text, expected = case
    out = parse_expression(text, {"x": 0.8, "y": -1.3})
    assert out.data == pytest.approx(expected, rel=1e-12, abs=1e-12)


UNSAFE = [
    ("x.__class__", "attribute"),
    ("(1).real", "attribute"),
    ("x[0]", "subscript"),
    ("__import__('os').system('echo hacked')", "may be called"),
    ("__import__('os')", "unknown function __import__"),
    ("import os", "not a valid expression"),
    ("lambda: 1", "lambda"),
    ("foo(x)", "unknown function foo"),
    ("eval('1')", "unknown function eval"),
    ("x.tanh()", "only the functions"),
    ("9**9**9", "exponent"),
    ("x ** 1001", "exponent"),
    ("x ** -(10 ** 4)", "exponent"),
    ("x ** (1e308 * 10)", "exponent"),
    ("-" * (MAX_DEPTH + 5) + "x", "nested too deeply"),
    ("tanh(" * 300 + "x" + ")" * 300, "nested"),
    ("'text'", "only numbers"),
    ("True + x", "only numbers"),
    ("1j * x", "only numbers"),
    ("[x for x in y]", "comprehensions"),
    ("x if y else 1", "if"),
    ("x < y", "comparisons"),
    ("x and y", "and"),
    ("(y := 2)", "assignment"),
    ("f'{x}'", "f-strings"),
    ("x // 2", "operator //"),
    ("~x", "operator ~"),
    ("tanh(x, y)", "exactly one argument"),
    ("tanh(x=1)", "exactly one argument"),
    ("tanh", "is a function"),
    ("_secret + 1", "starting with '_'"),
    ("", "empty"),
    ("x" * 3000, "characters long"),
    ("1" + "0" * 400, "too large"),
]


@pytest.mark.parametrize("text, reason", UNSAFE, ids=[u[0][:20] for u in UNSAFE])
def test_unsafe_or_unsupported_forms_are_rejected_with_one_line(text, reason):
    with pytest.raises(ExpressionError) as info:
        compile_expression(text)
    message = str(info.value)
    assert reason in message
    assert "\n" not in message


def test_nothing_is_evaluated_when_rejected(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ExpressionError):
        parse_expression("x + __import__('pathlib').Path('pwned').touch()", {"x": 1.0})
    assert not (tmp_path / "pwned").exists()


def test_missing_variables_are_listed_sorted():
    with pytest.raises(UndefinedVariableError) as info:
        parse_expression("a * z + m", {"m": 1.0})
    assert info.value.names == ("a", "z")
    assert "a, z" in str(info.value)


def test_bad_variable_values_and_types():
    with pytest.raises(ExpressionError, match="must be a number"):
        parse_expression("x + 1", {"x": "3"})
    with pytest.raises(TypeError):
        compile_expression(b"x + 1")


def test_compiled_expression_reports_variables_and_can_be_called():
    expr = compile_expression("w * x + b")
    assert expr.variables == ("b", "w", "x")
    assert expr(w=2.0, x=3.0, b=1.0).data == 7.0


def test_math_errors_name_the_operation():
    with pytest.raises(ValueError, match="log"):
        parse_expression("log(x)", {"x": -1.0})


def _leaves(root):
    seen, stack, out = set(), [root], []
    while stack:
        v = stack.pop()
        if id(v) in seen:
            continue
        seen.add(id(v))
        if v.is_leaf:
            out.append(v)
        stack.extend(v.parents)
    return out


# --- text that is no text, and the nesting limit ------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("\ud800", "column 1: U+D800 is a lone surrogate"),
    ("x + \udcff", "column 5: the byte 0xff is not UTF-8"),  # how Python passes on a command-line byte
    ("x\x00", "column 2: the NUL character"),
])
def test_text_that_is_not_text_is_an_expression_error(text, message):
    import re

    with pytest.raises(ExpressionError, match=re.escape(message)):
        compile_expression(text)


@pytest.mark.parametrize("make", [
    lambda n: "-" * n + "x",
    lambda n: "exp(" * n + "x" + ")" * n,
    lambda n: "x" + "+x" * n,
    lambda n: "(" * 50 + "-" * n + "x" + ")" * 50,  # parentheses do not count
])
def test_exactly_max_depth_operations_may_nest(make):
    compile_expression(make(MAX_DEPTH))
    with pytest.raises(ExpressionError, match=f"nested too deeply \\(at most {MAX_DEPTH} levels"):
        compile_expression(make(MAX_DEPTH + 1))


def test_a_max_depth_expression_evaluates_and_differentiates():
    out = parse_expression("-" * MAX_DEPTH + "x", {"x": 1.5})
    out.backward()
    assert out.data == 1.5
