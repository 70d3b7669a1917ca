"""The swipe page in real headless Chromium: keys, buttons and a drag rate faces; the ratings
land in the store; a page without the token cannot rate; the next face comes at once.

Faces come from the shipped default model through the fastest runtime here, as in
`passersby taste`. Needs Debian's /usr/bin/chromium (CI installs it); without it these tests
fail, on purpose.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np
import pytest

from passersby.taste.server import TasteServer
from passersby.taste.store import TasteStore
from webtest import launch_chromium

TOKEN = "browser-token"
CURATOR = "ada"


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium (webtest.launch_chromium)."""
    yield from launch_chromium()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with TasteStore(tmp_path_factory.mktemp("taste") / "taste.sqlite") as s:
        yield s


@pytest.fixture(scope="module")
def server(store):
    from passersby.checkpoint import load_model
    from passersby.runtime import make_renderer
    from passersby.sample import default_model_path
    from passersby.model.direction import steered_proposer

    g, info = load_model(default_model_path())
    renderer = make_renderer(g.float().eval(), "auto")
    propose = steered_proposer(info.config.z_dim, None, 0.0, "")
    with TasteServer(store, renderer, propose, info.hash, CURATOR, port=0, token=TOKEN, seed=0) as s:
        yield s


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    p = context.new_page()
    p.set_default_timeout(20_000)
    yield p
    context.close()


def open_page(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]")


def face_id(page) -> str:
    return page.get_attribute("#face", "data-face-id")


def stored_here(page) -> int:
    return int(page.evaluate("Number(document.body.dataset.stored || 0)"))


def last_rating(store) -> tuple[np.ndarray, str]:
    z, ratings, _ = store.ratings(CURATOR)
    return z[-1], ratings[-1]


def judged(page, server, store, action, rating: str) -> None:
    """Do `action` on the page; check that the next face shows and the rating is stored."""
    before_id, before_n = face_id(page), stored_here(page)
    z = server.deck.face(before_id).z.copy()
    action()
    page.wait_for_function("id => document.querySelector('#face').dataset.faceId !== id", arg=before_id)
    page.wait_for_function("n => Number(document.body.dataset.stored || 0) > n", arg=before_n)
    # The next face can be judged once it is painted; a key pressed earlier is ignored on purpose.
    page.wait_for_selector("body[data-ready=true]")
    got_z, got_rating = last_rating(store)
    assert got_rating == rating
    np.testing.assert_array_equal(got_z, z)


def drag(page, dx: float, dy: float) -> None:
    """Drag the card by (dx, dy) times its size with the mouse (pointer events)."""
    box = page.locator("#card").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx * box["width"], y + dy * box["height"], steps=8)
    page.mouse.up()


def test_keys_rate_faces(server, store, page):
    open_page(page, server.control_url)
    assert page.inner_text("#curator") == CURATOR
    for key, rating in [("ArrowRight", "like"), ("ArrowLeft", "dislike"), ("ArrowUp", "superlike"),
                        ("ArrowDown", "skip"), ("Space", "skip"), ("l", "like"), ("d", "dislike")]:
        judged(page, server, store, lambda: page.keyboard.press(key), rating)


def test_buttons_rate_faces(server, store, page):
    open_page(page, server.control_url)
    for rating in ("like", "dislike", "superlike", "skip"):
        judged(page, server, store, lambda: page.click(f"#{rating}"), rating)


def test_dragging_the_face_rates_it(server, store, page):
    open_page(page, server.control_url)
    judged(page, server, store, lambda: drag(page, 0.6, 0.0), "like")
    judged(page, server, store, lambda: drag(page, -0.6, 0.05), "dislike")
    judged(page, server, store, lambda: drag(page, 0.02, -0.5), "superlike")
    # A short drag springs back: same face, nothing stored.
    before_id, before_n = face_id(page), stored_here(page)
    drag(page, 0.1, 0.0)
    time.sleep(0.5)
    assert face_id(page) == before_id and stored_here(page) == before_n
    assert page.evaluate("document.querySelector('#card').style.transform") == ""


