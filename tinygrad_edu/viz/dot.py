"""Render a :class:`~.analysis.GraphAnalysis` as DOT for Graphviz: the whole graph (a record per
value, a small node per operation, edges coloured by gradient flow) or one box per module. It
adds no number of its own: every value, gradient, flow, norm and mark comes from the analysis.

The building blocks (:func:`new_digraph`, :func:`escape_record`, :func:`write_clusters`,
:func:`edge_style`) are shared with the explorer's layouts (:mod:`.explorer`), so both draw alike.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Iterable, Mapping

import graphviz

from . import layout
from .analysis import GraphAnalysis, format_number, module_levels, module_order
from .style import (EXPLODING_COLOR, FILL, FLOW_TITLE, HIGHLIGHT_COLOR, OP_FILL, PENDING_COLOR, VANISHING_COLOR,
                    ZERO_FLOW_COLOR, flow_style, legend_stops)

#: A node statement for :func:`write_clusters`: ("node", name, attributes).
Statement = tuple[str, str, dict]


class DrawnGraph(graphviz.Digraph):
    """A ``graphviz.Digraph`` that Jupyter shows as SVG laid out by :func:`layout.svg_from_dot`, so
    it displays without the system ``dot`` too."""

    def _repr_image_svg_xml(self) -> str:
        return layout.svg_from_dot(self.source)


RANKDIRS = ("LR", "TB", "RL", "BT")


def check_options(rankdir: str, color_by: str | None, max_nodes: int, collapse: str | None, cluster) -> None:
    """Say in one line which drawing option is wrong and what it may be (``ValueError``)."""
    if rankdir not in RANKDIRS:
        raise ValueError(f"rankdir must be one of {', '.join(RANKDIRS)}, got {rankdir!r}")
    if color_by not in ("grad", None):
        raise ValueError(f"color_by must be 'grad' or None, got {color_by!r}")
    if isinstance(max_nodes, bool) or not isinstance(max_nodes, int) or max_nodes < 1:
        raise ValueError(f"max_nodes must be a positive integer, got {max_nodes!r}")
    if collapse not in (None, "neuron", "layer"):
        raise ValueError(f"collapse must be None, 'neuron' or 'layer', got {collapse!r}")
    if cluster not in (True, False, "auto"):
        raise ValueError(f"cluster must be True, False or 'auto', got {cluster!r}")


def new_digraph(name: str, rankdir: str, title: str | None) -> DrawnGraph:
    """An empty graph with our fonts, direction, optional title, and bounded layout effort."""
    dot = DrawnGraph(name)
    # nslimit bounds dot's network-simplex passes, which otherwise can take minutes on long edges.
    dot.attr(rankdir=rankdir, fontname="Helvetica", fontsize="11", newrank="true", nslimit="4", nslimit1="4")
    if title:
        dot.attr(label=title, labelloc="t")
    dot.attr("node", fontname="Helvetica", fontsize="11")
    return dot


def escape_record(text: str) -> str:
    """``text`` safe inside a record label's field."""
    return re.sub(r'([\\{}|<>"])', r"\\\1", text)


def edge_style(flow: float, digits: int) -> dict[str, str]:
    """Graphviz attributes of an edge carrying gradient ``flow`` on the fixed scale of :mod:`.style`."""
    look = flow_style(flow)
    attrs = {"color": look["color"], "penwidth": look["width"], "tooltip": f"gradient along this edge: {format_number(flow, digits)}"}
    if look["dash"]:
        attrs["style"] = look["dash"]
    return attrs


def health_attrs(state: str) -> dict[str, str]:
    """A box's border for a gradient mark: thin blue for vanishing, thick red for exploding."""
    if state == "vanishing":
        return {"color": VANISHING_COLOR, "penwidth": "2"}
    return {"color": EXPLODING_COLOR, "penwidth": "3"}


def legend(flows: bool, kinds: Iterable[str], health: bool) -> str:
    """The legend as a Graphviz HTML-like label: the flow scale, the fills, the marks."""
    rows = []
    if flows:
        rows.append(f'<TR><TD COLSPAN="2"><B>{FLOW_TITLE}</B></TD></TR>')
        for i, (color, _, text) in enumerate(legend_stops()):
            rows.append(f'<TR><TD BGCOLOR="{color}" WIDTH="{30 - 7 * i}"> </TD><TD ALIGN="LEFT">{text}</TD></TR>')
        rows.append(f'<TR><TD BGCOLOR="{ZERO_FLOW_COLOR}"> </TD><TD ALIGN="LEFT">0 (dashed)</TD></TR>')
    for kind in kinds:
        rows.append(f'<TR><TD BGCOLOR="{FILL[kind]}" BORDER="1"> </TD><TD ALIGN="LEFT">{kind}</TD></TR>')
    if health:
        rows.append(f'<TR><TD BORDER="2" COLOR="{VANISHING_COLOR}"> </TD><TD ALIGN="LEFT">vanishing grad (≈ 0)</TD></TR>')
        rows.append(f'<TR><TD BORDER="2" COLOR="{EXPLODING_COLOR}"> </TD><TD ALIGN="LEFT">exploding grad</TD></TR>')
    return '<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="2">' + "".join(rows) + "</TABLE>>"


