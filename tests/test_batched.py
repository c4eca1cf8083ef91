"""Tests of tinygrad_edu.batched: the NumPy math namespace, tracing, the grouped replay (loss and
parameter gradients equal to the scalar engine's, and to finite differences), errors, and the
batched engine inside train.fit and the circle command."""

import math
import signal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_edu import Value, batched, data, nn, ops, optim, train
from tinygrad_edu import sum as vsum
from tinygrad_edu.batched import NUMPY_MATH, Tape, batched_losses, trace
from tinygrad_edu.batched.numpy_math import SMALL
from tinygrad_edu.engine import topological_order
from tinygrad_edu.ops import FLOAT_MATH
from tinygrad_edu.testing.strategies import expressions, mlps

RTOL = 1e-12


def scalar_mean_loss(fn, rows, params):
    """The reference: (sum of per-sample losses) / n as one scalar graph, then backward."""
    for p in params:
        p.grad = 0.0
    losses = [fn(*[Value(v) for v in row]) for row in np.asarray(rows).tolist()]
    loss = vsum(losses) / len(losses)
    loss.backward()
    return loss.data, [p.grad for p in params]


def absolute_scale(fn, rows, params):
    """For each parameter, the sum of the absolute values of every term its gradient adds up (a
    reverse pass with |contributions|, over the whole batch's graph). 'Relative' is relative to
    this when terms cancel: (x*y)**-1 * y has a true d/dy of 0, computed as a rounding residue."""
    losses = [fn(*[Value(v) for v in row]) for row in np.asarray(rows).tolist()]
    root = vsum(losses) / len(losses)
    mag = {root: 1.0}
    for node in reversed(topological_order(root)):
        g = mag.get(node)
        if g is None or node.op is None:
            continue
        local = node.op.vjp(FLOAT_MATH, g, node.data, *[p.data for p in node.parents])
        for p, c in zip(node.parents, local):
            mag[p] = mag.get(p, 0.0) + abs(c)
    return [mag.get(p, 0.0) for p in params]


def assert_matches_scalar(fn, rows, params):
    ref_loss, ref_grads = scalar_mean_loss(fn, rows, params)
    scale = absolute_scale(fn, rows, params)
    tape = trace(fn, rows[0], params)
    for p in params:
        p.grad = 0.0
    loss = tape.mean_backward(rows)
    grads = [p.grad for p in params]
    loss_scale = np.mean([abs(fn(*[Value(v) for v in row]).data) for row in np.asarray(rows).tolist()])
    assert abs(loss - ref_loss) <= RTOL * max(abs(ref_loss), loss_scale) + 1e-300
    for name, g, r, s in zip([p.label for p in params], grads, ref_grads, scale):
        assert abs(g - r) <= RTOL * max(abs(r), s) + 1e-300, (name, g, r)


# NUMPY_MATH ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["exp", "log", "sqrt", "tanh", "sigmoid", "relu", "sin", "cos", "step", "sign"])
def test_numpy_math_matches_float_math_elementwise(name):
    x = np.concatenate([np.linspace(-30, 30, 601), [0.0, -0.0, 1e-300, -1e-300]])
    if name in ("log", "sqrt"):
        x = np.abs(x) + 1e-3
    got = getattr(NUMPY_MATH, name)(x)
    want = np.array([getattr(FLOAT_MATH, name)(v) for v in x.tolist()])
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=0)


def test_numpy_math_pow_where_add_n():
    a, b = np.array([0.5, 2.0, 3.0, -2.0]), np.array([3.0, -1.5, 0.5, 3.0])
    np.testing.assert_allclose(NUMPY_MATH.pow(a, b), [FLOAT_MATH.pow(x, y) for x, y in zip(a, b)], rtol=1e-15)
    assert NUMPY_MATH.where(a > 1, a, -a).tolist() == [-0.5, 2.0, 3.0, 2.0]
    assert NUMPY_MATH.add_n((a, b, a)).tolist() == [4.0, 2.5, 6.5, -1.0]


def test_sigmoid_does_not_overflow():
    assert NUMPY_MATH.sigmoid(np.array([-1000.0, 1000.0])).tolist() == [0.0, 1.0]


