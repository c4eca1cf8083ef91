"""Draw a computation graph with Graphviz: a record per ``Value`` (label, data, grad), a small
node per operation, and edges whose colour and width show how much gradient flows along them.

Gradient flow along an edge ``parent -> op`` is ``|the parent's share of the op's VJP applied to the
output's grad|``, read from the primitive table (:mod:`tinygrad_edu.ops`); along ``op -> output``
it is ``|output.grad|``. Big graphs (an MLP over a batch) can be clustered by module, using the
parameter names of :mod:`tinygrad_edu.nn` (``layers.0.neurons.3.w.1``), or collapsed to one box per
neuron or layer.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterable, Literal, Mapping

import graphviz

from ..engine import Value
from . import layout
from .analysis import (LAYOUT_FACTOR, PARAMETER_NAME, assign_modules, collect_values, format_number, gradient_flows, health,
                       layout_size, module_box, module_levels, module_of, node_kind, op_sign, short_names)
from .layout import GraphvizNotFoundError
from .style import (EXPLODING_COLOR, FILL, FLOW_TITLE, HIGHLIGHT_COLOR, OP_FILL, PENDING_COLOR, VANISHING_COLOR,
                    ZERO_FLOW_COLOR, flow_style, legend_stops)


class GraphTooLargeError(ValueError):
    """The graph has more nodes than ``max_nodes``; the message names the ways out, ``reason``
    says what was too large."""

    reason: str = ""


class DrawnGraph(graphviz.Digraph):
    """A ``graphviz.Digraph`` that Jupyter shows as SVG laid out by :func:`layout.svg_from_dot`, so
    it displays without the system ``dot`` too."""

    def _repr_image_svg_xml(self) -> str:
        return layout.svg_from_dot(self.source)


# --- styling helpers -----------------------------------------------------------------------------


def _record_escape(text: str) -> str:
    return re.sub(r'([\\{}|<>"])', r"\\\1", text)


def _edge_style(flow: float, digits: int) -> dict[str, str]:
    """Graphviz attributes of an edge carrying gradient ``flow`` on the fixed scale of :mod:`.style`."""
    look = flow_style(flow)
    attrs = {"color": look["color"], "penwidth": look["width"], "tooltip": f"gradient along this edge: {format_number(flow, digits)}"}
    if look["dash"]:
        attrs["style"] = look["dash"]
    return attrs


def _edge_attrs(use_color: bool, flow: float | None, digits: int) -> dict[str, str]:
    if not use_color:
        return {}
    if flow is None:  # no gradient has reached this edge yet (a frame of an animation)
        return {"color": PENDING_COLOR}
    return _edge_style(flow, digits)


def _health_attrs(state: str) -> dict[str, str]:
    """A node's border for a ``_health`` state: thin blue for vanishing, thick red for exploding."""
    if state == "vanishing":
        return {"color": VANISHING_COLOR, "penwidth": "2"}
    return {"color": EXPLODING_COLOR, "penwidth": "3"}


def _legend(flows: bool, kinds: Iterable[str], health: bool) -> str:
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


# --- drawing -------------------------------------------------------------------------------------

_RANKDIRS = ("LR", "TB", "RL", "BT")
_COLLAPSE = ("neuron", "layer")


def _check_options(rankdir: str, color_by: str | None, max_nodes: int, collapse: str | None, cluster) -> None:
    if rankdir not in _RANKDIRS:
        raise ValueError(f"rankdir must be one of {', '.join(_RANKDIRS)}, got {rankdir!r}")
    if color_by not in ("grad", None):
        raise ValueError(f"color_by must be 'grad' or None, got {color_by!r}")
    if isinstance(max_nodes, bool) or not isinstance(max_nodes, int) or max_nodes < 1:
        raise ValueError(f"max_nodes must be a positive integer, got {max_nodes!r}")
    if collapse not in (None, *_COLLAPSE):
        raise ValueError(f"collapse must be None, 'neuron' or 'layer', got {collapse!r}")
    if cluster not in (True, False, "auto"):
        raise ValueError(f"cluster must be True, False or 'auto', got {cluster!r}")


