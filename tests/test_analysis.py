"""Tests of tinygrad_edu.viz.analysis: the plain-data pass under every picture (no Graphviz)."""

from __future__ import annotations

import math

import pytest

from tinygrad_edu import Value, ops
from tinygrad_edu.engine import topological_order
from tinygrad_edu.viz.analysis import (GraphTooLargeError, analyze, format_number, health, op_sign, replay_backward,
                                       short_names)


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


# --- analyze(): the one analysis every renderer reads ------------------------------------------------


def neuron(prefix="layers.0.neurons.0"):
    """tanh(w0 * x0 + w1 * x1 + b) with nn's parameter names."""
    x0, x1 = Value(0.5, label="x0"), Value(-1.0, label="x1")
    w0, w1, b = (Value(v, label=f"{prefix}.{n}") for v, n in ((0.8, "w.0"), (-0.3, "w.1"), (0.1, "b")))
    return (x0, x1, w0, w1, b), (w0 * x0 + w1 * x1 + b).tanh()


def test_a_value_used_twice_has_a_flow_per_edge_that_sum_to_its_grad():
    x = Value(3.0, label="x")
    y = x * x + x * 2.0  # dy/dx = 2x + 2 = 8: 3 + 3 through the square's two slots, 2 through the other product
    a = analyze(y, grads="replay")
    (node,) = [n for n in a.nodes if n.label == "x"]
    flows = [e.flow for e in a.edges if e.source == node.id]
    assert len(flows) == 3 and sorted(flows) == [2.0, 3.0, 3.0]
    assert sum(flows) == node.grad == 8.0
    y.backward()
    assert analyze(y).node_of(x).grad == x.grad == 8.0  # the engine's .grad: the same number


def test_every_node_s_grad_and_every_edge_s_flow_match_the_closed_form():
    (x0, x1, w0, w1, b), y = neuron()
    a = analyze(y, grads="replay")
    t = math.tanh(0.8 * 0.5 + -0.3 * -1.0 + 0.1)
    d = 1 - t * t
    expected = {x0: 0.8 * d, x1: -0.3 * d, w0: 0.5 * d, w1: -1.0 * d, b: d, y: 1.0}
    for v, g in expected.items():
        assert a.node_of(v).grad == pytest.approx(g, rel=1e-12)
    # the flow along x1 -> (w1 * x1) is |d y / d x1|; into tanh it is |d|
    assert [e.flow for e in a.edges if e.source == a.node_of(x1).id] == [pytest.approx(0.3 * d, rel=1e-12)]
    assert [e.flow for e in a.edges_into(a.root)] == [pytest.approx(d, rel=1e-12)]
    assert all(v.grad == 0.0 for v in (x0, x1, w0, w1, b, y))  # replaying touched no .grad


def test_nodes_are_numbered_in_topological_order_with_names_ops_and_modules():
    (x0, x1, w0, w1, b), y = neuron()
    a = analyze(y)
    assert [n.value for n in a.nodes] == topological_order(y)
    assert [n.id for n in a.nodes] == [f"n{i}" for i in range(len(a.nodes))] and a.root == a.nodes[-1].id
    top = a.node(a.root)
    assert (top.op, top.sign, top.kind, top.grad, top.marks) == ("tanh", "tanh", "operation", None, frozenset({"root"}))
    assert a.gradients == "none" and not a.has_grads  # before backward: data only
    assert a.node_of(w0).kind == "parameter" and a.node_of(w0).module == "layers.0.neurons.0"
    assert a.node_of(x0).kind == "input" and a.node_of(x0).module is None
    product = a.node(next(e.target for e in a.edges if e.source == a.node_of(w0).id))
    assert product.formula == "(layers.0.neurons.0.w.0 * x0)" and product.module == "layers.0.neurons.0"


