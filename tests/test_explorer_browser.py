"""The explorer in a real browser (headless Chromium through Playwright, see tests/conftest.py):
open the saved file, step through every step and compare what every node shows with the engine's
numbers; no request leaves the page; keys, clusters and search work.

Node ids are ``n{i}``, ``i`` the node's place in ``engine.topological_order(root)``. Each node's
``data-value``/``data-grad`` carry the full number the page shows rounded; they are compared with
the engine's within a relative 1e-12 (the numbers travel as JSON, which keeps every bit).
"""

from __future__ import annotations

import math

import pytest

from tinygrad_edu import Value
from tinygrad_edu.engine import topological_order
from tinygrad_edu.nn import MLP, binary_cross_entropy_with_logits
from tinygrad_edu.viz import explore

pytestmark = pytest.mark.usefixtures("require_svg_layout")

REL = 1e-12
# Every step in one round trip: read what each node shows, press the page's "next" button, repeat.
EVERY_STEP = """() => {
    const root = document.querySelector('[data-explorer]'), next = root.querySelector('[data-action=next]');
    const snapshots = [];
    for (let guard = 0; guard < 100000; guard++) {
        snapshots.push([Number(root.dataset.step), Array.from(root.querySelectorAll('[data-node]')).map(g =>
            [g.getAttribute('data-node'), g.getAttribute('data-value'), g.getAttribute('data-grad')])]);
        if (Number(root.dataset.step) === Number(root.dataset.steps) - 1) break;
        next.click();
    }
    return snapshots;
}"""


def neuron():
    x, w, b = Value(0.5, label="x"), Value(-1.5, label="w"), Value(0.2, label="b")
    y = (x * w + b).tanh()
    y.label = "y"
    return y


def mlp_loss():
    model = MLP(2, [8, 1], activation="relu", output_activation="sigmoid", seed=0)
    loss = binary_cross_entropy_with_logits(model.logits([Value(0.3, label="x0"), Value(-0.2, label="x1")]), 1.0)
    loss.label = "loss"
    return loss, model


def open_page(page, root, tmp_path, **options):
    path = explore(root, **options).save(tmp_path / "graph.html")
    page.goto(path.as_uri())
    page.wait_for_selector("[data-explorer][data-ready=true]")
    return page.locator("[data-explorer]")


def step(explorer) -> tuple[int, int]:
    return int(explorer.get_attribute("data-step")), int(explorer.get_attribute("data-steps"))


def expected_schedule(root):
    """Independently of the page: the step at which each node's value appears and its gradient is
    first touched and final. Forward fills computed nodes in topological order after a start step
    with the leaves; backward seeds the root, then visits computed nodes in reverse order."""
    order = topological_order(root)
    computed = [v for v in order if not v.is_leaf]
    value_at = {v: 0 for v in order if v.is_leaf}
    for k, v in enumerate(computed):
        value_at[v] = 1 + k
    seed = 1 + len(computed)
    visit = {v: seed + 1 + k for k, v in enumerate(reversed(computed))}
    first, final = {root: seed}, {root: seed}
    for v in reversed(computed):
        for p in v.parents:
            first.setdefault(p, visit[v])
            final[p] = visit[v]
    return order, value_at, first, final


def check_every_step(page, explorer, root):
    order, value_at, first, final = expected_schedule(root)
    ids = {f"n{i}": v for i, v in enumerate(order)}
    root.backward()
    k, steps = step(explorer)
    assert k == 0 and steps == 1 + 2 * (1 + sum(not v.is_leaf for v in order)) - 1
    snapshots = page.evaluate(EVERY_STEP)
    assert [k for k, _ in snapshots] == list(range(steps))
    for k, shown in snapshots:
        assert len(shown) == len(order)
        for node_id, value, grad in shown:
            v = ids[node_id]
            if k >= value_at[v]:
                assert float(value) == pytest.approx(v.data, rel=REL), (k, node_id)
            else:
                assert value == "", (k, node_id)
            if k < first.get(v, math.inf):
                assert grad == "", (k, node_id)
            elif k >= final[v]:
                assert float(grad) == pytest.approx(v.grad, rel=REL, abs=1e-300), (k, node_id)
            else:
                assert grad != ""  # partly summed; test_a_reused_value_* checks a partial sum


def test_every_step_shows_the_engine_s_values_and_gradients(page, tmp_path):
    y = neuron()
    explorer = open_page(page, y, tmp_path)
    check_every_step(page, explorer, y)
    assert page.requests.external() == []
    assert [u for u in page.requests if not u.startswith("file:")] == []
    assert page.console_errors == []


def test_every_step_of_an_mlp_loss_expanded(page, tmp_path):
    loss, _ = mlp_loss()
    explorer = open_page(page, loss, tmp_path)
    page.click("[data-action=expand-all]")
    assert explorer.get_attribute("data-view") == "all"
    check_every_step(page, explorer, loss)
    assert page.requests.external() == [] and page.console_errors == []


