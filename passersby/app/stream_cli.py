"""`passersby show | serve | render | config show`: the installation's commands."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Optional

import typer

from passersby.app.cli_common import (CONFIG, DRIFT, ENHANCER, FPS, HOME, HOST, MODE, MODEL, PORT, RUNTIME, SCREENS,
                                      STYLE, TEMPO, build_installation, control_surfaces, fail, one_line_errors,
                                      opening_hours, quit_on_signals, resolve_settings, serve_until_quit)

@contextlib.contextmanager
def service_notify(inst):
    """Under systemd (NOTIFY_SOCKET set): READY once paced, watchdog pings from the pacer while
    healthy, STOPPING at the end (app/service.py). Elsewhere: nothing."""
    if not os.environ.get("NOTIFY_SOCKET"):
        yield None
        return
    from passersby.app.service import Notifier

    n = Notifier(inst.engine)
    inst.engine.heartbeat = n.beat
    n.ready()
    try:
        yield n
    finally:
        n.stopping()


def _inbox(inst):
    """Requests from `passersby capture` (app/inbox.py) for this running installation."""
    from passersby.app.capture import capture_summary
    from passersby.app.inbox import Inbox

    return Inbox(inst.home, {"capture": lambda req: capture_summary(inst, str(req.get("screen"))),
                             "health": lambda req: inst.engine.health(),
                             "controls": lambda req: inst.desk.report()}, inst.engine.screens)


def show_command(config: Optional[Path] = CONFIG, home: Optional[Path] = HOME, model: Optional[Path] = MODEL,
                 runtime: Optional[str] = RUNTIME, style: Optional[str] = STYLE, tempo: Optional[float] = TEMPO,
                 fps: Optional[float] = FPS, screens: Optional[str] = SCREENS,
                 windowed: bool = typer.Option(False, "--windowed", help="Windows instead of full screen."),
                 port: Optional[int] = PORT, host: Optional[str] = HOST, mode: Optional[str] = MODE,
                 drift: Optional[float] = DRIFT, enhancer: Optional[str] = ENHANCER) -> None:
    """The installation: endless, never-repeating morphing faces, one window per screen.

    With a display: full-screen windows on the chosen monitors (keys: space pause, n next face,
    c capture the face on that screen, f fullscreen, q quit). Without one: serves the screens on http://127.0.0.1:PORT and says so.

    Examples:
        passersby show
        passersby show --screens feminine --windowed
        passersby show --mode feedback --drift 0.7
        passersby show --enhancer on
        passersby show --config gallery.toml --home /srv/gallery
    """
    from passersby.outputs.window import display_available

    settings = resolve_settings(config, home, model__path=str(model) if model else None, model__runtime=runtime,
                         walk__style=style, walk__tempo=tempo, walk__fps=fps, screens=screens,
                         window__fullscreen=False if windowed else None, web__port=port, web__host=host,
                         mode=mode, feedback__drift=drift, enhancer__mode=enhancer)
    inst = build_installation(settings, home)
    engine = inst.engine
    quit_on_signals(engine)
    try:
        with one_line_errors():
            engine.start()
            with _inbox(inst), opening_hours(inst, settings), service_notify(inst), control_surfaces(inst, settings):
                if display_available():
                    from passersby.app.capture import capture_summary
                    from passersby.outputs.window import run_windows

                    typer.echo(f"showing {len(engine.screens)} screen(s) ({inst.model.hash}, {inst.runtime}); q quits")
                    run_windows(engine.hub, {s.name: s.monitor for s in settings.screens},
                                fullscreen=settings.window.fullscreen, fps=settings.walk.fps,
                                capture=lambda screen: capture_summary(inst, screen))
                else:
                    serve_until_quit(inst, settings, "no display found")
            engine.check()
    finally:
        inst.close()
    _print_summary(engine)


def serve_command(config: Optional[Path] = CONFIG, home: Optional[Path] = HOME, model: Optional[Path] = MODEL,
                  runtime: Optional[str] = RUNTIME, style: Optional[str] = STYLE, tempo: Optional[float] = TEMPO,
                  fps: Optional[float] = FPS, screens: Optional[str] = SCREENS,
                  port: Optional[int] = PORT, host: Optional[str] = HOST,
                  token: Optional[str] = typer.Option(None, "--token", help="Control token (default: random, printed)."),
                  mode: Optional[str] = MODE, drift: Optional[float] = DRIFT,
                  enhancer: Optional[str] = ENHANCER) -> None:
    """The web kiosk: a page per screen for kiosk browsers, and an overview with status.

    Frames are pushed over WebSockets; control actions (pause, next, quit) need the token.

    Examples:
        passersby serve
        passersby serve --port 9000 --screens masculine,feminine
        passersby serve --host 0.0.0.0 --token "$(cat /etc/passersby-token)"
        passersby serve --mode feedback
    """
    settings = resolve_settings(config, home, model__path=str(model) if model else None, model__runtime=runtime,
                         walk__style=style, walk__tempo=tempo, walk__fps=fps, screens=screens,
                         web__port=port, web__host=host, web__token=token, mode=mode, feedback__drift=drift, enhancer__mode=enhancer)
    inst = build_installation(settings, home)
    quit_on_signals(inst.engine)
    try:
        with one_line_errors():
            inst.engine.start()
            with _inbox(inst), opening_hours(inst, settings), service_notify(inst), control_surfaces(inst, settings):
                serve_until_quit(inst, settings, "passersby serve")
    finally:
        inst.close()
    _print_summary(inst.engine)


def render_command(seconds: float = typer.Option(10.0, "--seconds", min=0.05, help="Length of the video."),
                   out: Optional[Path] = typer.Option(None, "--out", help="Video file (.mp4), both screens side by side."),
                   frames: Optional[Path] = typer.Option(None, "--frames", help="Folder of PNG frames (+ frames.jsonl keys)."),
                   per_screen: bool = typer.Option(False, "--per-screen", help="One video per screen: OUT-NAME.mp4."),
                   dry_ledger: bool = typer.Option(False, "--dry-ledger", help="Do not use up faces: a throwaway ledger."),
                   config: Optional[Path] = CONFIG, home: Optional[Path] = HOME, model: Optional[Path] = MODEL,
                   runtime: Optional[str] = RUNTIME, style: Optional[str] = STYLE, tempo: Optional[float] = TEMPO,
                   fps: Optional[float] = FPS, screens: Optional[str] = SCREENS,
                   seed: Optional[int] = typer.Option(None, "--seed", help="Seed of a new ledger's RNGs (with --dry-ledger: reproducible videos)."),
                   mode: Optional[str] = MODE, drift: Optional[float] = DRIFT,
                  enhancer: Optional[str] = ENHANCER) -> None:
    """Render the stream headless to an H.264 video (and/or PNG frames): same engine, same ledger.

    Examples:
        passersby render --seconds 30 --out passersby.mp4
        passersby render --seconds 10 --out clip.mp4 --per-screen --dry-ledger --seed 1
        passersby render --seconds 2 --frames frames/ --screens feminine
        passersby render --seconds 30 --out loop.mp4 --mode feedback --dry-ledger --seed 1
    """
    from passersby.app.render import render_stream

    if out is None and frames is None:
        raise typer.BadParameter("give --out video.mp4 and/or --frames DIR")
    settings = resolve_settings(config, home, model__path=str(model) if model else None, model__runtime=runtime,
                         walk__style=style, walk__tempo=tempo, walk__fps=fps, screens=screens, stream__seed=seed,
                         mode=mode, feedback__drift=drift, enhancer__mode=enhancer)
    inst = build_installation(settings, home, dry_ledger=dry_ledger, realtime=False)  # the largest chain, on any machine
    try:
        with one_line_errors():
            result = render_stream(inst.engine, seconds, out, frames, per_screen)
    except ValueError as e:
        fail(e)
    finally:
        inst.close()
    for path in result.files:
        typer.echo(f"wrote {path}")
    typer.echo(f"{result.frames} frames per screen in {result.wall_s:.1f} s ({result.frames / result.wall_s:.1f} "
               f"frames/s per screen); {result.faces} faces {'(dry ledger)' if dry_ledger else 'recorded in the ledger'}")


def _print_summary(engine) -> None:
    if engine.pacer is None:
        return
    st = engine.status()
    typer.echo(f"shown: {st.get('frames_shown')}; late frames: {st.get('late_frames')}; "
               f"faces this run: {st['faces_this_run']}; ledger: {st['ledger_size']} faces")


def status_command(config: Optional[Path] = CONFIG, home: Optional[Path] = HOME,
                   as_json: bool = typer.Option(False, "--json", help="The health as JSON (what /api/health answers).")) -> None:
    """Is the running installation well? ok / degraded / failing, why, and per screen the age of
    its last frame and its fps; also the ledger and the free disk. Exit 0 ok, 1 degraded or
    failing or not running (for scripts and monitors).

    Examples:
        passersby status
        passersby status --home /srv/gallery --json
    """
    import json

    from passersby.app.inbox import post
    from passersby.settings import SettingsError, settings_and_home

    try:
        _, home_dir = settings_and_home(config, home)
        answer = post(home_dir, {"action": "health"}, timeout=10)
        if not answer.pop("ok", False):
            raise ValueError(f"status: {answer.get('error')}")
    except (SettingsError, ValueError) as e:
        fail(e)
    if as_json:
        typer.echo(json.dumps(answer, indent=2))
    else:
        typer.echo(f"{answer['status']}" + (f": {'; '.join(answer['reasons'])}" if answer["reasons"] else ""))
        for name, sc in answer["screens"].items():
            typer.echo(f"  {name}: last frame {sc['last_frame_age_s']} s ago, {sc['fps']} fps")
        free = answer.get("disk_free_bytes")
        typer.echo(f"  ledger {'ok' if answer['ledger_ok'] else 'NOT OK'}; disk free "
                   f"{'?' if free is None else f'{free / 1024 ** 3:.1f} GiB'}; up {answer['uptime_s']:.0f} s"
                   + ("; paused" if answer.get("paused") else ""))
        mem = answer.get("memory") or {}
        if mem.get("rss_mb") is not None:  # from the first minute (stream/heap.py)
            typer.echo(f"  memory {mem['rss_mb']:.0f} MB" + ("" if mem.get("grown_mb") is None else
                       f", {mem['grown_mb']:+.0f} MB since warm ({mem['warm_rss_mb']:.0f} MB)"))
    if answer["status"] != "ok":
        raise typer.Exit(1)


config_app = typer.Typer(no_args_is_help=True, help="The installation's settings.\n\nExample:\n\n    passersby config show")


@config_app.command("show")
def config_show_command(config: Optional[Path] = CONFIG, home: Optional[Path] = HOME) -> None:
    """Print the resolved settings as a complete passersby.toml (file, then defaults), and, as
    comments at the end, the live values of the installation running in the same home (set by
    OSC, MIDI or the overview's sliders; a restart starts from the file again).

    Examples:
        passersby config show
        passersby config show --config gallery.toml > resolved.toml
        passersby config show --home /srv/gallery | tail -n 8
    """
    from passersby.settings import to_toml

    settings = resolve_settings(config, home)
    typer.echo(to_toml(settings), nl=False)
    typer.echo(_live_values(settings, home), nl=False)


def _live_values(settings, home: Optional[Path]) -> str:
    """The running installation's live values as TOML comments ("" when none runs there)."""
    from passersby.app.inbox import post, running
    from passersby.home import resolve_home

    home_dir = resolve_home(home or (Path(settings.stream.home) if settings.stream.home else None))
    info = running(home_dir)
    if info is None or "controls" not in info.get("actions", []):
        return ""
    try:
        answer = post(home_dir, {"action": "controls"}, timeout=5)
    except ValueError as e:
        return f"\n# live values: the running installation did not answer ({e})\n"
    lines = [f"# live values of the installation running in {home_dir} (pid {info.get('pid')}): set by OSC, MIDI",
             "# or the overview; not in any file, a restart starts from the settings above"]
    for screen, values in (answer.get("values") or {}).items():
        for name, value in values.items():
            lines.append(f"# {'installation' if screen == '*' else screen}.{name} = {_toml_value(value)}")
    lines.append(f"# changes: {answer.get('changes', 0)}, refused: {answer.get('refused', 0)}, last: "
                 f"{(answer.get('last') or {}).get('control', '-')}")
    return "\n" + "\n".join(lines) + "\n"


def _toml_value(v) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else repr(v)
