"""What one ledger row costs to write: instructions per request for ``Writer.write`` on SQLite.

    python bench/ledger_write.py            # request rows alone, then with their attempt rows
    python bench/ledger_write.py --rows 400 # rows per batch (the writer's batch at the bench rate)

The question it answers: how much of the ledger's CPU is the INSERT itself, in this Python and
this SQLite, apart from the gateway. Rows shaped as a benchmark request's (a plain chat
completion: no key, task or session; the columns set as the bench sets them) are built first,
then written in batches the size the writer sends at the benchmark's rate, into a fresh SQLite
file migrated by the package's own migrations. The process runs under valgrind's callgrind
twice, with few and with many batches; the difference in instructions, divided by the
difference in requests, is the write's cost per request, free of start-up and import costs.
Building the rows is counted apart (``--build-only``) and subtracted.

Needs valgrind (``apt-get install valgrind``). Not a timed test: docs/benchmarks.md has figures.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BATCHES = (5, 25)


def _rows(n: int, start: int, attempts: bool) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    from switchpoint.store.tables import ATTEMPT_COLUMNS, REQUEST_COLUMNS

    route = json.dumps({"a": "bench", "r": "direct", "c": ["bench-dep"], "w": "bench-dep"})
    now = time.time()
    req_cols = {c: i for i, c in enumerate(REQUEST_COLUMNS)}
    att_cols = {c: i for i, c in enumerate(ATTEMPT_COLUMNS)}
    requests, tries = [], []
    for i in range(start, start + n):
        rid = f"req_0123456789ab{i:010x}"
        r: list[object] = [None] * len(REQUEST_COLUMNS)
        for name, value in {
            "request_id": rid,
            "started_at": now + i * 1e-4,
            "instance": "host-1234",
            "dialect": "openai",
            "endpoint": "/v1/chat/completions",
            "alias": "bench",
            "deployment": "bench-dep",
            "provider": "openai",
            "upstream_model": "gpt-bench",
            "stream": 0,
            "status": 200,
            "latency_ms": 1.0 + (i % 97) / 10,
            **dict.fromkeys(("cached_input_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens"), 0),
            "input_tokens": 10 + i % 50,
            "output_tokens": 20 + i % 30,
            "reasoning_tokens": 0,
            "cost_input": (10 + i % 50) * 1.25e-6,
            **dict.fromkeys(("cost_cached_input", "cost_cache_write_5m", "cost_cache_write_1h"), 0.0),
            "cost_output": (20 + i % 30) * 1e-5,
            "cost_reasoning": 0.0,
            "cost_usd": (10 + i % 50) * 1.25e-6 + (20 + i % 30) * 1e-5,
            "saved_usd": 0.0,
            **dict.fromkeys(("attempts",), 1),
            **dict.fromkeys(("retries", "failovers", "hedges", "cached", "batch"), 0),
            "price_version": "2026-11-30",
            "route": route,
        }.items():
            r[req_cols[name]] = value
        requests.append(tuple(r))
        if attempts:
            a: list[object] = [None] * len(ATTEMPT_COLUMNS)
            for name, value in {
                "request_id": rid,
                "seq": 0,
                "started_at": now + i * 1e-4,
                "offset_ms": 0.05,
                "deployment": "bench-dep",
                "provider": "openai",
                "family": "openai",
                "status": 200,
                "latency_ms": 0.9 + (i % 97) / 10,
                "hedge": 0,
                "input_tokens": 10 + i % 50,
                **dict.fromkeys(("cached_input_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens"), 0),
                "output_tokens": 20 + i % 30,
                "reasoning_tokens": 0,
                "cost_usd": (10 + i % 50) * 1.25e-6 + (20 + i % 30) * 1e-5,
            }.items():
                a[att_cols[name]] = value
            tries.append(tuple(a))
    return requests, tries


def child(batches: int, rows: int, attempts: bool, build_only: bool) -> None:
    from switchpoint.store.engine import make_engine
    from switchpoint.store.migrate import upgrade
    from switchpoint.store.writer import Writer

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/ledger.db")
        upgrade(engine)
        writer = Writer(engine)
        made = [_rows(rows, b * rows, attempts) for b in range(batches + 1)]
        writer.write(*made[0])  # the first write's one-time costs (statements, pages) in both runs
        if not build_only:
            for requests, tries in made[1:]:
                writer.write(requests, tries)
        engine.dispose()


def instructions(args: argparse.Namespace, batches: int, attempts: bool, build_only: bool) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        cmd = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--child",
            str(batches),
            "--rows",
            str(args.rows),
            *(["--attempts"] if attempts else []),
            *(["--build-only"] if build_only else []),
        ]
        subprocess.run(cmd, check=True, capture_output=True)
        for line in reversed(out.read_text(errors="replace").splitlines()):
            if m := re.match(r"totals:\s+(\d+)", line):
                return int(m.group(1))
    raise SystemExit("callgrind wrote no totals")


def per_request(args: argparse.Namespace, attempts: bool, build_only: bool) -> float:
    few, many = (instructions(args, b, attempts, build_only) for b in BATCHES)
    return (many - few) / ((BATCHES[1] - BATCHES[0]) * args.rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=400, help="rows per batch (default %(default)s)")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--attempts", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child is not None:
        child(args.child, args.rows, args.attempts, args.build_only)
        return
    result = {}
    for label, attempts in (("request row", False), ("request and attempt rows", True)):
        cost = per_request(args, attempts, False) - per_request(args, attempts, True)
        result[label] = round(cost)
        print(f"{label:26} {cost:>10,.0f} instructions per request (Writer.write, SQLite)", flush=True)
    print(json.dumps({"rows_per_batch": args.rows, **result}))


if __name__ == "__main__":
    main()
