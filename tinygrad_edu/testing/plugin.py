"""The pytest plugin of tinygrad_edu, registered through the ``pytest11`` entry point (active
wherever the package is installed, no conftest needed):

- the ``gradcheck`` fixture: ``gradcheck(fn, inputs, **options)`` asserts that ``fn``'s gradients
  (and with ``second_order=True`` its second derivatives) match numerical ones;
- a failing gradient check (the fixture, ``assert_gradients_match``, or a bare ``gradcheck`` /
  ``gradgradcheck`` call) is reported as its table and its culprit, shortened to the terminal's
  width, under the test's own line rather than a traceback through the checker;
- ``--gradcheck-thorough`` raises the Hypothesis example count (for the strategies of
  :mod:`tinygrad_edu.testing.strategies` and any other ``@given`` test) to THOROUGH_EXAMPLES.
"""

from __future__ import annotations

import shutil
import traceback
from typing import Any, Callable, Sequence

import pytest

from .gradcheck import GradcheckError, assert_gradients_match

#: Hypothesis examples per test under ``--gradcheck-thorough``.
THOROUGH_EXAMPLES = 1500


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tinygrad-edu")
    group.addoption(
        "--gradcheck-thorough", action="store_true", default=False,
        help=f"run Hypothesis gradient tests with {THOROUGH_EXAMPLES} examples each (slow, thorough)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gradcheck: a gradient check (tinygrad_edu's pytest plugin)")
    if config.getoption("gradcheck_thorough", default=False):
        try:
            from hypothesis import settings
        except ImportError:
            raise pytest.UsageError("--gradcheck-thorough needs Hypothesis: pip install 'tinygrad_edu[testing]'") from None
        settings.register_profile("tinygrad-edu-thorough", parent=settings.default, max_examples=THOROUGH_EXAMPLES)
        settings.load_profile("tinygrad-edu-thorough")


def pytest_report_header(config: pytest.Config) -> str | None:
    if config.getoption("gradcheck_thorough", default=False):
        return f"tinygrad-edu: --gradcheck-thorough ({THOROUGH_EXAMPLES} Hypothesis examples per test)"
    return None


class GradcheckFixture:
    """What the ``gradcheck`` fixture gives: call it like ``assert_gradients_match``."""

    def __call__(self, fn: Callable, inputs: Sequence[float], **options: Any) -> None:
        __tracebackhide__ = True
        assert_gradients_match(fn, inputs, **options)


@pytest.fixture
def gradcheck() -> GradcheckFixture:
    """Assert that a function's gradients match numerical ones:
    ``gradcheck(lambda x, y: (x * y).tanh(), [0.5, -1.0])``; options as
    :func:`tinygrad_edu.testing.assert_gradients_match` (``second_order=True``, ``eps``, ``atol``, …)."""
    return GradcheckFixture()


def _test_line(excinfo: pytest.ExceptionInfo, item: pytest.Item) -> str:
    """``path:line`` of the innermost frame of the test's own file."""
    test_file = str(item.path)
    where = ""
    for frame in traceback.extract_tb(excinfo.tb):
        if frame.filename == test_file:
            where = f"{item.path.name}:{frame.lineno}: {frame.line or ''}".rstrip()
    return where


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    excinfo = call.excinfo
    if report.when != "call" or excinfo is None or not isinstance(excinfo.value, GradcheckError):
        return
    if item.config.getoption("tbstyle", "auto") == "long" or item.config.get_verbosity() > 1:
        return  # asked for everything: keep pytest's full report
    width = max(shutil.get_terminal_size((100, 20)).columns - 2, 40)
    text = excinfo.value.short(width=width)
    where = _test_line(excinfo, item)
    where = where if len(where) <= width else where[: width - 1] + "…"
    body = f"{where}\n\n{text}" if where else text
    # Hypothesis adds the falsifying example as notes; keep them.
    notes = getattr(excinfo.value, "__notes__", None)
    if notes:
        body += "\n\n" + "\n".join(notes)
    report.longrepr = body


__all__ = ["gradcheck", "GradcheckFixture", "THOROUGH_EXAMPLES"]
