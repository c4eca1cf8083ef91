"""Optimizers that update leaf ``Value``s from their ``.grad``, with PyTorch's names and update rules:
``opt = SGD(model.parameters(), lr=0.1); opt.zero_grad(); loss.backward(); opt.step()``.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

from .engine import Value


class Optimizer:
    """Holds the parameters and per-parameter state; a subclass writes its update rule once, as
    :meth:`step_arrays`, and :meth:`step` applies it to the parameters' ``.data``."""

    def __init__(self, params: Iterable[Value], lr: float):
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list; pass model.parameters()")
        for i, p in enumerate(self.params):
            if not isinstance(p, Value):
                raise TypeError(f"optimizer parameter {i} is a {type(p).__name__}, not a Value")
            if not p.is_leaf:
                raise ValueError(f"optimizer parameter {i} ({p.label or p!r}) is not a leaf Value; "
                                 "only leaves (weights) can be optimized")
        if not (isinstance(lr, (int, float)) and lr >= 0.0 and math.isfinite(lr)):
            raise ValueError(f"invalid learning rate: {lr!r} (needs a finite number >= 0)")
        self.lr = float(lr)
        self.steps = 0
        #: Per-parameter state (momentum buffers, Adam's moments): arrays in the order of ``params``.
        self.state: dict[str, np.ndarray] = {}

    def zero_grad(self) -> None:
        """Set every parameter's ``grad`` to 0.0 (gradients accumulate across ``backward`` calls)."""
        for p in self.params:
            p.grad = 0.0

    def step(self) -> None:
        """Update every parameter from its ``.grad``: the update rule is :meth:`step_arrays`,
        applied to all parameters at once (the one place each optimizer's rule is written)."""
        n = len(self.params)
        data = np.fromiter((p.data for p in self.params), np.float64, n)
        grad = np.fromiter((p.grad for p in self.params), np.float64, n)
        with np.errstate(over="ignore", invalid="ignore"):  # like Python floats: inf and nan, no warning
            self.step_arrays(data, grad, self.state)
        for p, x in zip(self.params, data.tolist()):
            p.data = x

    def step_arrays(self, data: np.ndarray, grad: np.ndarray, state: dict[str, np.ndarray]) -> None:
        """The update rule on arrays: ``data`` and ``grad`` hold the parameters' values and
        gradients in some fixed order, ``state`` the per-parameter state in the same order (see
        :meth:`array_state`); ``data`` and ``state`` are updated in place. Elementwise float64
        operations, so each parameter gets the same numbers whatever the order."""
        raise NotImplementedError(f"{type(self).__name__} defines no update rule (step_arrays)")

    def can_step_arrays(self) -> bool:
        """Whether :meth:`step_arrays` is all that :meth:`step` does, so a caller holding the
        parameters in an array (``train.fit`` on the batched engine) may call it instead. A
        subclass that overrides ``step`` itself has no array form."""
        cls = type(self)
        return cls.step is Optimizer.step and cls.step_arrays is not Optimizer.step_arrays

    def array_state(self, order: Sequence[int]) -> dict[str, np.ndarray]:
        """Copies of :attr:`state` with parameter ``order[i]`` at index ``i`` (``order`` is a
        permutation of the parameters' positions)."""
        index = np.asarray(order, dtype=np.intp)
        return {name: values[index] for name, values in self.state.items()}

    def load_array_state(self, order: Sequence[int], state: dict[str, np.ndarray]) -> None:
        """Store arrays in the layout of :meth:`array_state` (as updated by :meth:`step_arrays`) back."""
        index = np.asarray(order, dtype=np.intp)
        for name, values in state.items():
            self.state.setdefault(name, np.zeros(len(self.params)))[index] = values


def _check(name: str, value: float, low: float = 0.0, high: float = math.inf, high_open: bool = False) -> float:
    ok = isinstance(value, (int, float)) and math.isfinite(value) and low <= value \
        and (value < high if high_open else value <= high)
    if not ok:
        bound = f"in [{low}, {high})" if high_open else f">= {low}"
        raise ValueError(f"invalid {name}: {value!r} (needs a finite number {bound})")
    return float(value)


class SGD(Optimizer):
    """Stochastic gradient descent, as ``torch.optim.SGD``.

    With ``g = grad + weight_decay * p``: without momentum ``p -= lr * g``; with momentum the
    buffer is ``b = g`` on the first step, then ``b = momentum * b + (1 - dampening) * g``, and
    ``p -= lr * b`` (or ``p -= lr * (g + momentum * b)`` with ``nesterov=True``).
    """

    def __init__(self, params: Iterable[Value], lr: float = 0.01, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        super().__init__(params, lr)
        self.momentum = _check("momentum", momentum)
        self.dampening = _check("dampening", dampening)
        self.weight_decay = _check("weight_decay", weight_decay)
        if nesterov and (self.momentum <= 0.0 or self.dampening != 0.0):
            raise ValueError("Nesterov momentum needs momentum > 0 and dampening = 0")
        self.nesterov = bool(nesterov)

    def step_arrays(self, data: np.ndarray, grad: np.ndarray, state: dict[str, np.ndarray]) -> None:
        lr, mu, wd, damp = self.lr, self.momentum, self.weight_decay, self.dampening
        g = grad + wd * data if wd else grad
        if mu:
            buf = state.get("momentum_buffer")
            if buf is None:  # the first step: the buffer starts as the gradient
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= mu
                buf += (1.0 - damp) * g
            g = g + mu * buf if self.nesterov else buf
        data -= lr * g
        self.steps += 1

    def __repr__(self) -> str:
        return (f"SGD(lr={self.lr}, momentum={self.momentum}, dampening={self.dampening}, "
                f"weight_decay={self.weight_decay}, nesterov={self.nesterov})")


class Adam(Optimizer):
    """Adam (Kingma & Ba), as ``torch.optim.Adam``: with ``g = grad + weight_decay * p``,
    ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g²`` and step ``t``,
    ``p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)``."""

    def __init__(self, params: Iterable[Value], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, lr)
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (_check("beta1", betas[0], 0.0, 1.0, high_open=True),
                      _check("beta2", betas[1], 0.0, 1.0, high_open=True))
        self.eps = _check("eps", eps)
        self.weight_decay = _check("weight_decay", weight_decay)
        self.state = {"m": np.zeros(len(self.params)), "v": np.zeros(len(self.params))}

    def step_arrays(self, data: np.ndarray, grad: np.ndarray, state: dict[str, np.ndarray]) -> None:
        self.steps += 1
        b1, b2 = self.betas
        lr, eps, wd, t = self.lr, self.eps, self.weight_decay, self.steps
        c1, c2 = 1.0 - b1**t, 1.0 - b2**t
        m, v = state["m"], state["v"]
        g = grad + wd * data if wd else grad
        m *= b1
        m += (1.0 - b1) * g
        v *= b2
        v += (1.0 - b2) * g * g
        data -= lr * (m / c1) / (np.sqrt(v / c2) + eps)

    def __repr__(self) -> str:
        return f"Adam(lr={self.lr}, betas={self.betas}, eps={self.eps}, weight_decay={self.weight_decay})"


__all__ = ["Optimizer", "SGD", "Adam"]
