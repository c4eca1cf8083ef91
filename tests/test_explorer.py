"""Tests of tinygrad_edu.viz.explorer without a browser: the step data against the engine, the
page's self-containment, saving, Jupyter and the errors. tests/test_explorer_browser.py drives it."""

from __future__ import annotations

import html
import json
import math
import re

import pytest

from tinygrad_edu import Value
from tinygrad_edu.engine import topological_order
from tinygrad_edu.nn import MLP, binary_cross_entropy_with_logits
from tinygrad_edu.viz import Explorer, GraphTooLargeError, draw_graph, explore
from tinygrad_edu.viz.analysis import format_number

pytestmark = pytest.mark.usefixtures("require_svg_layout")


def neuron():
    x, w, b = Value(0.5, label="x"), Value(-1.5, label="w"), Value(0.2, label="b")
    y = (x * w + b).tanh()
    y.label = "y"
    return y, x, w, b


def mlp_loss(seed=0):
    model = MLP(2, [8, 1], activation="relu", output_activation="sigmoid", seed=seed)
    xs = [Value(0.3, label="x0"), Value(-0.2, label="x1")]
    loss = binary_cross_entropy_with_logits(model.logits(xs), 1.0)
    loss.label = "loss"
    return loss, model


def test_steps_fill_values_forward_then_gradients_backward_matching_the_engine():
    y, x, w, b = neuron()
    data = explore(y).data
    y.backward()
    order = topological_order(y)
    by_id = {f"n{i}": v for i, v in enumerate(order)}
    assert [n["id"] for n in data["nodes"]] == list(by_id)
    phases = [s["phase"] for s in data["steps"]]
    computed = [v for v in order if not v.is_leaf]
    assert phases == ["start"] + ["forward"] * len(computed) + ["seed"] + ["backward"] * len(computed)
    # forward: topological order, the engine's values; backward: the engine's reverse order
    forward = [s for s in data["steps"] if s["phase"] == "forward"]
    assert [by_id[s["node"]] for s in forward] == computed
    for s in forward:
        assert s["value"][0] == by_id[s["node"]].data
    backward = [s for s in data["steps"] if s["phase"] == "backward"]
    assert [by_id[s["node"]] for s in backward] == computed[::-1]
    # every node's final gradient is the engine's, and the engine's is the closed form
    for node in data["nodes"]:
        assert node["grad"] == pytest.approx(by_id[node["id"]].grad, rel=1e-12)
    t = math.tanh(0.5 * -1.5 + 0.2)
    assert w.grad == pytest.approx(0.5 * (1 - t * t), rel=1e-12)


def test_exploring_changes_no_gradient():
    y, x, w, b = neuron()
    explore(y)
    assert (x.grad, w.grad, b.grad, y.grad) == (0.0, 0.0, 0.0, 0.0)


def test_the_chain_rule_is_written_out_with_numbers_and_a_reused_value_sums_its_contributions():
    a, b = Value(3.0, label="a"), Value(4.0, label="b")
    z = a * b + a
    z.label = "z"
    data = explore(z).data
    ids = {n["label"]: n["id"] for n in data["nodes"] if n["label"]}
    steps = [s for s in data["steps"] if s["phase"] == "backward"]
    add, mul = steps
    assert add["rule"] == "out = (a + b)" and add["upstream"][0] == 1.0
    to_a = next(c for c in add["contributions"] if c["parent"] == ids["a"])
    assert (to_a["local"][0], to_a["value"][0], to_a["total"][0], to_a["count"]) == (1.0, 1.0, 1.0, 1)
    to_a = next(c for c in mul["contributions"] if c["parent"] == ids["a"])
    # d(a*b)/da = b = 4; a's gradient is now 1 + 4, the sum of both uses
    assert to_a["formula"] == "d (a * b) / d a = b"
    assert (to_a["local"][0], to_a["value"][0], to_a["total"][0], to_a["count"]) == (4.0, 4.0, 5.0, 2)


