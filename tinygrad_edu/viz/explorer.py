"""Backprop you can step through: an interactive explorer of a computation graph, saved as one
self-contained, offline HTML file and shown inline in Jupyter.

The page replays the computation one step at a time: forward steps fill in the values in
topological order, then backward steps (in the engine's order) fill in the gradients, each with
the chain rule written out in numbers (the upstream gradient, each input's local derivative from
the rule table as a formula and a value, and what is added to each parent). Graphviz lays the
graph out here, in Python; the page itself inlines everything it shows (the laid-out SVGs, the
step data, the script and the style from the ``static`` folder) and loads nothing.

Big graphs start collapsed by module (one box per neuron or layer, from nn parameter names, with
the gradient norm of its parameters); a click opens a box. Each layout the page can show (all
collapsed, one module open, everything open) is laid out once, when the explorer is made, and
travels as a string in the page's JSON: only the layout on show is parsed into the page. (For a
2-8-1 MLP's loss, 11 layouts: 690 DOM nodes with one shown; keeping them in ``<template>``
elements instead would parse all of them up front, 10,409 nodes, for a file 13% smaller; both
measured before the layouts were minified.) The layouts are minified
(:func:`~tinygrad_edu.viz.minify.minify_svg`: the labels' common font set once, no comments or line
breaks) and the JSON keeps non-ASCII text as UTF-8: laid out by Graphviz 2.43's ``dot``, that
MLP's page is 447 KB (593 KB before), the chapter 1 neuron's 36 KB (39 KB before).
"""

from __future__ import annotations

import html
import json
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Literal

from .._io import write_text
from ..engine import Value
from ..symbolic import input_names, local_derivatives
from . import layout, style
from .analysis import (EXPLODING, VANISHING, GraphAnalysis, GraphTooLargeError, Node, analyze, format_number, grad_norm,
                       health)
from .dot import escape_record, new_digraph, write_clusters
from .minify import minify_svg, single_quoted

#: Graphs with more values than this start collapsed by module when ``collapse="auto"``.
AUTO_COLLAPSE_ABOVE = 40
_FIGURE_SPACE = "\u2007"  # as wide as a digit: keeps a box the same size whatever number it shows


def _num(x: float, digits: int) -> list:
    """A number as the page gets it: ``[number, text]`` (a non-finite number is its text, ``"nan"``)."""
    return [x if math.isfinite(x) else str(x), format_number(x, digits)]


def _steps(a: GraphAnalysis) -> list[dict]:
    """The page's steps: the start, one forward step per computed node, the seed, then the
    analysis' backward steps with the chain rule written out."""
    digits = a.digits
    steps: list[dict] = [{
        "phase": "start", "node": None,
        "text": "Start: the inputs, parameters and constants are known.",
        "values": [[n.id, *_num(n.data, digits)] for n in a.nodes if n.op is None],
    }]
    for n in a.nodes:
        if n.op is None:
            continue
        numbers = n.value.op.format(*[format_number(a.node(p).data, digits) for p in n.parents])
        steps.append({
            "phase": "forward", "node": n.id, "value": _num(n.data, digits),
            "text": f"Forward: {n.name} = {n.formula} = {numbers} = {format_number(n.data, digits)}"
            if n.name != n.formula.strip("()") else f"Forward: {n.formula} = {numbers} = {format_number(n.data, digits)}",
        })
    if a.gradients != "replay":
        return steps
    root = a.node(a.root)
    steps.append({
        "phase": "seed", "node": root.id, "grad": _num(1.0, digits),
        "text": f"Backward starts: d {root.name} / d {root.name} = 1.",
    })
    seen: dict[str, int] = {}
    for step in a.steps:
        n = a.node(step.node)
        op = n.value.op
        names = input_names(op, len(n.parents))
        formulas = local_derivatives(op, len(n.parents), [a.node(p).name for p in n.parents], n.name)
        contributions = []
        for share, name, formula in zip(step.shares, names, formulas):
            seen[share.parent] = seen.get(share.parent, 0) + 1
            contributions.append({
                "parent": share.parent, "slot": share.slot, "input": name,
                "formula": f"d {n.name} / d {a.node(share.parent).name} = {formula}",
                "local": _num(share.local, digits), "value": _num(share.value, digits), "total": _num(share.total, digits),
                "count": seen[share.parent],
            })
        steps.append({
            "phase": "backward", "node": n.id, "upstream": _num(step.upstream, digits),
            "rule": f"out = {op.format(*names)}", "op": op.name, "contributions": contributions,
            "text": f"Backward through {op.name}: {n.name} passes its gradient to its inputs.",
        })
    return steps


