"""tinygrad_edu._io: outputs are replaced whole or not at all."""

import os
import stat

import pytest

from tinygrad_edu import _io, nn
from tinygrad_edu.serialize import load_model, save_model


class Boom(BaseException):
    pass


def _interrupt_after(f, chunk, exc):
    f.write(chunk)
    raise exc


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), OSError("disk full"), Boom()])
def test_failed_write_leaves_no_destination_and_no_temporary(tmp_path, exc):
    path = tmp_path / "out.bin"
    with pytest.raises(type(exc)):
        with _io.atomic_write(path, "wb") as f:
            _interrupt_after(f, b"half of it", exc)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_previous_file_intact(tmp_path):
    path = tmp_path / "curves.png"
    path.write_bytes(b"the old picture")
    with pytest.raises(KeyboardInterrupt):
        with _io.atomic_write(path, "wb") as f:
            _interrupt_after(f, b"\x89PNG half", KeyboardInterrupt())
    assert path.read_bytes() == b"the old picture"
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]


def test_write_text_and_bytes_replace_the_file(tmp_path):
    path = tmp_path / "a.txt"
    assert _io.write_text(path, "héllo\n") == path
    assert path.read_text(encoding="utf-8") == "héllo\n"
    _io.write_bytes(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_new_file_gets_the_usual_permissions_and_old_file_keeps_its_own(tmp_path):
    plain = tmp_path / "plain"
    plain.write_text("x")  # what open(path, "w") gives under this process's umask
    atomic = _io.write_text(tmp_path / "atomic", "x")
    assert stat.S_IMODE(atomic.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)  # not mkstemp's 0o600
    existing = tmp_path / "existing"
    existing.write_text("old")
    existing.chmod(0o640)
    _io.write_text(existing, "new")
    assert stat.S_IMODE(existing.stat().st_mode) == 0o640


def test_unknown_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        with _io.atomic_write(tmp_path / "x", "a"):
            pass
    assert list(tmp_path.iterdir()) == []


def test_save_model_interrupted_mid_write_keeps_the_old_model(tmp_path, monkeypatch):
    path = tmp_path / "model.json"
    old = nn.MLP(2, [3, 1], seed=0)
    save_model(old, path)
    before = path.read_bytes()

    real_fdopen = os.fdopen

    def fdopen(fd, *args, **kwargs):
        f = real_fdopen(fd, *args, **kwargs)
        real_write = f.write

        def write(data):
            real_write(data[: len(data) // 2])
            raise KeyboardInterrupt

        f.write = write
        return f

    monkeypatch.setattr(_io.os, "fdopen", fdopen)
    with pytest.raises(KeyboardInterrupt):
        save_model(nn.MLP(2, [3, 1], seed=1), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.json"]
    assert load_model(path).state_dict() == old.state_dict()


@pytest.mark.skipif(os.name != "posix", reason="kill -9 and process probing are POSIX")
def test_a_temporary_left_by_kill_9_is_removed_by_the_next_write_not_while_its_writer_lives(tmp_path):
    import signal
    import subprocess
    import sys

    path = tmp_path / "model.json"
    writer = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom tinygrad_edu._io import atomic_write\n"
         f"with atomic_write({str(path)!r}) as f:\n    f.write('half'); f.flush(); print('writing', flush=True); "
         "time.sleep(60)\n"], stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    try:
        assert writer.stdout.readline() == "writing\n"
        [leftover] = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        assert leftover.name.startswith(f".model.json.{writer.pid}.")
        unrelated = tmp_path / ".model.json.notes.tmp"  # not a name atomic_write makes: never touched
        unrelated.write_text("mine")

        _io.write_text(path, "first")  # the writer still runs: its temporary stays
        assert leftover.exists() and path.read_text() == "first"

        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
        assert leftover.exists()  # kill -9 gives no chance to clean up
        _io.write_text(path, "second")
        assert not leftover.exists() and path.read_text() == "second" and unrelated.read_text() == "mine"
        assert sorted(p.name for p in tmp_path.iterdir()) == [".model.json.notes.tmp", "model.json"]
    finally:
        writer.kill()
        writer.wait(timeout=30)
        writer.stdout.close()