def test_node_details_carry_the_rule_from_the_table():
    y, *_ = neuron()
    nodes = {n["name"]: n for n in explore(y).data["nodes"]}
    assert nodes["y"]["rule"] == "out = tanh(x)"
    assert nodes["y"]["derivatives"] == ["d out / d x = 1 - out * out"]
    assert nodes["x"]["kind"] == "input" and nodes["x"]["op"] is None


def test_a_small_mlp_starts_collapsed_by_neuron_with_gradient_norms():
    loss, model = mlp_loss()
    explorer = explore(loss)
    data = explorer.data
    assert len(data["nodes"]) > 40
    assert data["collapse"] == "neuron" and data["start_view"] == "collapsed"
    modules = sorted(c["module"] for c in data["clusters"])
    assert modules == sorted([f"layers.0.neurons.{i}" for i in range(8)] + ["layers.1.neurons.0"])
    assert set(data["views"]) == {"collapsed", "all"} | {c["id"] for c in data["clusters"]}
    loss.backward()
    params = dict(model.named_parameters())
    for cluster in data["clusters"]:
        want = math.sqrt(sum(p.grad ** 2 for name, p in params.items() if name.startswith(cluster["module"] + ".")))
        assert float(cluster["norms"][-1][1]) == pytest.approx(want, rel=1e-3)  # shown to 4 digits


def test_collapse_by_layer_and_no_collapse():
    loss, _ = mlp_loss()
    assert [c["module"] for c in explore(loss, collapse="layer").data["clusters"]] == ["layers.0", "layers.1"]
    data = explore(loss, collapse=None).data
    assert data["clusters"] == [] and set(data["views"]) == {"all"}


def test_the_page_is_one_self_contained_document_that_loads_nothing():
    y, *_ = neuron()
    page = explore(y, title="a <neuron> & co").to_html()
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>a &lt;neuron&gt; &amp; co</title>" in page
    assert not re.search(r"<(script|img|link|iframe)[^>]*\s(src|href)=", page, flags=re.I)
    assert not re.search(r"url\(|@import|fetch\(|XMLHttpRequest", page)
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    payload = re.search(r'<script type="application/json" data-role="data">(.*?)</script>', page, re.S).group(1)
    assert json.loads(payload)["title"] == "a <neuron> & co"  # '<' is escaped inside the script


def test_the_data_script_holds_any_text_unescaped_but_what_could_end_or_comment_it():
    y, *_ = neuron()
    title = "y = tanh(x\u00b7w + b) </script><!-- </SCRIPT"
    page = explore(y, title=title).to_html()
    payload = re.search(r'<script type="application/json" data-role="data">(.*?)</script>', page, re.S).group(1)
    assert json.loads(payload)["title"] == title
    assert "</" not in payload and "<!" not in payload
    assert "tanh(x\u00b7w + b) <\\/script>\\u003c!-- <\\/SCRIPT" in payload  # the middle dot as itself
    assert "\\u" not in payload.replace("\\u003c!", "") and "data \u2007" in payload  # not \\u2007, the figure space


def test_the_layouts_set_the_labels_font_once_on_the_svg_element():
    loss, _ = mlp_loss()
    for key, view in explore(loss).data["views"].items():
        svg = view["svg"]
        assert svg.startswith("<svg font-family='Helvetica,sans-Serif' font-size='11.00' text-anchor='middle' "), key
        texts = re.findall(r"<text[^>]*>", svg)
        assert texts and not any("font-family" in t or "text-anchor" in t for t in texts), key
        assert all("font-size='10.00'" in t for t in texts if "font-size" in t), key  # captions and signs: 10pt
        assert "<!--" not in svg and "\n" not in svg and "<title>" not in svg and '"' not in svg, key


def test_data_is_plain_json():
    loss, _ = mlp_loss()
    data = explore(loss).data
    assert json.loads(json.dumps(data, allow_nan=False)) == data


def test_save_writes_the_page_and_jupyter_shows_it_in_an_iframe(tmp_path):
    y, *_ = neuron()
    explorer = y.explore()
    assert isinstance(explorer, Explorer)
    path = explorer.save(tmp_path / "graph.html")
    assert path.read_text(encoding="utf-8") == explorer.to_html()
    assert [p.name for p in tmp_path.iterdir()] == ["graph.html"]  # no temporary file left
    frame = explorer._repr_html_()
    assert frame.startswith("<iframe srcdoc=") and 'sandbox="allow-scripts"' in frame
    srcdoc = re.search(r'srcdoc="([^"]*)"', frame).group(1)
    assert html.unescape(srcdoc) == explorer.to_html()


