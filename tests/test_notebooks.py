"""The tutorial notebooks (``tinygrad_edu/tutorial/``, built by ``tools/notebooks.py``): up to date
with ``docs/``, faithful to the chapters, and every one runs top to bottom on a fresh Jupyter
kernel with its pictures and graphs displayed.

The chapters' code blocks are found here by ``tests/test_docs.py``'s own fence parser, not by the
generator's, so a generator that drops, reorders or invents code is caught.
"""

from __future__ import annotations

import base64
import json
import re
import sys
from pathlib import Path

import pytest

from test_docs import NEEDS_DOT, python_blocks

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "tinygrad_edu" / "tutorial"
sys.path.insert(0, str(ROOT / "tools"))

import notebooks as generator  # noqa: E402  (tools/notebooks.py)

NOTEBOOK_BLOCK = re.compile(r"^<!-- notebook\n(?P<code>.*?)\n-->$", re.MULTILINE | re.DOTALL)
IMAGE = re.compile(r"!\[[^\]]*\]\((?P<target>[^)\s]+)\)")
FRAME = re.compile(r'<iframe [^>]*src="(?P<target>[^"]+)"')  # an embedded explorer page
GRAPH_DISPLAYS = {"image/svg+xml", "text/html"}  # a graph: the SVG drawing or the HTML explorer
FIGURE_DISPLAYS = {"image/png"}  # a matplotlib figure, inline
GRAPHS = (".svg", ".gif", ".html")  # pictures of graphs: drawings, animations and explorers


def shipped_notebooks() -> list[Path]:
    return sorted(SHIPPED.glob("*.ipynb"))


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def chapter_of(notebook: dict) -> Path:
    return ROOT / notebook["metadata"]["tinygrad_edu"]["chapter"]


def notebook_only_blocks(markdown: str) -> list[tuple[str, list[str]]]:
    """The ``<!-- notebook`` blocks of a chapter, each with the pictures of the paragraph before it."""
    blocks = []
    for match in NOTEBOOK_BLOCK.finditer(markdown):
        before = markdown[: match.start()].rstrip("\n").split("\n\n")[-1]
        blocks.append((match["code"], IMAGE.findall(before) + FRAME.findall(before)))
    return blocks


def test_shipped_notebooks_are_up_to_date_with_docs():
    built = generator.build_all()
    shipped = {p.name: p.read_text(encoding="utf-8") for p in shipped_notebooks()}
    stale = sorted(name for name in built.keys() | shipped.keys() if built.get(name) != shipped.get(name))
    assert stale == [], f"tinygrad_edu/tutorial/ is out of date with docs/ ({', '.join(stale)}): run `make notebooks`"


def test_every_chapter_with_code_is_a_notebook():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = re.findall(r"([\w./-]+\.md)\s*$", nav, flags=re.MULTILINE)
    with_code = [p for p in pages if p not in generator.NOT_CHAPTERS
                 and any(not skipped for _, _, skipped in python_blocks((ROOT / "docs" / p).read_text(encoding="utf-8")))]
    chapters = [load(p)["metadata"]["tinygrad_edu"]["chapter"] for p in shipped_notebooks()]
    assert chapters == [f"docs/{p}" for p in with_code]  # and in the nav's order
    assert len(with_code) >= 8


@pytest.mark.parametrize("path", shipped_notebooks(), ids=lambda p: p.name)
def test_notebook_has_the_chapters_code_in_order_and_its_prose(path: Path):
    notebook = load(path)
    markdown = chapter_of(notebook).read_text(encoding="utf-8")
    extra = [code for code, _ in notebook_only_blocks(markdown)]
    code_cells = [c["source"] for c in notebook["cells"] if c["cell_type"] == "code"]
    # the cells the notebook adds end with the code of the chapter's <!-- notebook blocks
    chapter_code = [c for c in code_cells if not any(c.endswith(x.splitlines()[-1]) for x in extra)]
    assert chapter_code == [code for _, code, skipped in python_blocks(markdown) if not skipped]
    assert len(code_cells) == len(chapter_code) + len(extra)

    def words(text: str) -> list[str]:  # prose without link targets, pictures or comments
        text = re.sub(r"<!--.*?-->", " ", re.sub(r"!\[[^\]]*\]\([^)]*\)", " ", text), flags=re.DOTALL)
        return re.sub(r"\]\([^)]*\)", "]", text).split()

    paragraphs = re.sub(r"```python\n.*?```", " ", markdown, flags=re.DOTALL).split("\n\n")
    kept = [p for i, p in enumerate(paragraphs)  # drop each <!-- notebook block and the pictures it replaces
            if not p.startswith("<!-- notebook") and not paragraphs[min(i + 1, len(paragraphs) - 1)].startswith("<!-- notebook")]
    prose = words("\n\n".join(kept))
    cells = words(" ".join(c["source"] for c in notebook["cells"] if c["cell_type"] == "markdown"))
    assert [w for w in prose if w not in cells] == []
    assert "".join(cells).find("".join(prose[:40])) >= 0  # the opening in order, verbatim


