"""Seeing autodiff: computation graphs drawn with Graphviz (``viz.graph``) and training plots
drawn with matplotlib (``viz.plots``)."""
