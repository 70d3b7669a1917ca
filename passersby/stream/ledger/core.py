"""The claim protocol every database-backed ledger shares: near search, claims, reads, audits, export.

The promise and its numbers are in the package docstring (stream/ledger/__init__.py). A backend
subclasses `LedgerCore` and supplies the database: how to run a statement (`_rows`), how to take
the write lock (`_begin_write` / `_end`), how to look up the candidates of a near search
(`_near_rows`), how to insert an anchor (`_insert_anchor`), how it reports its errors
(`_failure`) and how big it is (`_size_bytes`). The SQL below is written with `?` markers; a
backend with other markers translates them in `_rows`.

Backends: sqlite.py (an SQLite file), postgres.py (PostgreSQL, an edition's shared ledger).
leased.py (a console's leases from a shared ledger) is no LedgerCore: it wraps a PgLedger, and
all three satisfy the `Ledger` protocol (protocol.py).
"""

from __future__ import annotations

import base64
import json
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from passersby.atomic import atomic_open
from passersby.stream.ledger.common import (
    FORMAT,
    MAX_TRIES,
    VERSION,
    ChannelStats,
    LedgerCheck,
    LedgerError,
    LedgerStats,
    channel_seed,
    z_hash,
)
from passersby.stream.ledger.lsh import LshParams, bucket_keys, probe_keys

MAX_RESTARTS = 50  # claims overtaken by another writer on the same channel before giving up
_MOVED, _TAKEN = "moved", "taken"  # outcomes of a commit that recorded nothing


