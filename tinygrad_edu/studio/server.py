"""Running the studio: a uvicorn server on 127.0.0.1 with a fresh random token, in the foreground
(``tinygrad-edu studio``: Ctrl-C stops it) or in a background thread (tests, benchmarks, notebooks).

    >>> server = StudioServer(port=0).start()     # doctest: +SKIP
    >>> print(server.url)                         # http://127.0.0.1:PORT/?token=...
    >>> server.stop()
"""

from __future__ import annotations

import errno
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from .api import create_app
from .state import Studio

HOST = "127.0.0.1"
#: Seconds that open event streams get to finish when the server stops.
GRACEFUL_SECONDS = 1


def bind(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:``port`` (0: a free port); OSError when the port is taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((HOST, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def bind_near(port: int, tries: int = 20) -> socket.socket:
    """``bind(port)``, else the next free one of ``tries`` ports after it, else any free port."""
    for candidate in range(port, port + tries):
        try:
            return bind(candidate)
        except OSError as err:
            if err.errno != errno.EADDRINUSE:
                raise
    return bind(0)


class _Uvicorn(uvicorn.Server):
    """uvicorn's server, which also ends the studio's event streams when asked to stop (Ctrl-C),
    so stopping does not wait for open pages."""

    def __init__(self, config: uvicorn.Config, on_exit):
        super().__init__(config)
        self.on_exit = on_exit

    def handle_exit(self, sig, frame) -> None:
        self.on_exit()
        super().handle_exit(sig, frame)


class StudioServer:
    """A studio (its training state, its app) served by uvicorn on 127.0.0.1, with its own token."""

    def __init__(self, port: int = 0, *, config: dict[str, Any] | None = None, out_dir: str | Path = "runs/studio",
                 sock: socket.socket | None = None):
        self.sock = sock if sock is not None else bind(port)
        self.port = self.sock.getsockname()[1]
        self.token = secrets.token_urlsafe(24)
        self.studio = Studio(config)
        self.app = create_app(self.studio, self.token, self.port, out_dir=out_dir)
        self.server = _Uvicorn(uvicorn.Config(
            self.app, log_level="warning", access_log=False, lifespan="off",
            timeout_graceful_shutdown=GRACEFUL_SECONDS, limit_concurrency=256, timeout_keep_alive=5),
            on_exit=self.app.broadcaster.close)
        self._thread: threading.Thread | None = None

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def url(self) -> str:
        """The address to open: the page with the token (it sets the cookie the page then uses)."""
        return f"{self.base}/?token={self.token}"

    def run(self) -> None:
        """Serve in this thread until Ctrl-C (uvicorn's signal handling); then stop training."""
        try:
            self.server.run(sockets=[self.sock])
        finally:
            self.studio.close()
            self.sock.close()

    def start(self) -> StudioServer:
        """Serve in a background thread (no signal handling); returns when it answers."""
        self.server.install_signal_handlers = lambda: None  # uvicorn < 0.29 installs them in run()
        self._thread = threading.Thread(target=self._serve, name="studio-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the studio server did not start")
            time.sleep(0.01)
        return self

    def _serve(self) -> None:
        import asyncio

        asyncio.run(self.server.serve(sockets=[self.sock]))

    def stop(self) -> None:
        self.studio.close()
        self.app.broadcaster.close()
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.sock.close()

    def __enter__(self) -> StudioServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
