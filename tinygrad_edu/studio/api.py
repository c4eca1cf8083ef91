"""The studio's web API on Starlette: the page, its two local assets, JSON endpoints that drive a
:class:`~tinygrad_edu.studio.state.Studio`, and Server-Sent Events that push its snapshot.

Endpoints (all behind :class:`~tinygrad_edu.studio.guard.Guard`):

========================  ====================================================================
``GET /``                 the page (the token in ``?token=`` sets the cookie the rest uses)
``GET /static/NAME``      ``studio.js`` and ``studio.css``, nothing else
``GET /api/state``        the snapshot: status, epoch, metrics, history, network, norms
``GET /api/config``       the settings and their table (types, ranges, choices)
``GET /api/points``       the training and test points
``GET /api/events``       Server-Sent Events: a snapshot whenever it changes (at most ~20/s)
``GET /api/model.json``   the model file of the current weights (``tinygrad-edu predict`` reads it)
``GET /explore``          ``?set=train|test&index=N``: the explorer on that point's loss graph
``POST /api/config``      a partial settings update, e.g. ``{"lr": 0.05}``
``POST /api/control``     ``{"action": "play" | "pause" | "step" | "epoch" | "reset"}``
``POST /api/points``      ``{"x": .., "y": .., "label": 0 | 1}`` adds a training point
``POST /api/points/remove``  ``{"index": N}`` removes training point N
``POST /api/save``        writes model.json, decision_boundary.png and curves.png to the output directory
========================  ====================================================================

A bad request gets a 4xx answer with a one-line message (``{"error": ...}`` from ``/api``) and
changes nothing: the settings are checked in full before any is applied.
"""

from __future__ import annotations

import asyncio
import json
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from .config import ConfigError, describe
from .guard import Guard, cookie_name
from .state import Studio, StudioError

#: Largest request body accepted (bytes); the biggest real one is a settings update of a few hundred.
MAX_BODY = 16 * 1024
#: Open event streams at once; one more gets 503 (a page holds one).
MAX_STREAMS = 64
#: Seconds between keep-alive comments on an idle event stream (a closed page is noticed by then).
KEEPALIVE = 15.0
#: A page gets at most this many events a second (later snapshots replace earlier unsent ones).
MAX_EVENT_HZ = 25

ASSETS = {"studio.js": "text/javascript; charset=utf-8", "studio.css": "text/css; charset=utf-8"}

PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
            "connect-src 'self'; frame-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'")
#: The explorer is one self-contained document: inline script and style, nothing fetched.
EXPLORER_CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "
                "font-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'")
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                    "Cache-Control": "no-store"}


def _asset(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


class Broadcaster:
    """Wakes every open event stream when the studio changed; thread-safe :meth:`notify`. The
    snapshot's JSON is built in a worker thread (it takes the studio's lock)."""

    def __init__(self, studio: Studio):
        self.studio = studio
        self.loop: asyncio.AbstractEventLoop | None = None
        self.events: set[asyncio.Event] = set()
        self.closed = False
        self._cache: tuple[int, str] = (-1, "")
        self._building = asyncio.Lock()  # one build per version, however many streams wake at once

    def notify(self) -> None:
        loop = self.loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._wake)
            except RuntimeError:  # the loop closed meanwhile (shutting down)
                pass

    def close(self) -> None:
        """End every open stream (the server is stopping), from any thread."""
        self.closed = True
        self.notify()

    def _wake(self) -> None:
        for event in self.events:
            event.set()

    async def latest(self) -> str:
        """The snapshot's JSON, built once per version of the studio however many pages ask."""
        async with self._building:
            if self._cache[0] != self.studio.version:
                self._cache = await anyio.to_thread.run_sync(self._build)
            return self._cache[1]

    def _build(self) -> tuple[int, str]:
        snap = self.studio.snapshot()
        return snap["version"], json.dumps(snap, allow_nan=False)

    async def stream(self, request: Request):
        event = asyncio.Event()
        self.events.add(event)
        try:
            yield "retry: 1000\n\n"
            while not self.closed:
                yield f"data: {await self.latest()}\n\n"
                while not event.is_set():
                    try:
                        await asyncio.wait_for(event.wait(), KEEPALIVE)
                    except asyncio.TimeoutError:
                        yield ": keep-alive\n\n"
                event.clear()
                if not self.closed:
                    await asyncio.sleep(1.0 / MAX_EVENT_HZ)  # coalesce: the next send takes the newest snapshot
        finally:
            self.events.discard(event)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


