"""Training loop: :func:`fit` runs epochs of shuffled minibatches, keeps a :class:`History`,
shows progress and stops cleanly on Ctrl-C.

An *engine* is two small functions, so another way of computing (the batched NumPy engine) slots
in without touching the loop: ``step(model, objective, Xb, yb) -> float`` builds the mean loss of
one minibatch, leaves its gradient in the parameters' ``.grad`` and returns the loss; and
``outputs(model, objective, X) -> ndarray`` evaluates, without recording a graph, what the loss
consumes for each row of ``X``. See :data:`ENGINES`.
"""

from __future__ import annotations

import gc
import math
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from . import batched, nn
from .data import minibatches, num_batches
from .engine import Value, no_grad
from .optim import SGD, Optimizer

#: The learning rate of the default SGD (see ``tinygrad-edu circle --help`` for why 0.1).
DEFAULT_LR = 0.1

LOSSES = ("bce", "mse", "hinge")


@dataclass(frozen=True)
class Objective:
    """What training minimises for a one-output model, and how its output reads as a probability.

    ``loss`` is ``"bce"``, ``"mse"`` or ``"hinge"``. ``from_logits`` means the loss consumes the
    model's output *before* its sigmoid (``model.logits(x)``): binary cross-entropy of a sigmoid
    output is computed from the logit, which is exact, cannot hit ``log(0)`` and keeps its gradient
    when the sigmoid saturates. ``logit_output`` means what the loss consumes is a logit.
    """

    loss: str
    from_logits: bool = False
    logit_output: bool = False

    def output(self, model: nn.Module, x) -> Value:
        """What the loss consumes for one input: the model's output or its logit."""
        return model.logits(x) if self.from_logits else model(x)

    def criterion(self, out: Value, target: float | Value) -> Value:
        """The per-sample loss of an :meth:`output` against its 0/1 target."""
        if self.loss == "bce":
            return nn.binary_cross_entropy_with_logits(out, target) if self.logit_output \
                else nn.binary_cross_entropy(out, target)
        if self.loss == "mse":
            return nn.mse_loss(out, target)
        return nn.hinge_loss(out, target)

    def sample_loss(self, model: nn.Module, x, target: float | Value) -> Value:
        return self.criterion(self.output(model, x), target)

    def proba(self, outputs: np.ndarray) -> np.ndarray:
        """P(class 1) from :meth:`output` values; the class is 1 where this is > 0.5."""
        outputs = np.asarray(outputs, dtype=np.float64)
        if self.logit_output:
            return batched.NUMPY_MATH.sigmoid(outputs)  # the sigmoid primitive's overflow-free rule
        if self.loss == "hinge":  # a score: its sign is the class
            return (np.clip(outputs, -1.0, 1.0) + 1.0) / 2.0
        return np.clip(outputs, 0.0, 1.0)


def make_objective(loss: str, model: nn.Module) -> Objective:
    """The :class:`Objective` for ``loss`` on ``model``, checking that they fit together."""
    out_act = getattr(model, "output_activation", "linear")
    if loss == "bce":
        if out_act == "sigmoid":
            return Objective("bce", from_logits=True, logit_output=True)
        if out_act == "linear":  # the output is a logit, as with PyTorch's BCEWithLogitsLoss
            return Objective("bce", logit_output=True)
        raise ValueError(f"binary cross-entropy needs a sigmoid (or linear, read as a logit) output, "
                         f"not {out_act}")
    if loss == "mse":
        return Objective("mse")
    if loss == "hinge":
        if out_act not in ("linear", "tanh"):
            raise ValueError(f"the hinge loss needs a raw score: use a linear or tanh output, not {out_act}")
        return Objective("hinge")
    raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")


# The scalar engine: one graph of Values per minibatch.

def scalar_step(model: nn.Module, objective: Objective, Xb: np.ndarray, yb: np.ndarray) -> float:
    """Build the minibatch's mean loss as one graph, backpropagate it, return its value."""
    losses = [objective.sample_loss(model, x, t) for x, t in zip(Xb.tolist(), yb.tolist())]
    loss = nn.mean(losses)
    loss.backward()
    return loss.data


