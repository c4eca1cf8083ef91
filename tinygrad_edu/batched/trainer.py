"""``train.fit``'s batched engine: one minibatch step (:func:`batched_step`), evaluation
(:func:`batched_outputs`, :func:`batched_losses`) and the array training loop (:class:`Trainer`),
with the tapes traced once per model and objective and cached.
"""

from __future__ import annotations

import functools
import weakref
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from ..data import batch_order
from .plan import Plan
from .tape import Tape
from .tracing import trace

if TYPE_CHECKING:
    from ..optim import Optimizer

__all__ = ["Trainer", "batched_step", "batched_outputs", "batched_losses", "outputs_tape"]

_TAPES: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


def _cached_tape(model, key, make: Callable[[], Tape]) -> Tape:
    per_model = _TAPES.setdefault(model, {})
    tape = per_model.get(key)
    if tape is None:
        tape = per_model[key] = make()
    return tape


def _step_tape(model, objective, x: np.ndarray, t: float) -> Tape:
    """The per-sample loss of ``objective`` on ``model``, traced once (on ``x, t``) and cached."""
    nin = len(x)

    def make() -> Tape:
        loss = lambda *xs: objective.sample_loss(model, list(xs[:nin]), xs[nin])  # noqa: E731
        return trace(loss, [*x, t], model.parameters())

    return _cached_tape(model, ("step", objective, nin), make)


def batched_step(model, objective, Xb: np.ndarray, yb: np.ndarray) -> float:
    """One minibatch on the batched engine (``train.fit(engine="batched")``): the mean of
    ``objective.sample_loss(model, x, t)`` over the rows, with its gradient added into the
    parameters' ``.grad``, as ``backward`` on the scalar graph of that mean would. The per-sample
    loss is traced once per (model, objective) and replayed."""
    _check_traceable(objective)
    Xb = np.asarray(Xb, dtype=np.float64)
    if Xb.ndim != 2 or len(Xb) == 0 or np.shape(yb) != (len(Xb),):
        raise ValueError(f"batched_step takes a (batch, features) array and a (batch,) array of targets; "
                         f"got shapes {Xb.shape} and {np.shape(yb)}")
    nin = Xb.shape[1]
    tape = _step_tape(model, objective, Xb[0], float(yb[0]))
    plan = tape.plan(len(Xb))  # the minibatch goes straight into the tape's input rows
    plan.inputs_view[:nin] = Xb.T
    plan.inputs_view[nin] = yb
    return tape.mean_step(plan)


