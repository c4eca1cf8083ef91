"""What the studio hands to the rest of the package: the explorer on one point's loss graph (with
the current weights), and the run's outputs written to disk as ``tinygrad-edu circle`` writes them.
"""

from __future__ import annotations

from pathlib import Path

from .. import train
from .._io import atomic_write
from ..engine import Value
from ..serialize import save_model
from ..viz import plots
from .state import Studio, StudioError


def sample_loss(studio: Studio, which: str, index: int) -> Value:
    """Point ``index`` of the ``which`` set's loss, as a graph of Values on a copy of the model with
    the current weights, after ``backward()`` (the parameters' grads are this one sample's)."""
    model, objective, x, target = studio.sample(which, index)
    inputs = [Value(v, label=f"x{i}") for i, v in enumerate(x)]
    loss = objective.sample_loss(model, inputs, target)
    loss.label = "loss"
    loss.backward()
    return loss


def explorer_html(studio: Studio, which: str, index: int) -> str:
    """The explorer (``tinygrad_edu.viz.explore``) on point ``index``'s loss graph, as one
    self-contained HTML document."""
    loss = sample_loss(studio, which, index)  # checks the point first
    try:
        from ..viz import explore
    except ImportError:
        raise StudioError("the graph explorer is not available in this version of tinygrad_edu") from None
    return explore(loss).to_html()


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
            radius=0.5 if task == "circle" else None,
            title=f"{task}, MLP {'-'.join(map(str, [2, *model.sizes]))}: {100 * accuracy:.2f}% of test points correct"),
        "curves.png": plots.plot_curves(history),
    }
    for name, fig in figures.items():
        with atomic_write(out / name, "wb") as f:
            fig.savefig(f, format="png", dpi=120, bbox_inches="tight")
        paths.append(out / name)
    return paths
