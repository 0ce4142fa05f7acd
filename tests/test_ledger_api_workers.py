"""``switchpoint serve --workers 2`` (a subprocess, embedded defaults): ``/admin/usage`` counts
every worker's requests, whichever worker answers it (the database is the truth, not a
process's memory). On a SQLite file and on PostgreSQL."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

N = 40


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


@pytest.fixture
def two_workers(ledger_url: str, tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_API_KEY") and k not in ("OLLAMA_HOST", "SWITCHPOINT_MASTER_KEY")
    }
    env["SWITCHPOINT_DATABASE_URL"] = ledger_url
    proc = subprocess.Popen(
        [sys.executable, "-m", "switchpoint.cli", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "gateway did not become ready"
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def _usage(base: str) -> dict[str, int]:
    r = httpx.get(f"{base}/admin/usage?group_by=deployment", timeout=10, headers={"connection": "close"})
    assert r.status_code == 200, r.text
    totals = r.json()["totals"]
    return {"requests": totals["requests"], "input_tokens": totals["input_tokens"]}


def test_usage_counts_every_workers_requests(two_workers: str) -> None:
    base = two_workers

    def chat(i: int) -> tuple[str, int]:
        r = httpx.post(
            f"{base}/v1/chat/completions",
            json={"model": "fast", "messages": [{"role": "user", "content": f"hello {i}"}]},
            headers={"connection": "close"},  # a new connection each: the workers share them out
            timeout=30,
        )
        assert r.status_code == 200, r.text
        # request ids start with a random prefix per process: which worker answered
        return r.headers["x-request-id"][:16], int(r.json()["usage"]["prompt_tokens"])

    # The kernel hands new connections to whichever worker accepts first: on a busy machine one
    # worker can take a whole round, so rounds go on until both have answered (at most ten).
    answers: list[tuple[str, int]] = []
    with ThreadPoolExecutor(8) as pool:
        for round_ in range(10):
            answers += pool.map(chat, range(round_ * N, (round_ + 1) * N))
            if len({prefix for prefix, _ in answers}) == 2:
                break
    workers = {prefix for prefix, _ in answers}
    sent = len(answers)
    assert len(workers) == 2, f"one worker served all {sent} requests: {workers}"
    prompt_tokens = sum(n for _, n in answers)

    deadline = time.monotonic() + 20  # rows land within a flush window
    while _usage(base)["requests"] < sent:
        assert time.monotonic() < deadline, f"/admin/usage never reached {sent}: {_usage(base)}"
        time.sleep(0.2)
    reads = [_usage(base) for _ in range(20)]  # fresh connections: both workers answer some
    assert all(r == {"requests": sent, "input_tokens": prompt_tokens} for r in reads), reads
