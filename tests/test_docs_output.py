"""Outputs shown in the docs are produced by the code, not pasted: a ```text or ```console block
right after the marker ``<!-- output -->`` must equal what the code gives.

- after a ```python block: the block's printed output (blocks of a page run in order, in one
  namespace, as in test_docs.py);
- a ```console block whose first line is ``$ tinygrad-edu ...``: that command's output (stdout,
  then stderr) and, when it is not 0, ``[exit N]``.

Run with TINYGRAD_EDU_UPDATE_DOCS=1 to rewrite the blocks from the code instead (then review the
diff): the failing test names each block that differs.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
from pathlib import Path

import pytest

from tinygrad_edu import ops
from tinygrad_edu.cli import main as cli_main
from tinygrad_edu.custom import CustomPrimitive

ROOT = Path(__file__).resolve().parent.parent
MARKER = "<!-- output -->"
_BLOCK = re.compile(r"^```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def pages() -> list[Path]:
    return [p for p in sorted((ROOT / "docs").glob("**/*.md")) if MARKER in p.read_text(encoding="utf-8")]


def _run_python(code: str, namespace: dict, where: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, where, "exec"), namespace)
    return out.getvalue()


def _run_console(body: str) -> str:
    command = body.splitlines()[0]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli_main(shlex.split(command[2:])[1:])
        except SystemExit as exit_:  # argparse errors
            code = exit_.code
    text = out.getvalue() + err.getvalue()
    return f"{command}\n{text}" + (f"[exit {code}]\n" if code else "")


_TINY = re.compile(r"\b\d(?:\.\d+)?e-(?:1\d|[2-9]\d|\d{3})\b")  # below 1e-9: rounding-level
_STEP = re.compile(r"\s\S+( (?:kink|right|left|left\+right))?$")


def _normalise(text: str) -> str:
    """The text without what rounding decides and libm builds may change: numbers below 1e-9
    (numerical error estimates) and the step column of gradcheck tables (the step Ridders'
    method settles on)."""
    lines, in_table = [], False
    for line in text.strip("\n").splitlines():
        line = _TINY.sub("~0", line.rstrip())
        if line.endswith("num err  step"):
            in_table = True
        elif in_table and (not line or line.startswith("...")):
            in_table = False
        elif in_table:
            line = _STEP.sub(" <step>", line)
        lines.append(line)
    return "\n".join(lines)


@pytest.fixture
def fresh_custom_primitives():
    """The pages register custom primitives by name; test_docs.py runs the same code in this
    process. Run with none registered, and put the table back afterwards."""
    saved = dict(ops.PRIMITIVES)
    for name, op in saved.items():
        if isinstance(op, CustomPrimitive):
            del ops.PRIMITIVES[name]
    yield
    ops.PRIMITIVES.clear()
    ops.PRIMITIVES.update(saved)


@pytest.mark.parametrize("path", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_shown_outputs_are_what_the_code_prints(path: Path, tmp_path, monkeypatch, fresh_custom_primitives):
    monkeypatch.chdir(tmp_path)
    text = path.read_text(encoding="utf-8")
    namespace: dict = {"__name__": f"docs_output_{path.stem}"}
    last_output = None
    replacements: list[tuple[int, int, str]] = []
    stale: list[str] = []
    for match in _BLOCK.finditer(text):
        lang, body = match["lang"], match["body"]
        line = text.count("\n", 0, match.start()) + 1
        where = f"{path.relative_to(ROOT)}:{line}"
        before = text[: match.start()].rstrip().splitlines()
        marked = bool(before) and before[-1].strip() == MARKER
        skipped = bool(before) and before[-1].strip() == "<!-- skip-test -->"
        if lang in ("python", "py") and not skipped:
            last_output = _run_python(body, namespace, where)
        elif marked:
            if lang == "console":
                got = _run_console(body)
            else:
                assert last_output is not None, f"{where}: an output block with no python block before it"
                got, last_output = last_output, None
            if _normalise(got) != _normalise(body):
                stale.append(where)
                shown = "\n".join(line.rstrip() for line in got.strip("\n").splitlines())
                replacements.append((match.start("body"), match.end("body"), shown + "\n"))
    if stale and os.environ.get("TINYGRAD_EDU_UPDATE_DOCS") == "1":
        for start, end, new in reversed(replacements):
            text = text[:start] + new + text[end:]
        path.write_text(text, encoding="utf-8")
        return
    assert not stale, f"outputs differ from the code at {', '.join(stale)} (TINYGRAD_EDU_UPDATE_DOCS=1 rewrites them)"


def test_rounding_level_numbers_and_steps_are_ignored():
    table = "   input  value  num err  step\n✗  x0     0.5    3e-13    0.0036\n   x1     2      0        0.0071 kink\n"
    other = "   input  value  num err  step\n✗  x0     0.5    7e-14    0.0026\n   x1     2      0        0.0051 kink\n"
    assert _normalise(table) == _normalise(other)
    assert _normalise(table) != _normalise(table.replace("0.5", "0.6"))
    assert _normalise("rule 0.25, numeric 0.5 (± 2.8e-14)") == _normalise("rule 0.25, numeric 0.5 (± 5e-15)")
    assert _normalise("atol=1e-05") != _normalise("atol=1e-06")


def test_the_block_pattern_and_the_console_runner():
    doc = "```python\nprint(1)\n```\n<!-- output -->\n```text\n1\n```\n"
    assert [(m["lang"], m["body"]) for m in _BLOCK.finditer(doc)] == [("python", "print(1)\n"), ("text", "1\n")]
    assert _run_console("$ tinygrad-edu --version\n").startswith("$ tinygrad-edu --version\ntinygrad-edu ")