def test_next_face_arrives_at_once(server, store, page):
    """The next face is on the page before the judgement: each of 12 judgements shows a face
    downloaded and decoded ahead, never one fetched after it. (The time to the next face, which
    the page also records, is printed here for a person; it is no test's business.)"""
    # Before each judgement, the server has faces queued (so its answer names the ones after
    # the next) and the page has the next one downloaded: a brisk curator who looks first.
    def wait_for_queue() -> None:
        deadline = time.monotonic() + 60
        while len(server.deck.upcoming()) < 2:
            assert time.monotonic() < deadline, "the server's queue did not fill"
            time.sleep(0.02)

    wait_for_queue()
    open_page(page, server.control_url)
    for i in range(12):
        wait_for_queue()
        page.wait_for_selector("body[data-next-ready=true]")
        judged(page, server, store, lambda: page.keyboard.press(("ArrowRight", "ArrowLeft")[i % 2]),
               ("like", "dislike")[i % 2])
    froms = page.get_attribute("body", "data-next-from-all")
    times = [float(t) for t in page.get_attribute("body", "data-next-ms-all").split(",")]
    print(f"\ntime to next face (ms): median {statistics.median(times):.1f}, max {max(times):.1f}: "
          + ", ".join(f"{t:.0f}" for t in times))
    assert len(times) == 12
    assert froms == "p" * 12  # p = preloaded; l = still loading, s = asked the server after the judgement


def test_without_the_token_nothing_can_be_rated(server, store, page):
    open_page(page, server.url)
    before = len(store.ratings(CURATOR)[1])
    first = face_id(page)
    assert page.get_attribute("body", "data-auth") == "missing"
    for name in ("like", "dislike", "superlike", "skip", "export"):
        assert page.locator(f"#{name}").is_disabled()
        page.locator(f"#{name}").click(force=True)  # clicking a disabled button does nothing
    for key in ("ArrowRight", "ArrowLeft", "ArrowUp", "Space"):
        page.keyboard.press(key)
    drag(page, 0.6, 0.0)
    assert "?token=" in page.inner_text("#note")
    # Even a script on the page cannot rate without the token.
    status = page.evaluate("id => fetch('/api/rate', {method: 'POST', headers: {'Content-Type': 'application/json'},"
                           " body: JSON.stringify({face: id, rating: 'like'})}).then(r => r.status)", first)
    assert status == 401
    time.sleep(0.5)
    assert face_id(page) == first and len(store.ratings(CURATOR)[1]) == before


def test_a_wrong_token_says_so(server, page):
    open_page(page, server.url + "?token=guess")
    assert "not valid" in page.inner_text("#note") and page.locator("#like").is_disabled()


def test_progress_and_gallery(server, store, page):
    open_page(page, server.control_url)
    for i in range(5):
        judged(page, server, store, lambda: page.keyboard.press(("ArrowRight", "ArrowLeft")[i % 2]),
               ("like", "dislike")[i % 2])
    page.wait_for_function("() => document.querySelectorAll('#liked img').length === 6"
                           " && document.querySelectorAll('#disliked img').length === 6")
    page.wait_for_function("() => [...document.querySelectorAll('.thumbs img')].every(i => i.complete"
                           " && i.naturalWidth === 256)")
    text = page.inner_text("#progress")
    assert f"{len(store.ratings(CURATOR)[1])} rated" in text and "accuracy" in text


def test_bad_requests_from_the_page_are_4xx(server, page):
    open_page(page, server.control_url)
    script = """async ([token, body, path]) => {
        const r = await fetch(path, body === null ? {} : {method: 'POST', body,
            headers: {'Content-Type': 'application/json', Authorization: `Bearer ${token}`}});
        return [r.status, (await r.json()).error || ''];
    }"""
    cases = [('{"face": "0123456789abcdef", "rating": "like"}', "/api/rate", 404),
             ('{"face": "0123456789abcdef", "rating": "meh"}', "/api/rate", 400),
             ("{nope", "/api/rate", 400),
             (None, "/api/nothing", 404),
             (None, "/api/face/zzz.jpg", 404)]
    for body, path, expected in cases:
        status, error = page.evaluate(script, [TOKEN, body, path])
        assert status == expected and error, (path, body, status)


def test_export_button_downloads_the_ratings(server, store, page):
    open_page(page, server.control_url)
    with page.expect_download() as info:
        page.click("#export")
    data = json.loads(Path(info.value.path()).read_text())
    assert data["curator"] == CURATOR and data["count"] == len(store.ratings(CURATOR)[1]) > 0
    assert info.value.suggested_filename == "taste-ada.json"
