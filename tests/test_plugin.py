"""testing.plugin, as installed through the pytest11 entry point: the gradcheck fixture, the
shortened failure report (table and culprit under the test's line), --gradcheck-thorough. Each
test runs pytest in a subprocess on a small test file, as a user's project would."""

import subprocess
import sys
import textwrap

import pytest

DEMO = '''
import math
from hypothesis import given, strategies as st
from tinygrad_edu import primitive
from tinygrad_edu.testing import gradcheck as plain_gradcheck

bad = primitive("plug_bad", lambda x: math.sin(x), lambda x: -math.cos(x))


def test_fixture_passes(gradcheck):
    gradcheck(lambda x, y: (x * y).tanh(), [0.5, -1.0], second_order=True)


def test_fixture_fails(gradcheck):
    gradcheck(lambda x, y: (bad(x * y) + y).exp(), [0.5, -1.0])


def test_bare_call_fails():
    plain_gradcheck(lambda *xs: sum((bad(x) for x in xs), 0.0), [0.1 * i for i in range(1, 12)])


@given(st.floats(0.5, 1.0))
def test_property_fails(x):
    plain_gradcheck(lambda v: bad(v), [x])


def test_examples_setting():
    from hypothesis import settings
    print("MAX_EXAMPLES", settings.default.max_examples)
'''


def run_pytest(tmp_path, *args: str, quiet: bool = True) -> subprocess.CompletedProcess:
    (tmp_path / "test_demo.py").write_text(textwrap.dedent(DEMO), encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *(["-q"] if quiet else []), "-s", "-rN", *args,
         "test_demo.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env={"COLUMNS": "100", "PATH": "/usr/bin:/bin"},
    )


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    return run_pytest(tmp_path_factory.mktemp("plugin"))


def section(output: str, test: str) -> str:
    start = output.index(f"_ {test} _")
    end = output.find("\n___", start + 1)
    return output[start:end if end != -1 else None]


def test_the_fixture_passes_and_fails(default_run):
    out = default_run.stdout
    assert "3 failed, 2 passed" in out
    text = section(out, "test_fixture_fails")
    lines = text.splitlines()
    assert lines[1] == "test_demo.py:15: gradcheck(lambda x, y: (bad(x * y) + y).exp(), [0.5, -1.0])"
    assert "gradcheck failed for f(x0, x1) = exp(plug_bad(x0*x1) + x1)" in text
    assert "Culprit: 1 of 4 primitive applications fail their own check:" in text
    assert "d/dx plug_bad(-0.5): rule -0.877583, numeric 0.877583" in text
    assert "path to the output: plug_bad(x0*x1) → · + x1 → exp(·)" in text
    assert "Traceback" not in text and "def assert_gradients_match" not in text  # no trip through the checker


def test_the_report_is_shortened_for_the_terminal(default_run):
    text = section(default_run.stdout, "test_bare_call_fails")
    assert "11 of 11 partial derivatives differ" in text
    rows = [line for line in text.splitlines() if line.startswith("✗")]
    assert len(rows) == 5 and "... 6 more" in text  # five worst rows
    assert "Culprits: 11 of 22 primitive applications fail their own check (the one that matters most shown):" in text
    assert text.count("- plug_bad at") == 1
    assert max(len(line) for line in text.splitlines()) <= 100


def test_hypothesis_failures_keep_the_falsifying_example(default_run):
    text = section(default_run.stdout, "test_property_fails")
    assert "test_property_fails(\n    x=" in text  # Hypothesis's failing example, kept
    assert "Culprit: 1 of 1 primitive applications" in text


def test_thorough_raises_the_example_count(tmp_path, default_run):
    assert "MAX_EXAMPLES 100" in default_run.stdout  # Hypothesis's own default, untouched
    run = run_pytest(tmp_path, "--gradcheck-thorough", "-k", "examples_setting", quiet=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "MAX_EXAMPLES 1500" in run.stdout
    assert "tinygrad-edu: --gradcheck-thorough (1500 Hypothesis examples per test)" in run.stdout
