"""animate_backward: a GIF whose frames fill in the gradients in reverse topological order."""

import math

import pytest
from PIL import Image

from tinygrad_edu import Value
from tinygrad_edu.viz import GraphTooLargeError, GraphvizNotFoundError, animate_backward
from tinygrad_edu.viz.animate import backward_steps
from tinygrad_edu.viz.graph import collect_values


def neuron_graph():
    x, w, b = Value(0.5, label="x"), Value(-1.5, label="w"), Value(0.2, label="b")
    return x, w, b, (x * w + b).tanh()


def test_steps_replay_backward_in_reverse_topological_order_without_touching_grads():
    x, w, b, y = neuron_graph()
    values = collect_values(y)
    steps = backward_steps(y)
    assert [v.op.name for v, _ in steps] == ["tanh", "add", "mul"]
    d = 1 - math.tanh(0.5 * -1.5 + 0.2) ** 2
    after_tanh = steps[0][1]
    assert x not in after_tanh and w not in after_tanh  # not reached yet
    final = steps[-1][1]
    assert final[x] == pytest.approx(-1.5 * d)
    assert final[w] == pytest.approx(0.5 * d)
    assert final[b] == pytest.approx(d)
    assert all(v.grad == 0.0 for v in values)  # nothing was written to .grad


def test_gif_has_one_frame_per_step_plus_forward_and_seed(tmp_path, require_dot):
    x, w, b, y = neuron_graph()
    path = animate_backward(y, tmp_path / "backprop.gif")
    with Image.open(path) as gif:
        assert gif.format == "GIF"
        assert gif.n_frames == 2 + 3  # forward, d y/d y = 1, then tanh, add, mul
        sizes = set()
        for i in range(gif.n_frames):
            gif.seek(i)
            sizes.add(gif.size)
        assert len(sizes) == 1


def test_frames_are_bounded_by_grouping_steps(tmp_path, require_dot):
    x = Value(0.3, label="x")
    y = x
    for _ in range(40):
        y = (y * 0.9).sin()  # 80 operations
    path = animate_backward(y, tmp_path / "long.gif", max_frames=12)
    with Image.open(path) as gif:
        assert 3 <= gif.n_frames <= 12


def test_bad_arguments(tmp_path):
    _, _, _, y = neuron_graph()
    with pytest.raises(ValueError, match=".gif"):
        animate_backward(y, tmp_path / "a.png")
    with pytest.raises(ValueError, match="max_frames"):
        animate_backward(y, tmp_path / "a.gif", max_frames=1)
    with pytest.raises(TypeError, match="grads"):
        animate_backward(y, tmp_path / "a.gif", grads={})
    total = Value(1.0)
    for _ in range(500):
        total = total + 1.0
    with pytest.raises(GraphTooLargeError, match="max_nodes"):
        animate_backward(total, tmp_path / "a.gif")


def test_without_dot_the_error_says_how_to_install(tmp_path, monkeypatch):
    _, _, _, y = neuron_graph()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(GraphvizNotFoundError, match="apt-get install graphviz"):
        animate_backward(y, tmp_path / "a.gif")
    assert not (tmp_path / "a.gif").exists()
