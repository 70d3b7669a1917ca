"""An aiohttp application served from its own thread and event loop (the kiosk, the taste app).

The engine and the CLI live in ordinary threads; the web servers must never make them wait. A
`ThreadedServer` listens on a socket bound in the caller's thread (so "address in use" is an
OSError right there), then runs the app in a daemon thread with its own loop; `stop()` closes
every connection and joins the thread. Subclasses say how to build the app (`setup`) and what
to close after it (`teardown`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
import socket
import threading
import time
from typing import Callable
from urllib.parse import quote

from aiohttp import web, web_runner

log = logging.getLogger(__name__)


class _BadRequestsInOneLine(logging.Filter):
    """aiohttp logs a malformed request (a 9 KB path, a 70 KB header, bad chunking) with a
    full traceback; the client got its 400 and nothing is wrong here: one warning line."""

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            text = " ".join(str(exc.message).split())[:120]
            record.msg, record.args = "bad request refused (%s): %s", (type(exc).__name__, text)
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_ONE_LINE = _BadRequestsInOneLine()
HEAD_DEADLINE_S = 10.0  # a connection must send its first request's headers within this time
# ... and each later request within this time of the previous response (aiohttp's own default is
# an hour: one quick request, then silence or a trickle, held a connection that long). Pages
# poll every second, so a live page keeps its connection; WebSockets are not affected.
KEEPALIVE_S = 15.0
# Connections open at once per server: beyond, new ones are closed at once. File descriptors
# are 1,024 by default and the ledger, captures and logs need theirs; with the deadlines above a
# flood holds each connection 10-15 s at most, and this bounds how many it holds meanwhile.
MAX_CONNECTIONS = 256


class _HeadDeadline(asyncio.Protocol):
    """Wraps aiohttp's protocol for one connection: closes it unless the first request's
    headers (up to the blank line) arrive within `seconds`. aiohttp itself waits forever, so
    300 slowloris connections trickling a header byte now and then were all kept open.
    Also counts the site's open connections: beyond MAX_CONNECTIONS a newcomer takes the place
    of the oldest connection that has sent no request yet, or is turned away when there is none."""

    def __init__(self, make_inner: Callable[[], asyncio.Protocol], seconds: float, site: "_DeadlineSite") -> None:
        self.make_inner, self.seconds, self.site = make_inner, seconds, site
        self.inner: asyncio.Protocol | None = None  # aiohttp's, made only for a connection let in
        self.tail, self.done, self.timer, self.transport = b"", False, None, None

    def connection_made(self, transport) -> None:
        if self.site.open_connections >= MAX_CONNECTIONS and not self._evict_silent():
            transport.abort()  # turned away before aiohttp sees it
            self.site.turned_away.count("connections")  # counted and logged: a flood is visible
            return
        self.site.open_connections += 1
        self.transport = transport
        self.site.silent[id(self)] = self  # until its first request's headers arrive
        self.inner = self.make_inner()
        self.inner.connection_made(transport)
        self.timer = asyncio.get_running_loop().call_later(self.seconds, self._expire, transport)

    def _evict_silent(self) -> bool:
        """At the cap, close the oldest connection that has not sent a request yet, so that a
        flood of idle connections cannot lock out /api/health and the kiosks (a newcomer sends
        its request at once; a flooder's place goes to it). False when every place is in use."""
        if not self.site.silent:
            return False
        oldest = self.site.silent.pop(next(iter(self.site.silent)))
        oldest.transport.abort()
        self.site.turned_away.count("connections")
        return True

    def _expire(self, transport) -> None:
        if not self.done:
            transport.close()

    def data_received(self, data: bytes) -> None:
        if self.inner is None:
            return
        if not self.done:
            seen = self.tail + data
            if b"\r\n\r\n" in seen:
                self.done = True
                self.timer.cancel()
                self.site.silent.pop(id(self), None)
            else:
                self.tail = seen[-3:]
        self.inner.data_received(data)

    def eof_received(self):
        return None if self.inner is None else self.inner.eof_received()

    def connection_lost(self, exc) -> None:
        if self.inner is None:
            return
        self.site.open_connections -= 1
        self.site.silent.pop(id(self), None)
        self.timer.cancel()
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class _DeadlineSite(web_runner.SockSite):
    """aiohttp's SockSite with every connection wrapped in _HeadDeadline."""

    async def start(self) -> None:
        await web_runner.BaseSite.start(self)
        self.open_connections = 0  # counted by _HeadDeadline, in the loop's thread
        self.silent: dict[int, _HeadDeadline] = {}  # open, no request yet: oldest first (evicted at the cap)
        factory = self._runner.server
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _HeadDeadline(factory, HEAD_DEADLINE_S, self), sock=self._sock, backlog=self._backlog)


