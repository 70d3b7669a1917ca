"""The overview's live sliders in real headless Chromium, on a real engine (model-free
renderers) behind the control desk: a slider turns the screen's knob through POST /api/control,
a change from elsewhere (OSC) moves the slider, and without the token they are locked."""

from __future__ import annotations

import time

import pytest

from app.live_fakes import live_engine
from passersby.app.controls import ControlDesk
from passersby.web import KioskServer

TOKEN = "slider-token-123"


@pytest.fixture
def installation(tmp_path):
    e = live_engine(tmp_path)
    desk = ControlDesk(e)
    e.start()
    server = KioskServer(e.hub, port=0, token=TOKEN).start()
    yield e, desk, server
    server.stop()
    e.stop()


def slide(page, selector: str, value: float) -> None:
    """What a hand on the slider does: the value moves (input), then is let go (change)."""
    page.locator(selector).evaluate(
        "(el, v) => { el.value = String(v); el.dispatchEvent(new Event('input', {bubbles: true}));"
        " el.dispatchEvent(new Event('change', {bubbles: true})); }", value)


def until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_sliders_play_the_installation_live(installation, page) -> None:
    e, desk, server = installation
    page.goto(server.control_url)
    drift = 'input[data-screen="feminine"][data-control="drift"]'
    speed = 'input[data-screen="masculine"][data-control="walk/speed"]'
    page.wait_for_selector(drift)
    assert page.locator(speed).is_enabled()
    assert page.locator('input[data-screen="masculine"][data-control="drift"]').count() == 0  # a walk: no drift
    assert page.get_attribute(drift, "max") == "4"
    slide(page, drift, 2.5)
    assert until(lambda: desk.values()["feminine"]["drift"] == 2.5), desk.report()
    assert desk.last["via"] == "web" and desk.last["screens"] == ["feminine"]
    page.wait_for_function("() => document.querySelector('#controls-note').textContent.includes('drift 2.50')")
    assert until(lambda: (f := e.hub.latest("feminine")) is not None and (f.key["segment"].get("drifts") or [[0, 0]])[-1][1] == 2.5)
    desk.apply("walk/speed", 3.0, "masculine", via="osc")  # a knob elsewhere ...
    page.wait_for_function(f"() => document.querySelector('{speed}').value === '3'")  # ... moves the slider
    slide(page, 'input[data-screen="masculine"][data-control="tempo"]', 0.0)  # below the range: clamped to 1
    assert until(lambda: desk.values()["masculine"]["tempo"] == 1.0)
    assert "Controls" not in page.inner_text("#status")  # the controls are sliders, not a status row


def test_sliders_are_locked_without_the_token(installation, page) -> None:
    e, desk, server = installation
    page.goto(server.url)
    drift = 'input[data-screen="feminine"][data-control="drift"]'
    page.wait_for_selector(drift)
    assert page.locator(drift).is_disabled()
    status = page.evaluate("fetch('/api/control', {method: 'POST', body: JSON.stringify("
                           "{action: 'drift', value: 3, screen: 'feminine'})}).then(r => r.status)")
    assert status == 401 and desk.changes == 0
