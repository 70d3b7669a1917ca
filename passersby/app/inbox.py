"""Requests from other processes to the running installation, through its home directory.

    <home>/running.json        {"pid", "started", "screens", "actions"} while an installation runs
    <home>/inbox/<id>.json     a request, e.g. {"action": "capture", "screen": "feminine"}
    <home>/inbox/<id>.done     the answer: {"ok": true, ...} or {"ok": false, "error": "..."}

`passersby capture SCREEN` (and a physical button's script) writes a request and waits for its
answer; the installation's `Inbox` thread picks requests up in order, runs the handler for
their action and writes the answer. Files are written atomically; the home's permissions are
the access control (the same user, or whoever may write there). Requests older than
`MAX_AGE_S` are answered "expired" instead of run: a press from before a power cut must not
act hours later. A running.json whose process is gone is stale and ignored.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from passersby.atomic import atomic_open

RUNNING = "running.json"
INBOX = "inbox"
MAX_AGE_S = 30.0
POLL_S = 0.1

Handler = Callable[[dict[str, Any]], dict[str, Any]]


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with atomic_open(path, "w") as f:
        f.write(json.dumps(data, sort_keys=True))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def running(home: Path) -> dict[str, Any] | None:
    """The running installation's record in `home`, or None (none, or a stale one)."""
    try:
        info = json.loads((Path(home) / RUNNING).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and _alive(int(info.get("pid", -1))) else None


class Inbox:
    """Answers requests written to <home>/inbox with `handlers[action](request)`, one at a time,
    in a daemon thread; announces itself in <home>/running.json.

    Example:
        >>> with Inbox(home, {"capture": lambda r: capture_summary(inst, r["screen"])}, ["feminine"]):  # a running installation  # doctest: +SKIP
        ...     run_the_show()
    """

    def __init__(self, home: Path, handlers: dict[str, Handler], screens: list[str]) -> None:
        self.home, self.handlers, self.screens = Path(home), dict(handlers), list(screens)
        self.folder = self.home / INBOX
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="passersby-inbox", daemon=True)
        self.answered = 0

    def __enter__(self) -> "Inbox":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for leftover in self.folder.glob(".*.tmp"):  # a killed writer's temporary file
            leftover.unlink(missing_ok=True)
        _write_json(self.home / RUNNING, {"pid": os.getpid(), "started": time.time(), "screens": self.screens,
                                          "actions": sorted(self.handlers)})
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=120)
        path = self.home / RUNNING
        try:
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()
        except (OSError, ValueError):
            pass

    def _run(self) -> None:
        swept = time.monotonic()
        while not self._stop.wait(POLL_S):
            for req in sorted(self.folder.glob("*.json")):  # names start with the sending time (ns)
                self._answer(req)
            if time.monotonic() - swept > 60:  # answers nobody collected (a sender that gave up)
                swept = time.monotonic()
                for done in self.folder.glob("*.done"):
                    try:
                        if time.time() - done.stat().st_mtime > 600:
                            done.unlink()
                    except OSError:
                        pass

    def _answer(self, path: Path) -> None:
        if not path.exists():  # withdrawn by its sender meanwhile
            return
        try:
            request = json.loads(path.read_text())
            if not isinstance(request, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as e:
            answer = {"ok": False, "error": f"unreadable request ({e})"}
        else:
            answer = self._handle(request)
        _write_json(path.with_suffix(".done"), answer)
        path.unlink(missing_ok=True)
        self.answered += 1

    def _handle(self, request: dict[str, Any]) -> dict[str, Any]:
        action = request.get("action")
        if action not in self.handlers:
            return {"ok": False, "error": f"unknown action {action!r}; this installation answers {sorted(self.handlers)}"}
        if time.time() - float(request.get("sent", 0)) > MAX_AGE_S:
            return {"ok": False, "error": f"expired: sent more than {MAX_AGE_S:.0f} s ago"}
        try:
            return {"ok": True, **self.handlers[action](request)}
        except ValueError as e:
            return {"ok": False, "error": str(e)}
        except Exception as e:  # noqa: BLE001 - the caller gets told; the installation runs on
            return {"ok": False, "error": f"{type(e).__name__}: {e}"}


def post(home: Path, request: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
    """Send `request` to the installation running in `home` and wait for its answer.

    Raises:
        ValueError: none runs there, or no answer within `timeout` seconds (the request is
            withdrawn), or the installation does not answer that action.

    Example:
        >>> post(home, {"action": "capture", "screen": "feminine"})  # a running installation  # doctest: +SKIP
        {'ok': True, 'id': '20261201-070500-feminine-42', ...}
    """
    home = Path(home)
    info = running(home)
    if info is None:
        raise ValueError(f"no installation is running in {home}; start one with `passersby show` or `passersby serve` "
                         "(with the same --home)")
    if request.get("action") not in info.get("actions", []):
        raise ValueError(f"the installation in {home} does not answer {request.get('action')!r}")
    path = home / INBOX / f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.json"
    _write_json(path, {**request, "sent": time.time()})
    done = path.with_suffix(".done")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done.exists():
            answer = json.loads(done.read_text())
            done.unlink(missing_ok=True)
            return answer
        time.sleep(POLL_S / 2)
    path.unlink(missing_ok=True)  # withdrawn, unless it is being answered right now
    raise ValueError(f"no answer from the installation in {home} within {timeout:.0f} s")
