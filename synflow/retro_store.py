"""A persistent store of retro-analysis results and reachability facts, shared by processes and runs.

One SQLite file per chemistry (``retro-<key>.sqlite`` under the run's ``environment.cache_dir``),
named by a content key over everything a result depends on (see
``SynthesisChemistry.store_key``), so a stale result is never read: a changed template, library,
compatibility index or retro code gives another file; results that also depend on the start-block
set (``min_reactions`` decides it) carry its 64-bit hash as ``scope``.

Tables (``meta`` holds the store format and the full key, checked on open)::

    retro(smiles TEXT PRIMARY KEY, parents TEXT)   -- one "template slot block parent" line a parent
    start_retro(scope INTEGER, smiles TEXT, parents TEXT, PRIMARY KEY (scope, smiles))
                                                   -- only the parents that are start blocks
    reach(scope INTEGER, smiles TEXT, depth INTEGER, ok INTEGER, PRIMARY KEY (scope, smiles, depth))

Several sampler processes of a run, and several runs, read and write the same file at once: WAL
mode (readers never wait for a writer), a busy timeout, and writes batched into one short
``BEGIN IMMEDIATE`` transaction of ``INSERT OR IGNORE`` (every value is a pure function of its key,
so whichever process writes first wrote the same value). Nothing is loaded wholesale: each miss of
the in-memory caches is one indexed lookup. The store is only a cache, so it never breaks sampling:
a write that fails is dropped (or retried while the file is busy), a corrupt or foreign file is set
aside and rebuilt empty, and a store that cannot be opened at all is switched off with a warning.
It grows by about 7 KB a sampled trajectory (zincfrag × synflownet_hb, ≤ 3 reactions); past
``max_bytes`` it is only read. Each process opens its own connection on first use (never at
import, never across a fork); a pickled store travels as its path and key.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["STORE_FORMAT", "RetroStore", "StoredParent"]

log = logging.getLogger("synflow.retro_store")

STORE_FORMAT = 1  # the file layout; the retro logic's own version is part of the key

StoredParent = tuple[int, int, int, str]  # (template, slot, block, parent SMILES)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS retro (smiles TEXT PRIMARY KEY, parents TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS start_retro (
    scope INTEGER NOT NULL, smiles TEXT NOT NULL, parents TEXT NOT NULL, PRIMARY KEY (scope, smiles)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reach (
    scope INTEGER NOT NULL, smiles TEXT NOT NULL, depth INTEGER NOT NULL, ok INTEGER NOT NULL,
    PRIMARY KEY (scope, smiles, depth)
) WITHOUT ROWID;
"""
# SQLite result codes that mean the file itself is damaged (not merely busy)
_CORRUPT_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
_QUICK_CHECK_MAX_BYTES = 64 << 20  # larger files are checked lazily, by the errors their pages raise
_MAX_PENDING = 50_000  # rows kept for a retry while the file stays busy; beyond that they are dropped


def encode_parents(parents: Iterable[StoredParent]) -> str:
    """One line per parent; SMILES hold no whitespace, so a space separates the fields."""
    return "\n".join(f"{t} {s} {b} {smiles}" for t, s, b, smiles in parents)


def decode_parents(text: str) -> list[StoredParent]:
    out: list[StoredParent] = []
    for line in text.split("\n") if text else ():
        t, s, b, smiles = line.split(" ", 3)
        out.append((int(t), int(s), int(b), smiles))
    return out


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _is_corruption(error: sqlite3.Error) -> bool:
    """A damaged file, as opposed to a busy one or a misuse (which must not discard a good store)."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in _CORRUPT_CODES
    return type(error) is sqlite3.DatabaseError


class StoreCorrupt(Exception):
    """The file is not a store of this key (damaged, or written by something else)."""


class _Connection:
    """The connection of one process (SQLite connections must not cross a fork) and its pending rows."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.pid = os.getpid()
        self.retro: dict[str, str] = {}
        self.start_retro: dict[tuple[int, str], str] = {}
        self.reach: dict[tuple[int, str, int], int] = {}
        self.last_flush = time.monotonic()

    def clear(self) -> None:
        self.retro.clear()
        self.start_retro.clear()
        self.reach.clear()

    @property
    def pending(self) -> int:
        return len(self.retro) + len(self.start_retro) + len(self.reach)


def _close_quietly(state: _Connection | None) -> None:
    """Finaliser: flush what this process still holds, then close (never in a forked child)."""
    if state is None or state.pid != os.getpid():
        return
    try:
        _write(state)
        state.conn.close()
    except (sqlite3.Error, OSError):
        pass