#: Primitives whose batched form gives the scalar engine's bits: one IEEE operation each, correctly
#: rounded on floats and on arrays alike (``sum`` adds left to right in both), and ``tanh``, which
#: both take from the C library. ``exp``, ``log`` and what uses them (sigmoid, softplus) are not here:
#: NumPy's vectorised versions may differ from the C library's in the last bits.
SAME_BITS_ON_ARRAYS = frozenset({"add", "sub", "mul", "div", "neg", "abs", "relu", "sum", "tanh"})


def scalar_outputs(model: nn.Module, objective: Objective, X: np.ndarray) -> np.ndarray:
    """:meth:`Objective.output` for every row of ``X``, without recording graphs.

    For an :class:`nn.MLP` (whose forward pass takes no value-dependent branch) whose output uses only
    :data:`SAME_BITS_ON_ARRAYS`, such as the circle network's logit, the rows go through the batched
    engine's tape: the same numbers, without making a ``Value`` per operation per row. Anything
    else is evaluated row by row on Values, under :class:`~tinygrad_edu.engine.no_grad`."""
    X = np.asarray(X, dtype=np.float64)
    if type(model) is nn.MLP and X.ndim == 2 and len(X) and X.shape[1] == model.nin:
        tape = batched.outputs_tape(model, objective, X[0], passes=())  # as traced: no matrix products
        if tape.num_outputs == 1 and all(op.name in SAME_BITS_ON_ARRAYS for op in tape.primitives):
            return tape.forward(X)
    with no_grad():
        return np.array([objective.output(model, x).data for x in X.tolist()])


@dataclass(frozen=True)
class Engine:
    name: str
    step: Callable[[nn.Module, Objective, np.ndarray, np.ndarray], float]
    outputs: Callable[[nn.Module, Objective, np.ndarray], np.ndarray]
    #: Per-sample losses from outputs and targets, ``(objective, outputs, y) -> ndarray``; None:
    #: :func:`loss_and_accuracy` evaluates the criterion with Values.
    losses: Callable[[Objective, np.ndarray, np.ndarray], np.ndarray] | None = None
    #: A faster training loop, ``(model, objective, optimizer, X, y, batch_size) -> trainer or None``:
    #: the trainer's ``epoch(rng, check)`` yields each batch's loss after the optimizer's step (the
    #: same numbers as ``step`` with ``zero_grad`` and ``optimizer.step()``), ``store()`` writes the
    #: weights back into the Values and ``load()`` reads them again (see ``batched.Trainer``).
    trainer: Callable[..., Any] | None = None
    #: Pause Python's cyclic garbage collector while training and evaluating (see
    #: :class:`_CollectorPaused`): the scalar engine's graphs have no reference cycles, so the
    #: collector's passes over millions of new nodes find nothing to free.
    pause_gc: bool = False


#: Engines by name (``fit(engine=...)`` and ``--engine``).
ENGINES: dict[str, Engine] = {
    "scalar": Engine("scalar", scalar_step, scalar_outputs, pause_gc=True),
    # The per-sample loss traced once into a tape and replayed on NumPy arrays (tinygrad_edu.batched).
    "batched": Engine("batched", batched.batched_step, batched.batched_outputs, batched.batched_losses,
                      batched.Trainer.create),
}


def _engine(engine: str | Engine) -> Engine:
    if isinstance(engine, Engine):
        return engine
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    return ENGINES[engine]


def _objective(loss: str | Objective, model: nn.Module) -> Objective:
    return loss if isinstance(loss, Objective) else make_objective(loss, model)


