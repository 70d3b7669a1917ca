"""`passersby peep`: the peepshow box - press, see a face nobody else will ever see.

One screen (ledger channel "peep", its own) whose source is stream/peep.PeepSource, built by
the installation like any screen (the model, its masculine/feminine direction, the taste and
the critic choose the faces; the enhancer paints each one when the installation has it). A
press comes from the window (space, Enter, a click or a touch), the kiosk page (the same, with
?token=), `POST /api/control {"action": "press"}` with the token, or another process:
`passersby peep --press` (e.g. a GPIO script for a physical button) through the home's inbox.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer

from passersby.app.cli_common import CONFIG, HOME, ENHANCER, HOST, MODEL, PORT, RUNTIME
from passersby.settings import flag_help

SCREEN = "peep"


class PressLatency:
    """Seconds from each accepted press to the first published frame of its face (a hub
    subscriber; the source records when each showing's press came, on the same clock)."""

    def __init__(self, source) -> None:
        self.source = source
        self.seconds: list[float] = []
        self._seen: set[int] = set()
        self._lock = threading.Lock()

    def __call__(self, frame) -> None:
        n = frame.key.get("showing")
        if frame.key.get("source") != "peep" or n is None or n in self._seen:
            return
        with self._lock:
            self._seen.add(n)
            pressed = self.source.press_times.get(n)
            if pressed is not None:
                self.seconds.append(frame.shown_at - pressed)

    def summary(self) -> dict[str, Any]:
        s = np.asarray(self.seconds) * 1000
        if not len(s):
            return {"presses_answered": 0}
        return {"presses_answered": len(s), "press_to_face_ms_median": round(float(np.median(s)), 1),
                "press_to_face_ms_max": round(float(s.max()), 1)}


def peep_settings(settings, label: str):
    """The installation's settings with one screen: the peepshow."""
    from passersby.settings import ScreenSettings

    return dataclasses.replace(settings, screens=(ScreenSettings(SCREEN, label, 0, "peep"),))


def _press(inst) -> dict[str, Any]:
    inst.engine.hub.control("press")
    return inst.engine.status()["screen_state"][SCREEN]


def peep_command(
    seconds: Optional[float] = typer.Option(None, "--seconds", help=flag_help("peep.seconds")),
    blank: Optional[str] = typer.Option(None, "--blank", help=flag_help("peep.blank")),
    queue: bool = typer.Option(False, "--queue", help="Queue presses made while a face shows (default: ignore them)."),
    press: bool = typer.Option(False, "--press", help="Press the running peepshow's button (same --home) and exit."),
    label: str = typer.Option("", "--label", help="feminine, masculine, or empty (default) for any face."),
    windowed: bool = typer.Option(False, "--windowed", help="A window instead of full screen."),
    port: Optional[int] = PORT, host: Optional[str] = HOST,
    token: Optional[str] = typer.Option(None, "--token", help="Control token of the kiosk page (default: random, printed)."),
    config: Optional[Path] = CONFIG, home: Optional[Path] = HOME, model: Optional[Path] = MODEL,
    runtime: Optional[str] = RUNTIME, enhancer: Optional[str] = ENHANCER,
) -> None:
    """The peepshow: blank until pressed, then a brand-new face for a few seconds, never again.

    Each face is claimed in the never-repeat ledger (channel "peep") before a pixel of it is
    shown: nobody will ever see it again, also after a crash or a power cut.

    Examples:
        passersby peep
        passersby peep --seconds 5 --blank black --windowed
        passersby peep --press
        passersby peep --queue --label feminine --home /srv/peepshow
    """
    from passersby.app.cli_common import build_installation as _build, one_line_errors
    from passersby.app.cli_common import quit_on_signals as _quit_on_signals, resolve_settings as _settings

    settings = _settings(config, home, model__path=str(model) if model else None, model__runtime=runtime,
                         window__fullscreen=False if windowed else None, web__port=port, web__host=host,
                         web__token=token, peep__seconds=seconds, peep__blank=blank,
                         peep__during="queue" if queue else None, enhancer__mode=enhancer)
    if press:
        return _send_press(settings, home)
    inst = _build(peep_settings(settings, label), home)
    _quit_on_signals(inst.engine)
    latency = PressLatency(inst.engine.producers[0].source)
    unsubscribe = inst.engine.hub.subscribe(latency)
    try:
        with one_line_errors():
            _run(inst, settings)
    finally:
        unsubscribe()
        inst.close()
    state = inst.engine.status()["screen_state"][SCREEN]
    typer.echo(f"faces shown: {state['faces_shown']}; presses: {state['presses']}; {latency.summary()}")


def _run(inst, settings) -> None:
    """Until quit: the window (space, Enter, click or touch press), or the kiosk page."""
    from passersby.app.capture import capture_summary
    from passersby.app.inbox import Inbox
    from passersby.app.cli_common import control_surfaces, opening_hours, serve_until_quit as _serve_until_quit
    from passersby.outputs.window import display_available

    engine = inst.engine
    engine.start()
    handlers = {"press": lambda req: _press(inst), "capture": lambda req: capture_summary(inst, str(req.get("screen"))),
                "health": lambda req: engine.health(), "controls": lambda req: inst.desk.report()}
    # OSC and MIDI as for `show` (a sensor's /passersby/peep/press, a pad), through the control desk.
    with Inbox(inst.home, handlers, engine.screens), opening_hours(inst, settings), control_surfaces(inst, settings):
        if display_available():
            from passersby.outputs.window import run_windows

            typer.echo("peepshow: press space, Enter, click or touch for a face; q quits")
            run_windows(engine.hub, {SCREEN: 0}, fullscreen=settings.window.fullscreen, fps=settings.walk.fps,
                        capture=lambda screen: capture_summary(inst, screen), press=True)
        else:
            _serve_until_quit(inst, settings, "peepshow (no display found)")
    engine.check()


def _send_press(settings, home: Optional[Path]) -> None:
    from passersby.app.inbox import post
    from passersby.app.cli_common import fail as _fail
    from passersby.home import resolve_home

    home_dir = resolve_home(home or (Path(settings.stream.home) if settings.stream.home else None))
    try:
        answer = post(home_dir, {"action": "press"}, timeout=10)
        if not answer.get("ok"):
            raise ValueError(f"press: {answer.get('error')}")
    except ValueError as e:
        _fail(e)
    typer.echo(f"pressed: {answer.get('state')}, faces shown {answer.get('faces_shown')}, presses {answer.get('presses')}")
