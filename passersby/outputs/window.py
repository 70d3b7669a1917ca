"""Full-screen windows showing the hub's screens: one SDL2 window per screen, via pygame-ce.

Each screen gets its own window on its own monitor (pygame's `_sdl2.video` Window/Renderer, which
unlike `pygame.display.set_mode` allows several windows). A frame is uploaded to a streaming
texture and the renderer scales it to the window, keeping its aspect ratio on black: with a
hardware renderer the scaling runs on the GPU, the CPU never resizes. Keys work in any window:

    space   pause / resume          f         toggle full screen
    n, ->   next face               q, Esc    quit (closing a window quits too)

SDL wants its events handled in the thread that created the windows (on macOS: the main
thread), so `run_windows` loops in the calling thread; the engine publishes from its own.

Headless machines: SDL's "dummy" video driver (SDL_VIDEODRIVER=dummy) opens windows that show
nothing; it has no hardware renderer, so the software one is used, which works everywhere and
reads back pixels (the tests use it).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from passersby.stream.frames import Frame, FrameHub

log = logging.getLogger("passersby")

# SDL_WINDOWPOS_CENTERED_DISPLAY(i) = this | i: centre a new window on display i (pygame has
# no call for a display's bounds; the centred window's position gives them).
_CENTERED_ON_DISPLAY = 0x2FFF0000
_BLACK = (0, 0, 0, 255)


def _pygame():
    """Import pygame (silently: no support banner) and its SDL2 video module, lazily."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame
    from pygame._sdl2 import video

    return pygame, video


def display_available() -> bool:
    """Whether SDL can open windows that someone can see.

    On Linux a display needs DISPLAY (X11) or WAYLAND_DISPLAY set, and SDL's video must start.
    SDL_VIDEODRIVER, when set, is obeyed and skips the DISPLAY check: "kmsdrm" (a console
    without X) counts, and so does "dummy" (invisible windows, for tests): setting it
    explicitly is taken as asking for it. Without SDL_VIDEODRIVER the dummy/offscreen drivers
    never count.

    Example:
        >>> display_available()  # a display  # doctest: +SKIP
        True
    """
    explicit = os.environ.get("SDL_VIDEODRIVER", "").strip()
    if not explicit and sys.platform.startswith("linux") and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        pygame, _ = _pygame()
    except ImportError:
        return False
    started_here = not pygame.display.get_init()
    try:
        pygame.display.init()
        driver = pygame.display.get_driver()
    except pygame.error:
        return False
    finally:
        if started_here:
            pygame.display.quit()
    return bool(explicit) or driver not in ("dummy", "offscreen")


@dataclass
class WindowStats:
    """What `run_windows` showed.

    Attributes:
        presented: frames presented per screen.
        intervals: seconds between consecutive presents, per screen.
        shown: index of the last frame presented, per screen (-1: none).
        renderer: "hardware" (GPU scaling) or "software" (SDL's CPU fallback).
        reason: why it returned: "quit" (key or window close), "closed" (hub), "max_frames".
        snapshots: per screen, the window's pixels (H, W, 3) at exit; only with snapshot=True.
        captures: what each "c" press gave: the capture's summary, or {"screen", "error"}.
    """

    presented: dict[str, int] = field(default_factory=dict)
    intervals: dict[str, list[float]] = field(default_factory=dict)
    shown: dict[str, int] = field(default_factory=dict)
    renderer: str = ""
    reason: str = ""
    captures: list[dict] = field(default_factory=list)
    snapshots: dict[str, np.ndarray] = field(default_factory=dict)


def letterbox(src: tuple[int, int], dst: tuple[int, int]) -> tuple[int, int, int, int]:
    """The (x, y, w, h) rectangle that fits a `src` (w, h) picture into `dst` (w, h), centred,
    keeping its aspect ratio.

    Example:
        >>> letterbox((100, 50), (400, 400))
        (0, 100, 400, 200)
    """
    scale = min(dst[0] / src[0], dst[1] / src[1])
    w, h = max(1, round(src[0] * scale)), max(1, round(src[1] * scale))
    return (dst[0] - w) // 2, (dst[1] - h) // 2, w, h


