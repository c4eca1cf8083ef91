"""tools/docs_roles.py: Sphinx roles in docstrings become cross-reference links, and the docs
build fails when a raw role is left on a page."""

import importlib.util
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("docs_roles", ROOT / "tools" / "docs_roles.py")
docs_roles = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(docs_roles)

KNOWN = {"fit": "tinygrad_edu.train.fit", "tinygrad_edu.ops": "tinygrad_edu.ops",
         "tinygrad_edu.ops.Primitive": "tinygrad_edu.ops.Primitive", "Value.backward": "tinygrad_edu.engine.Value.backward"}


@pytest.mark.parametrize("text, expected", [
    (":func:`fit`", "[`fit`][tinygrad_edu.train.fit]"),
    ("see :mod:`tinygrad_edu.ops`.", "see [`tinygrad_edu.ops`][tinygrad_edu.ops]."),
    (":class:`~tinygrad_edu.ops.Primitive`", "[`Primitive`][tinygrad_edu.ops.Primitive]"),
    (":meth:`Value.backward()`", "[`Value.backward()`][tinygrad_edu.engine.Value.backward]"),
    (":py:func:`the trainer <fit>`", "[`the trainer`][tinygrad_edu.train.fit]"),
    (":func:`math.exp` and :data:`UNKNOWN`", "`math.exp` and `UNKNOWN`"),  # not the package's: plain code
    ("a ratio 1:2, a key:value and `code`", "a ratio 1:2, a key:value and `code`"),
])
def test_roles_become_links_or_code(text, expected):
    assert docs_roles.rewrite_roles(text, KNOWN.get) == expected


@pytest.mark.parametrize("html, left", [
    ("<p>Calls :func:<code>fit</code> once.</p>", [":func:<code>fit"]),
    ("<p>:py:meth:`Value.backward`</p>", [":py:meth:`Value.backward"]),
    ('<p>Calls <a class="autorefs" href="#tinygrad_edu.train.fit"><code>fit</code></a>; 1:2; a:b</p>', []),
    ("<pre><code>x = {'func': 1}</code></pre>", []),
])
def test_raw_roles_are_found_in_built_html(html, left):
    assert docs_roles.raw_roles(html) == left


def test_a_page_with_a_raw_role_fails_the_build():
    exceptions = pytest.importorskip("mkdocs.exceptions")
    page = SimpleNamespace(file=SimpleNamespace(src_uri="api.md"))
    assert docs_roles.on_post_page("<p>clean</p>", page, None) == "<p>clean</p>"
    with pytest.raises(exceptions.PluginError, match=r"api.md: 1 raw Sphinx role.*:class:<code>Tape"):
        docs_roles.on_post_page("<p>see :class:<code>Tape</code></p>", page, None)


def test_every_role_in_the_package_docstrings_is_converted():
    griffe = pytest.importorskip("griffe")
    package = griffe.load("tinygrad_edu", search_paths=[str(ROOT)],
                          extensions=griffe.load_extensions(docs_roles.SphinxRoles(docs_dir=str(ROOT / "docs"))))
    links, left = [], []

    def visit(obj):
        if obj.docstring is not None:
            left.extend(docs_roles.ROLE.findall(obj.docstring.value))
            links.extend(re.findall(r"\]\[(tinygrad_edu[\w.]*)\]", obj.docstring.value))
        for member in obj.members.values():
            if not member.is_alias:
                visit(member)

    visit(package)
    assert left == []
    assert "tinygrad_edu.viz.graph.draw_graph" in links and "tinygrad_edu.ops" in links
    rendered = docs_roles.rendered_modules(p.read_text(encoding="utf-8") for p in (ROOT / "docs").glob("*.md"))
    for path in set(links):  # every link points at an object that exists, in a module the reference renders
        assert package.modules_collection.get_member(path) is not None, path
        assert any(path == m or path.startswith(m + ".") and members for m, members in rendered.items()), path
    assert not any(link.startswith("tinygrad_edu.batched.tracing") for link in links)  # a module not rendered


def test_rendered_modules_come_from_the_directives():
    pages = ["# API\n\n::: tinygrad_edu.engine\n\n::: tinygrad_edu.testing\n    options:\n      members: false\n\n"
             "text ::: not.a.directive\n::: tinygrad_edu.viz.graph"]
    assert docs_roles.rendered_modules(pages) == {"tinygrad_edu.engine": True, "tinygrad_edu.testing": False,
                                                  "tinygrad_edu.viz.graph": True}
