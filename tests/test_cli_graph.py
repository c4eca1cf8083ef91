"""``tinygrad-edu graph``: expression in, picture out; unsafe input is a one-line error with exit 2."""

import math
import xml.etree.ElementTree as ET

import pytest
from PIL import Image

from tinygrad_edu.cli import main

NEURON = ["graph", "tanh(x*w + b)", "--set", "x=0.5", "--set", "w=-1.5", "--set", "b=0.2"]


def test_writes_an_svg_and_prints_value_and_gradients(tmp_path, capsys, any_layout):
    out = tmp_path / "graph.svg"
    assert main([*NEURON, "--out", str(out)]) == 0
    svg = ET.parse(out).getroot()
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    texts = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text") if t.text]
    assert any(t.startswith("grad ") for t in texts)
    printed = capsys.readouterr().out
    t = math.tanh(0.5 * -1.5 + 0.2)
    d = 1 - t * t
    assert f"= {t:.6g}" in printed
    assert f"d/dx = {-1.5 * d:.6g}" in printed and f"d/dw = {0.5 * d:.6g}" in printed


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".pdf", b"%PDF"), (".dot", b"digraph")])
def test_format_follows_the_suffix(tmp_path, require_dot, suffix, magic):
    out = tmp_path / f"graph{suffix}"
    assert main([*NEURON, "--out", str(out)]) == 0
    assert out.read_bytes().startswith(magic)


def test_animate_writes_a_gif(tmp_path, require_dot):
    gif = tmp_path / "backprop.gif"
    assert main([*NEURON, "--out", str(tmp_path / "g.svg"), "--animate", str(gif)]) == 0
    with Image.open(gif) as image:
        assert image.n_frames == 5


def test_no_backward_draws_data_only(tmp_path, require_svg_layout):
    out = tmp_path / "g.svg"
    assert main([*NEURON, "--out", str(out), "--no-backward"]) == 0
    texts = [t.text for t in ET.parse(out).getroot().iter("{http://www.w3.org/2000/svg}text") if t.text]
    assert not any(t.startswith("grad") for t in texts)