def _final_steps(steps: list[dict]) -> dict[str, int]:
    """The step from which each node's gradient is final (its value: known from the start)."""
    last: dict[str, int] = {}
    for s, step in enumerate(steps):
        if step["phase"] == "seed":
            last[step["node"]] = s
        for c in step.get("contributions", ()):
            last[c["parent"]] = s
    return last


def _too_large(what: str, max_nodes: int) -> GraphTooLargeError:
    return GraphTooLargeError(f"explore: {what} (max_nodes={max_nodes}); explore a smaller graph (one sample's "
                              f"loss) or raise max_nodes - each layout is a Graphviz run", what)


class _View:
    """One layout: which clusters are open; its DOT, and which drawn edge stands for which edges."""

    def __init__(self, analysis: GraphAnalysis, steps: list[dict], open_clusters: set[str], rankdir: str):
        self.a, self.steps, self.open = analysis, steps, open_clusters
        self.edges: dict[str, list[tuple[str, int]]] = {}  # drawn edge id -> [(node id, slot)] it carries
        self.ops: dict[str, str] = {}  # drawn op->value edge id -> node id
        self.dot = self._dot(rankdir)

    def _shown(self, n: Node) -> str:
        return n.id if n.cluster is None or n.cluster in self.open else n.cluster

    def _dot(self, rankdir: str) -> str:
        a = self.a
        dot = new_digraph("explorer", rankdir, None)
        dot.attr("edge", arrowsize="0.6", color=style.PENDING_COLOR)
        horizontal = rankdir in ("LR", "RL")
        pad = _FIGURE_SPACE * (a.digits + 6)
        modules = {c.id: c.module for c in a.clusters}
        statements: dict[str | None, list] = {}
        for n in a.nodes:
            if n.cluster is not None and n.cluster not in self.open:
                continue
            shown = n.short
            if not n.label and shown.startswith("(") and shown.endswith(")"):
                shown = shown[1:-1]
            fields = ([escape_record(shown)] if shown else []) + [f"data {pad}", f"grad {pad}"]
            label = " | ".join(fields)
            attrs = {"id": n.id, "shape": "record", "style": "filled", "fillcolor": style.FILL[n.kind],
                     "label": label if horizontal else "{" + label + "}"}  # fields stacked: compact boxes
            if "root" in n.marks:
                attrs["penwidth"] = "2"
            if "highlight" in n.marks:
                attrs.update(color=style.CULPRIT_COLOR, penwidth="3")
            # an open layer shows its neurons' frames
            module = None if n.cluster is None else (n.module or modules[n.cluster])
            statements.setdefault(module, []).append(("node", n.id, attrs))
            if n.op is not None:
                op_attrs = {"id": n.id + "-op", "label": n.sign, "shape": "ellipse", "style": "filled",
                            "fillcolor": style.OP_FILL, "fontsize": "10", "width": "0.3", "height": "0.3", "margin": "0.02"}
                if "highlight" in n.marks:  # its rule is the culprit: the operation too, as draw_graph does
                    op_attrs.update(color=style.CULPRIT_COLOR, penwidth="3")
                statements[module].append(("node", n.id + "op", op_attrs))
        for c in a.clusters:
            if c.id in self.open:
                continue
            shown = c.module[len(c.parent) + 1:] if c.parent else c.module
            fields = [escape_record(shown), f"{len(c.nodes)} values, {len(c.params)} params", f"grad norm {pad}"]
            label = " | ".join(fields)
            statements.setdefault(c.parent, []).append(("node", c.id, {
                "id": c.id, "shape": "record", "style": "filled,rounded",
                "fillcolor": style.FILL["parameter"] if c.params else style.FILL["operation"],
                "label": label if horizontal else "{" + label + "}"}))
        write_clusters(dot, statements, ids={c.module: c.id + "-frame" for c in a.clusters})
        drawn: dict[tuple[str, str], str] = {}
        for e in a.edges:
            target = self._shown(a.node(e.target))
            target_port = target + "op" if target == e.target else target
            source = self._shown(a.node(e.source))
            if source == target:
                continue  # inside a closed box
            key = (source, target_port)
            if key not in drawn or target_port.endswith("op"):
                edge_id = f"e{len(self.edges)}"
                drawn[key] = edge_id
                self.edges[edge_id] = []
                dot.edge(source, target_port, id=edge_id)
            self.edges[drawn[key]].append((e.target, e.slot))
        for n in a.nodes:
            if n.op is not None and self._shown(n) == n.id:
                edge_id = f"o{n.id[1:]}"
                self.ops[edge_id] = n.id
                dot.edge(n.id + "op", n.id, id=edge_id)
        return dot.source

    def edge_timelines(self) -> dict[str, list]:
        """For each drawn edge, how it looks from each step on: [step, colour, width, dash, flow text].
        An edge's flow is the analysis' (summed over the edges a drawn one stands for, in step order)."""
        a, digits = self.a, self.a.digits
        flows = {(e.target, e.slot): e.flow for e in a.edges}
        step_of = {step["node"]: s for s, step in enumerate(self.steps) if step["phase"] == "backward"}
        timelines: dict[str, list] = {}
        for edge_id, carried in self.edges.items():
            total, line = 0.0, []
            for s, node_id, slot in sorted((step_of[n], n, slot) for n, slot in carried if n in step_of):
                total += flows[(node_id, slot)]
                line.append([s, *_look(total, digits)])
            timelines[edge_id] = _merge(line)
        for edge_id, node_id in self.ops.items():
            grad = a.node(node_id).grad
            timelines[edge_id] = [] if node_id not in step_of or grad is None else \
                [[step_of[node_id], *_look(abs(grad), digits)]]  # forward only: no gradient ever flows
        return timelines


