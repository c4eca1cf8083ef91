"""Backpropagation as a movie: GIF frames in which the gradients fill in, node by node, in the
engine's backward order, each step applying one operation's derivative rule from the primitive
table. The frames are one :func:`.analysis.analyze` pass (``grads="replay"``, the steps the HTML
explorer plays) seen after each step (:meth:`~.analysis.GraphAnalysis.after`), written as DOT by
:func:`.dot.graph_dot`."""

from __future__ import annotations

import io
import math
from pathlib import Path

from .._io import atomic_write
from ..engine import Value
from . import layout
from .analysis import GraphTooLargeError, analyze, replay_backward
from .dot import check_options, graph_dot


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
    analysis_options = {k: draw_options.pop(k) for k in ("digits", "vanishing", "exploding") if k in draw_options}
    render_options = {"rankdir": "LR", "color_by": "grad", "cluster": "auto", **draw_options}
    unknown = set(render_options) - {"rankdir", "show_data", "show_grad", "color_by", "cluster", "legend"}
    if unknown:
        raise TypeError(f"animate_backward got unexpected option(s) {', '.join(sorted(unknown))}")
    check_options(render_options["rankdir"], render_options["color_by"], max_nodes, None, render_options["cluster"])
    if "legend" in render_options:
        render_options["legend_box"] = render_options.pop("legend")
    try:
        analysis = analyze(root, grads="replay", max_nodes=max_nodes, **analysis_options)
    except GraphTooLargeError as err:
        raise GraphTooLargeError(
            f"animate_backward: {err.reason} (max_nodes={max_nodes}); animate a smaller graph (one sample's loss) "
            "or raise max_nodes - every frame is a dot run", err.reason) from None

    steps = analysis.steps
    per_frame = max(1, math.ceil(len(steps) / (max_frames - 2)))
    by_id = {n.id: n.value for n in analysis.nodes}
    root_node = analysis.node(analysis.root)
    # (the picture, its title)
    frames = [(analysis.frame({}, (), ()), "forward pass: data only"),
              (analysis.after(0, highlight=[root_node.value]), "backward starts: d out / d out = 1")]
    for start in range(0, len(steps), per_frame):
        chunk = steps[start:start + per_frame]
        names = ", ".join(analysis.node(s.node).op for s in chunk)
        end = start + len(chunk)
        frames.append((analysis.after(end, highlight=[by_id[s.node] for s in chunk]),
                       f"step {end}/{len(steps)}: through {names if len(names) <= 40 else names[:37] + '...'}"))

    if layout.find_dot() is None:
        raise layout.GraphvizNotFoundError(f"the GIF animation needs Graphviz's dot, which is not on PATH: "
                                           f"{layout.INSTALL_HINT}")
    images = []
    for picture, title in frames:
        graph = graph_dot(picture, title=title, steady=True, **render_options)
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
