"""Cross-references in the API reference: the docstrings use Sphinx roles (:func:`draw_graph`,
:class:`~tinygrad_edu.ops.Primitive`, ...), which MkDocs would show raw. Two pieces, both named in
mkdocs.yml:

- ``SphinxRoles``, a Griffe extension (mkdocstrings' ``extensions`` option), rewrites every role in
  the package's docstrings into an autorefs link, ``[`draw_graph`][tinygrad_edu.viz.graph.draw_graph]``,
  resolving the name the way Python would from where the docstring is (the object, its class, its
  module, the module's imports). Names outside the package (``math.exp``) and names the reference
  does not show (constants without a docstring) become plain code.
- ``on_post_page``, a MkDocs hook, fails the build when a built page still shows a raw role.
"""

from __future__ import annotations

import re

ROLE = re.compile(r":(?:py:)?(?P<role>mod|func|meth|class|data|attr|exc|obj|const):`(?P<target>[^`]+)`")
#: A role left in built HTML: Markdown turns its backticks into <code>.
RAW_ROLE_HTML = re.compile(r":(?:py:)?(?:mod|func|meth|class|data|attr|exc|obj|const):(?:<code>|`)[^<`]*")
PACKAGE = "tinygrad_edu"


def rewrite_roles(text: str, resolve) -> str:
    """``text`` with each Sphinx role replaced by an autorefs link (``resolve(name)`` gives the full
    path of a name, or ``None`` when it is not the package's: then the name becomes plain code).
    ``~a.b.c`` shows ``c``; ``title <a.b>`` shows ``title``; a trailing ``()`` is kept in the text only."""

    def replace(match: re.Match) -> str:
        target = match["target"].strip()
        title = None
        explicit = re.fullmatch(r"(?P<title>.+?)\s*<(?P<target>[^>]+)>", target)
        if explicit:
            title, target = explicit["title"], explicit["target"].strip()
        short = target.startswith("~")
        target = target.lstrip("~.")
        name = target[:-2] if target.endswith("()") else target
        text = title or (target.rsplit(".", 1)[-1] if short else target)
        path = resolve(name)
        return f"[`{text}`][{path}]" if path else f"`{text}`"

    return ROLE.sub(replace, text)


def raw_roles(html: str) -> list[str]:
    """The Sphinx roles still visible in a built page (each as it appears, e.g. ``:func:<code>fit``)."""
    return RAW_ROLE_HTML.findall(html)


def on_post_page(output: str, page, config) -> str:
    """MkDocs hook: a page that still shows a raw Sphinx role fails the build, naming the role."""
    left = raw_roles(output)
    if left:
        from mkdocs.exceptions import PluginError

        raise PluginError(f"{page.file.src_uri}: {len(left)} raw Sphinx role(s) left in the built page, first "
                          f"{left[0]!r}: the docs_roles extension did not convert it (see tools/docs_roles.py)")
    return output


try:
    import griffe
except ImportError:  # only the MkDocs hook is needed (e.g. when the tests import this file)
    griffe = None

DIRECTIVE = re.compile(r"^::: *(?P<ident>[\w.]+)[ \t]*\n(?P<options>(?:[ \t]+.*\n|[ \t]*\n)*)", re.MULTILINE)


def rendered_modules(markdown_texts) -> dict[str, bool]:
    """The modules the pages render with mkdocstrings (``::: module``): name -> whether their
    members are shown too (not with ``members: false``)."""
    found = {}
    for text in markdown_texts:
        for match in DIRECTIVE.finditer(text + "\n"):
            found[match["ident"]] = not re.search(r"^\s*members:\s*false\s*$", match["options"], re.MULTILINE)
    return found


if griffe is not None:
    from pathlib import Path

    class SphinxRoles(griffe.Extension):
        """Griffe extension: rewrite the Sphinx roles of every docstring of the package (see the module).
        ``docs_dir`` is where the pages are that say which modules the reference renders."""

        def __init__(self, docs_dir: str = "docs") -> None:
            super().__init__()
            self.docs_dir = Path(docs_dir)

        def on_package(self, *, pkg, loader, **kwargs) -> None:
            if pkg.name != PACKAGE:
                return
            collection = loader.modules_collection
            modules = rendered_modules(p.read_text(encoding="utf-8") for p in sorted(self.docs_dir.glob("**/*.md")))

            def anchor(path: str) -> str | None:
                """The anchor the reference has for the object named ``path`` (where it is defined, or
                where a rendered module exports it), or None when the reference does not show it."""
                try:
                    member = collection.get_member(path)
                    target = member.final_target if member.is_alias else member
                except (KeyError, ValueError, AttributeError, griffe.AliasResolutionError, griffe.CyclicAliasError):
                    return None
                if shown(target):
                    return target.path
                if member.is_alias and member.parent.path in modules and member.name in (member.parent.exports or ()):
                    return member.path  # rendered as a member of the module that exports it
                return None

            def shown(obj) -> bool:
                """Whether a rendered module shows ``obj``: mkdocstrings shows public objects with a
                docstring, inside shown parents."""
                if obj.is_module:
                    return obj.path in modules
                while not obj.is_module:
                    if obj.name.startswith("_") or not obj.docstring:
                        return False
                    obj = obj.parent
                return modules.get(obj.path, False)

            def visit(obj) -> None:
                if obj.docstring is not None:
                    obj.docstring.value = rewrite_roles(obj.docstring.value, lambda name: self._resolve(obj, name, anchor))
                for member in obj.members.values():
                    if not member.is_alias:
                        visit(member)

            visit(pkg)

        @staticmethod
        def _resolve(obj, name: str, anchor) -> str | None:
            first, _, rest = name.partition(".")
            candidates = [name] if name.startswith(PACKAGE + ".") or name == PACKAGE else []
            try:
                base = obj.resolve(first)
                candidates.append(f"{base}.{rest}" if rest else base)
            except griffe.NameResolutionError:
                pass
            for path in candidates:
                found = anchor(path) if path.split(".")[0] == PACKAGE else None
                if found:
                    return found
            return None
