"""Take the README's picture of the explorer mid-backward, docs/images/explorer.png, in a real browser.

The graph is the README's command, ``tinygrad-edu graph "tanh(x*w + b)" --set x=0.5 --set w=-1.5
--set b=0.2 --out graph.html``; the page is stepped to the backward step through ``+``, so the
chain-rule panel shows a step in numbers. Uses Playwright for Python driving the system Chromium
(``apt-get install chromium``); nothing is downloaded. Run: ``.venv/bin/python tools/explorer_screenshot.py``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "images" / "explorer.png"
EXPRESSION, VALUES = "tanh(x*w + b)", {"x": 0.5, "w": -1.5, "b": 0.2}
VIEWPORT = {"width": 1100, "height": 430}


def screenshot(page, out: Path = OUT) -> Path:
    """Open the explorer of the README's expression in ``page`` (a Playwright page), step to the
    middle of the backward pass and save a PNG of it to ``out``."""
    from tinygrad_edu.expr import compile_expression
    from tinygrad_edu.viz import explore

    root = compile_expression(EXPRESSION).evaluate(VALUES)
    with tempfile.TemporaryDirectory() as tmp:
        path = explore(root, title=EXPRESSION).save(Path(tmp) / "graph.html")
        page.set_viewport_size(VIEWPORT)
        page.goto(path.as_uri())
        page.wait_for_selector("[data-explorer][data-ready=true]")
        page.keyboard.press("End")
        page.keyboard.press("ArrowLeft")  # the last step but one: backward through the add
        page.mouse.move(0, 0)
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out))
    return out


def main() -> int:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        print("explorer_screenshot: needs Chromium (apt-get install chromium)", file=sys.stderr)
        return 2
    args = ["--headless=new", "--disable-gpu"] + (["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=args)
        try:
            print(f"wrote {screenshot(browser.new_page())}")
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
