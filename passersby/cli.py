"""The `passersby` command line: thin wrappers around the package's modules."""

from __future__ import annotations

import typer

app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """passersby: endless, never-repeating generative portraits.

    Examples:
        passersby show
        passersby render --seconds 30 --out passersby.mp4
        passersby sample --n 16 --out grid.png
        passersby prepare ~/portraits data/portraits --size 256
        passersby train data/portraits --out runs/mine --steps 20000
    """


def _register() -> None:
    from passersby.data.cli import hires_command, prepare_command
    from passersby.sample_cli import sample_command
    from passersby.train.cli import train_command
    from passersby.app.ledger_cli import ledger_app
    from passersby.train.direction_cli import direction_command
    from passersby.train.restorer_cli import restorer_command
    from passersby.app.stream_cli import config_app, render_command, serve_command, show_command, status_command
    from passersby.taste.cli import taste_app
    from passersby.app.print_cli import print_command
    from passersby.app.capture_cli import capture_command
    from passersby.app.peep import peep_command
    from passersby.app.gallery import gallery_command
    from passersby.app.service import service_app
    from passersby.app.directions_cli import directions_app
    from passersby.app.midi_cli import midi_app

    app.command("show")(show_command)
    app.command("serve")(serve_command)
    app.command("render")(render_command)
    app.command("status")(status_command)
    app.command("sample")(sample_command)
    app.command("peep")(peep_command)
    app.command("gallery")(gallery_command)
    app.command("capture")(capture_command)
    app.command("print")(print_command)
    app.command("prepare")(prepare_command)
    app.command("hires")(hires_command)
    app.command("train")(train_command)
    app.command("direction")(direction_command)
    app.command("restorer")(restorer_command)
    app.add_typer(ledger_app, name="ledger")
    app.add_typer(config_app, name="config")
    app.add_typer(service_app, name="service")
    app.add_typer(taste_app, name="taste")
    app.add_typer(directions_app, name="directions")
    app.add_typer(midi_app, name="midi")


_register()

if __name__ == "__main__":
    app()