class Trainer:
    """``train.fit``'s minibatch loop on the batched engine with the weights in one array: each
    step is the tape's forward and backward (parameters read from the array, gradients written
    into one) and the optimizer's :meth:`~tinygrad_edu.optim.Optimizer.step_arrays`, the same
    float operations as ``optimizer.step()`` on the Values, so the same numbers as
    :func:`batched_step` with ``zero_grad`` and ``step``. Make one with :meth:`create`.

    The Values are current only after :meth:`store` (``fit`` calls it after every epoch, on an
    interruption and on an error); :meth:`load` reads them, and the optimizer's state, again."""

    def __init__(self, tape: Tape, optimizer: Optimizer, order: list[int], X: np.ndarray, y: np.ndarray,
                 batch_size: int):
        self.tape, self.optimizer, self.order, self.batch_size = tape, optimizer, order, batch_size
        self.params = [optimizer.params[i] for i in order]
        self.data = np.empty(len(order))
        self.grad = np.zeros(len(order))
        self.state: dict[str, np.ndarray] = {}
        self.XY = np.vstack([X.T, y])  # one row per input, then the targets: a batch is one slice
        self.shuffled = np.empty_like(self.XY)
        n, P = len(y), len(tape.used_params)
        # The tape's plans for this loop read the parameters from the optimizer's array and write
        # their gradients into its gradient array: nothing is copied in or out per step.
        plans: dict[int, Plan] = {}
        for size in {min(batch_size, n - i) for i in range(0, n, batch_size)}:
            plans[size] = Plan(tape.layout, size, passes=tape.passes, params=self.data[:P], param_grads=self.grad[:P])
        self.batches = [(plans[min(batch_size, n - i)], self.shuffled[:, i:i + batch_size])
                        for i in range(0, n, batch_size)]
        self.load()

    @classmethod
    def create(cls, model, objective, optimizer: Optimizer, X: np.ndarray, y: np.ndarray,
               batch_size: int) -> Trainer | None:
        """A trainer for ``train.fit``, or None when the array form does not apply: an optimizer
        without one (see ``Optimizer.can_step_arrays``), a parameter the loss uses that the
        optimizer does not update, or a parameter listed twice."""
        _check_traceable(objective)
        X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if not optimizer.can_step_arrays() or len({id(p) for p in optimizer.params}) != len(optimizer.params):
            return None
        tape = _step_tape(model, objective, X[0], float(y[0]))
        index = {id(p): i for i, p in enumerate(optimizer.params)}
        if any(id(p) not in index for p in tape.used_params):
            return None
        # The tape's parameters first (their gradients come from the tape, in its order), then any
        # other parameter the optimizer updates (gradient 0, as zero_grad leaves it).
        order = [index[id(p)] for p in tape.used_params]
        used = set(order)
        order += [i for i in range(len(optimizer.params)) if i not in used]
        return cls(tape, optimizer, order, X, y, batch_size)

    def load(self) -> None:
        """Read the parameters' ``.data`` and the optimizer's state into the arrays."""
        self.data[...] = [p.data for p in self.params]
        self.state = self.optimizer.array_state(self.order)

    def store(self) -> None:
        """Write the arrays back: ``.data``, ``.grad`` (the last batch's) and the optimizer's state."""
        for p, v, g in zip(self.params, self.data.tolist(), self.grad.tolist()):
            p.data, p.grad = v, g
        self.optimizer.load_array_state(self.order, self.state)

    def epoch(self, rng: np.random.Generator, check: Callable[[float, int], None]) -> Iterator[float]:
        """One epoch in the minibatch order of ``data.minibatches(X, y, batch_size, seed=rng)``
        (the same permutation, ``data.batch_order``, drawn from ``rng``); yields each batch's loss after the optimizer's
        step. ``check(loss, batch)`` runs before the step (it raises when training diverged)."""
        tape, opt, data, grad, state = self.tape, self.optimizer, self.data, self.grad, self.state
        np.take(self.XY, batch_order(self.XY.shape[1], rng), axis=1, out=self.shuffled)
        for b, (plan, batch) in enumerate(self.batches):
            plan.inputs_view[...] = batch
            value = tape.mean_step(plan, plan.params, plan.param_grads)  # views of data and grad
            check(value, b)
            opt.step_arrays(data, grad, state)
            yield value


def outputs_tape(model, objective, example: np.ndarray, passes: tuple[str, ...] | None = None) -> Tape:
    """``objective.output(model, x)`` as a function of one sample ``x``, traced once (on
    ``example``) with ``passes`` (default: all) and cached per (model, objective, number of
    inputs, passes)."""
    example = np.asarray(example, dtype=np.float64)
    return _cached_tape(model, ("outputs", objective, len(example), passes),
                        lambda: trace(lambda *xs: objective.output(model, list(xs)), example, model.parameters(),
                                      passes=passes))


def batched_outputs(model, objective, X: np.ndarray) -> np.ndarray:
    """``objective.output(model, x)`` for every row of ``X`` through a traced tape (no gradients)."""
    _check_traceable(objective)
    X = np.asarray(X, dtype=np.float64)
    return outputs_tape(model, objective, X[0]).forward(X)


@functools.lru_cache(maxsize=64)
def _criterion_tape(objective) -> Tape:
    return trace(objective.criterion, [0.0, 0.0], [])


def batched_losses(objective, outputs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``objective.criterion(output, target)`` for every sample, through a traced tape."""
    _check_traceable(objective)
    outputs = np.asarray(outputs, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if len(outputs) == 0 or y.shape != outputs.shape:
        raise ValueError(f"batched_losses takes one target per output; got {len(outputs)} outputs and {len(y)} targets")
    tape = _criterion_tape(objective)
    plan = tape.plan(len(outputs))  # outputs and targets straight into the tape's input rows
    plan.inputs_view[0] = outputs
    plan.inputs_view[1] = y
    return tape.values(plan)


def _check_traceable(objective) -> None:
    # A tape replays the graph traced from one example; this loss clips its input depending on the
    # value (a Python branch), so one traced graph cannot stand for every sample.
    if getattr(objective, "loss", None) == "bce" and not getattr(objective, "logit_output", True):
        raise ValueError(
            "the batched engine cannot replay binary cross-entropy on probabilities (it clips by value); "
            "use the logit form (train.make_objective gives it for sigmoid and linear outputs)"
        )
