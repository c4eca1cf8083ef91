"""Smaller SVG from Graphviz, drawing the same picture: the explorer inlines every layout of a graph
in its page (11 for a 2-8-1 MLP's loss), and most of their bytes are Graphviz's repetition.

:func:`minify_svg` keeps the ``<svg>`` element alone and drops what draws nothing: the XML prolog,
the doctype, the ``<!-- node -->`` comments and the line breaks between tags. Graphviz also writes
the font of each label (``text-anchor``, ``font-family``, ``font-size``) on every ``<text>``; the
value most labels share moves to the ``<svg>`` element once, where the labels inherit it, and a
label with another value (the smaller operation signs, a module's caption) keeps its own, which
wins over the inherited one - just as it did before. (A CSS rule would not do: a stylesheet beats
presentation attributes, so it would override the labels that differ.) A property is moved only
when every label sets it and nothing else does, so no element inherits what it did not have.
Element names, ids, classes, titles, coordinates and the labels' text are left as they are.

:func:`single_quoted` is for SVG that travels inside a JSON string, as the explorer's layouts do:
there each ``"`` around an attribute value costs a backslash, and a ``'`` does not.
"""

from __future__ import annotations

import re
from collections import Counter

#: The label properties Graphviz writes on every ``<text>``, all inherited in SVG.
FONT_ATTRIBUTES = ("font-family", "font-size", "text-anchor")

_TAG = re.compile(r"<[^>]*>")
_ATTRIBUTE = re.compile(r'\s([\w:.-]+)="([^"]*)"')
_DOUBLE_QUOTED = re.compile(r"(\s[\w:.-]+)=\"([^\"']*)\"")
_BETWEEN_TAGS = re.compile(r">[ \t\r]*\n[ \t\r\n]*<")  # a line break between two tags draws nothing


def _is_text(tag: str) -> bool:
    return tag.startswith(("<text ", "<text>"))


def _shared_fonts(tags: list[str]) -> dict[str, str]:
    """Each font attribute set on every ``<text>`` and on nothing else, with its most common value."""
    texts = [dict(_ATTRIBUTE.findall(t)) for t in tags if _is_text(t)]
    others = [dict(_ATTRIBUTE.findall(t)) for t in tags if not _is_text(t)]
    shared = {}
    for name in FONT_ATTRIBUTES:
        if not texts or any(name not in t for t in texts) or any(name in t for t in others):
            continue
        shared[name] = Counter(t[name] for t in texts).most_common(1)[0][0]
    return shared


def minify_svg(svg: str) -> str:
    """``svg`` (Graphviz's SVG document) as a smaller ``<svg>`` element that draws the same: no
    prolog, doctype, comments or line breaks between tags, and the labels' common font set once on
    the ``<svg>`` element instead of on every ``<text>``."""
    start = svg.find("<svg")
    if start < 0:
        raise ValueError("minify_svg needs an SVG document: no <svg> element found")
    svg = re.sub(r"<!--.*?-->", "", svg[start:], flags=re.S)
    svg = _BETWEEN_TAGS.sub("><", svg)
    tags = _TAG.findall(svg)
    shared = _shared_fonts(tags)

    def tag(m: re.Match) -> str:
        t = m.group().replace("\n", " ")  # a line break inside a tag is a space
        if _is_text(t):
            for name, value in shared.items():
                t = t.replace(f' {name}="{value}"', "", 1)
        elif t.startswith("<svg") and shared:
            inherited = "".join(f' {name}="{value}"' for name, value in shared.items())
            t = t[:4] + inherited + t[4:]
        return t

    return _TAG.sub(tag, svg).rstrip()


def single_quoted(svg: str) -> str:
    """``svg`` with its attribute values in single quotes (the same XML), but a value holding a
    ``'``, which keeps its double quotes."""
    return _TAG.sub(lambda m: _DOUBLE_QUOTED.sub(r"\1='\2'", m.group()), svg)


__all__ = ["minify_svg", "single_quoted", "FONT_ATTRIBUTES"]
