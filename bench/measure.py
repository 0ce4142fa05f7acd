"""Measurement: process-tree CPU and RSS from /proc, wrk runs, a time-to-first-byte client."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
CLK_TCK = os.sysconf("SC_CLK_TCK")
RESULT_MARK = "BENCH_RESULT "


# --- /proc ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcStat:
    pid: int
    ppid: int
    #: utime + stime + cutime + cstime, in clock ticks (reaped children count towards the parent).
    ticks: int


def parse_stat(text: str) -> ProcStat:
    """Parse one /proc/<pid>/stat line; the command name may hold spaces and parentheses."""
    pid_part, _, rest = text.partition(" (")
    fields = rest[rest.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime..cstime are fields 14..17.
    ppid = int(fields[1])
    ticks = sum(int(v) for v in fields[11:15])
    return ProcStat(pid=int(pid_part), ppid=ppid, ticks=ticks)


def parse_rss_kb(status_text: str) -> int:
    """VmRSS in kB from /proc/<pid>/status text (0 for a kernel thread or a zombie)."""
    for line in status_text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def all_stats(proc: Path = PROC) -> dict[int, ProcStat]:
    stats: dict[int, ProcStat] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        text = _read(entry / "stat")
        if text:
            stat = parse_stat(text)
            stats[stat.pid] = stat
    return stats


def tree_pids(root: int, stats: dict[int, ProcStat]) -> list[int]:
    """``root`` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for stat in stats.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    found: list[int] = []
    todo = [root] if root in stats else []
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def tree_cpu_by_pid(root: int, proc: Path = PROC) -> dict[int, float]:
    """CPU ms so far of ``root`` and each live descendant (a multi-worker server's workers too)."""
    stats = all_stats(proc)
    return {pid: stats[pid].ticks * 1000.0 / CLK_TCK for pid in tree_pids(root, stats)}


def tree_cpu_ms(root: int, proc: Path = PROC) -> float:
    return sum(tree_cpu_by_pid(root, proc).values())


def busy_processes(before: dict[int, float], after: dict[int, float], share: float = 0.1) -> int:
    """How many processes of a tree did at least ``share`` of its CPU work between two samples.

    A worker that exited in between is left out (its time moved to the parent's reaped-children
    count); one that started in between counts from zero.
    """
    used = {pid: ms - before.get(pid, 0.0) for pid, ms in after.items()}
    total = sum(v for v in used.values() if v > 0)
    if total <= 0:
        return 0
    return sum(1 for v in used.values() if v >= share * total)


def tree_rss_kb(root: int, proc: Path = PROC) -> int:
    stats = all_stats(proc)
    total = 0
    for pid in tree_pids(root, stats):
        text = _read(proc / str(pid) / "status")
        if text:
            total += parse_rss_kb(text)
    return total


class RssSampler:
    """Samples a process tree's RSS in a background thread; ``peak_kb`` is the highest seen."""

    def __init__(self, root: int, interval_s: float = 0.5) -> None:
        self.root = root
        self.interval_s = interval_s
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while True:
            self.peak_kb = max(self.peak_kb, tree_rss_kb(self.root))
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, tree_rss_kb(self.root))


# --- wrk ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    errors: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


class WrkError(RuntimeError):
    pass


def parse_wrk_output(stdout: str) -> WrkResult:
    """Read the JSON line that ``lua/post.lua``'s ``done()`` prints."""
    for line in stdout.splitlines():
        if line.startswith(RESULT_MARK):
            data = json.loads(line[len(RESULT_MARK) :])
            lat = data["latency_us"]
            return WrkResult(
                requests=int(data["requests"]),
                duration_s=data["duration_us"] / 1e6,
                errors={k: int(v) for k, v in data["errors"].items()},
                p50_ms=lat["p50"] / 1000.0,
                p90_ms=lat["p90"] / 1000.0,
                p99_ms=lat["p99"] / 1000.0,
                max_ms=lat["max"] / 1000.0,
            )
    raise WrkError(f"no {RESULT_MARK.strip()} line in wrk output:\n{stdout[-2000:]}")


@dataclass(frozen=True)
class Load:
    """One wrk invocation's shape."""

    port: int
    connections: int
    duration_s: float
    stream: str  # "0", "1" or "mixed"
    model: str
    headers: dict[str, str] = field(default_factory=dict)
    path: str = "/v1/chat/completions"


def wrk_command(load: Load, lua: Path) -> tuple[list[str], dict[str, str]]:
    argv = [
        "wrk",
        "-t1",
        f"-c{load.connections}",
        f"-d{max(1, round(load.duration_s))}s",
        "--timeout",
        "30s",
        "-s",
        str(lua),
        f"http://127.0.0.1:{load.port}",
    ]
    env = {
        "BENCH_PATH": load.path,
        "BENCH_MODEL": load.model,
        "BENCH_STREAM": load.stream,
        "BENCH_HEADERS": "\n".join(f"{k}: {v}" for k, v in load.headers.items()),
    }
    return argv, env