def test_a_reused_value_shows_its_partial_then_summed_gradient(page, tmp_path):
    a, b = Value(3.0, label="a"), Value(4.0, label="b")
    z = a * b + a
    explorer = open_page(page, z, tmp_path)
    grad_a = lambda: page.get_attribute("[data-label=a]", "data-grad")  # noqa: E731
    page.keyboard.press("End")
    _, steps = step(explorer)
    assert float(grad_a()) == 5.0  # dz/da = b + 1
    page.keyboard.press("ArrowLeft")  # before the product's step: only the direct use has added its 1
    assert float(grad_a()) == 1.0
    panel = page.inner_text("[data-role=panel]")
    assert "Backward through add" in panel
    page.keyboard.press("ArrowRight")
    panel = page.inner_text("[data-role=panel]")
    assert "1 + 4 = 5" in panel and "sum of 2 contributions" in panel
    assert "d (a * b) / d a = b" in panel


def test_keyboard_and_buttons_move_through_the_steps(page, tmp_path):
    explorer = open_page(page, neuron(), tmp_path)
    _, steps = step(explorer)
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert step(explorer)[0] == 2
    page.keyboard.press("ArrowLeft")
    assert step(explorer)[0] == 1
    page.keyboard.press("End")
    assert step(explorer)[0] == steps - 1
    page.keyboard.press("ArrowRight")  # stays at the end
    assert step(explorer)[0] == steps - 1
    page.keyboard.press("Home")
    assert step(explorer)[0] == 0
    page.click("[data-action=next]")
    page.click("[data-action=prev]")
    page.click("[data-action=next]")
    assert step(explorer)[0] == 1
    page.click("[data-action=reset]")
    assert step(explorer)[0] == 0
    page.fill("[data-action=seek]", "4")  # the slider
    page.dispatch_event("[data-action=seek]", "input")
    assert step(explorer)[0] == 4
    page.keyboard.press(" ")  # play, then pause
    assert explorer.get_attribute("data-playing") == "true"
    for _ in range(50):  # the page plays a step every 0.7 s (polled here: the page's policy forbids eval)
        if step(explorer)[0] > 4:
            break
        page.wait_for_timeout(100)
    assert step(explorer)[0] > 4
    page.keyboard.press(" ")
    assert explorer.get_attribute("data-playing") == "false"


def test_an_mlp_starts_collapsed_and_a_click_opens_a_cluster(page, tmp_path):
    loss, model = mlp_loss()
    explorer = open_page(page, loss, tmp_path)
    assert explorer.get_attribute("data-view") == "collapsed"
    assert page.locator("[data-cluster]").count() == 9
    assert page.locator("[data-node^='n'][data-label^='layers.']").count() == 0  # parameters are inside boxes
    page.keyboard.press("End")
    loss.backward()
    box = page.locator("[data-cluster][data-module='layers.0.neurons.0']")
    norm = math.sqrt(sum(p.grad ** 2 for n, p in model.named_parameters() if n.startswith("layers.0.neurons.0.")))
    assert float(box.get_attribute("data-grad-norm")) == pytest.approx(norm, rel=1e-3)  # shown to 4 digits
    box.hover()  # the panel lists the module's parameters and their gradients
    panel = page.inner_text("[data-role=panel]")
    assert "layers.0.neurons.0" in panel and "3 parameters" in panel and "w.1" in panel
    cluster = box.get_attribute("data-cluster")
    box.click()
    assert explorer.get_attribute("data-view") == cluster
    w = page.locator("[data-label='layers.0.neurons.0.w.1']")
    assert w.count() == 1 and w.is_visible()
    assert float(w.get_attribute("data-grad")) == pytest.approx(dict(model.named_parameters())["layers.0.neurons.0.w.1"].grad, rel=REL)
    assert page.locator("[data-cluster]").count() == 8  # the others stay closed
    page.click(f"[data-frame={cluster}] > text")  # a click on the open module's frame closes it
    assert explorer.get_attribute("data-view") == "collapsed" and w.count() == 0
    box.click()
    page.click("[data-action=collapse-all]")
    assert explorer.get_attribute("data-view") == "collapsed" and w.count() == 0


def test_search_finds_a_node_by_label_and_opens_its_cluster(page, tmp_path):
    loss, _ = mlp_loss()
    explorer = open_page(page, loss, tmp_path)
    page.fill("[data-action=search]", "neurons.3.w.1")
    results = page.locator("[data-result]")
    assert results.count() == 2  # the parameter, then the product that uses it
    assert results.nth(0).inner_text() == "layers.0.neurons.3.w.1"
    assert results.nth(1).inner_text().startswith("layers.0.neurons.3.w.1 * ")
    page.press("[data-action=search]", "Enter")
    found = page.locator("[data-node][data-found=true]")
    assert found.count() == 1 and found.get_attribute("data-label") == "layers.0.neurons.3.w.1"
    assert found.is_visible()
    assert explorer.get_attribute("data-view") != "collapsed"
    assert "layers.0.neurons.3.w.1" in page.inner_text("[data-role=panel]")


