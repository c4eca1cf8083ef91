"""The shared browser fixtures (tests/conftest.py): the system Chromium runs a page and every
request the page makes is recorded, so browser tests can prove that nothing leaves the machine."""

from conftest import PageRequests


def test_page_runs_scripts_and_records_requests(page):
    # An external URL is aborted by a route before any network access, but still recorded.
    page.route("http://**/*", lambda route: route.abort())
    page.set_content(
        '<div id="out" data-done=""></div>'
        '<img src="http://cdn.example.invalid/pixel.png">'
        "<script>document.getElementById('out').dataset.done = String(6 * 7);</script>"
    )
    page.wait_for_selector('#out[data-done="42"]', state="attached")
    page.wait_for_timeout(100)
    assert page.requests.external() == ["http://cdn.example.invalid/pixel.png"]


def test_page_collects_script_errors(page):
    page.set_content("<script>throw new Error('boom from the page')</script>")
    page.wait_for_timeout(100)
    assert any("boom from the page" in e for e in page.console_errors)


def test_local_and_inline_urls_are_not_external():
    requests = PageRequests([
        "file:///tmp/graph.html", "data:image/png;base64,AAAA", "http://127.0.0.1:8765/api/state",
        "http://localhost:1/x", "http://[::1]:2/y", "blob:null/1234", "https://example.org/a.js",
    ])
    assert requests.external() == ["https://example.org/a.js"]
