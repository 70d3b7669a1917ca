"""`passersby service install|uninstall|status`: start at boot, restart when hung, log to the journal.

    passersby.service            Type=notify, Restart=always, WatchdogSec=30, a start-rate limit;
                                 runs `passersby show` (windows, or the kiosk server without a
                                 display) with this installation's --config and --home
    passersby-kiosk-NAME.service for web-kiosk screens: Chromium in kiosk mode on the screen's
                                 page, with the flags digital-signage installs use

Watchdog contract (`Notifier`): READY=1 once the screens are paced; then WATCHDOG=1 from the
engine's pacer about once a second while the installation is not failing (stream/health.py):
a hung pacer or a screen that shows nothing for longer than the watchdog interval stops the
pings, and systemd restarts the service; a slow frame does not. STOPPING=1 on the way out.
sd_notify messages go through the `sdnotify` library (NOTIFY_SOCKET; a no-op elsewhere).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

import typer

from passersby.atomic import atomic_open

UNIT = "passersby.service"
WATCHDOG_S = 30
# What signage installs pass to Chromium: no dialogs, no "restore pages?" bubble, no updates,
# no pinch or overscroll gestures, no translate or first-run prompts.
KIOSK_FLAGS = ("--kiosk", "--noerrdialogs", "--disable-session-crashed-bubble", "--disable-infobars",
               "--disable-component-update", "--check-for-update-interval=31536000", "--disable-pinch",
               "--overscroll-history-navigation=0", "--disable-features=Translate", "--no-first-run",
               "--autoplay-policy=no-user-gesture-required", "--password-store=basic")

service_app = typer.Typer(no_args_is_help=True, help=(
    "Run the installation as a systemd service: at boot, restarted when it hangs, logs in the journal."
    "\n\nExamples:\n\n    passersby service install --user --config gallery.toml\n\n"
    "    passersby service status --user\n\n    passersby service uninstall --user"))


class Notifier:
    """sd_notify for the service: READY, watchdog pings while healthy, STOPPING.

    Example:
        >>> n = Notifier(engine)  # a running engine under systemd  # doctest: +SKIP
        >>> engine.heartbeat = n.beat  # a running engine under systemd  # doctest: +SKIP
    """

    def __init__(self, engine) -> None:
        import sdnotify

        self.engine, self.sd = engine, sdnotify.SystemdNotifier()
        self.pings = 0

    def ready(self) -> None:
        self.sd.notify("READY=1\nSTATUS=showing")

    def beat(self) -> None:
        """One watchdog ping, unless the installation is failing (then systemd restarts it)."""
        h = self.engine.health()
        if h["status"] != "failing":
            self.sd.notify("WATCHDOG=1")
            self.pings += 1
        else:
            self.sd.notify(f"STATUS=failing: {'; '.join(h['reasons'])[:200]}")

    def stopping(self) -> None:
        self.sd.notify("STOPPING=1")


def unit_dir(user: bool) -> Path:
    """Where systemd reads units: ~/.config/systemd/user, or /etc/systemd/system."""
    if user:
        base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        return Path(base) / "systemd" / "user"
    return Path("/etc/systemd/system")


def service_unit(config: Optional[Path], home: Path, user: bool, command: str = "show") -> str:
    """The text of passersby.service."""
    args = [sys.executable, "-m", "passersby.cli", command, "--home", str(home)]
    if config is not None:
        args += ["--config", str(config)]
    return "\n".join([
        "[Unit]",
        f"Description=passersby: endless, never-repeating portraits ({home})",
        # network-online: an edition console's shared ledger ([ledger] url) is across the network
        *(["Wants=network-online.target", "After=network-online.target graphical.target"] if not user
          else ["After=graphical-session.target"]),
        "StartLimitIntervalSec=600",
        "StartLimitBurst=10",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={shlex.join(args)}",
        "Restart=always",
        "RestartSec=5",
        f"WatchdogSec={WATCHDOG_S}",
        "TimeoutStartSec=300",  # the first start measures the chain and may compile models
        "Environment=PYTHONUNBUFFERED=1",
        f"Environment=PASSERSBY_HOME={home}",
        "",
        "[Install]",
        "WantedBy=" + ("default.target" if user else "multi-user.target"),
        "",
    ])


def kiosk_unit(screen: str, url: str, position: int, profile: Path, browser: str) -> str:
    """A Chromium kiosk on one screen's page (its own profile, left edge at screen `position`)."""
    args = [browser, *KIOSK_FLAGS, f"--user-data-dir={profile}", f"--window-position={position * 1920},0", url]
    return "\n".join([
        "[Unit]",
        f"Description=passersby kiosk browser for screen {screen}",
        f"After={UNIT}",
        f"Wants={UNIT}",
        "",
        "[Service]",
        f"ExecStart={shlex.join(args)}",
        "Restart=always",
        "RestartSec=5",
        "Environment=DISPLAY=:0",
        "",
        "[Install]",
        "WantedBy=graphical-session.target",
        "",
    ])


