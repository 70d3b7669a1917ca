"""The kiosk's aiohttp application: pages, the frame WebSocket, status and controls.

Routes:
    GET  /                 overview: every screen, live, with status and controls
    GET  /screen/<name>    one screen alone, for a kiosk browser (404 page if unknown)
    GET  /ws/<name>        WebSocket of that screen's frames (format: protocol.py)
    GET  /api/status       the hub's status dict plus "screens"
    GET  /api/health       ok / degraded / failing, per-screen frame age and fps, ledger, disk
                           (no token, no secrets; 503 when failing, for monitors)
    GET  /metrics          Prometheus text: frames, late frames, faces, render times, memory
    POST /api/control      {"action": "pause"|"resume"|"next"|"quit"} or
                           {"action": "exactingness", "value": 0..1}, or a live knob
                           {"action": "drift"|"tempo"|"walk/speed"|"direction/<name>",
                           "value": x, "screen": name} (docs/osc.md), needs the token
    POST /api/capture      {"screen": name}: capture what it shows now (re-rendered from its
                           key, kept in <home>/captures), needs the token; 501 if the
                           installation offers no captures
    GET  /static/...       the pages' CSS and JS

Controls always need the token, as ``Authorization: Bearer <token>`` or
``X-Passersby-Token: <token>``; pages opened with ``?token=<token>`` send it for the operator.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import weakref
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from aiohttp import WSCloseCode, WSMsgType, web

from passersby.stream.frames import ACTIONS, DIRECTION, is_action
from passersby.web.bridge import FrameBridge
from passersby.web.pages import SECURITY_HEADERS, STATIC, Pages
from passersby.web.threaded import TurnedAway

log = logging.getLogger(__name__)

# Frame streams open at once, all screens together: a gallery's screens and a few visitors'
# phones, far below the process's file descriptors (1,024 by default), which a client opening
# sockets without end would otherwise use up (then the ledger, captures and logs fail too).
MAX_SOCKETS = 64


@dataclass
class KioskState:
    """What the handlers share: the frames, the token, the pages and the open WebSockets."""

    bridge: FrameBridge
    token: str
    pages: Pages
    sockets: weakref.WeakSet = field(default_factory=weakref.WeakSet)
    capture: Callable[[str], dict[str, Any]] | None = None  # screen -> the capture's summary (app layer)
    turned_away: TurnedAway | None = None  # the server's counter of connections refused at its caps


STATE = web.AppKey("kiosk", KioskState)


def make_app(state: KioskState) -> web.Application:
    """The aiohttp application serving `state` (see the module docstring for the routes).

    Example:
        >>> app = make_app(KioskState(bridge, "secret", Pages()))  # inside a running server's event loop  # doctest: +SKIP
    """
    app = web.Application(middlewares=[_not_found_page], client_max_size=64 * 1024)
    app[STATE] = state
    app.router.add_get("/", overview)
    app.router.add_get("/screen/{name:[^/]+}", screen_page)
    app.router.add_get("/ws/{name:[^/]+}", frames_socket)
    app.router.add_get("/api/status", status)
    app.router.add_get("/api/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/api/control", control)
    app.router.add_post("/api/capture", capture)
    app.router.add_get("/favicon.ico", _no_icon)
    app.router.add_static("/static/", STATIC, append_version=False)
    app.on_response_prepare.append(_add_headers)
    app.on_shutdown.append(_close_sockets)
    return app


async def _no_icon(request: web.Request) -> web.Response:
    return web.Response(status=204)  # browsers ask; an empty answer keeps the logs clean


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda v: json.dumps(v, default=_jsonable))


def _jsonable(value: Any) -> Any:
    """numpy scalars and arrays become numbers and lists; anything else its str()."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


async def _add_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)
    if not request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")


