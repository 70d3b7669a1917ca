"""The curators' ratings: one SQLite file per installation home, `<home>/taste.sqlite`.

Each rating is one row: who rated (curator), what (the latent z, float32), how ("like",
"dislike", "superlike" or "skip"), under which generator (model_hash: a z means another face
under another model), when (created_at, Unix seconds) and which screen's faces (label).
Several curators share one file; each has their own taste profile, read by `ratings(curator)`.

Durability as in the ledger: WAL with synchronous=FULL, so a rating acknowledged to the
curator survives a crash or a power cut. Exports are JSON written atomically (temp file,
fsync, rename); importing the same export twice adds nothing the second time, as a rating is
identified by (curator, exact z, created_at).

Example:
    >>> with TasteStore(resolve_home(None) / "taste.sqlite") as store:  # a curator's store on disk  # doctest: +SKIP
    ...     store.add("ada", z, "like", info.hash)
    ...     z, ratings, ids = store.ratings("ada", info.hash)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from passersby.atomic import atomic_open, fsync_dir
from passersby.home import resolve_home
from passersby.sqlite_open import CannotOpen, NoWal, open_sqlite
from passersby.taste.model import RATINGS

FORMAT = "passersby-taste"
VERSION = 1
STORE_FILE = "taste.sqlite"
MAX_CURATOR = 64
MAX_LABEL = 64
MAX_HASH = 128
MAX_DIM = 4096
_TIMEOUT_S = 30.0

_SCHEMA = [
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value)",
    """CREATE TABLE ratings (
    id INTEGER PRIMARY KEY,
    curator TEXT NOT NULL,
    z BLOB NOT NULL,
    dim INTEGER NOT NULL,
    zhash INTEGER NOT NULL,
    rating TEXT NOT NULL,
    model_hash TEXT NOT NULL,
    created_at REAL NOT NULL,
    label TEXT NOT NULL DEFAULT ''
)""",
    # What makes a rating itself: importing an export twice must not count it twice.
    "CREATE UNIQUE INDEX ratings_identity ON ratings (curator, zhash, created_at)",
    "CREATE INDEX ratings_profile ON ratings (curator, model_hash, id)",
]


class TasteStoreError(Exception):
    """The taste store or an export could not be read or written; the message names the file."""


def taste_path(home: Path | None = None) -> Path:
    """The store of installation `home` (see passersby.home), e.g. ~/.local/share/passersby/taste.sqlite."""
    return resolve_home(home) / STORE_FILE


def check_curator(name: Any) -> str:
    """`name` if it is a valid curator name, else ValueError saying why.

    A name is 1..64 printable characters without surrounding spaces (so "ada" and "ada " are
    not two curators by accident).

    Example:
        >>> check_curator("Ada L.")
        'Ada L.'
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"curator name must be a non-empty string, got {name!r}")
    if len(name) > MAX_CURATOR:
        raise ValueError(f"curator name must be at most {MAX_CURATOR} characters, got {len(name)}")
    if not name.isprintable() or name != name.strip():
        raise ValueError(f"curator name must be printable, without surrounding spaces, got {name!r}")
    return name


def _check_rating(rating: Any) -> str:
    if not isinstance(rating, str) or rating not in RATINGS:
        raise ValueError(f"rating must be one of {list(RATINGS)}, got {rating!r}")
    return rating


def _check_text(value: Any, what: str, limit: int, empty_ok: bool) -> str:
    if not isinstance(value, str) or (not empty_ok and not value):
        raise ValueError(f"{what} must be a {'' if empty_ok else 'non-empty '}string, got {value!r}")
    if len(value) > limit or not value.isprintable():
        raise ValueError(f"{what} must be at most {limit} printable characters, got {value!r}")
    return value


