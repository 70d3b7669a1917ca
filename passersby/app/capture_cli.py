"""`passersby capture SCREEN`: ask the running installation to capture what a screen shows."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from passersby.app.cli_common import CONFIG, HOME


def capture_command(
    screen: str = typer.Argument(..., help="The screen's name, e.g. feminine."),
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds to wait for the capture (a feedback frame is "
                                  "re-rendered from its anchor)."),
    config: Optional[Path] = CONFIG,
    home: Optional[Path] = HOME,
) -> None:
    """Capture the face a running installation shows on SCREEN, re-rendered from its frame key.

    The capture is kept in <home>/captures (picture + key); print it with `passersby print`.

    Examples:
        passersby capture feminine
        passersby capture masculine --home /srv/gallery
    """
    from passersby.app.inbox import post
    from passersby.app.cli_common import fail as _fail, resolve_settings as _settings
    from passersby.home import resolve_home

    settings = _settings(config, home)
    home_dir = resolve_home(home or (Path(settings.stream.home) if settings.stream.home else None))
    try:
        answer = post(home_dir, {"action": "capture", "screen": screen}, timeout)
        if not answer.get("ok"):
            raise ValueError(f"capture {screen}: {answer.get('error')}")
    except ValueError as e:
        _fail(e)
    match = "matches the screen" if answer.get("matches_shown") else "DIFFERS from the screen"
    typer.echo(f"captured {answer['id']} ({answer['quality']}; the re-render {match})")
    typer.echo(f"  {answer['path']}")
