"""Fixtures for the web kiosk tests: the synthetic show (synthetic.py) and headless Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest

from .synthetic import Show

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def show():
    s = Show()
    yield s
    s.close()


@pytest.fixture
def fresh(show):
    """The shared show with its control log emptied."""
    show.controls.actions.clear()
    return show


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium through Playwright; fails (not skips) without /usr/bin/chromium.

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


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 800, "height": 600})
    p = context.new_page()
    p.set_default_timeout(10_000)
    yield p
    context.close()
