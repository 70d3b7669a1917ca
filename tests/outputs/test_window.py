"""run_windows under SDL's dummy video driver (always) and under a real X server (Xvfb, if any).

A publisher thread feeds two screens at 30 fps with a colour that changes every frame; the
windows run in the test's main thread, as SDL wants. Pixels are read back from the renderer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time

import numpy as np
import pytest

import passersby.outputs.window as window_module
from passersby.outputs.window import (WindowStats, choose_displays, display_available, letterbox,
                                      run_windows)
from passersby.stream.frames import Frame, FrameHub

SCREENS = ["feminine", "masculine"]
FRAME_W, FRAME_H = 96, 64  # 3:2, so a 4:3 display shows black bars above and below


def colour(screen: str, i: int) -> tuple[int, int, int]:
    return (i * 10 % 256, 60, 200) if screen == SCREENS[0] else (200, i * 10 % 256, 60)


class Publisher:
    """Publishes a uniformly coloured frame per screen every 1/fps s until stopped."""

    def __init__(self, hub: FrameHub, fps: float = 30.0, close_after: int | None = None,
                 wait_for=None) -> None:
        self.hub, self.fps, self.close_after = hub, fps, close_after
        self.wait_for = wait_for  # frame index -> bool: publish the next one only once it holds
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        start = time.monotonic()
        for i in range(10_000):
            for s in self.hub.screens:
                image = np.empty((FRAME_H, FRAME_W, 3), np.uint8)
                image[:] = colour(s, i)
                self.hub.publish(Frame(s, i, image, {"frame": i}))
            if self.close_after is not None and i + 1 >= self.close_after:
                self.hub.close()
                return
            if self.wait_for is not None:
                deadline = time.monotonic() + 10
                while not self.wait_for(i) and time.monotonic() < deadline and not self.stop.is_set():
                    time.sleep(0.002)
            if self.stop.wait(max(0.0, start + (i + 1) / self.fps - time.monotonic())):
                return

    def __enter__(self) -> Publisher:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(5)


class Recorder:
    def __init__(self) -> None:
        self.actions: list[str] = []

    def control(self, action: str) -> None:
        self.actions.append(action)


@pytest.fixture
def pygame_dummy(monkeypatch):
    """pygame with SDL's dummy video and audio drivers; the display is shut at the end."""
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    monkeypatch.setenv("SDL_AUDIODRIVER", "dummy")
    monkeypatch.setenv("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    yield pygame
    pygame.display.quit()


def check_snapshot(stats: WindowStats, screen: str) -> None:
    """The window shows the last presented frame's colour, letterboxed on black."""
    snap = stats.snapshots[screen]
    h, w = snap.shape[:2]
    x, y, bw, bh = letterbox((FRAME_W, FRAME_H), (w, h))
    inside = snap[y + 2:y + bh - 2, x + 2:x + bw - 2].reshape(-1, 3).astype(int)
    want = np.array(colour(screen, stats.shown[screen]))
    assert np.abs(inside - want).max() <= 2, f"{screen}: {inside.mean(0)} != {want}"
    outside = np.concatenate([snap[:max(y - 1, 0)], snap[y + bh + 1:]]).reshape(-1, 3)
    assert y > 0 and (outside == 0).all()  # black bars above and below the 3:2 picture


def test_two_screens_present_every_frame_scaled(pygame_dummy, monkeypatch):
    controls = Recorder()
    hub = FrameHub(SCREENS, controls=controls)
    assert display_available()  # the dummy driver, asked for explicitly, counts
    presented = {s: [] for s in SCREENS}
    show = window_module.ScreenWindow.show

    def recording_show(self, frame):
        show(self, frame)
        presented[frame.screen].append(frame.index)

    monkeypatch.setattr(window_module.ScreenWindow, "show", recording_show)
    # Lock-step: the publisher's next frame waits until the windows presented this one, so a
    # slow machine cannot make the windows skip one (the real rate is benchmarks/stream.py's).
    with Publisher(hub, wait_for=lambda i: all(presented[s][-1:] == [i] for s in SCREENS)):
        stats = run_windows(hub, max_frames=20, snapshot=True)
    assert stats.reason == "max_frames" and stats.renderer == "software"
    assert stats.presented == {s: 20 for s in SCREENS}
    for s in SCREENS:
        assert len(stats.intervals[s]) == 19
        first = presented[s][0]
        assert presented[s] == list(range(first, first + 20))  # every frame the publisher sent, once, in order
        assert stats.shown[s] == first + 19
        assert min(stats.intervals[s]) >= 0.75 / 30  # never faster than fps (25 % slack): run_windows' limit
        assert stats.snapshots[s].shape[:2] == (768, 512)  # half of the 1024x768 dummy display each
        check_snapshot(stats, s)
    assert controls.actions == []  # no key, no control


def post_keys(pygame, *keys) -> None:
    for key in keys:
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key))


