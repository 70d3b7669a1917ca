"""The taste app's aiohttp application: the swipe page and its JSON API.

Routes:
    GET  /                       the swipe page (one face, like / dislike / superlike / skip)
    GET  /api/face               {"face": the face to judge, "queue": the faces after it, "progress"}
    GET  /api/face/<id>.jpg      a face's JPEG (faces waiting for a rating only)
    POST /api/rate               {"face": id, "rating": "like"|...}, needs the token; stores the
                                 rating and answers with the next face at once
    GET  /api/progress           {"rated", "by_rating", "accuracy", "auc", "n_eval", ...}
    GET  /api/gallery            the most and least liked faces the model would now generate
    GET  /api/gallery/<i>.jpg    one of them
    GET  /api/export             the curator's ratings as an export file, needs the token
    GET  /static/...             the page's CSS and JS

Writes (and the export, which holds every rating) need the token, as
``Authorization: Bearer <token>`` or ``X-Passersby-Token: <token>``; the page opened with
``?token=<token>`` sends it. Bad requests get a 4xx JSON {"error": ...}, never a 500.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

from aiohttp import web

from passersby.taste.deck import AlreadyRated, Deck, DeckError, UnknownFace
from passersby.taste.model import RATINGS
from passersby.taste.store import TasteStoreError
from passersby.web.pages import SECURITY_HEADERS, json_for_html

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
FACE_ID = "[0-9a-f]{16}"
_SLOT = re.compile(r"\{\{(title|config)\}\}")


@dataclass
class TasteState:
    """What the handlers share: the deck, the token and the page template."""

    deck: Deck
    token: str
    template: str


STATE = web.AppKey("taste", TasteState)


def read_template(static: Path = STATIC) -> str:
    """The swipe page's HTML template (FileNotFoundError naming it if missing)."""
    path = static / "taste.html"
    if not path.is_file():
        raise FileNotFoundError(f"taste page template missing: {path}")
    return path.read_text(encoding="utf-8")


def make_app(state: TasteState) -> web.Application:
    """The aiohttp application serving `state` (see the module docstring for the routes).

    Example:
        >>> app = make_app(TasteState(deck, "secret", read_template()))  # a deck in a running server's loop  # doctest: +SKIP
    """
    app = web.Application(middlewares=[_errors], client_max_size=64 * 1024)
    app[STATE] = state
    app.router.add_get("/", page)
    app.router.add_get("/api/face", face)
    app.router.add_get(f"/api/face/{{id:{FACE_ID}}}.jpg", face_image)
    app.router.add_post("/api/rate", rate)
    app.router.add_get("/api/progress", progress)
    app.router.add_get("/api/gallery", gallery)
    app.router.add_get(r"/api/gallery/{index:\d{1,6}}.jpg", gallery_image)
    app.router.add_get("/api/export", export)
    app.router.add_get("/favicon.ico", _no_icon)
    app.router.add_static("/static/", STATIC, append_version=False)
    app.on_response_prepare.append(_add_headers)
    return app


# ---------------------------------------------------------------- helpers


def _json(data: Any, status: int = 200, **kw: Any) -> web.Response:
    return web.json_response(data, status=status, **kw)


def _error(status: int, message: str, **kw: Any) -> web.Response:
    return _json({"error": message}, status, **kw)


async def _no_icon(request: web.Request) -> web.Response:
    return web.Response(status=204)  # browsers ask; an empty answer keeps the logs clean


async def _add_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)
    if not request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")


@web.middleware
async def _errors(request: web.Request,
                  handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """JSON errors under /api/; a failure of ours is logged and answered 500 in JSON, not a trace."""
    try:
        return await handler(request)
    except web.HTTPException as e:
        if request.path.startswith("/api/") and e.status >= 400:
            reason = "not found" if e.status == 404 else e.reason.lower()
            return _error(e.status, f"{reason}: {request.method} {request.path}", headers=_allow(e))
        raise
    except Exception:
        log.exception("taste app: %s %s failed", request.method, request.path)
        return _error(500, "internal error; see the server's log")


def _allow(e: web.HTTPException) -> dict[str, str]:
    return {"Allow": e.headers["Allow"]} if "Allow" in e.headers else {}


def _same(given: str, token: str) -> bool:
    # Bytes: compare_digest refuses non-ASCII str, and a header may hold anything.
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode("utf-8"))


