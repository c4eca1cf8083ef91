"""Every ``examples/chNN_*.py`` runs in ``--quick`` mode and writes its chapter's figures.

A script for chapter NN writes files named ``chNN-*`` into ``--out``; the figures committed in
``docs/images/`` are its full-mode outputs, so the two sets of file names must agree.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("ch[0-9][0-9]_*.py"))
IMAGES = ROOT / "docs" / "images"

# What a well-formed file of each kind starts with.
MAGIC = {".png": (b"\x89PNG\r\n\x1a\n",), ".gif": (b"GIF87a", b"GIF89a"), ".svg": (b"<?xml", b"<svg"),
         ".html": (b"<!DOCTYPE html>",)}


def test_there_is_an_example_per_chapter():
    assert EXAMPLES, "examples/ has no chNN_*.py scripts"


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs_quick_and_writes_its_figures(script: Path, tmp_path, request):
    source = script.read_text(encoding="utf-8")
    if "animate_backward" in source:  # the GIF is rendered by the system dot
        request.getfixturevalue("require_dot")
    elif "save_graph" in source:
        request.getfixturevalue("require_svg_layout")
    out = tmp_path / "out"
    env = {**os.environ, "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, str(script), "--quick", "--out", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, f"{script.name} failed:\n{result.stdout}\n{result.stderr}"

    prefix = script.name[:4] + "-"  # "ch01-"
    written = sorted(p.name for p in out.iterdir())
    assert written, f"{script.name} wrote no files"
    for name in written:
        assert name.startswith(prefix), f"{script.name} wrote {name}, not named {prefix}*"
        data = (out / name).read_bytes()
        magic = MAGIC.get(Path(name).suffix)
        assert magic is not None, f"{name}: not a .png, .gif or .svg figure or an .html explorer"
        assert data.lstrip().startswith(magic), f"{name} does not start like a {Path(name).suffix} file"
    assert sorted(tmp_path.iterdir()) == [out], "the example wrote outside --out"

    committed = sorted(p.name for p in IMAGES.glob(prefix + "*"))
    assert written == committed, "docs/images/ must hold exactly this example's figures (rerun it without --quick)"
