"""tinygrad_edu.studio.server and ``tinygrad-edu studio``: a real server on 127.0.0.1, its event
stream (pushed, at least 10 updates a second while training), and Ctrl-C stopping it cleanly."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tinygrad_edu.studio import StudioServer


def read_events(lines, seconds, at_least=0):
    """The snapshots a stream delivers within ``seconds``, and at least ``at_least`` of them (with
    their arrival times)."""
    events, end = [], time.monotonic() + seconds
    for line in lines:
        if line.startswith("data: "):
            events.append((time.monotonic(), json.loads(line[6:])))
        if time.monotonic() > end and len(events) >= at_least:
            break
    return events


def test_server_listens_on_loopback_only_and_pushes_updates_while_training():
    with StudioServer(port=0, config={"samples": 1000, "epochs": 1000, "speed": 400}) as server:
        assert server.sock.getsockname()[0] == "127.0.0.1"
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\?token=[\w-]{32}", server.url)
        with httpx.Client(base_url=server.base, headers={"X-Studio-Token": server.token}, timeout=10) as client:
            with client.stream("GET", "/api/events") as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                lines = stream.iter_lines()
                first = read_events(lines, 0, at_least=1)
                assert first[0][1]["status"] == "ready"
                client.post("/api/control", json={"action": "play"})
                events = read_events(lines, 2.0)
            client.post("/api/control", json={"action": "pause"})
        training = [t for t, snap in events if snap["status"] == "training"]
        # at least 10 a second while training (the server sends up to 20, the stream up to 25)
        assert len(training) >= 15, [round(b - a, 3) for a, b in zip(training, training[1:])]
        steps = [snap["steps"] for _, snap in events]
        assert steps == sorted(steps) and steps[-1] > steps[0]


def test_a_second_server_gets_another_token():
    with StudioServer(port=0) as a, StudioServer(port=0) as b:
        assert a.token != b.token and a.port != b.port
        assert httpx.get(f"{a.base}/api/state", headers={"X-Studio-Token": b.token}).status_code == 403


def test_cli_prints_the_url_and_ctrl_c_stops_it_cleanly(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "tinygrad_edu", "studio", "--port", "0", "--no-browser",
                             "--out", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/\?token=\S+", line).group(0)
        deadline = time.monotonic() + 30
        while True:
            try:
                page = httpx.get(url, timeout=5)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "the studio did not answer"
                time.sleep(0.1)
        assert page.status_code == 200 and "data-action=\"play\"" in page.text
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "stopped" in err and "Traceback" not in err


def test_cli_port_in_use_is_one_line():
    with StudioServer(port=0) as server:
        result = subprocess.run([sys.executable, "-m", "tinygrad_edu", "studio", "--port", str(server.port),
                                 "--no-browser"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and f"port {server.port} is already in use" in result.stderr