def _new_digraph(name: str, rankdir: str, title: str | None) -> graphviz.Digraph:
    dot = DrawnGraph(name)
    # nslimit bounds dot's network-simplex passes, which otherwise can take minutes on long edges.
    dot.attr(rankdir=rankdir, fontname="Helvetica", fontsize="11", newrank="true", nslimit="4", nslimit1="4")
    if title:
        dot.attr(label=title, labelloc="t")
    dot.attr("node", fontname="Helvetica", fontsize="11")
    return dot


def _too_large(what: str, max_nodes: int, collapsed: bool) -> GraphTooLargeError:
    if collapsed:
        hint = "use collapse='layer' for fewer boxes, or raise max_nodes"
    else:
        hint = ("draw it collapsed with collapse='layer' or collapse='neuron' (one box per layer or neuron, "
                "from nn parameter names), draw a smaller graph (one sample's loss), or raise max_nodes")
    err = GraphTooLargeError(f"draw_graph: {what} (max_nodes={max_nodes}); {hint} - dot gets slow on big graphs")
    err.reason = what
    return err


def draw_graph(
    root: Value,
    *,
    rankdir: str = "LR",
    show_data: bool = True,
    show_grad: bool = True,
    color_by: Literal["grad"] | None = "grad",
    max_nodes: int = 500,
    cluster: bool | Literal["auto"] = "auto",
    collapse: Literal["neuron", "layer"] | None = None,
    legend: bool = True,
    digits: int = 4,
    vanishing: float = 1e-6,
    exploding: float = 1e3,
    title: str | None = None,
    grads: Mapping[Value, float] | None = None,
    highlight: Iterable[Value] = (),
    passed: Iterable[Value] | None = None,
) -> graphviz.Digraph:
    """Draw the graph that ends at ``root`` as a ``graphviz.Digraph`` (shown inline in Jupyter;
    save it with :func:`save_graph`).

    Each Value is a record (label or short formula, ``data``, ``grad``); each operation is a small
    node named from the primitive table; edges run from inputs through operations to ``root``.
    With ``color_by="grad"`` an edge's colour and width grow with the gradient flowing along it, on
    a fixed log scale (:mod:`tinygrad_edu.viz.style`: pale at 1e-4 or less, dark red at 100 or
    more, so pictures can be compared; zero flow is dashed grey), and a legend explains the scale.
    Fills mark parameters (green), inputs (blue) and constants (grey);
    a blue border marks a vanishing gradient (``|grad| < vanishing``), a thick red one an exploding
    gradient (``|grad| > exploding``, or NaN). If no gradient is set yet (before ``backward``)
    only data is shown.

    ``cluster``: group nodes into boxes by module (``layers.0`` > ``layers.0.neurons.3``) using nn
    parameter names (see :func:`assign_modules` for the rule); ``"auto"`` clusters when there are
    parameters. ``collapse="neuron"`` or ``"layer"`` draws one box per module instead, with its
    parameters' gradient norm (see :func:`draw_collapsed`). A graph with more than ``max_nodes``
    Values (boxes, when collapsed), or whose :func:`layout_size` exceeds ``LAYOUT_FACTOR *
    max_nodes``, is refused at once with :class:`GraphTooLargeError` rather than left to dot.

    ``grads`` overrides the gradients shown (a map from Value to grad; values not in it show an
    empty grad field, and every grad field gets a fixed width so frames keep one layout),
    ``highlight`` outlines some values, and ``passed`` lists the computed values that have passed
    their gradient on so far (only their edges are coloured; default: all);
    :func:`~tinygrad_edu.viz.animate_backward` uses these for its frames.
    """
    _check_options(rankdir, color_by, max_nodes, collapse, cluster)
    if collapse is not None:
        return draw_collapsed(
            root, level=collapse, rankdir=rankdir, color_by=color_by, max_nodes=max_nodes, legend=legend,
            digits=digits, vanishing=vanishing, exploding=exploding, title=title,
        )
    values = collect_values(root, limit=max_nodes)
    if values is None:
        raise _too_large(f"the graph has more than {max_nodes} values", max_nodes, collapsed=False)
    size = layout_size(values)
    if size > LAYOUT_FACTOR * max_nodes:
        raise _too_large(
            f"the graph has {len(values)} values, but its long edges (values reused far apart) make about "
            f"{size} nodes for dot to place, more than {LAYOUT_FACTOR} x max_nodes", max_nodes, collapsed=False,
        )

    grad_of: Callable[[Value], float | None]
    if grads is None:
        has_grad = any(v.grad != 0.0 for v in values)
        grad_of = (lambda v: v.grad) if has_grad else (lambda v: None)
    else:
        grad_of = grads.get
    done = None if passed is None else set(passed)
    flows: dict[Value, tuple[float, ...]] = {}
    for v in values:
        g = grad_of(v)
        if not v.is_leaf and g is not None and (done is None or v in done):
            flows[v] = gradient_flows(v, g)
    any_grad = grads is not None or any(grad_of(v) is not None for v in values)
    use_color = color_by == "grad" and any_grad

    modules = assign_modules(values) if cluster else {}
    if cluster == "auto" and not any(node_kind(v) == "parameter" for v in values):
        modules = {}
    highlight_ids = {id(v) for v in highlight}

    dot = _new_digraph("computation_graph", rankdir, title)
    dot.attr("edge", arrowsize="0.6")

    names = short_names(values, digits)
    ids = {id(v): f"v{i}" for i, v in enumerate(values)}
    horizontal = rankdir in ("LR", "RL")
    kinds_seen: list[str] = []
    any_health = False
    # Graphviz wants a cluster's nodes declared inside it: collect node statements per module.
    statements: dict[str | None, list[tuple[str, str, dict]]] = defaultdict(list)
    for v in values:
        kind = node_kind(v)
        if kind not in kinds_seen and kind != "operation":
            kinds_seen.append(kind)
        fields = [_record_escape(names[v])] if names[v] else []  # no blank cell for a long formula
        if show_data:
            fields.append(f"data {format_number(v.data, digits)}")
        g = grad_of(v)
        if show_grad and any_grad:
            text = format_number(g, digits) if g is not None else ""
            if grads is not None:  # frames of an animation: a fixed-width field keeps the layout still
                text = text.ljust(digits + 5, "\u2007")  # figure space: as wide as a digit
            fields.append(f"grad {text}")
        label = " | ".join(fields) or " "
        attrs = {"shape": "record", "style": "filled", "fillcolor": FILL[kind], "label": "{" + label + "}" if horizontal else label}
        tooltip = f"{kind}: data {v.data!r}" + (f", grad {g!r}" if g is not None else "")
        state = health(g, vanishing, exploding) if (g is not None and kind != "constant") else None
        if state is not None:
            any_health = True
            attrs.update(_health_attrs(state))
            tooltip += f" ({state} gradient)"
        if kind == "constant":
            attrs["fontcolor"] = "#555555"
        if v is root:
            attrs["penwidth"] = attrs.get("penwidth", "2")
        if id(v) in highlight_ids:
            attrs.update(color=HIGHLIGHT_COLOR, penwidth="3")
        attrs["tooltip"] = tooltip
        module = modules.get(v)
        statements[module].append(("node", ids[id(v)], attrs))
        if not v.is_leaf:
            op = v.op
            op_attrs = {
                "label": op_sign(op), "shape": "ellipse", "style": "filled", "fillcolor": OP_FILL,
                "fontsize": "10", "width": "0.3", "height": "0.3", "margin": "0.02",
                "tooltip": f"{op.name}: {op.format(*[names[p] or '·' for p in v.parents])}".replace("\\", "\\\\")
                if op.arity != -1 else f"sum of {len(v.parents)} values",
            }
            if id(v) in highlight_ids:
                op_attrs.update(color=HIGHLIGHT_COLOR, penwidth="3")
            statements[module].append(("node", f"{ids[id(v)]}op", op_attrs))

    _emit_clusters(dot, statements)

    for v in values:
        if v.is_leaf:
            continue
        op_id = f"{ids[id(v)]}op"
        vflows = flows.get(v)
        for i, p in enumerate(v.parents):
            dot.edge(ids[id(p)], op_id, **_edge_attrs(use_color, vflows and vflows[i], digits))
        # the op -> value edge carries the value's gradient into its rule: lit in the same frame
        dot.edge(op_id, ids[id(v)], **_edge_attrs(use_color, None if vflows is None else abs(grad_of(v)), digits))

    if legend and (use_color or len(kinds_seen) > 1):
        dot.node("legend", label=_legend(use_color, kinds_seen, use_color and any_health), shape="plaintext", fontsize="9")
    return dot