@pytest.mark.parametrize("call, error", [
    (lambda: NUMPY_MATH.log(np.array([1.0, 0.0])), ValueError),
    (lambda: NUMPY_MATH.log(np.array([-1.0])), ValueError),
    (lambda: NUMPY_MATH.sqrt(np.array([-4.0])), ValueError),
    (lambda: NUMPY_MATH.pow(np.array([0.0]), np.array([-1.0])), ZeroDivisionError),
    (lambda: NUMPY_MATH.pow(np.array([-8.0]), np.array([0.5])), ValueError),
])
def test_numpy_math_raises_like_the_scalar_engine(call, error):
    with pytest.raises(error):
        call()


def test_numpy_math_overflows_to_inf_like_the_scalar_engine():
    assert NUMPY_MATH.exp(np.array([1000.0, 0.0])).tolist() == [math.inf, 1.0] == [FLOAT_MATH.exp(1000.0), 1.0]
    assert NUMPY_MATH.pow(np.array([10.0, -10.0]), np.array([400.0, 401.0])).tolist() == [math.inf, -math.inf]
    assert [FLOAT_MATH.pow(10.0, 400.0), FLOAT_MATH.pow(-10.0, 401.0)] == [math.inf, -math.inf]


# Tracing and replay --------------------------------------------------------------------------

def test_matches_closed_form_on_a_line_fit():
    w, b = Value(2.0, "w"), Value(0.5, "b")
    rows = np.array([[1.0, 0.0], [3.0, 1.0], [-2.0, 4.0]])
    tape = trace(lambda x, y: (w * x + b - y) ** 2, rows[0], [w, b])
    residual = 2.0 * rows[:, 0] + 0.5 - rows[:, 1]
    np.testing.assert_allclose(tape.forward(rows), residual**2, rtol=1e-15)
    assert tape.mean_backward(rows) == pytest.approx(np.mean(residual**2), rel=1e-15)
    assert w.grad == pytest.approx(np.mean(2 * residual * rows[:, 0]), rel=1e-14)
    assert b.grad == pytest.approx(np.mean(2 * residual), rel=1e-14)


def test_gradients_match_central_finite_differences():
    rng = np.random.default_rng(3)
    model = nn.MLP(3, [4, 3, 1], activation="tanh", output_activation="sigmoid", seed=1)
    params = model.parameters()
    rows = np.c_[rng.uniform(-1, 1, (16, 3)), rng.random(16) < 0.5]
    fn = lambda a, b, c, t: nn.binary_cross_entropy_with_logits(model.logits([a, b, c]), t)  # noqa: E731
    tape = trace(fn, rows[0], params)
    model.zero_grad()
    tape.mean_backward(rows)
    h = 1e-6
    for p in params:
        saved = p.data
        p.data = saved + h
        up = tape.forward(rows).mean()
        p.data = saved - h
        down = tape.forward(rows).mean()
        p.data = saved
        assert p.grad == pytest.approx((up - down) / (2 * h), rel=1e-6, abs=1e-9), p.label


@given(mlps(), st.integers(1, 40), st.integers(0, 2**32 - 1), st.sampled_from(["mse", "bce", "hinge"]))
def test_random_mlps_match_the_scalar_engine(drawn, batch, seed, loss):
    model, _ = drawn
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, (batch, model.nin))
    y = (rng.random(batch) < 0.5).astype(float)
    if loss == "bce":
        fn = lambda *r: nn.binary_cross_entropy_with_logits(model.logits(list(r[:-1])), r[-1])  # noqa: E731
    elif loss == "mse":
        fn = lambda *r: nn.mse_loss(model(list(r[:-1])), r[-1])  # noqa: E731
    else:
        fn = lambda *r: nn.hinge_loss(model.logits(list(r[:-1])), r[-1])  # noqa: E731
    assert_matches_scalar(fn, np.c_[X, y], model.parameters())


@given(expressions(ops="all", max_ops=8), st.integers(1, 9), st.integers(0, 2**32 - 1))
def test_every_primitive_replays_like_the_scalar_engine(drawn, batch, seed):
    expr, point = drawn
    params = [Value(v, label=f"p{i}") for i, v in enumerate(point)]
    # Parameters carry the expression (its point is where every op is smooth); the per-sample
    # input scales it, so each sample has its own loss and gradient.
    fn = lambda s: expr(*params) * s  # noqa: E731
    rows = np.random.default_rng(seed).uniform(0.5, 1.5, (batch, 1))
    assert_matches_scalar(fn, rows, params)