def test_forward_only():
    y, *_ = neuron()
    data = explore(y, backward=False).data
    assert {s["phase"] for s in data["steps"]} == {"start", "forward"}


def test_non_finite_numbers_are_shown_as_text():
    x = Value(0.0, label="x")
    y = x.sqrt()  # d sqrt(x)/dx at 0: 1 / (2 * 0) is inf
    data = explore(y).data
    json.dumps(data, allow_nan=False)
    grads = {n["label"]: n["grad"] for n in data["nodes"] if n["label"]}
    assert grads["x"] in ("inf", "nan")


def test_bad_arguments_say_what_is_allowed():
    y, *_ = neuron()
    with pytest.raises(TypeError, match="needs a Value"):
        explore(1.0)
    with pytest.raises(ValueError, match="collapse must be"):
        explore(y, collapse="module")
    with pytest.raises(ValueError, match="nn's"):
        explore(y, collapse="neuron")
    with pytest.raises(ValueError, match="rankdir"):
        explore(y, rankdir="XY")
    with pytest.raises(ValueError, match="max_nodes"):
        explore(y, max_nodes=0)
    with pytest.raises(GraphTooLargeError, match="more than 3 values"):
        explore(y, max_nodes=3)


def test_the_static_drawing_and_the_explorer_show_the_same_numbers():
    loss, model = mlp_loss()
    loss.backward()  # one backward: the engine's .grad (the drawing) and the replay (the explorer) agree
    data = explore(loss).data
    source = draw_graph(loss).source
    records = re.findall(r'^\s*(n\d+) \[label="\{?(?:[^|"]*\| )?data ([^ |]+) \| grad ([^ |}]+)', source, re.M)
    shown = {node_id: (value, grad) for node_id, value, grad in records}
    assert len(shown) == len(data["nodes"])
    for node in data["nodes"]:
        assert shown[node["id"]] == (format_number(node["data"]), format_number(node["grad"]))
    # every edge's flow: the drawing's tooltip, the explorer's contribution (|upstream x local|)
    drawn = re.findall(r'^\s*(n\d+) -> (n\d+)op \[.*tooltip="gradient along this edge: ([^"]+)"', source, re.M)
    played = [(c["parent"], s["node"], c["slot"], format_number(abs(c["value"][0])))
              for s in data["steps"] if s["phase"] == "backward" for c in s["contributions"]]
    assert sorted(drawn) == sorted((parent, node, flow) for parent, node, _, flow in played)
    assert len(drawn) == len(data["edges"])
    # each neuron's gradient norm: the collapsed drawing's box, the explorer's cluster
    boxes = dict((m[1], m[0]) for m in re.findall(r'label="[^"]*grad norm ([^ "|}]+)[^"]*" .*tooltip="([^"]+)"',
                                                    draw_graph(loss, collapse="neuron").source))
    norms = {c["module"]: c["norms"][-1][1] for c in data["clusters"]}
    assert len(norms) == 9 and boxes == norms


def test_highlight_marks_values_and_their_module_in_the_data():
    loss, model = mlp_loss()
    w = dict(model.named_parameters())["layers.0.neurons.3.w.1"]

    class Culprit:  # what gradcheck's culprits look like to explore: a record with a .node
        node = w

    for highlight in ([w], [Culprit()]):
        data = explore(loss, highlight=highlight).data
        assert [n["label"] for n in data["nodes"] if n["highlight"]] == ["layers.0.neurons.3.w.1"]
        assert [c["module"] for c in data["clusters"] if c["highlight"]] == ["layers.0.neurons.3"]
    assert 'data-legend="culprit"' in explore(loss, highlight=[w]).to_html()
    assert 'data-legend="culprit"' not in explore(loss).to_html()
    with pytest.raises(TypeError, match="highlight takes Values"):
        explore(loss, highlight=["layers.0.neurons.3.w.1"])
