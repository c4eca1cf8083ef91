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
collapsed, one module open, everything open) is laid out once, when the explorer is made.
"""

from __future__ import annotations

import html
import json
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from .._io import write_text
from ..engine import Value
from ..symbolic import input_names, local_derivatives
from . import layout, style
from .analysis import (EXPLODING, LAYOUT_FACTOR, VANISHING, assign_modules, collect_values, format_number, health,
                       layout_size, module_box, module_levels, node_kind, op_sign, replay_backward, short_names)
from .graph import GraphTooLargeError, _emit_clusters, _new_digraph, _record_escape

#: Graphs with more values than this start collapsed by module when ``collapse="auto"``.
AUTO_COLLAPSE_ABOVE = 40
_FIGURE_SPACE = "\u2007"  # as wide as a digit: keeps a box the same size whatever number it shows


class _Graph:
    """The facts of one graph the page needs, numbered: nodes, edges, groups, steps."""

    def __init__(self, root: Value, collapse: str | None, digits: int, max_nodes: int,
                 vanishing: float, exploding: float, backward: bool = True):
        values = collect_values(root, limit=max_nodes)
        if values is None:
            raise _too_large(f"the graph has more than {max_nodes} values", max_nodes)
        size = layout_size(values)
        if size > LAYOUT_FACTOR * max_nodes:
            raise _too_large(f"the graph's long edges make about {size} nodes to lay out", max_nodes)
        self.root, self.values, self.digits = root, values, digits
        self.index = {v: i for i, v in enumerate(values)}
        self.labels = short_names(values, digits)  # what a box shows: short or nothing
        self.names = short_names(values, digits, limit=48)  # what the text around it calls a node
        self.module = modules = assign_modules(values)
        if collapse == "auto":
            has_modules = any(m is not None for m in modules.values())
            collapse = "neuron" if has_modules and len(values) > AUTO_COLLAPSE_ABOVE else None
        elif collapse is not None and not any(m is not None for m in modules.values()):
            raise ValueError("explore: collapse needs parameters named like nn's (layers.0.neurons.3.w.1) to find "
                             "modules; this graph has none, so explore it with collapse=None")
        self.collapse = collapse
        self.vanishing, self.exploding = vanishing, exploding
        self.group: dict[Value, str | None] = {}
        if collapse is not None:
            consumers: dict[Value, set] = {}
            for v in values:
                self.group[v] = module_box(modules[v], collapse) if modules[v] is not None else None
                for p in v.parents:
                    consumers.setdefault(p, set()).add(v)
            for v in values:  # a constant used only inside one module goes with it
                if node_kind(v) == "constant":
                    groups = {self.group[c] for c in consumers.get(v, ())}
                    if len(groups) == 1:
                        self.group[v] = groups.pop()
        self.groups = sorted({g for g in self.group.values() if g is not None}, key=_module_order)
        self.steps = self._steps(backward)

    def id(self, v: Value) -> str:
        return f"n{self.index[v]}"

    def name(self, v: Value) -> str:
        return self.names[v] or f"#{self.index[v]}"

    def num(self, x: float) -> list:
        return [x if math.isfinite(x) else str(x), format_number(x, self.digits)]

    def _steps(self, backward: bool) -> list[dict]:
        v_ = self.values
        steps: list[dict] = [{
            "phase": "start", "node": None,
            "text": "Start: the inputs, parameters and constants are known.",
            "values": [[self.id(v), *self.num(v.data)] for v in v_ if v.is_leaf],
        }]
        for v in v_:
            if v.is_leaf:
                continue
            formula = v.op.format(*[self.name(p) for p in v.parents])
            numbers = v.op.format(*[format_number(p.data, self.digits) for p in v.parents])
            steps.append({
                "phase": "forward", "node": self.id(v), "value": self.num(v.data),
                "text": f"Forward: {self.name(v)} = {formula} = {numbers} = {format_number(v.data, self.digits)}"
                if self.names[v] != formula.strip("()") else f"Forward: {formula} = {numbers} = "
                f"{format_number(v.data, self.digits)}",
            })
        if not backward:
            return steps
        steps.append({
            "phase": "seed", "node": self.id(self.root), "grad": self.num(1.0),
            "text": f"Backward starts: d {self.name(self.root)} / d {self.name(self.root)} = 1.",
        })
        seen: dict[Value, int] = {}
        for step in replay_backward(self.root):
            v = step.node
            names = input_names(v.op, len(v.parents))
            formulas = local_derivatives(v.op, len(v.parents), [self.name(p) for p in v.parents], self.name(v))
            contributions = []
            for c, name, formula in zip(step.contributions, names, formulas):
                seen[c.parent] = seen.get(c.parent, 0) + 1
                contributions.append({
                    "parent": self.id(c.parent), "slot": c.slot, "input": name,
                    "formula": f"d {self.name(v)} / d {self.name(c.parent)} = {formula}",
                    "local": self.num(c.local), "value": self.num(c.value), "total": self.num(c.total),
                    "count": seen[c.parent],
                })
            steps.append({
                "phase": "backward", "node": self.id(v), "upstream": self.num(step.upstream),
                "rule": f"out = {v.op.format(*names)}", "op": v.op.name, "contributions": contributions,
                "text": f"Backward through {v.op.name}: {self.name(v)} passes its gradient to its inputs.",
            })
        return steps

    def backward_steps(self) -> dict[str, int]:
        """The step at which each computed node passes its gradient on."""
        return {step["node"]: s for s, step in enumerate(self.steps) if step["phase"] == "backward"}

    def final_steps(self) -> dict[str, int]:
        """The step from which each node's gradient is final (its value: known from the start)."""
        last: dict[str, int] = {}
        for s, step in enumerate(self.steps):
            if step["phase"] == "seed":
                last[step["node"]] = s
            for c in step.get("contributions", ()):
                last[c["parent"]] = s
        return last


