"""tinygrad_edu.batched's optimisation passes, one by one: what each rewrites, that it leaves
alone what it must not, and that the numbers stay those of the scalar engine (within the batched
engine's tolerance) and of the tape without passes."""

import math

import numpy as np
import pytest

from tinygrad_edu import Value, nn, ops
from tinygrad_edu import sum as vsum
from tinygrad_edu.batched import trace
from tinygrad_edu.batched.lowering import lower
from tinygrad_edu.batched.passes import PASSES
from tinygrad_edu.testing.numpy_calls import count_step_calls

from test_batched import assert_matches_scalar


def circle(*passes_each):
    """The circle loss, its parameters, and a tape of it per passes argument."""
    model = nn.MLP(2, [8, 1], "relu", "sigmoid", seed=0)
    fn = lambda a, b, t: nn.binary_cross_entropy_with_logits(model.logits([a, b]), t)  # noqa: E731
    return fn, model.parameters(), *(trace(fn, [0.1, 0.2, 1.0], model.parameters(), passes=p) for p in passes_each)


def rows(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return np.c_[rng.uniform(-1, 1, (n, 2)), rng.random(n) < 0.5]


def grads_of(tape, params, batch):
    for p in params:
        p.grad = 0.0
    loss = tape.mean_backward(batch)
    return loss, np.array([p.grad for p in params])


def test_fuse_logit_bce_makes_one_group_of_the_loss():
    fn, params, fused, plain = circle(("fuse_logit_bce",), ())
    assert {g.op.name for g in plain.layout.groups} >= {"softplus", "sub"}
    names = [g.op.name for g in fused.layout.groups]
    assert "softplus" not in names and "sub" not in names and names[-1] == "binary_cross_entropy_with_logits"
    assert fused.num_groups == plain.num_groups - 2 and fused.num_nodes == plain.num_nodes  # as traced
    batch = rows()
    loss, grads = grads_of(fused, params, batch)
    loss0, grads0 = grads_of(plain, params, batch)
    assert loss == pytest.approx(loss0, rel=1e-14)
    np.testing.assert_allclose(grads, grads0, rtol=1e-10, atol=1e-15)
    assert_matches_scalar(fn, batch, params)  # default passes, against the scalar engine


def test_fuse_logit_bce_leaves_a_softplus_read_elsewhere():
    w = Value(0.3, "w")

    def fn(x, t):
        z = w * x
        sp = z.softplus()
        return sp - z * t + 0.1 * sp  # softplus read twice: not the loss's alone

    tape = trace(fn, [0.5, 1.0], [w], passes=("fuse_logit_bce",))
    assert "softplus" in {g.op.name for g in tape.layout.groups}
    assert_matches_scalar(fn, np.array([[0.5, 1.0], [-2.0, 0.0], [3.0, 1.0]]), [w])


@pytest.mark.parametrize("z,t", [(0.3, 1.0), (-4.0, 0.0), (25.0, 0.0), (-30.0, 1.0), (0.0, 0.5)])
def test_the_fused_primitive_has_the_closed_form_gradient(z, t):
    op = ops.BCE_WITH_LOGITS
    out = op.forward(ops.FLOAT_MATH, z, t)
    assert out == pytest.approx(math.log1p(math.exp(-abs(z))) + max(z, 0.0) - z * t, rel=1e-15, abs=1e-300)
    dz, dt = op.vjp(ops.FLOAT_MATH, 2.0, out, z, t)
    assert dz == pytest.approx(2.0 * (1.0 / (1.0 + math.exp(-z)) - t), rel=1e-14, abs=1e-300)
    assert dt == -2.0 * z


def test_skip_unused_gradients_computes_only_what_is_read():
    fn, params, skipping, plain = circle(("skip_unused_gradients",), ())
    src, src0 = (t.plan(32).source.split("def run_step")[1] for t in (skipping, plain))
    # layer 1's products w[j][k] * x[k]: the inputs' gradient (g * w) is not computed
    assert "G_mul0 * x_0_2" in src and "G_mul0 * p_0_16" not in src
    assert "mul_vjp(m, G_mul0" in src0  # the whole rule, both gradients, without the pass
    batch = rows(7, seed=3)
    loss, grads = grads_of(skipping, params, batch)
    loss0, grads0 = grads_of(plain, params, batch)
    assert loss == loss0 and np.array_equal(grads, grads0)  # the same operations on the same data


def test_lower_writes_the_rule_line_by_line_and_refuses_branches():
    names = iter(range(100))
    lines, results = lower(ops.MUL.vjp, ["g", "out", "a", "b"], [1], "m", repr, lambda: f"t{next(names)}")
    assert lines == ["t0 = g * a"] and results == [None, "t0"]
    lines, results = lower(ops.SIGMOID.vjp, ["g", "out", "x"], [0], "m", repr, lambda: f"t{next(names)}")
    assert lines == ["t1 = g * out", "t2 = 1.0 - out", "t3 = t1 * t2"] and results == ["t3"]
    branchy = lambda m, g, out, x: (g if x > 0 else -g,)  # noqa: E731
    assert lower(branchy, ["g", "out", "x"], [0], "m", repr, lambda: "t") is None


def test_reuse_forward_values_takes_the_losss_softplus_for_its_derivative():
    all_but = tuple(p for p in PASSES if p != "reuse_forward_values")
    fn, params, reusing, plain = circle(None, all_but)
    src, src0 = (t.plan(32).source.split("def run_step")[1] for t in (reusing, plain))
    # forward: the loss's rule as its lines (softplus, product, difference); backward: no softplus again
    assert src.count("_logaddexp(_zero, linear2)") == 1 and "bce_logits_forward(" not in src
    assert src0.count("_logaddexp(_zero, linear2)") == 1 and "bce_logits_forward(" in src0  # the backward's own
    calls = [count_step_calls(t, rows(32)) for t in (reusing, plain)]
    assert calls[0].count("logaddexp") == 1 and calls[1].count("logaddexp") == 2
    # and relu, written out, writes straight into the next layer's buffer (no copy)
    assert "_add(_maximum(linear0, _zero), _zero, out=linear2_in_top)" in src and "linear2_in_top[...] = relu1" in src0
    assert len(calls[0]) == len(calls[1]) - 2
    for batch in (rows(32), rows(5, seed=2)):
        loss, grads = grads_of(reusing, params, batch)
        loss0, grads0 = grads_of(plain, params, batch)
        assert loss == loss0 and np.array_equal(grads, grads0)  # the same operations on the same data
    assert_matches_scalar(fn, rows(9, seed=6), params)


def test_reuse_forward_values_shares_softplus_without_the_fused_loss():
    w = Value(0.4, "w")
    fn = lambda x, t: (w * x).softplus() * t  # noqa: E731  (softplus's derivative is its sigmoid)
    tape = trace(fn, [0.5, 1.0], [w], passes=("skip_unused_gradients", "reuse_forward_values"))
    step = tape.plan(4).source.split("def run_step")[1]
    assert step.count("_logaddexp(") == 1 and "_expm1(" in step
    assert_matches_scalar(fn, np.array([[0.5, 1.0], [-2.0, 0.0], [3.0, 1.0], [40.0, 2.0]]), [w])


def test_lower_reuses_known_expressions_and_expands_sigmoid():
    names = iter(range(100))
    known = {}
    temp = lambda: f"t{next(names)}"  # noqa: E731
    lines, results = lower(lambda m, x: (m.softplus(x) * 2.0,), ["x"], [0], "m", repr, temp, known, remember=True)
    assert lines == ["t0 = m.softplus(x)", "t1 = t0 * 2.0"] and known["m.softplus(x)"] == "t0"
    lines, results = lower(ops.SOFTPLUS.vjp, ["g", "out", "x"], [0], "m", repr, temp, known)
    assert lines == ["t2 = -t0", "t3 = m.expm1(t2)", "t4 = -t3", "t5 = g * t4"] and results == ["t5"]
    assert "g * t4" not in known  # the backward's expressions are not remembered


def test_lower_inlines_numpy_expressions_of_the_math():
    names = iter(range(100))
    temp = lambda: f"t{next(names)}"  # noqa: E731
    lines, _ = lower(lambda m, x: (m.relu(x),), ["x"], [0], "m", repr, temp, inline=True)
    assert lines == ["t0 = _add(_maximum(x, _zero), _zero)"]  # NumpyMath.relu's calls, in its order
    lines, _ = lower(lambda m, x: (m.softplus(x),), ["x"], [0], "m", repr, temp, inline=True, expand=False)
    assert lines == ["t1 = m.softplus(x)"]  # a large array: NumpyMath picks its formula by size
    lines, _ = lower(lambda m, x: (m.tanh(x),), ["x"], [0], "m", repr, temp, inline=True)
    assert lines == ["t2 = m.tanh(x)"]  # not one NumPy expression: the method


def test_pass_names_are_checked():
    assert PASSES == ("fuse_logit_bce", "matmul", "fold_bias", "skip_unused_gradients", "reuse_forward_values")
    with pytest.raises(ValueError, match="unknown pass 'fuse_everything'"):
        trace(lambda x: x * 2.0, [1.0], [], passes=("fuse_everything",))


def test_matmul_fuses_each_layer_into_one_matrix_product():
    fn, params, fused, plain = circle(("matmul",), ())
    assert [g.op.name for g in fused.layout.groups] == ["linear", "relu", "linear", "mul", "softplus", "sub"]
    assert {"mul", "sum"} <= {g.op.name for g in plain.layout.groups}
    for batch in (rows(32), rows(1, seed=4), rows(7, seed=5)):
        loss, grads = grads_of(fused, params, batch)
        loss0, grads0 = grads_of(plain, params, batch)
        assert loss == pytest.approx(loss0, rel=1e-13)
        np.testing.assert_allclose(grads, grads0, rtol=1e-11, atol=1e-15)


def test_matmul_fuses_hidden_layers_and_leaves_products_of_inputs():
    model = nn.MLP(3, [4, 5, 1], "tanh", "linear", seed=2)
    u = Value(0.5, "u")
    fn = lambda a, b, c, t: nn.mse_loss(model([a, b, c]), t) + vsum([(a + b) * c, u])  # noqa: E731
    tape = trace(fn, [0.1, 0.2, 0.3, 1.0], model.parameters() + [u], passes=("matmul",))
    names = [g.op.name for g in tape.layout.groups]
    assert names.count("linear") == 3  # every layer
    assert "mul" in names  # (a + b) * c: no weights (parameters) to make a matrix of
    batch = np.c_[np.random.default_rng(1).uniform(-1, 1, (9, 3)), np.arange(9) % 2]
    assert_matches_scalar(fn, batch, model.parameters() + [u])


def test_fold_bias_makes_the_weights_product_give_the_bias_gradient():
    fn, params, folded, plain = circle(None, tuple(p for p in PASSES if p != "fold_bias"))
    assert [type(g).__name__ for g in folded.layout.groups] == ["BiasLinear", "Group", "BiasLinear", "Group"]
    assert folded.show().splitlines()[2].split() == ["linear0:(8,)", "=", "linear", "p[0:24]", "x[0:2]", "p[0:16]"]
    calls, calls0 = (count_step_calls(t, rows(32)) for t in (folded, plain))
    # no reduction over the batch for the biases (the one left is the loss's); the first layer's
    # inputs copied above its row of ones instead of a bias addition (the second layer's are
    # written there by relu itself)
    assert calls.count("add.reduce") == 1 and calls0.count("add.reduce") == 3
    assert calls.count("store") == 1 and calls0.count("store") == 0 and len(calls) == len(calls0) - 3
    for batch in (rows(32), rows(1, seed=4), rows(7, seed=5)):
        loss, grads = grads_of(folded, params, batch)
        loss0, grads0 = grads_of(plain, params, batch)
        assert loss == pytest.approx(loss0, rel=1e-13)
        np.testing.assert_allclose(grads, grads0, rtol=1e-11, atol=1e-15)
    assert_matches_scalar(fn, rows(9, seed=8), params)


def test_fold_bias_leaves_layers_with_other_terms():
    model = nn.MLP(2, [3, 1], "tanh", "linear", seed=4)
    c = Value(0.3, "c")
    # the output neuron's bias is added after its sum (no bias term in the layer: nothing to fold)
    fn = lambda a, b, t: (vsum([w * h for w, h in zip(model.layers[1].neurons[0].w, model.layers[0]([a, b]))])  # noqa: E731
                          + model.layers[1].neurons[0].b + c * t - t) ** 2
    tape = trace(fn, [0.1, 0.2, 1.0], model.parameters() + [c])
    kinds = [type(g).__name__ for g in tape.layout.groups]
    assert kinds.count("Linear") == 1 and kinds.count("BiasLinear") == 1  # the hidden layer has its bias
    assert_matches_scalar(fn, rows(6, seed=9), model.parameters() + [c])


def test_matmul_fuses_a_layer_whose_products_share_their_depth_with_other_products():
    model = nn.MLP(2, [3, 1], "tanh", "linear", seed=5)
    c = Value(0.3, "c")
    # c * t and 0.5 * a are products at the depth of the hidden layer's, read by other primitives
    fn = lambda a, b, t: nn.mse_loss(model([a, b]), t) + c * t + (0.5 * a).tanh()  # noqa: E731
    tape = trace(fn, [0.1, 0.2, 1.0], model.parameters() + [c])
    plain = trace(fn, [0.1, 0.2, 1.0], model.parameters() + [c], passes=())
    kinds = [type(g).__name__ for g in tape.layout.groups]
    assert kinds.count("BiasLinear") == 2  # both layers
    depth1 = sorted(g.size for g in plain.layout.groups[:3])
    assert depth1 == [1, 1, 6]  # as traced: the hidden layer's 6 products a group of their own
    assert_matches_scalar(fn, rows(8, seed=11), model.parameters() + [c])


def test_matmul_leaves_products_that_something_else_reads():
    w = [Value(0.5, "w0"), Value(-0.25, "w1")]

    def fn(x, y):
        p = [w[0] * x, w[1] * y]
        return vsum(p) + p[0].tanh()  # w0 * x is read by the sum and by tanh

    tape = trace(fn, [1.0, 2.0], w, passes=("matmul",))
    assert "linear" not in [g.op.name for g in tape.layout.groups]
    assert_matches_scalar(fn, np.array([[1.0, 2.0], [-0.5, 0.25]]), w)


def test_a_step_that_assigns_its_gradients_needs_no_zeroing_between_steps():
    # The circle tape after its passes writes every gradient row once: G is zeroed and seeded once
    # per batch size, not every step. Steps after other uses of the plan (a step that the previous
    # one seeded differently, tape.backward's seed) must still give fresh gradients.
    fn, params, tape = circle(None)
    plan = tape.plan(16)
    assert not plan.run_step_zeroes
    vals = np.array([p.data for p in tape.used_params])
    grads = np.empty_like(vals)
    rng = np.random.default_rng(7)
    for i in range(4):
        batch = rows(16, seed=10 + i)
        plan.inputs_view[...] = batch.T
        loss = tape.mean_step(plan, vals + 0.01 * i, grads)
        if i == 2:
            tape.backward(batch, rng.normal(size=16))  # reseeds G with other output gradients
        for p, v in zip(tape.used_params, vals + 0.01 * i):
            p.data = v
        fresh = trace(fn, [0.1, 0.2, 1.0], params)  # a new tape: a new, zeroed plan
        want_loss, want = grads_of(fresh, tape.used_params, batch)
        assert loss == pytest.approx(want_loss, rel=1e-14)
        np.testing.assert_allclose(grads, want, rtol=1e-13, atol=1e-16)


def test_lower_refuses_rules_that_leave_the_math_namespace():
    import numpy as np_

    temp = iter(range(100))
    as_array = lambda m, g, out, x: (np_.exp(x) * g,)  # noqa: E731  (NumPy itself, not m.exp)
    as_float = lambda m, g, out, x: (math.exp(x) * g,)  # noqa: E731
    returns_array = lambda m, g, out, x: (np_.ones(3),)  # noqa: E731
    for rule in (as_array, as_float, returns_array):
        assert lower(rule, ["g", "out", "x"], [0], "m", repr, lambda: f"t{next(temp)}") is None