def test_keys_reach_the_controls(pygame_dummy):
    pygame = pygame_dummy
    controls = Recorder()
    hub = FrameHub(SCREENS, controls=controls)
    pygame.display.init()  # so events can be queued before the windows open
    post_keys(pygame, pygame.K_SPACE, pygame.K_n, pygame.K_RIGHT, pygame.K_SPACE, pygame.K_q)
    with Publisher(hub):
        stats = run_windows(hub, max_frames=1000)
    assert stats.reason == "quit"
    assert controls.actions == ["pause", "next", "next", "resume", "quit"]


def test_c_captures_the_screen_in_a_thread_and_a_failure_does_not_end_the_show(pygame_dummy):
    pygame = pygame_dummy
    hub = FrameHub(SCREENS)
    calls = []

    def capture(screen):
        calls.append(screen)
        if len(calls) == 2:
            raise ValueError("nothing shown yet")
        return {"id": f"cap-{screen}"}

    pygame.display.init()
    post_keys(pygame, pygame.K_c, pygame.K_c, pygame.K_q)
    with Publisher(hub):
        stats = run_windows(hub, max_frames=1000, capture=capture)
    assert stats.reason == "quit" and len(calls) == 2 and calls[0] in SCREENS
    assert sorted(map(str, stats.captures)) == sorted([str({"id": f"cap-{calls[0]}"}),
                                                        str({"screen": calls[1], "error": "nothing shown yet"})])


def test_a_peepshow_window_turns_space_enter_and_clicks_into_presses(pygame_dummy):
    pygame = pygame_dummy
    controls = Recorder()
    hub = FrameHub(SCREENS, controls=controls)
    pygame.display.init()
    post_keys(pygame, pygame.K_SPACE, pygame.K_RETURN)
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, button=1, pos=(10, 10)))
    post_keys(pygame, pygame.K_n, pygame.K_q)
    with Publisher(hub):
        stats = run_windows(hub, max_frames=1000, press=True)
    assert stats.reason == "quit"
    assert controls.actions == ["press", "press", "press", "next", "quit"]  # no pause in a peepshow


def test_a_press_in_one_peep_window_presses_that_screen_only(pygame_dummy):
    from types import SimpleNamespace

    from passersby.outputs.window import _Keys

    pygame = pygame_dummy
    calls = []

    class Screens:
        def control(self, action, value=None, screen=None):
            calls.append((action, screen))

    hub = FrameHub(SCREENS, controls=Screens())
    windows = {s: SimpleNamespace(window=object()) for s in SCREENS}
    keys = _Keys(hub, windows, fullscreen=False, press=True)
    events = [SimpleNamespace(type=pygame.MOUSEBUTTONDOWN, window=windows["masculine"].window),
              SimpleNamespace(type=pygame.KEYDOWN, key=pygame.K_SPACE, window=windows["feminine"].window),
              SimpleNamespace(type=pygame.FINGERDOWN)]  # no window known: every peep screen
    fake = SimpleNamespace(**{k: getattr(pygame, k) for k in dir(pygame) if k.isupper()},
                           event=SimpleNamespace(get=lambda: events))
    assert keys.handle(fake) is False
    assert calls == [("press", "masculine"), ("press", "feminine"), ("press", None)]


def test_escape_and_window_close_quit(pygame_dummy):
    pygame = pygame_dummy
    for event in (pygame.event.Event(pygame.KEYDOWN, key=pygame.K_ESCAPE),
                  pygame.event.Event(pygame.QUIT), pygame.event.Event(pygame.WINDOWCLOSE)):
        controls = Recorder()
        hub = FrameHub(SCREENS, controls=controls)
        pygame.display.init()
        pygame.event.post(event)
        assert run_windows(hub, max_frames=1000).reason == "quit"
        assert controls.actions == ["quit"]