def test_html_writes_the_explorer_with_the_expression_as_its_title(tmp_path, require_svg_layout):
    out = tmp_path / "graph.html"
    assert main([*NEURON, "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<title>tanh(x*w + b)</title>" in page
    assert '"phase":"backward"' in page
    assert main([*NEURON, "--out", str(out), "--no-backward"]) == 0
    assert '"phase":"backward"' not in out.read_text(encoding="utf-8")


def test_no_backward_with_animate_is_refused_in_one_line(tmp_path, capsys):
    assert main([*NEURON, "--out", str(tmp_path / "g.svg"), "--no-backward", "--animate", str(tmp_path / "b.gif")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--no-backward" in err and "--animate" in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "expression",
    [
        "x.__class__",
        "x[0]",
        "__import__('os').system('touch pwned')",
        "import os",
        "open('f')",
        "lambda: x",
        "9**9**9",
        "x ** 100000",
        "tanh(" * 60 + "x" + ")" * 60 + " + " + "-" * 250 + "x",
        "x if x else x",
    ],
)
def test_unsafe_expressions_are_one_line_errors_with_exit_2(tmp_path, capsys, monkeypatch, expression):
    monkeypatch.chdir(tmp_path)
    assert main(["graph", expression, "--set", "x=1", "--out", "g.svg"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "error" in err
    assert list(tmp_path.iterdir()) == []  # nothing written, nothing run


def test_missing_variables_are_listed(tmp_path, capsys):
    assert main(["graph", "a*x + b", "--set", "x=1", "--out", str(tmp_path / "g.svg")]) == 2
    err = capsys.readouterr().err
    assert "a, b" in err and "--set" in err


@pytest.mark.parametrize(
    "args, text",
    [(["--set", "x=abc"], "must be a number"), (["--set", "1x=2"], "NAME=NUMBER"), (["--set", "x=nan"], "finite")],
)
def test_bad_set_values_are_one_line_usage_errors(capsys, args, text):
    with pytest.raises(SystemExit) as info:
        main(["graph", "log(x)", *args])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert text in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "args, text",
    [
        (["--set", "x=1", "--set", "x=2"], "twice"),
        (["--set", "x=1", "--set", "q=2"], "not used"),
        (["--set", "x=1", "--out", "g.jpeg"], ".svg, .png, .pdf or .dot"),
        (["--set", "x=1", "--animate", "a.mp4"], ".gif"),
        (["--set", "x=-1"], "log"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path, capsys, monkeypatch, args, text):
    monkeypatch.chdir(tmp_path)
    assert main(["graph", "log(x)", *args]) == 2
    err = capsys.readouterr().err
    assert text in err and err.count("\n") == 1


def test_too_large_graphs_are_refused_with_the_option_to_use(tmp_path, capsys):
    expression = " + ".join(["x*y"] * 80)
    assert main(["graph", expression, "--set", "x=1", "--set", "y=2", "--out", str(tmp_path / "g.svg")]) == 2
    assert "--max-nodes" in capsys.readouterr().err


def test_without_dot_svg_is_drawn_in_process(tmp_path, capsys, require_wasm_layout, no_dot):
    assert main([*NEURON, "--out", str(tmp_path / "g.svg")]) == 0
    assert capsys.readouterr().err == ""
    assert (tmp_path / "g.svg").read_text().lstrip().startswith("<?xml")


@pytest.mark.parametrize("args", [["--out", "g.png"], ["--out", "g.pdf"], ["--out", "g.dot", "--animate", "a.gif"]])
def test_without_dot_png_pdf_and_gif_say_in_one_line_how_to_install(tmp_path, capsys, no_dot, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    assert main([*NEURON, *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "apt-get install graphviz" in err and "brew install graphviz" in err
    assert (tmp_path / "g.dot").read_text().startswith("digraph")
    assert not any(p.suffix in (".png", ".pdf", ".gif") for p in tmp_path.iterdir())


def test_without_any_layout_the_explorer_is_one_line_saying_how_to_install(tmp_path, capsys, no_dot, monkeypatch):
    from tinygrad_edu.viz import layout

    monkeypatch.setattr(layout._Wasm, "backend", None)
    monkeypatch.setattr(layout._Wasm, "missing", "the in-process layout is not installed")
    assert main([*NEURON, "--out", str(tmp_path / "g.html")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "apt-get install graphviz" in err
    assert list(tmp_path.iterdir()) == []


def test_a_graphviz_failure_is_one_line(tmp_path, capsys, monkeypatch):
    from tinygrad_edu.viz import layout

    def fails(source):
        raise layout.LayoutError("dot failed: Error: <stdin>: syntax error in line 1 near " + "x" * 5000)

    monkeypatch.setattr(layout, "svg_from_dot", fails)
    for name in ("g.svg", "g.html"):
        assert main([*NEURON, "--out", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "syntax error" in err
        assert list(tmp_path.iterdir()) == []


# --- hostile and careless command lines ---------------------------------------------------------

def test_a_byte_that_is_not_utf8_is_one_line_exit_2(tmp_path):
    import subprocess
    import sys

    if sys.platform == "win32":
        pytest.skip("command-line bytes are POSIX")
    result = subprocess.run([sys.executable, "-m", "tinygrad_edu", "graph", b"\xff", "--out", "g.svg"],
                            cwd=tmp_path, capture_output=True, timeout=60)
    assert result.returncode == 2
    err = result.stderr.decode("utf-8", "replace")
    assert err.count("\n") == 1 and "Traceback" not in err and "0xff is not UTF-8" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("expression", ["\ud800", "x\x00"])
def test_a_lone_surrogate_or_nul_is_one_line_exit_2(tmp_path, capsys, monkeypatch, expression):
    monkeypatch.chdir(tmp_path)
    assert main(["graph", expression, "--out", "g.dot"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "column" in err


@pytest.mark.parametrize("argv", [
    ["graph", "-x*w", "--set", "x=2", "--set", "w=3"],
    ["graph", "--set", "x=2", "-x*w", "--set", "w=3"],
    ["graph", "--set=x=2", "--no-backward", "--set", "w=3", "-x*w"],
    ["graph", "--se", "x=2", "--set", "w=3", "--", "-x*w"],
])
def test_an_expression_may_start_with_a_minus(tmp_path, capsys, monkeypatch, argv, require_svg_layout):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("-x*w = -6")


def test_set_accepts_every_name_an_expression_accepts(tmp_path, capsys, monkeypatch, require_svg_layout):
    monkeypatch.chdir(tmp_path)
    assert main(["graph", "é * 2 + x_1", "--set", "é=1.5", "--set", "x_1=1"]) == 0
    assert capsys.readouterr().out.startswith("é * 2 + x_1 = 4")
    # Python reads the ligature ﬁ in an expression as fi (NFKC); --set does the same
    assert main(["graph", "ﬁ * 3", "--set", "ﬁ=2"]) == 0
    assert "= 6" in capsys.readouterr().out


@pytest.mark.parametrize("args, text", [
    (["--set", "_x=1"], "NAME=NUMBER"),
    (["--set", "1x=1"], "NAME=NUMBER"),
    (["--set", "1" + "x" * 1_000_000 + "=1"], "NAME=NUMBER"),
    (["--set", "x=" + "9" * 1_000_000], "must be a finite number"),
    (["--set", "x=" + "z" * 1_000_000], "must be a number"),
    (["--max-nodes", "9" * 5000], "--max-nodes"),
    (["--rankdir", "Q" * 1_000_000], "invalid choice"),
])
def test_errors_about_huge_arguments_stay_one_short_line(capsys, args, text):
    with pytest.raises(SystemExit) as info:
        main(["graph", "log(x)", *args])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert text in err and err.count("\n") == 1 and len(err) < 600
