"""Helpers shared by the web tests (kiosk and taste app): plain HTTP requests and Chromium.

Importable as `webtest` because pytest puts tests/ (home of the root conftest.py) on sys.path.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# As root, without background networking: this machine's closed network refuses its calls.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def request(url: str, data: bytes | None = None, headers: dict | None = None,
            method: str | None = None, timeout: float = 30) -> tuple[int, bytes, dict]:
    """(status, body, headers) of an HTTP request; error statuses are returned, not raised."""
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def launch_chromium() -> Iterator:
    """Headless Debian Chromium through Playwright, for a module-scoped fixture to yield from;
    fails (not skips) without /usr/bin/chromium: CI installs it.

    Module scope: Playwright's sync API keeps an asyncio loop running in this thread while it is
    open, which would break asyncio.run in tests outside the browser module.
    """
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's chromium "
                    "(apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()
