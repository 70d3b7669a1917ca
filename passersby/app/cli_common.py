"""What the app's commands share: their common options, settings from flags, one-line errors,
building and serving an installation, and its opening hours.

`passersby show | serve | render` (stream_cli.py), `peep`, `gallery`, `capture`, `print` and
`service` import these. They lived in stream_cli.py, which also imports app/service.py (for
`service_notify`), so service.py taking `fail` from it closed a circle; here they import nothing
of the app's command modules, and every arrow into this module runs one way.

Example:
    >>> settings = resolve_settings(None, None, walk__tempo=4.0)  # doctest: +SKIP
    >>> inst = build_installation(settings, None)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path
from typing import Any, NoReturn, Optional

import typer

from passersby.settings import flag_help

# A flag that overrides a setting takes its help from the setting's declaration (flag_help):
# one text for the file, `config show`, docs/settings.md and --help.
CONFIG = typer.Option(None, "--config", help="Settings file (default: ./passersby.toml, else <home>/passersby.toml).")
HOME = typer.Option(None, "--home", help="Installation home (default: $PASSERSBY_HOME, else the per-user data dir).")
MODEL = typer.Option(None, "--model", help=flag_help("model.path"))
RUNTIME = typer.Option(None, "--runtime", help=flag_help("model.runtime"))
STYLE = typer.Option(None, "--style", help=flag_help("walk.style"))
TEMPO = typer.Option(None, "--tempo", help=flag_help("walk.tempo"))
FPS = typer.Option(None, "--fps", help=flag_help("walk.fps"))
SCREENS = typer.Option(None, "--screens", help="Comma-separated LABEL[:MONITOR] list, e.g. 'masculine:0,feminine:1' "
                                               "or 'feminine' (one screen); label 'any' = unsteered.")
PORT = typer.Option(None, "--port", help=flag_help("web.port"))
HOST = typer.Option(None, "--host", help=flag_help("web.host") + " The token still guards controls.")
MODE = typer.Option(None, "--mode", help="Every screen's source: walk (latent walk) or feedback (the machine "
                                         "repaints its own output); default: each screen's setting.")
DRIFT = typer.Option(None, "--drift", help=flag_help("feedback.drift"))
ENHANCER = typer.Option(None, "--enhancer", help="The learned upscaler. " + flag_help("enhancer.mode"))


def fail(e: Exception) -> NoReturn:
    """End the command with one `error: ...` line on stderr and exit status 1 (expected failures
    are not tracebacks).

    Example:
        >>> fail(ValueError("--port: must be in 0..65535"))  # doctest: +SKIP
    """
    typer.secho(f"error: {e}", fg="red", err=True)
    raise typer.Exit(1)


def parse_screens(spec: str) -> list[dict[str, Any]]:
    """--screens 'masculine:0,feminine:1' -> [[screens]] tables (label 'any' = unsteered).

    Example:
        >>> parse_screens("feminine,any:2")
        [{'name': 'feminine', 'label': 'feminine', 'monitor': 0}, {'name': 'screen2', 'label': '', 'monitor': 2}]
    """
    out = []
    for i, part in enumerate(p.strip() for p in spec.split(",") if p.strip()):
        label, _, monitor = part.partition(":")
        try:
            mon = int(monitor) if monitor else i
        except ValueError:
            raise typer.BadParameter(f"--screens: monitor in {part!r} must be an integer") from None
        label = "" if label == "any" else label
        out.append({"name": label or f"screen{i + 1}", "label": label, "monitor": mon})
    if not out:
        raise typer.BadParameter("--screens: give at least one screen")
    return out


def resolve_settings(config: Optional[Path], home: Optional[Path], **flags: Any):
    """The settings a command runs with: the file (settings.load_settings), then its flags; a bad
    value ends the command with one `error:` line.

    Args:
        config, home: --config and --home.
        flags: `section__key=value` overrides (None: not given), plus `screens` (a --screens
            list) and `mode` (every screen's source).

    Example:
        >>> resolve_settings(None, None, walk__tempo=4.0).walk.tempo  # doctest: +SKIP
        4.0
    """
    from passersby.home import resolve_home
    from passersby.settings import SettingsError, load_settings

    screens = flags.pop("screens", None)
    mode = flags.pop("mode", None)
    overrides = {k.replace("__", "."): v for k, v in flags.items()}
    try:
        s = load_settings(config, overrides, home=resolve_home(home))
        import dataclasses

        from passersby.settings import ScreenSettings

        if screens:
            s = dataclasses.replace(s, screens=tuple(ScreenSettings(**t) for t in parse_screens(screens)))
        if mode:  # replace() re-runs the settings' checks (an unknown mode is refused there)
            s = dataclasses.replace(s, screens=tuple(dataclasses.replace(sc, source=mode) for sc in s.screens))
        return s
    except (SettingsError, ValueError) as e:
        fail(e)


def build_installation(settings, home: Optional[Path], dry_ledger: bool = False, realtime: bool = True):
    """app/installation.build, with a damaged model, a ledger it cannot open or a bad value said
    in one `error:` line.

    Args:
        settings: from resolve_settings.
        home: --home (None: the settings' or the default home).
        dry_ledger: a throwaway ledger (render --dry-ledger).
        realtime: choose the chain this machine keeps up with (False: the largest).

    Example:
        >>> inst = build_installation(resolve_settings(None, None), None)  # doctest: +SKIP
    """
    from passersby.checkpoint import CheckpointError
    from passersby.app.installation import build
    from passersby.stream.ledger import LedgerError

    from passersby.app.capture import capture_summary
    from passersby.app.controls import ControlDesk

    try:
        inst = build(settings, home, dry_ledger=dry_ledger, realtime=realtime)
    except (CheckpointError, LedgerError, ValueError) as e:
        fail(e)
    # Every control (overview, /api/control, keys, OSC, MIDI) goes through the desk (app/controls.py).
    inst.desk = ControlDesk(inst.engine, capture=lambda screen: capture_summary(inst, screen))
    return inst


@contextlib.contextmanager
def control_surfaces(inst, settings):
    """While the block runs: the OSC server ([osc] port), OSC out ([osc] targets) and MIDI in
    ([midi] port), each as configured, all through the installation's control desk. A port it
    cannot open is one `error:` line (MIDI: a warning, the show goes on without it).

    Args:
        inst: the built installation (its `desk`), started.
        settings: its settings ([osc], [midi]).

    Example:
        >>> with control_surfaces(inst, settings): serve_until_quit(inst, settings, "serve")  # doctest: +SKIP
    """
    from passersby.settings import osc_targets

    opened: list[Any] = []
    try:
        if settings.osc.port:
            from passersby.app.osc import OscServer

            try:
                server = OscServer(inst.desk, settings.osc.host, settings.osc.port, settings.osc.max_rate).start()
            except OSError as e:
                fail(OSError(f"osc: cannot listen on {settings.osc.host}:{settings.osc.port} ({e.strerror}); "
                             "set [osc] port"))
            opened.append(server)
            inst.engine.reporters["osc_in"] = server.stats  # read, refused, malformed, dropped: in the status
            typer.echo(f"  OSC in: udp://{settings.osc.host}:{server.port} (/passersby/<screen>/<control>, docs/osc.md)")
        targets = osc_targets(settings)
        if targets:
            from passersby.app.osc_out import OscOut

            out = OscOut(inst.engine.hub, targets, settings.osc.out_rate).start()
            inst.desk.listeners.append(out.on_control)
            opened.append(out)
            inst.engine.reporters["osc_out"] = out.stats
            typer.echo(f"  OSC out: {settings.osc.targets}")
        if settings.midi.port:
            opened += _midi(inst, settings)
        yield opened
    finally:
        for thing in reversed(opened):
            thing.stop() if hasattr(thing, "stop") else thing.close()


def _midi(inst, settings) -> list[Any]:
    """[midi] port through its mapping file; a warning (not an end) when MIDI is not there."""
    from passersby.app.midi import Mapping, MidiIn

    path = Path(settings.midi.mapping) if settings.midi.mapping else Path(inst.home) / "midi.toml"
    try:
        midi = MidiIn(Mapping.read(path, inst.engine.screens), inst.desk).open(settings.midi.port)
    except ValueError as e:
        typer.secho(f"warning: MIDI off: {e}", fg="yellow", err=True)
        return []
    typer.echo(f"  MIDI in: {settings.midi.port} ({len(midi.mapping.bindings)} bindings from {path})")
    return [midi]


@contextlib.contextmanager
def one_line_errors():
    """Expected failures while the installation runs (a full disk, a ledger it cannot write,
    a damaged model file) end the command with one `error:` line and exit 1, not a traceback."""
    from passersby.checkpoint import CheckpointError
    from passersby.stream.ledger import LedgerError

    try:
        yield
    except (LedgerError, CheckpointError, OSError) as e:
        fail(e)


def quit_on_signals(engine) -> None:
    """SIGTERM and SIGINT (Ctrl-C) end the show cleanly: the engine quits and its hub wakes its sinks.

    Args:
        engine: the installation's stream/engine.Engine.

    Example:
        >>> quit_on_signals(inst.engine)  # doctest: +SKIP
    """
    def handler(signum, frame):  # noqa: ARG001 - signal API
        engine.quit_event.set()
        engine.hub.close()  # wakes the window loop and the web server's waiters

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def serve_until_quit(inst, settings, what: str) -> None:
    """Serve the installation's screens with the kiosk web server until it quits (a port it
    cannot listen on is one `error:` line).

    Args:
        inst: the built installation (app/installation.Installation), started.
        settings: its settings ([web] host, port, token, jpeg_quality).
        what: who serves, for the first line printed.

    Example:
        >>> serve_until_quit(inst, settings, "passersby serve")  # doctest: +SKIP
    """
    from passersby.web.server import KioskServer

    engine = inst.engine
    from passersby.app.capture import capture_summary

    server = KioskServer(engine.hub, host=settings.web.host, port=settings.web.port,
                         token=settings.web.token or None, jpeg_quality=settings.web.jpeg_quality,
                         capture=lambda screen: capture_summary(inst, screen))
    try:
        server.start()
    except OSError as e:
        fail(OSError(f"cannot listen on {settings.web.host}:{settings.web.port} ({e.strerror}); try --port"))
    typer.echo(f"{what}: serving the installation on {server.url}")
    for name in engine.screens:
        typer.echo(f"  screen {name}: {server.url}screen/{name}")
    typer.echo(f"  overview with controls: {server.url}?token={server.token}")
    typer.echo("  Ctrl-C stops.")
    try:
        while not engine.quit_event.wait(0.5):
            engine.check()
    finally:
        server.stop()


@contextlib.contextmanager
def opening_hours(inst, settings):
    """While the block runs: sleep and wake the engine by [schedule] (stream/schedule.py), the
    monitors off and on where the display allows it.

    Args:
        inst: the built installation, started.
        settings: its settings ([schedule]).

    Example:
        >>> with opening_hours(inst, settings): serve_until_quit(inst, settings, "serve")  # doctest: +SKIP
    """
    from passersby.settings import opening_hours as schedule_of

    schedule = schedule_of(settings)
    if schedule is None:
        yield None
        return
    from passersby.outputs.display_power import set_monitors
    from passersby.stream.schedule import OpeningHours

    hours = OpeningHours(inst.engine, schedule, on_change=set_monitors).start()
    typer.echo(f"opening hours: {settings.schedule.days} {settings.schedule.hours} ({settings.schedule.timezone}); "
               f"now {'open' if hours.open else inst.engine.closed_why}")
    try:
        yield hours
    finally:
        hours.stop()
