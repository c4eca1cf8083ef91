"""tinygrad_edu.studio.api and .guard through Starlette's test client: every endpoint, the bad
inputs (each answered with a 4xx and one line, and changing nothing), the token, Host and Origin."""

import json
import warnings

import pytest

with warnings.catch_warnings():  # Starlette 1.x prefers the httpx2 fork; httpx (the dev extra) works with every version
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from tinygrad_edu import serialize
from tinygrad_edu.studio.api import MAX_BODY, create_app
from tinygrad_edu.studio.state import Studio

PORT = 8765
TOKEN = "test-token-0123456789"
BASE = f"http://127.0.0.1:{PORT}"


@pytest.fixture
def studio():
    s = Studio({"samples": 400})
    yield s
    s.close()


@pytest.fixture
def client(studio, tmp_path):
    app = create_app(studio, TOKEN, PORT, out_dir=tmp_path / "out")
    with TestClient(app, base_url=BASE, headers={"X-Studio-Token": TOKEN}) as c:
        yield c


def one_line_error(response, status):
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert message and "\n" not in message and "Traceback" not in message
    return message


def state(client):
    response = client.get("/api/state")
    assert response.status_code == 200
    return response.json()


# ---- the page and its assets ---------------------------------------------------------------------

def test_page_with_the_token_sets_the_cookie_that_later_requests_use(studio, tmp_path):
    app = create_app(studio, TOKEN, PORT, out_dir=tmp_path)
    with TestClient(app, base_url=BASE) as c:  # no token header: as a browser
        assert c.get("/").status_code == 403
        page = c.get(f"/?token={TOKEN}")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert f"tinygrad_edu_studio_{PORT}" in page.headers["set-cookie"]
        assert "samesite=strict" in page.headers["set-cookie"].lower()
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert c.get("/static/studio.js").status_code == 200  # the cookie now
        assert c.get("/api/state").json()["epoch"] == 0


