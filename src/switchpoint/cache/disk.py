"""The response cache on disk: one SQLite file, bounded in bytes (least recently used out), that
survives a restart and is shared by the processes of one host (``serve --workers N``).

* **Shared safely**: WAL journal (readers never wait for the writer), a busy timeout, every
  change in one ``BEGIN IMMEDIATE`` transaction; the total of the stored sizes is kept by
  triggers in the same file, so every process bounds the same total.
* **Never on the request path's clock**: a read is one primary-key ``SELECT`` on the event loop
  (WAL: it does not wait for writers); writes (a store, the "recently used" stamp of a hit, the
  purge of expired entries, the eviction) go to one writer thread per process, which
  :meth:`close` drains.
* **Never a failed request**: a file that cannot be read or written is a miss (logged once).
* Times are wall-clock seconds (``time.time``): entries outlive the process.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from switchpoint.errors import ConfigError

log = logging.getLogger("switchpoint.cache")

BUSY_TIMEOUT_MS = 5000
#: The reader's (on the event loop): a file that stays locked longer is a miss.
READ_TIMEOUT_MS = 50
#: A hit's "recently used" stamp is rewritten only when older than this (fewer writes).
TOUCH_AFTER_S = 1.0

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS entries ("
    " key TEXT PRIMARY KEY, value BLOB NOT NULL, size INTEGER NOT NULL,"
    " expires REAL NOT NULL, used REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS entries_used ON entries (used)",
    "CREATE INDEX IF NOT EXISTS entries_expires ON entries (expires)",
    "CREATE TABLE IF NOT EXISTS total (id INTEGER PRIMARY KEY CHECK (id = 0), bytes INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO total (id, bytes) VALUES (0, 0)",
    "CREATE TRIGGER IF NOT EXISTS entries_in AFTER INSERT ON entries"
    " BEGIN UPDATE total SET bytes = bytes + new.size WHERE id = 0; END",
    "CREATE TRIGGER IF NOT EXISTS entries_out AFTER DELETE ON entries"
    " BEGIN UPDATE total SET bytes = bytes - old.size WHERE id = 0; END",
    "CREATE TRIGGER IF NOT EXISTS entries_resized AFTER UPDATE OF size ON entries"
    " BEGIN UPDATE total SET bytes = bytes - old.size + new.size WHERE id = 0; END",
)

_Op = tuple[str, str, bytes, float]
_Item = _Op | threading.Event | None


def _connect(path: str, busy_ms: int) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=busy_ms / 1000, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
    return conn


def _transient(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


def _until_busy_timeout(work: Callable[[], object]) -> None:
    """``work`` tried again while SQLite answers "locked"/"busy", until the busy timeout has
    passed. Some of those answers come at once rather than through the busy handler (a new
    file's switch to WAL, another process's WAL recovery or checkpoint at that moment)."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            work()
            return
        except sqlite3.OperationalError as exc:
            if not _transient(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _make_wal(conn: sqlite3.Connection) -> None:
    """Switch the file to WAL (a file already in WAL never waits)."""
    _until_busy_timeout(lambda: conn.execute("PRAGMA journal_mode = WAL"))


def _open(path: str) -> sqlite3.Connection:
    """The writer's connection, the file made WAL and its tables there (refused clearly when the
    file cannot be used)."""
    writer: sqlite3.Connection | None = None
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        writer = _connect(path, BUSY_TIMEOUT_MS)
        _make_wal(writer)
        writer.execute("PRAGMA synchronous = NORMAL")
        writer.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA:
                writer.execute(statement)
            writer.execute("COMMIT")
        except BaseException:
            writer.execute("ROLLBACK")
            raise
    except (OSError, sqlite3.Error) as exc:
        if writer is not None:
            writer.close()
        raise ConfigError([f"$.cache.response.path: cannot use {path} ({exc})"]) from None
    return writer


class SqliteBackend:
    """Entries in ``path`` (created with its directory); their sizes total at most ``max_bytes``."""

    name = "sqlite"

    def __init__(self, path: str, max_bytes: int, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._clock = clock
        self._down = False
        #: Reads and writes the file refused (each logged once per outage, all counted here).
        self.failures = 0
        self._writer = _open(path)
        self._reader = _connect(path, READ_TIMEOUT_MS)
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write_loop, name="switchpoint-cache-disk", daemon=True)
        self._thread.start()
        self._closed = False

    # -- reads (the event loop's thread) -------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        return self.get_now(key)

    def get_now(self, key: str) -> bytes | None:
        if self._closed:
            return None
        try:
            row = self._reader.execute(
                "SELECT value, expires, used FROM entries WHERE key = ?", (key,)
            ).fetchone()
        except sqlite3.Error as exc:
            self._failed(exc)
            return None
        self._up()
        if row is None:
            return None
        value, expires, used = row
        now = self._clock()
        if expires <= now:
            self._queue.put(("drop", key, b"", now))
            return None
        if now - used > TOUCH_AFTER_S:
            self._queue.put(("touch", key, b"", now))
        return bytes(value)

    def total_bytes(self) -> int:
        """The total of the stored sizes (every process's entries)."""
        row = self._reader.execute("SELECT bytes FROM total WHERE id = 0").fetchone()
        return int(row[0]) if row is not None else 0

    def __len__(self) -> int:
        return int(self._reader.execute("SELECT count(*) FROM entries").fetchone()[0])

    # -- writes (the writer thread) ------------------------------------------------------------

    def put(self, key: str, value: bytes, ttl_s: float) -> None:
        if len(value) > self.max_bytes or self._closed:
            return
        self._queue.put(("put", key, value, self._clock() + ttl_s))

    def flush(self) -> None:
        """Wait until every write queued so far is done (tests, and :meth:`close`)."""
        done = threading.Event()
        self._queue.put(done)
        done.wait()

    def _write_loop(self) -> None:
        while True:
            op = self._queue.get()
            if op is None:
                return
            ops: list[_Item] = [op]
            while len(ops) < 256:  # what queued meanwhile goes in the same transaction
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._apply(ops)
                    return
                ops.append(more)
            self._apply(ops)

    def _apply(self, ops: list[_Item]) -> None:
        events = [op for op in ops if isinstance(op, threading.Event)]
        writes = [op for op in ops if isinstance(op, tuple)]
        if writes:
            try:
                _until_busy_timeout(lambda: self._transaction(writes))
            except sqlite3.Error as exc:
                self._failed(exc)
        for event in events:
            event.set()

    def _transaction(self, ops: list[_Op]) -> None:
        conn = self._writer
        now = self._clock()
        conn.execute("BEGIN IMMEDIATE")
        try:
            stored = False
            for kind, key, value, when in ops:
                if kind == "put":
                    conn.execute(
                        "INSERT INTO entries (key, value, size, expires, used) VALUES (?, ?, ?, ?, ?)"
                        " ON CONFLICT (key) DO UPDATE SET value = excluded.value, size = excluded.size,"
                        " expires = excluded.expires, used = excluded.used",
                        (key, value, len(value), when, now),
                    )
                    stored = True
                elif kind == "touch":
                    conn.execute("UPDATE entries SET used = ? WHERE key = ?", (when, key))
                else:
                    conn.execute("DELETE FROM entries WHERE key = ? AND expires <= ?", (key, when))
            if stored:
                self._bound(conn, now)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _bound(self, conn: sqlite3.Connection, now: float) -> None:
        """Expired entries out first, then the least recently used, until the total fits."""
        (total,) = conn.execute("SELECT bytes FROM total WHERE id = 0").fetchone()
        if total <= self.max_bytes:
            return
        conn.execute("DELETE FROM entries WHERE expires <= ?", (now,))
        while True:
            (total,) = conn.execute("SELECT bytes FROM total WHERE id = 0").fetchone()
            if total <= self.max_bytes:
                return
            gone = conn.execute(
                "DELETE FROM entries WHERE key = (SELECT key FROM entries ORDER BY used LIMIT 1)"
            )
            if gone.rowcount == 0:
                return

    # -- health --------------------------------------------------------------------------------

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        if not self._down:
            self._down = True
            log.warning("response cache: %s cannot be used (%s); answering without the cache", self.path, exc)

    def _up(self) -> None:
        if self._down:
            self._down = False
            log.warning("response cache: %s answers again", self.path)

    async def close(self) -> None:
        await asyncio.to_thread(self.close_now)

    def close_now(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()
        self._writer.close()
        self._reader.close()
