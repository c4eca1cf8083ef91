"""``tinygrad-edu tutorial``: writes the shipped notebooks, keeps a learner's edits and outputs,
updates untouched ones, says how to open them, and reports mistakes in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinygrad_edu.cli import main
from tinygrad_edu.tutorial import cells_fingerprint

SHIPPED = Path(__file__).resolve().parent.parent / "tinygrad_edu" / "tutorial"


def shipped() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(SHIPPED.glob("*.ipynb"))}


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["tutorial", *args])
    out, err = capsys.readouterr()
    return code, out, err


def written(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def edit(path: Path, cell: int = 1, text: str = "x = 42  # mine") -> None:
    nb = json.loads(path.read_text(encoding="utf-8"))
    code_cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    code_cells[cell]["source"] = text
    path.write_text(json.dumps(nb), encoding="utf-8")


def test_writes_every_notebook_and_says_how_to_open_them(tmp_path, capsys):
    out = tmp_path / "my tutorial"
    code, stdout, stderr = run(capsys, "--out", str(out))
    assert (code, stderr) == (0, "")
    assert written(out) == shipped()  # the notebooks and nothing else (no temporary files left)
    assert len(shipped()) >= 8
    assert f"wrote {len(shipped())} of {len(shipped())} notebooks" in stdout
    assert "pip install jupyterlab" in stdout
    assert f"jupyter lab '{out}'" in stdout  # quoted: the folder has a space


def test_default_folder_is_in_the_current_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, stdout, _ = run(capsys)
    assert code == 0
    assert written(tmp_path / "tinygrad-edu-tutorial") == shipped()
    assert "jupyter lab tinygrad-edu-tutorial" in stdout


def test_rerun_keeps_notebooks_that_were_only_run(tmp_path, capsys):
    run(capsys, "--out", str(tmp_path))
    name = sorted(shipped())[0]
    nb = json.loads((tmp_path / name).read_text(encoding="utf-8"))
    first = next(c for c in nb["cells"] if c["cell_type"] == "code")
    first["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "ran it\n"}]
    first["execution_count"] = 1
    (tmp_path / name).write_text(json.dumps(nb), encoding="utf-8")
    ran = (tmp_path / name).read_bytes()

    code, stdout, _ = run(capsys, "--out", str(tmp_path))
    assert code == 0
    assert (tmp_path / name).read_bytes() == ran  # outputs kept
    assert f"wrote 0 of {len(shipped())} notebooks" in stdout and "already up to date" in stdout


def test_refuses_to_overwrite_an_edited_notebook_without_force(tmp_path, capsys):
    run(capsys, "--out", str(tmp_path))
    names = sorted(shipped())
    edit(tmp_path / names[1])
    (tmp_path / names[2]).unlink()  # would be written again, but nothing is written when refusing
    mine = (tmp_path / names[1]).read_bytes()

    code, stdout, stderr = run(capsys, "--out", str(tmp_path))
    assert code == 2 and stdout == ""
    assert stderr.count("\n") == 1 and stderr.startswith("tinygrad-edu tutorial: error: ")
    assert names[1] in stderr and "--force" in stderr
    assert (tmp_path / names[1]).read_bytes() == mine
    assert not (tmp_path / names[2]).exists()

    code, stdout, stderr = run(capsys, "--out", str(tmp_path), "--force")
    assert (code, stderr) == (0, "")
    assert written(tmp_path) == shipped()


def test_a_file_that_is_not_a_notebook_counts_as_edited(tmp_path, capsys):
    name = sorted(shipped())[0]
    (tmp_path / name).write_text("my notes, not JSON", encoding="utf-8")
    code, _, stderr = run(capsys, "--out", str(tmp_path))
    assert code == 2 and name in stderr
    assert (tmp_path / name).read_text(encoding="utf-8") == "my notes, not JSON"


def test_many_edited_notebooks_are_named_in_one_short_line(tmp_path, capsys):
    run(capsys, "--out", str(tmp_path))
    for name in shipped():
        edit(tmp_path / name, cell=0)
    code, _, stderr = run(capsys, "--out", str(tmp_path))
    assert code == 2 and stderr.count("\n") == 1 and len(stderr) < 400
    assert f"{len(shipped())} notebooks" in stderr and "more" in stderr


def test_updates_an_untouched_notebook_from_an_older_version(tmp_path, capsys):
    """A notebook whose cells still match the fingerprint it was written with is not the learner's work."""
    run(capsys, "--out", str(tmp_path))
    name = sorted(shipped())[0]
    path = tmp_path / name
    edit(path, cell=0, text="print('the older chapter')")
    older = json.loads(path.read_text(encoding="utf-8"))
    older["metadata"]["tinygrad_edu"]["cells"] = cells_fingerprint(older)  # as the older version wrote it
    path.write_text(json.dumps(older), encoding="utf-8")

    code, stdout, stderr = run(capsys, "--out", str(tmp_path))
    assert (code, stderr) == (0, "")
    assert path.read_bytes() == shipped()[name]
    assert f"wrote 1 of {len(shipped())} notebooks" in stdout


def test_fingerprint_sees_sources_not_outputs_or_line_splitting():
    nb = {"cells": [{"cell_type": "code", "source": "a = 1\nb = 2", "outputs": []}]}
    split = {"cells": [{"cell_type": "code", "source": ["a = 1\n", "b = 2"], "outputs": [{"text": "x"}]}]}
    changed = {"cells": [{"cell_type": "code", "source": "a = 1\nb = 3", "outputs": []}]}
    as_markdown = {"cells": [{"cell_type": "markdown", "source": "a = 1\nb = 2"}]}
    assert cells_fingerprint(nb) == cells_fingerprint(split)
    assert len({cells_fingerprint(nb), cells_fingerprint(changed), cells_fingerprint(as_markdown)}) == 3


@pytest.mark.parametrize("make", ["file", "file-parent"])
def test_out_that_is_a_file_is_a_one_line_error(tmp_path, capsys, make):
    blocker = tmp_path / "taken"
    blocker.write_text("x", encoding="utf-8")
    out = blocker if make == "file" else blocker / "sub"
    code, stdout, stderr = run(capsys, "--out", str(out))
    assert code == 2 and stdout == ""
    assert stderr.count("\n") == 1 and str(blocker) in stderr
    assert blocker.read_text(encoding="utf-8") == "x"
