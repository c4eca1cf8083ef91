"""Save and load an ``MLP`` as JSON (never pickle: reading a model file cannot run code).

The file holds a format tag and version, the architecture (``MLP.config()``), every parameter
by name, and optional metadata (e.g. how it was trained). Floats are written with ``repr``, so
they read back bit for bit. Loading checks all of it and raises :class:`ModelFileError` with a
message that says what is wrong.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from ._io import write_text
from .nn import ACTIVATIONS, MLP

FORMAT = "tinygrad_edu.mlp"
VERSION = 1


class ModelFileError(ValueError):
    """A model file that is not valid JSON, or not a model this version can read."""


def model_to_dict(model: MLP, metadata: dict | None = None) -> dict:
    """The JSON-ready description of ``model`` (and ``metadata``, which must be JSON-serialisable)."""
    if not isinstance(model, MLP):
        raise TypeError(f"only MLP models can be saved, got {type(model).__name__}")
    params = model.state_dict()
    for name, value in params.items():
        if not math.isfinite(value):
            raise ValueError(f"parameter {name} is {value}; a model with non-finite weights cannot be saved")
    return {"format": FORMAT, "version": VERSION, "architecture": model.config(),
            "parameters": params, "metadata": dict(metadata or {})}


def save_model(model: MLP, path: str | os.PathLike, *, metadata: dict | None = None) -> Path:
    """Write ``model`` to ``path`` as JSON (atomically: a reader never sees half a file)."""
    path = Path(path)
    text = json.dumps(model_to_dict(model, metadata), indent=1, allow_nan=False) + "\n"
    return write_text(path, text)


@dataclass
class Checkpoint:
    """A loaded model file: the model and its metadata."""

    model: MLP
    metadata: dict = field(default_factory=dict)


def _int_list(value) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)


def model_from_dict(doc, source: str = "model") -> Checkpoint:
    """Rebuild a model from :func:`model_to_dict`'s output, checking every part of it."""
    def fail(what: str) -> ModelFileError:
        return ModelFileError(f"{source}: {what}")

    if not isinstance(doc, dict):
        raise fail(f"expected a JSON object, got {type(doc).__name__}")
    if doc.get("format") != FORMAT:
        raise fail(f"not a tinygrad_edu model file (format is {doc.get('format')!r}, expected {FORMAT!r})")
    if doc.get("version") != VERSION:
        raise fail(f"format version {doc.get('version')!r} is not supported (this version reads {VERSION})")
    arch = doc.get("architecture")
    if not isinstance(arch, dict):
        raise fail("missing the 'architecture' object")
    nin, sizes = arch.get("nin"), arch.get("sizes")
    if not (isinstance(nin, int) and not isinstance(nin, bool) and nin >= 1):
        raise fail(f"architecture.nin must be a positive integer, got {nin!r}")
    if not _int_list(sizes):
        raise fail(f"architecture.sizes must be a non-empty list of positive integers, got {sizes!r}")
    for key in ("activation", "output_activation"):
        if arch.get(key) not in ACTIVATIONS:
            raise fail(f"architecture.{key} must be one of {', '.join(ACTIVATIONS)}, got {arch.get(key)!r}")
    if sum(a * b + b for a, b in zip([nin] + sizes, sizes)) > 10_000_000:
        raise fail("the architecture has more than 10 million parameters; refusing to build it")
    model = MLP(nin, sizes, arch["activation"], arch["output_activation"], seed=0)
    params = doc.get("parameters")
    if not isinstance(params, dict):
        raise fail("missing the 'parameters' object")
    expected = model.state_dict()
    if len(params) != len(expected) or params.keys() != expected.keys():
        missing = [k for k in expected if k not in params]
        extra = [k for k in params if k not in expected]
        detail = f"first missing {missing[0]!r}" if missing else f"unexpected {extra[0]!r}"
        raise fail(f"has {len(params)} parameters but {nin}-{'-'.join(map(str, sizes))} needs "
                   f"{len(expected)} ({detail})")
    for name, value in params.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise fail(f"parameter {name} must be a finite number, got {value!r}")
    model.load_state_dict(params)
    metadata = doc.get("metadata", {})
    if not isinstance(metadata, dict):
        raise fail("'metadata' must be an object")
    return Checkpoint(model, metadata)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a finite number")


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a model file written by :func:`save_model`: the model and its metadata."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ModelFileError(f"{path}: not a text file; expected a model.json written by save_model "
                             "(or 'tinygrad-edu circle')") from None
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        hint = "" if text.rstrip().endswith("}") else " (the file looks truncated)"
        raise ModelFileError(f"{path}: not valid JSON at line {err.lineno}, column {err.colno}: {err.msg}{hint}") \
            from None
    except ValueError as err:
        raise ModelFileError(f"{path}: {err}") from None
    return model_from_dict(doc, str(path))


def load_model(path: str | os.PathLike) -> MLP:
    """The model in a file written by :func:`save_model`."""
    return load_checkpoint(path).model


__all__ = ["save_model", "load_model", "load_checkpoint", "Checkpoint", "model_to_dict", "model_from_dict",
           "ModelFileError", "FORMAT", "VERSION"]