async def _body(request: Request) -> Any:
    """The request's JSON body, at most MAX_BODY bytes; raises ConfigError with what is wrong."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
        raise HTTPException(413, f"the request body is over {MAX_BODY} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise HTTPException(413, f"the request body is over {MAX_BODY} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise ConfigError("expected a JSON object in the request body, got nothing")
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise ConfigError("the request body is not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
    except ValueError as err:
        raise ConfigError(f"malformed JSON: {err}") from None


def _object(body: Any, allowed: dict[str, bool]) -> dict:
    """``body`` as a JSON object with only the ``allowed`` keys (value: required)."""
    if not isinstance(body, dict):
        raise ConfigError(f"expected a JSON object, got {type(body).__name__}")
    for key in body:
        if key not in allowed:
            raise ConfigError(f"unknown field {key!r}; expected {', '.join(allowed)}")
    for key, required in allowed.items():
        if required and key not in body:
            raise ConfigError(f"missing field {key!r}")
    return body


def create_app(studio: Studio, token: str, port: int, *, out_dir: str | Path = "runs/studio",
               explorer: Callable[[Studio, str, int], str] | None = None) -> Guard:
    """The ASGI application for ``studio``: Starlette routes behind the Host/Origin/token guard.
    ``port`` is the port the server listens on (the Host header must name it). ``explorer(studio,
    set, index)`` returns the explorer's HTML for a point (default: :func:`.explore.explorer_html`)."""
    from .explore import explorer_html, save_views

    explorer = explorer or explorer_html
    broadcaster = Broadcaster(studio)
    studio.on_change = broadcaster.notify
    page = _asset("index.html")

    async def index(request: Request) -> Response:
        response = Response(page, media_type="text/html; charset=utf-8", headers={"Content-Security-Policy": PAGE_CSP})
        if request.query_params.get("token"):  # the printed URL: later requests carry the cookie
            response.set_cookie(cookie_name(port), token, httponly=True, samesite="strict", path="/")
        return response

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ASSETS:
            raise HTTPException(404, f"no asset {name!r}")
        return Response(_asset(name), media_type=ASSETS[name])

    async def state(request: Request) -> Response:
        return Response(await broadcaster.latest(), media_type="application/json")

    async def get_config(request: Request) -> Response:
        current = await anyio.to_thread.run_sync(studio.settings)
        return JSONResponse({"config": current, "fields": describe()})

    async def points(request: Request) -> Response:
        return JSONResponse(await anyio.to_thread.run_sync(studio.points))

    async def events(request: Request) -> Response:
        broadcaster.loop = asyncio.get_running_loop()
        if len(broadcaster.events) >= MAX_STREAMS:
            return _error(503, f"too many open event streams ({MAX_STREAMS}); close some studio pages")
        return StreamingResponse(broadcaster.stream(request), media_type="text/event-stream",
                                 headers={"X-Accel-Buffering": "no"})

    async def model_json(request: Request) -> Response:
        doc = await anyio.to_thread.run_sync(studio.model_document)
        return Response(json.dumps(doc, indent=1, allow_nan=False) + "\n", media_type="application/json",
                        headers={"Content-Disposition": 'attachment; filename="model.json"'})

    async def explore(request: Request) -> Response:
        which = request.query_params.get("set", "train")
        raw = request.query_params.get("index", "")
        if not raw.isdigit() or len(raw) > 9:
            raise ConfigError(f"index must be a whole number, got {raw!r}")
        html = await anyio.to_thread.run_sync(explorer, studio, which, int(raw))
        return Response(html, media_type="text/html; charset=utf-8", headers={"Content-Security-Policy": EXPLORER_CSP})

    async def post_config(request: Request) -> Response:
        update = await _body(request)
        await anyio.to_thread.run_sync(studio.configure, update)
        return JSONResponse({"config": await anyio.to_thread.run_sync(studio.settings)})

    actions = {"play": studio.play, "pause": studio.pause, "step": studio.step, "epoch": studio.run_epoch,
               "reset": studio.reset}

    async def control(request: Request) -> Response:
        body = _object(await _body(request), {"action": True})
        action = body["action"]
        if not isinstance(action, str) or action not in actions:
            raise ConfigError(f"unknown action {action!r}; choose one of {', '.join(actions)}")
        await anyio.to_thread.run_sync(actions[action])
        return Response(await broadcaster.latest(), media_type="application/json")

    async def add_point(request: Request) -> Response:
        body = _object(await _body(request), {"x": True, "y": True, "label": True})
        n = await anyio.to_thread.run_sync(studio.add_point, body["x"], body["y"], body["label"])
        return JSONResponse({"train": n})

    async def remove_point(request: Request) -> Response:
        body = _object(await _body(request), {"index": True})
        n = await anyio.to_thread.run_sync(studio.remove_point, body["index"])
        return JSONResponse({"train": n})

    async def save(request: Request) -> Response:
        paths = await anyio.to_thread.run_sync(save_views, studio, Path(out_dir))
        return JSONResponse({"paths": [str(p) for p in paths]})

    async def config_error(request: Request, exc: Exception) -> Response:
        return _error(400, str(exc))

    async def studio_error(request: Request, exc: Exception) -> Response:
        return _error(409, str(exc))

    async def http_error(request: Request, exc: HTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if request.url.path.startswith("/api/"):
            return _error(exc.status_code, detail)
        return PlainTextResponse(detail + "\n", status_code=exc.status_code)

    async def server_error(request: Request, exc: Exception) -> Response:
        text = " ".join(str(exc).split()) or type(exc).__name__
        return _error(500, f"internal error: {type(exc).__name__}: {text}")

    routes = [
        Route("/", index), Route("/static/{name}", static), Route("/api/state", state),
        Route("/api/config", get_config, methods=["GET"]), Route("/api/config", post_config, methods=["POST"]),
        Route("/api/points", points, methods=["GET"]), Route("/api/points", add_point, methods=["POST"]),
        Route("/api/points/remove", remove_point, methods=["POST"]), Route("/api/events", events),
        Route("/api/model.json", model_json), Route("/explore", explore),
        Route("/api/control", control, methods=["POST"]), Route("/api/save", save, methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={
        ConfigError: config_error, StudioError: studio_error, HTTPException: http_error, Exception: server_error})

    async def with_headers(scope, receive, send):
        if scope["type"] == "http":
            broadcaster.loop = broadcaster.loop or asyncio.get_running_loop()

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()
                         if k.lower().encode() not in present]
                message = {**message, "headers": list(message.get("headers", [])) + extra}
            await send(message)

        await app(scope, receive, send_with_headers)

    guard = Guard(with_headers, token, port)
    guard.broadcaster = broadcaster  # the server ends the event streams through it when stopping
    return guard

