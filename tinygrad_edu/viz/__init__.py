"""Seeing autodiff: computation graphs drawn with Graphviz (``viz.graph``, ``viz.animate``) and
training plots drawn with matplotlib (``viz.plots``)."""

from .animate import animate_backward
from .graph import GraphTooLargeError, GraphvizNotFoundError, draw_graph, save_graph

__all__ = ["draw_graph", "save_graph", "animate_backward", "GraphTooLargeError", "GraphvizNotFoundError"]
