"""`passersby gallery`: marks, contact sheet, export and recently shown faces over HTTP (token
rules included), and the page in headless Chromium (keep, star, compare; read-only without
the token)."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess

import pytest

from passersby.app.captures import save_capture
from passersby.app.gallery import build_backend, print_job
from passersby.app.installation import build
from passersby.settings import ScreenSettings, load_settings
from passersby.web.gallery import GalleryServer
from webtest import launch_chromium, request


@pytest.fixture(scope="module")
def gallery(tmp_path_factory, tiny_model_file):
    """A home with a ledger of shown faces and three captures, and a gallery server on it."""
    home = tmp_path_factory.mktemp("home")
    s = load_settings(None, {"stream.seed": 6, "walk.tempo": 0.3, "walk.fps": 10.0, "model.runtime": "torch",
                             "model.path": str(tiny_model_file), "enhancer.mode": "off"}, search=False)
    s = dataclasses.replace(s, screens=(ScreenSettings("left", "", 0, "walk"),))
    inst = build(s, home)
    try:
        inst.engine.start(pace=False)
        frames = [inst.engine.take(0) for _ in range(12)]
    finally:
        inst.close()
    caps = [save_capture(home, "left", f.image, f.key, quality="as shown", matches_shown=True) for f in frames[::4]]
    backend = build_backend(s, home)
    server = GalleryServer(backend, port=0, token="tok", make_job=print_job).start()
    yield home, server, [c.id for c in caps]
    server.stop()
    backend.close()


def api(server, path, body=None, token="tok", method=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    status, raw, hdrs = request(server.url + path.lstrip("/"), None if body is None else json.dumps(body).encode(),
                                headers, method or ("POST" if body is not None else "GET"))
    return status, raw, hdrs


def test_reads_are_open_and_writes_need_the_token(gallery):
    home, server, ids = gallery
    status, raw, _ = api(server, "/api/captures", token=None)
    listed = json.loads(raw)["captures"]
    assert status == 200 and sorted(c["id"] for c in listed) == sorted(ids)
    assert all(c["status"] == "" and c["star"] is False for c in listed)
    status, raw, hdrs = api(server, f"/captures/{ids[0]}.jpg", token=None)
    assert status == 200 and hdrs["Content-Type"] == "image/jpeg" and raw[:2] == b"\xff\xd8"
    assert api(server, "/captures/nope.png", token=None)[0] == 404
    assert api(server, f"/api/captures/{ids[0]}", {"status": "keep"}, token=None)[0] == 401
    assert api(server, f"/api/captures/{ids[0]}", {"status": "keep"}, token="wrong")[0] == 403
    assert api(server, "/api/contact-sheet", {"which": "keep"}, token=None)[0] == 401
    assert api(server, "/api/export", {"ids": ids}, token=None)[0] == 401
    assert api(server, f"/api/captures/{ids[0]}", {"status": "maybe"})[0] == 400
    assert api(server, f"/api/captures/{ids[0]}", {"colour": "red"})[0] == 400
    assert api(server, "/api/captures/nope", {"status": "keep"})[0] == 404


def test_marks_contact_sheet_and_export(gallery, tmp_path):
    home, server, ids = gallery
    status, raw, _ = api(server, "/api/contact-sheet", {"which": "star"})
    assert status == 409 and "no starred captures" in json.loads(raw)["error"]
    assert json.loads(api(server, f"/api/captures/{ids[0]}", {"status": "keep", "star": True})[1])["star"] is True
    assert json.loads(api(server, f"/api/captures/{ids[1]}", {"note": "the eyes"})[1])["note"] == "the eyes"
    api(server, f"/api/captures/{ids[2]}", {"status": "reject"})
    marks = {c["id"]: c for c in json.loads(api(server, "/api/captures", token=None)[1])["captures"]}
    assert (marks[ids[0]]["status"], marks[ids[0]]["star"], marks[ids[1]]["note"], marks[ids[2]]["status"]) == \
        ("keep", True, "the eyes", "reject")
    status, pdf, hdrs = api(server, "/api/contact-sheet", {"which": "keep"})
    assert status == 200 and hdrs["Content-Type"] == "application/pdf" and pdf.startswith(b"%PDF")
    (tmp_path / "sheet.pdf").write_bytes(pdf)
    info = subprocess.run(["pdfinfo", str(tmp_path / "sheet.pdf")], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^Pages:\s+1$", info, re.M) and "(A4)" in info and "1 kept faces" in info
    assert len(list((home / "prints").glob("contact-sheet-keep-*.pdf"))) == 1
    status, raw, _ = api(server, "/api/export", {"ids": ids[:2], "size": "A5", "dpi": 72, "frame": "none"})
    exported = json.loads(raw)["exported"]
    assert status == 200 and [e["id"] for e in exported] == ids[:2] and exported[0]["pixels"] == [420, 595]
    assert all(p.exists() for e in exported for p in map(__import__("pathlib").Path, (e["raster"], e["pdf"])))
    assert api(server, "/api/export", {"ids": ids[:1], "size": "B9"})[0] == 400
    assert api(server, "/api/export", {"ids": ids[:1], "paper": "A4"})[0] == 400
    assert api(server, "/api/export", {"ids": ["nope"]})[0] == 404


def test_recently_shown_faces_are_re_rendered_and_capturable_after_the_fact(gallery):
    home, server, ids = gallery
    recent = json.loads(api(server, "/api/recent?n=5", token=None)[1])["recent"]
    assert len(recent) == 5 and recent[0]["id"] > recent[-1]["id"] and recent[0]["channel"] == "left"
    status, raw, hdrs = api(server, f"/recent/{recent[0]['id']}.jpg", token=None)
    assert status == 200 and hdrs["Content-Type"] == "image/jpeg"
    assert api(server, "/recent/99999.jpg", token=None)[0] == 404
    assert api(server, f"/api/recent/{recent[0]['id']}/capture", {}, token=None)[0] == 401
    status, raw, _ = api(server, f"/api/recent/{recent[0]['id']}/capture", {})
    got = json.loads(raw)
    assert status == 200 and got["ok"] and got["quality"] == "as shown"
    rec = json.loads((home / "captures" / f"{got['id']}.json").read_text())
    assert rec["key"]["source"] == "anchor" and rec["anchor_id"] == recent[0]["id"] and rec["after_the_fact"]


def test_the_page_keeps_stars_and_compares_and_is_read_only_without_the_token(gallery):
    home, server, ids = gallery
    browsers = launch_chromium()
    browser = next(browsers)
    try:
        page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
        page.set_default_timeout(15_000)
        page.goto(server.control_url)
        page.wait_for_selector("body[data-controls=enabled]")
        page.wait_for_selector(f"figure.card[data-id='{ids[1]}'] img")
        page.click(f"figure.card[data-id='{ids[1]}'] img")
        page.click("#large [data-set=keep]")
        page.wait_for_function(f"() => document.querySelector(\"figure.card[data-id='{ids[1]}']\").dataset.status === 'keep'")
        page.click("#star")
        page.wait_for_function("() => document.querySelector('#star').textContent.includes('Starred')")
        page.click("#close")
        marks = {c["id"]: c for c in json.loads(api(server, "/api/captures", token=None)[1])["captures"]}
        assert marks[ids[1]]["status"] == "keep" and marks[ids[1]]["star"] is True
        page.click("[data-filter=star]")
        page.wait_for_function("() => document.querySelectorAll('figure.card').length >= 1")
        assert ids[1] in page.eval_on_selector_all("figure.card", "els => els.map(e => e.dataset.id)")
        page.click("[data-filter=all]")
        n = len(json.loads(api(server, "/api/captures", token=None)[1])["captures"])
        page.wait_for_function(f"() => document.querySelectorAll('figure.card').length === {n}")
        for cid in ids[:2]:
            page.check(f"figure.card[data-id='{cid}'] input.choose")
        page.click("#compare")
        page.wait_for_function("() => document.querySelector('#compare-view').open")
        shown = {page.inner_text("#cmp-a-id"), page.inner_text("#cmp-b-id")}
        assert shown == set(ids[:2])
        page.wait_for_function("() => document.querySelector('#cmp-a').naturalWidth > 0")
        page.click("#cmp-close")
        ro = browser.new_context().new_page()
        ro.goto(server.url)
        ro.wait_for_selector("body[data-controls=locked]")
        assert ro.is_disabled("#sheet") and "Read only" in ro.inner_text("#lock")
    finally:
        for _ in browsers:
            pass
