"""A tiny neural-network library on ``Value``: ``Module``, ``Neuron``, ``Layer``, ``MLP`` and the
per-sample losses (MSE, binary cross-entropy from probabilities or logits, hinge).

Every parameter is a leaf ``Value`` whose ``label`` is its name in the model that owns it
(``layers.0.neurons.3.w.1``), so a drawn graph says which weight is which.
"""

from __future__ import annotations

import math
from typing import Iterator, Mapping, Sequence, Union

import numpy as np

from .engine import Value
from .engine import sum as vsum

Number = Union[int, float]
Input = Sequence[Union[Value, Number]]

#: The activations a layer may use, each the ``Value`` method of that name (PyTorch's defaults:
#: ``leaky_relu``'s slope 0.01, ``elu``'s alpha 1, exact ``gelu``). ``linear`` is the identity.
ACTIVATIONS = ("relu", "tanh", "sigmoid", "linear", "leaky_relu", "elu", "gelu", "silu", "softplus", "softsign",
               "hardtanh", "logsigmoid")
#: The ReLU-like activations, which zero (or nearly zero) half their inputs: He initialisation.
_RELU_LIKE = ("relu", "leaky_relu", "elu", "gelu", "silu")

#: Keras's ``epsilon()``: probabilities are clipped to ``[EPSILON, 1 - EPSILON]`` before the log.
EPSILON = 1e-7


class Module:
    """Base class of everything with parameters, like ``torch.nn.Module``.

    Parameters are found by walking the instance's public attributes: a leaf ``Value`` is a
    parameter, a ``Module`` contributes its own (prefixed by the attribute name), and a list or
    tuple contributes its items (prefixed by their index). Subclasses define ``forward``.
    """

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Value]]:
        """``(name, parameter)`` pairs in a fixed order; a parameter shared twice is listed once."""
        seen: set[int] = set()
        for name, value in _walk(self, prefix.rstrip(".")):
            if id(value) not in seen:
                seen.add(id(value))
                yield name, value

    def parameters(self) -> list[Value]:
        """All parameters, in the order of :meth:`named_parameters`."""
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        """Set every parameter's ``grad`` to 0.0."""
        for p in self.parameters():
            p.grad = 0.0

    def label_parameters(self) -> None:
        """Set each parameter's ``label`` to its name in this module (done by the constructors
        of ``Neuron``, ``Layer`` and ``MLP``; call it again after nesting modules yourself)."""
        for name, p in self.named_parameters():
            p.label = name

    def state_dict(self) -> dict[str, float]:
        """Parameter name -> value (a plain float), in parameter order."""
        return {name: p.data for name, p in self.named_parameters()}

    def load_state_dict(self, state: Mapping[str, Number]) -> None:
        """Copy values into the parameters, keeping the ``Value`` objects (so an optimizer that
        holds them keeps working). The names must match exactly; values must be real numbers."""
        params = dict(self.named_parameters())
        missing = [k for k in params if k not in state]
        unexpected = [k for k in state if k not in params]
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"missing {_some(missing)}")
            if unexpected:
                parts.append(f"unexpected {_some(unexpected)}")
            raise KeyError(f"state_dict does not match {type(self).__name__}: " + "; ".join(parts))
        values = {}
        for name, v in state.items():
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise TypeError(f"state_dict[{name!r}] must be a real number, got {type(v).__name__}")
            values[name] = float(v)
        for name, p in params.items():
            p.data = values[name]


def _some(names: list[str], limit: int = 3) -> str:
    shown = ", ".join(map(repr, names[:limit]))
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _walk(obj, name: str) -> Iterator[tuple[str, Value]]:
    if isinstance(obj, Value):
        if obj.is_leaf:
            yield name, obj
    elif isinstance(obj, Module):
        for attr, value in vars(obj).items():
            if not attr.startswith("_"):
                yield from _walk(value, f"{name}.{attr}" if name else attr)
    elif isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            yield from _walk(item, f"{name}.{i}" if name else str(i))


def _check_activation(activation: str | None) -> str:
    if activation is None:
        return "linear"
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
    return activation


