"""The studio's front door, as ASGI middleware: every request must come to 127.0.0.1 or localhost
on the studio's own port (the Host header: a DNS-rebinding page sends its own host name), from no
other web page (the Origin header and ``Sec-Fetch-Site``), and carry the per-run token (``?token=``
in the printed URL, which then sets a same-site cookie, or an ``X-Studio-Token`` header).

A refused request gets a one-line plain-text answer (403 or 400) and never reaches the app.
"""

from __future__ import annotations

import secrets
from http.cookies import SimpleCookie
from typing import Iterable
from urllib.parse import parse_qs

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

TOKEN_HEADER = "x-studio-token"


def cookie_name(port: int) -> str:
    """Cookies are shared by every port of a host, so the name carries the port."""
    return f"tinygrad_edu_studio_{port}"


class Guard:
    """Refuses requests whose Host, Origin or token is not the studio's (see the module docstring)."""

    def __init__(self, app: ASGIApp, token: str, port: int, hosts: Iterable[str] = ("127.0.0.1", "localhost")):
        self.app, self.token, self.port = app, token, port
        self.hosts = {f"{h}:{port}" for h in hosts}
        self.origins = {f"http://{h}" for h in self.hosts}
        self.cookie = cookie_name(port)

    def _refusal(self, scope: Scope) -> tuple[int, str] | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if host not in self.hosts:
            return 403, (f"refused: Host {host!r} is not this studio's address; open "
                         f"http://127.0.0.1:{self.port}/ as printed by tinygrad-edu studio")
        origin = headers.get("origin")
        if origin is not None and origin not in self.origins:
            return 403, f"refused: requests from {origin} may not drive this studio"
        if headers.get("sec-fetch-site") == "cross-site":
            return 403, "refused: requests from other sites may not drive this studio"
        given = headers.get(TOKEN_HEADER)
        if given is None:
            values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
            given = values[0] if values else None
        if given is None and "cookie" in headers:
            try:
                morsel = SimpleCookie(headers["cookie"]).get(self.cookie)
            except Exception:  # a malformed Cookie header is a missing token
                morsel = None
            given = morsel.value if morsel is not None else None
        if given is None or not secrets.compare_digest(given.encode(), self.token.encode()):
            return 403, "refused: missing or wrong token; open the URL (with its ?token=...) that tinygrad-edu studio printed"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self._refusal(scope)
            if refusal is not None:
                status, text = refusal
                await PlainTextResponse(text + "\n", status_code=status)(scope, receive, send)
                return
        await self.app(scope, receive, send)