def test_page_refers_only_to_its_own_assets(client):
    html = client.get("/").text
    assert 'src="/static/studio.js"' in html and 'href="/static/studio.css"' in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in html
    js = client.get("/static/studio.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert "https://" not in js.text and "http://" not in js.text.replace("http://www.w3.org/2000/svg", "")
    assert client.get("/static/studio.css").headers["content-type"].startswith("text/css")


@pytest.mark.parametrize("path", ["/static/index.html", "/static/../state.py", "/static/%2e%2e%2fapi.py",
                                  "/static/", "/state.py", "/tinygrad_edu/studio/state.py", "/etc/passwd",
                                  "/static/studio.js/../../config.py"])
def test_nothing_outside_its_own_assets(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert "def " not in response.text and "root:" not in response.text


# ---- the guard: token, Host, Origin ------------------------------------------------------------------

@pytest.mark.parametrize("headers", [{}, {"X-Studio-Token": "wrong"}, {"X-Studio-Token": ""},
                                     {"Cookie": f"tinygrad_edu_studio_{PORT}=wrong"},
                                     {"Cookie": f"tinygrad_edu_studio_9999={TOKEN}"}])
def test_requests_without_the_token_are_refused(studio, headers, tmp_path):
    app = create_app(studio, TOKEN, PORT, out_dir=tmp_path)
    with TestClient(app, base_url=BASE) as c:
        for method, path in (("GET", "/api/state"), ("POST", "/api/control"), ("GET", "/static/studio.js")):
            response = c.request(method, path, headers=headers, json={"action": "play"})
            assert response.status_code == 403 and "token" in response.text
    assert studio.status == "ready"


@pytest.mark.parametrize("host", ["evil.example:8765", "127.0.0.1:9999", "localhost", "127.0.0.1", "[::1]:8765",
                                  "127.0.0.1.evil.example:8765"])
def test_other_hosts_are_refused(client, host):
    # DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 sends its own Host.
    response = client.get("/api/state", headers={"Host": host})
    assert response.status_code == 403 and "Host" in response.text


def test_localhost_is_accepted(client):
    assert client.get("/api/state", headers={"Host": f"localhost:{PORT}"}).status_code == 200


@pytest.mark.parametrize("origin", ["http://evil.example", f"http://127.0.0.1:{PORT + 1}", "null",
                                    f"https://127.0.0.1:{PORT}"])
def test_other_origins_are_refused(client, studio, origin):
    response = client.post("/api/control", json={"action": "play"}, headers={"Origin": origin})
    assert response.status_code == 403 and "may not drive" in response.text
    assert studio.status == "ready"
    assert client.post("/api/control", json={"action": "step"},
                       headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403


def test_own_origin_is_accepted(client):
    response = client.post("/api/control", json={"action": "step"}, headers={"Origin": f"http://127.0.0.1:{PORT}"})
    assert response.status_code == 200 and response.json()["batch"] == 1


# ---- the endpoints ---------------------------------------------------------------------------------

def test_state_config_and_points(client, studio):
    s = state(client)
    assert s["status"] == "ready" and s["epoch"] == 0
    assert s["network"]["sizes"] == [2, 8, 1] and len(s["network"]["layers"][0]["w"]) == 8
    assert s["points"] == {"train": 320, "test": 80, "version": s["points"]["version"]}
    config = client.get("/api/config").json()
    assert config["config"]["lr"] == 0.1 and config["fields"]["task"]["choices"][0] == "circle"
    points = client.get("/api/points").json()
    assert len(points["train"]["xy"]) == 640 and len(points["test"]["label"]) == 80
    assert points["train"]["xy"][:2] == pytest.approx(studio.X_train[0].tolist(), abs=1e-5)


def test_controls(client):
    assert client.post("/api/control", json={"action": "step"}).json()["batch"] == 1
    after = client.post("/api/control", json={"action": "epoch"}).json()
    assert after["epoch"] == 1 and after["batch"] == 0 and after["status"] == "paused"
    assert len(after["history"]["epoch"]) == 2
    client.post("/api/control", json={"action": "pause"})
    reset = client.post("/api/control", json={"action": "reset"}).json()
    assert reset["epoch"] == 0 and reset["steps"] == 0


def test_play_trains_the_configured_epochs_in_the_background(client, studio):
    client.post("/api/config", json={"epochs": 3})
    assert client.post("/api/control", json={"action": "play"}).status_code == 200
    studio.wait(60)
    s = state(client)
    assert s["status"] == "done" and s["epoch"] == 3 and s["history"]["epoch"] == [0, 1, 2, 3]


def test_config_change_of_the_model_resets_and_of_the_learning_rate_does_not(client):
    client.post("/api/control", json={"action": "epoch"})
    changed = client.post("/api/config", json={"lr": 0.05, "batch_size": 16}).json()["config"]
    assert changed["lr"] == 0.05 and changed["batch_size"] == 16
    s = state(client)
    assert s["epoch"] == 1 and s["batches_per_epoch"] == 20  # 320 points in batches of 16
    client.post("/api/config", json={"hidden": [4, 4], "activation": "tanh"})
    s = state(client)
    assert s["epoch"] == 0 and s["network"]["sizes"] == [2, 4, 4, 1] and s["network"]["activation"] == "tanh"


def test_add_and_remove_points(client, studio):
    assert client.post("/api/points", json={"x": 0.25, "y": -0.5, "label": 1}).json() == {"train": 321}
    assert studio.X_train[-1].tolist() == [0.25, -0.5] and studio.y_train[-1] == 1.0
    first = studio.X_train[1].tolist()
    assert client.post("/api/points/remove", json={"index": 0}).json() == {"train": 320}
    assert studio.X_train[0].tolist() == first
    assert state(client)["points"]["train"] == 320


def test_model_json_is_what_predict_loads(client, tmp_path):
    client.post("/api/control", json={"action": "epoch"})
    response = client.get("/api/model.json")
    assert response.status_code == 200 and "attachment" in response.headers["content-disposition"]
    path = tmp_path / "model.json"
    path.write_bytes(response.content)
    loaded = serialize.load_checkpoint(path)
    assert loaded.metadata["epochs_done"] == 1 and loaded.metadata["source"] == "tinygrad-edu studio"
    assert loaded.model.sizes == [8, 1]


def test_save_writes_the_model_and_pictures(client, tmp_path):
    paths = client.post("/api/save", json={}).json()["paths"]
    assert [p.rsplit("/", 1)[1] for p in paths] == ["model.json", "decision_boundary.png", "curves.png"]
    for p in paths[1:]:
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert serialize.load_model(paths[0]).sizes == [8, 1]


def test_explore_validates_its_point(client):
    for query in ("set=train&index=-1", "set=train&index=x", "set=train&index=99999", "set=other&index=0",
                  "set=train&index=10000000000"):
        one_line_error(client.get(f"/explore?{query}"), 400)


# ---- bad requests: a 4xx, one line, nothing changed, still serving -------------------------------------

BAD_CONFIG = [
    (b"{bad", "malformed JSON"), (b"", "nothing"), (b"[1, 2]", "JSON object"), (b'"lr"', "JSON object"),
    (b'{"lr": Infinity}', "Infinity"), (b'{"lr": NaN}', "NaN"), (b'{"lr": 1e999}', "lr"),
    (b'{"samples": 1000000000}', "samples"), (b'{"samples": -5}', "samples"), (b'{"samples": 2.5}', "samples"),
    (b'{"lr": 0}', "lr"), (b'{"lr": "fast"}', "lr"), (b'{"lr": true}', "lr"), (b'{"hidden": [8, 8, 8, 8, 8]}', "hidden"),
    (json.dumps({"hidden": [8] * 1000}).encode(), "hidden"), (b'{"hidden": [100000]}', "hidden layer size"),
    (b'{"hidden": [0]}', "hidden layer size"), (b'{"hidden": "8"}', "hidden"), (b'{"task": "mnist"}', "task"),
    (b'{"activation": "swish"}', "activation"), (b'{"wobble": 1}', "unknown setting"),
    (b'{"noise": -1}', "noise"), (b'{"test_size": 1.0}', "test_size"), (b'{"batch_size": 0}', "batch_size"),
    (b'{"lr": 0.5, "epochs": 0}', "epochs"),
    (b"\xff\xfe", "UTF-8"),
]


@pytest.mark.parametrize("body, words", BAD_CONFIG)
def test_bad_settings_change_nothing(client, body, words):
    before = state(client)
    response = client.post("/api/config", content=body, headers={"Content-Type": "application/json"})
    assert words.lower() in one_line_error(response, 400).lower()
    after = state(client)
    assert after["config"] == before["config"] and after["network"] == before["network"]
    assert client.get("/api/state").status_code == 200  # still serving


@pytest.mark.parametrize("path, body", [
    ("/api/control", {"action": "explode"}), ("/api/control", {}), ("/api/control", {"action": "play", "x": 1}),
    ("/api/control", {"action": ["play"]}),
    ("/api/points", {"x": 0.1, "y": 0.1}), ("/api/points", {"x": 0.1, "y": 0.1, "label": 2}),
    ("/api/points", {"x": "0.1", "y": 0.1, "label": 1}), ("/api/points", {"x": 1e300, "y": 0.1, "label": 1}),
    ("/api/points", {"x": 0.1, "y": 0.1, "label": True}), ("/api/points", [0.1, 0.1, 1]),
    ("/api/points/remove", {"index": 320}), ("/api/points/remove", {"index": -1}),
    ("/api/points/remove", {"index": 1.5}), ("/api/points/remove", {"index": "0"}),
])
def test_bad_requests_change_nothing(client, path, body):
    before = state(client)
    one_line_error(client.post(path, json=body), 400)
    after = state(client)
    assert after["points"] == before["points"] and after["steps"] == before["steps"]


def test_oversized_body_and_wrong_methods(client):
    one_line_error(client.post("/api/config", content=b"{" + b" " * MAX_BODY + b"}"), 413)
    assert client.get("/api/control").status_code == 405
    assert client.delete("/api/state").status_code == 405
    assert client.get("/api/nothing").status_code == 404
    assert client.get("/api/state").status_code == 200


def test_diverging_run_stops_and_says_so(client, studio):
    # Plain SGD at a learning rate of 50 through three linear layers: the weights' product overflows.
    client.post("/api/config", json={"lr": 50.0, "hidden": [32, 32, 32], "activation": "linear", "epochs": 20})
    client.post("/api/control", json={"action": "play"})
    studio.wait(60)
    s = state(client)
    assert s["status"] == "diverged" and s["message"].startswith("training diverged")
    assert "\n" not in s["message"]
    assert "diverged" in one_line_error(client.post("/api/control", json={"action": "play"}), 409)
    # The check comes before the optimizer's step: the weights kept are the last finite ones.
    assert client.get("/api/model.json").status_code == 200
    assert client.post("/api/control", json={"action": "reset"}).json()["status"] == "ready"


def test_explore_serves_the_points_explorer_under_its_own_policy(client, studio, require_svg_layout):
    client.post("/api/control", json={"action": "epoch"})
    response = client.get("/explore?set=test&index=2")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src" not in policy  # inline only, nothing fetched
    x, y = studio.X_test[2]
    assert "data-explorer" in response.text and f"test point 2 at ({x:.3f}, {y:.3f})" in response.text
    assert "after epoch 1" in response.text