_WILDCARDS = {"", "0.0.0.0", "::"}


class TurnedAway:
    """Connections a server turned away at its caps, counted for /metrics and logged in one
    rate-limited line: a flood was invisible (closed sockets, no trace), and an operator
    wondering why a kiosk page does not load could not tell.

    Counted in the server's event loop only (no lock). The first one is logged at once, then at
    most one line per `log_every_s`, each saying how many since the last line.

    Args:
        kind: the server, for the log line ("kiosk server").
        log_every_s: the shortest time between two log lines.
        clock: seconds, monotonic (injected by tests).

    Example:
        >>> t = TurnedAway("kiosk server", clock=lambda: 0.0)
        >>> t.count("connections"); t.count("streams"); t.count("streams")
        >>> t.connections, t.streams
        (1, 2)
    """

    CAPS = ("connections", "streams")

    def __init__(self, kind: str, log_every_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.kind, self.log_every_s, self.clock = kind, log_every_s, clock
        self.connections = 0  # closed at once: MAX_CONNECTIONS were open (threaded.py)
        self.streams = 0  # refused with 503: MAX_SOCKETS frame streams were open (app.py)
        self._unlogged = 0
        self._logged_at: float | None = None

    def count(self, cap: str) -> None:
        """One more turned away at `cap` ("connections" or "streams"); logs if it is time."""
        if cap not in self.CAPS:
            raise ValueError(f"cap must be one of {self.CAPS}, got {cap!r}")
        setattr(self, cap, getattr(self, cap) + 1)
        self._unlogged += 1
        now = self.clock()
        if self._logged_at is None or now - self._logged_at >= self.log_every_s:
            log.warning("%s turned away %d connection(s) at its caps since its last note (%d in all: %d with "
                        "too many connections open, %d with too many frame streams); see /metrics",
                        self.kind, self._unlogged, self.connections + self.streams, self.connections, self.streams)
            self._unlogged, self._logged_at = 0, now

    def metrics_text(self) -> bytes:
        """The counters in Prometheus' text format, appended to /metrics."""
        return ("# HELP passersby_web_turned_away_total Connections the web server turned away at its caps "
                "(connections: too many open; streams: too many frame streams).\n"
                "# TYPE passersby_web_turned_away_total counter\n"
                f'passersby_web_turned_away_total{{cap="connections"}} {self.connections}\n'
                f'passersby_web_turned_away_total{{cap="streams"}} {self.streams}\n').encode()


def host_is_loopback(value: str, port: int) -> bool:
    """Whether a Host header names this loopback server: any loopback name (localhost,
    *.localhost, 127.0.0.0/8, ::1 and its other spellings, ::ffff:127.x), with our port or none.

    A DNS-rebinding page sends its own domain, which is never one of these; `[::1]` without a
    port (curl -H "Host: [::1]") was refused with 403 when only four exact spellings were known.

    Args:
        value: the Host header (or an Origin's netloc), e.g. "[::1]:8765" or "localhost".
        port: the port this server listens on.

    Example:
        >>> [host_is_loopback(h, 8765) for h in ("[::1]", "[0:0:0:0:0:0:0:1]:8765", "127.0.0.2",
        ...  "LOCALHOST.:8765", "a.localhost", "localhost:80", "evil.example", "127.0.0.1.evil.example")]
        [True, True, True, True, True, False, False, False]
    """
    v = value.strip().lower()
    if v.startswith("["):
        name, _, rest = v[1:].partition("]")
        given = rest[1:] if rest.startswith(":") else (None if not rest else "bad")
    elif v.count(":") == 1:
        name, _, given = v.partition(":")
    else:
        name, given = v, None
    if given is not None and given != str(port):
        return False
    name = name.rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or bool(mapped and mapped.is_loopback)


class ThreadedServer:
    """Base class: host/port/token, start/stop in a thread, URLs.

    Args:
        host: address to listen on; loopback by default. Writes always need the token.
        port: TCP port; 0 picks a free one (read it back from `port` after `start`).
        token: the token for writes/controls; None makes a random one.

    Example:
        >>> class Hello(ThreadedServer):
        ...     async def setup(self):
        ...         app = web.Application()
        ...         app.router.add_get("/", lambda r: web.Response(text="hi"))
        ...         return app
        >>> with Hello(port=0) as s:  # starts a web server  # doctest: +SKIP
        ...     s.url
    """

    kind = "server"  # for messages and the thread's name
    start_timeout_s = 30.0

    def __init__(self, host: str = "127.0.0.1", port: int = 0, token: str | None = None) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be 0..65535, got {port}")
        if token is not None and not token.strip():
            raise ValueError("token must not be empty (pass None for a random one)")
        self.host = host
        self.token = token if token is not None else secrets.token_urlsafe(16)
        self._requested_port = self._port = port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.turned_away = TurnedAway(self.kind)  # lives as long as the server: counts across restarts

    # ---- what subclasses provide

    async def setup(self) -> web.Application:
        """Build the app, in the server's loop."""
        raise NotImplementedError

    async def teardown(self) -> None:
        """Close what setup opened (after the app's own shutdown), in the server's loop."""

    # ---- addresses

    @property
    def port(self) -> int:
        """The port listened on (the real one once started, also when asked for port 0)."""
        return self._port

    @property
    def url(self) -> str:
        """The main page without the token, e.g. "http://127.0.0.1:8765/"."""
        return f"http://{url_host(self.host)}:{self._port}/"

    @property
    def control_url(self) -> str:
        """The main page with the token: open it to control / write."""
        return f"{self.url}?token={quote(self.token, safe='')}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ---- lifecycle

    def start(self) -> "ThreadedServer":
        """Listen and serve in a daemon thread; returns once listening. OSError if the address
        is taken or invalid, RuntimeError if already running or the app failed to start."""
        if self.running:
            raise RuntimeError(f"{self.kind} already running at {self.url}")
        server_log = logging.getLogger("aiohttp.server")
        if _ONE_LINE not in server_log.filters:  # here, not at import: no side effects on import
            server_log.addFilter(_ONE_LINE)
        sock = listen_socket(self.host, self._requested_port)
        self._port = sock.getsockname()[1]
        if not is_loopback(self.host):
            log.warning("%s listens on %s, reachable from the network; writes need the token", self.kind, self.host)
        ready = threading.Event()
        self._error = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve(sock, ready)), daemon=True,
                                        name=f"passersby-{self.kind.replace(' ', '-')}-{self._port}")
        self._thread.start()
        if not ready.wait(self.start_timeout_s) or self._error is not None:
            error = self._error or TimeoutError(f"not ready after {self.start_timeout_s:.0f} s")
            self.stop()
            raise RuntimeError(f"{self.kind} failed to start on {self.url}: {error}") from error
        return self

    async def _serve(self, sock: socket.socket, ready: threading.Event) -> None:
        runner = None
        try:
            self._loop = asyncio.get_running_loop()
            self._stopping = asyncio.Event()
            # No access log: pages poll their status every second, all day.
            app = await self.setup()
            app.middlewares.append(self._same_origin)
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0, keepalive_timeout=KEEPALIVE_S)
            await runner.setup()
            site = _DeadlineSite(runner, sock)
            site.turned_away = self.turned_away
            await site.start()
        except BaseException as e:  # reported to start(), which raises it in the caller's thread
            self._error = e
            sock.close()
            if runner is not None:
                await runner.cleanup()
            await self.teardown()
            ready.set()
            return
        ready.set()
        try:
            await self._stopping.wait()
        finally:
            await runner.cleanup()  # the app's on_shutdown hooks run here
            await self.teardown()

    def allowed_hosts(self) -> set[str] | None:
        """Host header values this server answers (host:port), or None for any: a loopback
        server answers only loopback names, so a web page whose domain was re-pointed at
        127.0.0.1 (DNS rebinding) cannot read it; one on a wildcard or public address cannot
        know its names and answers all (the token still guards every write)."""
        if not is_loopback(self.host):
            return None
        return {f"{h}:{self._port}" for h in ("127.0.0.1", "localhost", "[::1]", url_host(self.host))}

    def host_allowed(self, host: str) -> bool:
        """Whether this server answers Host `host`: any on a wildcard or public address, any
        loopback name (host_is_loopback) on a loopback one."""
        return not is_loopback(self.host) or host_is_loopback(host, self._port)

    @web.middleware
    async def _same_origin(self, request: web.Request, handler):
        """403 for a foreign Host (DNS rebinding) or a WebSocket / write from a foreign Origin."""
        if not self.host_allowed(request.host):
            return web.json_response({"error": f"unknown Host {request.host!r}"}, status=403)
        origin = request.headers.get("Origin")
        if origin and (request.method != "GET" or request.headers.get("Upgrade", "").lower() == "websocket"):
            netloc = origin.split("://", 1)[-1].lower()
            if netloc != request.host.lower() or not self.host_allowed(netloc):
                return web.json_response({"error": f"requests from {origin!r} are not allowed"}, status=403)
        return await handler(request)

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
            log.warning("%s thread did not stop within %.0f s", self.kind, timeout)
        self._thread = self._loop = self._stopping = None

    def __enter__(self):
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


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