def _check_z(z: Any) -> np.ndarray:
    """z as the store keeps it: 1-D, finite, little-endian float32."""
    try:
        with np.errstate(over="ignore"):  # too large for float32 becomes inf, refused below
            a = np.asarray(z, dtype="<f4")
    except (TypeError, ValueError) as e:
        raise ValueError(f"z must be a vector of numbers ({e})") from None
    if a.ndim != 1 or not 1 <= a.size <= MAX_DIM:
        raise ValueError(f"z must be a vector of 1..{MAX_DIM} numbers, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("z must be finite (as float32)")
    return a


def _z_hash(stored: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(stored, digest_size=8).digest(), "little", signed=True)


class TasteStore:
    """Ratings of generated faces by curators, in one SQLite file; see the module docstring.

    Thread-safe: one connection, every call under a lock (the taste app reads and writes
    from its worker threads).

    Args:
        path: the store file (created with its schema if missing; its folder must exist).
        create: False raises TasteStoreError instead of creating a missing store.

    Raises:
        TasteStoreError: not a taste store, newer version, corrupt, unreadable.

    Example:
        >>> with TasteStore("taste.sqlite") as store:  # a curator's store on disk  # doctest: +SKIP
        ...     rid = store.add("ada", np.zeros(128, np.float32), "like", "9f2c")
    """

    def __init__(self, path: str | os.PathLike, create: bool = True) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._con: sqlite3.Connection | None = None
        self._con = self._connect(create)
        try:
            self._open_or_create()
            fsync_dir(self.path.parent)  # the WAL file's directory entry, durable like the commits
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------ opening

    def _err(self, what: str) -> TasteStoreError:
        return TasteStoreError(f"{self.path}: {what}")

    def _connect(self, create: bool) -> sqlite3.Connection:
        if self.path.is_dir():
            raise self._err("is a directory; pass the taste store file")
        if not self.path.exists() and not create:
            raise self._err("no taste store here: nobody has rated faces with this home yet (check --home)")
        if not self.path.parent.is_dir():
            raise self._err("its directory does not exist; create it first")
        try:
            # WAL + synchronous=FULL: the WAL is fsynced at every commit, so an acknowledged rating
            # survives power loss. threads: the app calls from worker threads, always under self._lock.
            return open_sqlite(self.path, busy_timeout_s=_TIMEOUT_S, threads=True)
        except CannotOpen as e:
            raise self._err(f"cannot open ({e}); check the path and its permissions") from e
        except NoWal as e:
            raise self._err(f"cannot use write-ahead logging (journal mode {e.mode!r}); put it on a local disk") from e
        except sqlite3.Error as e:  # e.g. "file is not a database", from the first pragma
            raise self._sql_failure(e, "opening") from e

    def _sql_failure(self, e: sqlite3.Error, doing: str) -> TasteStoreError:
        msg = str(e)
        if "not a database" in msg:
            return self._err("is not a passersby taste store (not an SQLite database); pass another path")
        if "malformed" in msg or "corrupt" in msg:
            return self._err(f"corrupt taste store ({msg}) while {doing}; restore it from a backup or an export")
        if "locked" in msg or "busy" in msg:
            return self._err(f"locked by another process for over {_TIMEOUT_S:.0f} s while {doing}; retry")
        return self._err(f"SQLite error while {doing} ({msg}); check disk space and permissions")

    def _open_or_create(self) -> None:
        con = self.con
        try:
            names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not names:
                self._create()
            elif "meta" not in names or "ratings" not in names:
                raise self._err("is an SQLite database but not a passersby taste store; pass another path")
            meta = dict(con.execute("SELECT key, value FROM meta"))
        except sqlite3.Error as e:
            raise self._sql_failure(e, "opening") from e
        if meta.get("format") != FORMAT:
            raise self._err(f"is an SQLite database of format {meta.get('format')!r}, not a passersby taste store")
        version = meta.get("version")
        if not isinstance(version, int) or version > VERSION:
            raise self._err(f"taste store version {version!r} is not one this passersby reads ({VERSION}); "
                            "upgrade passersby")

    def _create(self) -> None:
        from passersby import __version__

        with self._transaction():
            # Another process may have created it since we looked: the write lock settles it.
            if self.con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
                for stmt in _SCHEMA:
                    self.con.execute(stmt)
                meta = {"format": FORMAT, "version": VERSION, "created": time.time(),
                        "passersby_version": __version__}
                self.con.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT under the store's lock; ROLLBACK on any exception."""
        with self._lock:
            con = self.con
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise

    # ------------------------------------------------------------ life cycle

    @property
    def con(self) -> sqlite3.Connection:
        if self._con is None:
            raise self._err("taste store is closed")
        return self._con

    def close(self) -> None:
        """Close the database (idempotent)."""
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    def __enter__(self) -> "TasteStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ ratings

    def add(self, curator: str, z: Any, rating: str, model_hash: str, label: str = "",
            created_at: float | None = None) -> int:
        """Record one rating durably (committed and fsynced on return); returns its id.

        Args:
            curator: who rated (check_curator).
            z: the latent of the face rated, (d,).
            rating: one of RATINGS.
            model_hash: the generator that rendered z (ModelInfo.hash).
            label: which screen's faces ("feminine", "masculine" or "" for any).
            created_at: Unix seconds; default now.

        Raises:
            ValueError: an argument is invalid (the message says which).
            TasteStoreError: the database cannot be written.

        Example:
            >>> store.add("ada", rng.standard_normal(128), "superlike", info.hash)  # a curator's store on disk  # doctest: +SKIP
            17
        """
        row = _row(curator, z, rating, model_hash, label, time.time() if created_at is None else created_at)
        try:
            with self._transaction() as con:
                cur = con.execute("INSERT INTO ratings (curator, z, dim, zhash, rating, model_hash, created_at, "
                                  "label) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)
                return int(cur.lastrowid)
        except sqlite3.IntegrityError as e:
            raise self._err(f"this rating is already stored ({e})") from e
        except sqlite3.Error as e:
            raise self._sql_failure(e, "adding a rating") from e

    def ratings(self, curator: str, model_hash: str | None = None) -> tuple[np.ndarray, list[str], list[int]]:
        """One curator's ratings, oldest first: (z (n, d) float32, ratings, ids).

        Args:
            curator: whose ratings.
            model_hash: only those of this generator (a z means another face under another
                model); None: all, which must then share one latent size.

        Raises:
            TasteStoreError: mixed latent sizes without a model_hash, or the database fails.

        Example:
            >>> z, ratings, ids = store.ratings("ada", info.hash)  # a curator's store on disk  # doctest: +SKIP
        """
        check_curator(curator)
        sql = "SELECT id, z, dim, rating FROM ratings WHERE curator = ?"
        args: list[Any] = [curator]
        if model_hash is not None:
            sql += " AND model_hash = ?"
            args.append(model_hash)
        rows = self._read(sql + " ORDER BY id", args, "reading ratings")
        dims = {r[2] for r in rows}
        if len(dims) > 1:
            raise self._err(f"curator {curator!r} rated faces of several latent sizes {sorted(dims)}; "
                            "ask for one model_hash")
        d = dims.pop() if dims else 0
        z = np.frombuffer(b"".join(r[1] for r in rows), "<f4").reshape(len(rows), d).astype(np.float32)
        return z, [r[3] for r in rows], [int(r[0]) for r in rows]

    def counts(self, curator: str, model_hash: str | None = None) -> dict[str, int]:
        """How many of each rating a curator gave (every rating in RATINGS is a key)."""
        check_curator(curator)
        sql = "SELECT rating, count(*) FROM ratings WHERE curator = ?"
        args: list[Any] = [curator]
        if model_hash is not None:
            sql += " AND model_hash = ?"
            args.append(model_hash)
        found = dict(self._read(sql + " GROUP BY rating", args, "counting ratings"))
        return {r: int(found.get(r, 0)) for r in RATINGS}

    def curators(self) -> list[tuple[str, int, float]]:
        """Every curator with ratings: (name, number of ratings, time of the last), by name."""
        rows = self._read("SELECT curator, count(*), max(created_at) FROM ratings GROUP BY curator "
                          "ORDER BY curator", [], "listing curators")
        return [(str(name), int(n), float(last)) for name, n, last in rows]

    def _read(self, sql: str, args: Sequence[Any], doing: str) -> list[tuple]:
        try:
            with self._lock:
                return self.con.execute(sql, args).fetchall()
        except sqlite3.Error as e:
            raise self._sql_failure(e, doing) from e

    # ------------------------------------------------------------ export / import

    def export_dict(self, curator: str) -> dict[str, Any]:
        """A curator's ratings as the export format (see export_json)."""
        check_curator(curator)
        rows = self._read("SELECT z, rating, model_hash, created_at, label FROM ratings WHERE curator = ? "
                          "ORDER BY id", [curator], "exporting")
        items = [{"rating": rating, "model_hash": mh, "created_at": at, "label": label,
                  # float32 -> float is exact and JSON round-trips floats: the import is bit-identical.
                  "z": np.frombuffer(z, "<f4").tolist()} for z, rating, mh, at, label in rows]
        return {"format": FORMAT, "version": VERSION, "curator": curator, "exported_at": time.time(),
                "count": len(items), "ratings": items}

    def export_json(self, curator: str, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> int:
        """Write a curator's ratings to a JSON file, atomically; returns how many.

        The file: {"format": "passersby-taste", "version": 1, "curator", "exported_at", "count",
        "ratings": [{"z": [...], "rating", "model_hash", "created_at", "label"}, ...]}, plus the
        top-level fields of `extra` (e.g. "feature_heads", taste/head.py; readers that do not
        know a field ignore it, so older versions still import the ratings).

        Raises:
            ValueError: bad curator name.
            TasteStoreError: no such curator, or the file cannot be written.

        Example:
            >>> store.export_json("ada", "ada-taste.json")  # a curator's store on disk  # doctest: +SKIP
            120
        """
        data = self.export_dict(curator)
        clash = set(extra or {}) & set(data)
        if clash:
            raise ValueError(f"extra export fields {sorted(clash)} would overwrite the ratings' fields")
        data.update(extra or {})
        if not data["ratings"]:
            raise self._err(f"curator {curator!r} has no ratings to export; "
                            f"curators here: {[c[0] for c in self.curators()]}")
        try:
            with atomic_open(Path(path), "w") as f:
                json.dump(data, f, separators=(",", ":"))
                f.write("\n")
        except OSError as e:
            raise TasteStoreError(f"{path}: cannot write the export ({e.strerror or e})") from e
        return data["count"]

    def import_json(self, path: str | os.PathLike, curator: str | None = None) -> int:
        """Add the ratings of an export file; returns how many were new.

        Ratings already here (same curator, z and time) are skipped, so importing a file twice
        changes nothing. All or nothing: one invalid rating rejects the whole file.

        Args:
            path: a file written by export_json.
            curator: file the ratings under this name instead of the file's curator.

        Raises:
            TasteStoreError: unreadable, not an export, or an invalid field (the message names
                the file and the field, e.g. "ratings[3].rating").

        Example:
            >>> store.import_json("ada-taste.json", curator="ada-2")  # a curator's store on disk  # doctest: +SKIP
            120
        """
        rows = list(_parse_export(Path(path), curator))
        try:
            with self._transaction() as con:
                known = dict(con.execute("SELECT model_hash, min(dim) FROM ratings GROUP BY model_hash").fetchall())
                _check_dims(Path(path), rows, known)
                before = con.total_changes
                con.executemany("INSERT OR IGNORE INTO ratings (curator, z, dim, zhash, rating, model_hash, "
                                "created_at, label) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
                return con.total_changes - before
        except sqlite3.Error as e:
            raise self._sql_failure(e, f"importing {path}") from e


EARLIEST, LATEST = 946_684_800.0, 4_102_444_800.0  # 2000-01-01 and 2100-01-01, UTC


def _check_time(value: Any) -> float:
    # Bounded: a time like 1e300 imported once broke every later listing (datetime overflow).
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and EARLIEST <= value <= LATEST):
        raise ValueError(f"created_at must be Unix seconds between the years 2000 and 2100, got {value!r}")
    return float(value)


_CHECKS = {
    "z": _check_z,
    "rating": _check_rating,
    "model_hash": lambda v: _check_text(v, "model_hash", MAX_HASH, empty_ok=False),
    "label": lambda v: _check_text(v, "label", MAX_LABEL, empty_ok=True),
    "created_at": _check_time,
}


def _row(curator: Any, z: Any, rating: Any, model_hash: Any, label: Any, created_at: Any) -> tuple:
    """The ratings-table row of one rating, every field checked (ValueError names the field)."""
    check_curator(curator)
    v = {key: check(value) for (key, check), value in
         zip(_CHECKS.items(), (z, rating, model_hash, label, created_at))}
    stored = v["z"].tobytes()
    return (curator, stored, v["z"].size, _z_hash(stored), v["rating"], v["model_hash"], v["created_at"], v["label"])


def _check_dims(path: Path, rows: list[tuple], known: dict[str, int]) -> None:
    """Every rating of one model has latents of one size (the model's z_dim): a rating whose
    latent has another size than the store's (or the file's first) ratings of that model is
    refused, naming it, before it can stop `taste` or `serve` from starting."""
    dims = dict(known)
    for i, row in enumerate(rows):
        dim, model = row[2], row[5]
        want = dims.setdefault(model, dim)
        if dim != want:
            raise TasteStoreError(f"{path}: ratings[{i}].z: {dim} numbers, but ratings of model {model} have "
                                  f"{want} (its latent size); fix or drop that rating")


def _load_export(path: Path) -> Any:
    """The JSON of an export file; TasteStoreError if unreadable or not JSON."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise TasteStoreError(f"{path}: cannot read the export ({getattr(e, 'strerror', None) or e})") from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise TasteStoreError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from e
    except RecursionError:
        raise TasteStoreError(f"{path}: not valid JSON (nested too deeply)") from None


def _parse_export(path: Path, curator: str | None) -> Iterator[tuple]:
    """Rows of an export file, every field checked; TasteStoreError names the file and field."""
    def bad(field: str, why: str) -> TasteStoreError:
        return TasteStoreError(f"{path}: {field}: {why}")

    data = _load_export(path)
    if not isinstance(data, dict):
        raise TasteStoreError(f"{path}: not a passersby taste export (expected a JSON object)")
    if data.get("format") != FORMAT:
        raise bad("format", f"expected {FORMAT!r}, got {data.get('format')!r}")
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= VERSION:
        raise bad("version", f"expected 1..{VERSION}, got {version!r} (a newer export needs a newer passersby)")
    try:
        name = check_curator(curator if curator is not None else data.get("curator"))
    except ValueError as e:
        raise bad("curator" if curator is None else "--curator", str(e)) from None
    items = data.get("ratings")
    if not isinstance(items, list):
        raise bad("ratings", "expected a list of ratings")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise bad(f"ratings[{i}]", "expected an object")
        item = {"label": "", **item}
        for key, check in _CHECKS.items():
            if key not in item:
                raise bad(f"ratings[{i}].{key}", "missing")
            if key == "z" and (not isinstance(item[key], list) or any(
                    isinstance(v, bool) or not isinstance(v, (int, float)) for v in item[key])):
                raise bad(f"ratings[{i}].z", "expected a list of numbers")
            try:
                item[key] = check(item[key])
            except ValueError as e:
                raise bad(f"ratings[{i}].{key}", str(e)) from None
        yield _row(name, item["z"], item["rating"], item["model_hash"], item["label"], item["created_at"])
