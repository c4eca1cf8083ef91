"""draw_graph and friends: real SVGs laid out by Graphviz (the system dot and the in-process one),
read back as XML, checked against values and gradients computed here by closed forms."""

import math
import re
import xml.etree.ElementTree as ET

import graphviz
import pytest

from tinygrad_edu import Value
from tinygrad_edu import sum as vsum
from tinygrad_edu.viz import GraphTooLargeError, GraphvizNotFoundError, draw_graph, save_graph, svg_from_dot
from tinygrad_edu.viz.graph import (
    EXPLODING_COLOR,
    FILL,
    PENDING_COLOR,
    VANISHING_COLOR,
    ZERO_FLOW_COLOR,
    assign_modules,
    collect_values,
    module_of,
    node_kind,
)

SVG = "{http://www.w3.org/2000/svg}"


# --- reading an SVG made by Graphviz -------------------------------------------------------------


def render(graph: graphviz.Digraph) -> ET.Element:
    return ET.fromstring(svg_from_dot(graph.source))


def groups(svg: ET.Element, cls: str) -> list[ET.Element]:
    return [g for g in svg.iter(f"{SVG}g") if g.get("class") == cls]


def title(g: ET.Element) -> str:
    return g.find(f"{SVG}title").text


def texts(g: ET.Element) -> list[str]:
    return [t.text.strip() for t in g.iter(f"{SVG}text") if t.text and t.text.strip()]


def value_nodes(svg) -> dict[str, ET.Element]:
    """Record nodes (one per Value) by their first text (the label or formula)."""
    out = {}
    for g in groups(svg, "node"):
        if any(t.startswith("data ") for t in texts(g)):
            out[texts(g)[0] if not texts(g)[0].startswith("data ") else title(g)] = g
    return out


def field(g: ET.Element, name: str) -> float:
    for t in texts(g):
        if t.startswith(name + " "):
            return float(t[len(name) + 1:].replace("\u2007", ""))
    raise AssertionError(f"no {name} field in {texts(g)}")


def outline(g: ET.Element) -> ET.Element:
    return next(g.iter(f"{SVG}polygon"))


def stroke(edge: ET.Element) -> ET.Element:
    """The edge's line (its <path>; dot wraps it in a link when it has a tooltip)."""
    return next(edge.iter(f"{SVG}path"))


def luma(color: str) -> float:
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return 0.299 * r + 0.587 * g + 0.114 * b


def neuron_graph():
    x, w, b = Value(0.5, label="x"), Value(-1.5, label="w"), Value(0.2, label="b")
    return x, w, b, (x * w + b).tanh()


# --- the small graph ----------------------------------------------------------------------------


def test_node_count_and_labels_carry_data_and_grad(any_layout):
    x, w, b, y = neuron_graph()
    y.backward()
    svg = render(draw_graph(y))
    nodes = [g for g in groups(svg, "node") if title(g) != "legend"]
    assert len(nodes) == 6 + 3  # six Values (x, w, b, x*w, +b, tanh) and three operations
    ops = sorted(texts(g)[0] for g in nodes if len(texts(g)) == 1)
    assert ops == ["*", "+", "tanh"]

    t = math.tanh(0.5 * -1.5 + 0.2)
    d = 1 - t * t
    by_label = value_nodes(svg)
    expected = {"x": (0.5, -1.5 * d), "w": (-1.5, 0.5 * d), "b": (0.2, d)}
    for label, (data, grad) in expected.items():
        assert field(by_label[label], "data") == pytest.approx(data, rel=1e-3)
        assert field(by_label[label], "grad") == pytest.approx(grad, rel=1e-3)
    out = next(g for g in by_label.values() if any(s.startswith("tanh(") for s in texts(g)))
    assert field(out, "data") == pytest.approx(t, rel=1e-3)
    assert field(out, "grad") == 1.0


def test_edge_colour_and_width_grow_with_gradient_flow(any_layout):
    x, w, b, y = neuron_graph()
    y.backward()
    svg = render(draw_graph(y))
    names = {title(g): texts(g)[0] for g in groups(svg, "node")}
    d = 1 - math.tanh(0.5 * -1.5 + 0.2) ** 2
    # Expected |local derivative x upstream gradient| per edge, keyed by (tail text, head text).
    expected = {("x", "*"): 1.5 * d, ("w", "*"): 0.5 * d, ("b", "+"): d, ("tanh", None): 1.0}
    seen = []
    for g in groups(svg, "edge"):
        tail, head = title(g).split("->")
        key = (names[tail], names[head])
        if names[tail] == "tanh":
            key = ("tanh", None)
        if key in expected:
            path = stroke(g)
            seen.append((expected[key], luma(path.get("stroke")), float(path.get("stroke-width", "1"))))
    assert len(seen) == 4
    seen.sort()
    flows, lumas, widths = zip(*seen)
    assert len(set(flows)) == 4
    assert list(lumas) == sorted(lumas, reverse=True) and len(set(lumas)) == 4  # more flow: darker
    assert list(widths) == sorted(widths) and len(set(widths)) == 4  # more flow: wider