def write_clusters(dot: graphviz.Digraph, statements: Mapping[str | None, list[Statement]],
                   ids: Mapping[str, str] | None = None) -> None:
    """Write node statements, grouped by module, into nested ``cluster_`` subgraphs, one per module
    level (``layers.0`` > ``layers.0.neurons.3``; Graphviz wants a cluster's nodes declared inside
    it); statements under ``None`` go at the top. ``ids`` gives some modules' frames an SVG id."""
    tree: dict = {}
    for module in statements:
        if module is None:
            continue
        branch = tree
        for level in module_levels(module):
            branch = branch.setdefault(level, {})

    def emit(graph: graphviz.Digraph, module: str | None, children: dict, parent: str | None) -> None:
        for _, name, attrs in statements.get(module, ()):
            graph.node(name, **attrs)
        for child, grandchildren in children.items():
            with graph.subgraph(name="cluster_" + re.sub(r"\W", "_", child)) as sub:
                shown = child[len(parent) + 1:] if parent and child.startswith(parent + ".") else child
                sub.attr(label=shown, style="rounded,dashed", color="#9a9a9a", fontcolor="#555555", fontsize="10")
                if ids and child in ids:
                    sub.attr(id=ids[child])
                emit(sub, child, grandchildren, child)

    emit(dot, None, tree, None)


def graph_dot(
    analysis: GraphAnalysis,
    *,
    rankdir: str = "LR",
    show_data: bool = True,
    show_grad: bool = True,
    color_by: str | None = "grad",
    cluster: bool | str = "auto",
    legend_box: bool = True,
    title: str | None = None,
    steady: bool = False,
) -> DrawnGraph:
    """The whole graph: a record per value (its short name, data, grad), a small node per
    operation, an edge per input slot coloured by its flow (grey while no gradient has passed),
    nodes framed by module when ``cluster`` (``"auto"``: when there are parameters). ``steady``
    gives every grad field one width, so an animation's frames keep one layout."""
    a = analysis
    digits = a.digits
    use_color = color_by == "grad" and a.has_grads
    kinds = [n.kind for n in a.nodes]
    framed = cluster is True or (cluster == "auto" and "parameter" in kinds)
    dot = new_digraph("computation_graph", rankdir, title)
    dot.attr("edge", arrowsize="0.6")
    horizontal = rankdir in ("LR", "RL")
    kinds_seen: list[str] = []
    any_health = False
    statements: dict[str | None, list[Statement]] = defaultdict(list)
    for n in a.nodes:
        if n.kind not in kinds_seen and n.kind != "operation":
            kinds_seen.append(n.kind)
        fields = [escape_record(n.short)] if n.short else []  # no blank cell for a long formula
        if show_data:
            fields.append(f"data {format_number(n.data, digits)}")
        if show_grad and a.has_grads:
            text = format_number(n.grad, digits) if n.grad is not None else ""
            if steady:
                text = text.ljust(digits + 5, "\u2007")  # figure space: as wide as a digit
            fields.append(f"grad {text}")
        label = " | ".join(fields) or " "
        attrs = {"shape": "record", "style": "filled", "fillcolor": FILL[n.kind], "label": "{" + label + "}" if horizontal else label}
        tooltip = f"{n.kind}: data {n.data!r}" + (f", grad {n.grad!r}" if n.grad is not None else "")
        state = next((m for m in ("vanishing", "exploding") if m in n.marks), None)
        if state is not None:
            any_health = True
            attrs.update(health_attrs(state))
            tooltip += f" ({state} gradient)"
        if n.kind == "constant":
            attrs["fontcolor"] = "#555555"
        if "root" in n.marks:
            attrs["penwidth"] = attrs.get("penwidth", "2")
        if "highlight" in n.marks:
            attrs.update(color=HIGHLIGHT_COLOR, penwidth="3")
        attrs["tooltip"] = tooltip
        module = n.module if framed else None
        statements[module].append(("node", n.id, attrs))
        if n.op is not None:
            op = n.value.op
            op_attrs = {
                "label": n.sign, "shape": "ellipse", "style": "filled", "fillcolor": OP_FILL,
                "fontsize": "10", "width": "0.3", "height": "0.3", "margin": "0.02",
                "tooltip": f"{op.name}: {op.format(*[a.node(p).short or '·' for p in n.parents])}".replace("\\", "\\\\")
                if op.arity != -1 else f"sum of {len(n.parents)} values",
            }
            if "highlight" in n.marks:
                op_attrs.update(color=HIGHLIGHT_COLOR, penwidth="3")
            statements[module].append(("node", f"{n.id}op", op_attrs))
    write_clusters(dot, statements)

    def attrs_for(flow: float | None) -> dict[str, str]:
        if not use_color:
            return {}
        if flow is None:  # no gradient has reached this edge yet (a frame of an animation)
            return {"color": PENDING_COLOR}
        return edge_style(flow, digits)

    incoming = defaultdict(list)
    for e in a.edges:
        incoming[e.target].append(e)
    for n in a.nodes:
        if n.op is None:
            continue
        edges = incoming[n.id]
        for e in edges:
            dot.edge(e.source, f"{n.id}op", **attrs_for(e.flow))
        # the op -> value edge carries the value's gradient into its rule: lit with its input edges
        lit = edges[0].flow is not None if edges else n.grad is not None
        dot.edge(f"{n.id}op", n.id, **attrs_for(abs(n.grad) if lit and n.grad is not None else None))
    if legend_box and (use_color or len(kinds_seen) > 1):
        dot.node("legend", label=legend(use_color, kinds_seen, use_color and any_health), shape="plaintext", fontsize="9")
    return dot


