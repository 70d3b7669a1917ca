"""Fixtures for the web kiosk tests: the synthetic show (synthetic.py) and headless Chromium."""

from __future__ import annotations

import pytest

from webtest import launch_chromium

from .synthetic import Show

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
    """Headless Debian Chromium (webtest.launch_chromium)."""
    yield from launch_chromium()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 800, "height": 600})
    p = context.new_page()
    p.set_default_timeout(10_000)
    yield p
    context.close()
