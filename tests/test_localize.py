"""testing.localize: every built-in rule passes its own check, a wrong rule is named wherever it
sits in a graph, the path to the output is printed, and when no rule is wrong the first node where
the derivatives part is found."""

import dataclasses
import math

import pytest

from tinygrad_edu import Value, ops, primitive
from tinygrad_edu.engine import apply
from tinygrad_edu.testing import GradcheckError, gradcheck, gradgradcheck
from tinygrad_edu.testing.strategies import BUILTIN_OPS
from tinygrad_edu.testing.localize import (
    check_rule,
    check_rule_second_order,
    describe_path,
    divergence,
    localize,
)

# Points inside every built-in's domain, away from kinks.
POINTS = {1: [(0.7,), (-1.3,), (2.5,)], 2: [(0.7, 1.9), (1.6, -0.4)], -1: [(0.3, -1.2, 2.0)]}
SMOOTH_AT = {"log": [(0.7,), (2.5,)], "sqrt": [(0.7,), (2.5,)], "pow": [(0.7, 1.9), (1.6, -0.4)]}


def builtin_cases():
    cases = []
    for name in BUILTIN_OPS:
        if name == "pow_const":
            continue
        op = ops.PRIMITIVES[name]
        for xs in SMOOTH_AT.get(name, POINTS[op.arity if op.arity in POINTS else -1]):
            if op.arity in (-1, len(xs)) and not op.interior(*xs):
                continue  # outside the record's interior (asin at 2.5, acosh at 0.7)
            cases.append(pytest.param(op, xs, id=f"{name}{xs}"))
    for c in (2.0, 0.5, -1.0, 3.0):
        cases.append(pytest.param(ops.pow_const(c), (1.3,), id=f"**{c}"))
    return cases


@pytest.mark.parametrize("op, xs", builtin_cases())
def test_every_builtin_rule_passes_its_own_check(op, xs):
    if op.arity > 0 and len(xs) != op.arity:
        pytest.skip("not a built-in arity")
    results = check_rule(op, *xs)
    assert len(results) == len(xs) and all(r.ok for r in results), [r.describe() for r in results if not r.ok]
    second = check_rule_second_order(op, *xs)
    assert all(r.ok for r in second), [r.describe() for r in second if not r.ok]


def test_a_perturbed_rule_fails_its_own_check_with_the_numbers():
    wrong = dataclasses.replace(ops.TANH, vjp=lambda m, g, out, x: (g * (1.0 - out),))
    [r] = check_rule(wrong, 0.5)
    assert not r.ok and r.index == 0 and r.order == 1
    assert r.analytic == pytest.approx(1 - math.tanh(0.5))
    assert r.numeric == pytest.approx(1 - math.tanh(0.5) ** 2, rel=1e-9)
    assert r.describe().startswith("d/dx tanh(0.5): rule 0.537883, numeric 0.786448")


def test_at_a_kink_the_rule_must_give_a_subgradient():
    [r] = check_rule(ops.RELU, 0.0)
    assert r.ok and r.interval == (0.0, pytest.approx(1.0)) and r.analytic == 0.0
    [r] = check_rule(ops.ABS, 0.0)
    assert r.ok and r.interval == (pytest.approx(-1.0), pytest.approx(1.0))
    bad = dataclasses.replace(ops.RELU, vjp=lambda m, g, out, x: (g * 2.0,))
    [r] = check_rule(bad, 0.0)
    assert not r.ok and "one-sided derivatives [0, 1]" in r.describe()


def test_a_rule_whose_own_derivative_is_cut_fails_the_second_order_check():
    cut = ops.Primitive("lc_cut", 1, lambda m, x: x * x, lambda m, g, out, x: (g * 2.0 * float(x),))
    assert all(r.ok for r in check_rule(cut, 1.5))
    [r] = [r for r in check_rule_second_order(cut, 1.5) if not r.ok]
    assert r.index == (0, 0) and r.analytic == 0.0 and r.numeric == pytest.approx(2.0)


wrong_deep = primitive("lc_wrong_deep", lambda x: x * x * x, lambda x: 3 * x * x + 0.5)


def test_a_wrong_rule_deep_in_a_graph_is_the_culprit_with_its_path():
    x, w = Value(0.5, label="x0"), Value(-1.2, label="x1")
    h = (x * w).tanh() + w
    out = (wrong_deep(h) * x).exp() + h.sigmoid()
    loc = localize(out, [x, w])
    assert loc.checked == 8
    [c] = loc.culprits
    assert c.op is wrong_deep.op and c.inputs == (pytest.approx(h.data),)
    assert c.path[0] is c.node and c.path[-1] is out
    assert describe_path(c.path, [x, w]) == "lc_wrong_deep(tanh(x0*x1) + x1) → ·*x0 → exp(·) → · + sigmoid(…)"