def init_limit(activation: str, fan_in: int, fan_out: int) -> float:
    """Half-width of the uniform initialisation: He (Kaiming) uniform ``sqrt(6 / fan_in)`` for
    ReLU and its relatives (leaky_relu, elu, gelu, silu), which keep the signal's variance through
    layers that zero about half their inputs; Glorot
    (Xavier) uniform ``sqrt(6 / (fan_in + fan_out))`` for tanh, sigmoid and linear."""
    if activation in _RELU_LIKE:
        return math.sqrt(6.0 / fan_in)
    return math.sqrt(6.0 / (fan_in + fan_out))


def _activate(z: Value, activation: str) -> Value:
    if activation == "linear":
        return z
    return getattr(z, activation)()  # checked against ACTIVATIONS when the layer was made


class Neuron(Module):
    """``activation(w · x + b)``: weights ``w`` (a list of leaf Values) and a bias ``b`` (0.0).

    Weights are drawn uniformly from ``±init_limit(activation, nin, fan_out)``; ``seed`` is an int,
    a NumPy ``Generator`` or ``None`` (fresh randomness).
    """

    def __init__(self, nin: int, activation: str = "relu", *, fan_out: int = 1,
                 seed: int | np.random.Generator | None = None):
        if isinstance(nin, bool) or not isinstance(nin, int) or nin < 1:
            raise ValueError(f"a neuron needs a positive integer number of inputs, got {nin!r}")
        self.activation = _check_activation(activation)
        limit = init_limit(self.activation, nin, fan_out)
        self.w = [Value(float(v)) for v in np.random.default_rng(seed).uniform(-limit, limit, nin)]
        self.b = Value(0.0)
        self.label_parameters()

    @property
    def nin(self) -> int:
        return len(self.w)

    def preactivation(self, x: Input) -> Value:
        """``w · x + b`` as one n-ary sum node."""
        if len(x) != len(self.w):
            raise ValueError(f"{self!r} expects {len(self.w)} inputs, got {len(x)}")
        return vsum([wi * xi for wi, xi in zip(self.w, x)] + [self.b])

    def forward(self, x: Input) -> Value:
        return _activate(self.preactivation(x), self.activation)

    def __repr__(self) -> str:
        return f"Neuron({self.nin}, {self.activation})"


class Layer(Module):
    """``nout`` neurons that all see the same inputs; returns a list of ``nout`` Values."""

    def __init__(self, nin: int, nout: int, activation: str = "relu", *,
                 seed: int | np.random.Generator | None = None):
        if isinstance(nout, bool) or not isinstance(nout, int) or nout < 1:
            raise ValueError(f"a layer needs a positive integer number of neurons, got {nout!r}")
        activation = _check_activation(activation)
        rng = np.random.default_rng(seed)
        self.neurons = [Neuron(nin, activation, fan_out=nout, seed=rng) for _ in range(nout)]
        self.label_parameters()

    @property
    def nin(self) -> int:
        return self.neurons[0].nin

    @property
    def nout(self) -> int:
        return len(self.neurons)

    @property
    def activation(self) -> str:
        return self.neurons[0].activation

    def forward(self, x: Input, *, activate: bool = True) -> list[Value]:
        if activate:
            return [n(x) for n in self.neurons]
        return [n.preactivation(x) for n in self.neurons]

    def __repr__(self) -> str:
        return f"Layer({self.nin} -> {self.nout}, {self.activation})"


