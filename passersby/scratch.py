"""Temporary folders that a killed run does not leave behind.

A kill -9 (or a power cut) skips every cleanup, so a dry run's throwaway ledger or a
benchmark's home would stay in /tmp for good. Each `ScratchDir` holds an exclusive flock on a
lock file inside its folder for as long as it lives; creating the next one removes every
`passersby-*` folder in the temp dir whose lock file nobody holds. Folders without our lock
file (someone else's, or one a run is just creating) are left alone.

The same idea as `atomic.remove_stale_temps`, for folders.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path

from passersby.atomic import try_lock

LOCK_NAME = ".passersby-scratch.lock"
PREFIX = "passersby-"


def _unheld(lock: Path) -> bool:
    """True if `lock` exists and no live process holds its flock."""
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        return try_lock(fd)  # closing the fd below drops the lock we just took
    finally:
        os.close(fd)


def remove_stale_scratch(root: Path | None = None) -> list[Path]:
    """Remove the scratch folders of dead runs in `root` (default: the temp dir); returns them."""
    root = Path(root or tempfile.gettempdir())
    gone = []
    for old in root.glob(PREFIX + "*"):
        if old.is_dir() and not old.is_symlink() and _unheld(old / LOCK_NAME):
            shutil.rmtree(old, ignore_errors=True)
            gone.append(old)
    return gone


class ScratchDir:
    """A new folder `prefix` + random in the temp dir, locked while this object lives.

    Args:
        prefix: the folder's name start; must begin with "passersby-" (what the sweep looks at).

    Example:
        >>> with ScratchDir("passersby-dry-") as path:
        ...     (path / "ledger.sqlite").touch()
        >>> path.exists()  # removed at the end of the block
        False
    """

    def __init__(self, prefix: str) -> None:
        if not prefix.startswith(PREFIX):
            raise ValueError(f"scratch folder prefix {prefix!r} must start with {PREFIX!r}")
        remove_stale_scratch()
        self.path = Path(tempfile.mkdtemp(prefix=prefix))
        # Locked under another name first, then renamed (the lock stays with the file): a sweep
        # never sees our lock file unheld, not even between its creation and the flock.
        self._fd: int | None = os.open(self.path / (LOCK_NAME + ".new"), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        os.rename(self.path / (LOCK_NAME + ".new"), self.path / LOCK_NAME)

    def close(self) -> None:
        """Remove the folder (again: a no-op)."""
        if self._fd is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc: object) -> None:
        self.close()