def _emit_clusters(dot: graphviz.Digraph, statements: Mapping[str | None, list[tuple[str, str, dict]]],
                   ids: Mapping[str, str] | None = None) -> None:
    """Write node statements into nested ``cluster_`` subgraphs, one per module level; ``ids``
    gives some modules' frames an SVG id."""
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


def draw_collapsed(
    root: Value,
    *,
    level: Literal["neuron", "layer"] = "layer",
    rankdir: str = "LR",
    color_by: Literal["grad"] | None = "grad",
    max_nodes: int = 500,
    legend: bool = True,
    digits: int = 4,
    vanishing: float = 1e-6,
    exploding: float = 1e3,
    title: str | None = None,
) -> graphviz.Digraph:
    """One box per module instead of one per Value: per neuron (``layers.0.neurons.3``, inside
    a box per layer) or per layer (``layers.0``), plus one box for all inputs and one for the
    computation outside every module (the loss). Constants are left out. Each box shows how
    many values and parameters it holds and, after ``backward``, the norm of its parameters'
    gradients (marked when vanishing or exploding); an edge between boxes carries the summed
    gradient flow of the edges it stands for. Modules come from nn parameter names
    (see :func:`assign_modules`)."""
    _check_options(rankdir, color_by, max_nodes, level, True)
    if level is None:
        raise ValueError("level must be 'neuron' or 'layer'")
    values = collect_values(root)
    modules = assign_modules(values)
    if not any(m is not None for m in modules.values()):
        raise ValueError(
            "draw_graph: collapse needs parameters named like nn's (layers.0.neurons.3.w.1) to find modules; "
            "this graph has none, so draw it without collapse"
        )
    has_grad = any(v.grad != 0.0 for v in values)

    def group_of(v: Value) -> str | None:
        module = modules[v]
        if module is not None:
            return module_box(module, level)
        kind = node_kind(v)
        if kind == "constant":
            return None
        return "inputs" if kind == "input" else "output"

    groups: dict[str, dict] = {}
    group = {}
    for v in values:
        name = group_of(v)
        group[v] = name
        if name is None:
            continue
        info = groups.setdefault(name, {"values": 0, "params": 0, "sq": 0.0})
        info["values"] += 1
        if node_kind(v) == "parameter":
            info["params"] += 1
            info["sq"] += v.grad * v.grad
        if len(groups) > max_nodes:
            raise _too_large(f"the collapsed graph has more than {max_nodes} boxes", max_nodes, collapsed=True)

    between: dict[tuple[str, str], float] = defaultdict(float)
    for v in values:
        if v.is_leaf:
            continue
        flows = gradient_flows(v) if has_grad else (0.0,) * len(v.parents)
        for p, f in zip(v.parents, flows):
            a, b = group[p], group[v]
            if a is not None and b is not None and a != b:
                between[(a, b)] += f
    use_color = color_by == "grad" and has_grad

    def order(name: str):  # inputs, then modules in numeric order (layers.2 before layers.10), then output
        if name in ("inputs", "output"):
            return (0 if name == "inputs" else 2, ())
        return (1, tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in name.split(".")))

    groups = dict(sorted(groups.items(), key=lambda item: order(item[0])))
    dot = _new_digraph("collapsed_graph", rankdir, title)
    horizontal = rankdir in ("LR", "RL")
    any_health = False
    kinds: list[str] = []
    statements: dict[str | None, list[tuple[str, str, dict]]] = defaultdict(list)
    ids = {name: f"g{i}" for i, name in enumerate(groups)}
    for name, info in groups.items():
        kind = "parameter" if info["params"] else ("input" if name == "inputs" else "operation")
        if kind != "operation" and kind not in kinds:
            kinds.append(kind)
        # In the neuron view, neurons sit inside a box for their layer and are named within it.
        module = None if name in ("inputs", "output") else _collapsed_parent(name, level)
        shown = name[len(module) + 1:] if module else name
        fields = [_record_escape(shown), f"{info['values']} values, {info['params']} params"]
        attrs = {"shape": "record", "style": "filled", "fillcolor": FILL[kind]}
        if info["params"] and has_grad:
            norm = math.sqrt(info["sq"])
            fields.append(f"grad norm {format_number(norm, digits)}")
            state = health(norm, vanishing, exploding)
            if state is not None:
                any_health = True
                attrs.update(_health_attrs(state))
        label = " | ".join(fields)
        attrs["label"] = label if horizontal else "{" + label + "}"  # fields stacked: compact boxes
        attrs["tooltip"] = name
        statements[module].append(("node", ids[name], attrs))
    _emit_clusters(dot, statements)
    for (a, b), f in between.items():
        attrs = _edge_style(f, digits) if use_color else {}
        dot.edge(ids[a], ids[b], **attrs)
    if legend and use_color:
        dot.node("legend", label=_legend(True, kinds, any_health), shape="plaintext", fontsize="9")
    return dot