class MLP(Module):
    """A multilayer perceptron: ``MLP(2, [8, 1], activation="relu", output_activation="sigmoid")``
    is the circle task's network (2 inputs, 8 ReLU units, 1 sigmoid output).

    ``model(x)`` takes a sequence of floats or Values and returns a ``Value`` when the last layer
    has one neuron, else a list. Hidden layers use ``activation``, the last ``output_activation``
    (default ``"linear"``). ``seed`` makes the initialisation reproducible.
    """

    def __init__(self, nin: int, sizes: Sequence[int], activation: str = "relu",
                 output_activation: str | None = "linear", *, seed: int | np.random.Generator | None = None):
        sizes = list(sizes)
        if not sizes:
            raise ValueError("an MLP needs at least one layer size, e.g. MLP(2, [8, 1])")
        activation = _check_activation(activation)
        output_activation = _check_activation(output_activation)
        rng = np.random.default_rng(seed)
        dims = [nin] + sizes
        self.layers = [
            Layer(dims[i], dims[i + 1], activation if i < len(sizes) - 1 else output_activation, seed=rng)
            for i in range(len(sizes))
        ]
        self._hidden_activation = activation
        self.label_parameters()

    @property
    def nin(self) -> int:
        return self.layers[0].nin

    @property
    def sizes(self) -> list[int]:
        return [layer.nout for layer in self.layers]

    @property
    def activation(self) -> str:
        return self._hidden_activation

    @property
    def output_activation(self) -> str:
        return self.layers[-1].activation

    def config(self) -> dict:
        """The constructor arguments (without the seed): ``MLP(**model.config())`` rebuilds the architecture."""
        return {"nin": self.nin, "sizes": self.sizes, "activation": self.activation,
                "output_activation": self.output_activation}

    def _run(self, x: Input, activate_last: bool):
        for layer in self.layers[:-1]:
            x = layer(x)
        out = self.layers[-1](x, activate=activate_last)
        return out[0] if len(out) == 1 else out

    def forward(self, x: Input) -> Value | list[Value]:
        return self._run(x, True)

    def logits(self, x: Input) -> Value | list[Value]:
        """The output before the last layer's activation (for a sigmoid output: the logit)."""
        return self._run(x, False)

    def __repr__(self) -> str:
        lines = [f"  ({i}): {layer!r}" for i, layer in enumerate(self.layers)]
        n = len(self.parameters())
        return "MLP(\n" + "\n".join(lines) + f"\n)  # {n} parameters"


# Losses: one sample each, a model output (Value) against a float target. A batch loss is their
# mean as one n-ary sum node: ``mean(losses)``.


def mean(losses: Sequence[Value]) -> Value:
    """``sum(losses) / n`` with one sum node (the batch loss)."""
    if not losses:
        raise ValueError("mean of an empty list of losses; a batch needs at least one sample")
    return vsum(losses) / len(losses)


def mse_loss(prediction: Value, target: Number | Value) -> Value:
    """Squared error ``(prediction - target) ** 2``."""
    return (prediction - target) ** 2


def binary_cross_entropy(probability: Value, target: Number | Value, eps: float = EPSILON) -> Value:
    """``-(t log p + (1 - t) log(1 - p))`` for a probability ``p``.

    Like Keras, ``p`` is clipped to ``[eps, 1 - eps]`` (``eps = 1e-7``) so a saturated sigmoid
    gives a large finite loss instead of ``log(0)``; where clipped, the gradient is 0 (as for a
    clip in Keras or PyTorch). That lost gradient is why training a sigmoid output should use
    :func:`binary_cross_entropy_with_logits` on the logit instead (``train.fit`` does).
    """
    if probability.data < eps or probability.data > 1.0 - eps:
        # A constant that stays connected to the graph, so its gradient is an honest 0.
        probability = probability * 0.0 + min(max(probability.data, eps), 1.0 - eps)
    return -(target * probability.log() + (1.0 - target) * (1.0 - probability).log())


def binary_cross_entropy_with_logits(logit: Value, target: Number | Value) -> Value:
    """Binary cross-entropy of ``sigmoid(logit)``, computed from the logit without overflow:
    ``-t log(sigmoid(z)) - (1 - t) log(1 - sigmoid(z)) = softplus(z) - z t``, where the
    ``softplus`` primitive is ``log(1 + exp(z))`` computed stably. Its gradient is exactly
    ``sigmoid(z) - t``, as in PyTorch's ``BCEWithLogitsLoss``."""
    return logit.softplus() - logit * target


def hinge_loss(score: Value, target: Number | Value) -> Value:
    """``max(0, 1 - s * score)`` with the label ``target`` in {0, 1} mapped to ``s = 2 t - 1`` in {-1, +1}.
    The score is a raw output (linear or tanh), positive for class 1."""
    if not isinstance(target, Value) and target not in (0, 1):
        raise ValueError(f"hinge_loss needs a target of 0 or 1, got {target!r}")
    return (1.0 - (2.0 * target - 1.0) * score).relu()


__all__ = [
    "Module", "Neuron", "Layer", "MLP", "ACTIVATIONS", "EPSILON", "init_limit",
    "mean", "mse_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits", "hinge_loss",
]
