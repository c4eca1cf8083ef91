"""The studio end to end in headless Chromium (the ``page`` fixture): the article's circle run from
the page's controls, the page's figures against the server's, points added and removed by clicks,
the heat map against the model, the views saved, and no request leaving 127.0.0.1.

With TINYGRAD_EDU_SCREENSHOTS=DIR the test also saves its screenshots there (the docs' pictures
come from ``TINYGRAD_EDU_SCREENSHOTS=docs/images pytest tests/test_studio_browser.py``).
"""

import os
from pathlib import Path

import httpx
import numpy as np
import pytest

from tinygrad_edu import train
from tinygrad_edu.studio import StudioServer


@pytest.fixture
def server(tmp_path):
    with StudioServer(port=0, out_dir=tmp_path / "out") as s:
        yield s


def server_state(server):
    return httpx.get(f"{server.base}/api/state", headers={"X-Studio-Token": server.token}, timeout=10).json()


def screenshot(page, name, selector=None):
    """Save the page (or the element at ``selector``) as DIR/name when TINYGRAD_EDU_SCREENSHOTS=DIR."""
    where = os.environ.get("TINYGRAD_EDU_SCREENSHOTS")
    if where:
        (page.locator(selector) if selector else page).screenshot(path=str(Path(where) / name))


def canvas_point(page, x, y):
    """Page coordinates of the data point (x, y) on the boundary canvas."""
    box = page.locator("#boundary").bounding_box()
    return box["x"] + (x + 1) / 2 * box["width"], box["y"] + (1 - y) / 2 * box["height"]


