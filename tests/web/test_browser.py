"""The kiosk pages in real headless Chromium: live frames, status table, controls, keys.

Needs Debian's /usr/bin/chromium (CI installs it); without it these tests fail, on purpose.
"""

from __future__ import annotations

import io
import time

import numpy as np
from PIL import Image

from passersby.web import KioskServer
from .synthetic import SCREENS


def frame_index(page, selector: str) -> int:
    value = page.get_attribute(selector, "data-frame-index")
    return -1 if value is None else int(value)


def wait_frames_past(page, selector: str, index: int, timeout_ms: int = 10_000) -> int:
    page.wait_for_function(
        "([sel, i]) => { const el = document.querySelector(sel);"
        " return el && Number(el.dataset.frameIndex ?? -1) > i; }",
        arg=[selector, index], timeout=timeout_ms)
    return frame_index(page, selector)


def pixels(page, selector: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(page.locator(selector).screenshot())).convert("RGB"), np.int16)


def test_screen_page_shows_changing_frames(show, page):
    page.goto(show.server.screen_url("left"))
    first = wait_frames_past(page, "#screen", -1)
    before = pixels(page, "#screen")
    later = wait_frames_past(page, "#screen", first + 10, timeout_ms=3_000)  # 30 fps: ~1/3 s
    after = pixels(page, "#screen")
    assert later > first + 10
    assert np.abs(after - before).max() > 10, "two screenshots of a changing screen are identical"
    # The face fills the window height and the rest is black (object-fit: contain).
    box = page.locator("#screen").bounding_box()
    assert (box["width"], box["height"]) == (800, 600)
    assert page.evaluate("getComputedStyle(document.body).cursor") == "none"


def test_overview_shows_every_screen_and_the_status(show, page):
    page.goto(show.server.url)
    for name in SCREENS:
        wait_frames_past(page, f'img.screen[data-screen="{name}"]', 2)
    page.wait_for_selector('#status tr[data-key="ledger_size"]')
    table = page.inner_text("#status")
    assert "Ledger size" in table and "1,234" in table and "synthetic" in table and "Uptime" in table
    page.wait_for_function("() => /[1-9][0-9.]* fps/.test(document.querySelector('.tile .fps').textContent)")


def test_overview_without_token_has_no_controls(fresh, page):
    page.goto(fresh.server.url)
    page.wait_for_selector("body[data-controls]")
    for action in ("pause", "next", "quit"):
        button = page.locator(f"#{action}")
        assert button.is_disabled()
        button.click(force=True)  # clicking a disabled button does nothing
    assert "?token=" in page.inner_text("#controls-note")
    # Even a script on the page cannot control without the token.
    status = page.evaluate("fetch('/api/control', {method: 'POST', body: '{\"action\":\"next\"}'})"
                           ".then(r => r.status)")
    assert status == 401
    time.sleep(0.2)
    assert fresh.controls.actions == []


def test_overview_with_a_wrong_token_says_so(fresh, page):
    page.goto(fresh.server.url + "?token=guess")
    page.wait_for_selector("body[data-controls=locked]")
    assert "not valid" in page.inner_text("#controls-note")
    assert page.locator("#next").is_disabled()


def test_overview_with_token_controls(fresh, page):
    page.goto(fresh.server.control_url)
    page.wait_for_selector("body[data-controls=enabled]")
    page.click("#next")
    assert fresh.controls.wait_for("next")
    page.click("#pause")
    assert fresh.controls.wait_for("pause")
    page.click("#quit")  # first press only arms it
    page.wait_for_function("() => document.querySelector('#quit').textContent.includes('Really')")
    assert "quit" not in fresh.controls.actions
    page.click("#quit")
    assert fresh.controls.wait_for("quit")
    assert fresh.controls.actions == ["next", "pause", "quit"]


def test_overview_capture_buttons(fresh, page):
    fresh.captured.clear()
    page.goto(fresh.server.control_url)
    page.wait_for_selector("body[data-controls=enabled]")
    page.click("button.capture[data-screen=left]")
    page.wait_for_function("() => document.querySelector('#controls-note').textContent.startsWith('Captured cap-left-')")
    assert "matches the screen" in page.inner_text("#controls-note")
    assert [s for s, _ in fresh.captured] == ["left"]
    page.goto(fresh.server.url)  # no token: the buttons are locked
    page.wait_for_selector("body[data-controls=locked]")
    assert page.is_disabled("button.capture[data-screen=right]")


def test_screen_keys_with_token(fresh, page):
    page.goto(fresh.server.screen_url("right", with_token=True))
    wait_frames_past(page, "#screen", -1)
    page.keyboard.press("n")
    assert fresh.controls.wait_for("next")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Space")
    assert fresh.controls.wait_for("pause")  # status says paused: False, so space pauses
    assert fresh.controls.actions == ["next", "next", "pause"]


def test_screen_keys_without_token_do_nothing(fresh, page):
    page.goto(fresh.server.screen_url("right"))
    wait_frames_past(page, "#screen", -1)
    for key in ("n", "ArrowRight", "Space", "q"):
        page.keyboard.press(key)
    page.wait_for_function("() => document.querySelector('#toast').textContent.includes('locked')")
    assert fresh.controls.actions == []


def test_unknown_screen_page_lists_the_screens(show, page):
    response = page.goto(show.server.url + "screen/nobody")
    assert response.status == 404
    page.wait_for_selector("#screen-links a")
    assert page.inner_text("#screen-links").split() == SCREENS
    assert "nobody" in page.inner_text("#what")


def test_screen_page_reconnects_after_a_server_restart(show, page):
    hub = show.hub
    server = KioskServer(hub, port=0).start()
    port = server.port
    try:
        page.goto(server.screen_url("left"))
        wait_frames_past(page, "#screen", -1)
        server.stop()
        before = frame_index(page, "#screen")
        server = KioskServer(hub, port=port).start()
        wait_frames_past(page, "#screen", before + 3)
    finally:
        server.stop()