def test_shared_nodes_and_repeated_inputs_scatter_all_contributions():
    a, b = Value(1.5, "a"), Value(-0.7, "b")

    def fn(x, y):
        h = a * x  # used by many consumers
        return vsum([h * h, h * b, (h + h).tanh(), a * a * y, x * y * b, h])

    rows = np.array([[0.3, 2.0], [-1.2, 0.5], [0.8, -1.0], [2.0, 0.1]])
    assert_matches_scalar(fn, rows, [a, b])
    # Closed form for d/da of mean(a*a*y) alone, to pin the duplicate-slot case independently.
    tape = trace(lambda x, y: a * a * y, rows[0], [a])
    a.grad = 0.0
    tape.mean_backward(rows)
    assert a.grad == pytest.approx(np.mean(2 * 1.5 * rows[:, 1]), rel=1e-15)


def test_leaf_gradients_accumulate_and_params_are_read_live():
    w = Value(3.0, "w")
    unused = Value(1.0, "unused")
    unused.grad = 5.0
    tape = trace(lambda x: w * x, [1.0], [w, unused])
    rows = np.array([[1.0], [3.0]])
    w.grad = 1.0
    tape.mean_backward(rows)
    tape.mean_backward(rows)
    assert w.grad == 1.0 + 2 * 2.0  # mean of x, twice, on top of what was there
    assert unused.grad == 5.0  # not used: untouched, as backward leaves it
    w.data = -1.0
    assert tape.forward(rows).tolist() == [-1.0, -3.0]


def test_constants_are_folded_and_several_outputs_are_returned():
    w = Value(2.0, "w")
    tape = trace(lambda x: [w * x, (Value(2.0) * 3.0).exp() + x, x * x], [1.0], [w])
    assert isinstance(tape, Tape) and tape.num_outputs == 3
    out = tape.forward(np.array([[1.0], [2.0]]))
    np.testing.assert_allclose(out, [[2.0, math.exp(6) + 1, 1.0], [4.0, math.exp(6) + 2, 4.0]], rtol=1e-15)
    w.grad = 0.0
    tape.backward(np.array([[1.0], [2.0]]), np.array([[1.0, 7.0, 7.0], [0.5, 7.0, 7.0]]))
    assert w.grad == 1.0 * 1.0 + 0.5 * 2.0


def test_batch_sizes_can_change_between_calls():
    w = Value(0.5, "w")
    tape = trace(lambda x: (w * x).sigmoid(), [0.0], [w])
    for n in (1, 7, 32, 7):
        x = np.linspace(-3, 3, n)[:, None]
        np.testing.assert_allclose(tape.forward(x), 1 / (1 + np.exp(-0.5 * x[:, 0])), rtol=1e-15)


# Errors --------------------------------------------------------------------------------------

def test_bad_inputs_and_arguments_say_what_is_wrong():
    w = Value(1.0)
    tape = trace(lambda x, y: w * x + y, [0.0, 0.0], [w])
    with pytest.raises(ValueError, match=r"\(batch, 2\)"):
        tape.forward(np.zeros((4, 3)))
    with pytest.raises(TypeError, match="leaf Value"):
        trace(lambda x: x, [0.0], [w * 2])
    with pytest.raises(TypeError, match="must return a Value"):
        trace(lambda x: 3.0, [0.0], [])
    with pytest.raises(ValueError, match="one output"):
        trace(lambda x: [x, x], [0.0], []).mean_backward(np.zeros((2, 1)))
    with pytest.raises(ValueError, match=r"grad_outputs must have the outputs' shape \(4,\)"):
        tape.backward(np.zeros((4, 2)), np.ones(3))
    assert w.grad == 0.0  # nothing was accumulated


def test_domain_errors_raise_like_the_scalar_engine_naming_op_and_sample():
    tape = trace(lambda x: x.log(), [1.0], [])
    with pytest.raises(ValueError, match=r"sample 2.*log\(0\.0\)"):
        tape.forward(np.array([[1.0], [2.0], [0.0]]))
    tape = trace(lambda x, y: x / y, [1.0, 1.0], [])
    with pytest.raises(ZeroDivisionError):
        tape.forward(np.array([[1.0, 2.0], [1.0, 0.0]]))
    s = Value(0.0, "s")
    tape = trace(lambda x: (s * x).sqrt(), [1.0], [s])
    with pytest.raises(ZeroDivisionError, match="derivative of sqrt"):
        tape.mean_backward(np.array([[1.0]]))


def test_overflow_to_inf_that_the_scalar_engine_allows_is_not_an_error():
    w = Value(1e200)
    tape = trace(lambda x: w * x, [1.0], [w])
    assert tape.forward(np.array([[1e200], [1.0]])).tolist() == [1e200 * 1e200, 1e200]


