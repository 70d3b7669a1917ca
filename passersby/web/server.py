"""The web kiosk sink: an aiohttp server in its own thread, showing a FrameHub's screens.

Kiosk browsers open ``/screen/<name>`` (one face, full window); the operator opens the
overview with the token (`KioskServer.control_url`) to watch every screen and pause, skip or
quit. The server runs its own event loop in a daemon thread (web/threaded.py), so the engine's
thread only ever pays for a `call_soon_threadsafe` per frame.
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from passersby.stream.frames import FrameHub
from passersby.web.app import KioskState, make_app
from passersby.web.bridge import FrameBridge
from passersby.web.pages import Pages
from passersby.web.threaded import ThreadedServer, is_loopback, listen_socket, url_host  # noqa: F401 (re-exported)


class KioskServer(ThreadedServer):
    """Serves a FrameHub's screens to browsers; see the module docstring.

    Args:
        hub: the frames, status and controls to serve.
        host: address to listen on; loopback by default. Controls always need the token,
            whatever the address.
        port: TCP port; 0 picks a free one (read it back from `port` after `start`).
        token: the control token; None makes a random one (`secrets.token_urlsafe(16)`).
        jpeg_quality: JPEG quality of the frames sent, 1..100.
        capture: screen -> summary dict of a new capture (POST /api/capture), or None.

    Example:
        >>> with KioskServer(hub, port=0) as server:  # starts a web server  # doctest: +SKIP
        ...     print(server.url, server.control_url)
        http://127.0.0.1:41234/ http://127.0.0.1:41234/?token=...
    """

    kind = "kiosk server"

    def __init__(self, hub: FrameHub, host: str = "127.0.0.1", port: int = 8765, token: str | None = None,
                 jpeg_quality: int = 90, capture=None) -> None:
        if not 1 <= jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be 1..100, got {jpeg_quality}")
        super().__init__(host, port, token)
        self.hub = hub
        self.jpeg_quality = jpeg_quality
        self.capture = capture

    def screen_url(self, screen: str, with_token: bool = False) -> str:
        """The kiosk page of one screen; `with_token` adds ?token= so its keys control."""
        url = f"{self.url}screen/{quote(screen, safe='')}"
        return f"{url}?token={quote(self.token, safe='')}" if with_token else url

    async def setup(self) -> web.Application:
        bridge = FrameBridge(self.hub, self._loop, self.jpeg_quality)
        bridge.start()
        return make_app(KioskState(bridge, self.token, Pages(), capture=self.capture, turned_away=self.turned_away))  # on_shutdown closes sockets and bridge


def control_url(server: KioskServer) -> str:
    """The overview URL with ?token=, for the operator (same as `server.control_url`)."""
    return server.control_url
