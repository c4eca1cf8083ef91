"""tinygrad_edu.optim: SGD (momentum, Nesterov, weight decay) and Adam against hand-computed steps
and against reference recurrences written from PyTorch's documented algorithms."""

import math

import numpy as np
import pytest

from tinygrad_edu import Value, optim

GRADS = [np.array([0.5, -1.0, 2.0]), np.array([0.1, 0.3, -0.4]), np.array([-0.2, 0.0, 1.5]), np.array([1.0, 1.0, 1.0])]
START = np.array([1.0, -2.0, 0.5])


def run(opt_factory, grads=GRADS):
    params = [Value(float(v)) for v in START]
    opt = opt_factory(params)
    for g in grads:
        opt.zero_grad()
        for p, gi in zip(params, g):
            p.grad += float(gi)
        opt.step()
    return np.array([p.data for p in params])


def sgd_reference(lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    """torch.optim.SGD's algorithm box, vectorised."""
    p, buf = START.copy(), None
    for g in GRADS:
        g = g + weight_decay * p
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
    return p


def adam_reference(lr, b1, b2, eps, weight_decay=0.0):
    """torch.optim.Adam's algorithm box (amsgrad off), vectorised."""
    p, m, v = START.copy(), np.zeros(3), np.zeros(3)
    for t, g in enumerate(GRADS, start=1):
        g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    return p


def test_plain_sgd_one_step_by_hand():
    w = Value(2.0)
    opt = optim.SGD([w], lr=0.1)
    loss = w * w  # d/dw = 2w = 4
    loss.backward()
    opt.step()
    assert w.data == pytest.approx(2.0 - 0.1 * 4.0)
    opt.zero_grad()
    assert w.grad == 0.0


def test_momentum_two_steps_by_hand():
    w = Value(0.0)
    opt = optim.SGD([w], lr=1.0, momentum=0.5)
    for g in (1.0, 1.0):
        opt.zero_grad()
        w.grad = g
        opt.step()
    # buffer: 1, then 0.5 * 1 + 1 = 1.5; w = -1 - 1.5
    assert w.data == pytest.approx(-2.5)


@pytest.mark.parametrize("kwargs", [
    dict(lr=0.1), dict(lr=0.05, momentum=0.9), dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.1, weight_decay=0.01), dict(lr=0.02, momentum=0.8, dampening=0.3, weight_decay=0.1),
])
def test_sgd_matches_reference(kwargs):
    np.testing.assert_allclose(run(lambda ps: optim.SGD(ps, **kwargs)), sgd_reference(**kwargs), rtol=1e-13)


@pytest.mark.parametrize("kwargs", [dict(lr=0.01, b1=0.9, b2=0.999, eps=1e-8),
                                    dict(lr=0.1, b1=0.5, b2=0.9, eps=1e-6, weight_decay=0.05)])
def test_adam_matches_reference(kwargs):
    lr, b1, b2, eps, wd = kwargs["lr"], kwargs["b1"], kwargs["b2"], kwargs["eps"], kwargs.get("weight_decay", 0.0)
    got = run(lambda ps: optim.Adam(ps, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd))
    np.testing.assert_allclose(got, adam_reference(lr, b1, b2, eps, wd), rtol=1e-13)


def test_adam_first_step_moves_each_parameter_by_lr():
    # after one step, m_hat = g and v_hat = g^2, so the step is lr * g / (|g| + eps)
    got = run(lambda ps: optim.Adam(ps, lr=0.01, eps=0.0), grads=GRADS[:1])
    np.testing.assert_allclose(got, START - 0.01 * np.sign(GRADS[0]), rtol=1e-15)


@pytest.mark.parametrize("factory", [lambda ps: optim.SGD(ps, lr=0.1), lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9),
                                     lambda ps: optim.Adam(ps, lr=0.1)])
def test_optimizers_minimise_a_quadratic(factory):
    x, y = Value(5.0), Value(-4.0)
    opt = factory([x, y])
    for _ in range(300):
        opt.zero_grad()
        ((x - 3.0) ** 2 + 2.0 * (y + 1.0) ** 2).backward()
        opt.step()
    assert x.data == pytest.approx(3.0, abs=1e-3) and y.data == pytest.approx(-1.0, abs=1e-3)


def test_bad_arguments():
    with pytest.raises(ValueError, match="invalid learning rate"):
        optim.SGD([Value(1.0)], lr=-1)
    with pytest.raises(ValueError, match="invalid learning rate"):
        optim.Adam([Value(1.0)], lr=math.nan)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([Value(1.0)], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="invalid momentum"):
        optim.SGD([Value(1.0)], lr=0.1, momentum=-0.5)
    with pytest.raises(ValueError, match="invalid momentum: inf"):
        optim.SGD([Value(1.0)], lr=0.1, momentum=math.inf)
    with pytest.raises(ValueError, match="invalid weight_decay: nan"):
        optim.Adam([Value(1.0)], weight_decay=math.nan)
    with pytest.raises(ValueError, match="invalid beta2"):
        optim.Adam([Value(1.0)], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="not a leaf"):
        optim.SGD([Value(1.0) * 2], lr=0.1)
    with pytest.raises(TypeError, match="not a Value"):
        optim.SGD([1.0], lr=0.1)


ARRAY_OPTIMIZERS = [
    lambda ps: optim.SGD(ps, lr=0.1), lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9),
    lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    lambda ps: optim.SGD(ps, lr=0.02, momentum=0.8, dampening=0.3, weight_decay=0.1),
    lambda ps: optim.Adam(ps, lr=0.01), lambda ps: optim.Adam(ps, lr=0.1, betas=(0.5, 0.9), eps=1e-6, weight_decay=0.05),
]


@pytest.mark.parametrize("factory", ARRAY_OPTIMIZERS)
def test_step_arrays_gives_the_same_numbers_as_step(factory):
    # Two steps on Values, two on arrays (parameters in another order), two more on Values: the
    # same bits as six steps on Values, state handed over both ways.
    rng = np.random.default_rng(0)
    grads = rng.normal(0, 1, (6, 5)) * [1e-3, 1.0, 10.0, 0.5, 3.0]
    start = rng.normal(0, 1, 5)
    ref_params = [Value(float(v)) for v in start]
    ref = factory(ref_params)
    for g in grads:
        for p, gi in zip(ref_params, g.tolist()):
            p.grad = gi
        ref.step()

    params = [Value(float(v)) for v in start]
    opt = factory(params)
    assert opt.can_step_arrays()
    order = [3, 0, 4, 1, 2]
    for step, g in enumerate(grads):
        if step in (2, 3):
            if step == 2:
                data = np.array([params[i].data for i in order])
                state = opt.array_state(order)
            opt.step_arrays(data, g[order], state)
            if step == 3:
                for i, v in zip(order, data.tolist()):
                    params[i].data = v
                opt.load_array_state(order, state)
        else:
            for p, gi in zip(params, g.tolist()):
                p.grad = gi
            opt.step()
    assert [p.data for p in params] == [p.data for p in ref_params]
    assert opt.steps == ref.steps == 6


def test_a_subclass_that_changes_step_has_no_array_form():
    class Clipped(optim.SGD):
        def step(self):
            for p in self.params:
                p.grad = max(-1.0, min(1.0, p.grad))
            super().step()

    class Plain(optim.SGD):
        pass

    assert not Clipped([Value(1.0)], lr=0.1).can_step_arrays()
    assert Plain([Value(1.0)], lr=0.1).can_step_arrays()
    assert not optim.Optimizer([Value(1.0)], lr=0.1).can_step_arrays()
