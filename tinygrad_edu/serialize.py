"""Save and load an ``MLP`` as JSON (never pickle: reading a model file cannot run code).

The file holds a format tag and version, the architecture (``MLP.config()``), every parameter
by name, and optional metadata (e.g. how it was trained). Floats are written with ``repr``, so
they read back bit for bit. Loading checks all of it and raises :class:`ModelFileError` with a
one-line message that says what is wrong: at most :data:`MAX_FILE_BYTES` are read, and the
shape and size of the model are checked before anything is built, so a hostile file costs
neither time nor memory.
"""

from __future__ import annotations

import json
import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from ._io import write_text
from .nn import ACTIVATIONS, MLP

FORMAT = "tinygrad_edu.mlp"
VERSION = 1
#: Largest model file read, in bytes (a 2-8-1 model is about 2 KB, 100,000 parameters about 4 MB).
MAX_FILE_BYTES = 16 * 2**20
#: Most parameters (weights and biases) a model file may describe.
MAX_PARAMETERS = 200_000
#: Most layers a model file may describe.
MAX_LAYERS = 100
#: Most digits of an integer in a model file (a size, the version, a parameter written as an integer).
MAX_DIGITS = 18
_TOP_KEYS, _OPTIONAL_TOP_KEYS = ("format", "version", "architecture", "parameters"), ("metadata",)
_ARCH_KEYS = ("nin", "sizes", "activation", "output_activation")


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


def _short(value) -> str:
    """``repr(value)`` cut to a length fit for a one-line message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:36] + " ..."


def _is_int(value) -> bool:
    return type(value) is int  # not bool, which is an int too


def _keys(obj: dict, required: tuple, optional: tuple, where: str) -> str | None:
    """What is wrong with ``obj``'s keys (a missing or an unknown one), or None."""
    missing = [k for k in required if k not in obj]
    if missing:
        return f"missing {where}{missing[0]!r}"
    unknown = [k for k in obj if k not in required and k not in optional]
    if unknown:
        return f"unexpected key {where}{_short(unknown[0])}"
    return None


def parameter_count(nin: int, sizes: list[int]) -> int:
    """How many weights and biases ``MLP(nin, sizes)`` has."""
    return sum(a * b + b for a, b in zip([nin, *sizes], sizes))