def test_cluster_norms_are_the_norm_of_their_parameters_gradients():
    (x0, x1, w0, w1, b), h = neuron("layers.0.neurons.0")
    v = Value(1.5, label="layers.1.neurons.0.w.0")
    c = Value(-0.2, label="layers.1.neurons.0.b")
    loss = (v * h + c - 1.0) ** 2
    loss.backward()
    t = h.data
    dout = 2 * (1.5 * t - 0.2 - 1.0)
    dh = dout * 1.5 * (1 - t * t)
    expected = {"layers.0.neurons.0": math.sqrt((0.5 * dh) ** 2 + (-1.0 * dh) ** 2 + dh ** 2),
                "layers.1.neurons.0": math.sqrt((dout * t) ** 2 + dout ** 2)}
    for grads in ("engine", "replay"):
        a = analyze(loss, grads=grads, level="neuron")
        assert {cl.module: cl.grad_norm for cl in a.clusters} == pytest.approx(expected, rel=1e-12)
        first, second = a.clusters
        assert set(first.params) == {a.node_of(p).id for p in (w0, w1, b)} and second.parent == "layers.1"
        assert set(first.nodes) >= set(first.params) and a.node_of(w0).cluster == first.id
    layers = analyze(loss, level="layer").clusters
    assert [cl.module for cl in layers] == ["layers.0", "layers.1"]
    assert analyze(loss, grads="none", level="neuron").clusters[0].grad_norm is None


def test_neurons_sit_in_their_layer_and_constants_join_the_module_that_uses_them():
    w = [Value(0.5, label=f"layers.0.neurons.{j}.w.0") for j in range(11)]
    x = Value(2.0, label="x")
    total = sum(((wj * 3.0) * x for wj in w), Value(0.0, label="zero"))
    a = analyze(total, level="neuron")
    assert [cl.module for cl in a.clusters] == [f"layers.0.neurons.{j}" for j in range(11)]  # 2 before 10
    assert {cl.parent for cl in a.clusters} == {"layers.0"}
    for cl in a.clusters:
        kinds = sorted(a.node(i).kind for i in cl.nodes)
        assert kinds == ["constant", "operation", "parameter"]  # w, the 3.0, w * 3.0 (then * x mixes in an input)


def test_vanishing_exploding_and_highlight_marks():
    dead, hot, fine = Value(-2.0, label="dead"), Value(0.5, label="hot"), Value(1.0, label="fine")
    y = dead.relu() + hot * 5000.0 + fine * 1.0  # grads: 0, 5000, 1
    a = analyze(y, grads="replay", highlight=[fine])
    assert "vanishing" in a.node_of(dead).marks and "exploding" in a.node_of(hot).marks
    assert a.node_of(fine).marks == frozenset({"highlight"})
    assert not any("vanishing" in n.marks for n in a.nodes if n.kind == "constant")  # a constant's gradient is no alarm
    other = analyze(y, grads="replay", vanishing=2.0, exploding=1e4)  # the thresholds are the caller's
    assert "exploding" not in other.node_of(hot).marks and "vanishing" in other.node_of(fine).marks
    z = Value(0.0, label="z")
    assert "exploding" in analyze(z.sqrt(), grads="replay").node_of(z).marks  # d sqrt/dz at 0: not finite


def test_a_frame_after_k_steps_knows_only_what_backward_knows_by_then():
    (x0, x1, w0, w1, b), y = neuron()
    a = analyze(y, grads="replay")
    first = a.after(1)  # tanh has passed its gradient to the sum
    assert first.node(a.root).grad == 1.0
    inner = a.node(a.node(a.root).parents[0])
    assert first.node(inner.id).grad == pytest.approx(inner.grad, rel=1e-15)
    assert first.node_of(x0).grad is None
    assert [e.flow is not None for e in first.edges] == [e.target == a.root for e in first.edges]
    assert a.after(len(a.steps)).nodes == a.nodes and a.after(len(a.steps)).edges == a.edges
    before = a.frame({}, ())
    assert before.has_grads and all(n.grad is None for n in before.nodes)


def test_given_gradients_and_limits():
    (x0, *_), y = neuron()
    a = analyze(y, grads={y: 1.0, x0: 0.25}, passed=[])
    assert a.node_of(x0).grad == 0.25 and a.node_of(y).grad == 1.0 and all(e.flow is None for e in a.edges)
    with pytest.raises(GraphTooLargeError, match="more than 3 values") as info:
        analyze(y, max_nodes=3)
    assert info.value.reason == "the graph has more than 3 values"
    with pytest.raises(ValueError, match="grads must be"):
        analyze(y, grads="fresh")
    with pytest.raises(ValueError, match="level must be"):
        analyze(y, level="module")