def _collapsed_parent(module: str, level: str) -> str | None:
    """The cluster a collapsed box is drawn in: a neuron inside its layer, a layer at top level."""
    if level == "layer":
        return None
    levels = module_levels(module)
    return levels[-2] if len(levels) > 1 else None


# --- Jupyter ------------------------------------------------------------------------------------

#: A bare Value in Jupyter is drawn when its graph has at most this many values (else only its repr).
NOTEBOOK_MAX_NODES = 150


def value_mimebundle(value: Value, include=None, exclude=None) -> dict[str, str]:
    """What Jupyter shows for a bare ``Value`` (``Value._repr_mimebundle_``): its text repr and, when
    the graph is small enough (:data:`NOTEBOOK_MAX_NODES`) and Graphviz can lay it out, the drawn
    graph as SVG. A huge graph is refused at once, so displaying one costs no layout time."""
    def wanted(mime: str) -> bool:
        return (include is None or mime in include) and not (exclude and mime in exclude)

    bundle = {"text/plain": repr(value)}
    if wanted("image/svg+xml"):
        try:
            bundle["image/svg+xml"] = layout.svg_from_dot(draw_graph(value, max_nodes=NOTEBOOK_MAX_NODES).source)
        except (GraphTooLargeError, GraphvizNotFoundError, layout.LayoutError):
            pass
    return {mime: data for mime, data in bundle.items() if wanted(mime)}