def _module_order(name: str):
    """Modules in numeric order: layers.2 before layers.10."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in name.split("."))


def _too_large(what: str, max_nodes: int) -> GraphTooLargeError:
    err = GraphTooLargeError(f"explore: {what} (max_nodes={max_nodes}); explore a smaller graph (one sample's "
                             f"loss) or raise max_nodes - each layout is a Graphviz run")
    err.reason = what
    return err


class _View:
    """One layout: which groups are open; its DOT, and which drawn edge stands for which edges."""

    def __init__(self, graph: _Graph, open_groups: set[str], rankdir: str):
        self.graph, self.open = graph, open_groups
        self.edges: dict[str, list[tuple[str, int]]] = {}  # drawn edge id -> [(node id, slot)] it carries
        self.ops: dict[str, str] = {}  # drawn op->value edge id -> node id
        self.dot = self._dot(rankdir)

    def _shown(self, v: Value) -> str:
        g = self.graph.group.get(v)
        return self.graph.id(v) if g is None or g in self.open else _cluster_id(self.graph, g)

    def _dot(self, rankdir: str) -> str:
        gr = self.graph
        dot = _new_digraph("explorer", rankdir, None)
        dot.attr("edge", arrowsize="0.6", color=style.PENDING_COLOR)
        horizontal = rankdir in ("LR", "RL")
        pad = _FIGURE_SPACE * (gr.digits + 6)
        statements: dict[str | None, list] = {}
        for v in gr.values:
            g = gr.group.get(v)
            if g is not None and g not in self.open:
                continue
            kind = node_kind(v)
            shown = gr.labels[v]
            if not v.label and shown.startswith("(") and shown.endswith(")"):
                shown = shown[1:-1]
            fields = ([_record_escape(shown)] if shown else []) + [f"data {pad}", f"grad {pad}"]
            label = " | ".join(fields)
            attrs = {"id": gr.id(v), "shape": "record", "style": "filled", "fillcolor": style.FILL[kind],
                     "label": label if horizontal else "{" + label + "}"}  # fields stacked: compact boxes
            if v is gr.root:
                attrs["penwidth"] = "2"
            module = None if g is None else (gr.module[v] or g)  # an open layer shows its neurons' frames
            statements.setdefault(module, []).append(("node", gr.id(v), attrs))
            if not v.is_leaf:
                statements[module].append(("node", gr.id(v) + "op", {
                    "id": gr.id(v) + "-op", "label": op_sign(v.op), "shape": "ellipse", "style": "filled",
                    "fillcolor": style.OP_FILL, "fontsize": "10", "width": "0.3", "height": "0.3", "margin": "0.02"}))
        for g in gr.groups:
            if g in self.open:
                continue
            members = [v for v in gr.values if gr.group.get(v) == g]
            params = sum(node_kind(v) == "parameter" for v in members)
            parent = module_levels(g)[-2] if len(module_levels(g)) > 1 else None
            shown = g[len(parent) + 1:] if parent else g
            fields = [_record_escape(shown), f"{len(members)} values, {params} params", f"grad norm {pad}"]
            label = " | ".join(fields)
            statements.setdefault(parent, []).append(("node", _cluster_id(gr, g), {
                "id": _cluster_id(gr, g), "shape": "record", "style": "filled,rounded",
                "fillcolor": style.FILL["parameter"] if params else style.FILL["operation"],
                "label": label if horizontal else "{" + label + "}"}))
        _emit_clusters(dot, statements, ids={g: _cluster_id(gr, g) + "-frame" for g in gr.groups})
        drawn: dict[tuple[str, str], str] = {}
        for v in gr.values:
            if v.is_leaf:
                continue
            target = self._shown(v)
            target_port = target + "op" if target == gr.id(v) else target
            for slot, p in enumerate(v.parents):
                source = self._shown(p)
                if source == target:
                    continue  # inside a closed box
                key = (source, target_port)
                if key not in drawn or target_port.endswith("op"):
                    edge_id = f"e{len(self.edges)}"
                    drawn[key] = edge_id
                    self.edges[edge_id] = []
                    dot.edge(source, target_port, id=edge_id)
                self.edges[drawn[key]].append((gr.id(v), slot))
            if target == gr.id(v):
                edge_id = f"o{gr.index[v]}"
                self.ops[edge_id] = gr.id(v)
                dot.edge(gr.id(v) + "op", gr.id(v), id=edge_id)
        return dot.source

    def edge_timelines(self) -> dict[str, list]:
        """For each drawn edge, how it looks from each step on: [step, colour, width, dash, flow text]."""
        flows: dict[tuple[str, int], float] = {}
        for step in self.graph.steps:
            for c in step.get("contributions", ()):
                flows[(step["node"], c["slot"])] = abs(c["value"][0]) if isinstance(c["value"][0], float) else math.nan
        upstream = {s["node"]: s["upstream"][0] for s in self.graph.steps if s["phase"] == "backward"}
        step_of = self.graph.backward_steps()
        timelines: dict[str, list] = {}
        for edge_id, carried in self.edges.items():
            total, line = 0.0, []
            for s, node_id, slot in sorted((step_of[n], n, slot) for n, slot in carried if n in step_of):
                total += flows[(node_id, slot)]
                line.append([s, *_look(total, self.graph.digits)])
            timelines[edge_id] = _merge(line)
        for edge_id, node_id in self.ops.items():
            if node_id not in step_of:  # forward only: no gradient ever flows
                timelines[edge_id] = []
                continue
            g = upstream[node_id]
            timelines[edge_id] = [[step_of[node_id], *_look(abs(g) if isinstance(g, float) else math.nan,
                                                          self.graph.digits)]]
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


def _cluster_id(graph: _Graph, group: str) -> str:
    return f"c{graph.groups.index(group)}"


def _view_key(open_groups: set[str], graph: _Graph) -> str:
    if not graph.groups or len(open_groups) == len(graph.groups):
        return "all"
    if not open_groups:
        return "collapsed"
    return _cluster_id(graph, next(iter(open_groups)))


def _clean_svg(svg: str) -> str:
    """The <svg> element alone: no XML prolog, doctype or comments, no <title> tooltips."""
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.S)
    return re.sub(r"<title>.*?</title>", "", svg, flags=re.S)


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
        payload = json.dumps(self.data, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")
        parts = {
            "title": html.escape(self.data["title"]),
            "steps": str(len(self.data["steps"])),
            "last": str(len(self.data["steps"]) - 1),
            "style": (static / "explorer.css").read_text(encoding="utf-8"),
            "legend": _legend_html(),
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


def _legend_html() -> str:
    rows = [f'<span class="swatch" style="background:{color}"></span>{text}' for color, _, text in style.legend_stops()]
    rows.append(f'<span class="swatch" style="background:{style.ZERO_FLOW_COLOR}"></span>0 (dashed)')
    kinds = [f'<span class="swatch box" style="background:{style.FILL[k]}"></span>{k}'
             for k in ("input", "parameter", "constant")]
    marks = [f'<span class="swatch box" style="border-color:{style.VANISHING_COLOR}"></span>vanishing gradient',
             f'<span class="swatch box thick" style="border-color:{style.EXPLODING_COLOR}"></span>exploding gradient']
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
) -> Explorer:
    """An interactive explorer of the graph that ends at ``root``: save it with ``.save("graph.html")``,
    or show it in Jupyter. It replays ``root``'s forward pass and one backward pass from it, step by
    step (no ``.grad`` is changed); with ``backward=False``, the forward pass only.

    ``collapse``: ``"neuron"`` or ``"layer"`` starts with one box per module (from nn parameter
    names; a click opens one), ``None`` shows every value; ``"auto"`` collapses by neuron when the
    graph has parameters and more than 40 values. A graph with more than ``max_nodes`` values is
    refused with :class:`~tinygrad_edu.viz.GraphTooLargeError`. ``vanishing``/``exploding`` set
    the gradient sizes marked on the boxes. Needs Graphviz to lay the graph out.
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
    graph = _Graph(root, collapse, digits, max_nodes, vanishing, exploding, backward)
    step_of = graph.final_steps()
    sets = [set()] + [{g} for g in graph.groups] + [set(graph.groups)] if graph.groups else [set()]
    views = {}
    for open_groups in sets:
        view = _View(graph, open_groups, rankdir)
        views[_view_key(open_groups, graph)] = {
            "svg": _clean_svg(layout.svg_from_dot(view.dot)),
            "edges": view.edge_timelines(),
        }
    return Explorer(_data(graph, views, title, step_of))


