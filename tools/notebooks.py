"""Build the tutorial's Jupyter notebooks from the chapters in ``docs/``: one source, two forms.

``make notebooks`` (or ``python tools/notebooks.py``) writes one ``.ipynb`` per chapter into
``tinygrad_edu/tutorial/``, where the package ships them and ``tinygrad-edu tutorial`` copies them
for a learner; ``tests/test_notebooks.py`` fails when that copy is out of date with ``docs/``.

A chapter is a page of the ``mkdocs.yml`` nav with runnable Python, except the home page and the
API reference (``NOT_CHAPTERS``); a new chapter becomes a notebook when it joins the nav. Each
```python block becomes a code cell, in order; the prose between them becomes Markdown cells.
Two conventions of the Markdown (both invisible on the site and on GitHub):

- ``<!-- skip-test -->`` right before a block (one that needs a terminal or a long run): the
  notebook shows the code as Markdown, like the test suite it does not run it.
- ``<!-- notebook`` ... ``-->`` right after a paragraph of pictures (images, a table of them, or
  an ``<iframe>`` of an explorer page, which a notebook cannot show, with the links that open that
  page on its own): in the notebook, that code replaces the pictures and draws them live. A line
  ``from chNN_name import f, g`` in it stands for the functions ``f`` and ``g`` of
  ``examples/chNN_name.py``, the code that drew the pictures in ``docs/images/``: their source is
  copied into the cell (with the imports, constants and helpers they use), so the code is
  written once and the notebook needs only the installed package.

Pictures a chapter keeps (a long run made them) are attached to their Markdown cell, so each
notebook is one self-contained file. Links to other chapters point to their notebooks, links to
other local pages and files to the repository; a link to a local HTML page (an explorer) is
refused outside a paragraph of pictures, since the repository shows such a file as its source.

The conversion is our own ~200 lines rather than Jupytext's Markdown format: Jupytext turns
every fenced block with a language into a code cell (```bash into a ``%%bash`` cell that would
run a minutes-long command, ```text samples of output likewise) and knows neither convention
above, so it would need more pre- and post-processing than splitting at the ```python fences,
which the docs test (``tests/test_docs.py``) does with :func:`segments` too.
"""

from __future__ import annotations

import ast
import base64
import json
import re
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS, EXAMPLES = ROOT / "docs", ROOT / "examples"
OUT = ROOT / "tinygrad_edu" / "tutorial"
sys.path.insert(0, str(ROOT))

from tinygrad_edu.tutorial import cells_fingerprint  # noqa: E402  (the one definition of "edited")

SKIP_MARKER = "<!-- skip-test -->"
NOTEBOOK_OPEN, NOTEBOOK_CLOSE = "<!-- notebook", "-->"
NOT_CHAPTERS = {"index.md": "the home page", "api.md": "the API reference, generated from docstrings"}
MEDIA = {".png": "image/png", ".gif": "image/gif", ".svg": "image/svg+xml", ".jpg": "image/jpeg"}
DEVELOPER_EXTRAS = {"dev", "bench", "docs"}  # not offered to a learner for a chapter's imports
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<target>[^)\s]+)\)")
_FRAME = re.compile(r'<iframe\b[^>]*?\bsrc="(?P<target>[^"]+)"[^>]*>(?:\s*</iframe>)?')  # an embedded page (an explorer)
_LINK = re.compile(r"(?<!!)\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)\)")
_PAGE_LINK = re.compile(r"^\s*\[[^\]]*\]\((?P<target>[^)\s:]+\.html)\)[.)]?\s*$")  # a line that opens a local page
_NAV_ENTRY = re.compile(r'^(?P<indent>\s*)- (?:"(?P<quoted>[^"]*)"|(?P<plain>[^:"]+)):\s*(?P<page>\S+\.md)?\s*$')


@dataclass
class Segment:
    """A piece of a chapter: ``markdown`` prose, a ```python ``code`` block (``skipped`` when
    marked), or a ``notebook``-only cell that replaces the ``pictures`` before it."""

    kind: str
    text: str
    line: int  # 1-based line of the first line of text
    skipped: bool = False
    pictures: list[str] = field(default_factory=list)


