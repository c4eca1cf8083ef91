"""Draw a computation graph with Graphviz: a record per ``Value`` (label, data, grad), a small
node per operation, and edges whose colour and width show how much gradient flows along them.

Gradient flow along an edge ``parent -> op`` is ``|the parent's share of the op's VJP applied to the
output's grad|``, read from the primitive table (:mod:`tinygrad_edu.ops`); along ``op -> output``
it is ``|output.grad|``. Big graphs (an MLP over a batch) can be clustered by module, using the
parameter names of :mod:`tinygrad_edu.nn` (``layers.0.neurons.3.w.1``), or collapsed to one box per
neuron or layer. The numbers come from one :func:`~.analysis.analyze` pass, written as DOT by
:mod:`.dot`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Literal, Mapping

import graphviz

from ..engine import Value
from . import layout
from .analysis import (EXPLODING, LAYOUT_FACTOR, PARAMETER_NAME, VANISHING, GraphTooLargeError, analyze, assign_modules,
                       collect_values, gradient_flows, layout_size, module_of, node_kind)
from .dot import DrawnGraph, check_options, collapsed_dot, graph_dot
from .layout import GraphvizNotFoundError
from .style import EXPLODING_COLOR, FILL, HIGHLIGHT_COLOR, PENDING_COLOR, VANISHING_COLOR, ZERO_FLOW_COLOR  # noqa: F401 (re-exported)

# --- drawing -------------------------------------------------------------------------------------


def _too_large(what: str, max_nodes: int, collapsed: bool) -> GraphTooLargeError:
    if collapsed:
        hint = "use collapse='layer' for fewer boxes, or raise max_nodes"
    else:
        hint = ("draw it collapsed with collapse='layer' or collapse='neuron' (one box per layer or neuron, "
                "from nn parameter names), draw a smaller graph (one sample's loss), or raise max_nodes")
    return GraphTooLargeError(f"draw_graph: {what} (max_nodes={max_nodes}); {hint} - dot gets slow on big graphs", what)


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
    ``highlight`` outlines some values (Values, or gradcheck's culprits), and ``passed`` lists the computed values that have passed
    their gradient on so far (only their edges are coloured; default: all);
    :func:`~tinygrad_edu.viz.animate_backward` uses these for its frames.
    """
    check_options(rankdir, color_by, max_nodes, collapse, cluster)
    if collapse is not None:
        return draw_collapsed(
            root, level=collapse, rankdir=rankdir, color_by=color_by, max_nodes=max_nodes, legend=legend,
            digits=digits, vanishing=vanishing, exploding=exploding, title=title,
        )
    try:
        analysis = analyze(root, grads="engine" if grads is None else grads, passed=passed, highlight=highlight,
                           digits=digits, vanishing=vanishing, exploding=exploding, max_nodes=max_nodes)
    except GraphTooLargeError as err:
        raise _too_large(err.reason, max_nodes, collapsed=False) from None
    return graph_dot(analysis, rankdir=rankdir, show_data=show_data, show_grad=show_grad, color_by=color_by,
                     cluster=cluster, legend_box=legend, title=title, steady=grads is not None)


def draw_collapsed(
    root: Value,
    *,
    level: Literal["neuron", "layer"] = "layer",
    rankdir: str = "LR",
    color_by: Literal["grad"] | None = "grad",
    max_nodes: int = 500,
    legend: bool = True,
    digits: int = 4,
    vanishing: float = VANISHING,
    exploding: float = EXPLODING,
    title: str | None = None,
) -> graphviz.Digraph:
    """One box per module instead of one per Value: per neuron (``layers.0.neurons.3``, inside
    a box per layer) or per layer (``layers.0``), plus one box for all inputs and one for the
    computation outside every module (the loss). Constants outside every module are left out.
    Each box shows how many values (constants used only inside it included) and parameters it
    holds and, after ``backward``, the norm of its parameters' gradients (marked when vanishing
    or exploding); an edge between boxes carries the summed gradient flow of the edges it stands
    for. Modules come from nn parameter names (see :func:`assign_modules`)."""
    check_options(rankdir, color_by, max_nodes, level, True)
    if level is None:
        raise ValueError("level must be 'neuron' or 'layer'")
    analysis = analyze(root, level=level, digits=digits, vanishing=vanishing, exploding=exploding)
    if not analysis.clusters:
        raise ValueError(
            "draw_graph: collapse needs parameters named like nn's (layers.0.neurons.3.w.1) to find modules; "
            "this graph has none, so draw it without collapse"
        )
    outside = {"inputs" if n.kind == "input" else "output" for n in analysis.nodes if n.cluster is None and n.kind != "constant"}
    boxes = len(analysis.clusters) + len(outside)
    if boxes > max_nodes:
        raise _too_large(f"the collapsed graph has more than {max_nodes} boxes", max_nodes, collapsed=True)
    return collapsed_dot(analysis, rankdir=rankdir, color_by=color_by, legend_box=legend, title=title)


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
