"""The studio under measurement, against a real ``tinygrad-edu studio`` process on loopback:

1. drawing overhead: the full circle run (5000 points, 2-8-1, SGD lr 0.1, batch 32, 50 epochs)
   timed by the server with no page open, with three raw event-stream readers, and with a headless
   Chromium page drawing every update (when Chromium and Playwright are installed); runs are
   interleaved so machine load hits every mode alike. The issue's bound: drawing may not slow
   training by more than half (time with the page at most 2x the time without);
2. update rate: snapshots a page receives per second while training at 300 minibatches/s (>= 10);
3. load: many concurrent event streams, then a burst of mixed requests (state, points, bad JSON,
   settings, steps) from many threads; the server must answer all of them, refuse the stream over
   its limit with 503, keep its memory bounded (RSS before and after two bursts) and still serve.

Run: python benchmarks/bench_studio.py [--repeats 5] [--streams 64] [--burst 3000] [--threads 32] [--skip-load]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx


class Studio:
    """A ``tinygrad-edu studio`` process on a free port, and a client for it."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-m", "tinygrad_edu", "studio", "--port", "0", "--no-browser"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.url = re.search(r"http://\S+", self.proc.stdout.readline()).group(0)
        self.base, self.token = self.url.split("/?token=")
        self.headers = {"X-Studio-Token": self.token}
        self.client = httpx.Client(base_url=self.base, headers=self.headers, timeout=60)
        for _ in range(300):
            try:
                self.client.get("/api/state")
                break
            except httpx.ConnectError:
                time.sleep(0.1)

    def rss_mib(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        return kb / 1024

    def post(self, path, body):
        return self.client.post(path, json=body)

    def state(self):
        return self.client.get("/api/state").json()

    def full_run(self) -> float:
        """Reset, play the configured run, wait for its end; the server's training seconds."""
        self.post("/api/control", {"action": "reset"})
        self.post("/api/control", {"action": "play"})
        while True:
            time.sleep(0.05)
            s = self.state()
            if s["status"] != "training":
                assert s["status"] == "done", s["status"]
                return s["seconds"]

    def close(self):
        self.client.close()
        self.proc.terminate()
        self.proc.wait(timeout=20)


def stream_reader(studio: Studio, stop: threading.Event, counts: list, index: int):
    with httpx.Client(base_url=studio.base, headers=studio.headers, timeout=None) as c:
        with c.stream("GET", "/api/events") as r:
            if r.status_code != 200:
                counts[index] = -r.status_code
                return
            for line in r.iter_lines():
                if line.startswith("data: "):
                    counts[index] += 1
                if stop.is_set():
                    return


def open_streams(studio: Studio, n: int):
    stop, counts = threading.Event(), [0] * n
    threads = [threading.Thread(target=stream_reader, args=(studio, stop, counts, i), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    return stop, counts


def browser_page(studio: Studio):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if chromium is None:
        return None
    pw = sync_playwright().start()
    args = ["--headless=new", "--disable-gpu", "--no-first-run"] + (["--no-sandbox"] if os.geteuid() == 0 else [])
    browser = pw.chromium.launch(executable_path=chromium, args=args)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(studio.url)
    page.wait_for_selector("#state[data-epoch]", state="attached")
    page.wait_for_function("() => typeof snap !== 'undefined' && snap !== null")

    def close():
        browser.close()
        pw.stop()
    return page, close


def overhead(studio: Studio, repeats: int) -> None:
    page = browser_page(studio)
    modes = ["no page", "3 event streams"] + (["Chromium page"] if page else [])
    times = {m: [] for m in modes}
    for _ in range(repeats):
        for mode in modes:
            if mode == "3 event streams":
                stop, _ = open_streams(studio, 3)
                times[mode].append(studio.full_run())
                stop.set()
            else:
                times[mode].append(studio.full_run())  # the page, when open, draws every update
    print("1. The full circle run (50 epochs), server-side training seconds "
          f"({repeats} interleaved runs per mode):")
    base = statistics.median(times["no page"])
    for mode, ts in times.items():
        med = statistics.median(ts)
        print(f"   {mode:16s} median {med:.3f} s  min {min(ts):.3f} s  ({med / base:.2f}x the time without a page)")
    if page:
        ratio = statistics.median(times["Chromium page"]) / base
        print(f"   {'met ' if ratio <= 2.0 else 'MISSED'} drawing slows training by at most half: "
              f"{ratio:.2f}x the time (bound 2x)")
        # 2. updates per second seen by the page while training slowly enough to watch
        pg, close = page
        studio.post("/api/config", {"speed": 300, "epochs": 1000})
        studio.post("/api/control", {"action": "reset"})
        before = pg.evaluate("() => updates")
        studio.post("/api/control", {"action": "play"})
        time.sleep(3.0)
        after = pg.evaluate("() => updates")
        studio.post("/api/control", {"action": "pause"})
        studio.post("/api/config", {"speed": 0, "epochs": 50})
        rate = (after - before) / 3.0
        print(f"2. Updates the page received while training at 300 minibatches/s: {rate:.1f}/s "
              f"({'met' if rate >= 10 else 'MISSED'} >= 10/s)")
        close()
    else:
        print("   (no Chromium or Playwright here: the page was not measured)")


def load(studio: Studio, streams: int, burst: int, threads: int) -> None:
    rss0 = studio.rss_mib()
    stop, counts = open_streams(studio, streams)
    while min(counts) == 0:  # every stream registered (it has its first snapshot)
        time.sleep(0.1)
    with httpx.stream("GET", f"{studio.base}/api/events", headers=studio.headers, timeout=10) as extra:
        over = extra.status_code  # 503 once the studio's limit of open streams is reached
    requests = [
        ("GET", "/api/state", None), ("GET", "/api/points", None), ("GET", "/api/config", None),
        ("POST", "/api/config", b"{not json"), ("POST", "/api/config", json.dumps({"lr": 0.1}).encode()),
        ("POST", "/api/config", json.dumps({"samples": 10**9}).encode()),
        ("POST", "/api/control", json.dumps({"action": "step"}).encode()),
        ("GET", "/nothing/here", None),
    ]
    latencies, statuses, errors = [], {}, []
    lock, local = threading.Lock(), threading.local()

    def one(i):
        method, path, body = requests[i % len(requests)]
        if not hasattr(local, "client"):  # one keep-alive connection per thread, as a browser keeps
            local.client = httpx.Client(base_url=studio.base, timeout=60,
                                        headers={**studio.headers, "Content-Type": "application/json"})
        t = time.perf_counter()
        try:
            r = local.client.request(method, path, content=body)
        except httpx.HTTPError as err:
            with lock:
                errors.append(repr(err))
            return
        dt = time.perf_counter() - t
        with lock:
            latencies.append(dt)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

    rss = [rss0]
    for _ in range(2):
        t = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, range(burst)))
        took = time.perf_counter() - t
        rss.append(studio.rss_mib())
    alive = studio.client.get("/api/state").status_code
    stop.set()
    latencies.sort()
    print(f"3. Load: {streams} open event streams (one more gets {over}), then two bursts of "
          f"{burst} requests from {threads} threads:")
    print(f"   answers {dict(sorted(statuses.items()))}, transport errors {len(errors)}; last burst {took:.1f} s "
          f"({burst / took:.0f} requests/s); latency p50 {1000 * latencies[len(latencies) // 2]:.1f} ms, "
          f"p99 {1000 * latencies[int(len(latencies) * 0.99)]:.1f} ms")
    print(f"   server RSS {rss[0]:.0f} MiB before, {rss[1]:.0f} MiB after the first burst, {rss[2]:.0f} MiB after "
          f"the second; streams received {min(counts)}-{max(counts)} updates; afterwards /api/state -> {alive}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--streams", type=int, default=64, help="open event streams (the studio allows 64)")
    parser.add_argument("--burst", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--skip-load", action="store_true", help="measure the drawing overhead and update rate only")
    args = parser.parse_args(argv)
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the start)")
    studio = Studio()
    try:
        overhead(studio, args.repeats)
        if not args.skip_load:
            load(studio, args.streams, args.burst, args.threads)
    finally:
        studio.close()
    print(f"(load average {os.getloadavg()[0]:.1f} at the end)")


if __name__ == "__main__":
    main()