def _merge(line: list) -> list:
    """Keep the last look of each step."""
    out: list = []
    for entry in line:
        if out and out[-1][0] == entry[0]:
            out[-1] = entry
        else:
            out.append(entry)
    return out


def _look(flow: float, digits: int) -> list:
    look = style.flow_style(flow)
    return [look["color"], look["width"], look["dash"], format_number(flow, digits)]


def _view_key(open_clusters: set[str], analysis: GraphAnalysis) -> str:
    if not analysis.clusters or len(open_clusters) == len(analysis.clusters):
        return "all"
    if not open_clusters:
        return "collapsed"
    return next(iter(open_clusters))


def _clean_svg(svg: str) -> str:
    """The <svg> element as the page inlines it: minified (:func:`~tinygrad_edu.viz.minify.minify_svg`),
    without Graphviz's <title> tooltips (the page writes its own), and its attribute values in single
    quotes, which a JSON string holds without a backslash."""
    return single_quoted(re.sub(r"<title>.*?</title>", "", minify_svg(svg), flags=re.S))


def _script_json(data: Any) -> str:
    """``data`` as JSON that can sit inside a ``<script>`` element: no ``</`` (which could end it)
    and no ``<!`` (which could start a comment in it); other text as it is, UTF-8 and all."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    return text.replace("</", "<\\/").replace("<!", "\\u003c!")


class Explorer:
    """An interactive explorer of one graph (make it with :func:`explore`).

    :meth:`to_html` is the page, :meth:`save` writes it, Jupyter shows it inline; :attr:`data` is
    everything the page shows, as plain JSON-able data:

    - ``nodes``: one per value, id ``n{i}`` with ``i`` its place in
      :func:`~tinygrad_edu.engine.topological_order` of the root; label, display name, kind, op,
      parents, data, the replayed gradient, its rule and local derivatives (formulas), its module box;
    - ``edges``: ``{source, target, slot}`` from each input to the value computed from it;
    - ``steps``: ``start`` (the leaves' values), one ``forward`` per computed value, ``seed``, then
      one ``backward`` per computed value in the engine's order, with ``upstream`` and per input its
      ``formula``, ``local`` derivative, added ``value`` and new ``total``; numbers are
      ``[number, text]`` pairs (a non-finite number is its text, ``"nan"``);
    - ``clusters`` (modules, with their gradient norm from each step on) and ``views`` (each
      layout's SVG and how each drawn edge looks from each step on).

    The page's stable hooks: each value's element has ``data-node``, ``data-label``,
    ``data-value`` and ``data-grad`` (empty until filled in), each module box ``data-cluster``; the
    controls ``data-action`` (``prev``, ``next``, ``play``, ``reset``, ``seek``, ``search``, ...);
    the root element ``data-step`` and ``data-steps``."""

    def __init__(self, data: dict[str, Any]):
        self.data = data

    def to_html(self) -> str:
        """One self-contained HTML document: the script, style, layouts and step data inlined."""
        static = resources.files(__package__) / "static"
        template = (static / "explorer.html").read_text(encoding="utf-8")
        payload = _script_json(self.data)
        parts = {
            "title": html.escape(self.data["title"]),
            "steps": str(len(self.data["steps"])),
            "last": str(len(self.data["steps"]) - 1),
            "style": (static / "explorer.css").read_text(encoding="utf-8"),
            "legend": _legend_html(any(n.get("highlight") for n in self.data["nodes"])),
            "data": payload,
            "script": (static / "explorer.js").read_text(encoding="utf-8"),
        }
        # One pass, so no inserted text is searched again for placeholders.
        return re.sub(r"/\*\{\{(\w+)\}\}\*/|\{\{(\w+)\}\}", lambda m: parts[m.group(1) or m.group(2)], template)

    def save(self, path: str | Path) -> Path:
        """Write the page to ``path`` (written to a temporary name, then renamed); returns the path."""
        return write_text(path, self.to_html())

    def _repr_html_(self) -> str:
        """Jupyter: the page in an iframe (srcdoc), so its script runs in JupyterLab and nbclient output alike."""
        return (f'<iframe srcdoc="{html.escape(self.to_html(), quote=True)}" title="{html.escape(self.data["title"])}" '
                'style="width:100%;height:640px;border:1px solid #ddd" sandbox="allow-scripts"></iframe>')


def _legend_html(culprits: bool) -> str:
    rows = [f'<span class="swatch" style="background:{color}"></span>{text}' for color, _, text in style.legend_stops()]
    rows.append(f'<span class="swatch" style="background:{style.ZERO_FLOW_COLOR}"></span>0 (dashed)')
    kinds = [f'<span class="swatch box" style="background:{style.FILL[k]}"></span>{k}'
             for k in ("input", "parameter", "constant")]
    marks = [f'<span class="swatch box" style="border-color:{style.VANISHING_COLOR}"></span>vanishing gradient',
             f'<span class="swatch box thick" style="border-color:{style.EXPLODING_COLOR}"></span>exploding gradient']
    if culprits:
        marks.append(f'<span class="swatch box thick" data-legend="culprit" style="border-color:{style.CULPRIT_COLOR}"></span>'
                     'highlighted (a culprit)')
    return (f'<b>{html.escape(style.FLOW_TITLE)}:</b> ' + " ".join(f"<span>{r}</span>" for r in rows) +
            ' <span class="sep"></span> ' + " ".join(f"<span>{r}</span>" for r in kinds + marks))


def explore(
    root: Value,
    *,
    title: str | None = None,
    collapse: Literal["auto", "neuron", "layer"] | None = "auto",
    rankdir: str = "LR",
    digits: int = 4,
    max_nodes: int = 500,
    vanishing: float = VANISHING,
    exploding: float = EXPLODING,
    backward: bool = True,
    highlight: Iterable[Any] = (),
) -> Explorer:
    """An interactive explorer of the graph that ends at ``root``: save it with ``.save("graph.html")``,
    or show it in Jupyter. It replays ``root``'s forward pass and one backward pass from it, step by
    step (no ``.grad`` is changed); with ``backward=False``, the forward pass only.

    ``collapse``: ``"neuron"`` or ``"layer"`` starts with one box per module (from nn parameter
    names; a click opens one), ``None`` shows every value; ``"auto"`` collapses by neuron when the
    graph has parameters and more than 40 values. A graph with more than ``max_nodes`` values is
    refused with :class:`~tinygrad_edu.viz.GraphTooLargeError`. ``vanishing``/``exploding`` set
    the gradient sizes marked on the boxes. ``highlight`` outlines some values (and the module
    boxes holding them) and marks them ``data-culprit="true"``: Values, or records with a
    ``.node`` such as :class:`~tinygrad_edu.testing.GradcheckError`'s ``culprits``. Needs
    Graphviz to lay the graph out.
    """
    if not isinstance(root, Value):
        raise TypeError(f"explore needs a Value, got {type(root).__name__}")
    if collapse not in ("auto", "neuron", "layer", None):
        raise ValueError(f"collapse must be 'auto', 'neuron', 'layer' or None, got {collapse!r}")
    if rankdir not in ("LR", "TB", "RL", "BT"):
        raise ValueError(f"rankdir must be one of LR, TB, RL, BT, got {rankdir!r}")
    if isinstance(digits, bool) or not isinstance(digits, int) or not 1 <= digits <= 17:
        raise ValueError(f"digits must be an integer from 1 to 17, got {digits!r}")
    if isinstance(max_nodes, bool) or not isinstance(max_nodes, int) or max_nodes < 1:
        raise ValueError(f"max_nodes must be a positive integer, got {max_nodes!r}")
    options = dict(grads="replay" if backward else "none", highlight=list(highlight), digits=digits, vanishing=vanishing,
                   exploding=exploding, max_nodes=max_nodes)
    try:
        a = analyze(root, level="neuron" if collapse == "auto" else collapse, **options)
    except GraphTooLargeError as err:
        raise _too_large(err.reason, max_nodes) from None
    if collapse == "auto" and a.clusters and len(a.nodes) <= AUTO_COLLAPSE_ABOVE:
        a = analyze(root, level=None, **options)
    elif collapse not in ("auto", None) and not a.clusters:
        raise ValueError("explore: collapse needs parameters named like nn's (layers.0.neurons.3.w.1) to find "
                         "modules; this graph has none, so explore it with collapse=None")
    steps = _steps(a)
    ids = [c.id for c in a.clusters]
    sets = [set()] + [{c} for c in ids] + [set(ids)] if ids else [set()]
    views = {}
    for open_clusters in sets:
        view = _View(a, steps, open_clusters, rankdir)
        views[_view_key(open_clusters, a)] = {
            "svg": _clean_svg(layout.svg_from_dot(view.dot)),
            "edges": view.edge_timelines(),
        }
    return Explorer(page_data(a, steps, views, title))


def page_data(a: GraphAnalysis, steps: list[dict], views: dict, title: str | None) -> dict[str, Any]:
    """Everything the page shows as JSON-able data (:attr:`Explorer.data`), from one analysis."""
    digits = a.digits
    step_of = _final_steps(steps)
    nodes = []
    for n in a.nodes:
        node = {
            "id": n.id, "label": n.label, "name": n.label or n.name.removeprefix("(").removesuffix(")"),
            "kind": n.kind, "op": n.op, "parents": list(n.parents), "data": _num(n.data, digits)[0],
            "group": n.cluster, "final_step": step_of.get(n.id),
            "grad": _num(n.grad, digits)[0] if n.grad is not None else None,
            "health": next((m for m in ("vanishing", "exploding") if m in n.marks), None),
            "highlight": "highlight" in n.marks,
        }
        if n.op is not None:
            op = n.value.op
            names = input_names(op, len(n.parents))
            node["formula"] = n.formula
            node["rule"] = f"out = {op.format(*names)}"
            node["derivatives"] = [f"d out / d {x} = {f}" for x, f in zip(names, local_derivatives(op, len(names)))]
        nodes.append(node)
    highlighted = {n.id for n in a.nodes if "highlight" in n.marks}
    clusters = [{
        "id": c.id, "module": c.module, "nodes": list(c.nodes), "params": list(c.params),
        "norms": _norm_timeline(a, c.params, steps, step_of), "highlight": bool(highlighted & set(c.nodes)),
    } for c in a.clusters]
    edges = [{"source": e.source, "target": e.target, "slot": e.slot} for e in a.edges]
    root = a.node(a.root)
    return {
        "title": title or f"{root.name}: forward and backward, step by step",
        "root": a.root, "collapse": a.level, "digits": digits,
        "nodes": nodes, "edges": edges, "steps": steps, "clusters": clusters,
        "views": views, "start_view": "collapsed" if a.clusters else "all",
    }


def _norm_timeline(a: GraphAnalysis, params: tuple[str, ...], steps: list[dict], step_of: dict[str, int]) -> list:
    """The gradient norm of a module's parameters from each step on: [step, text, mark]. Summed in
    the analysis' order, so the last entry is the analysis' :attr:`~.analysis.Cluster.grad_norm`."""
    wanted = set(params)
    first = len(steps) - len(a.steps)  # the page's step of the analysis' first backward step
    current: dict[str, float] = {}
    line: list = []
    for k, step in enumerate(a.steps):
        changed = False
        for share in step.shares:
            if share.parent in wanted:
                current[share.parent] = share.total
                changed = True
        if changed:
            s = first + k
            norm = grad_norm(current[p] for p in params if p in current)
            done = all(step_of.get(p, -1) <= s for p in params)
            mark = health(norm, a.vanishing, a.exploding) if done else None
            line.append([s, format_number(norm, a.digits), mark])
    return line


__all__ = ["explore", "Explorer", "page_data"]