def test_a_variable_used_twice_gets_two_edges_with_their_own_flows(any_layout):
    x = Value(3.0, label="x")
    y = x * x * 2.0  # dy/dx = 4x = 12, through two slots of the same mul
    y.backward()
    assert x.grad == 12.0
    svg = render(draw_graph(y))
    names = {title(g): texts(g)[0] for g in groups(svg, "node")}
    from_x = [g for g in groups(svg, "edge") if names[title(g).split("->")[0]] == "x"]
    assert len(from_x) == 2
    assert stroke(from_x[0]).get("stroke") == stroke(from_x[1]).get("stroke")


def test_before_backward_only_data_is_shown(any_layout):
    x, w, b, y = neuron_graph()
    svg = render(draw_graph(y))
    all_text = [t for g in groups(svg, "node") for t in texts(g)]
    assert any(t.startswith("data ") for t in all_text)
    assert not any(t.startswith("grad") for t in all_text)
    assert {stroke(g).get("stroke") for g in groups(svg, "edge")} == {"black"}


def test_show_options_and_layout_direction(any_layout):
    x, w, b, y = neuron_graph()
    y.backward()
    svg = render(draw_graph(y, show_data=False, color_by=None, legend=False, rankdir="TB"))
    all_text = [t for g in groups(svg, "node") for t in texts(g)]
    assert not any(t.startswith("data ") for t in all_text)
    assert any(t.startswith("grad ") for t in all_text)
    assert {stroke(g).get("stroke") for g in groups(svg, "edge")} == {"black"}
    assert all(title(g) != "legend" for g in groups(svg, "node"))


def test_parameters_inputs_and_constants_look_different(any_layout):
    p = Value(0.3, label="layers.0.neurons.0.w.0")
    x = Value(2.0, label="x")
    y = p * x + 1.0  # 1.0 is an unlabelled constant
    y.backward()
    svg = render(draw_graph(y))
    fills = {}
    for g in groups(svg, "node"):
        t = texts(g)
        if t and t[0] in ("layers.0.neurons.0.w.0", "x", "1"):
            fills[t[0]] = outline(g).get("fill")
    assert fills == {"layers.0.neurons.0.w.0": FILL["parameter"], "x": FILL["input"], "1": FILL["constant"]}
    assert len(set(fills.values())) == 3


def test_vanishing_and_exploding_gradients_are_marked(any_layout):
    dead = Value(-2.0, label="dead")
    hot = Value(0.5, label="hot")
    fine = Value(1.0, label="fine")
    y = dead.relu() + hot * 5000.0 + fine * 1.0  # grads: 0, 5000, 1
    y.backward()
    nodes = value_nodes(render(draw_graph(y)))
    assert outline(nodes["dead"]).get("stroke") == VANISHING_COLOR
    assert outline(nodes["hot"]).get("stroke") == EXPLODING_COLOR
    assert outline(nodes["fine"]).get("stroke") not in (VANISHING_COLOR, EXPLODING_COLOR)


def test_drawing_changes_no_gradient():
    x, w, b, y = neuron_graph()
    y.backward()
    nodes = collect_values(y)
    before = [v.grad for v in nodes]
    draw_graph(y)
    draw_graph(y, collapse=None, cluster=True)
    assert [v.grad for v in nodes] == before


def test_value_draw_is_the_shortcut_and_jupyter_shows_svg(any_layout):
    x, w, b, y = neuron_graph()
    y.backward()
    graph = y.draw(rankdir="TB")
    assert isinstance(graph, graphviz.Digraph)
    assert graph.source == draw_graph(y, rankdir="TB").source
    bundle = graph._repr_mimebundle_()  # what Jupyter calls to show the graph inline
    ET.fromstring(bundle["image/svg+xml"])


# --- big graphs ---------------------------------------------------------------------------------