def collapsed_dot(
    analysis: GraphAnalysis,
    *,
    rankdir: str = "LR",
    color_by: str | None = "grad",
    legend_box: bool = True,
    title: str | None = None,
) -> DrawnGraph:
    """One box per module cluster of the analysis (neurons inside their layer's frame), plus one
    box for the inputs and one for the computation outside every module (the loss); constants
    outside every module are left out. A box shows how many values and parameters it holds and
    its gradient norm (marked when vanishing or exploding); an edge between boxes carries the
    summed flow of the edges it stands for."""
    a = analysis
    digits = a.digits
    box_of: dict[str, str] = {}
    boxes: dict[str, dict] = {}
    for c in a.clusters:
        boxes[c.id] = {"name": c.module, "values": len(c.nodes), "params": len(c.params), "norm": c.grad_norm,
                       "mark": c.mark, "parent": c.parent}
        box_of.update((n, c.id) for n in c.nodes)
    for n in a.nodes:
        if n.id in box_of or n.kind == "constant":
            continue
        name = "inputs" if n.kind == "input" else "output"
        box = boxes.setdefault(name, {"name": name, "values": 0, "params": 0, "norm": None, "mark": None, "parent": None})
        box["values"] += 1
        box_of[n.id] = name
    between: dict[tuple[str, str], float] = defaultdict(float)
    for e in a.edges:
        s, t = box_of.get(e.source), box_of.get(e.target)
        if s is not None and t is not None and s != t:
            between[(s, t)] += e.flow if e.flow is not None else 0.0
    use_color = color_by == "grad" and a.has_grads

    def order(key: str):  # inputs, then modules in numeric order (layers.2 before layers.10), then output
        if key in ("inputs", "output"):
            return (0 if key == "inputs" else 2, ())
        return (1, module_order(boxes[key]["name"]))

    dot = new_digraph("collapsed_graph", rankdir, title)
    any_health = False
    kinds: list[str] = []
    statements: dict[str | None, list[Statement]] = defaultdict(list)
    for key in sorted(boxes, key=order):
        box = boxes[key]
        kind = "parameter" if box["params"] else ("input" if key == "inputs" else "operation")
        if kind != "operation" and kind not in kinds:
            kinds.append(kind)
        parent = box["parent"]
        shown = box["name"][len(parent) + 1:] if parent else box["name"]
        fields = [escape_record(shown), f"{box['values']} values, {box['params']} params"]
        attrs = {"shape": "record", "style": "filled", "fillcolor": FILL[kind]}
        if box["norm"] is not None:
            fields.append(f"grad norm {format_number(box['norm'], digits)}")
            if box["mark"] is not None:
                any_health = True
                attrs.update(health_attrs(box["mark"]))
        label = " | ".join(fields)
        attrs["label"] = label if rankdir in ("LR", "RL") else "{" + label + "}"  # fields stacked: compact boxes
        attrs["tooltip"] = box["name"]
        statements[parent].append(("node", key, attrs))
    write_clusters(dot, statements)
    for (s, t), flow in between.items():
        dot.edge(s, t, **(edge_style(flow, digits) if use_color else {}))
    if legend_box and use_color:
        dot.node("legend", label=legend(True, kinds, any_health), shape="plaintext", fontsize="9")
    return dot


__all__ = ["graph_dot", "collapsed_dot", "check_options", "RANKDIRS", "DrawnGraph", "new_digraph", "escape_record", "edge_style", "health_attrs", "legend", "write_clusters"]
