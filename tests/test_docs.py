"""Every ```python block in README.md and docs/*.md runs, so the docs cannot drift from the API.

Blocks of one file run in order in one shared namespace (a later block may use an earlier block's
names), in a temporary working directory (files the docs write land there). A block is skipped
only when the line right before its opening fence is ``<!-- skip-test -->``: keep that for blocks
that need a terminal or a long run.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

ROOT = Path(__file__).resolve().parent.parent
SKIP_MARKER = "<!-- skip-test -->"
NEEDS_DOT = ("animate_backward", ".render(")  # blocks that need the system Graphviz (GIF, raster formats)
NEEDS_LAYOUT = ("save_graph", "svg_from_dot", "_repr_mimebundle_", "explore(")  # blocks that lay out SVG (dot or in-process)
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


def python_blocks(text: str) -> list[tuple[int, str, bool]]:
    """The ```python blocks of a Markdown text as (first line number, code, skipped) triples."""
    blocks: list[tuple[int, str, bool]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, indent = match["fence"], len(match["indent"])
        lang = match["info"].strip().split(" ")[0].lstrip("{.").rstrip("}")
        previous = next((line.strip() for line in reversed(lines[:i]) if line.strip()), "")
        start = i + 1
        i = start
        while i < len(lines) and not lines[i].strip().startswith(fence):
            i += 1
        if lang in ("python", "py"):
            code = "\n".join(line[indent:] for line in lines[start:i])
            blocks.append((start + 1, code, previous == SKIP_MARKER))
        i += 1  # past the closing fence
    return blocks


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]


def files_with_code() -> list[Path]:
    return [p for p in markdown_files() if python_blocks(p.read_text(encoding="utf-8"))]


def test_block_extraction_finds_code_markers_and_line_numbers():
    text = "intro\n```python\nx = 1\n```\n<!-- skip-test -->\n\n```py\ninput()\n```\n```bash\nls\n```\n"
    assert python_blocks(text) == [(3, "x = 1", False), (8, "input()", True)]


@pytest.mark.parametrize("path", files_with_code(), ids=lambda p: str(p.relative_to(ROOT)))
def test_markdown_code_blocks_run(path: Path, tmp_path, monkeypatch, request):
    blocks = python_blocks(path.read_text(encoding="utf-8"))
    codes = [code for _, code, skipped in blocks if not skipped]
    if any(name in code for code in codes for name in NEEDS_DOT):
        request.getfixturevalue("require_dot")
    elif any(name in code for code in codes for name in NEEDS_LAYOUT):
        request.getfixturevalue("require_svg_layout")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs_{path.stem}"}
    try:
        for line, code, skipped in blocks:
            if skipped:
                continue
            try:
                exec(compile(code, f"{path.relative_to(ROOT)}:{line}", "exec"), namespace)
            except Exception as err:  # name the file and line of the failing block
                raise AssertionError(f"the code block at {path.relative_to(ROOT)}:{line} failed: {err!r}") from err
    finally:
        plt.close("all")


def test_every_docs_page_is_in_the_mkdocs_nav():
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = set(re.findall(r"([\w./-]+\.md)\s*$", config, flags=re.MULTILINE))
    pages = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").glob("**/*.md")}
    assert pages - nav == set(), "add these pages to the nav in mkdocs.yml"
    assert nav - pages == set(), "these nav entries have no page in docs/"


def test_images_referenced_by_the_docs_exist():
    missing = []
    for path in markdown_files():
        for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+)", path.read_text(encoding="utf-8")):
            if "://" not in target and not (path.parent / target).is_file():
                missing.append(f"{path.relative_to(ROOT)} -> {target}")
    assert missing == []

