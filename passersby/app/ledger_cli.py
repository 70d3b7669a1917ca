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


def _spec(config: Optional[Path], home: Optional[Path]):
    """The installation's ledger spec (settings' [ledger] and home, as `show` uses them)."""
    from passersby.home import ledger_spec
    from passersby.settings import SettingsError, settings_and_home

    try:
        settings, home_dir = settings_and_home(config, home)
    except SettingsError as e:
        _fail(e)
    return ledger_spec(settings, home_dir)


def _fail(e: Exception) -> None:
    typer.secho(f"error: {e}", fg="red", err=True)
    raise typer.Exit(1)


def _open(config: Optional[Path], home: Optional[Path], read_only: bool = True):
    """The ledger of the installation the settings describe (the same home as `show`), read-only:
    stats, check and export only read, so they work on a full disk and change nothing."""
    from passersby.stream.ledger import LedgerError

    try:
        return _spec(config, home).open_existing(read_only=read_only)
    except LedgerError as e:
        _fail(e)


def _when(t: float | None) -> str:
    return "—" if t is None else dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


@ledger_app.command("stats")
def stats_command(home: Optional[Path] = HOME, config: Optional[Path] = CONFIG) -> None:
    """How many faces have been shown, per screen, and since when.

    Example:
        passersby ledger stats --home /srv/gallery
    """
    from passersby.stream.ledger import LedgerError

    with _open(config, home) as ledger:
        try:
            st = ledger.stats()
            leases = ledger.leases() if hasattr(ledger, "leases") else None
        except LedgerError as e:
            _fail(e)
    typer.echo(f"ledger: {ledger.where}")
    # Shown and leased apart: an edition's console claims ahead, and a lease is not a face shown.
    ahead = "".join([f", {st.leased} leased ahead (not shown yet)" if st.leased else "",
                     f", {st.returned} returned unshown" if st.returned else ""])
    typer.echo(f"faces shown: {st.shown}{ahead} (first claim {_when(st.first_shown)}, last {_when(st.last_shown)})")
    for name, ch in sorted(st.channels.items()):
        held = "".join([f", {ch.leased} leased ahead" if ch.leased else "", f", {ch.returned} returned" if ch.returned else ""])
        typer.echo(f"  {name}: {ch.shown} shown{held}, {ch.rejected} proposals rejected as too close")
    typer.echo(f"size: {st.file_bytes / 1e6:.1f} MB")
    if leases:
        mirror, edition = (leases.get("mirror"), leases.get("edition")) if "mirror" in leases else (None, leases)
        if mirror is not None:
            typer.echo(f"this console's leases: {mirror['leased']} unused, {mirror['shown']} shown, "
                       f"{mirror['returned']} returned, {mirror['unreported']} not yet reported")
        for console, n in sorted((edition or {}).items()):
            typer.echo(f"  console {console}: {n['leased']} leased, {n['shown']} shown, {n['returned']} returned")


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
    for note in result.notes:
        typer.secho(f"note: {note}", fg="yellow", err=True)
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


@ledger_app.command("migrate")
def migrate_command(
    source: str = typer.Argument(..., help="Ledger to copy: an SQLite file or a postgresql:// URL."),
    target: str = typer.Argument(..., help="New, empty ledger: a postgresql:// URL or an SQLite file."),
    console: Optional[str] = typer.Option(None, "--console", help="Console whose channels these are "
                                          "(default: [ledger] console, else the host name)."),
    home: Optional[Path] = HOME,
    config: Optional[Path] = CONFIG,
) -> None:
    """Copy a whole ledger between SQLite and PostgreSQL, verified anchor by anchor.

    Then set [ledger] url (or clear it) in passersby.toml. Stop the installation first.

    Examples:
        passersby ledger migrate ~/.local/share/passersby/ledger.sqlite postgresql://ed@db/edition --console gallery-1

        passersby ledger migrate postgresql://ed@db/edition /srv/back/ledger.sqlite --console gallery-1
    """
    from passersby.app.migrate import migrate
    from passersby.stream.ledger import LedgerError

    name = console or _spec(config, home).console_name
    try:
        report = migrate(source, target, name)
    except LedgerError as e:
        _fail(e)
    typer.echo(f"copied {report.anchors} faces and {report.channels} channels (console {name}) "
               f"from {report.source} to {report.target}; read back equal, audit ok")


@ledger_app.command("return")
def return_command(
    screen: Optional[str] = typer.Argument(None, help="Only this screen's leases (default: all)."),
    home: Optional[Path] = HOME,
    config: Optional[Path] = CONFIG,
) -> None:
    """Give this console's unused leases back to the edition's shared ledger (e.g. before retiring it).

    Each is marked returned here first (it can no longer be shown), then reported. Stop the
    installation first.

    Example:
        passersby ledger return
    """
    from passersby.stream.ledger import LedgerError

    spec = _spec(config, home)
    if not spec.shared:
        _fail(LedgerError("this installation's ledger is not shared ([ledger] url is empty); nothing is leased"))
    with _open(config, home, read_only=False) as ledger:  # it marks leases returned
        if not hasattr(ledger, "give_back"):
            _fail(LedgerError(f"{spec.mirror}: no lease mirror here; nothing to return"))
        n = ledger.give_back()
        done = ledger.sync()
    typer.echo(f"returned {n} unused leases" + ("" if done else " (reported when the shared ledger answers again)"))