def test_the_article_run_in_the_browser(page, server):
    page.goto(server.url)
    state = page.locator("#state")
    page.wait_for_selector('#state[data-epoch="0"][data-points="4000"]', state="attached")
    # choose another task, then the circle: each choice is a new run
    page.select_option('[data-field="task"]', "moons")
    page.wait_for_function("() => snap.config.task === 'moons'")
    page.select_option('[data-field="task"]', "circle")
    page.wait_for_function("() => snap.config.task === 'circle'")
    screenshot(page, "studio-start.png")

    page.click('[data-action="play"]')
    page.wait_for_selector('#state[data-epoch="50"][data-status="done"]', state="attached", timeout=120_000)
    shown = float(state.get_attribute("data-test-accuracy"))
    served = server_state(server)
    assert served["epoch"] == 50 and served["config"]["samples"] == 5000
    assert shown == round(100 * served["metrics"]["test_accuracy"], 2)
    assert float(state.get_attribute("data-train-accuracy")) == round(100 * served["metrics"]["train_accuracy"], 2)
    assert shown >= 98.0  # the article's settings: make circle ends at 98.20%
    page.wait_for_timeout(200)  # the last frame drawn
    screenshot(page, "studio-trained.png")

    # the heat map is the server's model: the page's forward pass on a grid against predict_proba
    n = 7
    grid = page.evaluate(f"() => Array.from(probabilityGrid(snap.network, {n}))")
    ticks = np.linspace(-1, 1, n)
    points = np.array([[x, y] for y in ticks[::-1] for x in ticks])  # row 0 at y = 1
    studio = server.studio
    with studio.lock:
        studio.trainer.store()
        expected = train.predict_proba(studio.model, points, loss=studio.objective, engine="batched")
    assert np.allclose(grid, expected, rtol=1e-9, atol=1e-12)

    # add a class-0 point by a click inside the circle, then remove it with shift-click
    page.check('[data-tool="add0"]')
    x, y = canvas_point(page, 0.013, -0.027)
    page.mouse.click(x, y)
    page.wait_for_selector('#state[data-points="4001"]', state="attached")
    assert server.studio.X_train[-1].tolist() == pytest.approx([0.013, -0.027], abs=0.01)
    assert server.studio.y_train[-1] == 0.0
    page.keyboard.down("Shift")
    page.mouse.click(x, y)
    page.keyboard.up("Shift")
    page.wait_for_selector('#state[data-points="4000"]', state="attached")

    # the views save as files
    with page.expect_download() as download:
        page.click('[data-save="network"]')
    svg = Path(download.value.path()).read_text()
    assert svg.startswith("<svg") and svg.count("<line") == 2 * 8 + 8 * 1
    with page.expect_download() as download:
        page.click('[data-save="boundary"]')
    assert Path(download.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert page.requests and page.requests.external() == []
    assert page.console_errors == []


def test_bad_setting_shows_the_servers_message_and_keeps_the_old_value(page, server):
    page.goto(server.url)
    page.wait_for_selector('#state[data-epoch="0"]', state="attached")
    page.fill('[data-field="lr"]', "1e999")
    page.press('[data-field="lr"]', "Enter")
    page.wait_for_selector("#error:not([data-error=''])", state="attached")
    assert "lr must be" in page.get_attribute("#error", "data-error")
    assert page.input_value('[data-field="lr"]') == "0.1" and server.studio.config["lr"] == 0.1


def test_diverging_run_says_so_on_the_page(page, server):
    page.goto(server.url)
    page.wait_for_selector('#state[data-epoch="0"]', state="attached")
    server.studio.configure({"lr": 50.0, "hidden": [32, 32, 32], "activation": "linear", "samples": 400})
    page.click('[data-action="play"]')
    page.wait_for_selector('#status[data-status="diverged"]', state="attached", timeout=60_000)
    assert page.text_content("#status").startswith("training diverged")
    screenshot(page, "studio-diverged.png", "header")
    assert page.console_errors == []


def test_spirals_with_a_deeper_network(page, server):
    # The settings through the page's own inputs: each change is one request, as a user makes it.
    page.goto(server.url)
    page.wait_for_selector('#state[data-epoch="0"]', state="attached")
    for field, value in (("samples", "1000"), ("hidden", "16,16"), ("lr", "0.01"), ("epochs", "100")):
        page.fill(f'[data-field="{field}"]', value)
        page.press(f'[data-field="{field}"]', "Enter")
    page.select_option('[data-field="optimizer"]', "adam")
    page.select_option('[data-field="task"]', "spirals")
    page.wait_for_function("() => snap.config.task === 'spirals' && snap.config.optimizer === 'adam' "
                           "&& snap.network.sizes.join() === '2,16,16,1'")
    assert server.studio.settings()["lr"] == 0.01 and server.studio.settings()["epochs"] == 100
    page.click('[data-action="play"]')
    page.wait_for_selector('#state[data-epoch="100"][data-status="done"]', state="attached", timeout=120_000)
    assert float(page.get_attribute("#state", "data-test-accuracy")) >= 95.0
    assert page.evaluate("() => snap.grad_norms.layers.length") == 3
    page.wait_for_timeout(200)
    screenshot(page, "studio-spirals.png")
    assert page.requests.external() == [] and page.console_errors == []


def test_clicking_a_point_opens_the_explorer(page, server, require_svg_layout):
    page.goto(server.url)
    page.wait_for_selector('#state[data-epoch="0"]', state="attached")
    page.click('[data-action="epoch"]')
    page.wait_for_selector('#state[data-epoch="1"]', state="attached")
    page.check('[data-tool="explore"]')
    x, y = server.studio.X_test[3]  # a test point: drawn as a ring, still clickable
    train_near = np.hypot(*(server.studio.X_train - [x, y]).T).min()
    page.mouse.click(*canvas_point(page, x, y))
    page.wait_for_selector('#explorer[data-open="true"]', state="attached")
    box = page.locator("#explorer")
    which, index = box.get_attribute("data-set"), int(box.get_attribute("data-index"))
    # the nearest point within 8 pixels: this test point unless a training point is as near
    assert (which, index) == ("test", 3) or train_near < 0.03
    frame = page.frame_locator("#explorer-frame")
    explorer = frame.locator("[data-explorer][data-ready=true]")
    explorer.wait_for(state="attached")
    steps = int(explorer.get_attribute("data-steps"))
    assert steps > 20 and explorer.get_attribute("data-step") == "0"
    assert f"{which} point {index}" in frame.locator("body").text_content()
    assert "after epoch 1" in frame.locator("body").text_content()
    screenshot(page, "studio-explorer.png")
    page.click("#explorer-close")
    page.wait_for_selector('#explorer[data-open="false"]', state="attached")
    assert page.requests.external() == [] and page.console_errors == []