def loss_and_accuracy(objective: Objective, outputs: np.ndarray, y: np.ndarray,
                      losses: Callable[[Objective, np.ndarray, np.ndarray], np.ndarray] | None = None
                      ) -> tuple[float, float]:
    """Mean loss and accuracy (fraction of ``proba > 0.5`` matching ``y``) from precomputed outputs;
    ``losses`` is an engine's per-sample loss function (default: the criterion on Values)."""
    if losses is not None:
        # NumPy's pairwise sum: the losses are >= 0, so it is within a few ulps of math.fsum's exact
        # sum, at a fraction of the cost of turning them into Python floats.
        total = float(np.sum(losses(objective, outputs, np.asarray(y, dtype=np.float64))))
    else:
        with no_grad():
            total = math.fsum(objective.criterion(Value(o), t).data for o, t in zip(outputs.tolist(), y.tolist()))
    accuracy = float(np.mean((objective.proba(outputs) > 0.5) == (np.asarray(y) > 0.5)))
    return total / len(y), accuracy


def evaluate(model: nn.Module, X: np.ndarray, y: np.ndarray, *, loss: str | Objective = "bce",
             engine: str | Engine = "scalar") -> tuple[float, float]:
    """``(mean loss, accuracy)`` of ``model`` on ``X, y``."""
    objective = _objective(loss, model)
    eng = _engine(engine)
    return loss_and_accuracy(objective, eng.outputs(model, objective, X), np.asarray(y), eng.losses)


def predict_proba(model: nn.Module, X: np.ndarray, *, loss: str | Objective = "bce",
                  engine: str | Engine = "scalar") -> np.ndarray:
    """P(class 1) for every row of ``X`` (shape ``(n,)``)."""
    objective = _objective(loss, model)
    return objective.proba(_engine(engine).outputs(model, objective, X))


@dataclass
class History:
    """What :func:`fit` measured, one entry per epoch (train and test loss and accuracy, measured
    after the epoch with the same weights for both). ``epoch`` counts epochs done; after an
    interruption the last entry is the partial epoch, e.g. ``3.4``. The ``test_*`` lists are empty
    without test data. ``steps`` is the number of optimizer steps, ``seconds`` the wall time."""

    epoch: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    interrupted: bool = False
    steps: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self, i: int = -1) -> str:
        """One line describing entry ``i``."""
        text = f"train loss {self.train_loss[i]:.4f}, accuracy {100 * self.train_accuracy[i]:.2f}%"
        if self.test_loss:
            text += f" | test loss {self.test_loss[i]:.4f}, accuracy {100 * self.test_accuracy[i]:.2f}%"
        return text