def _write(path: Path, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def _systemctl(user: bool, *args: str) -> subprocess.CompletedProcess | None:
    if shutil.which("systemctl") is None:
        return None
    return subprocess.run(["systemctl", *(["--user"] if user else []), *args], capture_output=True, text=True)


UNIT_DIR = typer.Option(None, "--unit-dir", help="Write the units here instead of systemd's folder (packaging, tests).")
USER = typer.Option(False, "--user", help="A user service (~/.config/systemd/user; starts at login, or at boot "
                                          "with `loginctl enable-linger`), not a system one (/etc/systemd/system).")


@service_app.command("install")
def install_command(
    user: bool = USER,
    kiosk: bool = typer.Option(False, "--kiosk", help="Serve the screens as web pages and start a Chromium kiosk "
                                                      "per screen (else: `show`, full-screen windows)."),
    browser: str = typer.Option("chromium", "--browser", help="The kiosk browser's command."),
    unit_dir_: Optional[Path] = UNIT_DIR,
    enable: bool = typer.Option(True, "--enable/--no-enable", help="Enable and start it now (systemctl)."),
    config: Optional[Path] = typer.Option(None, "--config", help="The installation's settings file (made absolute)."),
    home: Optional[Path] = typer.Option(None, "--home", help="The installation's home (made absolute)."),
) -> None:
    """Install passersby as a systemd service (and kiosk browsers with --kiosk).

    Examples:
        passersby service install --user
        passersby service install --config /srv/gallery/passersby.toml --home /srv/gallery
        passersby service install --user --kiosk
    """
    from passersby.app.cli_common import fail as _fail
    from passersby.settings import SettingsError, settings_and_home

    try:
        settings, home_dir = settings_and_home(config, home)
    except SettingsError as e:
        _fail(e)
    folder = unit_dir_ or unit_dir(user)
    cfg = config.resolve() if config else None
    written = [folder / UNIT]
    _write(folder / UNIT, service_unit(cfg, home_dir.resolve(), user, "serve" if kiosk else "show"))
    if kiosk:
        for i, sc in enumerate(settings.screens):
            url = f"http://127.0.0.1:{settings.web.port}/screen/{sc.name}"
            path = folder / f"passersby-kiosk-{sc.name}.service"
            _write(path, kiosk_unit(sc.name, url, sc.monitor, home_dir.resolve() / "kiosk-profiles" / sc.name, browser))
            written.append(path)
    for p in written:
        typer.echo(f"wrote {p}")
    if enable and unit_dir_ is None:
        names = [p.name for p in written]
        for args in (("daemon-reload",), ("enable", "--now", *names)):
            r = _systemctl(user, *args)
            if r is None or r.returncode != 0:
                why = "no systemctl here" if r is None else (r.stderr.strip().splitlines() or ["failed"])[-1]
                typer.echo(f"could not run systemctl {' '.join(args)} ({why}); run it yourself:\n"
                           f"  systemctl {'--user ' if user else ''}daemon-reload && "
                           f"systemctl {'--user ' if user else ''}enable --now {' '.join(names)}")
                break
        else:
            typer.echo("enabled and started; logs: journalctl " + ("--user " if user else "") + "-u passersby -f")


@service_app.command("uninstall")
def uninstall_command(user: bool = USER, unit_dir_: Optional[Path] = UNIT_DIR) -> None:
    """Stop, disable and remove the service and its kiosk browsers.

    Examples:
        passersby service uninstall --user
    """
    folder = unit_dir_ or unit_dir(user)
    units = [p for p in [folder / UNIT, *sorted(folder.glob("passersby-kiosk-*.service"))] if p.exists()]
    if not units:
        typer.echo(f"no passersby service in {folder}")
        return
    if unit_dir_ is None:
        _systemctl(user, "disable", "--now", *[p.name for p in units])
    for p in units:
        p.unlink()
        typer.echo(f"removed {p}")
    if unit_dir_ is None:
        _systemctl(user, "daemon-reload")


@service_app.command("status")
def status_command(user: bool = USER, unit_dir_: Optional[Path] = UNIT_DIR) -> None:
    """Whether the service is installed, and systemd's view of it.

    Examples:
        passersby service status --user
    """
    folder = unit_dir_ or unit_dir(user)
    if not (folder / UNIT).exists():
        typer.echo(f"not installed ({folder / UNIT} does not exist); `passersby service install`")
        raise typer.Exit(1)
    typer.echo(f"installed: {folder / UNIT}")
    r = _systemctl(user, "status", "--no-pager", UNIT) if unit_dir_ is None else None
    if r is not None:
        typer.echo(r.stdout.strip() or r.stderr.strip())
