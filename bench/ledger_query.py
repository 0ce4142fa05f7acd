"""Usage queries over a big ledger: fill N request rows, time ``usage()``.

    python bench/ledger_query.py                          # 1 M rows, SQLite and PostgreSQL
    python bench/ledger_query.py --rows 10000000 --backend postgresql --days 90
    python bench/ledger_query.py --json results/ledger_query.json

Rows are spread evenly over ``--days`` days ending now, over 12 deployments, 4 aliases, 6 tasks
and 50 keys, with realistic token counts and latencies (a fixed seed, so every run fills the
same ledger). SQLite is a fresh file (WAL, the gateway's own pragmas) under ``--dir``;
PostgreSQL is a fresh schema at ``--pg-url`` (dropped after, unless ``--keep``). Both are
migrated by the package's own migrations (the indexes the gateway ships), filled in bulk
(SQLite: ``executemany`` in one transaction; PostgreSQL: ``COPY``), then ``ANALYZE``d.

Timed (best and median of ``--repeat`` runs, cold cache not forced):

* ``usage(group_by=["day"], since=<a day>, until=<the next>)``: one day's usage;
* ``usage(group_by=["deployment"])``: everything, per deployment;
* ``usage(group_by=["deployment"], since=<a day>, until=<the next>)``: one day, per deployment;
* ``usage(group_by=["day"], since=<7 days ago>)``: a week, per day;
* ``usage(group_by=["day"], since=<a day>, until=<the next>, filters={"deployment": ...})``: one
  deployment's day; ``usage(filters={"deployment": ...})``: one deployment, everything;
* ``list_requests({"alias": ...}, limit=100)``: the newest page of one alias (``/admin/requests``).

Every query is the real one (``switchpoint.store.queries.usage``: tokens by class, cost, p50/p95
latency and TTFT by window functions). Not a timed unit test: run it by hand (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from switchpoint.store import migrate, queries
from switchpoint.store.engine import make_engine
from switchpoint.store.tables import REQUEST_COLUMNS

DAY = 86400
DEPLOYMENTS = [f"dep-{i:02d}" for i in range(12)]
ALIASES = ["smart", "fast", "cheap", "auto"]
TASKS = ["code", "chat", "summarize", "extract", "translate", None]
KEYS = [f"key-{i:02d}" for i in range(50)]


def generate(n: int, days: float, seed: int = 7) -> Iterator[tuple[Any, ...]]:
    """``n`` request rows in :data:`REQUEST_COLUMNS` order, oldest first."""
    rng = random.Random(seed)
    end = time.time()
    start = end - days * DAY
    step = (end - start) / n
    col = {c: i for i, c in enumerate(REQUEST_COLUMNS)}
    width = len(REQUEST_COLUMNS)
    for i in range(n):
        row: list[Any] = [None] * width
        dep = DEPLOYMENTS[i % len(DEPLOYMENTS)]
        inp = rng.randint(50, 8000)
        cached = inp // 2 if i % 3 == 0 else 0
        out = rng.randint(10, 1200)
        reasoning = out // 4 if i % 5 == 0 else 0
        failed = i % 97 == 0
        row[col["request_id"]] = f"req_{seed:02x}{i:012x}"
        row[col["started_at"]] = start + i * step
        row[col["instance"]] = "bench"
        row[col["dialect"]] = "openai" if i % 4 else "anthropic"
        row[col["endpoint"]] = "chat.completions" if i % 4 else "messages"
        row[col["alias"]] = ALIASES[i % len(ALIASES)]
        row[col["deployment"]] = dep
        row[col["provider"]] = dep[:6]
        row[col["upstream_model"]] = dep
        row[col["key_id"]] = KEYS[i % len(KEYS)]
        row[col["team"]] = f"team-{i % 5}"
        row[col["task"]] = TASKS[i % len(TASKS)]
        row[col["session"]] = f"s-{i // 8:x}"
        row[col["stream"]] = i % 2 == 0
        row[col["status"]] = 502 if failed else 200
        row[col["error_kind"]] = "upstream_error" if failed else None
        row[col["latency_ms"]] = rng.lognormvariate(6.0, 0.6)
        row[col["ttft_ms"]] = rng.lognormvariate(5.0, 0.5) if i % 2 == 0 else None
        row[col["input_tokens"]] = inp
        row[col["cached_input_tokens"]] = cached
        row[col["cache_write_5m_tokens"]] = 0
        row[col["cache_write_1h_tokens"]] = 0
        row[col["output_tokens"]] = out
        row[col["reasoning_tokens"]] = reasoning
        ci, cc, co = (inp - cached) * 1.25e-6, cached * 0.125e-6, out * 10e-6
        row[col["cost_input"]] = ci
        row[col["cost_cached_input"]] = cc
        row[col["cost_cache_write_5m"]] = 0.0
        row[col["cost_cache_write_1h"]] = 0.0
        row[col["cost_output"]] = co
        row[col["cost_reasoning"]] = 0.0
        row[col["cost_usd"]] = ci + cc + co
        row[col["attempts"]] = 1
        row[col["retries"]] = 0
        row[col["failovers"]] = 0
        row[col["hedges"]] = 0
        row[col["cached"]] = False
        row[col["batch"]] = False
        row[col["price_version"]] = "bench"
        yield tuple(row)


def _chunks(rows: Iterator[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def fill_sqlite(engine: Engine, n: int, days: float) -> None:
    cols = ", ".join(REQUEST_COLUMNS)
    sql = f"INSERT INTO requests ({cols}) VALUES ({', '.join('?' * len(REQUEST_COLUMNS))})"
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        for chunk in _chunks(generate(n, days), 50_000):
            cur.executemany(sql, chunk)
        raw.commit()
        cur.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()


def fill_postgres(engine: Engine, n: int, days: float) -> None:
    cols = ", ".join(REQUEST_COLUMNS)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        with cur.copy(f"COPY requests ({cols}) FROM STDIN") as copy:  # type: ignore[attr-defined]
            for row in generate(n, days):
                copy.write_row(row)
        raw.commit()
        cur.execute("ANALYZE requests")
        raw.commit()
    finally:
        raw.close()


def timed(fn: Callable[[], Any], repeat: int) -> dict[str, float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"best_s": round(min(times), 4), "median_s": round(statistics.median(times), 4)}


def run_queries(engine: Engine, days: float, repeat: int) -> dict[str, Any]:
    now = time.time()
    day_start = (int(now) // DAY - 2) * DAY  # a whole day, two days back
    out: dict[str, Any] = {}
    rows_in_day = queries.usage(engine, since=day_start, until=day_start + DAY)
    out["rows_in_day"] = rows_in_day[0].requests if rows_in_day else 0
    out["day_by_day"] = timed(
        lambda: queries.usage(engine, ["day"], since=day_start, until=day_start + DAY), repeat
    )
    out["day_by_deployment"] = timed(
        lambda: queries.usage(engine, ["deployment"], since=day_start, until=day_start + DAY), repeat
    )
    out["week_by_day"] = timed(lambda: queries.usage(engine, ["day"], since=now - 7 * DAY), repeat)
    out["all_by_deployment"] = timed(lambda: queries.usage(engine, ["deployment"]), max(1, repeat // 2))
    one = {"deployment": DEPLOYMENTS[3]}
    out["day_of_one_deployment"] = timed(
        lambda: queries.usage(engine, ["day"], since=day_start, until=day_start + DAY, filters=one), repeat
    )
    out["all_of_one_deployment"] = timed(lambda: queries.usage(engine, filters=one), max(1, repeat // 2))
    out["page_of_one_alias"] = timed(
        lambda: queries.list_requests(engine, {"alias": ALIASES[1]}, limit=100), repeat
    )
    return out


def bench(
    backend: str, n: int, days: float, repeat: int, workdir: Path, pg_url: str, keep: bool
) -> dict[str, Any]:
    result: dict[str, Any] = {"backend": backend, "rows": n, "days": days}
    if backend == "sqlite":
        path = workdir / f"ledger-bench-{n}.db"
        for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            p.unlink(missing_ok=True)
        url = f"sqlite:///{path}"
        cleanup: Callable[[], None] = lambda: None  # noqa: E731
        if not keep:
            cleanup = lambda: [  # noqa: E731
                q.unlink(missing_ok=True)
                for q in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
            ]
    else:
        schema = f"ledger_bench_{uuid.uuid4().hex[:8]}"
        admin = make_engine(pg_url)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in pg_url else "?"
        url = f"{pg_url}{sep}options=-csearch_path%3D{schema}"

        def cleanup() -> None:
            if not keep:
                with admin.begin() as conn:
                    conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            admin.dispose()

        result["schema"] = schema
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
        t0 = time.perf_counter()
        (fill_sqlite if backend == "sqlite" else fill_postgres)(engine, n, days)
        result["fill_s"] = round(time.perf_counter() - t0, 1)
        result.update(run_queries(engine, days, repeat))
        if backend == "postgresql":
            now = time.time()
            day_start = (int(now) // DAY - 2) * DAY
            sql = str(
                queries.usage_query(["day"], day_start, day_start + DAY, percentiles=True).compile(
                    engine, compile_kwargs={"literal_binds": True}
                )
            )
            with engine.connect() as conn:  # as usage() runs it
                conn.execute(text(f"SET LOCAL work_mem = '{queries.PG_WORK_MEM}'"))
                plan = conn.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + sql)).scalars().all()
            result["day_plan"] = plan
    finally:
        engine.dispose()
        cleanup()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--days", type=float, default=30.0, help="rows spread evenly over this many days")
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    ap.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--keep", action="store_true", help="keep the filled database")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results = []
    for b in backends:
        r = bench(b, args.rows, args.days, args.repeat, args.dir, args.pg_url, args.keep)
        plan = r.pop("day_plan", None)
        print(json.dumps(r, indent=2), flush=True)
        if plan:
            print("\n".join(plan), file=sys.stderr, flush=True)
            r["day_plan"] = plan
        results.append(r)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