class _StopAtBatchEnd:
    """While active (main thread only), the first Ctrl-C sets ``requested`` instead of raising,
    so training stops after the current batch; a second Ctrl-C raises at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> _StopAtBatchEnd:
        if threading.current_thread() is threading.main_thread() \
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping after this batch (press Ctrl-C again to stop at once)", file=sys.stderr)

    def __exit__(self, *exc_info) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class _Progress:
    """On a terminal, a tqdm bar during each epoch, and each epoch's full summary line printed above
    it when the epoch ends (never cut to the terminal's width); one plain line per epoch otherwise;
    nothing when off."""

    def __init__(self, enabled: bool, epochs: int, batches: int):
        self.enabled, self.epochs, self.batches = enabled, epochs, batches
        self.tty = enabled and sys.stderr.isatty()
        self.bar = None

    def start_epoch(self, epoch: int) -> None:
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=self.batches, desc=f"epoch {epoch}/{self.epochs}", unit="batch",
                            file=sys.stderr, leave=False, dynamic_ncols=True)

    def batch(self, loss: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"loss {loss:.4f}", refresh=False)
            self.bar.update()

    def end_epoch(self, label: str, history: History) -> None:
        line = f"epoch {label}/{self.epochs}: {history.summary()}"
        if self.bar is not None:
            self.close()  # clears the bar (leave=False), then the line goes where it was
            from tqdm import tqdm

            tqdm.write(line, file=sys.stderr)
        elif self.enabled:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class _CollectorPaused:
    """While active, Python's cyclic garbage collector is off (if it was on), and on again on the
    way out, whatever the way out (return, error, ``KeyboardInterrupt``).

    The scalar engine makes every node a new object: a minibatch of the circle task is some 2,500,
    so the collector would start a pass every few hundred nodes, walking the young graph each time
    to find no cycle (a node refers only to its parents and its primitive). Reference counting
    frees each graph as soon as the next batch replaces it, with or without the collector."""

    def __init__(self, active: bool) -> None:
        self.active = active

    def __enter__(self) -> None:
        self.paused = self.active and gc.isenabled()
        if self.paused:
            gc.disable()

    def __exit__(self, *exc_info) -> None:
        if self.paused:
            gc.enable()


def _check_xy(name: str, X, y, nin: int | None) -> tuple[np.ndarray, np.ndarray]:
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if X.ndim != 2 or len(X) == 0:
        raise ValueError(f"X_{name} must be a non-empty 2-D array (samples x features), got shape {X.shape}")
    if nin is not None and X.shape[1] != nin:
        raise ValueError(f"X_{name} has {X.shape[1]} features but the model takes {nin} inputs")
    if y.shape != (len(X),):
        raise ValueError(f"y_{name} must have shape ({len(X)},) to match X_{name}, got {y.shape}")
    if not (np.isfinite(X).all() and np.isfinite(y).all()):
        raise ValueError(f"X_{name} and y_{name} must be finite numbers")
    return X, y


#: A batch loss more than this many times the first (positive) batch loss means training diverged.
#: Healthy runs stay within a few times their first loss (circle task, learning rates 0.01-10:
#: at most 2.2x); a learning rate of 1e6 reaches 1e9x within the first epoch.
DIVERGENCE_FACTOR = 1000.0


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite, or exploded past :data:`DIVERGENCE_FACTOR` times its first
    value. ``cause`` says what was seen and when; ``history`` holds the epochs completed before."""

    def __init__(self, cause: str, history: History | None = None):
        super().__init__(f"{cause}: training diverged; try a smaller learning rate")
        self.cause, self.history = cause, history


def _diverged(what: str) -> TrainingDiverged:
    return TrainingDiverged(what)


def fit(model: nn.Module, X_train, y_train, *, X_test=None, y_test=None, loss: str | Objective = "bce",
        optimizer: Optimizer | None = None, epochs: int = 50, batch_size: int = 32,
        seed: int | np.random.Generator | None = None, engine: str | Engine = "scalar", progress: bool = True,
        callback: Callable[[int, History], None] | None = None) -> History:
    """Train ``model`` (one output) on ``X_train, y_train`` and return its :class:`History`.

    Each epoch visits the training rows once in shuffled minibatches of ``batch_size`` (the order
    drawn from ``seed``); each batch is ``optimizer.zero_grad()``, the engine's step (mean loss,
    backward), ``optimizer.step()``. After each epoch, train and test loss and accuracy are
    recorded and ``callback(epoch, history)`` is called (an engine with a ``trainer``, like the batched
    one, runs the batches itself, to the same numbers, and keeps the weights in an array during an
    epoch: the Values are current at every callback and when fit returns). ``optimizer`` defaults to
    ``SGD(model.parameters(), lr=DEFAULT_LR)``; ``loss`` is ``"bce"``, ``"mse"`` or ``"hinge"``
    (see :func:`make_objective`).

    ``progress`` shows a bar per epoch on a terminal, or a line per epoch when stderr is not one.
    Ctrl-C (or a ``KeyboardInterrupt`` from the callback) ends training after the current batch:
    the partial epoch is evaluated, ``history.interrupted`` is set and fit returns normally.
    A loss that becomes NaN or infinite, or a batch loss above ``DIVERGENCE_FACTOR`` times the first
    one, stops training at once and raises :class:`TrainingDiverged` (a ``FloatingPointError``)
    with the epochs completed before in its ``history``.

    With ``engine="scalar"``, Python's cyclic garbage collector is paused during each epoch's
    batches and evaluation (it would walk every new graph and find no cycle to free; reference
    counting frees the graphs) and switched back on for the callback, after an error and on Ctrl-C;
    a collector you turned off stays off. The per-epoch metrics record no graph (see
    :func:`scalar_outputs`).
    """
    objective = _objective(loss, model)
    eng = _engine(engine)
    nin = getattr(model, "nin", None)
    X_train, y_train = _check_xy("train", X_train, y_train, nin)
    has_test = X_test is not None or y_test is not None
    if has_test:
        if X_test is None or y_test is None:
            raise ValueError("pass both X_test and y_test, or neither")
        X_test, y_test = _check_xy("test", X_test, y_test, nin)
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if optimizer is None:
        optimizer = SGD(model.parameters(), lr=DEFAULT_LR)
    rng = np.random.default_rng(seed)  # a Generator passes through: its stream goes on
    per_epoch = num_batches(len(X_train), batch_size)
    history = History()
    bar = _Progress(progress, epochs, per_epoch)
    started = time.perf_counter()

    def record(epoch: float) -> None:
        # A batch's loss comes before its step, so the last step of an epoch is checked only here.
        train = loss_and_accuracy(objective, eng.outputs(model, objective, X_train), y_train, eng.losses)
        if not math.isfinite(train[0]):
            raise _diverged(f"the loss became {train[0]} after epoch {epoch}")
        history.epoch.append(epoch)
        history.train_loss.append(train[0])
        history.train_accuracy.append(train[1])
        if has_test:
            test = loss_and_accuracy(objective, eng.outputs(model, objective, X_test), y_test, eng.losses)
            if not math.isfinite(test[0]):
                raise _diverged(f"the test loss became {test[0]} after epoch {epoch}")
            history.test_loss.append(test[0])
            history.test_accuracy.append(test[1])

    first_loss = [0.0]  # the first positive batch loss: what an exploding loss is measured against

    def check(value: float, batch: int) -> None:
        if not math.isfinite(value):
            raise _diverged(f"the loss became {value} at epoch {epoch}, batch {batch + 1}")
        if first_loss[0] == 0.0:
            first_loss[0] = value
        elif value > DIVERGENCE_FACTOR * first_loss[0]:
            raise _diverged(f"the loss exploded from {first_loss[0]:.4g} to {value:.4g} at epoch {epoch}, "
                            f"batch {batch + 1}")

    def batches():
        for batch, (Xb, yb) in enumerate(minibatches(X_train, y_train, batch_size, seed=rng)):
            optimizer.zero_grad()
            value = eng.step(model, objective, Xb, yb)
            check(value, batch)
            optimizer.step()
            yield value

    # The engine's own loop if it has one (the weights then live in its arrays during an epoch).
    trainer = eng.trainer(model, objective, optimizer, X_train, y_train, batch_size) if eng.trainer else None
    # The collector is paused for the epochs' batches and evaluation, not for the callback (user
    # code that may well make cycles: figures, say).
    paused = _CollectorPaused(eng.pause_gc)
    epoch, done = 0, 0
    with _StopAtBatchEnd() as stop:
        try:
            for epoch in range(1, epochs + 1):
                done = 0
                bar.start_epoch(epoch)
                if trainer is not None:
                    trainer.load()  # a callback may have changed the weights or the optimizer
                with paused:
                    try:
                        for value in trainer.epoch(rng, check) if trainer is not None else batches():
                            done += 1
                            history.steps += 1
                            bar.batch(value)
                            if stop.requested:
                                raise KeyboardInterrupt
                    finally:
                        if trainer is not None:
                            trainer.store()
                    record(epoch)
                bar.end_epoch(str(epoch), history)
                if callback is not None:
                    callback(epoch, history)
        except TrainingDiverged as err:
            err.history = history
            raise
        except KeyboardInterrupt:
            history.interrupted = True
            bar.close()
            partial = epoch - 1 + done / per_epoch
            if done and (not history.epoch or history.epoch[-1] != partial):
                with paused:
                    record(round(partial, 3))
                bar.end_epoch(f"{partial:.2f}", history)
        finally:
            bar.close()
            history.seconds = time.perf_counter() - started
    return history


__all__ = [
    "fit", "History", "TrainingDiverged", "DIVERGENCE_FACTOR", "Objective", "make_objective", "evaluate", "predict_proba", "loss_and_accuracy",
    "Engine", "ENGINES", "scalar_step", "scalar_outputs", "DEFAULT_LR", "LOSSES",
]
