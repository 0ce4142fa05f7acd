"""Instructions per request: switchpoint's CPU cost in a unit the machine's speed does not move.

    python bench/instructions.py                     # this checkout, plain and stream
    python bench/instructions.py --src ../other/src  # another checkout's package (an A/B)
    python bench/instructions.py --ledger off,sqlite # the ledger off (the bench config) and on
    python bench/instructions.py --ledger sqlite --flush-ms 200  # the ledger at the gateway's flush
    python bench/instructions.py --ledger sqlite --key master,limited,limited-redis
                                                     # governance: a key with RPM, TPM and a budget
    python bench/instructions.py --ledger sqlite --key master,virtual  # the master key, a virtual key

Runs switchpoint (one worker, the bench config) under valgrind's callgrind with counting off,
drives it with the benchmark's own load (wrk, 4 connections, the nginx fake upstream), and
counts the instructions the whole process retires while one wrk run lasts: Python, the C
extensions, libc; not the kernel. Divided by the requests wrk completed, that is the figure.
Under valgrind the gateway runs about 50 times slower, so wrk's latencies mean nothing here; the
count does not depend on them (the counting window holds whole requests but for the few in
flight at its edges, a fraction of a percent).

It needs valgrind (``apt-get install valgrind``; installed here when missing and running as
root). See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import measure
import targets as tg
from measure import Load
from targets import Endpoint, Processes

LUA = tg.BENCH / "lua" / "post.lua"
#: One directory per measuring process: two measurements at once never clear each other's dumps.
OUT = tg.WORK / "callgrind" / str(os.getpid())


def ensure_valgrind() -> None:
    if shutil.which("valgrind") and shutil.which("callgrind_control"):
        return
    if os.geteuid() != 0:
        raise SystemExit("valgrind is missing; run: apt-get install valgrind")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    tg._run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "valgrind"], env=env)


def total_instructions(dump: Path) -> int:
    """The ``totals:`` line of a callgrind dump (its ``summary:`` line may read 0)."""
    for line in reversed(dump.read_text(errors="replace").splitlines()):
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise ValueError(f"{dump}: no totals in the callgrind output")


def _control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


MODES = ("plain", "stream", "translate-plain", "translate-stream")


#: ``--ledger`` choices → the bench target whose storage section is used (``off``: the bench
#: config as it is, the ledger disabled).
LEDGERS = {"off": "switchpoint", "sqlite": "switchpoint-ledger", "postgres": "switchpoint-ledger-pg"}


#: ``--key`` choices: the master key, or a virtual key made through ``POST /admin/keys`` before
#: counting (it needs the ledger's database: not with ``--ledger off``). ``limited``: a virtual
#: key with RPM, TPM and a daily budget (far above what the run uses, so every request is
#: admitted, reserved and settled), governance state in memory; ``limited-redis``: the same with
#: the state in Redis (``state.redis_url``, a prefix of its own, removed after).
KEYS = ("master", "virtual", "limited", "limited-redis")

#: The ledger's ``storage.flush_interval_ms`` here (``--flush-ms``): under valgrind the gateway
#: runs about 50 times slower, so the gateway's 200 ms flush would hold ~12 requests where at the
#: real benchmark rate it holds hundreds (up to ``flush_rows``, 500). 50 x 200 ms makes a batch
#: hold what it holds at the real rate, so the per-batch cost (the commit) is shared as it is there.
FLUSH_MS = 10_000
#: Seconds beyond one flush interval for the ledger's writer (slowed by valgrind) to finish a batch.
SETTLE_S = 3.0


def measure_one(
    src: Path,
    mode: str,
    seconds: float,
    procs: Processes,
    upstream_port: int,
    ledger: str = "off",
    key: str = "master",
    flush_ms: int | None = FLUSH_MS,
) -> tuple[int, int]:
    """(instructions, requests) for one counting window of wrk at 4 connections."""
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("callgrind.*"):
        old.unlink()
    port = tg.free_port()
    target = LEDGERS[ledger]
    storage = tg.ledger_storage(target)
    if storage is not None and flush_ms is not None:
        storage = f"{storage[:-1]}, flush_interval_ms: {flush_ms}}}"
    prefix = f"bench-{os.getpid()}-{time.time_ns()}:"
    if key == "limited-redis":
        storage = f"{storage}\nstate: {{redis_url: '{tg.REDIS_URL}', prefix: '{prefix}'}}"
    # a file of its own: another measurement running at the same time renders its own upstream port
    cfg = tg._render(
        tg.BENCH / "configs" / "switchpoint.yaml", upstream_port, storage, f"{target}-{os.getpid()}"
    )
    env = tg.clean_env(
        {
            "SWITCHPOINT_MASTER_KEY": tg.MASTER_KEY,
            "BENCH_UPSTREAM_KEY": tg.UPSTREAM_KEY,
            "PYTHONPATH": str(src),
        }
    )
    env.pop("SWITCHPOINT_DATABASE_URL", None)
    python = tg.REPO / ".venv" / "bin" / "python"
    argv = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={OUT}/callgrind.%p",
        str(python),
        "-m",
        "switchpoint.cli",
        "serve",
        "--config",
        str(cfg),
        "--port",
        str(port),
    ]
    run = procs.spawn("switchpoint-callgrind", argv, env, tg.REPO)
    model = tg.TRANSLATE_MODEL if mode.startswith("translate-") else "bench"
    stream = "1" if mode.endswith("stream") else "0"
    ep = Endpoint("switchpoint", port, model, {"Authorization": f"Bearer {tg.MASTER_KEY}"})
    try:
        tg.wait_ready(run, ep, 180.0)
        if key != "master":
            secret = tg.virtual_key(port, tg.LIMITED_KEY if key.startswith("limited") else None)
            ep = Endpoint("switchpoint", port, model, {"Authorization": f"Bearer {secret}"})
        load = Load(port, 4, seconds, stream, ep.model, ep.headers)
        measure.run_wrk(Load(port, 4, 3.0, load.stream, ep.model, ep.headers), LUA)  # warm up
        # with the ledger on, the counting window holds exactly its own requests' writes: the
        # warm-up's rows are flushed before it opens, and it stays open (the gateway idle) until
        # its last rows are written
        settle = 0.0 if storage is None else (flush_ms or 200) / 1000.0 + SETTLE_S
        time.sleep(settle)
        _control(run.proc.pid, "-i", "on")
        result = measure.run_wrk(load, LUA)
        time.sleep(settle)
        _control(run.proc.pid, "-i", "off")
        _control(run.proc.pid, "-d")
        time.sleep(1.0)
        dumps = sorted(OUT.glob(f"callgrind.{run.proc.pid}.*"))
        if not dumps:
            raise SystemExit("callgrind wrote no dump")
        return total_instructions(dumps[-1]), result.requests
    finally:
        procs.stop(run, grace_s=20.0)
        if key == "limited-redis":
            tg.drop_redis_prefix(prefix)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", type=Path, default=tg.REPO / "src", help="the switchpoint package's parent dir")
    p.add_argument(
        "--seconds", type=float, default=10.0, help="wrk run counted, seconds (default %(default)s)"
    )
    p.add_argument(
        "--modes",
        default="plain,stream",
        help=f"comma list of {', '.join(MODES)} (default %(default)s); translate-* ask for the "
        "Anthropic-upstream model",
    )
    p.add_argument(
        "--ledger",
        default="off",
        help=f"comma list of {', '.join(LEDGERS)} (default %(default)s): the ledger off (the bench "
        "config), on a SQLite file in bench/.work, on PostgreSQL (schema bench_ledger, dropped after)",
    )
    p.add_argument(
        "--key",
        default="master",
        help=f"comma list of {', '.join(KEYS)} (default %(default)s): the caller's key; all but "
        "master need the ledger (--ledger sqlite or postgres)",
    )
    p.add_argument(
        "--flush-ms",
        type=int,
        default=FLUSH_MS,
        help="the ledger's flush_interval_ms under valgrind (default %(default)s: a batch holds what "
        "it holds at the real rate; 200 is the gateway's own default, ~12 requests a batch here)",
    )
    args = p.parse_args()
    keys = [k.strip() for k in args.key.split(",") if k.strip()]
    if bad_keys := [k for k in keys if k not in KEYS]:
        p.error(f"unknown --key value(s): {', '.join(bad_keys)}")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        p.error(f"unknown mode(s): {', '.join(unknown)}")
    ledgers = [m.strip() for m in args.ledger.split(",") if m.strip()]
    if bad := [m for m in ledgers if m not in LEDGERS]:
        p.error(f"unknown --ledger value(s): {', '.join(bad)}")
    tg.ensure_tools()
    ensure_valgrind()
    procs = Processes()
    upstream_port = tg.free_port()
    try:
        tg.start_upstream(procs, upstream_port)
        time.sleep(0.5)
        rows = {}
        for ledger in ledgers:
            for caller in keys:
                if caller != "master" and ledger == "off":
                    p.error(f"--key {caller} needs the ledger's database (--ledger sqlite or postgres)")
                for mode in modes:
                    instructions, requests = measure_one(
                        args.src.resolve(),
                        mode,
                        args.seconds,
                        procs,
                        upstream_port,
                        ledger,
                        caller,
                        args.flush_ms,
                    )
                    key = mode if ledgers == ["off"] else f"{mode} ledger-{ledger}"
                    if keys != ["master"]:
                        key += f" key-{caller}"
                    rows[key] = {
                        "requests": requests,
                        "instructions_per_request": instructions // max(1, requests),
                    }
                    print(
                        f"{key:28} {requests:6d} requests  {instructions // max(1, requests):>10,} instructions/request",
                        flush=True,
                    )
        commit = subprocess.run(
            ["git", "-C", str(args.src), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        print(json.dumps({"src": str(args.src), "commit": commit, **rows}))
    finally:
        procs.stop_all()
        if ledgers != ["off"]:
            tg.drop_ledgers()


if __name__ == "__main__":
    sys.exit(main())