def test_past_max_nodes_it_refuses_at_once_naming_the_options():
    x = Value(1.0, label="x")
    total = x
    for _ in range(200_000):  # a long chain; counting stops at max_nodes + 1
        total = total + 1.0
    with pytest.raises(GraphTooLargeError) as info:
        draw_graph(total, max_nodes=500)
    message = str(info.value)
    for option in ("collapse='layer'", "collapse='neuron'", "max_nodes"):
        assert option in message


def test_long_edges_count_against_max_nodes():
    x, y = Value(1.0, label="x"), Value(2.0, label="y")
    total = vsum([x * y])
    for _ in range(60):
        total = total + x * y  # x and y feed every rank: dot would place thousands of virtual nodes
    assert len(collect_values(total)) < 500
    with pytest.raises(GraphTooLargeError, match="long edges"):
        draw_graph(total, max_nodes=500)


def test_bad_options_are_errors_that_say_what_is_allowed():
    _, _, _, y = neuron_graph()
    for kwargs, text in [({"rankdir": "UP"}, "rankdir"), ({"color_by": "data"}, "color_by"),
                         ({"max_nodes": 0}, "max_nodes"), ({"collapse": "module"}, "collapse"),
                         ({"cluster": "yes"}, "cluster")]:
        with pytest.raises(ValueError, match=text):
            draw_graph(y, **kwargs)
    with pytest.raises(TypeError):
        draw_graph(1.0)


def test_collapse_without_parameter_names_says_why():
    _, _, _, y = neuron_graph()
    with pytest.raises(ValueError, match="parameters named"):
        draw_graph(y, collapse="layer")


# A 2-3-1 tanh network written by hand with nn's parameter names (the nn module names them so).
W1 = [[0.5, -0.4], [0.3, 0.8], [-0.6, 0.1]]
B1 = [0.1, -0.2, 0.05]
W2 = [0.7, -0.5, 0.9]
B2 = -0.1


def hand_mlp(samples):
    p = {}
    for j in range(3):
        for k in range(2):
            p[f"layers.0.neurons.{j}.w.{k}"] = Value(W1[j][k], label=f"layers.0.neurons.{j}.w.{k}")
        p[f"layers.0.neurons.{j}.b"] = Value(B1[j], label=f"layers.0.neurons.{j}.b")
    for k in range(3):
        p[f"layers.1.neurons.0.w.{k}"] = Value(W2[k], label=f"layers.1.neurons.0.w.{k}")
    p["layers.1.neurons.0.b"] = Value(B2, label="layers.1.neurons.0.b")
    losses = []
    for i, (x0, x1, target) in enumerate(samples):
        xs = [Value(x0, label=f"x{i}_0"), Value(x1, label=f"x{i}_1")]
        hidden = [vsum([p[f"layers.0.neurons.{j}.w.{k}"] * xs[k] for k in range(2)] + [p[f"layers.0.neurons.{j}.b"]]).tanh()
                  for j in range(3)]
        out = vsum([p[f"layers.1.neurons.0.w.{k}"] * hidden[k] for k in range(3)] + [p["layers.1.neurons.0.b"]])
        losses.append((out - target) ** 2)
    return p, vsum(losses) / len(losses)


def test_module_rule():
    assert module_of("layers.0.neurons.3.w.1") == "layers.0.neurons.3"
    assert module_of("layers.2.neurons.0.b") == "layers.2.neurons.0"
    p, loss = hand_mlp([(0.5, -1.0, 1.0)])
    values = collect_values(loss)
    modules = assign_modules(values)
    kinds = {v.label: node_kind(v) for v in values if v.is_leaf}
    assert kinds["layers.0.neurons.2.b"] == "parameter" and kinds["x0_1"] == "input"
    w = p["layers.1.neurons.0.w.2"]
    product = next(v for v in values if not v.is_leaf and w in v.parents)
    assert modules[product] == "layers.1.neurons.0"  # w * h sits with w's neuron
    tanh_nodes = [v for v in values if not v.is_leaf and v.op.name == "tanh"]
    assert sorted(modules[v] for v in tanh_nodes) == [f"layers.0.neurons.{j}" for j in range(3)]
    assert modules[loss] is None  # the loss mixes in the target: outside every module


