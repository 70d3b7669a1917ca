"""The gallery's aiohttp application: captures to browse, mark, compare, export.

Routes (reads are open on the server's address, loopback by default; every write needs the
token, as ``Authorization: Bearer <token>``; the page opened with ``?token=`` sends it):
    GET  /                          the gallery page
    GET  /api/captures              every capture with its marks, newest first
    GET  /captures/<id>.jpg|.png    a thumbnail, or the full capture
    POST /api/captures/<id>         {"status": "keep"|"reject"|"", "star": bool, "note": str}
    POST /api/contact-sheet         {"which": "keep"|"star"} -> application/pdf
    POST /api/export                {"ids": [...], "size", "dpi", "frame", "label", "signature"}
    GET  /api/recent                faces the stream showed recently (ledger), newest first
    GET  /recent/<ledger id>.jpg    one of them, rendered from its anchor
    POST /api/recent/<id>/capture   capture it after the fact (re-rendered)

The web layer knows no model and no file layout: a backend (passersby.app.gallery) does the
work, in worker threads, so the page stays responsive while faces render or prints are made.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from aiohttp import web

from passersby.web.app import _add_headers, _error, _json, _no_icon, _token_state, refused
from passersby.web.pages import STATIC, Pages
from passersby.web.threaded import ThreadedServer


class Backend(Protocol):
    def items(self) -> list[dict[str, Any]]: ...
    def image(self, capture_id: str, thumb: bool) -> tuple[bytes, str]: ...
    def mark(self, capture_id: str, changes: dict[str, Any]) -> dict[str, Any]: ...
    def contact_sheet(self, which: str) -> tuple[bytes, Any]: ...
    def export(self, ids: list[str], job: Any) -> list[dict[str, Any]]: ...
    def recent(self, n: int) -> list[dict[str, Any]]: ...
    def recent_image(self, ledger_id: int) -> tuple[bytes, str]: ...
    def capture_recent(self, ledger_id: int) -> dict[str, Any]: ...


@dataclass
class GalleryState:
    backend: Backend
    token: str
    pages: Pages
    make_job: Callable[[dict[str, Any]], Any]  # the export's options -> a print job (ValueError if bad)


G_STATE = web.AppKey("gallery", GalleryState)


def make_gallery_app(state: GalleryState) -> web.Application:
    app = web.Application(client_max_size=256 * 1024)
    app[G_STATE] = state
    r = app.router
    r.add_get("/", page)
    r.add_get("/api/captures", captures)
    r.add_get(r"/captures/{id:[A-Za-z0-9_.-]+}.{ext:jpg|png}", capture_image)
    r.add_post(r"/api/captures/{id:[A-Za-z0-9_.-]+}", mark)
    r.add_post("/api/contact-sheet", contact_sheet)
    r.add_post("/api/export", export)
    r.add_get("/api/recent", recent)
    r.add_get(r"/recent/{id:[0-9]+}.jpg", recent_image)
    r.add_post(r"/api/recent/{id:[0-9]+}/capture", capture_recent)
    r.add_get("/favicon.ico", _no_icon)
    r.add_static("/static/", STATIC, append_version=False)
    app.on_response_prepare.append(_add_headers)
    return app


async def _work(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


async def _body(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = json.loads(await request.read() or b"{}")
    except (ValueError, RecursionError):
        return _error(400, "body must be a JSON object")
    return body if isinstance(body, dict) else _error(400, "body must be a JSON object")


async def page(request: web.Request) -> web.Response:
    state = request.app[G_STATE]
    body = state.pages.render("gallery", "passersby gallery", {"controls": _token_state(request, state.token)})
    return web.Response(text=body, content_type="text/html", charset="utf-8")


async def captures(request: web.Request) -> web.Response:
    return _json({"captures": await _work(request.app[G_STATE].backend.items)})


async def capture_image(request: web.Request) -> web.Response:
    try:
        data, kind = await _work(request.app[G_STATE].backend.image, request.match_info["id"],
                                 request.match_info["ext"] == "jpg")
    except KeyError:
        return _error(404, f"no capture {request.match_info['id']!r}")
    return web.Response(body=data, content_type=kind)


async def mark(request: web.Request) -> web.Response:
    if (refusal := refused(request, request.app[G_STATE].token, "writes")) is not None:
        return refusal
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    try:
        return _json(await _work(request.app[G_STATE].backend.mark, request.match_info["id"], body))
    except KeyError:
        return _error(404, f"no capture {request.match_info['id']!r}")
    except ValueError as e:
        return _error(400, str(e))


async def contact_sheet(request: web.Request) -> web.Response:
    if (refusal := refused(request, request.app[G_STATE].token, "writes")) is not None:
        return refusal
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    which = body.get("which", "keep")
    if which not in ("keep", "star"):
        return _error(400, f"which: {which!r} must be keep or star")
    try:
        data, _path = await _work(request.app[G_STATE].backend.contact_sheet, which)
    except ValueError as e:
        return _error(409, str(e))
    return web.Response(body=data, content_type="application/pdf",
                        headers={"Content-Disposition": f'inline; filename="contact-sheet-{which}.pdf"'})


async def export(request: web.Request) -> web.Response:
    state = request.app[G_STATE]
    if (refusal := refused(request, request.app[G_STATE].token, "writes")) is not None:
        return refusal
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    ids = body.pop("ids", None)
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids) or len(ids) > 200:
        return _error(400, "ids: give a list of 1-200 capture ids")
    try:
        job = state.make_job(body)
        return _json({"exported": await _work(state.backend.export, ids, job)})
    except KeyError as e:
        return _error(404, f"no capture {e.args[0]!r}")
    except ValueError as e:
        return _error(400, str(e))


async def recent(request: web.Request) -> web.Response:
    try:
        n = min(500, max(1, int(request.query.get("n", "48"))))
    except ValueError:
        return _error(400, "n must be a number")
    return _json({"recent": await _work(request.app[G_STATE].backend.recent, n)})


async def recent_image(request: web.Request) -> web.Response:
    try:
        data, kind = await _work(request.app[G_STATE].backend.recent_image, int(request.match_info["id"]))
    except KeyError:
        return _error(404, f"no recent face {request.match_info['id']}")
    except ValueError as e:
        return _error(409, str(e))
    return web.Response(body=data, content_type=kind)


async def capture_recent(request: web.Request) -> web.Response:
    if (refusal := refused(request, request.app[G_STATE].token, "writes")) is not None:
        return refusal
    try:
        return _json({"ok": True, **await _work(request.app[G_STATE].backend.capture_recent, int(request.match_info["id"]))})
    except KeyError:
        return _error(404, f"no recent face {request.match_info['id']}")
    except ValueError as e:
        return _error(409, str(e))


class GalleryServer(ThreadedServer):
    """Serves the gallery of `backend` (passersby.app.gallery.GalleryBackend).

    Example:
        >>> with GalleryServer(backend, port=0) as server:  # starts a web server  # doctest: +SKIP
        ...     print(server.control_url)
    """

    kind = "gallery server"

    def __init__(self, backend: Backend, host: str = "127.0.0.1", port: int = 8767, token: str | None = None,
                 make_job: Callable[[dict[str, Any]], Any] | None = None) -> None:
        super().__init__(host, port, token)
        self.backend = backend
        self.make_job = make_job or _default_job

    async def setup(self) -> web.Application:
        return make_gallery_app(GalleryState(self.backend, self.token, Pages(), self.make_job))


def _default_job(options: dict[str, Any]) -> dict[str, Any]:
    return options
