"""The new primitives against independent references: PyTorch's values at kinks and domain
edges, second derivatives against closed forms, precision where composites lose it, the
scalar engine against the batched engine, and domain errors that name the op."""

import math

import numpy as np
import pytest
from hypothesis import strategies as st

import tinygrad_edu as te
from tinygrad_edu import Value, grad, ops
from tinygrad_edu.batched import trace
from tinygrad_edu.engine import apply


def d1(f, *xs):
    vs = [Value(x) for x in xs]
    return [g.data for g in grad(f(*vs), vs)]


def d2(f, x):
    v = Value(x)
    (g,) = grad(f(v), v, create_graph=True)
    (h,) = grad(g, v, allow_unused=True)
    return 0.0 if h is None else h.data


# PyTorch's derivatives at kinks and jumps (torch/csrc/autograd/FunctionsManual.cpp and
# derivatives.yaml), written down as numbers.
KINKS = [
    ("leaky_relu(0) slope", lambda x: x.leaky_relu(0.2), [0.0], [0.2]),
    ("leaky_relu default slope", lambda x: x.leaky_relu(), [-3.0], [0.01]),
    ("elu(0) = alpha", lambda x: x.elu(alpha=0.5), [0.0], [0.5]),
    ("elu left branch", lambda x: x.elu(), [-1.0], [math.exp(-1.0)]),
    ("hardtanh at max_val", lambda x: x.hardtanh(), [1.0], [0.0]),
    ("hardtanh at min_val", lambda x: x.hardtanh(), [-1.0], [0.0]),
    ("hardtanh inside", lambda x: x.hardtanh(), [0.3], [1.0]),
    ("clamp at max", lambda x: x.clamp(-1.0, 1.0), [1.0], [1.0]),
    ("clamp at min", lambda x: x.clamp(min=-1.0), [-1.0], [1.0]),
    ("clamp outside", lambda x: x.clamp(max=0.5), [0.7], [0.0]),
    ("clamp with min > max gives max", lambda x: x.clamp(2.0, 1.0), [1.5], [0.0]),
    ("relu(0)", lambda x: x.relu(), [0.0], [0.0]),
    ("abs(0)", lambda x: abs(x), [0.0], [0.0]),
    ("sign(0)", lambda x: x.sign(), [0.0], [0.0]),
    ("floor at 2", lambda x: x.floor(), [2.0], [0.0]),
    ("ceil at 2", lambda x: x.ceil(), [2.0], [0.0]),
    ("round at 2.5", lambda x: x.round(), [2.5], [0.0]),
    ("trunc at -1", lambda x: x.trunc(), [-1.0], [0.0]),
    ("maximum tie", lambda a, b: te.maximum(a, b), [2.0, 2.0], [0.5, 0.5]),
    ("minimum tie", lambda a, b: te.minimum(a, b), [2.0, 2.0], [0.5, 0.5]),
    ("maximum", lambda a, b: te.maximum(a, b), [1.0, 2.0], [0.0, 1.0]),
    ("minimum", lambda a, b: te.minimum(a, b), [1.0, 2.0], [1.0, 0.0]),
    ("mod at a jump", lambda a, b: a % b, [4.0, 2.0], [1.0, -2.0]),
    ("mod negative", lambda a, b: a % b, [-7.5, 2.0], [1.0, 4.0]),
    ("mod negative divisor", lambda a, b: a % b, [7.5, -2.0], [1.0, 4.0]),
    ("where true", lambda a, b: te.where(True, a, b), [1.0, 2.0], [1.0, 0.0]),
    ("where false", lambda a, b: te.where(a > 5, a, b), [1.0, 2.0], [0.0, 1.0]),
    ("softsign(0)", lambda x: x.softsign(), [0.0], [1.0]),
    ("gelu(0)", lambda x: x.gelu(), [0.0], [0.5]),
    ("gelu tanh(0)", lambda x: x.gelu(approximate="tanh"), [0.0], [0.5]),
    ("silu(0)", lambda x: x.silu(), [0.0], [0.5]),
    ("logsigmoid(0)", lambda x: x.logsigmoid(), [0.0], [0.5]),
    ("logaddexp equal", lambda a, b: te.logaddexp(a, b), [3.0, 3.0], [0.5, 0.5]),
    ("atan2 on the cut, from above", lambda y, x: te.atan2(y, x), [0.0, -2.0], [-0.5, 0.0]),
]


@pytest.mark.parametrize("name, f, point, expected", KINKS, ids=[k[0] for k in KINKS])
def test_derivatives_at_kinks_are_pytorchs(name, f, point, expected):
    assert d1(f, *point) == pytest.approx(expected, rel=1e-15, abs=1e-300)