def segments(text: str) -> list[Segment]:
    """Split a chapter's Markdown into prose, ```python blocks and notebook-only cells, in order."""
    lines = text.splitlines()
    out: list[Segment] = []
    prose: list[str] = []
    prose_start = 1

    def flush(next_line: int) -> None:
        nonlocal prose, prose_start
        if "".join(prose).strip():
            out.append(Segment("markdown", "\n".join(prose).strip("\n"), prose_start))
        prose, prose_start = [], next_line

    i = 0
    while i < len(lines):
        line = lines[i]
        match = _FENCE.match(line)
        if line.strip() == NOTEBOOK_OPEN:
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == NOTEBOOK_CLOSE), None)
            if end is None:
                raise ValueError(f"line {i + 1}: '{NOTEBOOK_OPEN}' is never closed by a line '{NOTEBOOK_CLOSE}'")
            pictures = _take_picture_paragraph(prose, i + 1)
            flush(end + 2)
            out.append(Segment("notebook", "\n".join(lines[i + 1:end]), i + 2, pictures=pictures))
            i = end + 1
            continue
        if not match:
            prose.append(line)
            i += 1
            continue
        fence, indent = match["fence"], len(match["indent"])
        lang = match["info"].strip().split(" ")[0].lstrip("{.").rstrip("}")
        start = i + 1
        j = start
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        before = next((p.strip() for p in reversed(prose) if p.strip()), "")
        if lang in ("python", "py") and before != SKIP_MARKER:
            flush(start)
            code = "\n".join(line[indent:] for line in lines[start:j])
            out.append(Segment("code", code, start + 1))
            prose_start = j + 2
        else:
            if lang in ("python", "py"):  # marked: shown, not run
                out.append(Segment("code", "\n".join(line[indent:] for line in lines[start:j]), start + 1, skipped=True))
            prose.extend(lines[i:j + 1])
        i = j + 1
    flush(len(lines) + 1)
    return out


def _take_picture_paragraph(prose: list[str], line: int) -> list[str]:
    """Remove the paragraph of pictures at the end of ``prose`` (the lines since the last blank
    one, each holding an image, an ``<iframe>``, a table row or a link to a local HTML page);
    return the pictures' targets."""
    while prose and not prose[-1].strip():
        prose.pop()
    start = len(prose)
    while start > 0 and prose[start - 1].strip():
        start -= 1
    paragraph = prose[start:]
    pictures = [m["target"] for row in paragraph for pattern in (_IMAGE, _FRAME) for m in pattern.finditer(row)]
    if not pictures or any(not (_IMAGE.search(row) or _FRAME.search(row) or _PAGE_LINK.match(row)
                                or row.lstrip().startswith("|")) for row in paragraph):
        raise ValueError(f"line {line}: '{NOTEBOOK_OPEN}' must follow a paragraph of pictures "
                         "(images, embedded pages or a table of them)")
    del prose[start:]
    return pictures


# --- the chapters ---------------------------------------------------------------------------------


@dataclass
class Chapter:
    page: str  # path below docs/, e.g. "01-derivatives.md"
    name: str  # the notebook's file name, e.g. "01-derivatives.ipynb"


def chapters(root: Path = ROOT) -> list[Chapter]:
    """The chapters in nav order: nav pages with runnable Python, except ``NOT_CHAPTERS``.

    A notebook is named after its page, numbered by its nav entry or section (``"7. Property-testing"``
    makes ``testing.md`` ``07-testing.ipynb``; a number in the page's name gives way to the nav's), so
    the notebooks sort in reading order whatever the pages are called."""
    config = (root / "mkdocs.yml").read_text(encoding="utf-8")
    nav = re.search(r"^nav:[ \t]*\n", config, flags=re.MULTILINE)
    if nav is None:
        raise ValueError("mkdocs.yml has no nav: the chapters are the pages it lists")
    nav_lines = config[nav.end():].splitlines()
    found: list[Chapter] = []
    titles: list[tuple[int, str]] = []  # the enclosing sections, by indent
    for line in nav_lines:
        match = _NAV_ENTRY.match(line)
        if not match:
            if line.strip() and not line.startswith((" ", "-")):
                break  # the next top-level key ends the nav
            continue
        indent, title, page = len(match["indent"]), (match["quoted"] or match["plain"]).strip(), match["page"]
        titles = [(i, t) for i, t in titles if i < indent] + [(indent, title)]
        if page is None or page in NOT_CHAPTERS:
            continue
        source = (root / "docs" / page).read_text(encoding="utf-8")
        if not any(s.kind == "code" and not s.skipped for s in segments(source)):
            continue
        stem = Path(page).stem
        number = next((int(m[1]) for _, t in reversed(titles) if (m := re.match(r"(\d+)\.", t))), None)
        if number is not None:
            stem = f"{number:02d}-{re.sub(r'^[0-9]+-', '', stem)}"
        found.append(Chapter(page, f"{stem}.ipynb"))
    names = [c.name for c in found]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"two chapters would be the same notebook ({', '.join(twice)}): rename a page or renumber the nav")
    return found


