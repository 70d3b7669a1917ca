"""A throwaway PostgreSQL server for tests: Debian's binaries, a temp data dir, a unix socket.

Found via PASSERSBY_TEST_PG_BIN, else /usr/lib/postgresql/<newest>/bin. Runs as the `postgres`
user when the tests run as root (initdb refuses root). `.ci/run` installs Debian's package when
missing; elsewhere the tests that need it are skipped, saying why.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path


def pg_bin() -> Path | None:
    env = os.environ.get("PASSERSBY_TEST_PG_BIN")
    if env:
        return Path(env)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


class PgServer:
    """start(), stop(mode), url(db), create_database(name); the socket lives in the data dir's parent."""

    def __init__(self) -> None:
        self.bin = pg_bin()
        if self.bin is None:
            raise RuntimeError("no PostgreSQL binaries (apt-get install postgresql)")
        self.dir = Path(tempfile.mkdtemp(prefix="passersby-pg-", dir="/tmp"))
        self.data = self.dir / "data"
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.dir, "postgres")
        self._run(["initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"])
        self.start()

    def _run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
        argv = [str(self.bin / argv[0]), *argv[1:]]
        if self.as_root:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        # fsync stays on: the kill tests need PostgreSQL's real durability
        opts = f"-k {self.dir} -c listen_addresses= -c max_connections=100"
        self._run(["pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.dir / "log"), "-w", "start"])

    def stop(self, mode: str = "fast") -> None:
        """fast: clean; immediate: like a crash (recovery from the WAL at the next start)."""
        self._run(["pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop"], check=False)

    def url(self, db: str = "postgres") -> str:
        return f"postgresql:///{db}?host={self.dir}&user=postgres"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}"')
            con.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def wait_ready(self, timeout: float = 30.0) -> None:
        import psycopg

        end = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return
            except psycopg.Error:
                if time.monotonic() > end:
                    raise
                time.sleep(0.2)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)
