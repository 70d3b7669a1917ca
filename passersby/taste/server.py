"""The taste app's server: aiohttp in its own thread, like the kiosk (web/server.py).

`passersby taste` starts one; tests start one on port 0. The event loop only hands work to
the deck's workers, so the page stays responsive while faces render and the model refits.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from aiohttp import web

from passersby.blas import limit_blas_threads
from passersby.taste.app import TasteState, make_app, read_template
from passersby.taste.deck import Deck
from passersby.taste.store import TasteStore
from passersby.web.threaded import ThreadedServer


class TasteServer(ThreadedServer):
    """Serves the swipe app for one curator; see passersby/taste/app.py for the routes.

    Args:
        store: where the ratings go.
        renderer: z (n, d) float32 -> (n, R, R, 3) uint8 (runtime.make_renderer); used from
            one worker thread only.
        propose: rng -> (d,) latent: the faces to rate (e.g. model.direction.steered_proposer).
        model_hash: the generator's hash, stored with each rating.
        curator: whose taste (1..64 printable characters).
        host: address to listen on; loopback by default. Writes always need the token.
        port: TCP port; 0 picks a free one (read it back from `port` after `start`).
        token: the write token; None makes a random one.
        seed: seeds which faces are shown; None: fresh entropy.
        label: stored with each rating: "feminine", "masculine" or "" (any).
        prefetch: faces rendered ahead.
        jpeg_quality: 1..100.
        prior: the taste model's weight prior (taste/prior.py); None: isotropic.
        head: the generator's feature head (taste/head.py); None: the z-only taste model.
        feature_cache: the true features of the faces shown (taste/features.py); None: in memory.
        embed: images -> their true features (default: EfficientNet-Lite0, features.embed).

    Example:
        >>> with TasteServer(store, renderer, propose, info.hash, "ada", port=0) as server:  # starts a web server  # doctest: +SKIP
        ...     print(server.control_url)
        http://127.0.0.1:41234/?token=...
    """

    kind = "taste server"
    start_timeout_s = 60.0  # the first fit reads every stored rating

    def __init__(self, store: TasteStore, renderer: Callable[[np.ndarray], np.ndarray],
                 propose: Callable[[np.random.Generator], np.ndarray], model_hash: str, curator: str,
                 host: str = "127.0.0.1", port: int = 8766, token: str | None = None, seed: int | None = None,
                 *, label: str = "", prefetch: int = 4, jpeg_quality: int = 90,
                 prior: np.ndarray | None = None, head=None, feature_cache=None, embed=None) -> None:
        if not 1 <= jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be 1..100, got {jpeg_quality}")
        super().__init__(host, port, token)
        # Built here, so a bad argument raises ValueError now; it starts in the server's loop.
        self.deck = Deck(store, renderer, propose, model_hash, curator, label=label, seed=seed,
                         prefetch=prefetch, jpeg_quality=jpeg_quality, prior=prior, head=head,
                         feature_cache=feature_cache, embed=embed)
        self.store = store
        self.curator = curator
        self._template = read_template()
        self._deck_started = False

    def start(self) -> "TasteServer":
        """Fit the model to the stored ratings, listen and serve in a daemon thread; returns once
        listening. OSError if the address is taken, RuntimeError if already running or the
        deck cannot start. Limits numpy's BLAS to one thread (limit_blas_threads)."""
        limit_blas_threads(1)
        super().start()
        return self

    async def setup(self) -> web.Application:
        self._deck_started = True  # before start(): a half-started deck is closed too
        await self.deck.start()
        return make_app(TasteState(self.deck, self.token, self._template))

    async def teardown(self) -> None:
        if self._deck_started:
            self._deck_started = False
            await self.deck.close()
