"""The taste app over HTTP: faces rendered ahead, ratings stored, the token, 4xx not 500.

A tiny random generator (64 px) renders the faces; its ratings go to a store in a temp dir.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import numpy as np
import pytest
import torch

from webtest import request
from passersby.taste.server import TasteServer
from passersby.taste.store import TasteStore

TOKEN = "tok-123"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
MODEL = "tiny-test-model"


def tiny_renderer():
    from passersby.config import ModelConfig
    from passersby.model.generator import Generator, recalibrate_batchnorm
    from passersby.runtime import make_renderer

    torch.manual_seed(0)
    g = Generator(ModelConfig(resolution=64, ngf=8))
    recalibrate_batchnorm(g, 2, 8, gen=torch.Generator().manual_seed(1), device=torch.device("cpu"))
    return make_renderer(g.eval(), "torch-fused")


def propose(rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(128)


@pytest.fixture(scope="module")
def renderer():
    return tiny_renderer()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with TasteStore(tmp_path_factory.mktemp("taste") / "taste.sqlite") as s:
        yield s


@pytest.fixture(scope="module")
def server(store, renderer):
    with TasteServer(store, renderer, propose, MODEL, "ada", port=0, token=TOKEN, seed=0,
                     label="feminine") as s:
        yield s




def get_json(server, path: str) -> tuple[int, dict]:
    status, body, _ = request(server.url + path)
    return status, json.loads(body)


def post_rate(server, body: bytes | dict, headers: dict | None = AUTH) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, raw, _ = request(server.url + "api/rate", data, headers, "POST")
    return status, json.loads(raw)


def wait_for(condition, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def stored(store) -> int:
    return sum(n for _, n, _ in store.curators())


def current(server) -> dict:
    status, body = get_json(server, "api/face")
    assert status == 200, body
    return body


# ---------------------------------------------------------------- faces and ratings


def test_face_is_served_with_the_faces_after_it(server):
    body = current(server)
    face = body["face"]
    assert len(face["id"]) == 16 and face["image"] == f"/api/face/{face['id']}.jpg"
    status, jpeg, headers = request(server.url + face["image"][1:])
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and jpeg[:2] == b"\xff\xd8"
    # The queue fills up to prefetch (4): the current face and three more, all different.
    body = wait_for(lambda: (b := current(server)) and len(b["queue"]) == 3 and b, what="prefetch")
    ids = [body["face"]["id"]] + [f["id"] for f in body["queue"]]
    assert len(set(ids)) == 4
    assert body["progress"]["curator"] == "ada" and body["progress"]["label"] == "feminine"


def test_rating_stores_the_face_latent_and_answers_with_the_next(server, store):
    face = current(server)["face"]
    z = server.deck.face(face["id"]).z.copy()
    before = stored(store)
    status, body = post_rate(server, {"face": face["id"], "rating": "superlike"})
    assert status == 200 and body["ok"] and body["rated"] == face["id"] and body["rating"] == "superlike"
    assert body["face"]["id"] != face["id"]
    assert stored(store) == before + 1
    zs, ratings, ids = store.ratings("ada", MODEL)
    assert ids[-1] == body["rating_id"] and ratings[-1] == "superlike"
    np.testing.assert_array_equal(zs[-1], z)
    row = store.con.execute("SELECT model_hash, label FROM ratings WHERE id = ?", [ids[-1]]).fetchone()
    assert row == (MODEL, "feminine")
    assert body["progress"]["rated"] == before + 1
    # The rated face is gone: its picture and a second rating are refused.
    assert request(server.url + face["image"][1:])[0] == 404
    assert post_rate(server, {"face": face["id"], "rating": "like"})[0] == 409


def test_any_queued_face_can_be_rated(server, store):
    body = wait_for(lambda: (b := current(server)) and len(b["queue"]) >= 2 and b, what="queue")
    later = body["queue"][1]["id"]
    status, reply = post_rate(server, {"face": later, "rating": "dislike"},
                              {"X-Passersby-Token": TOKEN})  # the other header works too
    assert status == 200 and reply["rated"] == later
    assert reply["face"]["id"] == body["face"]["id"]  # the current face is still current


class Gated:
    """A renderer that renders only while its gate is open: a closed gate is a renderer that
    takes forever, so whatever answers meanwhile answered without rendering."""

    def __init__(self, render) -> None:
        self.render, self.gate, self.calls = render, threading.Event(), 0
        self.gate.set()

    def __call__(self, z: np.ndarray) -> np.ndarray:
        self.calls += 1
        assert self.gate.wait(60), "the gate stayed shut"
        return self.render(z)


def test_next_face_is_ready_at_once(renderer, tmp_path):
    """With the queue full, a rating is answered from it without rendering: with the renderer
    stuck, three ratings in a row are answered, each with the next queued face. (The round trip
    in time: benchmarks/taste.py, --server-ratings.)"""
    gated = Gated(renderer)
    with TasteStore(tmp_path / "taste.sqlite") as own, \
            TasteServer(own, gated, propose, MODEL, "brisk", port=0, token=TOKEN, seed=0) as s:
        try:
            wait_for(lambda: len(current(s)["queue"]) == 3, what="a full queue")
            gated.gate.clear()  # from now on every render waits
            body = current(s)
            queued = [body["face"]["id"]] + [f["id"] for f in body["queue"]]
            for i in range(3):
                status, reply = post_rate(s, {"face": queued[i], "rating": ("like", "dislike")[i % 2]})
                assert status == 200 and reply["rated"] == queued[i]
                assert reply["face"]["id"] == queued[i + 1]  # the face that was queued next, at once
        finally:
            gated.gate.set()


def rate_one_of_each(server) -> None:
    """A like and a dislike, so the model and the gallery have both sides (tests may run alone);
    returns once the model has been refitted to them."""
    for rating in ("like", "dislike"):
        assert post_rate(server, {"face": current(server)["face"]["id"], "rating": rating})[0] == 200
    counts = get_json(server, "api/progress")[1]["by_rating"]
    rated = sum(counts[r] for r in ("like", "dislike", "superlike"))
    wait_for(lambda: server.deck.model.n == rated and not server.deck._dirty.is_set(), what="the refit")


def test_model_refits_and_progress_reports_quality(server, store):
    rate_one_of_each(server)
    wait_for(lambda: get_json(server, "api/progress")[1]["n_eval"] > 0, what="evaluation")
    status, p = get_json(server, "api/progress")
    assert status == 200
    assert set(p) >= {"rated", "by_rating", "accuracy", "auc", "n_eval", "model_version"}
    assert p["rated"] == stored(store) and p["by_rating"]["like"] >= 1 and p["by_rating"]["dislike"] >= 1
    assert 0 <= p["accuracy"] <= 1 and p["model_version"] >= 2
    assert server.deck.model.n == sum(p["by_rating"][r] for r in ("like", "dislike", "superlike"))


def quadrants(images: np.ndarray) -> np.ndarray:
    """(m, H, W, 3) -> (m, 12) mean colour of each quadrant: a cheap stand-in for EfficientNet."""
    m, h, w, _ = images.shape
    q = images[:, : h // 2 * 2, : w // 2 * 2].reshape(m, 2, h // 2, 2, w // 2, 3).mean((2, 4))
    return q.reshape(m, 12) / 255.0 + 0.1


@pytest.fixture(scope="module")
def picture_head(renderer):
    """A feature head of the tiny generator over `quadrants` of its renders."""
    from passersby.taste.head import HeadConfig, fit_head

    z = np.random.default_rng(0).standard_normal((400, 128)).astype(np.float32)
    return fit_head(z, quadrants(renderer(z)), MODEL, HeadConfig(pca=4, hidden=32, epochs=30, landmarks=8))


class Counting:
    def __init__(self, fn):
        self.fn, self.faces = fn, 0

    def __call__(self, images):
        self.faces += len(images)
        return self.fn(images)


def test_with_a_feature_head_the_app_learns_from_the_picture(tmp_path, renderer, picture_head):
    # The same app, the taste model over the picture (taste.model 'picture'): every face shown is
    # embedded as it is rendered, ratings refit a PictureTaste on those true features, and the
    # progress reports its held-out quality.
    from passersby.taste.features import FeatureCache, feature_cache_path
    from passersby.taste.picture import MIN_HEAD_R2, PictureTaste

    assert picture_head.r2.mean() > MIN_HEAD_R2  # else the model would fit on the head's guesses
    embed = Counting(quadrants)
    with TasteStore(tmp_path / "taste.sqlite") as own, FeatureCache(feature_cache_path(tmp_path, MODEL)) as cache, \
            TasteServer(own, renderer, propose, MODEL, "picture-curator", port=0, token=TOKEN, seed=3,
                        head=picture_head, feature_cache=cache, embed=embed) as s:
        assert isinstance(s.deck.model, PictureTaste) and s.deck.model.n == 0
        rate_one_of_each(s)
        assert isinstance(s.deck.model, PictureTaste) and s.deck.model.n == 2 and s.deck.model.true_features
        z, _, _ = own.ratings("picture-curator", MODEL)
        np.testing.assert_allclose(np.stack(cache.get(z)), quadrants(renderer(z.astype(np.float32))), atol=1e-6)
        assert embed.faces == len(cache)  # each face embedded once, as it was rendered to be shown
        wait_for(lambda: get_json(s, "api/progress")[1]["n_eval"] > 0, what="evaluation")


def test_a_profile_from_before_the_feature_cache_is_embedded_once(tmp_path, renderer, picture_head):
    # Ratings stored before true features were kept (or imported): the app starts at once on the
    # head's guesses, then renders and embeds the rated faces once and refits on them.
    from passersby.taste.features import FeatureCache, feature_cache_path

    rng = np.random.default_rng(4)
    with TasteStore(tmp_path / "taste.sqlite") as own:
        old = rng.standard_normal((30, 128)).astype(np.float32)
        for i, z in enumerate(old):
            own.add("veteran", z, ("like", "dislike", "skip")[i % 3], MODEL)
        path = feature_cache_path(tmp_path, MODEL)
        embed = Counting(quadrants)
        with FeatureCache(path) as cache, TasteServer(
                own, renderer, propose, MODEL, "veteran", port=0, token=TOKEN, seed=5, head=picture_head,
                feature_cache=cache, embed=embed) as s:
            wait_for(lambda: s.deck.model.true_features, what="the refit on true features")
            assert s.deck.model.n == 20  # skips excluded
            assert all(f is not None for f in cache.get(old))
        first = embed.faces
        with FeatureCache(path) as cache, TasteServer(
                own, renderer, propose, MODEL, "veteran", port=0, token=TOKEN, seed=5, head=picture_head,
                feature_cache=cache, embed=embed) as s:
            assert s.deck.model.true_features  # a second start finds them cached: fitted on them at once
            assert embed.faces - first <= s.deck.prefetch + 2  # only new faces to show were embedded


def test_gallery_ranks_and_renders_faces(server):
    rate_one_of_each(server)
    status, g = get_json(server, "api/gallery")
    assert status == 200 and g["ready"] and len(g["liked"]) == len(g["disliked"]) == 6
    assert g["liked"][0]["p"] >= g["liked"][-1]["p"] >= g["disliked"][-1]["p"] >= g["disliked"][0]["p"]
    for item in g["liked"] + g["disliked"]:
        status, jpeg, _ = request(server.url + item["image"][1:])
        assert status == 200 and jpeg[:2] == b"\xff\xd8"
    assert get_json(server, "api/gallery")[1]["version"] == g["version"]  # cached per model version
    assert request(server.url + "api/gallery/255.jpg")[0] in (200, 404)
    assert request(server.url + "api/gallery/999999.jpg")[0] == 404


def test_gallery_waits_for_likes_and_dislikes(store, renderer):
    with TasteServer(store, renderer, propose, MODEL, "newcomer", port=0, token=TOKEN) as s:
        status, g = get_json(s, "api/gallery")
        assert status == 200 and g == {"version": 1, "ready": False, "liked": [], "disliked": []}
        assert get_json(s, "api/progress")[1]["rated"] == 0


def test_export_needs_the_token(server, store):
    assert request(server.url + "api/export")[0] == 401
    assert request(server.url + "api/export", headers={"Authorization": "Bearer nope"})[0] == 403
    status, raw, headers = request(server.url + "api/export", headers=AUTH)
    assert status == 200 and 'filename="taste-ada.json"' in headers["Content-Disposition"]
    data = json.loads(raw)
    assert data["curator"] == "ada" and data["count"] == stored(store) == len(data["ratings"])


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize("headers, expected", [
    ({}, 401),
    ({"Authorization": "Bearer wrong"}, 403),
    ({"X-Passersby-Token": "wrong"}, 403),
    ({"Authorization": "Bearer t\u00e9st"}, 403),  # non-ASCII must not break compare_digest
    ({"Authorization": "Basic dGVzdA=="}, 401),
])
def test_rating_without_the_token_is_refused(server, store, headers, expected):
    face = current(server)["face"]
    before = stored(store)
    status, body = post_rate(server, {"face": face["id"], "rating": "like"}, headers)
    assert status == expected and "error" in body
    assert stored(store) == before and current(server)["face"]["id"] == face["id"]


@pytest.mark.parametrize("body, expected", [
    (b"", 400), (b"not json", 400), (b"\xff\xfe", 400), (b"[1, 2]", 400), (b"null", 400),
    (b"[" * 5000 + b"]" * 5000, 400),
    ({"face": "FACE", "rating": "meh"}, 400),
    ({"face": "FACE", "rating": None}, 400),
    ({"face": "FACE"}, 400),
    ({"rating": "like"}, 400),
    ({"face": 12, "rating": "like"}, 400),
    ({"face": "../../etc", "rating": "like"}, 400),
    ({"face": "0123456789abcdef", "rating": "like"}, 404),
    (b'{"face": "' + b"a" * 70_000 + b'"}', 413),
])
def test_bad_rating_requests_are_4xx(server, store, body, expected):
    face = current(server)["face"]["id"]
    if isinstance(body, dict):
        body = {k: (face if v == "FACE" else v) for k, v in body.items()}
    before = stored(store)
    status, reply = post_rate(server, body)
    assert status == expected and "error" in reply, reply
    assert stored(store) == before


def test_routes_pages_and_404s(server):
    url = server.url
    status, raw, headers = request(url)
    assert status == 200 and b"/static/taste.js" in raw and b'"curator": "ada"' in raw
    assert "unsafe-inline" not in headers["Content-Security-Policy"]
    assert headers["Referrer-Policy"] == "no-referrer" and headers["Cache-Control"] == "no-store"
    for asset in ("taste.js", "taste.css"):
        assert request(url + "static/" + asset)[0] == 200
    assert request(url + "api/rate")[0] == 405
    assert request(url + "api/face", b"{}", method="POST")[0] == 405
    for path in ("api/nothing", "api/face/0123456789abcdef.jpg", "api/face/xyz.jpg", "api/gallery/x.jpg"):
        status, raw, headers = request(url + path)
        assert status == 404 and "error" in json.loads(raw), path
    assert request(url + "no/such/page")[0] == 404


def test_page_config_says_whether_the_token_is_right(server):
    def config(query: str) -> dict:
        raw = request(server.url + query)[1].decode()
        return json.loads(raw.split('type="application/json">', 1)[1].split("</script>", 1)[0])

    assert config("")["auth"] == "missing"
    assert config("?token=nope")["auth"] == "wrong"
    assert config(f"?token={TOKEN}")["auth"] == "ok"
    assert config("")["label"] == "feminine" and config("")["curator"] == "ada"


def test_curator_names_cannot_inject_markup(store, renderer):
    with TasteServer(store, renderer, propose, MODEL, "</script><b>{{config}}", port=0) as s:
        raw = request(s.url)[1].decode()
        assert "</script><b>" not in raw and "\\u003c/script\\u003e" in raw


# ---------------------------------------------------------------- concurrency and failures


def in_thread(coro_fn):
    """Run an asyncio client in its own thread (as the kiosk tests do) and return its result."""
    result: list = []
    thread = threading.Thread(target=lambda: result.append(asyncio.run(coro_fn())))
    thread.start()
    thread.join(60)
    return result[0]


def test_a_double_tap_stores_one_rating(server, store):
    import aiohttp

    face = current(server)["face"]["id"]
    before = stored(store)

    async def twice():
        async with aiohttp.ClientSession() as session:
            async def one():
                async with session.post(server.url + "api/rate", json={"face": face, "rating": "like"},
                                        headers=AUTH) as r:
                    return r.status
            return sorted(await asyncio.gather(one(), one()))

    assert in_thread(twice) == [200, 409]
    assert stored(store) == before + 1


def test_slow_rendering_never_blocks_the_server(store):
    gated = Gated(lambda z: np.zeros((len(z), 32, 32, 3), np.uint8))
    gated.gate.clear()  # the render worker is busy all the time the requests below take
    with TasteServer(store, gated, propose, MODEL, "patient", port=0, token=TOKEN) as s:
        try:
            wait_for(lambda: gated.calls >= 1, what="a render under way")
            for _ in range(5):
                assert get_json(s, "api/progress")[0] == 200  # answered while the render hangs
            assert gated.calls == 1  # (still the first render)
        finally:
            gated.gate.set()
        assert current(s)["face"]["id"]  # waits for the first render, then answers


def test_a_failing_renderer_is_a_503_not_a_500(store):
    def broken(z: np.ndarray) -> np.ndarray:
        raise RuntimeError("renderer on fire")

    with TasteServer(store, broken, propose, MODEL, "unlucky", port=0, token=TOKEN) as s:
        status, body = get_json(s, "api/face")
        assert status == 503 and "renderer on fire" in body["error"]
        assert get_json(s, "api/progress")[0] == 200


def test_start_stop_and_arguments(store, renderer, server):
    with pytest.raises(ValueError, match="curator"):
        TasteServer(store, renderer, propose, MODEL, "")
    with pytest.raises(ValueError, match="port"):
        TasteServer(store, renderer, propose, MODEL, "ada", port=70000)
    with pytest.raises(ValueError, match="model_hash"):
        TasteServer(store, renderer, propose, "", "ada")
    with pytest.raises(OSError, match="cannot listen"):
        TasteServer(store, renderer, propose, MODEL, "ada", port=server.port).start()
    s = TasteServer(store, renderer, propose, MODEL, "ada", port=0)
    assert len(s.token) >= 16 and s.control_url == f"{s.url}?token={s.token}"
    s.start()
    with pytest.raises(RuntimeError, match="already running"):
        s.start()
    s.stop()
    assert not s.running
    s.stop()  # twice is fine
    with s:  # and it starts again
        assert current(s)["progress"]["curator"] == "ada"
    assert not s.running
