"""`passersby midi list | learn`: the MIDI ports here, and a mapping file from a controller's knobs."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from passersby.app.cli_common import CONFIG, HOME, fail

midi_app = typer.Typer(no_args_is_help=True, help="MIDI control (the [midi] extra).\n\nExamples:\n\n"
                       "    passersby midi list\n\n    passersby midi learn masculine/drift feminine/drift next --port nano")


@midi_app.command("list")
def list_command() -> None:
    """The MIDI input ports of this machine (for the midi.port setting and `midi learn --port`).

    Examples:
        passersby midi list
    """
    from passersby.app.midi import input_names

    try:
        names = input_names()
    except ValueError as e:
        fail(e)
    for name in names:
        typer.echo(name)
    if not names:
        typer.echo("no MIDI input ports (plug a controller in, or start a virtual one)")


@midi_app.command("learn")
def learn_command(controls: List[str] = typer.Argument(..., help="Control addresses to bind, in order: "
                                                      "<screen>/<control> or <control> (docs/osc.md)."),
                  port: str = typer.Option(..., "--port", help="MIDI input port, its name or a part of it (`midi list`)."),
                  out: Optional[Path] = typer.Option(None, "--out", help="Mapping file to write (default: the "
                                                     "midi.mapping setting, else <home>/midi.toml)."),
                  timeout: float = typer.Option(60.0, "--timeout", min=1.0, help="Seconds to wait for each knob."),
                  config: Optional[Path] = CONFIG, home: Optional[Path] = HOME) -> None:
    """Learn a mapping: for each control named, turn a knob or hit a pad, and it is bound to it.
    Writes the mapping file (TOML) that the installation reads at start when the setting
    midi.port names a port.

    Examples:
        passersby midi learn masculine/drift feminine/drift masculine/next feminine/next --port nanoKONTROL
        passersby midi learn masculine/walk/speed feminine/direction/smile --port "Launch Control" --out knobs.toml
    """
    import queue

    from passersby.app.midi import learn, open_input
    from passersby.settings import SettingsError, settings_and_home

    try:
        settings, home_dir = settings_and_home(config, home)
    except SettingsError as e:
        fail(e)
    target = out or (Path(settings.midi.mapping) if settings.midi.mapping else home_dir / "midi.toml")
    got: queue.Queue = queue.Queue()
    try:
        midi = open_input(port, callback=got.put)
    except ValueError as e:
        fail(e)

    def messages():
        while True:
            try:
                yield got.get(timeout=0.5)
            except queue.Empty:
                yield None  # lets learn() look at its clock

    try:
        mapping = learn((m for m in messages()), controls, [s.name for s in settings.screens], say=typer.echo,
                        timeout=timeout)
    except ValueError as e:
        fail(e)
    finally:
        midi.close()
    mapping.write(target)
    typer.echo(f"wrote {target} ({len(mapping.bindings)} bindings); set port = \"{port}\" in [midi] to use it")
