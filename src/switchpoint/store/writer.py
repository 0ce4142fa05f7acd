"""The ledger's write primitives: a batch of rows inserted and the per-instance totals upserted in
one transaction, and retention pruning.

Rows are tuples in the column order of :data:`tables.REQUEST_COLUMNS` / :data:`tables.ATTEMPT_COLUMNS`
(the store knows no records: ``accounting.ledger`` converts). Statements are built once per
writer and run with the driver's ``executemany`` (no SQLAlchemy compilation per batch).
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import operator
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import Engine

from switchpoint.store.tables import (
    ATTEMPT_COLUMNS,
    BUCKETS,
    INF,
    REQUEST_COLUMNS,
    TOKEN_COLUMNS,
)
from switchpoint.store.tables import attempts as attempts_table
from switchpoint.store.tables import requests as requests_table

Row = tuple[Any, ...]

_R = {name: i for i, name in enumerate(REQUEST_COLUMNS)}
_INSTANCE, _DEPLOYMENT, _ALIAS, _STATUS, _ERROR, _TASK = (
    _R["instance"],
    _R["deployment"],
    _R["alias"],
    _R["status"],
    _R["error_kind"],
    _R["task"],
)
_LATENCY, _TTFT, _COST, _SAVED = _R["latency_ms"], _R["ttft_ms"], _R["cost_usd"], _R["saved_usd"]
_TOKENS = tuple(_R[name] for name in TOKEN_COLUMNS)
_REQUEST_ID, _STARTED_AT = _R["request_id"], _R["started_at"]

_TOTAL_KEYS = ("instance", "deployment", "alias", "status", "error_kind", "task")
_TOTAL_SUMS = (
    "requests",
    *TOKEN_COLUMNS,
    "cost_usd",
    "saved_usd",
    "latency_ms_sum",
    "ttft_ms_sum",
    "ttft_count",
)
_BUCKET_KEYS = ("instance", "metric", "deployment", "alias", "le")
_BOUNDS = (*BUCKETS, INF)

_UNIQUE_VIOLATION = "23505"
#: SQLite: rows per multi-row INSERT (one statement, prepared once, binds a chunk's values: about
#: 9 k instructions a request fewer than ``executemany``'s step and reset per row); a batch's
#: remainder goes through ``executemany``. Bounded by the parameters a statement may bind
#: (SQLITE_MAX_VARIABLE_NUMBER: 32,766 since SQLite 3.32, 999 before).
MULTI_ROWS = 100
_SQLITE_PARAMS = 32_766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999
#: Rows per DELETE when pruning (short transactions: writers are never held up for long).
PRUNE_CHUNK = 10_000


def _insert(table: str, columns: Sequence[str], ph: str, conflict: str = "ON CONFLICT DO NOTHING") -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([ph] * len(columns))}) {conflict}"


def _upsert(table: str, keys: Sequence[str], sums: Sequence[str], ph: str) -> str:
    sets = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in sums)
    return _insert(table, (*keys, *sums), ph, f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}")


def _values(table: str, columns: Sequence[str], ph: str) -> tuple[int, str]:
    """(rows, a multi-row INSERT of that many rows): ``MULTI_ROWS``, fewer if the parameters
    would pass SQLite's limit."""
    n = max(1, min(MULTI_ROWS, _SQLITE_PARAMS // len(columns)))
    one = f"({', '.join([ph] * len(columns))})"
    values = ", ".join([one] * n)
    return n, f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values} ON CONFLICT DO NOTHING"


#: Column sets (by the columns a batch leaves all NULL) whose statements a table keeps; past
#: that the cache starts again.
_MAX_SHAPES = 256


class _Inserts:
    """SQLite: one table's rows inserted by a statement that names only the columns some row of
    the batch sets; a column NULL in every row is left out and takes its DEFAULT, NULL.

    Python's sqlite3 (3.11) binds exact int, float and str directly but looks every other value,
    ``None`` too, up as an adapter (``pysqlite_microprotocols_adapt``: about 1.1 k instructions a
    NULL even with ``engine._bind_none_fast``'s adapter), and a request row has a dozen and more
    NULLs, most of them in columns NULL across the whole batch (team, task, session, tags, bodies,
    media units, ...). Which columns those are is found by C-level iteration: the batch is
    transposed (``zip``) and each column compared with a tuple of NULLs (a tuple comparison stops
    at its first difference); the kept columns are zipped back into rows. Rows keep their
    order. Columns that are NOT NULL, keys or have a default are always named (a NULL there still
    fails as it did). Full chunks go in ``MULTI_ROWS`` rows per statement (bounded by the
    parameter limit), the remainder through ``executemany``.
    """

    def __init__(self, table: Any, ph: str) -> None:
        self.name: str = table.name
        self.columns: tuple[str, ...] = tuple(c.name for c in table.columns)
        self._always = tuple(
            not c.nullable or c.primary_key or c.server_default is not None or c.default is not None
            for c in table.columns
        )
        self._ph = ph
        #: every column: (rows per multi-row INSERT, that INSERT, the one-row INSERT)
        self._full = (*_values(self.name, self.columns, ph), _insert(self.name, self.columns, ph))
        #: the columns kept -> (rows per multi-row INSERT, that INSERT, the one-row INSERT)
        self._sql: dict[tuple[bool, ...], tuple[int, str, str]] = {}

    def _statements(self, keep: tuple[bool, ...]) -> tuple[int, str, str]:
        s = self._sql.get(keep)
        if s is None:
            if len(self._sql) >= _MAX_SHAPES:
                self._sql.clear()
            cols = tuple(itertools.compress(self.columns, keep))
            s = self._sql[keep] = (*_values(self.name, cols, self._ph), _insert(self.name, cols, self._ph))
        return s

    def insert(self, cur: Any, rows: Sequence[Row]) -> None:
        # the batch by column; one is kept when some row sets it (differs from a tuple of NULLs)
        columns = list(zip(*rows, strict=True))
        nulls = (None,) * len(rows)
        keep = tuple(map(operator.or_, self._always, map(operator.ne, columns, itertools.repeat(nulls))))
        if all(keep):
            n, multi, single = self._full
        else:
            n, multi, single = self._statements(keep)
            rows = list(zip(*itertools.compress(columns, keep), strict=True))
        chain = itertools.chain.from_iterable
        full = len(rows) - len(rows) % n
        for i in range(0, full, n):
            cur.execute(multi, tuple(chain(rows[i : i + n])))
        if full < len(rows):
            cur.executemany(single, rows[full:])


_KEY = operator.itemgetter(_INSTANCE, _DEPLOYMENT, _ALIAS, _STATUS, _ERROR, _TASK)
_SUMS = operator.itemgetter(*_TOKENS, _COST, _SAVED, _LATENCY)
_TTFT_OF = operator.itemgetter(_TTFT)


def _bucket_counts(ms: Iterable[float]) -> Counter[int]:
    """How many of these milliseconds fall in each histogram bucket (by index into the bounds)."""
    seconds = map(operator.truediv, ms, itertools.repeat(1000.0))
    return Counter(map(bisect.bisect_left, itertools.repeat(BUCKETS), seconds))


def aggregate(rows: Iterable[Row]) -> tuple[list[Row], list[Row]]:
    """The totals and histogram increments a batch of request rows adds (one row per key).

    Rows are grouped by their totals key first, then each group's columns are summed and its
    latencies bucketed by C-level iteration (``zip``, ``sum``, ``map``, ``Counter``): about a
    tenth of the instructions of a Python loop over every row and column."""
    groups: dict[tuple[Any, ...], list[Row]] = {}
    for r in rows:
        k = _KEY(r)
        g = groups.get(k)
        if g is None:
            groups[k] = [r]
        else:
            g.append(r)
    totals: dict[tuple[Any, ...], list[Any]] = {}
    buckets: dict[tuple[Any, ...], int] = {}
    n_tokens = len(_TOKENS)
    for (instance, deployment, alias, status, error, task), g in groups.items():
        deployment = deployment or ""
        key = (instance, deployment, alias, status, error or "", task or "")
        cols = list(zip(*map(_SUMS, g), strict=True))
        # None and 0 add nothing: both left out of the sums
        sums: list[Any] = [sum(filter(None, c)) for c in cols[:n_tokens]]
        cost, saved = float(sum(filter(None, cols[n_tokens]))), float(sum(filter(None, cols[n_tokens + 1])))
        latencies = cols[n_tokens + 2]
        if None in latencies:
            latencies = tuple(x or 0.0 for x in latencies)
        ttfts = [t for t in map(_TTFT_OF, g) if t is not None]
        row = [len(g), *sums, cost, saved, float(sum(latencies)), float(sum(ttfts)), len(ttfts)]
        t = totals.get(key)
        if t is None:
            totals[key] = row
        else:  # a NULL deployment, error kind or task and an empty one are the same key
            totals[key] = [a + b for a, b in zip(t, row, strict=True)]
        for metric, values in (("latency", latencies), ("ttft", ttfts)):
            for i, n in _bucket_counts(values).items():
                bkey = (instance, metric, deployment, alias, _BOUNDS[i])
                buckets[bkey] = buckets.get(bkey, 0) + n
    return [(*k, *v) for k, v in totals.items()], [(*k, n) for k, n in buckets.items()]


class Writer:
    """Writes batches to one database. Thread-compatible: use from one thread at a time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        ph = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._ph = ph
        #: False and True as this database takes them best: SQLite's driver binds a ``bool``
        #: only after a failed adapter lookup (about 15 k instructions each), so 0 and 1 there.
        self.truth: tuple[Any, Any] = (0, 1) if engine.dialect.name == "sqlite" else (False, True)
        self._requests = _insert("requests", REQUEST_COLUMNS, ph)
        self._attempts = _insert("attempts", ATTEMPT_COLUMNS, ph)
        self._totals = _upsert("usage_totals", _TOTAL_KEYS, _TOTAL_SUMS, ph)
        self._buckets = _upsert("latency_buckets", _BUCKET_KEYS, ("count",), ph)
        #: SQLite: each table's rows inserted by their NULL pattern (None elsewhere).
        self._sqlite: tuple[_Inserts, _Inserts] | None = None
        if engine.dialect.name == "sqlite":
            self._sqlite = (_Inserts(requests_table, ph), _Inserts(attempts_table, ph))
        #: PostgreSQL: rows go in with COPY (about 50 k instructions a request fewer than
        #: psycopg's executemany); a batch COPY refuses (a request id already there) is written
        #: again the ordinary way, which skips that row.
        self._copy = (
            (
                f"COPY requests ({', '.join(REQUEST_COLUMNS)}) FROM STDIN",
                f"COPY attempts ({', '.join(ATTEMPT_COLUMNS)}) FROM STDIN",
            )
            if engine.dialect.name == "postgresql"
            else None
        )

    def write(self, requests: Sequence[Row], attempts: Sequence[Row]) -> None:
        """Insert the rows and add them to the totals, all in one transaction (a request already
        in the ledger is skipped; it is also left out of the totals only through :meth:`replay`)."""
        if not requests and not attempts:
            return
        if self._copy is not None:
            try:
                with self._transaction() as cur:
                    self._write_copy(cur, requests, attempts)
                return
            except Exception as exc:
                if getattr(exc, "sqlstate", None) != _UNIQUE_VIOLATION:
                    raise
        with self._transaction() as cur:
            self._write(cur, requests, attempts)

    def _write_copy(self, cur: Any, requests: Sequence[Row], attempts: Sequence[Row]) -> None:
        assert self._copy is not None
        for sql, rows in zip(self._copy, (requests, attempts), strict=True):
            if rows:
                with cur.copy(sql) as copy:
                    write_row = copy.write_row
                    for row in rows:
                        write_row(row)
        if requests:
            totals, buckets = aggregate(requests)
            cur.executemany(self._totals, totals)
            cur.executemany(self._buckets, buckets)

    def replay(self, requests: Sequence[Row], attempts: Sequence[Row]) -> None:
        """Like :meth:`write`, for rows that may already be in the ledger (a spill file replayed
        after a crash between its commit and its removal): those are neither inserted nor counted."""
        if not requests:
            return
        with self._transaction() as cur:
            have = self._existing(cur, [r[_REQUEST_ID] for r in requests])
            if have:
                requests = [r for r in requests if r[_REQUEST_ID] not in have]
                attempts = [a for a in attempts if a[0] not in have]
            self._write(cur, requests, attempts)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        """A DBAPI cursor in one transaction, on a connection from the engine's pool (no
        SQLAlchemy statement machinery: the statements are plain driver SQL)."""
        conn = self.engine.raw_connection()
        try:
            cur = conn.cursor()
            try:
                yield cur
            finally:
                cur.close()
            conn.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                conn.rollback()
            raise
        finally:
            conn.close()  # back to the pool

    def _write(self, cur: Any, requests: Sequence[Row], attempts: Sequence[Row]) -> None:
        lite = self._sqlite
        if requests:
            if lite is None:
                cur.executemany(self._requests, requests)
            else:
                lite[0].insert(cur, requests)
            totals, buckets = aggregate(requests)
            cur.executemany(self._totals, totals)
            cur.executemany(self._buckets, buckets)
        if attempts:
            if lite is None:
                cur.executemany(self._attempts, attempts)
            else:
                lite[1].insert(cur, attempts)

    def _existing(self, cur: Any, ids: Sequence[str]) -> set[str]:
        have: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            sql = (
                f"SELECT request_id FROM requests WHERE request_id IN ({', '.join([self._ph] * len(chunk))})"
            )
            cur.execute(sql, tuple(chunk))
            have.update(row[0] for row in cur.fetchall())
        return have

    def prune(self, before: float) -> int:
        """Delete requests (and their attempts) that started before ``before`` (epoch seconds),
        and feedback given and chat completions stored before it. The totals are counters and stay.
        Returns requests deleted."""
        ph = self._ph
        deleted: int = 0
        steps = (
            f"DELETE FROM attempts WHERE request_id IN (SELECT request_id FROM requests"
            f" WHERE started_at < {ph} LIMIT {PRUNE_CHUNK})",
            f"DELETE FROM requests WHERE request_id IN (SELECT request_id FROM requests"
            f" WHERE started_at < {ph} LIMIT {PRUNE_CHUNK})",
        )
        while True:
            with self._transaction() as cur:
                cur.execute(steps[0], (before,))
                cur.execute(steps[1], (before,))
                n = int(cur.rowcount)
            deleted += max(n, 0)
            if n < PRUNE_CHUNK:
                break
        with self._transaction() as cur:
            cur.execute(f"DELETE FROM feedback WHERE created_at < {ph}", (before,))
            cur.execute(f"DELETE FROM chat_completions WHERE created_at < {ph}", (before,))
        return deleted