# --- code from examples/ ------------------------------------------------------------------------


def expand_example_imports(code: str, examples: Path = EXAMPLES) -> str:
    """Replace each ``from chNN_name import f, g`` line by the source of ``f`` and ``g`` in
    ``examples/chNN_name.py``, with the imports, constants and functions they use."""
    out = []
    for line in code.splitlines():
        match = re.fullmatch(r"from (ch\d\d_\w+) import ([\w, ]+)", line.strip())
        if not match:
            out.append(line)
            continue
        path = examples / f"{match[1]}.py"
        if not path.is_file():
            raise ValueError(f"{line.strip()!r}: there is no examples/{path.name}")
        out.append(_example_source(path, [n.strip() for n in match[2].split(",")]))
    return "\n".join(out)


def _example_source(path: Path, names: list[str]) -> str:
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    defs: dict[str, ast.stmt] = {}
    imports: dict[str, str] = {}  # bound name -> import statement
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defs[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        defs[name.id] = node
        elif isinstance(node, ast.Import):
            for a in node.names:
                imports[a.asname or a.name.split(".")[0]] = f"import {a.name}" + (f" as {a.asname}" if a.asname else "")
        elif isinstance(node, ast.ImportFrom) and node.module not in ("__future__", "_common"):
            for a in node.names:
                imports[a.asname or a.name] = f"from {node.module} import {a.name}" + (f" as {a.asname}" if a.asname else "")
    missing = [n for n in names if n not in defs]
    if missing:
        raise ValueError(f"examples/{path.name} defines no {', '.join(missing)}")

    needed: set[ast.stmt] = set()
    used_imports: set[str] = set()
    todo = [defs[n] for n in names]
    while todo:
        node = todo.pop()
        if node in needed:
            continue
        needed.add(node)
        for name in {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}:
            if name in defs and defs[name] is not node:
                todo.append(defs[name])
            elif name in imports:
                used_imports.add(name)
    plain = [imports[n] for n in imports if n in used_imports and imports[n].startswith("import ")]
    grouped: dict[str, list[str]] = {}
    for n in imports:
        if n in used_imports and imports[n].startswith("from "):
            module, _, what = imports[n].partition(" import ")
            grouped.setdefault(module, []).append(what)
    header = plain + [f"{module} import {', '.join(what)}" for module, what in grouped.items()]
    body = [ast.get_source_segment(source, n, padded=False) for n in tree.body if n in needed]
    comment = f"# From examples/{path.name}, the code that drew this picture for the docs:"
    return "\n".join([comment, *header, "", "\n\n".join(body), ""])


def extra_requirements(code: list[str]) -> dict[str, str]:
    """The modules this code imports that the package does not install, each with what ``pip
    install`` needs for it: an extra
    of tinygrad_edu that provides one (``'tinygrad_edu[testing]'``), else the distribution's name
    (extras for developers only, like ``dev``, are not offered to a learner)."""
    modules = sorted({alias.name.split(".")[0] for text in code for node in ast.walk(ast.parse(text))
                      if isinstance(node, ast.Import) for alias in node.names}
                     | {node.module.split(".")[0] for text in code for node in ast.walk(ast.parse(text))
                        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0})
    runtime: set[str] = set()
    extras: dict[str, list[str]] = {}
    for requirement in metadata.requires("tinygrad_edu") or []:
        name = _normalize(re.match(r"[A-Za-z0-9._-]+", requirement)[0])
        extra = re.search(r"extra\s*==\s*[\"'](\w+)[\"']", requirement)
        if extra is None:
            runtime.add(name)
        elif extra[1] not in DEVELOPER_EXTRAS:
            extras.setdefault(name, []).append(extra[1])
    distributions = metadata.packages_distributions()
    needs: dict[str, str] = {}
    for module in modules:
        if module in sys.stdlib_module_names or module == "tinygrad_edu":
            continue
        dists = [_normalize(d) for d in distributions.get(module, [module])]
        if any(d in runtime for d in dists):
            continue
        extra = next((extras[d][0] for d in dists if d in extras), None)
        needs[module] = f"'tinygrad_edu[{extra}]'" if extra else distributions.get(module, [module])[0]
    return needs


def _normalize(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


# --- the notebook ---------------------------------------------------------------------------------


def build(chapter: Chapter, root: Path = ROOT, repo_url: str | None = None) -> dict:
    """The notebook of one chapter, as a JSON-ready dict (nbformat 4.5)."""
    docs = root / "docs"
    page = docs / chapter.page
    names = {c.page: c.name for c in chapters(root)}
    cells: list[dict] = []

    def markdown(text: str) -> None:
        attachments = {}

        def attach(match: re.Match) -> str:
            target = match["target"]
            if "://" in target:
                return match[0]
            path = (page.parent / target).resolve()
            if path.suffix.lower() not in MEDIA or not path.is_file():
                raise ValueError(f"{chapter.page}: picture {target} is missing or of an unknown kind")
            attachments[path.name] = {MEDIA[path.suffix.lower()]: base64.b64encode(path.read_bytes()).decode("ascii")}
            return f"![{match['alt']}](attachment:{path.name})"

        def relink(match: re.Match) -> str:
            target = match["target"]
            page_part, _, anchor = target.partition("#")
            if "://" in target or target.startswith(("#", "attachment:", "mailto:")):
                return match[0]
            if page_part in names:
                new = names[page_part] + (f"#{anchor}" if anchor else "")
            elif page_part.lower().endswith(".html"):
                raise ValueError(f"{chapter.page}: a notebook cannot open the page {target} (the repository shows an HTML "
                                 f"file as its source); put the link right after its <iframe>, in the paragraph that "
                                 f"a '{NOTEBOOK_OPEN}' block replaces with the live explorer")
            else:  # another page or file of the docs: the notebook folder has no copy
                new = f"{repo_url}/blob/main/docs/{target}" if repo_url else target
            return f"[{match['text']}]({new})"

        for frame in _FRAME.finditer(text):
            if "://" not in frame["target"]:
                raise ValueError(f"{chapter.page}: <iframe src=\"{frame['target']}\"> cannot show in a notebook; follow "
                                 f"its paragraph with a '{NOTEBOOK_OPEN}' block that shows it live (see tools/notebooks.py)")
        text = _LINK.sub(relink, _IMAGE.sub(attach, text))
        cell = {"cell_type": "markdown", "id": f"{len(cells)}", "metadata": {}, "source": text}
        if attachments:
            cell["attachments"] = attachments
        cells.append(cell)

    def code(text: str) -> None:
        cells.append({"cell_type": "code", "execution_count": None, "id": f"{len(cells)}",
                      "metadata": {}, "outputs": [], "source": text})

    parts = segments(page.read_text(encoding="utf-8"))
    needs = extra_requirements([seg.text for seg in parts if seg.kind == "code" and not seg.skipped])
    markdown(f"*This notebook is chapter `docs/{chapter.page}` of the tinygrad_edu tutorial, generated from "
             "the same Markdown as the docs. Run the cells from top to bottom (Shift+Enter), change a number "
             "and run again.*" + (f" *This chapter also imports {', '.join(needs)}: `pip install {' '.join(sorted(set(needs.values())))}`.*"
                                  if needs else ""))
    for seg in parts:
        if seg.kind == "markdown":
            markdown(seg.text)
        elif seg.kind == "code" and not seg.skipped:
            code(seg.text)
        elif seg.kind == "notebook":
            code(expand_example_imports(seg.text, root / "examples"))
        # a skipped code block stays in the prose (segments() kept it there)
    for i, cell in enumerate(cells):
        cell["id"] = f"{Path(chapter.name).stem}-{i}"
    nb = {
        "cells": cells,
        "metadata": {"kernelspec": KERNELSPEC, "language_info": {"name": "python"},
                     "tinygrad_edu": {"chapter": f"docs/{chapter.page}"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    nb["metadata"]["tinygrad_edu"]["cells"] = cells_fingerprint(nb)
    return nb


def render(nb: dict) -> str:
    """The notebook's file text, as Jupyter itself writes it (so saving unchanged changes nothing)."""
    return json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def repo_url(root: Path = ROOT) -> str | None:
    match = re.search(r"^repo_url:\s*(\S+)", (root / "mkdocs.yml").read_text(encoding="utf-8"), re.MULTILINE)
    return match[1].rstrip("/") if match else None


def build_all(root: Path = ROOT) -> dict[str, str]:
    """Every chapter's notebook file text, by file name."""
    url = repo_url(root)
    return {c.name: render(build(c, root, url)) for c in chapters(root)}


def main() -> None:
    notebooks = build_all()
    OUT.mkdir(exist_ok=True)
    for stale in set(p.name for p in OUT.glob("*.ipynb")) - set(notebooks):
        (OUT / stale).unlink()
        print(f"removed {OUT.relative_to(ROOT) / stale}")
    for name, text in notebooks.items():
        path = OUT / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    print(f"{len(notebooks)} notebooks in {OUT.relative_to(ROOT)}/ are up to date with docs/")


if __name__ == "__main__":
    main()