class LedgerCore:
    """The claim protocol and the reads, on top of a backend's few database primitives.

    Subclasses set `where` (file or address, for messages), `dim`, `channel`, `_seed`, call
    `_adopt(meta, ...)` once open, and implement the primitives named in the module docstring.
    """

    where: str
    dim: int
    channel: str
    _seed: int | None
    _errors: tuple[type[BaseException], ...] = ()

    # ------------------------------------------------------------ backend primitives

    def _rows(self, sql: str, args: Iterable[Any] = ()) -> list[tuple]:
        raise NotImplementedError

    def _begin_write(self) -> None:
        """Start a transaction holding the ledger's write lock (no one records until `_end`)."""
        raise NotImplementedError

    def _end(self, commit: bool) -> None:
        raise NotImplementedError

    def _near_rows(self, zhash: int, keys: np.ndarray) -> list[tuple[int, bytes]]:
        """(id, z) of rows with this zhash or any of `keys` (tables, n) in its table's column."""
        raise NotImplementedError

    def _insert_anchor(self, values: list[Any]) -> int | None:
        """INSERT (channel, z, zhash, k0.., model_hash, shown_at): the new id, None on a zhash clash."""
        raise NotImplementedError

    def _failure(self, e: BaseException, doing: str) -> LedgerError:
        raise NotImplementedError

    def _size_bytes(self) -> int:
        return 0

    def integrity_check(self) -> str:
        """The database's own structural check: "ok", its findings one per line, or
        "unchecked: <why>" when this database or user cannot run it (a note, not a problem)."""
        return "ok"

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        """One consistent read snapshot (for export)."""
        yield

    def _batches(self, sql: str) -> Iterator[list[tuple]]:
        """Rows of `sql` in batches, without holding them all in memory."""
        yield self._rows(sql)

    def close(self) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------ common

    def _err(self, what: str) -> LedgerError:
        return LedgerError(f"{self.where}: {what}")

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return self.stats().count

    def _adopt(self, meta: dict[str, Any], threshold: float | None, half: bool | None, lsh: LshParams | None) -> None:
        """Check the stored description against what the caller asked for, and keep it."""
        if meta.get("format") != FORMAT:
            raise self._err(f"is a database of format {meta.get('format')!r}, not a passersby ledger")
        version = meta.get("version")
        if not isinstance(version, int):
            raise self._err(f"corrupt ledger description (version {version!r}); restore it from a backup")
        if version > VERSION:
            raise self._err(f"ledger version {version} is newer than this passersby reads ({VERSION}); "
                            "upgrade passersby")
        if meta.get("dim") != self.dim:
            raise self._err(f"holds anchors of dim {meta.get('dim')}, asked for {self.dim}; "
                            "use this model's own ledger or a new path")
        self.threshold = float(meta["threshold"])
        if threshold is not None and float(threshold) != self.threshold:
            raise self._err(f"was created with threshold {self.threshold}, asked for {threshold}; "
                            "pass threshold=None to use the ledger's")
        self.half = meta.get("z_dtype") == "float16"
        if half is not None and bool(half) != self.half:
            raise self._err(f"stores z as {meta.get('z_dtype')}; pass half=None to use the ledger's")
        try:
            self.lsh = LshParams(tables=meta["lsh_tables"], hashes=meta["lsh_hashes"],
                                 proj_dim=meta["lsh_proj_dim"], probes=meta["lsh_probes"])
            p = min(self.lsh.proj_dim, self.dim)
            # float32 on disk, float64 here once (exact) rather than at every query
            self._rot = np.frombuffer(bytes(meta["lsh_rotations"]), np.float32).astype(np.float64).reshape(
                self.lsh.tables, self.lsh.hashes, p, self.dim)
        except (KeyError, TypeError, ValueError) as e:
            raise self._err(f"corrupt ledger description ({e}); restore it from a backup") from e
        if lsh is not None and lsh != self.lsh:
            raise self._err(f"was created with {self.lsh}; pass lsh=None to use the ledger's")
        self._dtype = np.dtype("<f2" if self.half else "<f4")
        self.meta = meta

    # ------------------------------------------------------------ near search

    def _stored(self, z: np.ndarray) -> np.ndarray:
        """z as it will be stored (and shown): the ledger's precision, shape (dim,)."""
        a = np.asarray(z)
        if a.shape != (self.dim,):
            raise ValueError(f"an anchor must have shape ({self.dim},), got {a.shape}")
        s = a.astype(self._dtype)
        if not np.all(np.isfinite(s)):
            raise ValueError(f"an anchor must be finite (in {self._dtype.name}), got non-finite values")
        return s

    def _near(self, stored: np.ndarray) -> tuple[list[int], np.ndarray]:
        """Recorded anchors closer than the threshold to `stored`: (ids, distances)."""
        keys = probe_keys(self._rot, stored.astype(np.float64), self.lsh.probes)
        rows = self._near_rows(z_hash(stored.tobytes()), keys)
        if not rows:
            return [], np.empty(0)
        cand = np.frombuffer(b"".join(bytes(r[1]) for r in rows), self._dtype).reshape(len(rows), self.dim)
        dist = np.linalg.norm(cand.astype(np.float64) - stored.astype(np.float64), axis=1)
        hit = dist < self.threshold
        return [r[0] for r, h in zip(rows, hit) if h], dist[hit]

    def contains_near(self, z: np.ndarray) -> bool:
        """Whether a recorded anchor is identical or closer than the threshold to z.

        Identical anchors are always found; near ones with the recall in the package docstring.
        """
        try:
            return bool(self._near(self._stored(z))[0])
        except self._errors as e:
            raise self._failure(e, "searching") from e

    # ------------------------------------------------------------ claiming

    def _rng_from(self, channel: str, state_json: str | None) -> np.random.Generator:
        """The channel's generator from its stored state (None: the channel's first seed)."""
        if state_json is None:
            return np.random.Generator(np.random.PCG64(channel_seed(self._seed, channel)))
        try:
            state = json.loads(state_json)
            if state.get("bit_generator") != "PCG64":
                raise ValueError(f"bit generator {state.get('bit_generator')!r}")
            bg = np.random.PCG64()
            bg.state = state
        except (ValueError, TypeError, AttributeError, KeyError) as e:
            raise self._err(f"corrupt RNG state of channel {channel!r} ({e}); restore the ledger from a backup") from e
        return np.random.Generator(bg)

    def claim(self, channel: str | None, propose: Callable[[np.random.Generator], np.ndarray], model_hash: str,
              max_tries: int = MAX_TRIES) -> tuple[int, np.ndarray]:
        """Draw, record and return the channel's next anchor; show it only after this returns.

        Restore the channel's RNG and call `propose(rng)` until a proposal is not near any
        recorded anchor, with no lock held (a proposal may render and score candidates); then,
        in one transaction, check that the channel's RNG has not moved and that no near anchor
        was recorded meanwhile, record the anchor and the advanced RNG state, commit. If the RNG
        moved (another process claimed on this channel), start over from its new state; if a
        near anchor appeared, draw on. With one writer per channel the anchors are exactly
        those of a claim made entirely under the lock.

        Args:
            channel: the screen / stream name (None: the ledger's default channel).
            propose: rng -> anchor of shape (dim,); must draw all its randomness from rng, so
                that a restart continues the same sequence.
            model_hash: identity of the model that will render it (e.g. checkpoint.file_hash).
            max_tries: proposals before giving up.

        Returns:
            (anchor_id, z): z as recorded, float32 of shape (dim,).

        Raises:
            LedgerError: max_tries proposals in a row were near recorded anchors, or the
                database failed; nothing was recorded and the RNG did not advance.

        Example:
            >>> ledger.claim("screen-1", lambda rng: rng.standard_normal(128), "9f2c")  # doctest: +SKIP
            (1, array([...], dtype=float32))
        """
        channel = self.channel if channel is None else channel
        if not isinstance(channel, str) or not channel:
            raise ValueError(f"channel must be a non-empty string, got {channel!r}")
        if not isinstance(model_hash, str):
            raise ValueError(f"model_hash must be a string, got {model_hash!r}")
        # Optimistic: propose (which may render and score candidates for a second) with no lock
        # held, then commit only if the channel's RNG has not moved meanwhile. Holding the
        # write lock while proposing would stall every other screen's claim behind this one.
        for _ in range(MAX_RESTARTS):
            state, rng = self._read_rng(channel)
            tries = 0
            while True:
                stored, tries = self._propose_free(channel, rng, propose, tries, max_tries)
                outcome = self._commit(channel, state, rng, stored, tries, model_hash)
                if outcome == _MOVED:
                    break  # another writer claimed on this channel: start over from its state
                if outcome == _TAKEN:
                    tries += 1  # a near anchor was recorded meanwhile (another channel): draw on
                    continue
                return int(outcome), stored.astype(np.float32)
        raise self._err(f"channel {channel!r}: {MAX_RESTARTS} claims in a row were overtaken by other "
                        "processes claiming on the same channel; run one process per channel")

    def _read_rng(self, channel: str) -> tuple[str | None, np.random.Generator]:
        """(stored state JSON or None, generator) of the channel, read without a write lock."""
        try:
            rows = self._rows("SELECT state FROM rng WHERE channel = ?", (channel,))
        except self._errors as e:
            raise self._failure(e, "claiming") from e
        state = rows[0][0] if rows else None
        return state, self._rng_from(channel, state)

    def _propose_free(self, channel: str, rng: np.random.Generator, propose: Callable, tries: int,
                      max_tries: int) -> tuple[np.ndarray, int]:
        """The next proposal not near a recorded anchor, and the rejections so far (no lock held)."""
        while tries < max_tries:
            stored = self._stored(propose(rng))
            try:
                near = self._near(stored)[0]
            except self._errors as e:
                raise self._failure(e, "claiming") from e
            if not near:
                return stored, tries
            tries += 1
        raise self._err(f"channel {channel!r}: {max_tries} proposals in a row were within {self.threshold} of "
                        "recorded anchors; the proposal function repeats itself (a fixed seed inside it?) — "
                        "nothing was recorded")

    def _commit(self, channel: str, state: str | None, rng: np.random.Generator, stored: np.ndarray,
                rejected: int, model_hash: str) -> int | str:
        """Record `stored` and the advanced RNG in one transaction: its anchor id, or _MOVED /
        _TAKEN (nothing recorded) when the channel's RNG moved or a near anchor appeared meanwhile."""
        try:
            self._begin_write()  # the write lock: no one records between our check and insert
        except self._errors as e:
            raise self._failure(e, "claiming") from e
        try:
            rows = self._rows("SELECT state FROM rng WHERE channel = ?", (channel,))
            if (rows[0][0] if rows else None) != state:
                outcome: int | str = _MOVED
            elif self._near(stored)[0]:
                outcome = _TAKEN
            else:
                outcome = self._insert(channel, rng, stored, rejected, model_hash)
            self._end(commit=isinstance(outcome, int))
        except BaseException as e:
            try:
                self._end(commit=False)
            except self._errors:
                pass  # the connection is gone; the database rolls back by itself
            if isinstance(e, self._errors):
                raise self._failure(e, "claiming") from e
            raise
        return outcome

    def _insert(self, channel: str, rng: np.random.Generator, stored: np.ndarray, rejected: int,
                model_hash: str) -> int | str:
        """INSERT the anchor and the channel's new RNG state (inside _commit's transaction)."""
        raw = stored.tobytes()
        keys = bucket_keys(self._rot, stored.astype(np.float64))[0].tolist()
        now = time.time()
        new_id = self._insert_anchor([channel, raw, z_hash(raw), *keys, model_hash, now])
        if new_id is None:
            return _TAKEN  # a 64-bit hash collision with a different anchor: just draw the next
        self._rows(
            "INSERT INTO rng (channel, state, counter, rejected, first_at, last_at) VALUES (?, ?, 1, ?, ?, ?) "
            "ON CONFLICT (channel) DO UPDATE SET state = excluded.state, counter = rng.counter + 1, "
            "rejected = rng.rejected + excluded.rejected, last_at = excluded.last_at",
            (channel, json.dumps(rng.bit_generator.state), rejected, now, now))
        self._claimed(new_id, channel, raw, model_hash, now)
        return new_id

    def _claimed(self, anchor_id: int, channel: str, raw: bytes, model_hash: str, now: float) -> None:
        """Hook inside the claim's transaction, after the insert (the PostgreSQL backend records leases)."""

    # ------------------------------------------------------------ reading

    def _read(self, sql: str, args: Iterable[Any] = ()) -> list[tuple]:
        try:
            return self._rows(sql, args)
        except self._errors as e:
            raise self._failure(e, "reading") from e

    def _z(self, raw: bytes) -> np.ndarray:
        return np.frombuffer(bytes(raw), self._dtype).astype(np.float32)

    def recent(self, channel: str | None = None, n: int = 1) -> list[tuple[int, np.ndarray]]:
        """The channel's last n anchors, oldest first: [(anchor_id, z float32)], e.g. to resume a walk."""
        channel = self.channel if channel is None else channel
        rows = self._read("SELECT id, z FROM anchors WHERE channel = ? ORDER BY id DESC LIMIT ?", (channel, int(n)))
        return [(int(i), self._z(z)) for i, z in reversed(rows)]

    def latest(self, n: int = 48) -> list[dict[str, Any]]:
        """The last n anchors of every channel, newest first: [{"id", "channel", "model_hash",
        "shown_at"}] (the gallery's "recently shown")."""
        rows = self._read("SELECT id, channel, model_hash, shown_at FROM anchors ORDER BY id DESC LIMIT ?", (int(n),))
        return [{"id": int(i), "channel": c, "model_hash": m, "shown_at": t} for i, c, m, t in rows]

    def anchor(self, anchor_id: int) -> np.ndarray:
        """The latent of ledger row `anchor_id` as float32 (to re-render a frame from its key).

        Raises:
            LedgerError: no such row.
        """
        rows = self._read("SELECT z FROM anchors WHERE id = ?", (int(anchor_id),))
        if not rows:
            raise self._err(f"no anchor {anchor_id} in this ledger (another home's frame?)")
        return self._z(rows[0][0])

    def stats(self) -> LedgerStats:
        """Counts and times per channel (from the RNG table: O(channels), not O(anchors))."""
        rows = self._read("SELECT channel, counter, rejected, first_at, last_at FROM rng ORDER BY channel")
        channels = {c: ChannelStats(int(n), int(rej), first, last) for c, n, rej, first, last in rows}
        return LedgerStats(
            count=sum(c.count for c in channels.values()), channels=channels,
            first_shown=min((c.first_shown for c in channels.values()), default=None),
            last_shown=max((c.last_shown for c in channels.values()), default=None), file_bytes=self._size_bytes())

    def rng_states(self) -> dict[str, tuple[str, int, int, float, float]]:
        """Every channel's RNG row: {channel: (state JSON, counter, rejected, first_at, last_at)} (migration)."""
        rows = self._read("SELECT channel, state, counter, rejected, first_at, last_at FROM rng ORDER BY channel")
        return {r[0]: tuple(r[1:]) for r in rows}

    # ------------------------------------------------------------ audit

    def check(self, deep: bool = False) -> LedgerCheck:
        """Audit the whole ledger; it reads every row (30 s per million anchors: ~1 h at 100M).

        Checks the database's integrity, that per-channel counters match the rows, that every z
        has the right size, is finite and matches its hash, and that no two anchors are
        identical. deep=True also recomputes every bucket key (the near-search index).
        """
        problems: list[str] = []
        integrity = self.integrity_check()
        notes = (integrity,) if integrity.startswith("unchecked:") else ()
        if integrity != "ok" and not notes:
            problems.append(f"integrity_check: {integrity.splitlines()[0]}")
        count = 0
        try:
            counters = dict(self._rows("SELECT channel, counter FROM rng"))
            rows = dict(self._rows("SELECT channel, count(*) FROM anchors GROUP BY channel"))
            for ch in sorted(set(counters) | set(rows)):
                if counters.get(ch, 0) != rows.get(ch, 0):
                    problems.append(f"channel {ch!r}: counter says {counters.get(ch, 0)} anchors, "
                                    f"table holds {rows.get(ch, 0)}")
            dups = self._rows("SELECT count(*) FROM (SELECT zhash FROM anchors GROUP BY zhash "
                              "HAVING count(*) > 1) AS d")[0][0]
            if dups:
                problems.append(f"{dups} anchors recorded more than once")
            count, bad = self._check_rows(deep)
            problems += bad + self._check_more()
        except self._errors as e:
            problems.append(f"reading failed: {e}")
        if len(problems) > 20:
            problems = problems[:20] + [f"... and {len(problems) - 20} more"]
        return LedgerCheck(count=count, problems=tuple(problems), notes=notes)

    def _check_more(self) -> list[str]:
        """A backend's own consistency checks (leases)."""
        return []

    def _check_rows(self, deep: bool) -> tuple[int, list[str]]:
        keys = ", ".join(f"k{t}" for t in range(self.lsh.tables))
        count, bad, size = 0, [], self.dim * self._dtype.itemsize
        for batch in self._batches(f"SELECT id, z, zhash, {keys} FROM anchors ORDER BY id"):
            count += len(batch)
            good = []
            for row in batch:
                i, raw, h = row[:3]
                raw = bytes(raw) if raw is not None else None
                if not isinstance(raw, bytes) or len(raw) != size:
                    bad.append(f"anchor {i}: z is not {size} bytes")
                elif z_hash(raw) != h:
                    bad.append(f"anchor {i}: z does not match its hash (bit rot?)")
                else:
                    good.append(row)
            if not good:
                continue
            z = np.frombuffer(b"".join(bytes(r[1]) for r in good), self._dtype).reshape(len(good), self.dim)
            finite = np.all(np.isfinite(z), axis=1)
            bad += [f"anchor {r[0]}: z is not finite" for r, f in zip(good, finite) if not f]
            if deep:
                stored = np.array([r[3:] for r in good], np.int64)
                wrong = np.any(bucket_keys(self._rot, z) != stored, axis=1)
                bad += [f"anchor {r[0]}: bucket keys do not match z" for r, w in zip(good, wrong) if w]
        return count, bad

    # ------------------------------------------------------------ export

    def export(self, path: str | Path) -> int:
        """Write every anchor to a JSON Lines file, atomically; returns the number written.

        First line: {"format": "passersby-ledger-export", "version", "dim", "z_dtype", "threshold"}.
        Then one object per anchor in id order: {"id", "channel", "model_hash", "shown_at", "state", "z"},
        state being "shown", or in an edition "leased" (claimed ahead by a console, not shown yet)
        or "returned" (given back unshown; never shown), z being base64 of the little-endian
        stored values (exact; decode with
        np.frombuffer(base64.b64decode(z), "<f4" or "<f2")). Reads one consistent snapshot, so
        it can run beside a live stream.

        Raises:
            LedgerError: if the file cannot be written (the previous file, if any, is intact).
        """
        out = Path(path)
        self._refuse_own_file(out)
        header = {"format": f"{FORMAT}-export", "version": VERSION, "dim": self.dim,
                  "z_dtype": self._dtype.name, "threshold": self.threshold}
        try:
            with self._snapshot():
                batches = self._batches(self._export_sql)
                lines = (json.dumps({"id": int(i), "channel": c, "model_hash": m, "shown_at": t, "state": st,
                                     "z": base64.b64encode(bytes(z)).decode("ascii")})
                         for batch in batches for i, c, m, t, z, st in batch)
                return write_lines(out, [json.dumps(header)], lines)
        except self._errors as e:
            raise self._failure(e, "exporting") from e

    # export's rows: (id, channel, model_hash, shown_at, z, state); every anchor of a ledger
    # without leases was shown (PgLedger joins its leases for the state)
    _export_sql = "SELECT id, channel, model_hash, shown_at, z, 'shown' FROM anchors ORDER BY id"

    def _refuse_own_file(self, out: Path) -> None:
        """Raise if `out` is one of the ledger's own files (SQLite)."""

    def copy_in(self, rows: Iterable[list[tuple]], rng: dict[str, tuple]) -> int:
        """Append anchors (`rows_for_copy` batches of another ledger) with their ids, and set the
        channels' RNG rows, in one transaction (ledger migrate). The ledger must hold no anchors.

        Returns:
            the number of anchors copied in.
        """
        try:
            self._begin_write()
            if self._rows("SELECT count(*) FROM anchors")[0][0]:
                raise self._err("already holds anchors; migrate into a new, empty ledger")
            n = self._insert_copied(rows)
            self._insert_rng([(c, *v) for c, v in rng.items()])
            self._end(commit=True)
        except BaseException as e:
            try:
                self._end(commit=False)
            except self._errors:  # the connection is already gone: nothing was committed
                pass
            if isinstance(e, self._errors):
                raise self._failure(e, "migrating") from e
            raise
        return n

    def _insert_copied(self, rows: Iterable[list[tuple]]) -> int:
        """Backend: insert (id, channel, z, zhash, k0.., model_hash, shown_at) rows as they are."""
        raise NotImplementedError

    def _insert_rng(self, rows: list[tuple]) -> None:
        """Backend: insert (channel, state, counter, rejected, first_at, last_at) rows."""
        raise NotImplementedError

    def rows_for_copy(self) -> Iterator[list[tuple]]:
        """Every anchor as (id, channel, z, zhash, k0.., model_hash, shown_at), in id order, in batches."""
        keys = ", ".join(f"k{t}" for t in range(self.lsh.tables))
        try:
            yield from self._batches(f"SELECT id, channel, z, zhash, {keys}, model_hash, shown_at FROM anchors ORDER BY id")
        except self._errors as e:
            raise self._failure(e, "reading") from e


def write_lines(path: Path, head: Iterable[str], lines: Iterable[str]) -> int:
    """Stream lines to `path` atomically (passersby.atomic); returns the number of `lines`."""
    n = 0
    try:
        with atomic_open(path, "w") as f:
            for line in head:
                f.write(line + "\n")
            for line in lines:
                f.write(line + "\n")
                n += 1
    except OSError as e:
        raise LedgerError(f"{path}: could not write the export ({e.strerror or e}); "
                          "free disk space or choose another path") from e
    return n
