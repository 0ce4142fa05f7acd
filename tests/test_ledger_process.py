"""The ledger across a process's end, proved on a real ``switchpoint serve`` under load:

- SIGTERM: the gateway drains, flushes, exits; the ledger holds exactly the requests the clients
  saw complete (a status received), no more, no less.
- ``kill -9``: what is lost is at most what one flush window held: every missing request completed
  within the last ``flush_interval_ms`` (plus the time a flush takes) before the kill.

Both print their figures (run with ``-s`` to see them).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from resilience_harness import Server, _free_port
from switchpoint.config.storage import ENV_URL
from switchpoint.simulator import Behavior, SimConfig
from switchpoint.simulator import create_app as create_sim
from switchpoint.store.engine import make_engine

from store_db import rows

FLUSH_MS = 100
#: Slack over one flush interval for a kill -9: the flush being written when the kill came
#: (a batch takes a few ms; the writer thread shares two cores with the load) and scheduling.
MARGIN_MS = 250
KEY = "sk-process-master-0123456789"
CLIENTS = 12


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    with Server(create_sim(SimConfig(default=Behavior(latency_ms=5)))) as server:
        yield server.url


class Load:
    """Client threads sending chat requests until told to stop; each completed request is kept
    with the moment its status arrived."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.done: list[tuple[str, float]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(CLIENTS)]

    def _client(self) -> None:
        body = {"model": "fast", "messages": [{"role": "user", "content": "hello"}]}
        headers = {"authorization": f"Bearer {KEY}"}
        with httpx.Client(base_url=self.url, timeout=30) as c:
            while not self.stop.is_set():
                try:
                    r = c.post("/v1/chat/completions", json=body, headers=headers)
                except httpx.TransportError:
                    time.sleep(0.01)
                    continue
                self.done.append((r.headers["x-request-id"], time.monotonic()))
                assert r.status_code == 200, r.text

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)


def _serve(sim: str, tmp: Path) -> tuple[subprocess.Popen[str], str, str]:
    db = f"sqlite:///{tmp / 'ledger.db'}"
    cfg = tmp / "gateway.yaml"
    cfg.write_text(
        f"""
server: {{master_key: env:PROC_MASTER_KEY}}
providers:
  sim: {{family: openai, base_url: "{sim}/openai/v1", api_key: env:PROC_MASTER_KEY}}
deployments:
  d-fast: {{provider: sim, model: gpt-4o-mini}}
models:
  fast: d-fast
storage:
  flush_interval_ms: {FLUSH_MS}
  spill_path: {tmp / "spill.jsonl"}
"""
    )
    port = _free_port()
    env = {**os.environ, ENV_URL: db, "PROC_MASTER_KEY": KEY}
    proc = subprocess.Popen(
        [sys.executable, "-m", "switchpoint.cli", "serve", "--config", str(cfg), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"the gateway did not start:\n{proc.communicate()[0]}")
        time.sleep(0.1)
    return proc, url, db


def _ledger_ids(db: str) -> set[str]:
    engine = make_engine(db)
    try:
        return {r["request_id"] for r in rows(engine, "SELECT request_id FROM requests")}
    finally:
        engine.dispose()


def _stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.kill()
    return proc.communicate(timeout=30)[0]


def test_sigterm_under_load_writes_every_completed_request(sim: str, tmp_path: Path) -> None:
    proc, url, db = _serve(sim, tmp_path)
    try:
        with Load(url) as load:
            time.sleep(2.0)
            proc.send_signal(signal.SIGTERM)
            # uvicorn re-raises the signal once it has shut down: -15 is its clean exit
            assert proc.wait(30) in (0, -signal.SIGTERM), "the gateway exited"
        output = _stop(proc)
        assert "Traceback" not in output, output
    finally:
        _stop(proc)
    seen = {rid for rid, _ in load.done}
    stored = _ledger_ids(db)
    print(f"\nSIGTERM under load: {len(seen)} requests completed for the clients, {len(stored)} ledger rows")
    assert len(seen) > 100, "the load ran"
    assert stored == seen, output
    assert not (tmp_path / "spill.jsonl").exists()


def test_kill_9_under_load_loses_at_most_one_flush_window(sim: str, tmp_path: Path) -> None:
    proc, url, db = _serve(sim, tmp_path)
    try:
        with Load(url) as load:
            time.sleep(2.0)
            killed_at = time.monotonic()
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
    finally:
        _stop(proc)
    done: dict[str, float] = dict(load.done)
    stored = _ledger_ids(db)
    missing = set(done) - stored
    window_s = (FLUSH_MS + MARGIN_MS) / 1000.0
    in_window = [rid for rid, t in done.items() if t >= killed_at - window_s]
    late = sorted(killed_at - done[rid] for rid in missing)
    print(
        f"\nkill -9 under load: {len(done)} requests completed, {len(stored)} ledger rows, "
        f"{len(missing)} missing; {len(in_window)} completed in the last {FLUSH_MS} + {MARGIN_MS} ms; "
        f"oldest missing completed {1000 * (late[-1] if late else 0):.0f} ms before the kill"
    )
    assert len(done) > 100, "the load ran"
    assert stored <= set(done), "no row for a request nobody completed"
    assert set(missing) <= set(in_window), "only the last flush window is lost"
    assert len(missing) <= len(in_window)