def test_clusters_by_layer_and_neuron_contain_their_parameters(any_layout):
    p, loss = hand_mlp([(0.5, -1.0, 1.0)])
    loss.backward()
    svg = render(draw_graph(loss, cluster=True))
    boxes = {texts(g)[0]: _bbox(g.find(f"{SVG}path")) for g in groups(svg, "cluster")}
    assert {"layers.0", "layers.1", "neurons.0", "neurons.1", "neurons.2"} <= set(boxes)
    nodes = value_nodes(svg)
    layer0, layer1 = boxes["layers.0"], boxes["layers.1"]
    for j in range(3):
        assert _inside(_bbox(outline(nodes[f"layers.0.neurons.{j}.w.0"])), layer0)
    assert _inside(_bbox(outline(nodes["layers.1.neurons.0.w.0"])), layer1)
    assert not _inside(_bbox(outline(nodes["x0_0"])), layer0)


def test_collapsed_view_one_box_per_neuron_with_its_gradient_norm(any_layout):
    samples = [(0.5, -1.0, 1.0), (-0.3, 0.8, -1.0), (1.2, 0.4, 1.0), (-0.9, -0.2, -1.0)]
    p, loss = hand_mlp(samples)
    loss.backward()
    svg = render(draw_graph(loss, collapse="neuron"))
    boxes = {texts(g)[0]: g for g in groups(svg, "node") if title(g) != "legend"}
    assert set(boxes) == {"inputs", "neurons.0", "neurons.1", "neurons.2", "output"}
    # Four of the five are neurons; the two layers' neurons.0 are distinct boxes in distinct clusters.
    assert len(groups(svg, "node")) - 1 == 3 + 1 + 2  # 3 hidden neurons, 1 output neuron, inputs, output
    expected = math.sqrt(sum(p[f"layers.0.neurons.1.{n}"].grad ** 2 for n in ("w.0", "w.1", "b")))
    assert field(boxes["neurons.1"], "grad norm") == pytest.approx(expected, rel=1e-3)

    layers = render(draw_graph(loss, collapse="layer"))
    names = sorted(texts(g)[0] for g in groups(layers, "node") if title(g) != "legend")
    assert names == ["inputs", "layers.0", "layers.1", "output"]


def test_collapsed_view_with_the_nn_module(any_layout):
    nn = pytest.importorskip("tinygrad_edu.nn")
    model = nn.MLP(2, [4, 3, 1], seed=0)
    batch = [[0.1 * i, -0.05 * i] for i in range(40)]
    loss = nn.mean([nn.mse_loss(model(x), 1.0) for x in batch])
    loss.backward()
    with pytest.raises(GraphTooLargeError):
        draw_graph(loss)
    svg = render(draw_graph(loss, collapse="neuron"))
    neuron_boxes = [g for g in groups(svg, "node") if texts(g) and texts(g)[0].startswith("neurons.")]
    assert len(neuron_boxes) == 4 + 3 + 1


def _bbox(shape):
    """Bounding box of a <polygon> (points) or a rounded box's <path> (d)."""
    numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", shape.get("points") or shape.get("d"))]
    xs, ys = numbers[0::2], numbers[1::2]
    return min(xs), min(ys), max(xs), max(ys)


def _inside(inner, outer):
    return outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


# --- saving -------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix, magic", [(".svg", b"<?xml"), (".png", b"\x89PNG"), (".pdf", b"%PDF"), (".dot", b"digraph")])
def test_save_graph_format_follows_the_suffix(tmp_path, require_dot, suffix, magic):
    _, _, _, y = neuron_graph()
    path = save_graph(draw_graph(y), tmp_path / f"g{suffix}")
    assert path.read_bytes().startswith(magic)


def test_save_graph_rejects_unknown_suffix(tmp_path):
    _, _, _, y = neuron_graph()
    with pytest.raises(ValueError, match=".svg, .png, .pdf or .dot"):
        save_graph(draw_graph(y), tmp_path / "g.jpeg")


def test_without_dot_svg_is_still_written(tmp_path, require_wasm_layout, no_dot):
    _, _, _, y = neuron_graph()
    path = save_graph(draw_graph(y), tmp_path / "g.svg")
    svg = ET.parse(path).getroot()
    assert len([g for g in groups(svg, "node") if title(g) != "legend"]) == 6 + 3
    assert [p.name for p in tmp_path.iterdir()] == ["g.svg"]


@pytest.mark.parametrize("suffix", [".png", ".pdf"])
def test_without_dot_png_and_pdf_say_how_to_install_and_the_source_is_written(tmp_path, no_dot, suffix):
    _, _, _, y = neuron_graph()
    with pytest.raises(GraphvizNotFoundError) as info:
        save_graph(draw_graph(y), tmp_path / f"g{suffix}")
    message = str(info.value)
    assert "apt-get install graphviz" in message and "brew install graphviz" in message
    assert "\n" not in message
    assert (tmp_path / "g.dot").read_text().startswith("digraph")
    assert not (tmp_path / f"g{suffix}").exists()


