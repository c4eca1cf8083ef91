"""tinygrad_edu.batched's plan, code generation and listing: the generated step against the plain
reference interpreter of the same plan (the same NumPy operations on the same data, so the same
bits), and Tape.show's listing of a small tape written out by hand."""

import numpy as np
import pytest

from tinygrad_edu import Value, nn
from tinygrad_edu import sum as vsum
from tinygrad_edu.batched import trace
from tinygrad_edu.batched.plan import interpret_backward, interpret_forward


def circle_tape(passes=None):
    model = nn.MLP(2, [8, 1], "relu", "sigmoid", seed=0)
    return trace(lambda a, b, t: nn.binary_cross_entropy_with_logits(model.logits([a, b]), t), [0.1, 0.2, 1.0],
                 model.parameters(), passes=passes)


def deep_tape():  # two hidden layers (broadcast slots with gradients), tanh, MSE, a reused input
    model = nn.MLP(3, [4, 5, 1], "tanh", "linear", seed=2)
    return trace(lambda a, b, c, t: nn.mse_loss(model([a, b, c]), t) + 0.5 * a * a, [0.1, 0.2, 0.3, 1.0],
                 model.parameters())


def gather_tape():  # irregular reuse: a slot read through a gather, repeated rows in one slot
    w1, w2 = Value(0.8, "w1"), Value(-1.3, "w2")
    return trace(lambda a, b: vsum([w1 * a, w2 * b, w1 * b, w2 * a, w1 * w1]).sigmoid(), [0.5, -0.5], [w1, w2])


@pytest.mark.parametrize("make", [circle_tape, deep_tape, gather_tape, lambda: circle_tape(passes=())])
@pytest.mark.parametrize("batch", [1, 7, 32])
def test_the_generated_step_equals_the_reference_interpreter(make, batch):
    tape = make()
    rows = np.random.default_rng(batch).uniform(-1, 1, (batch, tape.num_inputs))
    plan = tape.plan(batch)
    plan.inputs_view[...] = rows.T
    with np.errstate(all="raise"):
        tape.load_params(plan)
        interpret_forward(plan)
        V = plan.V.copy()
        tape.seed(plan, None, 1.0 / batch)
        interpret_backward(plan)
        G = plan.G.copy()
        assert G[: len(tape.used_params)].any()

        for g in tape.layout.groups:  # every group's rows: the generated code must fill them
            plan.V[g.lo:g.hi] = np.nan
        plan.run_forward()
        assert np.array_equal(plan.V, V)
        tape.seed(plan, None, 1.0 / batch)
        plan.run_backward()
        assert np.array_equal(plan.G, G)

        # both passes in one function, results kept in locals: the same output and parameter gradients
        for g in tape.layout.groups:
            plan.V[g.lo:g.hi] = np.nan
        tape.seed(plan, None, 1.0 / batch)
        loss_sum = plan.run_step()  # returns the output's sum over the batch
        assert np.array_equal(plan.param_grads, G[: len(tape.used_params)])
        assert loss_sum == pytest.approx(V[tape.layout.output_rows[0]].sum(), rel=1e-14)
        if not plan.run_step_zeroes:  # it assigns every gradient row it writes: again, unzeroed
            assert plan.run_step() == loss_sum and np.array_equal(plan.param_grads, G[: len(tape.used_params)])


def test_the_interpreter_computes_the_scalar_engines_numbers():
    # the reference itself, against per-sample graphs of Values
    w, b = Value(0.7, "w"), Value(-0.2, "b")
    fn = lambda x, t: ((w * x + b).tanh() - t) ** 2  # noqa: E731
    tape = trace(fn, [0.3, 1.0], [w, b])
    rows = np.array([[0.3, 1.0], [-1.2, 0.0], [2.0, 1.0]])
    plan = tape.plan(3)
    plan.inputs_view[...] = rows.T
    tape.load_params(plan)
    interpret_forward(plan)
    tape.seed(plan, None, 1.0)
    interpret_backward(plan)
    for j, (x, t) in enumerate(rows.tolist()):
        w.grad = b.grad = 0.0
        loss = fn(x, t)
        loss.backward()
        assert plan.V[tape.layout.output_rows[0], j] == pytest.approx(loss.data, rel=1e-14)
        assert plan.G[:2, j] == pytest.approx([w.grad, b.grad], rel=1e-13)


def test_show_lists_every_group_and_what_it_reads():
    w = [Value(0.5, "w0"), Value(-0.5, "w1")]
    b = Value(0.1, "b")
    tape = trace(lambda x0, x1, t: (vsum([w[0] * x0, w[1] * x1, b]).relu() - t) ** 2, [1.0, 2.0, 0.0], w + [b],
                 passes=())
    expected = """\
tape: 3 inputs x[0:3], 3 parameters p[0:3], 0 constants c; 12 nodes per sample in 5 groups
  passes: none
  mul0:(2,)     = mul p[0:2] x[0:2]
  sum1:(1,)     = sum mul0[0] mul0[1] p[2]
  relu2:(1,)    = relu sum1
  sub3:(1,)     = sub relu2 x[2]
  pow_c4:(1,)   = **2 sub3
  out pow_c4"""
    assert tape.show() == expected and str(tape) == expected
    assert repr(tape).startswith("Tape(num_inputs=3")


def test_generated_lines_are_named_after_primitive_and_group():
    tape = circle_tape(passes=())
    source = tape.plan(32).source
    step = source[source.index("def run_step"):]
    for line in ("mul0 = mul_forward(m, p_0_16, x_0_2)", "relu2 = relu_forward(m, sum1)",
                 "# relu2: relu of sum1; 8 nodes as (8,)", "d0, = relu_vjp(m, d_relu2, relu2, sum1)"):
        assert line in step, line
