"""``switchpoint serve --workers 2``: /metrics counts every worker's requests, whichever answers.

The usage series come from the ledger's per-instance totals (one instance: all the workers of
one ``serve``), so a scrape landing on either worker reports all N requests; the process-local
series next to them (``switchpoint_attempts_total``) show that each worker made only its share.
The control: with the ledger off, each worker's /metrics counts only its own requests.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

N = 40


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _postgres_missing() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return f"PostgreSQL at {PG_URL} is not reachable ({type(exc).__name__}: {exc})"
    return None


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A ledger database the workers share (not migrated: ``serve`` does that); on PostgreSQL
    a schema of its own, dropped after."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    if (why := _postgres_missing()) is not None:
        pytest.skip(why)
    import psycopg

    schema = f"metrics_workers_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextlib.contextmanager
def _serve(args: list[str], env_extra: dict[str, str], cwd: Path) -> Iterator[str]:
    """``switchpoint serve --workers 2 ARGS`` on a free port, until the block ends."""
    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_API_KEY") and k not in ("OLLAMA_HOST", "SWITCHPOINT_MASTER_KEY")
    }
    env.update(env_extra)
    proc = subprocess.Popen(
        [sys.executable, "-m", "switchpoint.cli", "serve", "--port", str(port), "--workers", "2", *args],
        env=env,
        cwd=cwd,
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


@pytest.fixture
def two_workers(database_url: str, tmp_path: Path) -> Iterator[str]:
    """Embedded defaults (the simulated providers), the ledger at ``database_url``."""
    with _serve([], {"SWITCHPOINT_DATABASE_URL": database_url}, tmp_path) as base:
        yield base


def _send(base: str, n: int) -> tuple[int, int]:
    """Chat requests, 8 at a time, each on a new connection, in rounds of ``n`` until both
    workers have answered (the kernel hands a new connection to whichever worker accepts first:
    on a busy machine one can take a whole round; at most ten rounds). (requests, prompt tokens)."""

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

    answers: list[tuple[str, int]] = []
    with ThreadPoolExecutor(8) as pool:
        for round_ in range(10):
            answers += pool.map(chat, range(round_ * n, (round_ + 1) * n))
            if len({worker for worker, _ in answers}) == 2:
                break
    assert len({worker for worker, _ in answers}) == 2, f"one worker answered all {len(answers)}"
    return len(answers), sum(tokens for _, tokens in answers)


def _scrape(base: str) -> tuple[float, float, float]:
    """(usage requests, input tokens, this worker's own attempts) from one fresh connection."""
    text = httpx.get(f"{base}/metrics", timeout=10, headers={"connection": "close"}).text
    requests = tokens = attempts = 0.0
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == "switchpoint_requests_total":
                requests += s.value
            elif s.name == "switchpoint_tokens_total" and s.labels["class"] in ("input", "cached_input"):
                tokens += s.value
            elif s.name == "switchpoint_attempts_total":
                attempts += s.value
    return requests, tokens, attempts


def test_every_worker_answers_for_all_requests(two_workers: str) -> None:
    base = two_workers
    sent, prompt_tokens = _send(base, N)

    # the ledger writes within a flush window, /metrics caches its read for about a second
    deadline = time.monotonic() + 20
    while _scrape(base)[0] < sent:
        assert time.monotonic() < deadline, f"/metrics never reached {sent}: {_scrape(base)}"
        time.sleep(0.2)
    time.sleep(1.2)  # every worker's cached read is now younger than the last write
    scrapes = [_scrape(base) for _ in range(30)]
    assert all(requests == sent for requests, _, _ in scrapes), scrapes
    assert all(tokens == prompt_tokens for _, tokens, _ in scrapes), (prompt_tokens, scrapes)
    own = sorted({attempts for _, _, attempts in scrapes})
    # the worker that answered the scrape made fewer attempts itself than all, yet counted all
    assert own[0] < sent, f"every scrape landed on a worker that served all {sent}: {own}"


CONFIG_WITHOUT_LEDGER = """
providers:
  sim: {family: openai, base_url: "http://127.0.0.1:9/v1"}
deployments:
  sim-gpt: {provider: sim, model: sim-gpt}
models:
  fast: sim-gpt
storage: {enabled: false}
"""


def test_without_the_ledger_each_worker_counts_only_its_own(tmp_path: Path) -> None:
    """The control: process memory is not the truth with two workers (what the ledger fixes)."""
    config = tmp_path / "no-ledger.yaml"
    config.write_text(CONFIG_WITHOUT_LEDGER)
    with _serve(["--config", str(config), "--simulate"], {}, tmp_path) as base:
        sent, _ = _send(base, N)
        scrapes = [_scrape(base) for _ in range(30)]
    # each scrape reports the answering worker's own requests, the same as its own attempts
    assert all(requests == attempts for requests, _, attempts in scrapes), scrapes
    assert min(requests for requests, _, _ in scrapes) < sent, scrapes
