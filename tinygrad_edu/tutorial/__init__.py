"""The tutorial as Jupyter notebooks: the package ships one ``.ipynb`` per chapter of ``docs/``
(built from the same Markdown by ``make notebooks``), and :func:`write_notebooks` copies them into
a folder for a learner (``tinygrad-edu tutorial``) without ever overwriting their edits.

A notebook counts as *edited* when the types and sources of its cells differ both from the
notebook about to be written and from the fingerprint it carried when it was written
(``metadata.tinygrad_edu.cells``). Running cells changes only outputs, so a notebook that was just
run is not edited; an untouched notebook from an older version of the package is simply updated.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .._io import write_bytes


class EditedNotebooksError(Exception):
    """Some notebooks in the folder were changed by hand; ``names`` lists them."""

    def __init__(self, folder: Path, names: list[str]):
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        super().__init__(f"{len(names)} notebook{'s' if len(names) > 1 else ''} in {folder} "
                         f"{'were' if len(names) > 1 else 'was'} edited since written ({shown}); "
                         f"pass --force to overwrite {'them' if len(names) > 1 else 'it'}, or choose another --out folder")
        self.names = names


def cells_fingerprint(notebook: dict) -> str:
    """A hash of a notebook's cell types and sources: what a learner edits (not outputs, ids or metadata)."""
    cells = [(c.get("cell_type"), "".join(s) if isinstance(s := c.get("source", ""), list) else s)
             for c in notebook.get("cells", [])]
    return hashlib.sha256(json.dumps(cells, ensure_ascii=False).encode("utf-8")).hexdigest()


def shipped() -> dict[str, bytes]:
    """The notebooks the package ships, by file name, in reading order."""
    folder = resources.files(__name__)
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir(), key=lambda p: p.name) if p.name.endswith(".ipynb")}


def _state(path: Path, new_fingerprint: str) -> str:
    """``"new"``, ``"unchanged"`` (same cells; outputs kept), ``"outdated"`` (untouched since an
    older version wrote it) or ``"edited"``."""
    if not path.exists():
        return "new"
    try:
        old = json.loads(path.read_bytes())
        current = cells_fingerprint(old)
        recorded = old.get("metadata", {}).get("tinygrad_edu", {}).get("cells")
    except (ValueError, AttributeError, TypeError):  # not a notebook (any more): someone's file
        return "edited"
    if current == new_fingerprint:
        return "unchanged"
    return "outdated" if current == recorded else "edited"


@dataclass
class Written:
    """What :func:`write_notebooks` did, by file name."""

    folder: Path
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def write_notebooks(folder: str | os.PathLike, *, force: bool = False) -> Written:
    """Write the tutorial's notebooks into ``folder`` (created if missing).

    A notebook whose cells are already the same is left alone (with its outputs); one a learner
    edited is overwritten only with ``force``, otherwise :class:`EditedNotebooksError` is raised
    before anything is written. Each file is written atomically."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(20, "not a folder", str(folder))
    notebooks = shipped()
    fingerprints = {name: json.loads(data)["metadata"]["tinygrad_edu"]["cells"] for name, data in notebooks.items()}
    states = {name: _state(folder / name, fingerprints[name]) for name in notebooks}
    edited = [name for name, state in states.items() if state == "edited"]
    if edited and not force:
        raise EditedNotebooksError(folder, edited)
    folder.mkdir(parents=True, exist_ok=True)
    result = Written(folder)
    for name, data in notebooks.items():
        if states[name] == "unchanged":
            result.unchanged.append(name)
        else:
            write_bytes(folder / name, data)
            result.written.append(name)
    return result


__all__ = ["write_notebooks", "shipped", "cells_fingerprint", "EditedNotebooksError", "Written"]