# train.fit and the command line --------------------------------------------------------------

def circle_data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, 2))
    return X, (np.hypot(X[:, 0], X[:, 1]) <= 0.5).astype(float)


@pytest.mark.parametrize("loss, out_act", [("bce", "sigmoid"), ("mse", "sigmoid"), ("hinge", "tanh")])
def test_fit_batched_follows_fit_scalar(loss, out_act):
    X, y = circle_data()
    histories = {}
    for engine in ("scalar", "batched"):
        model = nn.MLP(2, [6, 1], "relu", out_act, seed=4)
        histories[engine] = train.fit(model, X[:150], y[:150], X_test=X[150:], y_test=y[150:], loss=loss,
                                      epochs=3, batch_size=16, seed=9, engine=engine, progress=False)
        histories[engine + "_params"] = [p.data for p in model.parameters()]
    s, b = histories["scalar"], histories["batched"]
    np.testing.assert_allclose(b.train_loss, s.train_loss, rtol=1e-9)
    np.testing.assert_allclose(b.test_loss, s.test_loss, rtol=1e-9)
    assert b.test_accuracy == s.test_accuracy
    np.testing.assert_allclose(histories["batched_params"], histories["scalar_params"], rtol=1e-9, atol=1e-12)


def test_batched_losses_match_the_criterion_on_values():
    model = nn.MLP(2, [3, 1], output_activation="sigmoid", seed=0)
    objective = train.make_objective("bce", model)
    outputs, y = np.array([-40.0, -1.0, 0.0, 2.5, 40.0]), np.array([1.0, 0.0, 1.0, 1.0, 0.0])
    want = [objective.criterion(Value(o), t).data for o, t in zip(outputs, y)]
    np.testing.assert_allclose(batched_losses(objective, outputs, y), want, rtol=1e-14)
    with pytest.raises(ValueError, match="logit"):
        batched_losses(train.Objective("bce"), outputs, y)


def test_circle_command_trains_with_the_batched_engine(tmp_path, capsys):
    from tinygrad_edu.cli import main

    code = main(["circle", "--samples", "300", "--epochs", "2", "--engine", "batched", "--quiet",
                 "--out", str(tmp_path)])
    assert code == 0
    assert capsys.readouterr().out.strip().startswith("test accuracy: ")
    assert (tmp_path / "model.json").exists()


def test_rules_come_from_the_table():
    """A primitive registered later is replayed with its own rules: nothing is copied."""
    cube = ops.Primitive("cube_test_batched", 1, lambda m, x: x * x * x, lambda m, g, out, x: (g * 3.0 * x * x,))
    from tinygrad_edu.engine import apply

    w = Value(0.7, "w")
    assert_matches_scalar(lambda x: apply(cube, w * x), np.array([[1.0], [-2.0], [0.5]]), [w])


# The layout: views, broadcast slots, stacked runs, gathered slots ----------------------------

def slot_kinds(tape):
    """(op name, 'view' | 'broadcast' | 'gather') for every input slot of every group."""
    kinds = []
    for g in tape.layout.groups:
        for view in g.views:
            if view is None:
                kinds.append((g.op.name, "gather"))
            elif any(s == 0 and n > 1 for s, n in zip(view[1], g.shape)):
                kinds.append((g.op.name, "broadcast"))
            else:
                kinds.append((g.op.name, "view"))
    return kinds


def test_an_mlp_layer_reads_every_slot_as_a_view():
    model = nn.MLP(2, [8, 1], "relu", "sigmoid", seed=0)
    fn = lambda a, b, t: nn.binary_cross_entropy_with_logits(model.logits([a, b]), t)  # noqa: E731
    tape = trace(fn, [0.1, 0.2, 1.0], model.parameters(), passes=())  # the layout as traced
    kinds = slot_kinds(tape)
    assert ("mul", "gather") not in kinds and ("sum", "gather") not in kinds
    assert ("mul", "broadcast") in kinds  # x[k] read by every neuron: one row, stride 0
    rng = np.random.default_rng(0)
    for batch in (32, 7, 1):  # a full batch, a partial last batch, a single sample
        rows = np.c_[rng.uniform(-1, 1, (batch, 2)), rng.random(batch) < 0.5]
        assert_matches_scalar(fn, rows, model.parameters())


