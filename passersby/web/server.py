"""The web kiosk sink: an aiohttp server in its own thread, showing a FrameHub's screens.

Kiosk browsers open ``/screen/<name>`` (one face, full window); the operator opens the
overview with the token (`KioskServer.control_url`) to watch every screen and pause, skip or
quit. The server runs its own event loop in a daemon thread, so the engine's thread only ever
pays for a `call_soon_threadsafe` per frame.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
import socket
import threading
from urllib.parse import quote

from aiohttp import web

from passersby.stream.frames import FrameHub
from passersby.web.app import KioskState, make_app
from passersby.web.bridge import FrameBridge
from passersby.web.pages import Pages

log = logging.getLogger(__name__)

_START_TIMEOUT_S = 30.0
_WILDCARDS = {"", "0.0.0.0", "::"}


class KioskServer:
    """Serves a FrameHub's screens to browsers; see the module docstring.

    Args:
        hub: the frames, status and controls to serve.
        host: address to listen on; loopback by default. Controls always need the token,
            whatever the address.
        port: TCP port; 0 picks a free one (read it back from `port` after `start`).
        token: the control token; None makes a random one (`secrets.token_urlsafe(16)`).
        jpeg_quality: JPEG quality of the frames sent, 1..100.

    Example:
        >>> with KioskServer(hub, port=0) as server:          # doctest: +SKIP
        ...     print(server.url, server.control_url)
        http://127.0.0.1:41234/ http://127.0.0.1:41234/?token=...
    """

    def __init__(self, hub: FrameHub, host: str = "127.0.0.1", port: int = 8765, token: str | None = None,
                 jpeg_quality: int = 90) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be 0..65535, got {port}")
        if not 1 <= jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be 1..100, got {jpeg_quality}")
        if token is not None and not token.strip():
            raise ValueError("token must not be empty (pass None for a random one)")
        self.hub = hub
        self.host = host
        self.token = token if token is not None else secrets.token_urlsafe(16)
        self.jpeg_quality = jpeg_quality
        self._requested_port = port
        self._port = port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        """The port listened on (the real one once started, also when asked for port 0)."""
        return self._port

    @property
    def url(self) -> str:
        """The overview page, without the token, e.g. "http://127.0.0.1:8765/"."""
        return f"http://{url_host(self.host)}:{self._port}/"

    @property
    def control_url(self) -> str:
        """The overview page with the token: open it to use the controls."""
        return f"{self.url}?token={quote(self.token, safe='')}"

    def screen_url(self, screen: str, with_token: bool = False) -> str:
        """The kiosk page of one screen; `with_token` adds ?token= so its keys control."""
        url = f"{self.url}screen/{quote(screen, safe='')}"
        return f"{url}?token={quote(self.token, safe='')}" if with_token else url

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> "KioskServer":
        """Listen and serve in a daemon thread; returns once listening. OSError if the address
        is taken or invalid, RuntimeError if already running."""
        if self.running:
            raise RuntimeError(f"kiosk server already running at {self.url}")
        sock = listen_socket(self.host, self._requested_port)
        self._port = sock.getsockname()[1]
        if not is_loopback(self.host):
            log.warning("kiosk server listens on %s, reachable from the network; controls need the token",
                        self.host)
        ready = threading.Event()
        self._error = None
        self._thread = threading.Thread(target=self._run, args=(sock, ready), daemon=True,
                                        name=f"passersby-kiosk-{self._port}")
        self._thread.start()
        if not ready.wait(_START_TIMEOUT_S) or self._error is not None:
            error = self._error or TimeoutError(f"not ready after {_START_TIMEOUT_S:.0f} s")
            self.stop()
            raise RuntimeError(f"kiosk server failed to start on {self.url}: {error}") from error
        return self

    def _run(self, sock: socket.socket, ready: threading.Event) -> None:
        asyncio.run(self._serve(sock, ready))

    async def _serve(self, sock: socket.socket, ready: threading.Event) -> None:
        try:
            self._loop = asyncio.get_running_loop()
            self._stopping = asyncio.Event()
            bridge = FrameBridge(self.hub, self._loop, self.jpeg_quality)
            bridge.start()
            app = make_app(KioskState(bridge, self.token, Pages()))
            # No access log: kiosks poll /api/status every second, all day.
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
            await runner.setup()
            await web.SockSite(runner, sock).start()
        except BaseException as e:  # reported to start(), which raises it in the caller's thread
            self._error = e
            sock.close()
            ready.set()
            return
        ready.set()
        try:
            await self._stopping.wait()
        finally:
            await runner.cleanup()  # on_shutdown closes the WebSockets and the bridge

    def stop(self, timeout: float = 10.0) -> None:
        """Close every connection, stop listening and join the thread; a no-op if not running."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None:
            try:
                loop.call_soon_threadsafe(stopping.set)
            except RuntimeError:  # loop already closed: the thread is ending anyway
                pass
        thread.join(timeout)
        if thread.is_alive():
            log.warning("kiosk server thread did not stop within %.0f s", timeout)
        self._thread = self._loop = self._stopping = None

    def __enter__(self) -> "KioskServer":
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def control_url(server: KioskServer) -> str:
    """The overview URL with ?token=, for the operator (same as `server.control_url`)."""
    return server.control_url


def listen_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free one), IPv4 or IPv6 as the host says."""
    try:
        family = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                    flags=socket.AI_PASSIVE)[0][0]
        return socket.create_server((host, port), family=family, backlog=128)
    except OSError as e:
        raise OSError(e.errno, f"cannot listen on {host}:{port}: {e.strerror or e}") from e


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_host(host: str) -> str:
    """The host part of a URL for `host`: wildcards read as loopback, IPv6 in brackets."""
    if host in _WILDCARDS:
        host = "127.0.0.1" if host != "::" else "::1"
    return f"[{host}]" if ":" in host else host
