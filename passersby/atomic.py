"""Atomic file replacement: write a temporary file beside the target, fsync, rename, fsync dir.

A crash at any instant leaves either the old file or the new one, never a mix; an error or an
interrupt removes the temporary file. Used by checkpoints, models, pictures, logs and exports.

A kill -9 cannot remove its temporary file, so each writer holds an exclusive lock (flock) on
its temporary file while it writes, and the next write of the same target removes the
temporaries nobody holds: what killed runs left behind (a killed render's half video).

Full disks: `name_disk_error` rewords `[Errno 28] No space left on device` (which names no file)
to name the file being written and the space left, as every `atomic_open` write and the video
writer do: an operator reads which disk to clear, not an errno. (Free space checked before a
store is created is sqlite_open's `disk_free`; both modules are leaves and import nothing.)
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Iterator


@functools.cache
def _umask() -> int:
    umask = os.umask(0o022)  # the only way to read it; restored at once, read once per process
    os.umask(umask)
    return umask


def new_file_mode(path: Path) -> int:
    """Permissions for the file about to be (re)placed: the old file's, else 0o666 & ~umask."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


def fsync_dir(path: Path) -> None:
    """Make a rename or creation inside directory `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class NoSpace(OSError):
    """The disk filled up while writing a file; the message names the file and the free space
    left (errno ENOSPC, so callers that handle a full disk handle it)."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.ENOSPC, message)

    def __str__(self) -> str:
        return self.strerror


def _mb(n: float) -> str:
    """Bytes as megabytes for a message: _mb(1_500_000) -> "1.4 MB"."""
    return f"{n / 2**20:.1f} MB"


def name_disk_error(e: OSError, path: str | os.PathLike) -> OSError:
    """A full disk's `e` (ENOSPC, EDQUOT: "[Errno 28] No space left on device", naming no file)
    reworded to name `path` and the free space left; any other error is returned as it is (its
    type, e.g. PermissionError, is what callers catch).

    Args:
        e: the error from writing `path`.
        path: the file being written.

    Example:
        >>> e = name_disk_error(OSError(errno.ENOSPC, "No space left on device"), "/tmp/out.mp4")
        >>> str(e).startswith("/tmp/out.mp4: no space left on device ("), e.errno == errno.ENOSPC
        (True, True)
    """
    if isinstance(e, NoSpace) or e.errno not in (errno.ENOSPC, errno.EDQUOT):
        return e
    try:
        folder = Path(path).parent
        free = f"{_mb(shutil.disk_usage(folder).free)} free"
    except OSError:
        free = "free space unknown"
    return NoSpace(f"{path}: no space left on device ({free} in {Path(path).parent}); free some space there")


def try_lock(fd: int) -> bool:
    """Take an exclusive, non-blocking flock on fd; False if another process holds one."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove the temporary files of earlier writes of `path` that no live writer holds
    (killed runs); returns them. Names are compared as text, not globbed ("[" is allowed)."""
    path = Path(path)
    prefix, gone = f".{path.name}.", []
    try:
        names = [p for p in path.parent.iterdir() if p.name.startswith(prefix) and p.name.endswith(".tmp")]
    except OSError:
        return gone
    for p in names:
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            continue
        try:
            if try_lock(fd):
                p.unlink(missing_ok=True)
                gone.append(p)
        finally:
            os.close(fd)
    return gone


@contextlib.contextmanager
def atomic_open(path: Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file that replaces `path` when the block ends without an exception.

    Raises:
        NoSpace: the disk filled up (the message names `path` and the free space).
        OSError: from any other step (permissions); `path` is then untouched.

    Example:
        >>> path = Path(tempfile.mkdtemp()) / "x.txt"
        >>> with atomic_open(path, "w") as f:
        ...     _ = f.write("hello")
        >>> path.read_text()
        'hello'
    """
    path = Path(path)
    try:
        yield from _write_temp(path, mode)
    except OSError as e:  # a full disk names the file it was writing, not just "[Errno 28]"
        named = name_disk_error(e, path)
        if named is e:
            raise
        raise named from e
    fsync_dir(path.parent)


def _write_temp(path: Path, mode: str) -> Iterator[IO]:
    """atomic_open's body: the temporary file, yielded, then fsynced and renamed over `path`."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try_lock(fd)  # held until the file is closed: "a live writer's, not a leftover"
        text = {"encoding": "utf-8", "newline": "\n"} if "b" not in mode else {}
        with os.fdopen(fd, mode, **text) as f:
            # mkstemp creates 0600 files: give the result the permissions a plain open() would.
            os.fchmod(f.fileno(), new_file_mode(path))
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    finally:  # also on KeyboardInterrupt: never leave a temporary file behind
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