def _write(state: _Connection) -> None:
    if not state.pending:
        return
    conn = state.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany("INSERT OR IGNORE INTO retro VALUES (?, ?)", state.retro.items())
        conn.executemany(
            "INSERT OR IGNORE INTO start_retro VALUES (?, ?, ?)",
            ((scope, smiles, parents) for (scope, smiles), parents in state.start_retro.items()),
        )
        conn.executemany(
            "INSERT OR IGNORE INTO reach VALUES (?, ?, ?, ?)",
            ((scope, smiles, depth, ok) for (scope, smiles, depth), ok in state.reach.items()),
        )
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):  # keep the error that made the write fail
            conn.execute("ROLLBACK")
        raise
    state.clear()
    state.last_flush = time.monotonic()


class RetroStore:
    """Retro-analyses and reachability facts of one chemistry (``key``) in ``path``.

    ``flush_rows`` / ``flush_seconds``: pending rows are written once there are this many, or this
    long after the last write (and when the store is flushed, closed or collected). Reads see
    other processes' committed rows; this process's own pending rows live in the caller's memory.
    ``max_bytes``: past this size the file is only read (about 7 KB a sampled trajectory is
    written with the zincfrag setting, so 2 GiB holds a few hundred thousand trajectories' worth).
    """

    def __init__(
        self,
        path: str | Path,
        key: str,
        flush_rows: int = 512,
        flush_seconds: float = 5.0,
        timeout_s: float = 10.0,
        max_bytes: int = 2 << 30,
    ) -> None:
        self.path = Path(path)
        self.key = key
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.disabled = False
        self._warned = False
        self._warned_full = False
        self.stats = {"reads": 0, "hits": 0, "written": 0, "dropped": 0, "rebuilt": 0}
        self._state: _Connection | None = None
        self._lock = threading.Lock()
        self._inherited: list[_Connection] = []  # kept open, never closed: they belong to a parent process
        self._finalizer: weakref.finalize | None = None

    @classmethod
    def in_directory(cls, directory: str | Path, key: str, **options: Any) -> RetroStore:
        return cls(Path(directory) / f"retro-{key[:24]}.sqlite", key, **options)

    # -- pickling: a store travels as its path and key; each process opens its own connection ------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_state=None, _lock=None, _inherited=[], _finalizer=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- reads ---------------------------------------------------------------------------------
    def parents(self, smiles: str) -> list[StoredParent] | None:
        """The stored retro-analysis of ``smiles`` (possibly empty), or None when not stored."""
        row = self._read("SELECT parents FROM retro WHERE smiles = ?", (smiles,))
        return None if row is None else decode_parents(row[0])

    def start_parents(self, scope: int, smiles: str) -> list[StoredParent] | None:
        """The stored start-block parents of ``smiles`` for the start-block set ``scope``."""
        row = self._read("SELECT parents FROM start_retro WHERE scope = ? AND smiles = ?", (scope, smiles))
        return None if row is None else decode_parents(row[0])

    def reachable(self, scope: int, smiles: str, depth: int) -> bool | None:
        row = self._read(
            "SELECT ok FROM reach WHERE scope = ? AND smiles = ? AND depth = ?", (scope, smiles, depth)
        )
        return None if row is None else bool(row[0])

    def _read(self, sql: str, args: Sequence[object]) -> tuple[Any, ...] | None:
        with self._lock:
            state = self._connection()
            if state is None:
                return None
            self.stats["reads"] += 1
            try:
                row = state.conn.execute(sql, args).fetchone()
            except sqlite3.Error as error:
                self._failed(error, "read")
                return None
            self.stats["hits"] += row is not None
            return row

    # -- writes --------------------------------------------------------------------------------
    def add_parents(self, smiles: str, parents: Iterable[StoredParent]) -> None:
        self._add(lambda s: s.retro.__setitem__(smiles, encode_parents(parents)))

    def add_start_parents(self, scope: int, smiles: str, parents: Iterable[StoredParent]) -> None:
        self._add(lambda s: s.start_retro.__setitem__((scope, smiles), encode_parents(parents)))

    def add_reachable(self, scope: int, smiles: str, depth: int, ok: bool) -> None:
        self._add(lambda s: s.reach.__setitem__((scope, smiles, depth), int(ok)))

    def _add(self, put: Any) -> None:
        with self._lock:
            state = self._connection()
            if state is None:
                return
            put(state)
            due = time.monotonic() - state.last_flush >= self.flush_seconds
            if state.pending >= self.flush_rows or due:
                self._flush(state)

    def flush(self) -> None:
        """Write every pending row now (a no-op for a store that is switched off)."""
        with self._lock:
            if self._state is not None and self._state.pid == os.getpid():
                self._flush(self._state)

    def close(self) -> None:
        self.flush()
        with self._lock:
            self._drop_connection()

    def _drop_connection(self) -> None:
        """Close this process's connection (its pending rows are dropped: flush first to keep them)."""
        state, self._state = self._state, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if state is not None and state.pid == os.getpid():
            with contextlib.suppress(sqlite3.Error):
                state.conn.close()

    def _flush(self, state: _Connection) -> None:
        n = state.pending
        if n and self._full():
            self.stats["dropped"] += n
            state.clear()
            state.last_flush = time.monotonic()
            return
        try:
            _write(state)
        except sqlite3.Error as error:
            if _is_corruption(error) or n > _MAX_PENDING:
                self.stats["dropped"] += n
                state.clear()
            state.last_flush = time.monotonic()  # busy: retry at the next flush, not at every add
            self._failed(error, "write")
            return
        self.stats["written"] += n

    def _full(self) -> bool:
        """Whether the file (with its write-ahead log) has reached ``max_bytes``: it then only serves
        reads, so that long runs cannot fill the disk (a fresh key, or deleting it, starts over)."""
        try:
            size = sum(_size(Path(f"{self.path}{suffix}")) for suffix in ("", "-wal"))
        except OSError:
            return False
        if size < self.max_bytes:
            return False
        if not self._warned_full:
            self._warned_full = True
            log.warning("retro store %s has reached %d bytes: it is read, no longer written", self.path, size)
        return True

    # -- opening, checking, rebuilding -----------------------------------------------------------
    def _connection(self) -> _Connection | None:
        """This process's connection, opened on first use (and again after a fork)."""
        if self.disabled:
            return None
        if self._state is not None and self._state.pid != os.getpid():
            self._inherited.append(self._state)  # closing it here could checkpoint the parent's WAL
            self._state = None
        if self._state is None:
            self._state = self._open_or_rebuild()
            if self._state is not None:
                self._finalizer = weakref.finalize(self, _close_quietly, self._state)
        return self._state

    def _open_or_rebuild(self) -> _Connection | None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                return _Connection(self._open())
            except StoreCorrupt as reason:
                log.warning("retro store %s is unusable (%s): rebuilding it", self.path, reason)
                self._set_aside()
                return _Connection(self._open())
        except (sqlite3.Error, OSError, StoreCorrupt) as error:
            log.warning("retro store %s switched off for this process: %s", self.path, error)
            self.disabled = True
            return None

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=self.timeout_s, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # a power cut may lose the last rows, never corrupt
            conn.executescript(_SCHEMA)
            self._check(conn)
        except sqlite3.Error as error:
            conn.close()
            if _is_corruption(error):
                raise StoreCorrupt(str(error)) from error
            raise
        except StoreCorrupt:
            conn.close()
            raise
        return conn

    def _check(self, conn: sqlite3.Connection) -> None:
        expected = {"format": str(STORE_FORMAT), "key": self.key}
        conn.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)", expected.items())
        found = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        if any(found.get(k) != v for k, v in expected.items()):
            raise StoreCorrupt(f"written for another key or format: {found}")
        if self.path.stat().st_size <= _QUICK_CHECK_MAX_BYTES:
            verdict = conn.execute("PRAGMA quick_check").fetchone()
            if not verdict or verdict[0] != "ok":
                raise StoreCorrupt(f"quick_check: {verdict}")

    def _set_aside(self) -> None:
        """Move a damaged file out of the way (kept for inspection; other processes that still
        have it open keep working on their copy) so that the next open starts an empty store."""
        self.stats["rebuilt"] += 1
        target = self.path.with_name(f"{self.path.name}.corrupt-{os.getpid()}-{time.time_ns()}")
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{self.path}{suffix}").rename(f"{target}{suffix}")

    def _failed(self, error: sqlite3.Error, what: str) -> None:
        if _is_corruption(error):
            log.warning("retro store %s is damaged (%s on %s): rebuilding it", self.path, error, what)
            self._drop_connection()
            self._set_aside()
            return
        if not self._warned:
            self._warned = True
            log.warning("retro store %s: a %s failed (%s); sampling goes on", self.path, what, error)
