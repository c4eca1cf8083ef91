"""The studio's training state: data, model and optimizer, trained on the batched engine in a
background thread, with every change made under one lock.

:class:`Studio` is what the web API drives (``play``, ``pause``, ``step``, ``epoch``, ``reset``,
``configure``, ``add_point``, ``remove_point``) and what it reads (:meth:`Studio.snapshot`, plain
data ready for JSON). Training goes through ``batched.Trainer``, the loop ``train.fit`` uses on
the batched engine, with the seeds of ``tinygrad-edu circle``: the default run is that command's
run, batch for batch, and ends at the same test accuracy.

While training, the thread takes the lock for a short slice of minibatches at a time, so a request
never waits long; it calls ``on_change`` at most :data:`PUBLISH_HZ` times a second (and when a run
stops), and the server pushes the snapshot to the pages from there. A loss that stops being finite
stops the run with the reason in ``message`` (status ``"diverged"``) until the next reset.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any, Callable

import numpy as np

from .. import batched, data, nn, optim, train
from ..cli.circle import derived_seeds
from ..serialize import model_to_dict
from .config import ConfigError, DEFAULTS, resets, validate

#: At most this many snapshots a second go to the pages while training.
PUBLISH_HZ = 20
#: The training thread holds the lock for at most this long at a time (seconds).
SLICE = 0.02
#: Gradient norms are sampled this many times per epoch; the series keeps at most MAX_SAMPLES.
NORM_SAMPLES_PER_EPOCH, MAX_SAMPLES = 10, 2000
#: A point added by a click must lie within this square, and the training set stays below MAX_POINTS.
PLOT_LIMIT, MAX_POINTS = 1.5, 25000


def _plain(a: np.ndarray) -> list:
    """``a.tolist()`` with NaN and infinities as None (JSON has no such numbers)."""
    finite = np.isfinite(a)
    if finite.all():
        return a.tolist()
    o = a.astype(object)
    o[~finite] = None
    return o.tolist()


def _thin(series: list, most: int = MAX_SAMPLES) -> list:
    """``series``, or evenly spaced entries of it and its last one when it is longer than ``most``
    (a snapshot stays small however many epochs a run has)."""
    if len(series) <= most:
        return list(series)
    stride = -(-len(series) // most)
    thinned = series[::stride]
    return thinned if (len(series) - 1) % stride == 0 else thinned + [series[-1]]


class StudioError(Exception):
    """A request that cannot be done in the current state (HTTP 409); the message says why."""


class Studio:
    """One training run and its settings; thread-safe. ``on_change()`` is called (from any thread)
    whenever the snapshot changed enough to push to the pages."""

    def __init__(self, config: dict[str, Any] | None = None, on_change: Callable[[], None] | None = None):
        self.lock = threading.RLock()
        self.on_change = on_change or (lambda: None)
        self.config = dict(DEFAULTS)
        if config:
            self.config.update(validate(config))
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._last_publish = 0.0
        self.version = 0
        self._new_run()

    # ---- building a run -------------------------------------------------------------------------

    def _new_run(self) -> None:
        """New data, model and optimizer from the settings (the lock is held or not yet needed)."""
        c = self.config
        data_seed, split_seed, init_seed, shuffle_seed = derived_seeds(c["seed"])
        kwargs = {"radius": 0.5} if c["task"] == "circle" else {}
        X, y = data.TASKS[c["task"]](c["samples"], seed=data_seed, noise=c["noise"], **kwargs)
        self.X_train, self.X_test, self.y_train, self.y_test = data.train_test_split(
            X, y, c["test_size"], seed=split_seed)
        self.model = nn.MLP(2, [*c["hidden"], 1], c["activation"], "sigmoid", seed=init_seed)
        self.objective = train.make_objective("bce", self.model)
        self.optimizer = self._make_optimizer()
        self.rng = np.random.default_rng(shuffle_seed)
        self.history = train.History()
        self.norms: dict[str, list] = {"epoch": [], "layers": [[] for _ in self.model.layers]}
        self.epoch = 0          # completed epochs
        self.batch = 0          # minibatches done in the current epoch
        self.target = c["epochs"]
        self.status, self.message = "ready", ""
        self.data_version = getattr(self, "data_version", 0) + 1
        self._build_trainer()
        self._record()

    def _make_optimizer(self) -> optim.Optimizer:
        c = self.config
        if c["optimizer"] == "adam":
            return optim.Adam(self.model.parameters(), lr=c["lr"])
        return optim.SGD(self.model.parameters(), lr=c["lr"], momentum=c["momentum"])

    def _build_trainer(self) -> None:
        """A trainer over the current training points (after a reset, a data or batch size change);
        the epoch in progress, if any, ends here."""
        if getattr(self, "trainer", None) is not None:
            self.trainer.store()
        self.trainer = batched.Trainer.create(self.model, self.objective, self.optimizer, self.X_train,
                                              self.y_train, self.config["batch_size"])
        self._epoch_iter = None
        self.batch = 0
        where = {id(p): i for i, p in enumerate(self.trainer.params)}
        self._w_index = [np.array([[where[id(w)] for w in n.w] for n in layer.neurons]) for layer in self.model.layers]
        self._b_index = [np.array([where[id(n.b)] for n in layer.neurons]) for layer in self.model.layers]
        self._layer_index = [np.concatenate([w.ravel(), b]) for w, b in zip(self._w_index, self._b_index)]

    # ---- training -------------------------------------------------------------------------------

    def _check(self, value: float, batch: int) -> None:
        if not math.isfinite(value):
            raise FloatingPointError(f"training diverged: the loss became {value} at epoch {self.epoch + 1}, "
                                     f"batch {batch + 1}; press reset, then try a smaller learning rate")

    def _one_batch(self) -> bool:
        """One minibatch (the lock is held); True when it ended an epoch."""
        if self._epoch_iter is None:
            self._epoch_iter = self.trainer.epoch(self.rng, self._check)
        next(self._epoch_iter)
        self.batch += 1
        self.history.steps += 1
        per_epoch = len(self.trainer.batches)
        if self.batch % max(1, per_epoch // NORM_SAMPLES_PER_EPOCH) == 0 or self.batch == per_epoch:
            self._sample_norms(self.epoch + self.batch / per_epoch)
        if self.batch == per_epoch:
            self._epoch_iter = None
            self.batch = 0
            self.epoch += 1
            self._record()
            return True
        return False

    def _sample_norms(self, at: float) -> None:
        grad = self.trainer.grad
        self.norms["epoch"].append(round(at, 4))
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging run's norm is inf or nan
            for series, index in zip(self.norms["layers"], self._layer_index):
                series.append(float(np.sqrt(np.dot(grad[index], grad[index]))))
        if len(self.norms["epoch"]) > MAX_SAMPLES:  # keep every other sample: bounded, still spans the run
            self.norms["epoch"] = self.norms["epoch"][::2]
            self.norms["layers"] = [s[::2] for s in self.norms["layers"]]

    def _evaluate(self) -> None:
        """Train and test loss and accuracy of the current weights into :attr:`metrics` (lock held)."""
        self.trainer.store()
        metrics = {}
        for name, X, y in (("train", self.X_train, self.y_train), ("test", self.X_test, self.y_test)):
            value, accuracy = train.evaluate(self.model, X, y, loss=self.objective, engine="batched")
            if not math.isfinite(value):
                raise FloatingPointError(f"training diverged: the {name} loss became {value} at epoch "
                                         f"{self.epoch}; press reset, then try a smaller learning rate")
            metrics[f"{name}_loss"], metrics[f"{name}_accuracy"] = value, accuracy
        self.metrics = metrics

    def _record(self) -> None:
        """Evaluate the current weights and append the figures to the history (an epoch's end)."""
        self._evaluate()
        h = self.history
        for key, series in (("train_loss", h.train_loss), ("train_accuracy", h.train_accuracy),
                            ("test_loss", h.test_loss), ("test_accuracy", h.test_accuracy)):
            series.append(self.metrics[key])
        h.epoch.append(self.epoch)

    def _guarded(self, work: Callable[[], Any]) -> Any:
        """Run ``work`` (lock held); a diverging loss or a math error ends the run with the reason."""
        try:
            return work()
        except (FloatingPointError, OverflowError, ValueError, ZeroDivisionError) as err:
            self.status = "diverged"
            text = str(err)
            self.message = text if text.startswith("training diverged") else \
                f"training diverged: {text}; press reset, then try a smaller learning rate"
            self._epoch_iter = None
            return None

    def _ready_to_train(self) -> None:
        if self.status == "diverged":
            raise StudioError(f"{self.message}")

    def step(self) -> None:
        """One minibatch (pauses a running play first)."""
        self.pause()
        with self.lock:
            self._ready_to_train()
            self._guarded(self._one_batch)
            self._finish_manual()

    def run_epoch(self) -> None:
        """Train to the end of the current epoch (a whole epoch from its start)."""
        self.pause()
        with self.lock:
            self._ready_to_train()
            self._guarded(lambda: [None for _ in iter(self._one_batch, True)])
            self._finish_manual()

    def _finish_manual(self) -> None:
        if self.status != "diverged":
            self.status = "paused"
            self.message = ""
            if self.batch:  # mid-epoch: the metrics follow the latest step
                self._guarded(self._evaluate)
        self._changed(force=True)

    def play(self) -> None:
        """Train in the background until ``epochs`` epochs are done (another ``epochs`` when they
        already are), then stop."""
        with self.lock:
            self._ready_to_train()
            if self._thread is not None and self._thread.is_alive():
                return
            if self.epoch >= self.target:
                self.target = self.epoch + self.config["epochs"]
            self.status, self.message = "training", ""
            self._stop.clear()
            self._thread = threading.Thread(target=self._train_loop, name="studio-training", daemon=True)
            self._thread.start()
        self._changed(force=True)

    def _train_loop(self) -> None:
        started = time.perf_counter()
        while not self._stop.is_set():
            with self.lock:
                speed = self.config["speed"]
                end = time.perf_counter() + SLICE
                while True:
                    if self._guarded(self._one_batch) is None and self.status == "diverged":
                        break
                    if self.epoch >= self.target or self._stop.is_set() or speed or time.perf_counter() >= end:
                        break
                if self.status == "diverged" or self.epoch >= self.target:
                    break
            self._changed()
            if speed:
                self._stop.wait(1.0 / speed)
        with self.lock:  # the time and the final status change together (a reader sees both or neither)
            self.history.seconds += time.perf_counter() - started
            if self.status == "training":
                if self.epoch >= self.target:
                    self.status, self.message = "done", f"trained {self.epoch} epochs"
                else:
                    self.status = "paused"
            self.trainer.store()
        self._changed(force=True)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until a :meth:`play` in progress stops (its epochs done, paused or diverged);
        False when ``timeout`` seconds passed first."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def pause(self) -> None:
        """Stop the background training after its current minibatch and wait for it."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            self._stop.set()
            thread.join()
            self._thread = None

    def reset(self) -> None:
        """A new run from the settings: new data (added points are dropped), new weights."""
        self.pause()
        with self.lock:
            self._new_run()
        self._changed(force=True)

    def close(self) -> None:
        self.pause()

    # ---- settings and points ----------------------------------------------------------------------

    def configure(self, update: Any) -> dict[str, Any]:
        """Apply a partial settings update (see :mod:`.config`); returns the settings. A change of
        data or model starts a new run; the learning rate, momentum, batch size, epochs and speed
        change the run in progress."""
        with self.lock:
            clean = validate(update)
            if self.config["optimizer"] == "adam" and clean.get("optimizer", "adam") == "adam" \
                    and clean.get("momentum", 0.0):
                raise ConfigError("momentum applies to SGD; Adam has its own (choose optimizer sgd first)")
        if resets(clean, self.config):
            self.pause()
            with self.lock:
                self.config.update(clean)
                self._new_run()
        else:
            with self.lock:
                self.config.update(clean)
                self.optimizer.lr = self.config["lr"]
                if isinstance(self.optimizer, optim.SGD):
                    self.optimizer.momentum = self.config["momentum"]
                if "batch_size" in clean and clean["batch_size"] != self.trainer.batch_size:
                    self._build_trainer()
                if "epochs" in clean and self.status != "training":
                    self.target = max(self.epoch, self.config["epochs"])
        self._changed(force=True)
        return dict(self.config)

    def add_point(self, x: Any, y: Any, label: Any) -> int:
        """Add a training point at ``(x, y)`` of class ``label`` (0 or 1); returns the number of
        training points."""
        for name, value in (("x", x), ("y", y)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or abs(value) > PLOT_LIMIT:
                raise ConfigError(f"{name} must be a number between -{PLOT_LIMIT} and {PLOT_LIMIT}, got {value!r}")
        if label not in (0, 1) or isinstance(label, bool):
            raise ConfigError(f"label must be 0 or 1, got {label!r}")
        with self.lock:
            if len(self.y_train) >= MAX_POINTS:
                raise StudioError(f"the training set already has {MAX_POINTS} points; remove some or reset")
            self.X_train = np.vstack([self.X_train, [[float(x), float(y)]]])
            self.y_train = np.append(self.y_train, float(label))
            self._data_changed()
            return len(self.y_train)

    def remove_point(self, index: Any) -> int:
        """Remove training point ``index``; returns the number of training points."""
        with self.lock:
            n = len(self.y_train)
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n:
                raise ConfigError(f"index must be a whole number from 0 to {n - 1}, got {index!r}")
            if n <= 2:
                raise StudioError("the training set needs at least two points; add one first or reset")
            self.X_train = np.delete(self.X_train, index, axis=0)
            self.y_train = np.delete(self.y_train, index)
            self._data_changed()
            return len(self.y_train)

    def _data_changed(self) -> None:
        # The lock is held. A running play goes on with the new points from its next slice.
        self.data_version += 1
        self._build_trainer()
        self._changed(force=True)

    # ---- reading ----------------------------------------------------------------------------------

    def _changed(self, force: bool = False) -> None:
        now = time.perf_counter()
        if force or now - self._last_publish >= 1.0 / PUBLISH_HZ:
            self._last_publish = now
            self.version += 1
            self.on_change()

    def settings(self) -> dict:
        """The current settings, as plain data."""
        with self.lock:
            return {**self.config, "hidden": list(self.config["hidden"])}

    def _network(self) -> dict:
        data, grad = self.trainer.data, self.trainer.grad
        layers = [{"w": _plain(data[w]), "b": _plain(data[b]), "gw": _plain(grad[w]), "gb": _plain(grad[b])}
                  for w, b in zip(self._w_index, self._b_index)]
        return {"sizes": [2, *self.model.sizes], "activation": self.model.activation,
                "output_activation": self.model.output_activation, "layers": layers}

    def snapshot(self) -> dict:
        """Everything the page shows except the points (see :meth:`points`), as plain data."""
        with self.lock:
            h = self.history
            per_epoch = len(self.trainer.batches)
            return {
                "version": self.version, "status": self.status, "message": self.message,
                "epoch": self.epoch, "batch": self.batch, "batches_per_epoch": per_epoch,
                "target_epochs": self.target, "steps": h.steps, "seconds": round(h.seconds, 4),
                "config": self.settings(),
                "metrics": dict(self.metrics),
                "history": {key: _thin(getattr(h, key)) for key in
                            ("epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy")},
                "grad_norms": {"epoch": list(self.norms["epoch"]),
                               "layers": [_plain(np.asarray(s)) for s in self.norms["layers"]]},
                "network": self._network(),
                "points": {"train": len(self.y_train), "test": len(self.y_test), "version": self.data_version},
            }

    def points(self) -> dict:
        """The training and test points, as flat ``[x0, y0, x1, y1, ...]`` lists and 0/1 labels."""
        with self.lock:
            return {"version": self.data_version,
                    "train": {"xy": self.X_train.ravel().round(5).tolist(), "label": self.y_train.astype(int).tolist()},
                    "test": {"xy": self.X_test.ravel().round(5).tolist(), "label": self.y_test.astype(int).tolist()}}

    def sample(self, which: str, index: Any) -> tuple[nn.MLP, train.Objective, list[float], float]:
        """A copy of the model with the current weights, and point ``index`` of the ``"train"`` or
        ``"test"`` set with its label (for the explorer)."""
        if which not in ("train", "test"):
            raise ConfigError(f"set must be train or test, got {which!r}")
        with self.lock:
            X, y = (self.X_train, self.y_train) if which == "train" else (self.X_test, self.y_test)
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(y):
                raise ConfigError(f"index must be a whole number from 0 to {len(y) - 1}, got {index!r}")
            self.trainer.store()
            model = nn.MLP(2, self.model.sizes, self.model.activation, self.model.output_activation, seed=0)
            model.load_state_dict(self.model.state_dict())
            return model, self.objective, X[index].tolist(), float(y[index])

    def model_document(self) -> dict:
        """The model file (``serialize``'s format, which ``tinygrad-edu predict`` loads) of the current weights."""
        with self.lock:
            self.trainer.store()
            h = self.history
            metadata = {"task": self.config["task"], "source": "tinygrad-edu studio", "epochs_done": self.epoch,
                        "steps": h.steps, "test_accuracy": self.metrics["test_accuracy"],
                        "config": self.settings(), "optimizer": repr(self.optimizer)}
            try:
                return model_to_dict(self.model, metadata)
            except ValueError as err:
                raise StudioError(f"{err}; press reset") from None