def _request_token(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("X-Passersby-Token") or None


def _refused(request: web.Request) -> web.Response | None:
    """401 without a token, 403 with a wrong one, None when the token is right."""
    given = _request_token(request)
    if given is None:
        return _error(401, "this needs the token: Authorization: Bearer <token> (open the page with ?token=)",
                      headers={"WWW-Authenticate": "Bearer"})
    if not _same(given, request.app[STATE].token):
        return _error(403, "wrong token")
    return None


def _page_auth(request: web.Request) -> str:
    """"ok", "missing" or "wrong": how the page's ?token= compares with the server's."""
    given = request.query.get("token")
    if not given:
        return "missing"
    return "ok" if _same(given, request.app[STATE].token) else "wrong"


def _with_progress(deck: Deck, face: Any, **extra: Any) -> dict[str, Any]:
    return {**extra, "face": face.public(), "queue": [f.public() for f in deck.upcoming()],
            "progress": deck.progress()}


# ---------------------------------------------------------------- handlers


async def page(request: web.Request) -> web.Response:
    """GET /: the swipe page, its config in a JSON block (no inline script runs)."""
    state = request.app[STATE]
    deck = state.deck
    config = {"curator": deck.curator, "label": deck.label or "any", "model": deck.model_hash[:12],
              "ratings": list(RATINGS), "auth": _page_auth(request)}
    values = {"title": html.escape(f"passersby taste - {deck.curator}"), "config": json_for_html(config)}
    # One pass, so a curator named "{{config}}" stays text.
    body = _SLOT.sub(lambda m: values[m.group(1)], state.template)
    return web.Response(text=body, content_type="text/html", charset="utf-8")


async def face(request: web.Request) -> web.Response:
    """GET /api/face: the face to judge, the ones after it (to preload) and the progress."""
    deck = request.app[STATE].deck
    try:
        current = await deck.current()
    except DeckError as e:
        return _error(503, str(e))
    return _json(_with_progress(deck, current))


async def face_image(request: web.Request) -> web.Response:
    jpeg = request.app[STATE].deck.image(request.match_info["id"])
    if jpeg is None:
        return _error(404, f"no face {request.match_info['id']} is waiting for a rating")
    return web.Response(body=jpeg, content_type="image/jpeg")


async def rate(request: web.Request) -> web.Response:
    """POST /api/rate {"face": id, "rating": ...}: store it, answer with the next face."""
    refused = _refused(request)
    if refused is not None:
        return refused
    deck = request.app[STATE].deck
    try:
        body = json.loads(await request.read())
    except (ValueError, RecursionError):  # includes UnicodeDecodeError; RecursionError: [[[[...
        return _error(400, 'body must be JSON: {"face": "<id>", "rating": "like"}')
    if not isinstance(body, dict):
        return _error(400, 'body must be a JSON object: {"face": "<id>", "rating": "like"}')
    face_id, rating = body.get("face"), body.get("rating")
    if not isinstance(rating, str) or rating not in RATINGS:
        return _error(400, f"unknown rating {rating!r}; one of {list(RATINGS)}")
    if not isinstance(face_id, str) or not re.fullmatch(FACE_ID, face_id):
        return _error(400, f"face must be the id of a face from /api/face, got {face_id!r}")
    try:
        rating_id, next_face = await deck.rate(face_id, rating)
    except AlreadyRated:
        return _error(409, f"face {face_id} is rated already")
    except UnknownFace:
        return _error(404, f"face {face_id} is not waiting for a rating; GET /api/face for the current one")
    except TasteStoreError as e:
        return _error(503, f"cannot store the rating: {e}")
    except DeckError as e:  # stored, but no next face can be rendered
        return _error(503, f"rating stored, but {e}")
    return _json(_with_progress(deck, next_face, ok=True, rated=face_id, rating=rating, rating_id=rating_id))


async def progress(request: web.Request) -> web.Response:
    return _json(request.app[STATE].deck.progress())


async def gallery(request: web.Request) -> web.Response:
    """GET /api/gallery: the model's most and least liked faces (see Deck.gallery)."""
    try:
        return _json(await request.app[STATE].deck.gallery())
    except Exception as e:  # rendering failed: the page keeps its old gallery
        log.warning("cannot make the gallery: %s", e)
        return _error(503, f"gallery unavailable: {e}")


async def gallery_image(request: web.Request) -> web.Response:
    index = int(request.match_info["index"])
    jpeg = request.app[STATE].deck.gallery_image(index)
    if jpeg is None:
        return _error(404, f"gallery face {index} is not rendered")
    return web.Response(body=jpeg, content_type="image/jpeg")


async def export(request: web.Request) -> web.Response:
    """GET /api/export: every rating of the curator (all models), as `passersby taste import` reads."""
    refused = _refused(request)
    if refused is not None:
        return refused
    deck = request.app[STATE].deck
    try:
        data = await asyncio.get_running_loop().run_in_executor(None, deck.store.export_dict, deck.curator)
    except TasteStoreError as e:
        return _error(503, f"cannot export: {e}")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", deck.curator)
    return _json(data, headers={"Content-Disposition": f'attachment; filename="taste-{safe}.json"'})
