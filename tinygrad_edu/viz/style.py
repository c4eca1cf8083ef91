"""How the pictures look, shared by every renderer: fills by node kind, the gradient-health
borders, and the colour scale of gradient flow.

The flow scale is absolute, so one picture can be compared with another: an edge's colour and
width say how large the gradient along it is on a fixed log scale from ``FLOW_LOW`` (pale, thin)
to ``FLOW_HIGH`` (dark red, thick), not relative to the largest gradient of that graph.
"""

from __future__ import annotations

import math

# Fills say what a node is; a border says whether its gradient is healthy.
FILL = {"parameter": "#dff0d8", "input": "#d9e8fb", "constant": "#f2f2f2", "operation": "#ffffff"}
OP_FILL = "#fff6d5"
VANISHING_COLOR = "#3b6fd6"
EXPLODING_COLOR = "#d62728"
ZERO_FLOW_COLOR = "#c8c8c8"
HIGHLIGHT_COLOR = "#ff8c00"
#: The explorer's highlighted values (gradcheck's culprits): orange there means the current step.
CULPRIT_COLOR = "#c2185b"
PENDING_COLOR = "#e4e4e4"

#: The flow scale's ends: gradients at most FLOW_LOW look alike (palest), at least FLOW_HIGH alike (darkest).
FLOW_LOW, FLOW_HIGH = 1e-4, 1e2
#: What the legend calls the scale, in plain words.
FLOW_TITLE = "gradient along the edge (size)"
# From little gradient (pale blue-grey) to much (dark red); luma falls monotonically.
_SCALE = ((0.0, (190, 200, 220)), (0.5, (240, 140, 60)), (1.0, (150, 0, 30)))


def flow_position(flow: float) -> float | None:
    """Where ``|flow|`` sits on the fixed log scale: 0 at or below FLOW_LOW, 1 at or above
    FLOW_HIGH; ``None`` for no flow (0) or NaN."""
    flow = abs(flow)
    if not flow > 0.0:
        return None
    t = (math.log10(flow) - math.log10(FLOW_LOW)) / (math.log10(FLOW_HIGH) - math.log10(FLOW_LOW))
    return min(max(t, 0.0), 1.0)


def color_at(t: float) -> str:
    """The colour at position ``t`` (0..1) of the flow scale, as ``#rrggbb``."""
    t = min(max(t, 0.0), 1.0)
    for (t0, c0), (t1, c1) in zip(_SCALE, _SCALE[1:]):
        if t <= t1:
            f = (t - t0) / (t1 - t0)
            return "#%02x%02x%02x" % tuple(round(a + (b - a) * f) for a, b in zip(c0, c1))
    return "#%02x%02x%02x" % _SCALE[-1][1]


def flow_style(flow: float) -> dict[str, str]:
    """An edge carrying gradient ``flow``: ``color``, ``width`` (points) and ``dash``
    (``"dashed"`` for no gradient, ``"dotted"`` for NaN, else ``""``)."""
    if math.isnan(flow):
        return {"color": EXPLODING_COLOR, "width": "1.5", "dash": "dotted"}
    t = flow_position(flow)
    if t is None:
        return {"color": ZERO_FLOW_COLOR, "width": "0.7", "dash": "dashed"}
    return {"color": color_at(t), "width": f"{0.8 + 3.2 * t:.2f}", "dash": ""}


def legend_stops() -> list[tuple[str, float, str]]:
    """The flow scale's legend, largest first: (colour, flow, text) at four points of the scale."""
    stops = []
    for t in (1.0, 2 / 3, 1 / 3, 0.0):
        flow = 10 ** (math.log10(FLOW_LOW) + t * (math.log10(FLOW_HIGH) - math.log10(FLOW_LOW)))
        prefix = "≥ " if t == 1.0 else ("≤ " if t == 0.0 else "")
        stops.append((color_at(t), flow, f"{prefix}{flow:g}"))
    return stops