class ScreenWindow:
    """One SDL window showing one screen's frames, scaled by the renderer.

    Full screen is a borderless window given its display's exact bounds, then, when the screen
    is alone on its display, SDL's desktop full screen too (so a window manager puts it above
    panels). The explicit bounds are what make it work without a window manager (a bare-X
    kiosk, Xvfb), where SDL's full-screen request alone leaves the window small. SDL allows one
    full-screen window per display, so m screens sharing a display split it into m columns.

    Args:
        title: window title.
        display: SDL display index (monitor) to open on.
        slot: (k, m): this is the k-th of m screens on that display.
        fullscreen: start full screen (else a square window, m of them side by side).

    Example:
        >>> win = ScreenWindow("passersby - feminine", 1, (0, 1), fullscreen=True)  # a display  # doctest: +SKIP
        >>> win.show(hub.latest("feminine"))  # a display  # doctest: +SKIP
    """

    GAP = 16  # pixels between windowed windows sharing a display

    def __init__(self, title: str, display: int, slot: tuple[int, int] = (0, 1),
                 fullscreen: bool = True) -> None:
        pygame, video = _pygame()
        self._pygame, self._video = pygame, video
        k, m = slot
        dw, dh = pygame.display.get_desktop_sizes()[display]
        side = max(64, min(dw // m - 2 * self.GAP, dh - 96) * 3 // 4)
        pos = _CENTERED_ON_DISPLAY | display
        self.window = video.Window(title, size=(side, side), position=(pos, pos), resizable=True)
        # SDL centred the window on the display's bounds: that tells where the display starts.
        x, y = self.window.position
        ox, oy = x - (dw - side) // 2, y - (dh - side) // 2
        row = m * side + (m - 1) * self.GAP
        self._windowed = (ox + (dw - row) // 2 + k * (side + self.GAP), y, side, side)
        self._bounds = (ox + k * dw // m, oy, (k + 1) * dw // m - k * dw // m, dh)
        self._alone = m == 1
        self.texture = None
        self.last_present = -float("inf")
        self.fullscreen = False
        try:
            self.kind = self._make_renderer()
            self.set_fullscreen(fullscreen)
        except BaseException:
            self.window.destroy()
            raise

    def _make_renderer(self) -> str:
        """A hardware renderer (GPU scaling) if SDL has one, else SDL's software renderer."""
        from pygame._sdl2 import error as sdl_error

        try:
            self.renderer = self._video.Renderer(self.window, accelerated=1)
            return "hardware"
        except (self._pygame.error, sdl_error):  # e.g. the dummy driver, or no GL driver
            self.renderer = self._video.Renderer(self.window, accelerated=0)
            return "software"

    def set_fullscreen(self, on: bool) -> None:
        """Cover this screen's part of its display (see the class), or go back to a window."""
        if self.fullscreen and not on and self._alone:
            self.window.set_windowed()
        x, y, w, h = self._bounds if on else self._windowed
        self.window.borderless = on
        self.window.size = (w, h)
        self.window.position = (x, y)
        if on and self._alone:
            self.window.set_fullscreen(desktop=True)
        self.fullscreen = on

    def show(self, frame: Frame) -> None:
        """Upload `frame` to the texture, draw it letterboxed, present."""
        h, w = frame.image.shape[:2]
        if self.texture is None or (self.texture.width, self.texture.height) != (w, h):
            self.texture = self._video.Texture(self.renderer, (w, h), streaming=True,
                                               scale_quality=self._video.SCALEQUALITY_LINEAR)
        # frombuffer wraps the array without a copy; update() converts to the texture format.
        image = np.ascontiguousarray(frame.image)
        self.texture.update(self._pygame.image.frombuffer(image, (w, h), "RGB"))
        self.redraw()
        self.last_present = time.monotonic()

    def redraw(self) -> None:
        """Present the last frame again, fitted to the window's current size."""
        self._draw()
        self.renderer.present()

    def _draw(self) -> None:
        r = self.renderer
        r.set_viewport(None)  # the whole output, whatever its size now (after resizes, toggles)
        r.draw_color = _BLACK
        r.clear()
        if self.texture is not None:
            out = r.get_viewport()
            x, y, w, h = letterbox((self.texture.width, self.texture.height), (out.w, out.h))
            r.blit(self.texture, self._pygame.Rect(x, y, w, h))

    def snapshot(self) -> np.ndarray:
        """Redraw the last frame and read the window's pixels back as (H, W, 3) uint8 RGB."""
        self._draw()  # the back buffer is undefined after present: draw again, then read
        surface = self.renderer.to_surface()
        w, h = surface.get_size()
        pixels = self._pygame.image.tobytes(surface, "RGB")
        return np.frombuffer(pixels, np.uint8).reshape(h, w, 3).copy()

    def close(self) -> None:
        self.texture = None
        self.window.destroy()


def choose_displays(screens: list[str], monitors: dict[str, int] | None,
                    n_displays: int) -> dict[str, int]:
    """Display index per screen: `monitors` where given, else screen i on display i (wrapping).

    Example:
        >>> choose_displays(["a", "b"], None, 1)
        {'a': 0, 'b': 0}
    """
    monitors = dict(monitors or {})
    unknown = set(monitors) - set(screens)
    if unknown:
        raise ValueError(f"monitors names unknown screens {sorted(unknown)}; screens are {screens}")
    chosen = {s: monitors.get(s, i % n_displays) for i, s in enumerate(screens)}
    for s, d in chosen.items():
        if not 0 <= d < n_displays:
            raise ValueError(f"monitor {d} for screen {s!r} does not exist: "
                             f"{n_displays} display(s) found")
    return chosen


def _open_windows(screens: list[str], displays: dict[str, int],
                  fullscreen: bool) -> dict[str, ScreenWindow]:
    """One window per screen, on its display; screens sharing a display split it."""
    windows: dict[str, ScreenWindow] = {}
    try:
        for s in screens:
            sharing = [t for t in screens if displays[t] == displays[s]]
            slot = (sharing.index(s), len(sharing))
            windows[s] = ScreenWindow(f"passersby - {s}", displays[s], slot, fullscreen)
    except BaseException:
        for w in windows.values():
            w.close()
        raise
    return windows


def _control(hub: FrameHub, action: str, screen: str | None = None) -> None:
    try:
        hub.control(action, screen=screen)
    except PermissionError:  # an installation without controls (or a press on a screen without a button)
        pass


class _Keys:
    """Turns SDL events into hub controls; remembers pause and full-screen state."""

    def __init__(self, hub: FrameHub, windows: dict[str, ScreenWindow], fullscreen: bool,
                 capture: Callable[[str], dict] | None = None, press: bool = False) -> None:
        self.hub, self.windows, self.fullscreen, self.paused = hub, windows, fullscreen, False
        self.capture, self.press = capture, press
        self.captures: list[dict] = []  # what each "c" press gave (or its error), for the log and tests
        self.threads: list[threading.Thread] = []

    def _screen_of(self, event) -> str | None:
        """The screen whose window got `event` (each peephole its own button); None if unknown."""
        window = getattr(event, "window", None)
        return next((name for name, w in self.windows.items() if window is not None and w.window is window), None)

    def handle(self, pygame) -> bool:
        """Handle pending events; True when asked to quit."""
        # Paused, no new frame comes to repaint a resized or uncovered window: redraw it here.
        repaint = (pygame.WINDOWSIZECHANGED, pygame.WINDOWEXPOSED, pygame.WINDOWRESTORED)
        for event in pygame.event.get():
            if event.type in (pygame.QUIT, pygame.WINDOWCLOSE):
                _control(self.hub, "quit")
                return True
            if event.type in repaint:
                for w in self.windows.values():
                    if w.window is getattr(event, "window", None):
                        w.redraw()
                continue
            if self.press and event.type in (pygame.MOUSEBUTTONDOWN, pygame.FINGERDOWN):
                _control(self.hub, "press", self._screen_of(event))
                continue
            if event.type != pygame.KEYDOWN:
                continue
            key = event.key
            if self.press and key in (pygame.K_SPACE, pygame.K_RETURN, pygame.K_KP_ENTER):
                _control(self.hub, "press", self._screen_of(event))
                continue
            if key in (pygame.K_q, pygame.K_ESCAPE):
                _control(self.hub, "quit")
                return True
            if key == pygame.K_SPACE:
                self._toggle_pause()
            elif key in (pygame.K_n, pygame.K_RIGHT):
                _control(self.hub, "next")
            elif key == pygame.K_c and self.capture is not None:
                self._start_capture(getattr(event, "window", None))
            elif key == pygame.K_f:
                self.fullscreen = not self.fullscreen
                for w in self.windows.values():
                    w.set_fullscreen(self.fullscreen)
                    w.redraw()
                pygame.mouse.set_visible(not self.fullscreen)
        return False

    def _start_capture(self, window) -> None:
        """Capture the screen of the window the key was pressed in (else the first), in a
        thread: a re-render takes longer than a frame."""
        screen = next((s for s, w in self.windows.items() if w.window is window), next(iter(self.windows)))

        def run() -> None:
            try:
                result = self.capture(screen)
                log.info("captured %s: %s", screen, result.get("id"))
            except Exception as e:  # noqa: BLE001 - a failed capture must not end the show
                result = {"screen": screen, "error": str(e)}
                log.warning("capture of %s failed: %s", screen, e)
            self.captures.append(result)

        t = threading.Thread(target=run, name=f"capture-{screen}", daemon=True)
        self.threads.append(t)
        t.start()

    def _toggle_pause(self) -> None:
        # Prefer the installation's own idea of "paused" (another sink may have paused it).
        paused = self.hub.status().get("paused", self.paused)
        self.paused = not bool(paused)
        _control(self.hub, "pause" if self.paused else "resume")


def run_windows(hub: FrameHub, monitors: dict[str, int] | None = None, fullscreen: bool = True,
                fps: float = 30.0, max_frames: int | None = None, snapshot: bool = False,
                capture: Callable[[str], dict] | None = None, press: bool = False) -> WindowStats:
    """Show each of `hub.screens` in its own window until quit, `hub.close()` or `max_frames`.

    A newer frame is presented as soon as the hub has it, but a screen is presented at most
    `fps` times a second (with 25% slack for a jittery publisher); frames published faster are
    skipped, the newest wins. Call it from the main thread.

    Args:
        hub: where the frames come from and the key controls go.
        monitors: screen name -> SDL display index; default: screen i on display i, wrapping
            round when there are fewer displays than screens.
        fullscreen: desktop full screen (cursor hidden), else windows side by side.
        fps: the most presents per second per screen; also how often keys are read when idle.
        max_frames: return once every screen has presented this many frames (tests, demos).
        snapshot: read each window's pixels back at exit into WindowStats.snapshots.
        capture: screen -> summary of a capture, for the "c" key (in a thread); None: no key.
        press: a peepshow: space, Enter, a click or a touch sends "press" (not pause).

    Returns:
        WindowStats: frames presented, intervals, renderer kind, why it stopped.

    Example:
        >>> hub = FrameHub(["feminine", "masculine"], controls=installation)  # a display  # doctest: +SKIP
        >>> threading.Thread(target=engine.run, args=(hub,), daemon=True).start()  # a display  # doctest: +SKIP
        >>> run_windows(hub, monitors={"feminine": 0, "masculine": 1})  # a display  # doctest: +SKIP
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    pygame, _ = _pygame()
    # Two full-screen windows on two monitors: focusing one must not minimise the other.
    os.environ.setdefault("SDL_VIDEO_MINIMIZE_ON_FOCUS_LOSS", "0")
    started_here = not pygame.display.get_init()
    pygame.display.init()  # (SDL keeps the screensaver off while it runs)
    wake = threading.Event()
    unsubscribe = hub.subscribe(lambda frame: wake.set())
    windows: dict[str, ScreenWindow] = {}
    try:
        displays = choose_displays(hub.screens, monitors, pygame.display.get_num_displays())
        windows = _open_windows(hub.screens, displays, fullscreen)
        pygame.mouse.set_visible(not fullscreen)
        stats = WindowStats(presented={s: 0 for s in windows}, intervals={s: [] for s in windows},
                            shown={s: -1 for s in windows},
                            renderer=next(iter(windows.values())).kind)
        keys = _Keys(hub, windows, fullscreen, capture, press)
        stats.reason = _loop(hub, windows, keys, wake, fps, max_frames, stats)
        for t in keys.threads:
            t.join(timeout=60)
        stats.captures = keys.captures
        if snapshot:
            stats.snapshots = {s: w.snapshot() for s, w in windows.items()}
        return stats
    finally:
        unsubscribe()
        for w in windows.values():
            w.close()
        pygame.mouse.set_visible(True)
        if started_here:
            pygame.display.quit()


def _loop(hub: FrameHub, windows: dict[str, ScreenWindow], keys: _Keys, wake: threading.Event,
          fps: float, max_frames: int | None, stats: WindowStats) -> str:
    """Present newer frames until something ends the show; returns WindowStats.reason."""
    pygame, _ = _pygame()
    min_gap, idle = 0.75 / fps, 1.0 / fps
    while True:
        wake.clear()  # before looking at the hub: a publish from now on wakes the wait below
        if keys.handle(pygame):
            return "quit"
        if hub.closed:
            return "closed"
        now = time.monotonic()
        due = now + idle
        for s, win in windows.items():
            frame = hub.latest(s)
            if frame is None or frame.index <= stats.shown[s]:
                continue
            if max_frames is not None and stats.presented[s] >= max_frames:
                continue
            if now - win.last_present < min_gap:
                due = min(due, win.last_present + min_gap)
                continue
            before = win.last_present
            win.show(frame)
            stats.presented[s] += 1
            stats.shown[s] = frame.index
            if stats.presented[s] > 1:
                stats.intervals[s].append(win.last_present - before)
        if max_frames is not None and all(n >= max_frames for n in stats.presented.values()):
            return "max_frames"
        wake.wait(max(0.0, due - time.monotonic()))
