"""Seeing autodiff: computation graphs analysed once (``viz.analysis``) and drawn with Graphviz
(``viz.graph``, ``viz.animate``) or explored step by step in the browser (``viz.explorer``), laid
out by ``viz.layout``, with or without the system ``dot``) and training plots drawn with matplotlib
(``viz.plots``)."""

from .animate import animate_backward
from .explorer import Explorer, explore
from .graph import GraphTooLargeError, draw_graph, save_graph
from .layout import GraphvizNotFoundError, svg_from_dot

__all__ = ["explore", "Explorer", "draw_graph", "save_graph", "animate_backward", "svg_from_dot", "GraphTooLargeError", "GraphvizNotFoundError"]