@pytest.mark.parametrize("path", shipped_notebooks(), ids=lambda p: p.name)
def test_notebook_names_what_it_imports_beyond_the_package(path: Path):
    """A module that ``pip install tinygrad_edu`` does not bring (hypothesis, pytest) is named in
    the first cell with what to install, so "Run all" fails for no unexplained reason."""
    from importlib import metadata

    notebook = load(path)
    runtime = {re.match(r"[A-Za-z0-9._-]+", r)[0].lower().replace("_", "-")
               for r in metadata.requires("tinygrad_edu") or [] if "extra ==" not in r}
    provided = metadata.packages_distributions()
    imported = set()
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            imported |= set(re.findall(r"^\s*(?:from|import) ([A-Za-z_]\w*)", cell["source"], flags=re.MULTILINE))
    outside = sorted(m for m in imported - set(sys.stdlib_module_names) - {"tinygrad_edu"}
                     if not any(d.lower().replace("_", "-") in runtime for d in provided.get(m, [m])))
    header = notebook["cells"][0]["source"]
    assert [m for m in outside if f"imports {m}" not in header and f", {m}" not in header] == []
    if not outside:
        assert "also imports" not in header


@pytest.mark.parametrize("path", shipped_notebooks(), ids=lambda p: p.name)
def test_pictures_are_drawn_live_or_attached(path: Path):
    notebook = load(path)
    chapter = chapter_of(notebook)
    markdown = chapter.read_text(encoding="utf-8")
    live = {p for _, pictures in notebook_only_blocks(markdown) for p in pictures}
    attached = {}
    for cell in notebook["cells"]:
        for name, bundle in cell.get("attachments", {}).items():
            attached[name] = base64.b64decode(next(iter(bundle.values())))
    for target in FRAME.findall(markdown):
        assert "://" in target or target in live, f"the embedded page {target} is not shown live"
    for target in IMAGE.findall(markdown):
        picture = (chapter.parent / target).resolve()
        if target in live:
            assert picture.name not in attached, f"{target} is drawn live, so it need not be attached"
        else:
            assert attached.get(picture.name) == picture.read_bytes(), f"{target} is neither drawn live nor attached"
        text = " ".join(c["source"] for c in notebook["cells"] if c["cell_type"] == "markdown")
        assert target not in text  # no link a notebook folder cannot resolve


