"""Backpropagation as a movie: GIF frames in which the gradients fill in, node by node, in the
engine's backward order, each step applying one operation's derivative rule from the primitive
table (the steps are :func:`.analysis.replay_backward`'s, the same the HTML explorer plays)."""

from __future__ import annotations

import io
import math
from pathlib import Path

from .._io import atomic_write
from ..engine import Value
from . import layout
from .analysis import replay_backward
from .graph import GraphTooLargeError, collect_values, draw_graph


def backward_steps(root: Value) -> list[tuple[Value, dict[Value, float]]]:
    """Replay ``root.backward()`` without touching any ``.grad``: for each computed node in the
    engine's backward order, the node and a copy of all gradients known after it passed its
    gradient to its parents (the gradients of this backward alone, as if all started at 0)."""
    grads: dict[Value, float] = {root: 1.0}
    steps = []
    for step in replay_backward(root):
        for c in step.contributions:
            grads[c.parent] = c.total
        steps.append((step.node, dict(grads)))
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
    for key in ("grads", "highlight", "passed", "title", "collapse"):
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

    steps = backward_steps(root)
    per_frame = max(1, math.ceil(len(steps) / (max_frames - 2)))
    # (gradients shown, values outlined, values whose edges carry their gradient, title)
    frames = [({}, [], [], "forward pass: data only"),
              ({root: 1.0}, [root], [], "backward starts: d out / d out = 1")]
    for start in range(0, len(steps), per_frame):
        chunk = steps[start:start + per_frame]
        names = ", ".join(v.op.name for v, _ in chunk)
        end = start + len(chunk)
        frames.append((chunk[-1][1], [v for v, _ in chunk], [v for v, _ in steps[:end]],
                       f"step {end}/{len(steps)}: through {names if len(names) <= 40 else names[:37] + '...'}"))

    options = {"max_nodes": max_nodes, **draw_options}
    if layout.find_dot() is None:
        raise layout.GraphvizNotFoundError(f"the GIF animation needs Graphviz's dot, which is not on PATH: "
                                           f"{layout.INSTALL_HINT}")
    images = []
    for grads, highlight, passed, title in frames:
        graph = draw_graph(root, grads=grads, highlight=highlight, passed=passed, title=title, **options)
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
