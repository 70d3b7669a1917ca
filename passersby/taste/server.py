"""The taste app's server: aiohttp in its own thread, like the kiosk (web/server.py).

`passersby taste` starts one; tests start one on port 0. The event loop only hands work to
the deck's workers, so the page stays responsive while faces render and the model refits.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import threading
from typing import Callable
from urllib.parse import quote

import numpy as np
from aiohttp import web

from passersby.blas import limit_blas_threads
from passersby.taste.app import TasteState, make_app, read_template
from passersby.taste.deck import Deck
from passersby.taste.store import TasteStore
from passersby.web.server import is_loopback, listen_socket, url_host  # the kiosk's address handling

log = logging.getLogger(__name__)

_START_TIMEOUT_S = 60.0  # the first fit reads every stored rating


class TasteServer:
    """Serves the swipe app for one curator; see passersby/taste/app.py for the routes.

    Args:
        store: where the ratings go.
        renderer: z (n, d) float32 -> (n, R, R, 3) uint8 (runtime.make_renderer); used from
            one worker thread only.
        propose: rng -> (d,) latent: the faces to rate (e.g. stream.installation.steered_proposer).
        model_hash: the generator's hash, stored with each rating.
        curator: whose taste (1..64 printable characters).
        host: address to listen on; loopback by default. Writes always need the token.
        port: TCP port; 0 picks a free one (read it back from `port` after `start`).
        token: the write token; None makes a random one.
        seed: seeds which faces are shown; None: fresh entropy.
        label: stored with each rating: "feminine", "masculine" or "" (any).
        prefetch: faces rendered ahead.
        jpeg_quality: 1..100.

    Example:
        >>> with TasteServer(store, renderer, propose, info.hash, "ada", port=0) as server:  # doctest: +SKIP
        ...     print(server.control_url)
        http://127.0.0.1:41234/?token=...
    """

    def __init__(self, store: TasteStore, renderer: Callable[[np.ndarray], np.ndarray],
                 propose: Callable[[np.random.Generator], np.ndarray], model_hash: str, curator: str,
                 host: str = "127.0.0.1", port: int = 8766, token: str | None = None, seed: int | None = None,
                 *, label: str = "", prefetch: int = 4, jpeg_quality: int = 90) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be 0..65535, got {port}")
        if not 1 <= jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be 1..100, got {jpeg_quality}")
        if token is not None and not token.strip():
            raise ValueError("token must not be empty (pass None for a random one)")
        # Built here, so a bad argument raises ValueError now; it starts in the server's loop.
        self.deck = Deck(store, renderer, propose, model_hash, curator, label=label, seed=seed,
                         prefetch=prefetch, jpeg_quality=jpeg_quality)
        self.store = store
        self.curator = curator
        self.host = host
        self.token = token if token is not None else secrets.token_urlsafe(16)
        self._template = read_template()
        self._requested_port = self._port = port
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
        """The swipe page without the token (it can look, not rate), e.g. "http://127.0.0.1:8766/"."""
        return f"http://{url_host(self.host)}:{self._port}/"

    @property
    def control_url(self) -> str:
        """The swipe page with the token: open it to rate."""
        return f"{self.url}?token={quote(self.token, safe='')}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> "TasteServer":
        """Fit the model to the stored ratings, listen and serve in a daemon thread; returns once
        listening. OSError if the address is taken, RuntimeError if already running or the
        deck cannot start. Limits numpy's BLAS to one thread (limit_blas_threads)."""
        if self.running:
            raise RuntimeError(f"taste server already running at {self.url}")
        limit_blas_threads(1)
        sock = listen_socket(self.host, self._requested_port)
        self._port = sock.getsockname()[1]
        if not is_loopback(self.host):
            log.warning("taste server listens on %s, reachable from the network; rating needs the token", self.host)
        ready = threading.Event()
        self._error = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve(sock, ready)), daemon=True,
                                        name=f"passersby-taste-{self._port}")
        self._thread.start()
        if not ready.wait(_START_TIMEOUT_S) or self._error is not None:
            error = self._error or TimeoutError(f"not ready after {_START_TIMEOUT_S:.0f} s")
            self.stop()
            raise RuntimeError(f"taste server failed to start on {self.url}: {error}") from error
        return self

    async def _serve(self, sock: socket.socket, ready: threading.Event) -> None:
        deck = runner = None
        try:
            self._loop = asyncio.get_running_loop()
            self._stopping = asyncio.Event()
            deck = self.deck
            await deck.start()
            runner = web.AppRunner(make_app(TasteState(deck, self.token, self._template)), access_log=None,
                                   shutdown_timeout=2.0)
            await runner.setup()
            await web.SockSite(runner, sock).start()
        except BaseException as e:  # reported to start(), which raises it in the caller's thread
            self._error = e
            sock.close()
            if runner is not None:
                await runner.cleanup()
            if deck is not None:
                await deck.close()
            ready.set()
            return
        ready.set()
        try:
            await self._stopping.wait()
        finally:
            await runner.cleanup()
            await deck.close()

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
            log.warning("taste server thread did not stop within %.0f s", timeout)
        self._thread = self._loop = self._stopping = None

    def __enter__(self) -> "TasteServer":
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