# --- Jupyter ------------------------------------------------------------------------------------


def test_a_bare_value_shows_in_jupyter_as_its_graph_and_its_repr(any_layout):
    x, w, b, y = neuron_graph()
    y.backward()
    bundle = y._repr_mimebundle_()  # what Jupyter calls to display the Value
    assert bundle["text/plain"] == repr(y)
    svg = ET.fromstring(bundle["image/svg+xml"])
    nodes = [g for g in groups(svg, "node") if title(g) != "legend"]
    assert len(nodes) == 6 + 3
    assert field(value_nodes(svg)["x"], "grad") == pytest.approx(-1.5 * (1 - math.tanh(0.5 * -1.5 + 0.2) ** 2), rel=1e-3)
    assert y._repr_mimebundle_(include=["text/plain"]) == {"text/plain": repr(y)}
    assert list(y._repr_mimebundle_(exclude=["text/plain"])) == ["image/svg+xml"]


def test_a_huge_value_graph_shows_only_its_repr_at_once(monkeypatch):
    from tinygrad_edu.viz import layout

    def no_layout(source):
        raise AssertionError("a huge graph must not be laid out")

    monkeypatch.setattr(layout, "svg_from_dot", no_layout)
    total = Value(0.0)
    for i in range(5000):
        total = total + Value(float(i))
    assert total._repr_mimebundle_() == {"text/plain": repr(total)}


def test_without_any_layout_a_value_shows_its_repr(no_dot, monkeypatch):
    from tinygrad_edu.viz import layout

    monkeypatch.setattr(layout._Wasm, "backend", None)
    monkeypatch.setattr(layout._Wasm, "missing", "the in-process layout is not installed")
    _, _, _, y = neuron_graph()
    assert y._repr_mimebundle_() == {"text/plain": repr(y)}


# --- the flaws a new user saw, fixed -------------------------------------------------------------


def edge_strokes_from(svg, label: str) -> list[str]:
    names = {title(g): texts(g)[0] for g in groups(svg, "node") if texts(g)}
    return [stroke(g).get("stroke") for g in groups(svg, "edge") if names.get(title(g).split("->")[0]) == label]


def test_edge_colours_are_on_one_scale_across_graphs(any_layout):
    # x carries gradient 1 in both graphs; the second also has an edge carrying 1000.
    x = Value(2.0, label="x")
    small = x * 1.0
    small.backward()
    alone = edge_strokes_from(render(draw_graph(small)), "x")
    x2, z = Value(2.0, label="x"), Value(1.0, label="z")
    big = x2 * 1.0 + z * 1000.0
    big.backward()
    beside_a_big_one = edge_strokes_from(render(draw_graph(big)), "x")
    assert alone == beside_a_big_one and len(alone) == 1
    assert alone[0] != ZERO_FLOW_COLOR and luma(alone[0]) < 200  # gradient 1 is clearly visible


def test_the_legend_says_in_words_what_the_colours_mean(any_layout):
    _, _, _, y = neuron_graph()
    y.backward()
    source = draw_graph(y).source
    assert "gradient along the edge" in source and "vjp" not in source
    assert "≥ 100" in source and "≤ 0.0001" in source


def test_negative_zero_is_shown_as_zero_and_no_label_cell_is_blank(any_layout):
    x = Value(-0.0, label="x")
    y = (x * 3.0).relu()
    y.backward()
    all_text = [t for g in groups(render(draw_graph(y)), "node") for t in texts(g)]
    assert "data -0" not in all_text and "data 0" in all_text
    # a value whose formula is too long to show gets no empty name cell
    a = Value(1.0, label="a_rather_long_name")
    long = (a * a * a * a).tanh()
    long.backward()
    assert not re.search(r'label="\{?\s*\|', draw_graph(long).source)


def test_a_frame_lights_edges_only_where_gradient_has_passed(any_layout):
    x, w, b, y = neuron_graph()
    t = 1 - math.tanh(0.5 * -1.5 + 0.2) ** 2
    # after tanh's step: its input's gradient is known, but the add has not passed it on yet
    svg = render(draw_graph(y, grads={y: 1.0, y.parents[0]: t}, passed=[y]))
    assert edge_strokes_from(svg, "b") == [PENDING_COLOR]
    lit = [stroke(g).get("stroke") for g in groups(svg, "edge")
           if stroke(g).get("stroke") not in (PENDING_COLOR, "black")]
    assert len(lit) == 2  # tanh's input edge and its edge to y
