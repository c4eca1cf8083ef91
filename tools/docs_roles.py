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

if griffe is not None:

    class SphinxRoles(griffe.Extension):
        """Griffe extension: rewrite the Sphinx roles of every docstring of the package (see the module)."""

        def on_package(self, *, pkg, loader, **kwargs) -> None:
            if pkg.name != PACKAGE:
                return
            collection = loader.modules_collection

            def canonical(path: str) -> str | None:
                """Where the object named ``path`` is defined (an imported name points there), or None."""
                try:
                    member = collection.get_member(path)
                    target = member.final_target if member.is_alias else member
                except (KeyError, ValueError, AttributeError, griffe.AliasResolutionError, griffe.CyclicAliasError):
                    return None
                return target.path if shown(target) else None

            def shown(obj) -> bool:
                """Whether the reference page shows ``obj`` (so it has an anchor): mkdocstrings shows
                public objects with a docstring, inside shown parents."""
                while obj is not None:
                    if obj.name.startswith("_") and obj.parent is not None or not obj.docstring:
                        return False
                    obj = obj.parent
                return True

            def visit(obj) -> None:
                if obj.docstring is not None:
                    obj.docstring.value = rewrite_roles(obj.docstring.value, lambda name: self._resolve(obj, name, canonical))
                for member in obj.members.values():
                    if not member.is_alias:
                        visit(member)

            visit(pkg)

        @staticmethod
        def _resolve(obj, name: str, canonical) -> str | None:
            first, _, rest = name.partition(".")
            candidates = [name] if name.startswith(PACKAGE + ".") or name == PACKAGE else []
            try:
                base = obj.resolve(first)
                candidates.append(f"{base}.{rest}" if rest else base)
            except griffe.NameResolutionError:
                pass
            for path in candidates:
                found = canonical(path) if path.split(".")[0] == PACKAGE else None
                if found:
                    return found
            return None
