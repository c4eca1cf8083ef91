"""Tests of tinygrad_edu.viz.analysis: the plain-data pass under every picture (no Graphviz)."""

from __future__ import annotations

import math

import pytest

from tinygrad_edu import Value, ops
from tinygrad_edu.engine import topological_order
from tinygrad_edu.viz.analysis import format_number, health, op_sign, replay_backward, short_names


def test_replay_is_the_engine_s_backward_in_its_order_and_touches_no_grad():
    a, b = Value(3.0, label="a"), Value(-2.0, label="b")
    c = a * b
    z = (c + a).tanh() * c  # a and c are each used twice
    steps = replay_backward(z)
    assert all(v.grad == 0.0 for v in topological_order(z))
    assert [s.node for s in steps] == [v for v in reversed(topological_order(z)) if not v.is_leaf]
    totals = {}
    for s in steps:
        for contribution in s.contributions:
            totals[contribution.parent] = contribution.total
    z.backward()
    # closed form: z = tanh(ab + a) * ab
    t = math.tanh(3.0 * -2.0 + 3.0)
    dz_da = (1 - t * t) * (-2.0 + 1.0) * (3.0 * -2.0) + t * -2.0
    assert totals[a] == pytest.approx(dz_da, rel=1e-12) and a.grad == pytest.approx(dz_da, rel=1e-12)
    assert totals[b] == pytest.approx(b.grad, rel=1e-12)


def test_each_step_says_upstream_local_and_contribution():
    x, w = Value(0.5, label="x"), Value(-1.5, label="w")
    y = x * w
    (step,) = replay_backward(y, seed=2.0)
    assert step.upstream == 2.0
    to_x, to_w = step.contributions
    assert (to_x.parent, to_x.local, to_x.value, to_x.total) == (x, -1.5, -3.0, -3.0)
    assert (to_w.parent, to_w.local, to_w.value, to_w.total) == (w, 0.5, 1.0, 1.0)


def test_a_failing_rule_gives_nan_not_an_exception():
    x = Value(0.0, label="x")
    y = x.sqrt()  # d sqrt/dx at 0 is 1 / (2 * 0): the float rule raises ZeroDivisionError
    (step,) = replay_backward(y)
    assert math.isnan(step.contributions[0].value) and math.isnan(step.contributions[0].local)


def test_numbers_names_and_marks():
    assert format_number(-0.0) == "0" and format_number(-1e-9, 3) == "-1e-09" and format_number(0.123456) == "0.1235"
    assert (health(0.0), health(1.0), health(1e4), health(math.nan)) == ("vanishing", None, "exploding", "exploding")
    assert [op_sign(op) for op in (ops.MUL, ops.NEG, ops.TANH, ops.SUM, ops.pow_const(2))] == ["*", "-", "tanh", "sum", "** 2"]
    x, w = Value(0.5, label="x"), Value(2.0)
    y = (x * w).tanh()
    assert short_names(topological_order(y)) == {x: "x", w: "2", y.parents[0]: "(x * 2)", y: "tanh(x * 2)"}