def _token_state(request: web.Request, token: str) -> str:
    """"ok", "missing" or "wrong": how the page's ?token= compares with the server's."""
    given = request.query.get("token")
    if not given:
        return "missing"
    return "ok" if _same(given, token) else "wrong"


def _same(given: str, token: str) -> bool:
    # Bytes: compare_digest refuses non-ASCII str, and a header may hold anything.
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode("utf-8"))


def _page(request: web.Request, page: str, title: str, status: int = 200, **config: Any) -> web.Response:
    state = request.app[STATE]
    config.update(screens=state.bridge.hub.screens, controls=_token_state(request, state.token))
    body = state.pages.render(page, title, config)
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


async def overview(request: web.Request) -> web.Response:
    return _page(request, "overview", "passersby")


async def screen_page(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in request.app[STATE].bridge.hub.screens:
        return _page(request, "notfound", "not found", 404, path=request.path, screen=name)
    return _page(request, "screen", f"passersby - {name}", screen=name)


@web.middleware
async def _not_found_page(request: web.Request,
                          handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Unknown paths get the 404 page (JSON under /api/ and /ws/) instead of plain text."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        if request.path.startswith(("/api/", "/ws/", "/static/")):
            return _error(404, f"not found: {request.path}")
        return _page(request, "notfound", "not found", 404, path=request.path, screen=None)


async def status(request: web.Request) -> web.Response:
    """GET /api/status: the hub's status dict plus "screens"."""
    hub = request.app[STATE].bridge.hub
    try:
        # In a worker thread: the status callable belongs to the engine and may take its locks.
        data = await asyncio.get_running_loop().run_in_executor(None, hub.status)
    except Exception as e:  # the engine's problem, not the client's: say so, keep serving
        log.warning("status failed: %s", e)
        return _error(503, f"status unavailable: {e}")
    return _json({**data, "screens": hub.screens})


async def health(request: web.Request) -> web.Response:
    """GET /api/health: 200 while ok or degraded, 503 when failing (or no health source)."""
    hub = request.app[STATE].bridge.hub
    if hub.health is None:
        return _json({"status": "unknown", "reasons": ["this server has no health source"]}, 503)
    try:
        data = await asyncio.get_running_loop().run_in_executor(None, hub.health)
    except Exception as e:  # noqa: BLE001 - a broken health check is itself a failure to report
        return _json({"status": "failing", "reasons": [f"health check failed ({type(e).__name__})"]}, 503)
    return _json(data, 503 if data.get("status") == "failing" else 200)


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics: the Prometheus text exposition."""
    hub = request.app[STATE].bridge.hub
    if hub.metrics is None:
        return _error(404, "this server has no metrics")
    body = await asyncio.get_running_loop().run_in_executor(None, hub.metrics)
    if request.app[STATE].turned_away is not None:  # the web server's own counters, beside the engine's
        body = body + (b"" if body.endswith(b"\n") or not body else b"\n") + request.app[STATE].turned_away.metrics_text()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


def _request_token(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("X-Passersby-Token") or None


def refused(request: web.Request, token: str, what: str = "controls") -> web.Response | None:
    """401/403 when the request lacks `token` or has a wrong one, else None (kiosk, gallery)."""
    given = _request_token(request)
    if given is None:
        return web.json_response({"error": f"{what} need the token: Authorization: Bearer <token>"},
                                 status=401, headers={"WWW-Authenticate": "Bearer"})
    if not _same(given, token):
        return _error(403, "wrong token")
    return None


async def control(request: web.Request) -> web.Response:
    """POST /api/control {"action": ..., "value": ..., "screen": ...}: check the token, then
    forward to the hub (value: exactingness only; screen: press / next on that screen only)."""
    state = request.app[STATE]
    if (refusal := refused(request, state.token)) is not None:
        return refusal
    try:
        body = json.loads(await request.read())
    except (ValueError, RecursionError):  # includes UnicodeDecodeError; RecursionError: [[[[...
        return _error(400, 'body must be JSON: {"action": "pause"}')
    action = body.get("action") if isinstance(body, dict) else None
    if not is_action(action):
        return _error(400, f"unknown action {action!r}; one of {list(ACTIONS)} or {DIRECTION}<name>")
    value, screen = body.get("value"), body.get("screen")
    if screen is not None and not isinstance(screen, str):
        return _error(400, f"screen must be a screen's name, got {screen!r}")
    try:
        await asyncio.get_running_loop().run_in_executor(None, state.bridge.hub.control, action, value, screen)
    except PermissionError as e:
        return _error(403, str(e))
    except ValueError as e:
        return _error(400, str(e))
    return _json({"ok": True, "action": action, **({"value": value} if value is not None else {}),
                  **({"screen": screen} if screen is not None else {})})


async def capture(request: web.Request) -> web.Response:
    """POST /api/capture {"screen": name}: check the token, capture in a worker thread."""
    state = request.app[STATE]
    if (refusal := refused(request, state.token)) is not None:
        return refusal
    if state.capture is None:
        return _error(501, "this installation offers no captures")
    try:
        body = json.loads(await request.read())
    except (ValueError, RecursionError):
        return _error(400, 'body must be JSON: {"screen": "feminine"}')
    screen = body.get("screen") if isinstance(body, dict) else None
    if not isinstance(screen, str) or screen not in state.bridge.hub.screens:
        return _error(400, f"unknown screen {screen!r}; screens are {state.bridge.hub.screens}")
    try:
        summary = await asyncio.get_running_loop().run_in_executor(None, state.capture, screen)
    except ValueError as e:  # e.g. nothing shown yet, a key it cannot re-render
        return _error(409, str(e))
    return _json({"ok": True, **summary})


async def frames_socket(request: web.Request) -> web.StreamResponse:
    """GET /ws/<name>: push that screen's newest frame each time the client acks the last one."""
    state = request.app[STATE]
    name = request.match_info["name"]
    if name not in state.bridge.hub.screens:
        return _error(404, f"unknown screen {name!r}; screens are {state.bridge.hub.screens}")
    if len(state.sockets) >= MAX_SOCKETS:
        if state.turned_away is not None:
            state.turned_away.count("streams")
        return _error(503, f"too many frame streams open ({MAX_SOCKETS}); close one and reload")
    # No permessage-deflate: JPEG does not shrink, and compressing would cost CPU per client.
    # A short close timeout keeps stop() quick when a client has gone silent.
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=4096, compress=False, timeout=2.0)
    await ws.prepare(request)
    state.sockets.add(ws)
    acked = asyncio.Event()
    acked.set()  # nothing sent yet: the first frame goes out at once
    sender = asyncio.create_task(_send_frames(ws, state.bridge, name, acked))
    try:
        async for msg in ws:
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                acked.set()  # any message is an ack of the frame last sent
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        state.sockets.discard(ws)
    return ws


async def _send_frames(ws: web.WebSocketResponse, bridge: FrameBridge, name: str, acked: asyncio.Event) -> None:
    seq = 0
    while True:
        await acked.wait()
        got = await bridge.next_frame(name, seq)
        if got is None:  # the server is stopping
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server stopping")
            return
        seq, frame = got  # taken before encoding, so a frame that fails to encode is skipped once
        try:
            data = await bridge.message(name, seq, frame)
        except Exception:  # logged by the bridge; the next frame may do better
            continue
        acked.clear()
        try:
            await ws.send_bytes(data)
        except (ConnectionError, RuntimeError):  # the client left; the reader loop ends too
            return


async def _close_sockets(app: web.Application) -> None:
    """on_shutdown: stop the frame flow and close every WebSocket, so shutdown need not wait."""
    state = app[STATE]
    state.bridge.close()
    await asyncio.gather(*(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server stopping")
                           for ws in list(state.sockets)), return_exceptions=True)