def test_culprits_come_worst_first_by_their_effect_on_the_output():
    x = Value(0.5)
    out = wrong_deep(x) * 0.001 + wrong_deep(x + 1.0) * 100.0
    names = [c.node.parents[0].data for c in localize(out, [x]).culprits]
    assert names == [1.5, 0.5]


def test_gradcheck_carries_the_culprits_and_prints_them():
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda a, b: (wrong_deep(a * b) + b).tanh(), [0.5, 0.8])
    err = info.value
    [c] = err.culprits
    assert c.op.name == "lc_wrong_deep" and c.partials[0].analytic == pytest.approx(3 * 0.4**2 + 0.5)
    text = str(err)
    assert "Culprit: 1 of 4 primitive applications fail their own check:" in text
    assert "- lc_wrong_deep at lc_wrong_deep(x0*x1) = 0.064, inputs 0.4" in text
    assert "d/dx lc_wrong_deep(0.4): rule 0.98, numeric 0.48" in text
    assert "path to the output: lc_wrong_deep(x0*x1) → · + x1 → tanh(·)" in text


def test_gradgradcheck_names_the_rule_whose_derivative_is_wrong():
    cut = ops.register(ops.Primitive("lc_cut2", 1, lambda m, x: x * x, lambda m, g, out, x: (g * 2.0 * float(x),)))
    with pytest.raises(GradcheckError) as info:
        gradgradcheck(lambda a, b: apply(cut, a) * b, [1.5, 2.0])
    [c] = info.value.culprits
    assert c.op is cut and c.partials[0].what == "d2/dxdx" and c.partials[0].order == 2


def test_no_wrong_rule_but_a_cut_graph_names_the_constant_where_derivatives_part():
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda x: (Value(x.data**2) + x).tanh(), [0.7])
    err = info.value
    assert err.culprits == []
    d = err.localization.divergence
    assert d.node.op is None and d.node.data == pytest.approx(0.49) and d.analytic == 0.0
    assert d.numeric == pytest.approx(1.4, rel=1e-6)
    text = str(err)
    assert "Every primitive's rule passes its own check (2 applications checked)." in text
    assert "The derivatives first part at the constant 0.49" in text and ".data" in text


def test_divergence_refuses_graphs_that_change_shape_nearby():
    def fn(x):
        return x * 2.0 if x.data < 0.7 else x.exp()  # a branch on the value: different graphs around 0.7

    x = Value(0.7, label="x0")
    found, note = divergence(fn, fn(x), [x])
    assert found is None and "different graph at nearby points" in note


def test_at_a_kink_where_the_conventions_combine_badly_the_strict_check_says_so():
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda a: a.relu() - (-a).relu(), [0.0], strict_kinks=True)
    text = str(info.value)
    assert info.value.culprits == []
    assert "relu's input x0 = 0 is at its kink at 0 (relu'(0) = 0 by convention)" in text
    assert "the chain rule combined the rules' conventions" in text


def test_the_culprit_can_be_drawn_outlined():
    from tinygrad_edu.viz.graph import draw_graph
    from tinygrad_edu.viz.style import HIGHLIGHT_COLOR

    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda a, b: (wrong_deep(a * b) + b).tanh(), [0.5, 0.8])
    [c] = info.value.culprits
    outlined = [line for line in draw_graph(c.path[-1], highlight=[c.node]).source.splitlines()
                if HIGHLIGHT_COLOR in line]
    assert len(outlined) == 2  # the culprit's value and its operation, nothing else
    assert any("lc_wrong_deep" in line for line in outlined)


def _cut_second_order(x):
    # (x - a) * exp(x) with exp(x) taken out of the graph: at x = a the first derivative is exp(a)
    # either way (only the factor's value counts there), so gradcheck passes. The engine's first
    # derivative at nearby points p is exp(p), whose derivative is exp(a); the derivative graph
    # holds exp(a) as a constant, so grad(create_graph=True) gives 0.
    return (x - 0.3) * Value(math.exp(x.data))


def test_gradgradcheck_names_the_constant_where_second_derivatives_part():
    assert gradcheck(_cut_second_order, [0.3])
    with pytest.raises(GradcheckError) as info:
        gradgradcheck(_cut_second_order, [0.3])
    err = info.value
    assert err.culprits == []
    d = err.localization.divergence
    assert d.node.op is None and d.node.data == pytest.approx(math.exp(0.3)) and d.analytic == 0.0
    assert d.numeric == pytest.approx(math.exp(0.3), rel=1e-6) and d.graph == "the graph of d/dx0"
    assert "The derivatives first part in the graph of d/dx0 at the constant 1.34986" in str(err)


@pytest.mark.parametrize("mode", ["rev", "fwd"])
def test_second_order_gradcheck_in_either_mode_names_it_too(mode):
    with pytest.raises(GradcheckError) as info:
        gradcheck(_cut_second_order, [0.3], modes=(mode,), order=2)
    d = info.value.localization.divergence
    assert d is not None and d.node.op is None and d.node.data == pytest.approx(math.exp(0.3))