# Forward values where PyTorch defines them at special points (its forward rules).
VALUES = [
    (lambda: Value(-7.5) % 2, 0.5), (lambda: Value(7.5) % -2, -0.5), (lambda: Value(2.5).round(), 2.0),
    (lambda: Value(-2.5).round(), -2.0), (lambda: Value(3.5).round(), 4.0), (lambda: Value(-0.3).trunc(), 0.0),
    (lambda: Value(-1.2).floor(), -2.0), (lambda: Value(-1.2).ceil(), -1.0), (lambda: Value(-3.0).sign(), -1.0),
    (lambda: Value(1e-300).log1p(), 1e-300), (lambda: Value(1e-300).expm1(), 1e-300),
    (lambda: Value(1000.0).logsigmoid(), 0.0), (lambda: Value(-1000.0).logsigmoid(), -1000.0),
    (lambda: te.logaddexp(1000.0, 1000.0), 1000.0 + math.log(2)), (lambda: te.logaddexp(-1e308, 0.0), 0.0),
    (lambda: Value(-1000.0).silu(), -0.0), (lambda: Value(-40.0).gelu(), -40.0 * 0.5 * math.erfc(40 / math.sqrt(2))),
    (lambda: Value(1024.0).log2(), 10.0), (lambda: Value(1000.0).log10(), 3.0), (lambda: Value(10.0).exp2(), 1024.0),
    (lambda: te.atan2(0.0, -1.0), math.pi), (lambda: te.hypot(3.0, 4.0), 5.0), (lambda: te.clamp(5.0, max=1.0), 1.0),
    (lambda: Value(2.0).hardtanh(-0.5, 0.5), 0.5), (lambda: Value(-2.0).leaky_relu(), -0.02),
    (lambda: Value(-1.0).elu(2.0), 2.0 * (math.exp(-1.0) - 1.0)),
]


@pytest.mark.parametrize("make, expected", VALUES)
def test_forward_values_at_special_points(make, expected):
    assert make().data == pytest.approx(expected, rel=1e-15, abs=0)


def test_log1p_and_expm1_keep_the_precision_the_composites_lose():
    x = Value(1e-12)
    (g,) = grad(x.log1p(), x)
    assert x.log1p().data == pytest.approx(1e-12 - 5e-25, rel=1e-15)
    assert abs((1 + x).log().data - 1e-12) > 1e-17  # the composite's error, for contrast
    assert g.data == pytest.approx(1 / (1 + 1e-12), rel=1e-15)
    assert x.expm1().data == pytest.approx(1e-12 + 5e-25, rel=1e-15)


def test_gelu_tanh_second_derivative_matches_differences_of_its_first():
    f = lambda v: v.gelu(approximate="tanh")  # noqa: E731
    for x in (-3.0, -0.4, 0.0, 0.7, 2.5):
        h = 1e-5
        numeric = (d1(f, x + h)[0] - d1(f, x - h)[0]) / (2 * h)
        assert d2(f, x) == pytest.approx(numeric, rel=1e-6, abs=1e-9)


def test_second_partials_of_binary_functions_are_symmetric_closed_forms():
    y, x = Value(0.8), Value(-1.7)
    gy, gx = grad(te.atan2(y, x), [y, x], create_graph=True)
    r2 = 0.8**2 + 1.7**2
    assert [g.data for g in grad(gy, [y, x])] == pytest.approx([2 * 0.8 * 1.7 / r2**2, (0.8**2 - 1.7**2) / r2**2], rel=1e-12)
    assert grad(gx, y)[0].data == pytest.approx((0.8**2 - 1.7**2) / r2**2, rel=1e-12)


# Scalar engine vs batched engine: the same rules on floats and on NumPy arrays.

UNARY_POINTS = [-2.3, -0.6, 0.4, 0.9, 1.7, 3.2]


def batched_members():
    found = [ops.PRIMITIVES[n] for n in ops.BUILTIN_NAMES if n not in ("sum",)]
    found += [m for f in ops.FAMILIES.values() for m in f.members()]
    return list(dict.fromkeys(found))


@pytest.mark.parametrize("op", batched_members(), ids=repr)
def test_scalar_and_batched_engines_agree(op):
    rng = np.random.default_rng(0)
    samples = []
    while len(samples) < 8:
        point = tuple(float(v) for v in rng.choice(UNARY_POINTS, op.arity) * rng.uniform(0.5, 1.0, op.arity))
        if op.interior(*point) and op.kink_distance(*point) > 0.05:
            samples.append(point)
    params = [Value(1.0) for _ in range(op.arity)]
    tape = trace(lambda *s: apply(op, *(p * x for p, x in zip(params, s))), samples[0], params)
    weights = rng.uniform(0.5, 2.0, len(samples))
    outputs = tape.backward(samples, weights)
    batched_grads = [p.grad for p in params]
    expected_grads = [0.0] * op.arity
    for point, w in zip(samples, weights):
        ps = [Value(1.0) for _ in range(op.arity)]
        out = apply(op, *(p * x for p, x in zip(ps, point)))
        assert outputs[samples.index(point)] == pytest.approx(out.data, rel=1e-12, abs=1e-300)
        out.backward(w)
        expected_grads = [e + p.grad for e, p in zip(expected_grads, ps)]
    assert batched_grads == pytest.approx(expected_grads, rel=1e-12, abs=1e-14)