def test_f_toggles_fullscreen_and_pause_follows_status(pygame_dummy):
    pygame = pygame_dummy
    controls = Recorder()
    hub = FrameHub(SCREENS, status=lambda: {"paused": True}, controls=controls)
    pygame.display.init()
    post_keys(pygame, pygame.K_f, pygame.K_SPACE)
    with Publisher(hub):
        stats = run_windows(hub, max_frames=3, snapshot=True)
    assert controls.actions == ["resume"]  # the installation said it was paused
    for s in SCREENS:
        h, w = stats.snapshots[s].shape[:2]
        assert (w, h) != (1024, 768) and w == h  # back to the square windowed size
    assert pygame.mouse.get_visible()  # the cursor is back after return


def test_returns_when_the_hub_closes_and_without_controls(pygame_dummy):
    pygame = pygame_dummy
    hub = FrameHub(SCREENS)  # no controls: keys must not raise
    pygame.display.init()
    post_keys(pygame, pygame.K_SPACE, pygame.K_n)
    with Publisher(hub, close_after=5):
        stats = run_windows(hub, fullscreen=False)
    assert stats.reason == "closed"
    assert all(1 <= n <= 5 for n in stats.presented.values())


def test_fps_caps_presents(pygame_dummy):
    hub = FrameHub(SCREENS)
    with Publisher(hub, fps=120):
        stats = run_windows(hub, fps=20, max_frames=8)
    for s in SCREENS:
        assert min(stats.intervals[s]) >= 0.75 / 20 - 0.002
        assert stats.shown[s] > stats.presented[s]  # frames published in between were skipped


def test_choose_displays_and_letterbox():
    assert choose_displays(SCREENS, None, 2) == {"feminine": 0, "masculine": 1}
    assert choose_displays(SCREENS, None, 1) == {"feminine": 0, "masculine": 0}
    assert choose_displays(SCREENS, {"feminine": 1}, 2) == {"feminine": 1, "masculine": 1}
    with pytest.raises(ValueError, match="monitor 3 for screen 'masculine' does not exist"):
        choose_displays(SCREENS, {"masculine": 3}, 2)
    with pytest.raises(ValueError, match="unknown screens"):
        choose_displays(SCREENS, {"left": 0}, 2)
    assert letterbox((96, 64), (1024, 768)) == (0, 42, 1024, 683)
    assert letterbox((64, 64), (1920, 1080)) == (420, 0, 1080, 1080)


def test_display_available_needs_a_display(monkeypatch):
    for name in ("SDL_VIDEODRIVER", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    if os.uname().sysname == "Linux":
        assert not display_available()
    # No such X server; naming the x11 driver keeps SDL from finding Wayland or KMS instead.
    monkeypatch.setenv("DISPLAY", ":98765")
    monkeypatch.setenv("SDL_VIDEODRIVER", "x11")
    assert not display_available()


@pytest.fixture
def xvfb(monkeypatch):
    """A private Xvfb server (640x480); skipped where Xvfb is not installed."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    read, write = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "640x480x24",
                             "-nolisten", "tcp"], pass_fds=[write],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    try:
        with os.fdopen(read) as f:
            number = f.readline().strip()  # Xvfb writes its display number once it is ready
        assert number, "Xvfb did not start"
        monkeypatch.setenv("DISPLAY", f":{number}")
        monkeypatch.delenv("SDL_VIDEODRIVER", raising=False)
        monkeypatch.setenv("SDL_AUDIODRIVER", "dummy")
        yield
    finally:
        import pygame

        pygame.display.quit()
        proc.terminate()
        proc.wait(5)


@pytest.mark.parametrize("screens, size", [(SCREENS, (480, 320)), (SCREENS[:1], (480, 640))])
def test_real_x_display(xvfb, screens, size):
    """Alone on the display a screen goes desktop full screen; two screens split it."""
    assert display_available()
    hub = FrameHub(screens)
    with Publisher(hub):
        stats = run_windows(hub, max_frames=10, snapshot=True)
    assert stats.presented == {s: 10 for s in screens}
    assert stats.renderer in ("hardware", "software")  # Xvfb: Mesa's GL, on the CPU
    for s in screens:
        assert stats.snapshots[s].shape[:2] == size
        check_snapshot(stats, s)


def test_real_x_display_f_key_goes_full_screen(xvfb):
    import pygame

    hub = FrameHub(SCREENS[:1])
    pygame.display.init()
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_f))
    with Publisher(hub):
        stats = run_windows(hub, fullscreen=False, max_frames=10, snapshot=True)
    assert stats.snapshots[SCREENS[0]].shape[:2] == (480, 640)
    check_snapshot(stats, SCREENS[0])
