"""Writing output files atomically: every file this package writes (models, pictures, graphs,
animations) goes through :func:`atomic_write`, so a reader, a crash, ``kill -9`` or Ctrl-C never
leaves a zero-byte or half-written file under the destination's name.

The data goes to a hidden temporary file in the destination's directory (same file system, so the
final ``os.replace`` is atomic), is flushed and fsynced, and only then takes the destination's
name. If anything goes wrong before that, KeyboardInterrupt included, the temporary file is
removed and the destination is left as it was. Only ``kill -9`` (or a power cut) can leave the
temporary file behind; its name carries the writer's process id, so the next write to the same
destination removes it once that process is gone.
"""

from __future__ import annotations

import glob
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator, Literal


def _default_mode() -> int:
    """The permission bits ``open(path, "w")`` would give a new file (0o666 less the umask)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


_NEW_FILE_MODE = _default_mode()


@contextmanager
def atomic_write(path: str | os.PathLike, mode: Literal["w", "wb"] = "w", *,
                 encoding: str = "utf-8") -> Iterator[IO]:
    """Open a temporary file next to ``path`` for writing; on a clean exit it replaces ``path``.

    ``mode`` is ``"w"`` (text, ``encoding``) or ``"wb"`` (bytes). A new file gets the usual
    permissions (0o666 less the umask); an existing one keeps its own.

        with atomic_write("runs/model.json") as f:
            f.write(text)
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write writes with mode 'w' or 'wb', not {mode!r}")
    path = Path(path)
    try:
        permissions = path.stat().st_mode & 0o777
    except OSError:
        permissions = _NEW_FILE_MODE
    _remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({"encoding": encoding} if mode == "w" else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, permissions)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _remove_stale_temporaries(path: Path) -> None:
    """Remove temporaries of ``path`` left by writers that were killed (``.NAME.PID.XXXX.tmp``
    whose process no longer runs). A live process's temporary, or a name not made by
    :func:`atomic_write`, is left alone."""
    for leftover in glob.glob(os.path.join(glob.escape(str(path.parent)), f".{glob.escape(path.name)}.*.tmp")):
        pid = os.path.basename(leftover)[len(path.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _process_exists(int(pid)):
            try:
                os.unlink(leftover)
            except OSError:
                pass  # gone already, or not ours to remove: it is only clutter


def _process_exists(pid: int) -> bool:
    if os.name != "posix":  # on Windows os.kill(pid, 0) would send Ctrl-C, not probe
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # someone else's process (or an unknowable pid): assume it may still be writing
    return True


def write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    with atomic_write(path, "w", encoding=encoding) as f:
        f.write(text)
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_write(path, "wb") as f:
        f.write(data)
    return Path(path)


__all__ = ["atomic_write", "write_text", "write_bytes"]
