"""The installation's home directory: ledger, RNG state and captures live in one place.

Resolution order: an explicit `--home`, then the `PASSERSBY_HOME` environment variable, then
the per-user data directory (`$XDG_DATA_HOME/passersby`, default `~/.local/share/passersby`).
Two installations with different homes never share state.
"""

from __future__ import annotations

import os
from pathlib import Path

LEDGER_FILE = "ledger.sqlite"


def resolve_home(home: Path | None = None) -> Path:
    """The home directory to use (not created here).

    Example:
        >>> resolve_home(Path("/srv/gallery-a"))
        PosixPath('/srv/gallery-a')
    """
    if home is not None:
        return Path(home).expanduser()
    env = os.environ.get("PASSERSBY_HOME")
    if env:
        return Path(env).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "passersby"


def ledger_path(home: Path | None = None) -> Path:
    return resolve_home(home) / LEDGER_FILE


def ledger_spec(settings, home: Path | None = None):
    """The installation's ledger (stream/ledger.LedgerSpec) from its settings' [ledger] and home.

    Example:
        >>> from passersby.settings import load_settings
        >>> ledger_spec(load_settings(None, search=False), Path("/srv/gallery")).path
        PosixPath('/srv/gallery/ledger.sqlite')
    """
    from passersby.stream.ledger import LedgerSpec

    led = settings.ledger
    return LedgerSpec(ledger_path(home), led.url, led.console, led.lease)
