"""Seeing autodiff: computation graphs drawn with Graphviz (``viz.graph``, ``viz.animate``, laid
out by ``viz.layout``, with or without the system ``dot``) and training plots drawn with matplotlib
(``viz.plots``)."""

from .animate import animate_backward
from .graph import GraphTooLargeError, draw_graph, save_graph
from .layout import GraphvizNotFoundError, svg_from_dot

__all__ = ["draw_graph", "save_graph", "animate_backward", "svg_from_dot", "GraphTooLargeError", "GraphvizNotFoundError"]