def test_hover_shows_a_node_s_details(page, tmp_path):
    open_page(page, neuron(), tmp_path)
    page.keyboard.press("End")
    page.hover("[data-label=y]")
    panel = page.inner_text("[data-role=panel]")
    assert "out = tanh(x)" in panel and "1 - out * out" in panel
    assert "data -0.5005" in page.text_content("[data-label=y]")


def test_the_readme_screenshot_is_taken_mid_backward(page, tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
    try:
        from explorer_screenshot import screenshot
    finally:
        sys.path.pop(0)
    out = screenshot(page, tmp_path / "explorer.png")
    assert out.read_bytes().startswith(b"\x89PNG")
    explorer = page.locator("[data-explorer]")
    k, steps = step(explorer)
    assert explorer.get_attribute("data-phase") == "backward" and k == steps - 2
    assert page.requests.external() == [] and page.console_errors == []


def test_vanishing_and_exploding_gradients_are_marked_once_final(page, tmp_path):
    dead, hot, fine = Value(-2.0, label="dead"), Value(0.5, label="hot"), Value(1.0, label="fine")
    y = dead.relu() + hot * 5000.0 + fine * 1.0  # grads: 0, 5000, 1
    open_page(page, y, tmp_path)
    classes = lambda label: page.get_attribute(f"[data-label={label}]", "class")  # noqa: E731
    assert "vanishing" not in classes("dead") and "exploding" not in classes("hot")  # nothing known yet
    page.keyboard.press("End")
    assert "vanishing" in classes("dead") and "exploding" in classes("hot")
    assert "vanishing" not in classes("fine") and "exploding" not in classes("fine")


def test_gradcheck_culprits_are_highlighted_with_a_legend_entry(page, tmp_path):
    from tinygrad_edu import primitive
    from tinygrad_edu.testing import GradcheckError, gradcheck

    wrong_cube = primitive("viz_wrong_cube", lambda x: x * x * x, lambda x: 3 * x * x + 0.5)  # d/dx x^3 is 3x^2
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda a, b: (wrong_cube(a * b) + b).tanh(), [0.5, 0.8])
    [culprit] = info.value.culprits
    out = culprit.path[-1]
    explorer = open_page(page, out, tmp_path, highlight=info.value.culprits)
    marked = page.locator('[data-culprit="true"]')
    assert marked.count() == 1
    assert marked.get_attribute("data-node") == f"n{topological_order(out).index(culprit.node)}"
    assert page.locator('[data-legend="culprit"]').count() == 1
    outline = page.evaluate("""() => getComputedStyle(
        document.querySelector('[data-culprit="true"] > polygon, [data-culprit="true"] > path')).stroke""")
    assert outline == "rgb(194, 24, 91)"  # style.CULPRIT_COLOR, #c2185b
    marked.hover()
    assert "culprit" in page.inner_text("[data-role=panel]")
    page.keyboard.press("End")  # stays marked through the steps, and the page ran cleanly
    assert marked.count() == 1 and step(explorer)[0] == step(explorer)[1] - 1
    assert page.requests.external() == [] and page.console_errors == []
    plain = open_page(page, out, tmp_path)  # without highlight: neither the mark nor its legend entry
    assert plain.locator('[data-culprit]').count() == 0 and page.locator('[data-legend="culprit"]').count() == 0


def test_a_highlighted_value_marks_its_closed_module_and_itself_once_opened(page, tmp_path):
    loss, model = mlp_loss()
    w = dict(model.named_parameters())["layers.0.neurons.3.w.1"]
    open_page(page, loss, tmp_path, highlight=[w])
    box = page.locator('[data-cluster][data-culprit="true"]')
    assert box.count() == 1 and box.get_attribute("data-module") == "layers.0.neurons.3"
    box.click()
    marked = page.locator('[data-node][data-culprit="true"]')
    assert marked.count() == 1 and marked.get_attribute("data-label") == "layers.0.neurons.3.w.1"


def test_the_labels_get_their_font_from_the_svg_element_and_stepping_still_fills_them(page, tmp_path):
    explorer = open_page(page, neuron(), tmp_path)
    fonts = page.evaluate("""sel => Array.from(document.querySelectorAll(sel)).map(t => {
        const s = getComputedStyle(t);
        return [t.closest('[data-node], [data-op-of]').getAttribute('data-node') ? 'node' : 'op',
                s.fontFamily, s.fontSize, s.textAnchor];
    })""", "[data-node] text, [data-op-of] text")
    assert len(fonts) == 6 * 3 + 3  # x, w, b, x*w, x*w + b, y: label, data, grad; 3 operation signs
    assert {f[1] for f in fonts} == {"Helvetica, sans-serif"} and {f[3] for f in fonts} == {"middle"}
    assert {f[2] for f in fonts if f[0] == "node"} == {"11px"} and {f[2] for f in fonts if f[0] == "op"} == {"10px"}
    unknown = page.locator("[data-node][data-value='']")
    assert unknown.count() == 3  # at the start, only the inputs are known
    page.click("[data-action=next]")
    assert step(explorer)[0] == 1 and unknown.count() == 2
    page.click("[data-action=next]")
    assert step(explorer)[0] == 2 and unknown.count() == 1 and page.console_errors == []
