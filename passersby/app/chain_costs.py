"""What a chain's parts cost on this machine, remembered between starts.

Why: a restarted installation measured its generator and enhancer again before the first frame
(each compiled once more for the measurement, then timed: ~1 s of a warm start's ~3 s on a
2-core machine). A measurement is a property of (the model files, the runtime, the threads, the
CPU): it is kept in the compile cache's folder (passersby/compile_cache.py) under a key of all of
them and reused for `MAX_AGE_S`; a new model, runtime, CPU or passersby version measures again.
The live chain corrects a stale figure either way (stream/keyframes.py lowers a level that falls
behind and steps back up when there is headroom), so a remembered cost only chooses where a
screen starts.

Example:
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> remembered({"model": "ab12"}, lambda: 0.02, root=root)
    (0.02, False)
    >>> remembered({"model": "ab12"}, lambda: 0.5, root=root)
    (0.02, True)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

from passersby.atomic import atomic_open
from passersby.compile_cache import compile_cache_dir

MAX_AGE_S = 7 * 86_400  # a week: a machine's speed drifts with updates and thermal paste
FILE = "chain-costs.json"
log = logging.getLogger("passersby")


def cpu_identity() -> str:
    """The CPU model, its flags and the core count: a measurement holds for these only."""
    try:
        info = Path("/proc/cpuinfo").read_text(errors="replace")
        model = next((l.split(":", 1)[1].strip() for l in info.splitlines() if l.startswith("model name")), "")
        flags = next((l.split(":", 1)[1].strip() for l in info.splitlines() if l.startswith("flags")), "")
    except OSError:
        import platform

        model, flags = platform.processor(), ""
    return f"{model}|{hashlib.sha256(flags.encode()).hexdigest()[:12]}|{os.cpu_count()}"


def _key(parts: dict[str, Any]) -> str:
    from passersby import __version__

    blob = json.dumps({**parts, "cpu": cpu_identity(), "passersby": __version__}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _fresh(entry: Any, t: float) -> bool:
    """An entry {"seconds", "at"} younger than MAX_AGE_S (a hand-edited or damaged one is not)."""
    at = entry.get("at") if isinstance(entry, dict) else None
    return isinstance(at, (int, float)) and 0 <= t - at < MAX_AGE_S


def remembered(parts: dict[str, Any], measure: Callable[[], float], root: Path | None = None,
               now: Callable[[], float] = time.time) -> tuple[float, bool]:
    """(seconds, whether remembered): the stored figure for `parts` on this CPU if it is younger
    than MAX_AGE_S, else `measure()` (stored for the next start).

    Args:
        parts: what the figure depends on besides the CPU (model hashes, runtime, threads, side).
        measure: () -> seconds, run when nothing fits.
        root: the folder (default: the compile cache's; None there: always measure).
        now: wall clock (tests inject one).
    """
    root = compile_cache_dir() if root is None else root
    if root is None:
        return measure(), False
    path, key = root / FILE, _key(parts)
    try:
        table = json.loads(path.read_text())
        if not isinstance(table, dict):
            table = {}
    except (OSError, ValueError):
        table = {}  # none yet, or damaged: measure and write a fresh one
    t = now()
    hit = table.get(key)
    if _fresh(hit, t) and isinstance(hit.get("seconds"), (int, float)):
        return float(hit["seconds"]), True
    seconds = float(measure())
    table = {k: v for k, v in table.items() if _fresh(v, t)}  # drops old and damaged entries
    table[key] = {"seconds": seconds, "at": t, "parts": parts}
    try:
        root.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "w") as f:
            f.write(json.dumps(table, indent=1, sort_keys=True))
    except OSError as e:
        log.warning("chain costs: cannot remember the measurement in %s (%s); the next start measures again", path, e)
    return seconds, False