def test_broadcast_slots_that_need_a_gradient_sum_over_the_broadcast_axis():
    # In a second hidden layer every neuron reads every activation of the first: the activations'
    # gradient is the sum over the neurons that read them.
    model = nn.MLP(3, [4, 5, 1], "tanh", "linear", seed=2)
    fn = lambda a, b, c, t: nn.mse_loss(model([a, b, c]), t)  # noqa: E731
    rows = np.c_[np.random.default_rng(1).uniform(-1, 1, (9, 3)), np.arange(9) % 2]
    tape = trace(fn, rows[0], model.parameters(), passes=())  # the layout as traced (no matmul)
    grad_broadcast = [
        g for g in tape.layout.groups for k, view in enumerate(g.views)
        if view is not None and g.grad_slots[k] and any(s == 0 and n > 1 for s, n in zip(view[1], g.shape))
    ]
    assert grad_broadcast, "expected a broadcast slot that a gradient flows into"
    assert_matches_scalar(fn, rows, model.parameters())


def test_duplicated_parents_in_gathered_and_repeated_slots():
    w1, w2, c = Value(0.8, "w1"), Value(-1.3, "w2"), Value(0.4, "c")

    def fn(x, y):
        # mul slot 0 reads rows [w1, w1, w2]: not a progression, gathered, scattered with np.add.at;
        # c * c and c + c read one row twice in two slots; the sum reads h three times.
        h = x * c
        return vsum([w1 * x, w1 * y, w2 * x, c * c * y, (c + c) * x, h, h, h])

    tape = trace(fn, [1.0, 2.0], [w1, w2, c])
    assert ("mul", "gather") in slot_kinds(tape)
    rows = np.array([[0.3, 2.0], [-1.2, 0.5], [0.8, -1.0]])
    assert_matches_scalar(fn, rows, [w1, w2, c])
    for p in (w1, w2, c):
        p.grad = 0.0
    tape.mean_backward(rows)
    x, y = rows[:, 0], rows[:, 1]
    assert w1.grad == pytest.approx(np.mean(x + y), rel=1e-15)
    assert w2.grad == pytest.approx(np.mean(x), rel=1e-15)
    assert c.grad == pytest.approx(np.mean(2 * 0.4 * y + 2 * x + 3 * x), rel=1e-14)


def test_stacked_slots_get_each_their_own_gradient_unless_the_rule_shares_one():
    # A three-input primitive whose derivative differs per input, reading three products laid out
    # one after the other (a stackable run): each slot must still get its own gradient.
    weighted = ops.Primitive("weighted3_test_batched", 3, lambda m, a, b, c: a + 2.0 * b + 3.0 * c,
                             lambda m, g, out, a, b, c: (g, 2.0 * g, 3.0 * g))
    from tinygrad_edu.engine import apply

    ws = [Value(v, f"w{i}") for i, v in enumerate((0.5, -0.25, 2.0))]
    fn = lambda x: apply(weighted, ws[0] * x, ws[1] * x, ws[2] * x) + vsum([w * x for w in ws])  # noqa: E731
    rows = np.array([[1.0], [-2.0], [0.5], [3.0]])
    assert_matches_scalar(fn, rows, ws)
    for w in ws:
        w.grad = 0.0
    trace(fn, rows[0], ws).mean_backward(rows)
    assert [w.grad for w in ws] == pytest.approx([np.mean(rows) * (1 + i) + np.mean(rows) for i in range(3)], rel=1e-15)


def test_overflow_while_adding_up_gradients_gives_inf_like_the_scalar_engine():
    # Each contribution to w's gradient is finite (x / 2), their sum is not; the forward is finite.
    w = Value(1e-300, "w")
    fn = lambda x: vsum([w * x, w * x])  # noqa: E731
    for rows in (np.array([[1e308]]), np.array([[1e308], [1.7e308]])):
        _, (ref,) = scalar_mean_loss(fn, rows, [w])
        assert ref == math.inf
        w.grad = 0.0
        trace(fn, rows[0], [w]).mean_backward(rows)
        assert w.grad == ref


# The compiled step ---------------------------------------------------------------------------