# --- saving --------------------------------------------------------------------------------------


def save_graph(graph: graphviz.Digraph, path: str | Path) -> Path:
    """Write ``graph`` to ``path`` in the format its suffix names: ``.svg`` (works everywhere, see
    :mod:`tinygrad_edu.viz.layout`), ``.png`` or ``.pdf`` (need Graphviz's ``dot``), or ``.dot``/``.gv``
    (the DOT source). The file is replaced atomically. Returns the path.

    When the format cannot be rendered here (no ``dot`` for PNG or PDF), the DOT source is written
    next to it (``graph.png`` -> ``graph.dot``) and :class:`GraphvizNotFoundError` says so in one
    line, with how to install Graphviz."""
    path = Path(path)
    try:
        return layout.render_to_file(graph.source, path)
    except GraphvizNotFoundError as err:
        source = layout.render_to_file(graph.source, path.with_suffix(".dot"))
        raise GraphvizNotFoundError(f"{path} not written: {err}; wrote the DOT source to {source} instead "
                                    f"(then: dot -T{path.suffix.lstrip('.').lower()} {source} -o {path})") from None


__all__ = [
    "draw_graph", "draw_collapsed", "save_graph", "DrawnGraph", "value_mimebundle", "NOTEBOOK_MAX_NODES", "collect_values", "node_kind", "module_of", "assign_modules",
    "gradient_flows", "layout_size", "LAYOUT_FACTOR", "GraphTooLargeError", "GraphvizNotFoundError", "PARAMETER_NAME",
]
