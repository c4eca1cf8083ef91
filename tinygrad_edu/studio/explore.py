"""What the studio hands to the rest of the package: the explorer on one point's loss graph (with
the current weights), and the run's outputs written to disk as ``tinygrad-edu circle`` writes them.
"""

from __future__ import annotations

from pathlib import Path

from .. import data, train
from .._io import atomic_write
from ..engine import Value
from ..serialize import save_model
from ..viz import GraphTooLargeError, GraphvizNotFoundError, explore, plots
from .state import Studio, StudioError


def sample_loss(studio: Studio, which: str, index: int) -> tuple[Value, str]:
    """Point ``index`` of the ``which`` set's loss, as a graph of Values on a copy of the model with
    the current weights, and a title that says which point and when."""
    model, objective, x, target = studio.sample(which, index)
    inputs = [Value(v, label=f"x{i}") for i, v in enumerate(x)]
    loss = objective.sample_loss(model, inputs, target)
    loss.label = "loss"
    with studio.lock:
        when = f"epoch {studio.epoch}" + (f" + {studio.batch} batches" if studio.batch else "")
    title = (f"The loss of {which} point {index} at ({x[0]:.3f}, {x[1]:.3f}), class {target:g}, "
             f"with the weights after {when}")
    return loss, title


def explorer_html(studio: Studio, which: str, index: int) -> str:
    """The explorer (:func:`tinygrad_edu.viz.explore`) on point ``index``'s loss graph, stepped
    through forward and backward, as one self-contained HTML document."""
    loss, title = sample_loss(studio, which, index)
    try:
        return explore(loss, title=title).to_html()
    except (GraphTooLargeError, GraphvizNotFoundError) as err:
        raise StudioError(f"the explorer cannot show this network: {err}") from None


def save_views(studio: Studio, out: Path) -> list[Path]:
    """Write ``model.json`` (what ``tinygrad-edu predict`` loads), ``decision_boundary.png`` and
    ``curves.png`` of the current run into ``out``, each atomically; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    doc = studio.model_document()
    model, objective, _, _ = studio.sample("train", 0)
    with studio.lock:
        X, y = studio.X_test.copy(), studio.y_test.copy()
        history = train.History(**{k: list(v) if isinstance(v, list) else v
                                   for k, v in studio.history.to_dict().items()})
        task = studio.config["task"]
    paths = [save_model(model, out / "model.json", metadata=doc["metadata"])]
    accuracy = doc["metadata"]["test_accuracy"]
    figures = {
        "decision_boundary.png": plots.plot_decision_boundary(
            lambda pts: train.predict_proba(model, pts, loss=objective, engine="batched"), X, y,
            radius=0.5 if task == "circle" else None, class_names=data.CLASS_NAMES[task],
            title=f"{task}, MLP {'-'.join(map(str, [2, *model.sizes]))}: {100 * accuracy:.2f}% of test points correct"),
        "curves.png": plots.plot_curves(history),
    }
    for name, fig in figures.items():
        with atomic_write(out / name, "wb") as f:
            fig.savefig(f, format="png", dpi=120, bbox_inches="tight")
        paths.append(out / name)
    return paths
