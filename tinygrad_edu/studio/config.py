"""The studio's settings: one table of fields (type, range, whether changing it resets the run),
and :func:`validate`, which checks a partial update from the page and says in one line what is
wrong. Nothing here trains; :mod:`tinygrad_edu.studio.state` applies a validated update.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .. import nn
from ..data import TASKS
from ..train import DEFAULT_LR


class ConfigError(ValueError):
    """An update the studio refuses; the message is one line that says what to send instead."""


@dataclass(frozen=True)
class Field:
    kind: str  # "int", "float", "choice", "sizes"
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    #: Changing it rebuilds the data and the model (a new run); otherwise training goes on.
    resets: bool = True
    help: str = ""


MAX_LAYERS, MAX_WIDTH = 4, 32

#: Every setting the page can change. The defaults are the article's circle run (as ``make circle``).
FIELDS: dict[str, Field] = {
    "task": Field("choice", "circle", choices=tuple(TASKS), help="the dataset"),
    "samples": Field("int", 5000, 20, 20000, help="points in the dataset (train + test)"),
    "noise": Field("float", 0.0, 0.0, 0.5, help="Gaussian noise on the points (standard deviation)"),
    "test_size": Field("float", 0.2, 0.05, 0.9, help="share of the points held out for testing"),
    "seed": Field("int", 0, 0, 2**32 - 1, help="seeds the data, split, initial weights and shuffles"),
    "hidden": Field("sizes", (8,), 1, MAX_WIDTH, help=f"hidden layer sizes (at most {MAX_LAYERS} layers)"),
    "activation": Field("choice", "relu", choices=nn.ACTIVATIONS, help="activation of the hidden layers"),
    "optimizer": Field("choice", "sgd", choices=("sgd", "adam"), help="SGD (with momentum) or Adam"),
    "lr": Field("float", DEFAULT_LR, 1e-6, 100.0, resets=False, help="learning rate"),
    "momentum": Field("float", 0.0, 0.0, 0.999, resets=False, help="SGD momentum"),
    "batch_size": Field("int", 32, 1, 20000, resets=False, help="minibatch size"),
    "epochs": Field("int", 50, 1, 1000, resets=False, help="epochs that play trains for"),
    "speed": Field("int", 0, 0, 100000, resets=False, help="minibatches per second while playing; 0: as fast as it goes"),
}

DEFAULTS: dict[str, Any] = {name: f.default for name, f in FIELDS.items()}


def _number(name: str, f: Field, value: Any) -> int | float:
    if f.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
                value = int(value)
            else:
                raise ConfigError(f"{name} must be a whole number between {f.low:g} and {f.high:g}, got {value!r}")
    elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number between {f.low:g} and {f.high:g}, got {value!r}")
    if not f.low <= value <= f.high:
        raise ConfigError(f"{name} must be between {f.low:g} and {f.high:g}, got {value!r}")
    return value if f.kind == "int" else float(value)


def _sizes(name: str, f: Field, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) > MAX_LAYERS:
        raise ConfigError(f"{name} must be a list of at most {MAX_LAYERS} layer sizes, e.g. [8] or [16, 16]")
    for size in value:
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_WIDTH:
            raise ConfigError(f"each hidden layer size must be a whole number from 1 to {MAX_WIDTH}, got {size!r}")
    return tuple(value)


def validate(update: Any) -> dict[str, Any]:
    """Check a partial update (a JSON object from the page) and return it with normalised values.
    Unknown fields, wrong types and values out of range raise :class:`ConfigError` (the ranges
    leave at least one test point and two training points: 20 samples, a test share of 0.05-0.9)."""
    if not isinstance(update, dict):
        raise ConfigError(f"expected a JSON object of settings, got {type(update).__name__}")
    out: dict[str, Any] = {}
    for name, value in update.items():
        f = FIELDS.get(name)
        if f is None:
            raise ConfigError(f"unknown setting {name!r}; the settings are {', '.join(FIELDS)}")
        if f.kind == "choice":
            if value not in f.choices:
                raise ConfigError(f"{name} must be one of {', '.join(f.choices)}, got {value!r}")
            out[name] = value
        elif f.kind == "sizes":
            out[name] = _sizes(name, f, value)
        else:
            out[name] = _number(name, f, value)
    return out


def resets(update: dict[str, Any], current: dict[str, Any]) -> bool:
    """Whether applying ``update`` to ``current`` starts a new run (new data or a new model)."""
    return any(FIELDS[k].resets and current.get(k) != v for k, v in update.items())


def describe() -> dict[str, dict]:
    """The table as plain data for the page (types, ranges, choices, help)."""
    return {name: {"kind": f.kind, "default": list(f.default) if f.kind == "sizes" else f.default,
                   "low": f.low, "high": f.high, "choices": list(f.choices), "resets": f.resets, "help": f.help}
            for name, f in FIELDS.items()}
