"""tinygrad_edu.batched's plan, code generation and listing: the generated step against the plain
reference interpreter of the same plan (the same NumPy operations on the same data, so the same
bits), and Tape.show's listing of a small tape written out by hand."""

import numpy as np
import pytest

from tinygrad_edu import Value, nn
from tinygrad_edu import sum as vsum
from tinygrad_edu.batched import Plan, trace
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
@pytest.mark.parametrize("batch", [1, 7, 32, 300])  # 300: NumpyMath's formulas for large arrays
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
        G, PG = plan.G.copy(), plan.param_grads.copy()
        assert PG.any()

        for g in tape.layout.groups:  # every group's rows: the generated code must fill them
            plan.V[g.lo:g.hi] = np.nan
        plan.run_forward()
        assert np.array_equal(plan.V, V)
        tape.seed(plan, None, 1.0 / batch)
        plan.run_backward()
        assert np.array_equal(plan.G, G) and np.array_equal(plan.param_grads, PG)

        # both passes in one function, results kept in locals: the same output and parameter gradients
        for g in tape.layout.groups:
            plan.V[g.lo:g.hi] = np.nan
        tape.seed(plan, None, 1.0 / batch)
        loss_sum = plan.run_step()  # returns the output's sum over the batch
        assert np.array_equal(plan.param_grads, PG)
        assert loss_sum == pytest.approx(V[tape.layout.output_rows[0]].sum(), rel=1e-14)
        if not plan.run_step_zeroes:  # it assigns every gradient row it writes: again, unzeroed
            assert plan.run_step() == loss_sum and np.array_equal(plan.param_grads, PG)


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
    w.grad = b.grad = 0.0
    for j, (x, t) in enumerate(rows.tolist()):
        loss = fn(x, t)
        loss.backward()  # adds up over the samples, as the plan's parameter gradients do
        assert plan.V[tape.layout.output_rows[0], j] == pytest.approx(loss.data, rel=1e-14)
    assert plan.param_grads.tolist() == pytest.approx([w.grad, b.grad], rel=1e-13)


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


def _params_tapes():
    """Tapes whose parameters are read in every way a plan handles them: a parameter every member
    of a group reads (a broadcast slot), one read by two groups (its gradient written twice), a
    group reading parameters and inputs in one slot (through the rows of V and G), a parameter
    that is an output."""
    w, v, b = Value(0.7, "w"), Value(-1.1, "v"), Value(0.25, "b")
    shared = lambda x, y, t: (vsum([w * x, w * y]) + b - t) ** 2 + (v + x).tanh() * v  # noqa: E731
    mixed = lambda x, y, t: vsum([b * x, w * y, t * v]) * t + b  # noqa: E731
    as_output = lambda x, y, t: [w * x + v, b]  # noqa: E731
    return [(shared, [w, v, b]), (mixed, [w, v, b]), (lambda x, y, t: vsum(as_output(x, y, t)), [w, v, b]),
            (as_output, [w, v, b])]


@pytest.mark.parametrize("which", [0, 1, 2])
@pytest.mark.parametrize("passes", [None, ()])
def test_parameters_are_read_from_and_summed_into_the_plans_vectors(which, passes):
    from test_batched import assert_matches_scalar

    fn, params = _params_tapes()[which]
    rows = np.random.default_rng(which).uniform(-1, 1, (5, 3))
    assert_matches_scalar(fn, rows, params)  # the default passes, against the scalar engine
    tape = trace(fn, rows[0], params, passes=passes)
    plan = tape.plan(5)
    plan.inputs_view[...] = rows.T
    with np.errstate(all="raise"):
        tape.load_params(plan)
        interpret_forward(plan)
        tape.seed(plan, None, 1.0)
        interpret_backward(plan)
        want = plan.param_grads.copy()
        tape.seed(plan, None, 1.0)
        plan.run_step()
    assert np.array_equal(plan.param_grads, want)
    for p in params:
        p.grad = 0.0
    for row in rows.tolist():
        fn(*[Value(x) for x in row]).backward()
    np.testing.assert_allclose(want, [p.grad for p in tape.used_params], rtol=1e-13)


def test_a_plan_shares_the_parameter_vectors_it_is_given():
    tape = circle_tape()
    P = len(tape.used_params)
    data, grad = np.array([p.data for p in tape.used_params]), np.zeros(P)
    rows = np.random.default_rng(0).uniform(-1, 1, (8, 3))
    plans = [Plan(tape.layout, n, passes=tape.passes, params=data, param_grads=grad) for n in (8, 3)]
    for plan in plans:
        assert plan.params is data and plan.param_grads is grad
        plan.inputs_view[...] = rows[: plan.batch].T
        loss = tape.mean_step(plan, data, grad)  # reads data, writes grad: nothing copied
        for p in tape.used_params:
            p.grad = 0.0
        assert loss == pytest.approx(tape.mean_backward(rows[: plan.batch]), rel=1e-14)
        np.testing.assert_allclose(grad, [p.grad for p in tape.used_params], rtol=1e-12, atol=1e-16)
    data += 0.5  # an optimizer's update in place: the next step reads it
    for p, x in zip(tape.used_params, data.tolist()):
        p.data = x
    loss = tape.mean_step(plans[0], data, grad)
    assert loss == pytest.approx(tape.mean_backward(rows), rel=1e-14)
    with pytest.raises(ValueError, match="float64 vector of the 33 parameters"):
        Plan(tape.layout, 4, params=np.zeros(5))


def test_every_way_of_reading_parameters_is_exercised():
    flags = set()
    for fn, params in _params_tapes():
        for passes in (None, ()):
            plan = trace(fn, [0.1, 0.2, 0.3], params, passes=passes).plan(4)
            adds = [add for step in plan.backward for add in step.params]
            flags |= {("broadcast", len(add.axes) > 1) for add in adds}
            flags |= {("in V", plan.params_in_V), ("in G", plan.params_in_G), ("once", plan.params_written_once)}
    assert flags == {(name, x) for name in ("broadcast", "in V", "in G", "once") for x in (True, False)}


def test_a_parameter_as_an_output():
    fn, params = _params_tapes()[3]
    tape = trace(fn, [0.1, 0.2, 0.3], params)
    rows = np.random.default_rng(3).uniform(-1, 1, (4, 3))
    out = tape.forward(rows)
    assert out[:, 1].tolist() == [params[2].data] * 4
    for p in params:
        p.grad = 0.0
    tape.backward(rows, np.ones((4, 2)))
    assert [p.grad for p in params] == pytest.approx([rows[:, 0].sum(), 4.0, 4.0], rel=1e-14)