def test_the_compiled_step_equals_the_group_by_group_replay_bit_for_bit():
    # Every kind of gradient add: plain, a stacked run (sum), a broadcast slot summed over its
    # axis (second hidden layer), a gathered slot with repeated rows.
    model = nn.MLP(3, [4, 5, 1], "tanh", "sigmoid", seed=2)
    w1 = Value(0.8, "w1")
    params = model.parameters() + [w1]

    def fn(a, b, c, t):
        extra = vsum([w1 * a, w1 * b, model.layers[0].neurons[0].b * a])  # mul slot 0 gathered
        return nn.binary_cross_entropy_with_logits(model.logits([a, b, c]) + extra, t)

    rows = np.c_[np.random.default_rng(5).uniform(-1, 1, (6, 3)), np.arange(6) % 2]
    tape = trace(fn, rows[0], params, passes=())  # every kind of add, as traced (no matmul)
    kinds = {kind for _, kind in slot_kinds(tape)}
    assert kinds == {"view", "broadcast", "gather"}
    plan = tape._inputs_plan(rows)
    with np.errstate(all="raise"):
        tape.run_forward(plan)
        V = plan.V.copy()
        tape.replay_forward(plan)
        assert np.array_equal(plan.V, V)
        tape.seed(plan, None, 0.25)
        plan.run_backward()
        G, PG = plan.G.copy(), plan.param_grads.copy()
        tape.replay_backward(plan, None, 0.25)
        assert np.array_equal(plan.G, G) and np.array_equal(plan.param_grads, PG) and PG.any()
        assert plan.params_in_V and plan.params_in_G  # the gathered slot reads and adds through V and G
        # Both passes in one function, results read whole kept in local variables: same bits
        # where it matters (the parameters' gradients and the output).
        plan.V.fill(np.nan)
        plan.inputs_view[...] = rows.T
        tape.load_params(plan)
        plan.V[tape.layout.const_rows] = tape.layout.const_data[:, None]
        tape.seed(plan, None, 0.25)
        loss_sum = plan.run_step()
        assert np.array_equal(plan.param_grads, PG)
        assert loss_sum == pytest.approx(V[tape.layout.output_rows[0]].sum(), rel=1e-14)
    source = plan.source
    assert "for " not in source and "while " not in source  # straight-line code
    step = source[source.index("def run_step"):]
    assert step.count("[...] =") < source[:source.index("def run_backward")].count("[...] =")  # fewer stores
    assert "d_" in step and "G_" in step  # gradients kept local
    assert_matches_scalar(fn, rows, params)


#: How far NumpyMath's sigmoid and softplus may be from the scalar formulas, in units in the last
#: place: NumPy's vectorised exp and log1p may differ from the C library's by 1 ulp on CPUs where
#: NumPy uses SIMD versions (AVX-512, for example), and one division or addition adds at most one more.
NUMPY_ULPS = 4


def _numpy_math_inputs() -> np.ndarray:
    special = [0.0, -0.0, math.nan, math.inf, -math.inf, 5e-324, -5e-324, 2.2e-308, -1.0, 1.0, 36.9, -36.9,
               709.8, -709.8, 745.2, -745.2, 1e308, -1e308]
    rng = np.random.default_rng(0)
    return np.concatenate([special, rng.choice(special, 300), rng.normal(0, 20, 300), rng.normal(0, 1, 300)])


def test_numpy_relu_and_step_are_bit_exact_on_special_values():
    # relu and step are comparisons, not arithmetic: the same bits on every CPU, signed zeros and NaNs
    # included, for contiguous, strided and broadcast inputs.
    x = _numpy_math_inputs()
    for name in ("relu", "step"):
        for arr in (x, x[::3], np.broadcast_to(x[:40], (3, 40)), x.reshape(2, -1)):
            got = getattr(NUMPY_MATH, name)(arr)
            want = np.array([getattr(FLOAT_MATH, name)(v) for v in arr.ravel().tolist()]).reshape(arr.shape)
            assert np.array_equal(got, want, equal_nan=True), name
            assert np.array_equal(np.signbit(got), np.signbit(want)), name
        assert float(getattr(NUMPY_MATH, name)(np.float64(-3.0))) == getattr(FLOAT_MATH, name)(-3.0)


def test_numpy_sigmoid_and_softplus_are_within_a_few_ulps_on_special_values():
    # Computed with other NumPy calls than the plain formula: the same NaNs, infinities, zeros and
    # signs, and every finite value within NUMPY_ULPS units in the last place of the scalar one.
    x = _numpy_math_inputs()
    assert x.size > SMALL  # the formulas for large arrays, and (split, and broadcast) for small ones
    for name in ("sigmoid", "softplus"):
        for arr in (x, x[::3], np.broadcast_to(x[:40], (3, 40)), x.reshape(2, -1), *np.array_split(x, 8)):
            with np.errstate(all="ignore"):
                got = getattr(NUMPY_MATH, name)(arr)
            want = np.array([getattr(FLOAT_MATH, name)(v) for v in arr.ravel().tolist()]).reshape(arr.shape)
            assert np.array_equal(np.isnan(got), np.isnan(want)), name
            assert np.array_equal(np.isinf(got), np.isinf(want)) and np.array_equal(got[np.isinf(got)], want[np.isinf(want)])
            assert np.array_equal(np.signbit(got[~np.isnan(got)]), np.signbit(want[~np.isnan(want)])), name
            finite = np.isfinite(want)
            ulps = np.abs(got[finite] - want[finite]) / np.spacing(np.abs(want[finite]))
            assert ulps.max() <= NUMPY_ULPS, (name, ulps.max())
        got = float(getattr(NUMPY_MATH, name)(np.float64(-3.0)))
        assert abs(got - getattr(FLOAT_MATH, name)(-3.0)) <= NUMPY_ULPS * math.ulp(getattr(FLOAT_MATH, name)(-3.0))


