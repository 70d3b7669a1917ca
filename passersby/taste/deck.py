"""The faces a curator judges: chosen actively, rendered ahead, the taste model refitted after each rating.

A `Deck` lives in the taste server's event loop and never blocks it. Two single-thread workers
do the heavy work:

- the render worker chooses faces (`choose_next` with the current model), renders and
  JPEG-encodes them, keeping `prefetch` faces ready in a queue, so the next face is there the
  moment the current one is judged; it also renders the gallery. One thread, because a
  renderer is meant for one thread (runtime.py).
- the model worker refits the taste model from the store after each rating (coalesced: a
  burst of ratings costs one refit) and measures it (held-out accuracy / AUC, `evaluate`).

With a feature head (the picture taste), the render worker also embeds every face it renders
(EfficientNet-Lite0, ~50 ms, ahead of the curator like the render) into the feature cache
(features.py), so the refit learns from what the curator saw; rated faces missing there (a
profile from before the cache, an import) are rendered and embedded once, on the render worker.

When the model changes, the queue keeps its first `REFRESH_FROM` faces (the page may already
show them) and the rest are chosen again with the new model, one at a time, each new face
taking the place of an old one, so the queue never runs dry because of a refit. Faces
replaced that way stay ratable (a page may have preloaded them), up to `MAX_FACES` unrated
faces.

Example (inside the server's loop):
    >>> deck = Deck(store, renderer, propose, info.hash, "ada")  # inside a running server's event loop  # doctest: +SKIP
    >>> await deck.start()  # inside a running server's event loop  # doctest: +SKIP
    >>> face = await deck.current()  # inside a running server's event loop  # doctest: +SKIP
    >>> rating_id, next_face = await deck.rate(face.id, "like")  # inside a running server's event loop  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from passersby.taste.active import choose_next
from passersby.taste.features import FeatureCache, true_features
from passersby.taste.model import RATINGS, TasteModel
from passersby.taste.picture import evaluate_taste, fit_taste
from passersby.taste.store import TasteStore, check_curator
from passersby.web.protocol import encode_jpeg

if TYPE_CHECKING:
    from passersby.taste.head import FeatureHead

log = logging.getLogger(__name__)

REFRESH_FROM = 2  # after a refit, queued faces from this position on are chosen again
MAX_FACES = 64  # unrated faces kept ratable (the queue and faces dropped from it)
MAX_RATED = 256  # recently rated face ids remembered, to answer a second rating with 409
GALLERY_POOL = 256  # candidates ranked for the gallery (a fixed set per server)
GALLERY_EACH = 6  # most and least liked faces shown
EVAL_LAST = 50  # held-out accuracy / AUC over the last this many ratings
RETRY_S = 1.0  # wait after a failed render before trying again


class DeckError(Exception):
    """No face can be shown (the renderer fails); the message says why."""


class UnknownFace(KeyError):
    """The face id is not one waiting for a rating."""


class AlreadyRated(KeyError):
    """The face was rated already."""


@dataclass(frozen=True, eq=False)
class Face:
    """A face waiting for a rating: its latent, its JPEG and what the model thought of it."""

    id: str
    z: np.ndarray  # (d,) float32: exactly what was rendered and what is stored
    jpeg: bytes
    p: float  # P(like) under the model that chose it
    version: int  # that model's version

    def public(self) -> dict[str, Any]:
        """What the page gets: {"id", "image" (URL of the JPEG), "p"}."""
        return {"id": self.id, "image": f"/api/face/{self.id}.jpg", "p": round(self.p, 4)}


def _finite_or_none(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


class Deck:
    """One curator's faces and taste model, served from an asyncio loop; see the module docstring.

    Args:
        store: where ratings go (and the model is fitted from).
        renderer: z (n, d) float32 -> (n, R, R, 3) uint8 (runtime.make_renderer).
        propose: rng -> (d,) latent: the faces of the screen being rated.
        model_hash: the generator's hash; the taste model is fitted on its ratings only.
        curator: whose taste.
        label: stored with each rating ("feminine", "masculine", "" for any).
        seed: seeds the choice of faces and the gallery's candidates; None: fresh entropy.
        prefetch: faces kept rendered ahead (>= 2).
        jpeg_quality: 1..100.
        prior: the salience prior (taste/prior.py); None: isotropic.
        head: the generator's feature head (taste/head.py): the taste is learnt from what the
            faces look like (picture.PictureTaste); None: linear in z (model.TasteModel).
        feature_cache: where the true features of faces are kept (features.py; the stream reads
            the same file); None: in memory. Used only with a head.
        embed: images -> true features (default features.embed, EfficientNet-Lite0).
    """

    def __init__(self, store: TasteStore, renderer: Callable[[np.ndarray], np.ndarray],
                 propose: Callable[[np.random.Generator], np.ndarray], model_hash: str, curator: str,
                 label: str = "", seed: int | None = None, prefetch: int = 4, jpeg_quality: int = 90,
                 prior: np.ndarray | None = None, head: "FeatureHead | None" = None,
                 feature_cache: FeatureCache | None = None, embed: Callable[[np.ndarray], np.ndarray] | None = None
                 ) -> None:
        if prefetch < 2:
            raise ValueError(f"prefetch must be >= 2, got {prefetch}")
        if not isinstance(model_hash, str) or not model_hash:
            raise ValueError(f"model_hash must be a non-empty string, got {model_hash!r}")
        self.store, self.renderer, self.propose = store, renderer, propose
        self.model_hash, self.curator, self.label = model_hash, check_curator(curator), label
        self.prefetch, self.jpeg_quality = prefetch, jpeg_quality
        self.prior = prior  # taste/prior.py: the stream fits with the same one
        self.head = head  # taste/head.py: None = the z-only model (model.py); the stream uses the same
        self.features = feature_cache if feature_cache is not None else FeatureCache(None)
        if embed is None:
            from passersby.taste.features import embed
        self.embed = embed
        seeds = np.random.SeedSequence(seed).spawn(2)
        self._rng = np.random.default_rng(seeds[0])  # used in the render worker only
        gallery_rng = np.random.default_rng(seeds[1])
        self._gallery_z = np.stack([np.asarray(propose(gallery_rng), np.float32) for _ in range(GALLERY_POOL)])
        self.dim = self._gallery_z.shape[1]
        self.model = fit_taste(np.zeros((0, self.dim)), [], prior, head, self.dim)
        self.version = 0
        self.counts = {r: 0 for r in RATINGS}
        self.quality: dict[str, Any] = {"accuracy": None, "auc": None, "n_eval": 0, "version": 0}
        self.error: str | None = None
        self._faces: OrderedDict[str, Face] = OrderedDict()
        self._queue: list[str] = []
        self._rated: OrderedDict[str, int] = OrderedDict()
        self._gallery: tuple[int, asyncio.Future] | None = None
        self._gallery_jpeg: dict[int, bytes] = {}
        self._render_pool: ThreadPoolExecutor | None = None
        self._model_pool: ThreadPoolExecutor | None = None
        self._tasks: list[asyncio.Task] = []

    # ------------------------------------------------------------ life cycle

    async def start(self) -> None:
        """Fit the model to the stored ratings and start filling the queue (call in the loop).

        A closed deck may start again (in another loop); it keeps its faces."""
        self._render_pool = ThreadPoolExecutor(1, thread_name_prefix="passersby-taste-render")
        self._model_pool = ThreadPoolExecutor(1, thread_name_prefix="passersby-taste-model")
        self._gallery = None  # a future of the previous loop, if any
        self._need = asyncio.Event()
        self._dirty = asyncio.Event()
        self._changed = asyncio.Event()
        self.counts = await self._run(None, self.store.counts, self.curator, self.model_hash)
        await self._learn_once(embed_missing=False)
        self._tasks = [asyncio.create_task(self._fill_loop(), name="taste-fill"),
                       asyncio.create_task(self._learn_loop(), name="taste-learn")]

    async def close(self) -> None:
        """Stop the background work; waits for a render or fit under way (so the caller may close
        the store and the renderer once this returns)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for pool in (self._render_pool, self._model_pool):
            if pool is not None:
                await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
        self._tasks = []

    async def _run(self, pool: ThreadPoolExecutor | None, fn: Callable, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    def _wake(self) -> None:
        """Wake whoever waits for a face (the queue grew, or an error arrived)."""
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    # ------------------------------------------------------------ faces

    async def current(self) -> Face:
        """The face to judge now (waits for the first render); DeckError if rendering fails."""
        while not self._queue:
            if self.error is not None:
                raise DeckError(self.error)
            self._need.set()
            await self._changed.wait()
        return self._faces[self._queue[0]]

    def upcoming(self) -> list[Face]:
        """The faces after the current one, in the order they will come."""
        return [self._faces[i] for i in self._queue[1:]]

    def face(self, face_id: str) -> Face | None:
        """The face `face_id` if it is waiting for a rating, else None."""
        return self._faces.get(face_id)

    def image(self, face_id: str) -> bytes | None:
        """The JPEG of a face waiting for a rating, or None."""
        face = self._faces.get(face_id)
        return None if face is None else face.jpeg

    async def rate(self, face_id: str, rating: str) -> tuple[int, Face]:
        """Store the curator's rating of a face; returns (rating id, the next face to judge).

        Raises:
            ValueError: not a rating (RATINGS).
            UnknownFace / AlreadyRated: the face is not waiting for a rating.
            TasteStoreError: the store cannot be written (the face stays ratable).
            DeckError: no next face can be rendered.
        """
        if rating not in RATINGS:
            raise ValueError(f"unknown rating {rating!r}; one of {list(RATINGS)}")
        if face_id in self._rated:
            raise AlreadyRated(face_id)
        face = self._faces.pop(face_id, None)
        if face is None:
            raise UnknownFace(face_id)
        # Marked rated before the store is written (an await), so a double tap cannot store it twice.
        position = self._queue.index(face_id) if face_id in self._queue else None
        if position is not None:
            self._queue.pop(position)
        self._rated[face_id] = -1
        try:
            rating_id = await self._run(None, self.store.add, self.curator, face.z, rating, self.model_hash,
                                        self.label)
        except BaseException:
            del self._rated[face_id]
            self._faces[face_id] = face
            if position is not None:
                self._queue.insert(position, face_id)
            raise
        self._rated[face_id] = rating_id
        while len(self._rated) > MAX_RATED:
            self._rated.popitem(last=False)
        self.counts[rating] += 1
        self._dirty.set()
        self._need.set()
        return rating_id, await self.current()

    def _make_face(self, model: TasteModel, version: int) -> Face:
        """Render worker: choose with `model`, render, encode."""
        z = np.asarray(choose_next(model, self.propose, self._rng), np.float32)
        image = self.renderer(z[None])[0]
        if self.head is not None:  # what the curator will see, for the refit after the rating
            self.features.put(z[None], self.embed(image[None]))
        p = float(model.prob(z.astype(np.float64))[0])
        return Face(secrets.token_hex(8), z, encode_jpeg(image, self.jpeg_quality), p, version)

    def _stale(self) -> list[int]:
        """Queue positions, from REFRESH_FROM on, of faces chosen by an older model."""
        return [k for k in range(REFRESH_FROM, len(self._queue))
                if self._faces[self._queue[k]].version < self.version]

    async def _fill_loop(self) -> None:
        """Keep `prefetch` faces queued, then replace those an older model chose, one by one.

        Replacing in place (instead of dropping them all at a refit) keeps the queue full when
        the curator rates faster than faces render: an old choice beats no face at all.
        """
        while True:
            if len(self._queue) >= self.prefetch and not self._stale():
                self._need.clear()
                await self._need.wait()
                continue
            try:
                face = await self._run(self._render_pool, self._make_face, self.model, self.version)
            except Exception as e:  # the renderer's problem: say so to waiters, retry later
                log.warning("cannot render a face to rate: %s", e)
                self.error = f"cannot render a face: {e}"
                self._wake()
                await asyncio.sleep(RETRY_S)
                continue
            self.error = None
            self._faces[face.id] = face
            stale = self._stale()
            if len(self._queue) < self.prefetch or not stale:
                self._queue.append(face.id)
            else:
                self._queue[stale[0]] = face.id  # the old face stays ratable: a page may hold it
            self._forget_old_faces()
            self._wake()

    def _forget_old_faces(self) -> None:
        queued = set(self._queue)
        for face_id in [i for i in self._faces if i not in queued][: max(0, len(self._faces) - MAX_FACES)]:
            del self._faces[face_id]

    # ------------------------------------------------------------ the taste model

    def _read(self) -> tuple[np.ndarray, list[str], np.ndarray | None]:
        """Model worker: every stored rating of this curator and model, with the cached true
        features of the rated faces (None: no head, or some are not cached)."""
        z, ratings, _ = self.store.ratings(self.curator, self.model_hash)
        if self.head is None:
            return z, ratings, None
        found = self.features.get(z)
        dim = self.head.pca_mean.shape[0]
        if any(f is None or f.shape != (dim,) for f in found):
            return z, ratings, None
        return z, ratings, np.stack(found) if found else np.zeros((0, dim), np.float32)

    def _true_features(self, z: np.ndarray) -> np.ndarray:
        """Render worker: the true features of rated faces, rendering and embedding the missing ones."""
        return true_features(z, self.features, self.renderer, embed=self.embed, dim=self.head.pca_mean.shape[0],
                             on_render=lambda n: log.info("embedding %d rated faces not in the feature cache", n))

    def _fit(self, z: np.ndarray, ratings: list[str], features: np.ndarray | None) -> TasteModel:
        """Model worker: refit to every stored rating of this curator and model."""
        return fit_taste(z, ratings, self.prior, self.head, self.dim, features)

    def _measure(self, z: np.ndarray, ratings: list[str], features: np.ndarray | None) -> dict[str, Any]:
        """Model worker: held-out accuracy and AUC over the last EVAL_LAST ratings (5 fits)."""
        if not len(z):
            return {"accuracy": None, "auc": None, "n_eval": 0}
        quality = evaluate_taste(z, ratings, self.prior, self.head, last=EVAL_LAST, features=features)
        return {"accuracy": _finite_or_none(quality["accuracy"]), "auc": _finite_or_none(quality["auc"]),
                "n_eval": quality["n"]}

    async def _learn_once(self, embed_missing: bool = True) -> None:
        z, ratings, features = await self._run(self._model_pool, self._read)
        if self.head is not None and features is None and len(z):  # an old profile, an import: once
            if embed_missing:
                features = await self._run(self._render_pool, self._true_features, z)
            else:  # at start: serve at once with the head's guesses, embed and refit in the background
                self._dirty.set()
        model = await self._run(self._model_pool, self._fit, z, ratings, features)
        self.model = model
        self.version += 1
        self._need.set()  # faces the old model chose get replaced (_fill_loop)
        # Measuring costs five fits (~0.6 s at 1000 ratings): skip it when a newer rating waits.
        if not self._dirty.is_set():
            quality = await self._run(self._model_pool, self._measure, z, ratings, features)
            self.quality = {**quality, "version": self.version}

    async def _learn_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()  # ratings arriving during the fit set it again: one more round
            try:
                await self._learn_once()
            except Exception as e:  # keep the old model; the next rating tries again
                log.warning("cannot refit the taste model: %s", e)

    def progress(self) -> dict[str, Any]:
        """{"rated", "by_rating", "accuracy", "auc", "n_eval", "model_version", "curator", "label"}:
        counts now, quality as of the last refit (None while undefined)."""
        return {"curator": self.curator, "label": self.label, "rated": sum(self.counts.values()),
                "by_rating": dict(self.counts), "accuracy": self.quality["accuracy"], "auc": self.quality["auc"],
                "n_eval": self.quality["n_eval"], "model_version": self.version}

    # ------------------------------------------------------------ the gallery

    def gallery_image(self, index: int) -> bytes | None:
        """The JPEG of gallery candidate `index`, once rendered."""
        return self._gallery_jpeg.get(index)

    async def gallery(self) -> dict[str, Any]:
        """The most and least liked of a fixed set of candidates under the current model.

        Returns {"version", "ready", "liked": [{"image", "p"}], "disliked": [...]}; "ready" is
        False (and the lists empty) until the curator has both liked and disliked a face.
        Computed once per model version.
        """
        version = self.version
        liked = self.counts["like"] + self.counts["superlike"]
        if not liked or not self.counts["dislike"]:
            return {"version": version, "ready": False, "liked": [], "disliked": []}
        if self._gallery is None or self._gallery[0] != version:
            future = asyncio.get_running_loop().run_in_executor(self._render_pool, self._make_gallery, self.model)
            self._gallery = (version, future)
        # shield: one client leaving must not cancel what the others wait for.
        ranked = await asyncio.shield(self._gallery[1])
        return {"version": version, "ready": True, **ranked}

    def _make_gallery(self, model: TasteModel) -> dict[str, list[dict[str, Any]]]:
        """Render worker: rank the candidates, render the ends not rendered before."""
        p = model.prob(self._gallery_z.astype(np.float64))
        order = np.argsort(-p, kind="stable")
        ends = {"liked": order[:GALLERY_EACH], "disliked": order[::-1][:GALLERY_EACH]}
        missing = [int(i) for i in np.concatenate(list(ends.values())) if int(i) not in self._gallery_jpeg]
        if missing:
            images = self.renderer(self._gallery_z[missing])
            for i, image in zip(missing, images):
                self._gallery_jpeg[i] = encode_jpeg(image, self.jpeg_quality)
        return {key: [{"image": f"/api/gallery/{int(i)}.jpg", "p": round(float(p[i]), 4)} for i in idx]
                for key, idx in ends.items()}
