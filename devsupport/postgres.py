"""A throwaway PostgreSQL server (initdb + pg_ctl) for tests, benchmarks and local experiments.

PostgreSQL refuses to run as root, so when we are root the binaries run as the ``postgres`` user
(created if missing) through ``runuser``; data and socket live in a temporary directory it owns.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

PG_USER = "postgres"


class PostgresUnavailable(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_pg_binaries() -> tuple[str, str] | None:
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    return (initdb, pg_ctl) if initdb and pg_ctl else None


def _as_pg_user(args: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return args
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", PG_USER, "--", *args]
    return ["su", PG_USER, "-c", " ".join(args)]


def _ensure_pg_user() -> None:
    if os.geteuid() != 0:
        return
    if subprocess.run(["id", "-u", PG_USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", PG_USER], check=True, capture_output=True)


class ThrowawayPostgres:
    """``with ThrowawayPostgres() as pg: pg.create_database()`` → a SQLAlchemy URL."""

    def __init__(self) -> None:
        binaries = find_pg_binaries()
        if binaries is None:
            raise PostgresUnavailable("initdb/pg_ctl not found on PATH")
        self.initdb, self.pg_ctl = binaries
        self.root = Path(tempfile.mkdtemp(prefix="synflow-pg-"))
        self.port = free_port()
        self.data = self.root / "data"

    def start(self) -> ThrowawayPostgres:
        _ensure_pg_user()
        if os.geteuid() == 0:
            shutil.chown(self.root, PG_USER)
        self.root.chmod(0o700)
        self._run(
            [self.initdb, "-D", str(self.data), "-A", "trust", "-U", PG_USER, "-E", "UTF8", "--no-sync"]
        )
        self.resume()
        return self

    def resume(self) -> None:
        """Start the server (again, after ``halt``) on the same port and data."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            [self.pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start"]
        )

    def halt(self, mode: str = "immediate") -> None:
        """Stop the server but keep its data, as a crash (``immediate``) or a clean shutdown (``fast``)."""
        self._run([self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "stop"])

    def _run(self, args: list[str]) -> None:
        result = subprocess.run(_as_pg_user(args), capture_output=True, text=True)
        if result.returncode != 0:
            raise PostgresUnavailable(
                f"{Path(args[0]).name} failed: {result.stderr.strip() or result.stdout}"
            )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None, template: str | None = None) -> str:
        """A new empty database, or a copy of ``template`` (a file copy: far faster than migrating)."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        copy = f' TEMPLATE "{template}"' if template else ""
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user={PG_USER} dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{copy}')
        return self.url(name)

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run(
                _as_pg_user([self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop"]),
                capture_output=True,
            )
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ThrowawayPostgres:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