@pytest.mark.parametrize("batch", [1, 2, 3, 9, 32])
def test_a_stacked_sum_adds_left_to_right_like_the_scalar_engine(batch):
    # Terms that cancel: any other order of additions gives other bits.
    ws = [Value(v, f"w{i}") for i, v in enumerate([1e16, 1.0, -1e16, 3.0, 1e-3, 7e15, -7e15, 0.5, 2.5, -1.0, 1e16, -1e16])]
    b = Value(0.125, "b")
    # without the matmul pass, whose matrix product adds in BLAS's order
    tape = trace(lambda x: vsum([w * x for w in ws]) + b, [1.0], ws + [b], passes=())
    x = np.random.default_rng(batch).uniform(0.5, 1.5, batch)
    want = []
    for xi in x.tolist():
        total = 0.0
        for w in ws:
            total += w.data * xi
        want.append(total + b.data)
    assert tape.forward(x[:, None]).tolist() == want
    if batch > 1:  # the sum's leading products are read as one block and reduced in one call
        assert any(type(step.math).__name__ == "StackedMath" for step in tape.plan(batch).forward)


# train.fit's array loop (batched.Trainer) ---------------------------------------------------

NO_TRAINER = train.Engine("batched-values", train.ENGINES["batched"].step, train.ENGINES["batched"].outputs,
                          train.ENGINES["batched"].losses)

OPTIMIZERS = {
    "sgd": lambda ps: optim.SGD(ps, lr=0.1),
    "momentum": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": lambda ps: optim.Adam(ps, lr=0.01, weight_decay=1e-3),
}


def fit_with(engine, make_opt, callback=None, epochs=3, batch_size=16):
    X, y = circle_data(150)
    model = nn.MLP(2, [5, 1], "relu", "sigmoid", seed=3)
    opt = make_opt(model.parameters())
    h = train.fit(model, X[:110], y[:110], X_test=X[110:], y_test=y[110:], optimizer=opt, epochs=epochs,
                  batch_size=batch_size, seed=7, engine=engine, progress=False, callback=callback)
    return h, model, opt


def optimizer_state(opt):
    return [getattr(opt, name) for name in ("_buffers", "_m", "_v") if hasattr(opt, name)]


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_the_array_loop_gives_the_same_bits_as_steps_on_values(name):
    # The same tape either way; the optimizer's array step does the float operations of step().
    # 110 rows in batches of 16: a partial last batch every epoch.
    (h1, m1, o1), (h2, m2, o2) = fit_with("batched", OPTIMIZERS[name]), fit_with(NO_TRAINER, OPTIMIZERS[name])
    assert batched.Trainer.create(m1, train.make_objective("bce", m1), o1, np.zeros((1, 2)), np.zeros(1), 4)
    assert [p.data for p in m1.parameters()] == [p.data for p in m2.parameters()]
    assert [p.grad for p in m1.parameters()] == [p.grad for p in m2.parameters()]  # the last batch's
    assert optimizer_state(o1) == optimizer_state(o2) and o1.steps == o2.steps == 3 * 7
    assert h1.train_loss == h2.train_loss and h1.test_accuracy == h2.test_accuracy


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_the_array_loop_follows_the_scalar_engine(name):
    (h1, m1, _), (h2, m2, _) = fit_with("batched", OPTIMIZERS[name]), fit_with("scalar", OPTIMIZERS[name])
    np.testing.assert_allclose([p.data for p in m1.parameters()], [p.data for p in m2.parameters()], rtol=1e-12)
    np.testing.assert_allclose(h1.train_loss, h2.train_loss, rtol=1e-12)
    assert h1.test_accuracy == h2.test_accuracy


