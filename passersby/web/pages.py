"""The kiosk's HTML pages: templates from static/, filled with a JSON config for their script.

Each page template holds ``{{title}}`` and ``{{config}}``; the config lands in a
``<script type="application/json">`` block that the page's script reads, so no inline script
runs and the Content-Security-Policy can forbid them.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

STATIC = Path(__file__).resolve().parent / "static"
PAGES = ("overview", "screen", "notfound", "gallery")
_SLOT = re.compile(r"\{\{(title|config)\}\}")

# Served with every response. Scripts and styles only from this server; pictures may be blob:
# URLs (how the pages draw frames); no referrer, so a ?token= URL never leaks.
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; img-src 'self' blob: data:; "
                                "connect-src 'self' ws: wss:; object-src 'none'; "
                                "base-uri 'none'; frame-ancestors 'none'"),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def json_for_html(value: Any) -> str:
    """JSON that is safe inside a <script> block (no '</script>' can close it early).

    Example:
        >>> json_for_html({"a": "</script>"})
        '{"a": "\\\\u003c/script\\\\u003e"}'
    """
    text = json.dumps(value, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class Pages:
    """The page templates, read once.

    Args:
        static: folder holding overview.html, screen.html and notfound.html.

    Example:
        >>> Pages().render("screen", "a", {"screen": "a"})[:15]
        '<!doctype html>'
    """

    def __init__(self, static: Path = STATIC) -> None:
        self.templates = {}
        for name in PAGES:
            path = static / f"{name}.html"
            if not path.is_file():
                raise FileNotFoundError(f"kiosk page template missing: {path}")
            self.templates[name] = path.read_text(encoding="utf-8")

    def render(self, page: str, title: str, config: dict[str, Any]) -> str:
        """The HTML of `page` with its title and its script's config filled in."""
        values = {"title": html.escape(title), "config": json_for_html(config)}
        # One pass, so a screen name that happens to read "{{config}}" stays text.
        return _SLOT.sub(lambda m: values[m.group(1)], self.templates[page])
