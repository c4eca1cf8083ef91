"""testing.kinks and gradcheck where kinks meet: the recorded graph's one-sided derivatives
(closed forms), and the composite check that accepts what the rules' conventions compose to but
still catches a wrong rule, a wrong combination and a graph that fn does not compute."""

import importlib
import math

import pytest

from tinygrad_edu import Value, ops, primitive
from tinygrad_edu.engine import apply, topological_order
from tinygrad_edu.testing import GradcheckError, gradcheck
from tinygrad_edu.testing.kinks import one_sided_chain

gradcheck_module = importlib.import_module("tinygrad_edu.testing.gradcheck")  # (the package exports the function)


def hypot(a, b):
    return apply(ops.PRIMITIVES["hypot"], a, b)


def sides(fn, *point, i=0):
    """(left, right) derivative of fn's recorded graph along input i, from one_sided_chain."""
    xs = [Value(v) for v in point]
    nodes = topological_order(fn(*xs))
    (minus, _), (plus, _) = one_sided_chain(nodes, xs[i], -1.0), one_sided_chain(nodes, xs[i], 1.0)
    return -minus, plus


@pytest.mark.parametrize(
    "fn, point, left, right",
    [
        (lambda x: x.relu(), 0.0, 0.0, 1.0),
        (lambda x: abs(x) * 3.0, 0.0, -3.0, 3.0),
        (lambda x: x.relu() - (-x).relu(), 0.0, 1.0, 1.0),  # x: the conventions give 0, the sides 1
        (lambda x: (x.relu() * 2.0).clamp(max=0.0), 0.0, 0.0, 0.0),  # saturated on the right
        (lambda x: hypot(x.relu(), x.relu()), 0.0, 0.0, math.sqrt(2.0)),  # hypot's own kink at (0, 0)
        (lambda x: x.exp().relu(), 0.3, math.exp(0.3), math.exp(0.3)),  # no kink: the rules
    ],
)
def test_one_sided_chain_gives_the_graphs_one_sided_derivatives(fn, point, left, right):
    got_left, got_right = sides(fn, point)
    assert got_left == pytest.approx(left, abs=1e-8) and got_right == pytest.approx(right, abs=1e-8)


# Correct functions where kinks meet, each found as a false failure by
# benchmarks/gradcheck_eval.py (seeds 1 and 2) before the composite check.
C1 = 0.2246679754483883


def elu_of_elu(x):
    # Two elu kinks 2e-9 apart, the point between them: slope -1 there, -0.5 on either side.
    inner = -(x - C1).elu(alpha=0.5).tanh() - -1.999999999473644e-09
    return (inner.elu(alpha=0.5) - 0.9900000009999999).atanh().sinh()


def stacked_clamps(x):
    # Both clamps at their upper bound: locally constant, but the conventions give erfc'(1).
    return ((x - -0.1315569433409033).clamp(-1.0, 1.0).erfc() - -0.8427007915346074).clamp(-1.0, 1.0)


def hypot_of_relus(x):
    r = (x - 0.7768784473613669).relu()
    return hypot(r - 9.819233781493552e-10, r) * 4.0 - r * 2.0


@pytest.mark.parametrize("fn, point", [
    (elu_of_elu, C1 + 1e-9),
    (stacked_clamps, 0.8684430556590967),
    (hypot_of_relus, 0.7768784473623669),
    (lambda x: x.relu() - (-x).relu(), 0.0),
])
def test_where_conventions_compose_outside_the_one_sided_derivatives_the_composed_value_passes(fn, point):
    assert gradcheck(fn, [point])
    with pytest.raises(GradcheckError) as info:  # the strict subgradient check fails them
        gradcheck(fn, [point], strict_kinks=True)
    assert info.value.culprits == []


def test_a_wrong_rule_where_kinks_meet_is_still_named():
    # 1.5 on the right of the kink: outside [0, 1] even at the kink, where the input 1e-12 sits.
    relu_steep = primitive("kinks_relu_steep", lambda x: max(x, 0.0), lambda x: 1.5 if x > 0 else 0.0, kinks=(0.0,))
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda x: relu_steep(x - 0.5 + 1e-12) - (-x + 0.5).relu(), [0.5])
    assert info.value.culprits[0].op.name == "kinks_relu_steep"


def test_a_value_taken_out_of_the_graph_at_a_kink_is_caught():
    # fn is relu(x) - relu(-x) + 2x = 3x, but the recorded graph is relu(x) - relu(-x) + const.
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda x: x.relu() - (-x).relu() + Value(2.0 * x.data), [0.0])
    text = str(info.value)
    assert info.value.culprits == []
    assert "one-sided derivatives [3, 3] are not those of the recorded graph [1, 1]" in text
    assert ".data" in text


def test_a_gradient_that_is_not_the_chain_rule_of_the_rules_is_caught(monkeypatch):
    # An engine that combined the rules wrongly (simulated: its gradient off by 0.5) at a kink.
    real = gradcheck_module._analytic
    monkeypatch.setattr(gradcheck_module, "_analytic", lambda out, xs, mode: [g + 0.5 for g in real(out, xs, mode)])
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda x: x.relu() - (-x).relu(), [0.0])
    assert "is not the chain rule applied to the rules' values (0)" in str(info.value)