def test_a_callback_sees_current_weights_and_its_changes_are_kept():
    seen = {}

    def callback(epoch, history, runs=seen):
        model, opt, key = callback.model, callback.opt, callback.key
        runs.setdefault(key, []).append([p.data for p in model.parameters()])
        if epoch == 1:  # shrink the weights and the learning rate
            for p in model.parameters():
                p.data *= 0.5
            opt.lr = 0.02

    results = {}
    for key, engine in (("array", "batched"), ("values", NO_TRAINER)):
        X, y = circle_data(100)
        model = nn.MLP(2, [4, 1], "relu", "sigmoid", seed=1)
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.5)
        callback.model, callback.opt, callback.key = model, opt, key
        train.fit(model, X, y, optimizer=opt, epochs=3, batch_size=32, seed=2, engine=engine, progress=False,
                  callback=callback)
        results[key] = [p.data for p in model.parameters()]
    assert seen["array"] == seen["values"] and results["array"] == results["values"]


def test_an_interrupted_array_loop_leaves_the_current_weights_in_the_model():
    class Interrupting:
        """The batched engine's trainer, with a Ctrl-C during the 7th batch."""

        def __init__(self, inner):
            self.inner, self.count = inner, 0
            self.load, self.store = inner.load, inner.store

        def epoch(self, rng, check):
            for value in self.inner.epoch(rng, check):
                self.count += 1
                if self.count == 7:
                    signal.raise_signal(signal.SIGINT)
                yield value

    make = lambda *args: Interrupting(batched.Trainer.create(*args))  # noqa: E731
    engine = train.Engine("interrupting", NO_TRAINER.step, NO_TRAINER.outputs, NO_TRAINER.losses, make)
    X, y = circle_data(100)
    model = nn.MLP(2, [4, 1], "relu", "sigmoid", seed=1)
    h = train.fit(model, X, y, epochs=5, batch_size=20, seed=0, engine=engine, progress=False)
    assert h.interrupted and h.steps == 7 and h.epoch == [1, 1.4]
    ref = nn.MLP(2, [4, 1], "relu", "sigmoid", seed=1)
    ref_opt = optim.SGD(ref.parameters(), lr=train.DEFAULT_LR)
    objective = train.make_objective("bce", ref)
    rng = np.random.default_rng(0)
    batches = [b for _ in range(2) for b in data.minibatches(X, y, 20, seed=rng)][:7]
    for Xb, yb in batches:
        ref_opt.zero_grad()
        batched.batched_step(ref, objective, Xb, yb)
        ref_opt.step()
    assert [p.data for p in model.parameters()] == [p.data for p in ref.parameters()]


def test_no_array_loop_when_the_optimizer_does_not_cover_the_loss_parameters():
    X, y = circle_data(60)
    model = nn.MLP(2, [3, 1], "relu", "sigmoid", seed=0)
    objective = train.make_objective("bce", model)
    first_layer = model.layers[0].parameters()
    opt = optim.SGD(first_layer, lr=0.1)
    assert batched.Trainer.create(model, objective, opt, X, y, 8) is None
    assert batched.Trainer.create(model, objective, optim.SGD(model.parameters() * 2, lr=0.1), X, y, 8) is None
    last = model.layers[1].parameters()
    before = [p.data for p in last]
    train.fit(model, X, y, optimizer=opt, epochs=1, batch_size=8, seed=0, engine="batched", progress=False)
    assert [p.data for p in last] == before  # not optimized: untouched


def test_large_batches_store_every_result_and_still_match():
    # 20 products per sample, 1000 samples: 160 KB per group, past the size where the step keeps
    # results in local variables.
    ws = [Value(0.1 * (i - 10), f"w{i}") for i in range(20)]
    tape = trace(lambda x: vsum([w * x for w in ws]).tanh(), [1.0], ws, passes=())
    x = np.linspace(-0.5, 1, 1000)
    source = tape.plan(1000).source
    assert "    mul0 = " not in source and "d_mul0" not in source  # results and gradients in V and G
    assert "    mul0 = " in tape.plan(8).source  # small batches keep them in locals
    for w in ws:
        w.grad = 0.0
    loss = tape.mean_backward(x[:, None])
    s = sum(w.data for w in ws)
    assert loss == pytest.approx(np.mean(np.tanh(s * x)), rel=1e-14)
    for i, w in enumerate(ws):
        assert w.grad == pytest.approx(np.mean((1 - np.tanh(s * x) ** 2) * x), rel=1e-12), i
