"""`passersby ledger stats|check|export`: what the never-repeat ledger holds, and its health."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Optional

import typer

ledger_app = typer.Typer(
    no_args_is_help=True,
    help="The do-not-use ledger of every face shown.\n\nExamples:\n\n    passersby ledger stats --home /srv/gallery\n\n    passersby ledger check --deep",
)

HOME = typer.Option(None, "--home", help="Installation home (default: stream.home of the settings, "
                                         "$PASSERSBY_HOME, else the per-user data dir).")
CONFIG = typer.Option(None, "--config", help="Settings file (default: ./passersby.toml, else <home>/passersby.toml).")


def _open(config: Optional[Path], home: Optional[Path]):
    """The ledger of the installation the settings describe (the same home as `show`)."""
    from passersby.home import ledger_path
    from passersby.settings import SettingsError, settings_and_home
    from passersby.stream.ledger import Ledger, LedgerError

    try:
        _, home_dir = settings_and_home(config, home)
        return Ledger.open_existing(ledger_path(home_dir))
    except (LedgerError, SettingsError) as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        raise typer.Exit(1)


def _when(t: float | None) -> str:
    return "—" if t is None else dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


@ledger_app.command("stats")
def stats_command(home: Optional[Path] = HOME, config: Optional[Path] = CONFIG) -> None:
    """How many faces have been shown, per screen, and since when.

    Example:
        passersby ledger stats --home /srv/gallery
    """
    with _open(config, home) as ledger:
        st = ledger.stats()
    typer.echo(f"ledger: {ledger.path}")
    typer.echo(f"faces shown: {st.count} (first {_when(st.first_shown)}, last {_when(st.last_shown)})")
    for name, ch in sorted(st.channels.items()):
        typer.echo(f"  {name}: {ch.count} shown, {ch.rejected} proposals rejected as too close")
    typer.echo(f"file size: {st.file_bytes / 1e6:.1f} MB")


@ledger_app.command("check")
def check_command(
    home: Optional[Path] = HOME,
    config: Optional[Path] = CONFIG,
    deep: bool = typer.Option(False, "--deep", help="Also recompute every search key (slow: ~30 s per million)."),
) -> None:
    """Integrity of the ledger: SQLite integrity, counters, no duplicate, every stored face intact.

    Example:
        passersby ledger check --deep
    """
    with _open(config, home) as ledger:
        result = ledger.check(deep=deep)
    if result.ok:
        typer.echo(f"ok: {result.count} faces, no problem found")
        return
    for p in result.problems:
        typer.secho(f"problem: {p}", fg="red", err=True)
    raise typer.Exit(1)


@ledger_app.command("export")
def export_command(
    out: Path = typer.Argument(..., help="JSON Lines file to write (atomically)."),
    home: Optional[Path] = HOME,
    config: Optional[Path] = CONFIG,
) -> None:
    """Export every shown face (id, screen, time, model, exact latent) as JSON Lines.

    Example:
        passersby ledger export shown.jsonl
    """
    from passersby.stream.ledger import LedgerError

    with _open(config, home) as ledger:
        try:
            n = ledger.export(out)
        except LedgerError as e:
            typer.secho(f"error: {e}", fg="red", err=True)
            raise typer.Exit(1)
    typer.echo(f"wrote {n} faces to {out}")
