"""The console's overview over a big ledger: fill N request rows, time the page.

    python bench/console_overview.py                       # 1 M rows over 30 days, SQLite
    python bench/console_overview.py --backend postgresql  # the same on PostgreSQL
    python bench/console_overview.py --rows 200000 --days 7

The ledger is filled by bench/ledger_query.py's bulk fill (the same generator: 12 deployments,
realistic tokens and latencies, a fixed seed). Then a gateway (master key, no traffic) serves the
console over a real socket and a signed-in client times ``GET /ui/overview`` for each range of the
picker: the whole page — its queries (totals with p50/p95 latency and TTFT, the per-hour or per-day
series with their percentiles, spend today and this month, cache savings by deployment, retries and
failovers) and the HTML with its charts. Best and median of ``--repeat`` runs.

Then the other pages once each at their default range (24 h; the keys page with no virtual keys).

Not a timed unit test: run it by hand (docs/console.md has the figures).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from ledger_query import fill_postgres, fill_sqlite

from switchpoint import defaults
from switchpoint.api.app import create_app
from switchpoint.config import parse
from switchpoint.store import migrate
from switchpoint.store.engine import make_engine

from servers import serve_in_thread

MASTER = "sk-bench-console"


def sign_in(client: httpx.Client) -> None:
    r = client.get("/ui/login")
    token = re.search(r'name="csrf" value="([^"]+)"', r.text)
    assert token is not None
    r = client.post("/ui/login", data={"csrf": token.group(1), "key": MASTER}, follow_redirects=False)
    assert r.status_code == 303, r.text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--days", type=float, default=30.0)
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    ap.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    schema = None
    if args.backend == "sqlite":
        path = args.dir / f"console-bench-{args.rows}.db"
        for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            p.unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    else:
        schema = f"console_bench_{uuid.uuid4().hex[:8]}"
        admin = make_engine(args.pg_url)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in args.pg_url else "?"
        url = f"{args.pg_url}{sep}options=-csearch_path%3D{schema}"
    result: dict[str, Any] = {"backend": args.backend, "rows": args.rows, "days": args.days}
    try:
        engine = make_engine(url)
        migrate.upgrade(engine)
        t0 = time.perf_counter()
        (fill_sqlite if args.backend == "sqlite" else fill_postgres)(engine, args.rows, args.days)
        result["fill_s"] = round(time.perf_counter() - t0, 1)
        engine.dispose()
        doc = defaults.simulated_document("http://127.0.0.1:9")  # never called: no traffic
        doc["storage"] = {"url": url}
        cfg = parse(doc, source="bench", env={"SWITCHPOINT_MASTER_KEY": MASTER})
        with serve_in_thread(create_app(cfg)) as base, httpx.Client(base_url=base, timeout=120) as client:
            sign_in(client)
            for name in ("1h", "24h", "7d", "30d"):
                times = []
                for _ in range(args.repeat):
                    t = time.perf_counter()
                    r = client.get(f"/ui/overview?range={name}")
                    times.append(time.perf_counter() - t)
                    assert r.status_code == 200 and "stat-requests" in r.text, r.text[:500]
                shown = re.search(r'data-testid="stat-requests" data-value="(\d+)"', r.text)
                result[name] = {
                    "requests_in_range": int(shown.group(1)) if shown else None,
                    "best_s": round(min(times), 3),
                    "median_s": round(statistics.median(times), 3),
                }
                print(name, json.dumps(result[name]), flush=True)
            pages: dict[str, Any] = {}
            for page in ("models", "tasks", "routing", "requests", "keys", "alerts"):
                times = []
                for _ in range(args.repeat):
                    t = time.perf_counter()
                    r = client.get(f"/ui/{page}")
                    times.append(time.perf_counter() - t)
                    assert r.status_code == 200, (page, r.text[:500])
                pages[page] = {"best_s": round(min(times), 3), "median_s": round(statistics.median(times), 3)}
                print(page, json.dumps(pages[page]), flush=True)
            result["other_pages_default_range"] = pages
    finally:
        if schema is not None:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            admin.dispose()
        elif args.backend == "sqlite":
            for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                p.unlink(missing_ok=True)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
