"""tinygrad_edu.viz.layout: DOT in, SVG out, with the system dot and without it."""

import threading
import xml.etree.ElementTree as ET

import pytest

from tinygrad_edu.viz import layout

SVG = "{http://www.w3.org/2000/svg}"
SOURCE = 'digraph { a [label="alpha"]; b [label="beta"]; a -> b; a -> c }'


def node_titles(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    return sorted(g.find(f"{SVG}title").text for g in root.iter(f"{SVG}g") if g.get("class") == "node")


def test_svg_from_dot_lays_out_every_node_with_either_layout(any_layout):
    svg = layout.svg_from_dot(SOURCE)
    assert isinstance(svg, str) and svg.lstrip().startswith("<?xml")
    assert node_titles(svg) == ["a", "b", "c"]
    texts = {t.text for t in ET.fromstring(svg).iter(f"{SVG}text")}
    assert {"alpha", "beta", "c"} <= texts


def test_without_dot_the_in_process_layout_is_used(require_wasm_layout, no_dot):
    assert layout.find_dot() is None
    assert node_titles(layout.svg_from_dot(SOURCE)) == ["a", "b", "c"]


def test_in_process_layout_recovers_after_a_syntax_error(require_wasm_layout, no_dot):
    with pytest.raises(layout.LayoutError):
        layout.svg_from_dot("digraph { a -> ")
    assert node_titles(layout.svg_from_dot(SOURCE)) == ["a", "b", "c"]
    assert node_titles(layout.svg_from_dot('digraph { x [label=<<b>é</b>>] }')) == ["x"]


def test_system_dot_syntax_error_is_a_layout_error(require_dot):
    with pytest.raises(layout.LayoutError, match="dot failed"):
        layout.svg_from_dot("digraph { a -> ")


def test_in_process_layout_is_safe_from_threads(require_wasm_layout, no_dot):
    results, errors = [], []

    def work(i):
        try:
            results.append(node_titles(layout.svg_from_dot(f"digraph {{ n{i} -> m{i} }}")) == [f"m{i}", f"n{i}"])
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and results == [True] * 8


def test_without_any_layout_the_error_is_one_line_naming_the_install(no_dot, monkeypatch):
    monkeypatch.setattr(layout._Wasm, "backend", None)
    monkeypatch.setattr(layout._Wasm, "missing", "the in-process layout is not installed")
    with pytest.raises(layout.GraphvizNotFoundError) as info:
        layout.svg_from_dot(SOURCE)
    message = str(info.value)
    assert "\n" not in message and "apt-get install graphviz" in message and "brew install graphviz" in message


@pytest.mark.parametrize("suffix", [".png", ".pdf"])
def test_raster_formats_without_dot_are_refused_in_one_line(tmp_path, no_dot, suffix):
    with pytest.raises(layout.GraphvizNotFoundError) as info:
        layout.render_to_file(SOURCE, tmp_path / f"g{suffix}")
    message = str(info.value)
    assert "\n" not in message and "apt-get install graphviz" in message and suffix[1:].upper() in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".pdf", b"%PDF")])
def test_raster_formats_with_dot(tmp_path, require_dot, suffix, magic):
    assert layout.render_to_file(SOURCE, tmp_path / f"g{suffix}").read_bytes().startswith(magic)


@pytest.mark.parametrize("suffix", [".dot", ".gv"])
def test_source_suffixes_write_the_source_without_any_graphviz(tmp_path, no_dot, monkeypatch, suffix):
    monkeypatch.setattr(layout._Wasm, "missing", "not installed")
    monkeypatch.setattr(layout._Wasm, "backend", None)
    assert layout.render_to_file(SOURCE, tmp_path / f"g{suffix}").read_text() == SOURCE


def test_svg_file_is_written_atomically(tmp_path, any_layout, monkeypatch):
    path = tmp_path / "g.svg"
    path.write_text("old")
    with monkeypatch.context() as m:
        m.setattr(layout, "render", lambda source, fmt: (_ for _ in ()).throw(KeyboardInterrupt))
        with pytest.raises(KeyboardInterrupt):
            layout.render_to_file(SOURCE, path)
    assert path.read_text() == "old"
    assert node_titles(layout.render_to_file(SOURCE, path).read_text()) == ["a", "b", "c"]


def test_unknown_suffix(tmp_path):
    with pytest.raises(ValueError, match=".svg, .png, .pdf or .dot"):
        layout.render_to_file(SOURCE, tmp_path / "g.jpeg")


def test_a_long_graphviz_error_is_cut_to_one_short_line(require_dot):
    with pytest.raises(layout.LayoutError) as info:
        layout.svg_from_dot("digraph { a -> " + "b" * 10000 + " [[[ }")
    message = str(info.value)
    assert "\n" not in message and len(message) < 300