@pytest.mark.parametrize("path", shipped_notebooks(), ids=lambda p: p.name)
def test_notebook_runs_on_a_fresh_kernel_and_displays_its_pictures(path: Path, tmp_path, monkeypatch, request):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    blocks = notebook_only_blocks(chapter_of(notebook).read_text(encoding="utf-8"))
    if any(name in cell.source for cell in notebook.cells if cell.cell_type == "code" for name in NEEDS_DOT):
        request.getfixturevalue("require_dot")  # e.g. animate_backward: the GIF is rendered by the system dot
    monkeypatch.delenv("MPLBACKEND", raising=False)  # CI sets Agg; a notebook shows figures inline
    client = nbclient.NotebookClient(notebook, timeout=180, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as err:
        if "GraphvizNotFoundError" in str(err):  # no Graphviz at all (Python 3.10 without dot): skip (CI: fail)
            request.getfixturevalue("require_svg_layout")
        pytest.fail(f"{path.name} failed on a fresh kernel:\n{err}")

    if any(p.endswith(GRAPHS) for _, pictures in blocks for p in pictures):
        request.getfixturevalue("require_svg_layout")  # without any Graphviz a graph shows as text only
    for code, pictures in blocks:
        cell = next(c for c in notebook.cells if c.cell_type == "code" and c.source.endswith(code.splitlines()[-1]))
        shown = [set(o.get("data", {})) for o in cell.outputs if o.output_type in ("display_data", "execute_result")]
        for picture in pictures:
            wanted = GRAPH_DISPLAYS if picture.endswith(GRAPHS) else FIGURE_DISPLAYS
            assert any(kinds & wanted for kinds in shown), f"the cell drawing {picture} displayed {shown}"
        graphs = sum(1 for p in pictures if p.endswith(GRAPHS))
        assert sum(1 for kinds in shown if kinds & GRAPH_DISPLAYS) >= graphs, f"{pictures}: {shown}"
        figures = len(pictures) - graphs  # each shown once (not by pyplot and again as the cell's value)
        assert sum(1 for kinds in shown if kinds & FIGURE_DISPLAYS) == figures, f"{pictures}: {shown}"
        errors = [o for o in cell.outputs if o.output_type == "stream" and o.name == "stderr"]
        assert errors == [], f"the cell drawing {pictures} wrote to stderr: {errors}"


# --- the generator's conventions, on small chapters ------------------------------------------------


def test_segments_keep_order_skip_marked_blocks_and_replace_pictures():
    text = ("# T\n\nintro\n\n```python\nx = 1\n```\n\n<!-- skip-test -->\n```python\ninput()\n```\n\n"
            "```bash\nls\n```\n\n![a graph](images/g.svg)\n\n<!-- notebook\nx\n-->\n\nend\n")
    parts = generator.segments(text)
    assert [(p.kind, p.skipped) for p in parts] == [
        ("markdown", False), ("code", False), ("code", True), ("markdown", False), ("notebook", False), ("markdown", False)]
    assert parts[1].text == "x = 1" and parts[1].line == 6
    assert "input()" in parts[3].text and "```bash" in parts[3].text  # shown as prose, not run
    assert "![a graph]" not in parts[3].text and parts[4].pictures == ["images/g.svg"] and parts[4].text == "x"
    assert [(line, code) for line, code, skipped in python_blocks(text) if not skipped] == [(6, "x = 1")]


@pytest.mark.parametrize("text, message", [
    ("prose\n\n<!-- notebook\nx\n-->\n", "must follow a paragraph of pictures"),
    ("![a](images/a.png)\n\n<!-- notebook\nx\n", "never closed"),
])
def test_misplaced_notebook_blocks_are_refused(text, message):
    with pytest.raises(ValueError, match=message):
        generator.segments(text)


def test_example_functions_are_inlined_with_what_they_use(tmp_path):
    (tmp_path / "ch09_demo.py").write_text(
        "from __future__ import annotations\nimport math\nimport numpy as np\nfrom _common import save\n"
        "from tinygrad_edu import Value, grad\n\nSCALE, OFFSET = 2.0, 1.0\nUNUSED = 3\n\n"
        "def helper(x):\n    return math.sqrt(x) * SCALE\n\ndef plot(x):\n    return Value(helper(x) + OFFSET)\n\n"
        "def main():\n    save(plot(1.0))\n", encoding="utf-8")
    code = generator.expand_example_imports("from ch09_demo import plot\ny = plot(4.0)", tmp_path)
    namespace: dict = {}
    exec(code, namespace)
    assert namespace["y"].data == 5.0
    assert "UNUSED" not in code and "numpy" not in code and "_common" not in code and "def main" not in code
    assert "from tinygrad_edu import Value\n" in code  # only the names the functions use
    with pytest.raises(ValueError, match="defines no nothing"):
        generator.expand_example_imports("from ch09_demo import nothing", tmp_path)


def test_an_embedded_page_must_be_shown_live(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "mkdocs.yml").write_text("repo_url: https://example.org/r\nnav:\n  - \"1. One\": 01-one.md\n", encoding="utf-8")
    page = tmp_path / "docs" / "01-one.md"
    frame = '<iframe src="../images/x.html" title="x"></iframe>'
    page.write_text(f"# One\n\n```python\nx = 1\n```\n\n{frame}\n[its page](images/x.html)\n", encoding="utf-8")
    with pytest.raises(ValueError, match="cannot show in a notebook"):
        generator.build_all(tmp_path)
    # the page's own link goes with it: the notebook shows the explorer live instead of both
    page.write_text(f"# One\n\n```python\nx = 1\n```\n\n{frame}\n[its page](images/x.html)\n\n<!-- notebook\nx\n-->\n\n"
                    "After.\n", encoding="utf-8")
    notebook = json.loads(generator.build_all(tmp_path)["01-one.ipynb"])
    assert [c["source"] for c in notebook["cells"] if c["cell_type"] == "code"] == ["x = 1", "x"]
    assert not any("x.html" in c["source"] for c in notebook["cells"])
    # elsewhere, a link to a local HTML page is refused: the repository would show the page's source
    page.write_text(f"# One\n\n```python\nx = 1\n```\n\n{frame}\n\n<!-- notebook\nx\n-->\n\n[its page](images/x.html)\n",
                    encoding="utf-8")
    with pytest.raises(ValueError, match="cannot open the page images/x.html"):
        generator.build_all(tmp_path)


def test_notebooks_are_numbered_by_the_nav_and_never_share_a_name(tmp_path):
    (tmp_path / "docs").mkdir()
    for page in ("a.md", "02-b.md", "c.md"):
        (tmp_path / "docs" / page).write_text("# x\n\n```python\nx = 1\n```\n", encoding="utf-8")
    nav = 'nav:\n  - Home: a.md\n  - "1. B": 02-b.md\n  - "2. Section":\n      - "C": c.md\n'
    (tmp_path / "mkdocs.yml").write_text(nav, encoding="utf-8")
    assert [c.name for c in generator.chapters(tmp_path)] == ["a.ipynb", "01-b.ipynb", "02-c.ipynb"]
    (tmp_path / "docs" / "b.md").write_text("# x\n\n```python\nx = 1\n```\n", encoding="utf-8")
    (tmp_path / "mkdocs.yml").write_text('nav:\n  - "1. B": 02-b.md\n  - "1. Also B": b.md\n', encoding="utf-8")
    with pytest.raises(ValueError, match="01-b.ipynb"):
        generator.chapters(tmp_path)