# Bad input raises like the math module, naming the op; the batched engine raises the same.

ERRORS = [
    (lambda v: v.asin(), 1.5, ValueError, "asin(1.5): math domain error: asin needs an input in [-1, 1]"),
    (lambda v: v.acos(), -1.5, ValueError, "acos(-1.5): math domain error"),
    (lambda v: v.acosh(), 0.5, ValueError, "acosh(0.5): math domain error: acosh needs an input >= 1"),
    (lambda v: v.atanh(), 1.0, ValueError, "atanh(1.0): math domain error"),
    (lambda v: v.log1p(), -1.0, ValueError, "log1p(-1.0): math domain error: log1p needs an input > -1"),
    (lambda v: v.log2(), 0.0, ValueError, "log2(0.0)"),
    (lambda v: v.log10(), -2.0, ValueError, "log10(-2.0)"),
    (lambda v: 1.0 % (v - 1.0), 1.0, ZeroDivisionError, "(1.0 % 0.0)"),
]


@pytest.mark.parametrize("f, x, error, message", ERRORS, ids=[e[3].split("(")[0] or "mod" for e in ERRORS])
def test_domain_errors_name_the_op_in_both_engines(f, x, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        f(Value(x))
    p = Value(1.0)
    tape = trace(lambda s: f(p * s), [0.5 if "acosh" not in message else 1.5], [p])
    with pytest.raises(error, match=message.split(":")[0].replace("(", r"\(").replace(")", r"\)")):
        tape.forward([[x]])


@pytest.mark.parametrize("f, x", [(lambda v: v.asin(), 1.0), (lambda v: v.acos(), -1.0), (lambda v: v.atanh(), 0.999999999999),
                                  (lambda v: v.acosh(), 1.0)])
def test_infinite_derivatives_at_domain_edges_raise_or_are_huge(f, x):
    v = Value(x)
    y = f(v)
    try:
        y.backward()
    except ZeroDivisionError as err:
        assert "in backward, the derivative of" in str(err)
    else:
        assert abs(v.grad) > 1e11


@pytest.mark.parametrize("f, x, value, derivative", [
    (lambda v: v.sinh(), 800.0, math.inf, math.inf), (lambda v: v.sinh(), -800.0, -math.inf, math.inf),
    (lambda v: v.cosh(), -800.0, math.inf, -math.inf), (lambda v: v.expm1(), 800.0, math.inf, math.inf),
    (lambda v: v.exp2(), 1100.0, math.inf, math.inf),
])
def test_overflow_gives_inf_in_both_engines(f, x, value, derivative):
    # The engine's overflow policy: a result too large for a float is inf, never OverflowError.
    v = Value(x)
    y = f(v)
    y.backward()
    assert (y.data, v.grad) == (value, derivative)
    p = Value(1.0)
    tape = trace(lambda s: f(p * s), [0.5], [p])
    assert tape.forward([[x]]).tolist() == [value]


@pytest.mark.parametrize("name", ["log", "log2", "log10", "log1p", "sqrt", "asin", "acos", "acosh", "atanh", "tan",
                                  "sinh", "erf", "silu", "gelu", "elu", "softsign"])
def test_nan_in_gives_nan_out_never_an_error(name):
    # The engine's NaN policy: a NaN input is not a domain error; it gives NaN, value and derivative.
    v = Value(math.nan)
    y = getattr(v, name)()
    y.backward()
    assert math.isnan(y.data) and math.isnan(v.grad)


@pytest.mark.parametrize("f", [lambda v: v.floor(), lambda v: v.round(), lambda v: v.ceil(), lambda v: v.trunc(),
                               lambda v: v.clamp(0.0, 1.0), lambda v: te.maximum(v, 1.0), lambda v: v.leaky_relu(),
                               lambda v: v.hardtanh()])
def test_nan_passes_through_rounding_clamp_and_maximum(f):
    # NaN in, NaN out; the derivatives of these piecewise functions at NaN follow relu's (ops.step).
    v = Value(math.nan)
    y = f(v)
    y.backward()
    assert math.isnan(y.data)


def test_atan2_and_hypot_derivatives_at_the_origin_raise():
    for f in (te.atan2, te.hypot):
        a, b = Value(0.0), Value(0.0)
        with pytest.raises(ZeroDivisionError, match=f"in backward, the derivative of {f.__name__}"):
            f(a, b).backward()


def test_a_tie_splits_the_gradient_in_second_derivatives_too():
    # Ties are found by comparing data (a Value's == is identity), also when grad builds a graph.
    a, b = Value(2.0), Value(2.0)
    ga, gb = grad(te.maximum(a * a, b * b), [a, b], create_graph=True)
    assert (ga.data, gb.data) == (2.0, 2.0)  # 0.5 · 2a, 0.5 · 2b
    assert grad(ga, a)[0].data == 1.0 and grad(gb, b)[0].data == 1.0
    ga, gb = grad(te.minimum(a, b), [a, b], create_graph=True)
    assert (ga.data, gb.data) == (0.5, 0.5)