def model_from_dict(doc, source: str = "model") -> Checkpoint:
    """Rebuild a model from :func:`model_to_dict`'s output, checking every part of it (exactly
    the keys and types the format has, sizes within :data:`MAX_LAYERS` and
    :data:`MAX_PARAMETERS`, one finite number per parameter) before building anything."""
    def fail(what: str) -> ModelFileError:
        return ModelFileError(f"{source}: {what}")

    if not isinstance(doc, dict):
        raise fail(f"expected a JSON object, got {type(doc).__name__}")
    if doc.get("format") != FORMAT:
        raise fail(f"not a tinygrad_edu model file (format is {_short(doc.get('format'))}, expected {FORMAT!r})")
    version = doc.get("version")
    if not (_is_int(version) and version == VERSION):
        raise fail(f"format version {_short(version)} is not supported (this version reads {VERSION})")
    problem = _keys(doc, _TOP_KEYS, _OPTIONAL_TOP_KEYS, "")
    if problem:
        raise fail(problem.replace("missing 'architecture'", "missing the 'architecture' object")
                   .replace("missing 'parameters'", "missing the 'parameters' object"))
    arch = doc["architecture"]
    if not isinstance(arch, dict):
        raise fail("missing the 'architecture' object")
    problem = _keys(arch, _ARCH_KEYS, (), "architecture.")
    if problem:
        raise fail(problem)
    nin, sizes = arch["nin"], arch["sizes"]
    if not (_is_int(nin) and nin >= 1):
        raise fail(f"architecture.nin must be a positive integer, got {_short(nin)}")
    if not (isinstance(sizes, list) and sizes and all(_is_int(v) and v >= 1 for v in sizes[:MAX_LAYERS + 1])):
        raise fail(f"architecture.sizes must be a non-empty list of positive integers, got {_short(sizes)}")
    if len(sizes) > MAX_LAYERS:
        raise fail(f"architecture.sizes has {len(sizes)} layers; a model file may have at most {MAX_LAYERS}")
    for key in ("activation", "output_activation"):
        if not isinstance(arch[key], str) or arch[key] not in ACTIVATIONS:
            raise fail(f"architecture.{key} must be one of {', '.join(ACTIVATIONS)}, got {_short(arch[key])}")
    count = parameter_count(nin, sizes)
    shape = f"{nin}-{'-'.join(map(str, sizes))}"
    if count > MAX_PARAMETERS:
        shape = shape if len(shape) <= 40 else shape[:36] + " ..."
        raise fail(f"the architecture {shape} has {count:,} parameters; a model file may have at most "
                   f"{MAX_PARAMETERS:,}")
    params = doc["parameters"]
    if not isinstance(params, dict):
        raise fail("missing the 'parameters' object")
    for name, value in params.items():
        if type(value) not in (int, float) or not math.isfinite(value):
            raise fail(f"parameter {_short(name)} must be a finite number, got {_short(value)}")
    metadata = doc.get("metadata", {})
    if not isinstance(metadata, dict):
        raise fail("'metadata' must be an object")
    # Only now is the model built: its size is known to be within MAX_PARAMETERS.
    model = MLP(nin, sizes, arch["activation"], arch["output_activation"], seed=0)
    expected = model.state_dict()
    if len(params) != count or params.keys() != expected.keys():
        missing = [k for k in expected if k not in params]
        extra = [k for k in params if k not in expected]
        detail = f"first missing {missing[0]!r}" if missing else f"unexpected {_short(extra[0])}"
        raise fail(f"has {len(params)} parameters but {shape} needs {count} ({detail})")
    model.load_state_dict(params)
    return Checkpoint(model, metadata)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a finite number")


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_DIGITS:
        raise ValueError(f"an integer of {digits} digits is not part of a model file (at most {MAX_DIGITS})")
    return int(text)


def _unique_keys(pairs: list) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        seen: set = set()
        for k in keys:
            if k in seen:
                raise ValueError(f"the key {_short(k)} appears twice in one object")
            seen.add(k)
    return dict(pairs)


def _read_bounded(path: Path) -> bytes:
    """At most MAX_FILE_BYTES of a regular file (a directory, a device such as /dev/zero, or a
    larger file is refused without being read)."""
    with open(path, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        if stat.S_ISDIR(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "a device"
            raise ModelFileError(f"{path}: is {kind}, not a model file")
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ModelFileError(f"{path}: larger than {MAX_FILE_BYTES // 2**20} MiB; a model file of at most "
                             f"{MAX_PARAMETERS:,} parameters is smaller")
    return data


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a model file written by :func:`save_model`: the model and its metadata."""
    path = Path(path)
    try:
        text = _read_bounded(path).decode("utf-8")
    except UnicodeDecodeError:
        raise ModelFileError(f"{path}: not a text file; expected a model.json written by save_model "
                             "(or 'tinygrad-edu circle')") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path}: is a directory, not a model file") from None
    try:
        doc = json.loads(text, parse_constant=_reject_constant, parse_int=_bounded_int,
                         object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as err:
        hint = "" if text.rstrip().endswith("}") else " (the file looks truncated)"
        raise ModelFileError(f"{path}: not valid JSON at line {err.lineno}, column {err.colno}: {err.msg}{hint}") \
            from None
    except RecursionError:
        raise ModelFileError(f"{path}: nested too deeply to be a model file") from None
    except ValueError as err:
        raise ModelFileError(f"{path}: {err}") from None
    return model_from_dict(doc, str(path))


def load_model(path: str | os.PathLike) -> MLP:
    """The model in a file written by :func:`save_model`."""
    return load_checkpoint(path).model


__all__ = ["save_model", "load_model", "load_checkpoint", "Checkpoint", "model_to_dict", "model_from_dict",
           "ModelFileError", "FORMAT", "VERSION", "MAX_FILE_BYTES", "MAX_PARAMETERS", "MAX_LAYERS", "parameter_count"]