def _data(graph: _Graph, views: dict, title: str | None, step_of: dict[str, int]) -> dict[str, Any]:
    nodes = []
    for v in graph.values:
        node = {
            "id": graph.id(v), "label": v.label, "name": graph.name(v).removeprefix("(").removesuffix(")")
            if not v.label else v.label, "kind": node_kind(v),
            "op": v.op.name if v.op else None, "parents": [graph.id(p) for p in v.parents],
            "data": graph.num(v.data)[0], "group": _cluster_id(graph, graph.group[v]) if graph.group.get(v) else None,
            "final_step": step_of.get(graph.id(v)),
        }
        if v.op is not None:
            names = input_names(v.op, len(v.parents))
            node["formula"] = v.op.format(*[graph.name(p) for p in v.parents])
            node["rule"] = f"out = {v.op.format(*names)}"
            node["derivatives"] = [f"d out / d {n} = {f}" for n, f in zip(names, local_derivatives(v.op, len(names)))]
        nodes.append(node)
    # the replayed final gradient of every node, and its mark
    grads: dict[str, list] = {}
    for step in graph.steps:
        if step["phase"] == "seed":
            grads[step["node"]] = step["grad"]
        for c in step.get("contributions", ()):
            grads[c["parent"]] = c["total"]
    for node in nodes:
        g = grads.get(node["id"])
        node["grad"] = g[0] if g else None
        value = g[0] if g else 0.0
        node["health"] = health(value if isinstance(value, float) else math.nan, graph.vanishing, graph.exploding) \
            if g and node["kind"] != "constant" else None
    clusters = []
    for g in graph.groups:
        members = [v for v in graph.values if graph.group.get(v) == g]
        clusters.append({
            "id": _cluster_id(graph, g), "module": g, "nodes": [graph.id(v) for v in members],
            "params": [graph.id(v) for v in members if node_kind(v) == "parameter"],
            "norms": _norm_timeline(graph, members, step_of),
        })
    edges = [{"source": graph.id(p), "target": graph.id(v), "slot": slot}
             for v in graph.values for slot, p in enumerate(v.parents)]
    return {
        "title": title or f"{graph.name(graph.root)}: forward and backward, step by step",
        "root": graph.id(graph.root), "collapse": graph.collapse, "digits": graph.digits,
        "nodes": nodes, "edges": edges, "steps": graph.steps, "clusters": clusters,
        "views": views, "start_view": "collapsed" if graph.groups else "all",
    }


def _norm_timeline(graph: _Graph, members: list[Value], step_of: dict[str, int]) -> list:
    """The gradient norm of a module's parameters from each step on: [step, text, mark]."""
    params = {graph.id(v) for v in members if node_kind(v) == "parameter"}
    current: dict[str, float] = {}
    line: list = []
    for s, step in enumerate(graph.steps):
        changed = False
        for c in step.get("contributions", ()):
            if c["parent"] in params:
                value = c["total"][0]
                current[c["parent"]] = value if isinstance(value, float) else math.nan
                changed = True
        if changed:
            norm = math.sqrt(sum(g * g for g in current.values()))
            done = all(step_of.get(p, -1) <= s for p in params)
            mark = health(norm, graph.vanishing, graph.exploding) if done else None
            line.append([s, format_number(norm, graph.digits), mark])
    return line


__all__ = ["explore", "Explorer"]
