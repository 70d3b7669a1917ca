"""The do-not-use ledger: every anchor ever shown, recorded before it is shown.

The installation promises never to show a face twice. An *anchor* is a latent z ~ N(0, I_d)
(d = 128 for the default model); `Ledger.claim` draws one from the channel's RNG, rejects it
if it is identical or closer than `threshold` to ANY anchor ever recorded (all channels, all
years), records it together with the advanced RNG state in ONE database transaction, and only
then returns it. So:

- a crash (even `kill -9`, or power loss: WAL with synchronous=FULL) before the commit loses
  the anchor and the RNG step together: the restarted stream proposes the same anchor again,
  which is fine because it was never shown;
- a crash after the commit keeps both: the anchor stays on the do-not-use list and the RNG
  never proposes it again. Either way, what was shown is recorded and never repeated.

Proposals are made outside the transaction (optimistic concurrency, `claim`): the taste and the
critic render candidates for a proposal, and SQLite's write lock must not be held meanwhile,
or every other screen's claim would wait behind them.

The package, one concept per module (arrows point down; `Ledger` is what callers hold):

- spec.py: `LedgerSpec`, which ledger an installation uses, and `open()` / `open_existing()`;
- protocol.py: `Ledger`, the interface all three backends satisfy in full;
- sqlite.py `SqliteLedger` (an installation's own file), postgres.py `PgLedger` (an edition's
  shared PostgreSQL), leased.py `LeasedLedger` (a console of an edition, claiming from anchors
  leased ahead, mirrored in mirror.py `LeaseMirror`);
- core.py: `LedgerCore`, the claim protocol, near search, reads, audit and export that the
  SQLite and PostgreSQL backends share on top of a few database primitives;
- common.py: errors (`LedgerError`, `LedgerUnreachable`), reports (`LedgerStats`,
  `LedgerCheck`), a new ledger's description (`new_meta`); lsh.py: the near-search index.

Threshold: 6 (Euclidean, in z space). Two independent draws are sqrt(2) chi_128 apart:
15.97 +- 1.00. A near copy z + e with |e| = 6 is z moved 37 % of the way toward another face.
A fresh draw lands within 6 of a given recorded anchor with probability
P(chi2_128 < 6^2 / 2) = 1.3e-32, so within 6 of ANY of 100M recorded anchors with probability
1.3e-24 (all pairs of 100M anchors, ~19 years at 6 s: 6.7e-17; at threshold 8 it would be
1.4e-11 per draw, at 10 already 5e-3). The nearest of 100M random anchors is typically 10.7
away (below 9.0 once in a million draws). So a rejection practically never hits an honest
draw: it catches true repeats - a restored RNG, a replayed seed, a deliberately proposed copy
or near copy. (A drift walk whose consecutive anchors are closer than 6 - e.g.
sqrt(1 - s^2) z + s t with s < 0.51 - needs its own, smaller threshold.)

Near search that stays fast at 100M entries: an exact radius-6 search in 128 dimensions cannot
be indexed, so the ledger uses locality-sensitive hashing (LSH) and checks the exact distance
of every candidate in numpy. Identical bytes are also caught deterministically: a UNIQUE index
on a 64-bit hash of the stored z (and identical z has identical bucket keys in every table).

- Family: cross-polytope LSH (Andoni et al. 2015), which suits points on the N(0, I) shell
  (norms 11.3 +- 0.7): a hash is the signed coordinate of largest value among 24 orthonormal
  projections of z (48 buckets). A table concatenates 5 hashes taken from disjoint rows of one
  random rotation (so they are independent and all 48^5 = 2.5e8 buckets equally likely) into
  one key, an indexed INTEGER column. 8 tables.
- Why it finds near copies: rotated, z - z' is N(0, r^2/128) per coordinate, a small jitter of
  the 24 values, so one hash agrees with probability p1(r) = 0.89, 0.79, 0.62, 0.49, 0.39 at
  r = 1, 2, 4, 6, 8, against 1/48 = 0.02 for two random anchors (r ~ 16). A table (5 hashes)
  agrees with p1^5: 0.029 at r = 6 against 4e-9 for random pairs.
- Multi-probe (Lv et al. 2007): each table probes the 256 buckets a nearby point most likely
  falls in, z's own first (lowest sums of squared gaps between winner and chosen coordinate).
  That lifts one table's recall to 0.82 / 0.49 / 0.24 at r = 4 / 6 / 8 while admitting a
  random anchor with probability 256 / 2.5e8 = 1e-6; 8 tables: recall 1 - (1 - p_table)^8.
- Recall, measured (8000 random z, near copy at distance r in a random direction): r <= 4: all
  found; r = 5: 0.9995; r = 6 (the threshold): 0.992; r = 7: 0.95; r = 8: 0.86. Exact copies:
  always (all tables, and the hash index). Honest draws never come near (above), so the misses
  can only concern deliberate near copies at the edge of the threshold.
- Cost per proposal: 8 x 256 index lookups in one statement, plus reading the z of unrelated
  anchors that share a probed bucket: 8e-6 per recorded anchor = 0.8 at 100k, 8 at 1M, 800 at
  100M. Measured on 2 CPU cores (warm cache): near search 3.2 ms at 100k, 3.6 ms at 1M; a
  durable claim (search + insert + fsync) 5.0 / 5.9 ms, 200 / 170 claims/s. At 100M with a cold
  cache, ~3000 random page reads, ~0.3 s on an SSD: still far inside one anchor every 6 s.
- Storage, measured: 820 B per anchor (z 512 B, hash, 8 keys, 9 indexes, B-tree overhead):
  ~82 GB at 100M; 510 B / ~51 GB with `half=True` (z as float16, error ~0.003).

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as home:
    ...     with LedgerSpec(pathlib.Path(home) / "ledger.sqlite").open(dim=128, seed=7) as ledger:
    ...         anchor_id, z = ledger.claim("screen-1", lambda rng: rng.standard_normal(128, dtype=np.float32), "9f2c")
    ...         near = ledger.contains_near(z + 0.1)
    >>> anchor_id, z.shape, near
    (1, (128,), True)
"""

from passersby.stream.ledger.common import (
    DEFAULT_THRESHOLD,
    FORMAT,
    MAX_TRIES,
    VERSION,
    ChannelStats,
    LedgerCheck,
    LedgerError,
    LedgerStats,
    LedgerUnreachable,
    channel_seed,
    check_args,
    new_meta,
    z_hash,
)
from passersby.stream.ledger.core import LedgerCore
from passersby.stream.ledger.leased import LeasedLedger
from passersby.stream.ledger.lsh import LshParams, bucket_keys, make_rotations, probe_keys
from passersby.stream.ledger.mirror import KEEP_DAYS, LeaseMirror
from passersby.stream.ledger.postgres import PgLedger, redact
from passersby.stream.ledger.protocol import Ledger
from passersby.stream.ledger.spec import LEASE_FILE, LedgerSpec, as_spec, is_postgres
from passersby.stream.ledger.sqlite import SqliteLedger

__all__ = [
    "DEFAULT_THRESHOLD", "FORMAT", "KEEP_DAYS", "LEASE_FILE", "MAX_TRIES", "VERSION",
    "ChannelStats", "LeaseMirror", "LeasedLedger", "Ledger", "LedgerCheck", "LedgerCore", "LedgerError",
    "LedgerSpec", "LedgerStats", "LedgerUnreachable", "LshParams", "PgLedger", "SqliteLedger",
    "as_spec", "bucket_keys", "channel_seed", "check_args", "is_postgres", "make_rotations", "new_meta",
    "probe_keys", "redact", "z_hash",
]
