"""tinygrad_edu.nn: parameter names and labels, forward against NumPy, initialisation, state
dicts, and the losses against closed forms and central finite differences."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_edu import Value, nn


def numpy_forward(model: nn.MLP, x):
    """An independent forward pass from the state dict, with NumPy matrices."""
    state = model.state_dict()
    act = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh, "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
           "linear": lambda z: z}
    h = np.asarray(x, dtype=float)
    for i, layer in enumerate(model.layers):
        W = np.array([[state[f"layers.{i}.neurons.{j}.w.{k}"] for k in range(layer.nin)] for j in range(layer.nout)])
        b = np.array([state[f"layers.{i}.neurons.{j}.b"] for j in range(layer.nout)])
        h = act[layer.activation](W @ h + b)
    return h


def central_diff(f, params, h=1e-6):
    grads = []
    for p in params:
        old = p.data
        p.data = old + h
        up = f()
        p.data = old - h
        down = f()
        p.data = old
        grads.append((up - down) / (2 * h))
    return grads


def test_parameter_names_and_labels():
    model = nn.MLP(2, [8, 1], "relu", "sigmoid", seed=0)
    names = [name for name, _ in model.named_parameters()]
    assert len(names) == 2 * 8 + 8 + 8 + 1 == len(model.parameters())
    assert names[:3] == ["layers.0.neurons.0.w.0", "layers.0.neurons.0.w.1", "layers.0.neurons.0.b"]
    assert "layers.0.neurons.3.w.1" in names and names[-1] == "layers.1.neurons.0.b"
    assert all(p.label == name for name, p in model.named_parameters())
    assert all(p.is_leaf for p in model.parameters())
    assert [n for n, _ in nn.Neuron(2, seed=0).named_parameters()] == ["w.0", "w.1", "b"]


def test_shared_parameter_listed_once():
    class Tied(nn.Module):
        def __init__(self):
            self.a = nn.Neuron(2, seed=0)
            self.b = self.a

    assert len(Tied().parameters()) == 3


@pytest.mark.parametrize("act,out_act", [("relu", "sigmoid"), ("tanh", "linear"), ("sigmoid", "tanh")])
def test_forward_matches_numpy(act, out_act):
    model = nn.MLP(3, [5, 4, 2], act, out_act, seed=1)
    x = [0.3, -0.7, 1.1]
    out = model(x)
    assert isinstance(out, list) and len(out) == 2
    np.testing.assert_allclose([o.data for o in out], numpy_forward(model, x), rtol=1e-12, atol=1e-14)


def test_single_output_is_a_value_and_logits_skip_the_last_activation():
    model = nn.MLP(2, [4, 1], "relu", "sigmoid", seed=3)
    x = [Value(0.2), -0.4]  # Values and floats both work
    out, logit = model(x), model.logits(x)
    assert isinstance(out, Value) and isinstance(logit, Value)
    assert out.data == pytest.approx(1 / (1 + math.exp(-logit.data)), rel=1e-15)
    assert out.data == pytest.approx(numpy_forward(model, [0.2, -0.4])[0], rel=1e-12)


def test_initialisation_is_seeded_and_uses_he_or_xavier_limits():
    a, b, c = (nn.MLP(2, [8, 1], seed=s).state_dict() for s in (7, 7, 8))
    assert a == b and a != c
    assert all(p.data == 0.0 for n, p in nn.MLP(2, [8, 1], seed=0).named_parameters() if n.endswith(".b"))
    relu = np.array([p.data for p in nn.Layer(200, 100, "relu", seed=0).parameters() if p.label.find(".w.") >= 0])
    tanh = np.array([p.data for p in nn.Layer(200, 100, "tanh", seed=0).parameters() if p.label.find(".w.") >= 0])
    he, xavier = math.sqrt(6 / 200), math.sqrt(6 / 300)
    assert np.abs(relu).max() <= he and np.abs(relu).max() > 0.99 * he
    assert np.abs(tanh).max() <= xavier and np.abs(tanh).max() > 0.99 * xavier
    # uniform on [-L, L] has standard deviation L / sqrt(3)
    assert relu.std() == pytest.approx(he / math.sqrt(3), rel=0.03)
    assert tanh.std() == pytest.approx(xavier / math.sqrt(3), rel=0.03)


def test_backward_matches_finite_differences():
    model = nn.MLP(2, [3, 1], "tanh", "sigmoid", seed=2)
    batch = [([0.5, -0.2], 1.0), ([-0.9, 0.4], 0.0), ([0.1, 0.8], 1.0)]

    def loss():
        return nn.mean([nn.binary_cross_entropy(model(x), t) for x, t in batch])

    model.zero_grad()
    loss().backward()
    params = model.parameters()
    expected = central_diff(lambda: loss().data, params)
    np.testing.assert_allclose([p.grad for p in params], expected, rtol=1e-6, atol=1e-9)


def test_zero_grad_and_state_dict_round_trip():
    model = nn.MLP(2, [4, 1], seed=0)
    model(np.array([0.5, 0.5])).backward()
    assert any(p.grad != 0 for p in model.parameters())
    model.zero_grad()
    assert all(p.grad == 0 for p in model.parameters())
    other = nn.MLP(2, [4, 1], seed=99)
    params_before = other.parameters()
    other.load_state_dict(model.state_dict())
    assert other.state_dict() == model.state_dict()
    assert all(a is b for a, b in zip(params_before, other.parameters()))  # same Value objects


def test_load_state_dict_errors():
    model = nn.MLP(2, [2, 1], seed=0)
    state = model.state_dict()
    with pytest.raises(KeyError, match="missing 'layers.1.neurons.0.b'"):
        model.load_state_dict({k: v for k, v in state.items() if k != "layers.1.neurons.0.b"})
    with pytest.raises(KeyError, match="unexpected 'extra'"):
        model.load_state_dict({**state, "extra": 1.0})
    with pytest.raises(TypeError, match="real number"):
        model.load_state_dict({**state, "layers.1.neurons.0.b": "1.0"})


def test_repr_and_bad_arguments():
    text = repr(nn.MLP(2, [8, 1], "relu", "sigmoid", seed=0))
    assert "Layer(2 -> 8, relu)" in text and "Layer(8 -> 1, sigmoid)" in text and "33 parameters" in text
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        nn.MLP(2, [8, 1], "swish")
    with pytest.raises(ValueError, match="at least one layer"):
        nn.MLP(2, [])
    with pytest.raises(ValueError, match="expects 2 inputs, got 3"):
        nn.MLP(2, [1], seed=0)([1.0, 2.0, 3.0])


# Losses


def test_mean_is_one_sum_node():
    losses = [Value(1.0), Value(2.0), Value(6.0)]
    m = nn.mean(losses)
    assert m.data == 3.0
    assert m.op.name == "div" and m.parents[0].op.name == "sum" and len(m.parents[0].parents) == 3
    with pytest.raises(ValueError, match="empty"):
        nn.mean([])


def test_mse_and_hinge_closed_forms():
    p = Value(0.3)
    loss = nn.mse_loss(p, 1.0)
    loss.backward()
    assert loss.data == pytest.approx(0.49) and p.grad == pytest.approx(2 * (0.3 - 1.0))
    for score, target, value, grad in [(0.3, 1, 0.7, -1.0), (0.3, 0, 1.3, 1.0), (2.0, 1, 0.0, 0.0), (-1.5, 0, 0.0, 0.0)]:
        s = Value(score)
        h = nn.hinge_loss(s, target)
        h.backward()
        assert h.data == pytest.approx(value) and s.grad == grad
    with pytest.raises(ValueError, match="0 or 1"):
        nn.hinge_loss(Value(0.0), -1)


@given(st.floats(-30, 30), st.floats(0, 1))
def test_bce_with_logits_matches_the_formula_and_its_gradient_is_sigmoid_minus_target(z, t):
    v = Value(z)
    loss = nn.binary_cross_entropy_with_logits(v, t)
    loss.backward()
    p, q = 1 / (1 + math.exp(-z)), 1 / (1 + math.exp(z))  # q = 1 - p without cancellation
    assert loss.data == pytest.approx(-(t * math.log(p) + (1 - t) * math.log(q)), rel=1e-9, abs=1e-12)
    assert v.grad == pytest.approx(p - t, abs=1e-12)


def test_bce_with_logits_at_zero_and_at_extremes():
    z = Value(0.0)
    loss = nn.binary_cross_entropy_with_logits(z, 1.0)
    loss.backward()
    assert loss.data == pytest.approx(math.log(2)) and z.grad == pytest.approx(-0.5)  # sigmoid(0) - 1
    for logit, target, value in [(1000.0, 0.0, 1000.0), (-1000.0, 1.0, 1000.0), (1000.0, 1.0, 0.0)]:
        assert nn.binary_cross_entropy_with_logits(Value(logit), target).data == pytest.approx(value)


def test_bce_on_probabilities_matches_closed_form_and_gradient():
    p = Value(0.8)
    loss = nn.binary_cross_entropy(p, 1.0)
    loss.backward()
    assert loss.data == pytest.approx(-math.log(0.8)) and p.grad == pytest.approx(-1 / 0.8)
    q = Value(0.3)
    nn.binary_cross_entropy(q, 0.25).backward()
    assert q.grad == pytest.approx(-(0.25 / 0.3) + 0.75 / 0.7)


def test_bce_on_saturated_probability_is_clipped_not_log_zero():
    for prob, target in [(0.0, 1.0), (1.0, 0.0)]:
        p = Value(prob)
        loss = nn.binary_cross_entropy(p, target)
        loss.backward()
        assert loss.data == pytest.approx(-math.log(nn.EPSILON), rel=1e-6)
        assert p.grad == 0.0
    # a saturated sigmoid (exactly 1.0 in float64) does not raise either
    assert math.isfinite(nn.binary_cross_entropy(Value(40.0).sigmoid(), 0.0).data)


@pytest.mark.parametrize("activation", [a for a in nn.ACTIVATIONS if a != "linear"])
def test_every_activation_by_name_applies_its_value_method(activation):
    model = nn.MLP(2, [3, 1], activation, "linear", seed=0)
    x = [0.3, -0.7]
    hidden = [getattr(n.preactivation(x), activation)().data for n in model.layers[0].neurons]
    out = model.layers[1].neurons[0]
    expected = sum(w.data * h for w, h in zip(out.w, hidden)) + out.b.data
    assert model(x).data == pytest.approx(expected, rel=1e-12, abs=1e-15)