# --- time to first byte ---------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    status: int
    ttfb_s: float
    ttlb_s: float
    body_bytes: int
    keep_alive: bool


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """Status code and lower-cased headers from a raw HTTP/1.1 response head."""
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return status, headers


async def read_response(reader: asyncio.StreamReader, started: float) -> Response:
    """Read one response; ``ttfb_s`` is when the first body byte arrived."""
    head = await reader.readuntil(b"\r\n\r\n")
    status, headers = parse_head(head)
    first: float | None = None
    size = 0
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            line = await reader.readline()
            first = first or time.perf_counter()
            chunk = int(line.split(b";")[0].strip(), 16)
            if chunk == 0:
                while (await reader.readline()) not in (b"\r\n", b""):
                    pass
                break
            size += len(await reader.readexactly(chunk + 2)) - 2
    elif "content-length" in headers:
        want = int(headers["content-length"])
        while size < want:
            data = await reader.read(want - size)
            if not data:
                raise asyncio.IncompleteReadError(b"", want - size)
            first = first or time.perf_counter()
            size += len(data)
    else:
        while data := await reader.read(65536):
            first = first or time.perf_counter()
            size += len(data)
    done = time.perf_counter()
    keep_alive = headers.get("connection", "").lower() != "close" and (
        "content-length" in headers or "transfer-encoding" in headers
    )
    return Response(status, (first or done) - started, done - started, size, keep_alive)


def build_request(load: Load) -> bytes:
    stream = "true" if load.stream == "1" else "false"
    body = (
        f'{{"model":"{load.model}","messages":[{{"role":"user","content":"Say hello."}}],'
        f'"max_tokens":32,"stream":{stream}}}'
    ).encode()
    lines = [
        f"POST {load.path} HTTP/1.1",
        f"Host: 127.0.0.1:{load.port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in load.headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _ttfb_worker(load: Load, deadline: float, out: list[Response], errors: list[str]) -> None:
    request = build_request(load)
    writer: asyncio.StreamWriter | None = None
    reader: asyncio.StreamReader | None = None
    try:
        while time.perf_counter() < deadline:
            if writer is None or reader is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", load.port)
            started = time.perf_counter()
            writer.write(request)
            try:
                resp = await asyncio.wait_for(read_response(reader, started), timeout=30)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
                errors.append(type(exc).__name__)
                writer.close()
                writer = reader = None
                continue
            out.append(resp)
            if not resp.keep_alive:
                writer.close()
                writer = reader = None
    finally:
        if writer is not None:
            writer.close()


async def _ttfb(load: Load) -> tuple[list[Response], list[str]]:
    deadline = time.perf_counter() + load.duration_s
    out: list[Response] = []
    errors: list[str] = []
    await asyncio.gather(*(_ttfb_worker(load, deadline, out, errors) for _ in range(load.connections)))
    return out, errors


@dataclass(frozen=True)
class TtfbResult:
    requests: int
    errors: int
    ttfb_p50_ms: float
    ttfb_p99_ms: float
    ttlb_p50_ms: float
    ttlb_p99_ms: float


def run_ttfb(load: Load) -> TtfbResult:
    """Streams with ``load.connections`` keep-alive connections for ``load.duration_s`` seconds."""
    responses, errors = asyncio.run(_ttfb(load))
    ok = [r for r in responses if 200 <= r.status < 300]
    ttfb = [r.ttfb_s * 1000 for r in ok]
    ttlb = [r.ttlb_s * 1000 for r in ok]
    return TtfbResult(
        requests=len(ok),
        errors=len(errors) + len(responses) - len(ok),
        ttfb_p50_ms=percentile(ttfb, 50),
        ttfb_p99_ms=percentile(ttfb, 99),
        ttlb_p50_ms=percentile(ttlb, 50),
        ttlb_p99_ms=percentile(ttlb, 99),
    )


# --- statistics -----------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (NaN for no values)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[min(len(ordered), int(rank)) - 1]


def median(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def run_wrk(load: Load, lua: Path, timeout_pad_s: float = 60.0) -> WrkResult:
    argv, env = wrk_command(load, lua)
    proc = subprocess.run(
        argv,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=load.duration_s + timeout_pad_s,
        check=False,
    )
    if proc.returncode != 0:
        raise WrkError(f"wrk exited with {proc.returncode}: {proc.stderr.strip()[-1000:]}")
    return parse_wrk_output(proc.stdout)
