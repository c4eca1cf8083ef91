"""Backpropagation as a movie: GIF frames in which the gradients fill in, node by node, in reverse
topological order, each step applying one operation's derivative rule from the primitive table."""

from __future__ import annotations

import io
import math
from pathlib import Path

from ..engine import Value
from ..ops import FLOAT_MATH
from .._io import atomic_write
from . import layout
from .graph import GraphTooLargeError, collect_values, draw_graph, flow_scale, gradient_flows


def backward_steps(root: Value, values: list[Value]) -> list[tuple[Value, dict[Value, float]]]:
    """Replay ``root.backward()`` without touching any ``.grad``: for each computed node in
    reverse topological order, the node and a copy of all gradients known after pushing its
    gradient to its parents (the gradients of this backward alone, as if all started at 0)."""
    grads: dict[Value, float] = {root: 1.0}
    steps = []
    for v in reversed(values):
        if v.is_leaf:
            continue
        local = v.op.vjp(FLOAT_MATH, grads.get(v, 0.0), v.data, *[p.data for p in v.parents])
        for p, gp in zip(v.parents, local):
            grads[p] = grads.get(p, 0.0) + gp
        steps.append((v, dict(grads)))
    return steps


def animate_backward(
    root: Value,
    path: str | Path,
    *,
    max_frames: int = 60,
    frame_ms: int = 800,
    max_nodes: int = 150,
    dpi: int = 96,
    max_size: tuple[int, int] = (1600, 900),
    **draw_options,
) -> Path:
    """Save a GIF of backpropagation from ``root`` to ``path`` and return the path.

    The first frame shows the forward pass (data only); then ``d root / d root = 1``; then one
    frame per operation in reverse topological order (the operation outlined in orange, the
    gradients of its inputs filled in), grouping steps so there are at most ``max_frames``
    frames; the last frame, held longer, is the finished backward. Gradients are those of one
    fresh backward from ``root``; no ``.grad`` is changed. ``draw_options`` go to
    :func:`~tinygrad_edu.viz.draw_graph` (``rankdir``, ``digits``, ...). Frames are scaled down to
    fit ``max_size`` pixels (width, height). Needs Graphviz's ``dot``.
    """
    path = Path(path)
    if path.suffix.lower() != ".gif":
        raise ValueError(f"animate_backward writes a GIF: give a path ending in .gif, got {path.name!r}")
    if isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 3:
        raise ValueError(f"max_frames must be an integer >= 3, got {max_frames!r}")
    for key in ("grads", "highlight", "scale", "title", "collapse"):
        if key in draw_options:
            raise TypeError(f"animate_backward sets {key!r} itself; leave it out")
    values = collect_values(root, limit=max_nodes)
    if values is None:
        err = GraphTooLargeError(
            f"animate_backward: the graph has more than {max_nodes} values (max_nodes={max_nodes}); "
            "animate a smaller graph (one sample's loss) or raise max_nodes - every frame is a dot run"
        )
        err.reason = f"the graph has more than {max_nodes} values"
        raise err

    steps = backward_steps(root, values)
    final = steps[-1][1] if steps else {root: 1.0}
    flows = [abs(final[v]) for v, _ in steps]
    for v, _ in steps:
        flows += gradient_flows(v, final[v])
    scale = flow_scale(flows)  # one colour scale, the finished backward's, for every frame

    per_frame = max(1, math.ceil(len(steps) / (max_frames - 2)))
    frames = [({}, [], "forward pass: data only"), ({root: 1.0}, [root], "backward starts: d out / d out = 1")]
    for start in range(0, len(steps), per_frame):
        chunk = steps[start:start + per_frame]
        names = ", ".join(v.op.name for v, _ in chunk)
        end = start + len(chunk)
        frames.append((chunk[-1][1], [v for v, _ in chunk],
                       f"step {end}/{len(steps)}: through {names if len(names) <= 40 else names[:37] + '...'}"))

    options = {"max_nodes": max_nodes, **draw_options}
    if layout.find_dot() is None:
        raise layout.GraphvizNotFoundError(f"the GIF animation needs Graphviz's dot, which is not on PATH: "
                                           f"{layout.INSTALL_HINT}")
    images = []
    for grads, highlight, title in frames:
        graph = draw_graph(root, grads=grads, highlight=highlight, scale=scale, title=title, **options)
        # A bounded canvas: rasterising a long chain at full size takes dot seconds per frame.
        graph.attr(dpi=str(dpi), size=f"{max_size[0] / dpi:.2f},{max_size[1] / dpi:.2f}")
        images.append(layout.render(graph.source, "png"))
    _write_gif(images, path, frame_ms)
    return path


def _write_gif(pngs: list[bytes], path: Path, frame_ms: int) -> None:
    from PIL import Image  # matplotlib depends on Pillow

    frames = [Image.open(io.BytesIO(png)).convert("RGB") for png in pngs]
    # dot may make frames a few pixels apart in size: pad all onto one white canvas.
    width = max(f.width for f in frames)
    height = max(f.height for f in frames)
    canvases = []
    for frame in frames:
        canvas = Image.new("RGB", (width, height), "white")
        canvas.paste(frame, ((width - frame.width) // 2, 0))
        canvases.append(canvas)
    durations = [frame_ms] * len(canvases)
    durations[-1] = frame_ms * 4
    with atomic_write(path, "wb") as f:
        canvases[0].save(f, format="GIF", save_all=True, append_images=canvases[1:], duration=durations, loop=0,
                         optimize=False)


__all__ = ["animate_backward", "backward_steps"]
