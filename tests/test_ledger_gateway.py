"""The ledger behind a running gateway: every request is a row; bodies only when asked, redacted;
no secret (master key, Authorization header, provider keys) in any column or in the database
file; a database that is down fails no request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import inspect, text

from resilience_harness import AUTH, GATEWAY_KEY, UPSTREAM_KEY, Server, chat, document, gateway, provider
from switchpoint.config.storage import ENV_URL
from switchpoint.simulator import Behavior, SimConfig
from switchpoint.simulator import create_app as create_sim
from switchpoint.store.engine import make_engine

from store_db import db_url, rows, scalar

__all__ = ["db_url"]


@pytest.fixture(autouse=True)
def configured_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests name their database in ``storage.url``; the suite's variable would override it."""
    monkeypatch.delenv(ENV_URL, raising=False)


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    with Server(create_sim(SimConfig())) as server:
        yield server.url


def _doc(sim: str, storage: dict[str, Any]) -> dict[str, Any]:
    return document(
        {"p": provider(sim, "openai"), "q": provider(sim, "anthropic")},
        {
            "d-gpt": {"provider": "p", "model": "gpt-4o-mini"},
            "d-claude": {"provider": "q", "model": "claude-haiku-4-5"},
        },
        {"fast": "d-gpt", "claude": "d-claude"},
        storage=storage,
    )


def _every_value(url: str) -> list[str]:
    engine = make_engine(url)
    out: list[str] = []
    try:
        with engine.connect() as conn:
            for table in inspect(engine).get_table_names():
                for row in conn.execute(text(f"SELECT * FROM {table}")):
                    out += [str(v) for v in row]
    finally:
        engine.dispose()
    return out


def test_requests_become_rows_and_no_secret_is_stored(sim: str, db_url: str, tmp_path: Path) -> None:
    storage = {
        "url": db_url,
        "store_bodies": True,
        "redact": [r"\b\d{3}-\d{2}-\d{4}\b"],
        "flush_interval_ms": 20,
        "spill_path": str(tmp_path / "spill.jsonl"),
    }
    secret_text = f"my ssn is 123-45-6789, the gateway key {GATEWAY_KEY}, the upstream key {UPSTREAM_KEY}"
    with gateway(_doc(sim, storage)) as (url, gw, _):
        assert gw.ledger is not None and gw.store_bodies
        with httpx.Client(base_url=url, timeout=30) as c:
            for model in ("fast", "claude"):
                r = c.post("/v1/chat/completions", json=chat(secret_text, model), headers=AUTH)
                assert r.status_code == 200, r.text
            r = c.post("/v1/chat/completions", json=chat(secret_text, "fast", stream=True), headers=AUTH)
            assert r.status_code == 200
            r = c.post(
                "/v1/messages",
                json={
                    "model": "claude",
                    "max_tokens": 50,
                    "messages": [{"role": "user", "content": secret_text}],
                },
                headers={"x-api-key": GATEWAY_KEY, "anthropic-version": "2023-06-01"},
            )
            assert r.status_code == 200
            r = c.post("/v1/chat/completions", json=chat("hi", "no-such-model"), headers=AUTH)
            assert r.status_code == 404
            r = c.post(
                "/v1/chat/completions",
                json=chat("hi", "fast"),
                headers={"authorization": "Bearer wrong-key-12345"},
            )
            assert r.status_code == 401
    # the server stopped: the ledger flushed everything
    engine = make_engine(db_url)
    try:
        got = rows(engine, "SELECT * FROM requests ORDER BY started_at")
        assert [(r["alias"], r["status"], r["endpoint"], bool(r["stream"])) for r in got] == [
            ("fast", 200, "chat.completions", False),
            ("claude", 200, "chat.completions", False),
            ("fast", 200, "chat.completions", True),
            ("claude", 200, "messages", False),
            ("no-such-model", 404, "chat.completions", False),
            ("", 401, "chat.completions", False),  # refused before the body was read
        ]
        first = got[0]
        assert first["deployment"] == "d-gpt" and first["upstream_model"] == "gpt-4o-mini"
        assert first["provider"] == "p" and first["input_tokens"] > 0 and first["cost_usd"] > 0
        assert "[REDACTED]" in first["request_body"] and "123-45-6789" not in first["request_body"]
        assert json.loads(first["response_body"])["choices"][0]["message"]["content"]
        assert (
            got[2]["request_body"] is not None and got[2]["response_body"] is None
        )  # a stream's answer is not kept
        assert scalar(engine, "SELECT count(*) FROM attempts") == 4
        assert scalar(engine, "SELECT sum(requests) FROM usage_totals") == 6
    finally:
        engine.dispose()
    values = _every_value(db_url)
    for secret in (GATEWAY_KEY, UPSTREAM_KEY, "wrong-key-12345", "123-45-6789"):
        assert not any(secret in v for v in values), f"{secret} is in the ledger"
    if db_url.startswith("sqlite"):
        for f in Path(db_url.removeprefix("sqlite:///")).parent.glob("ledger.db*"):
            raw = f.read_bytes()
            for secret in (GATEWAY_KEY, UPSTREAM_KEY, "wrong-key-12345"):
                assert secret.encode() not in raw, f"{secret} is in {f.name}"


def test_bodies_are_off_by_default(sim: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    with gateway(_doc(sim, {"url": url, "flush_interval_ms": 20})) as (base, gw, _):
        assert not gw.store_bodies
        r = httpx.post(
            f"{base}/v1/chat/completions", json=chat("hello there", "fast"), headers=AUTH, timeout=30
        )
        assert r.status_code == 200
    engine = make_engine(url)
    assert rows(engine, "SELECT request_body, response_body FROM requests") == [
        {"request_body": None, "response_body": None}
    ]
    engine.dispose()


def test_a_database_that_is_down_fails_no_request(sim: str, tmp_path: Path) -> None:
    spill = tmp_path / "spill.jsonl"
    storage = {
        "url": "postgresql://postgres@127.0.0.1:1/none",
        "flush_interval_ms": 20,
        "spill_path": str(spill),
    }
    with gateway(_doc(sim, storage)) as (base, gw, _), httpx.Client(base_url=base, timeout=30) as c:
        for i in range(5):
            r = c.post("/v1/chat/completions", json=chat(f"hello {i}", "fast"), headers=AUTH)
            assert r.status_code == 200, r.text
        assert c.get("/ready").status_code == 200
    assert gw.ledger is not None and gw.ledger.stats()["dropped"] == 0
    lines = spill.read_bytes().splitlines()
    assert len(lines) == 5  # kept for the database's return
    assert {json.loads(line)[0][5] for line in lines} == {"fast"}


def test_storage_disabled_builds_no_ledger(sim: str, tmp_path: Path) -> None:
    with gateway(_doc(sim, {"enabled": False, "url": f"sqlite:///{tmp_path / 'never.db'}"})) as (base, gw, _):
        assert gw.ledger is None
        r = httpx.post(f"{base}/v1/chat/completions", json=chat("hello", "fast"), headers=AUTH, timeout=30)
        assert r.status_code == 200
    assert not (tmp_path / "never.db").exists()


def test_a_hedge_is_recorded_with_its_start_offset(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    models = {"late": Behavior(ttft_ms=400), "quick": Behavior(ttft_ms=5)}
    with Server(create_sim(SimConfig(models=models))) as sim:
        doc = document(
            {"p": provider(sim.url, "openai"), "q": provider(sim.url, "anthropic")},
            {"d-late": {"provider": "p", "model": "late"}, "d-quick": {"provider": "q", "model": "quick"}},
            {"hedged": ["d-late", "d-quick"]},
            resilience={"hedging": {"enabled": True, "delay_ms": 60}},
            storage={"url": url, "flush_interval_ms": 20},
        )
        with gateway(doc) as (base, _, _):
            r = httpx.post(
                f"{base}/v1/chat/completions",
                json=chat("race", "hedged", stream=True),
                headers=AUTH,
                timeout=30,
            )
            assert r.status_code == 200
    engine = make_engine(url)
    try:
        req = rows(engine, "SELECT deployment, attempts, hedges, retries, failovers FROM requests")
        assert req == [{"deployment": "d-quick", "attempts": 2, "hedges": 1, "retries": 0, "failovers": 0}]
        atts = rows(
            engine, "SELECT deployment, hedge, offset_ms, error_kind FROM attempts ORDER BY offset_ms"
        )
    finally:
        engine.dispose()
    assert [(a["deployment"], bool(a["hedge"]), a["error_kind"]) for a in atts] == [
        ("d-late", False, "hedge_lost"),
        ("d-quick", True, None),
    ]
    assert atts[0]["offset_ms"] < 60 <= atts[1]["offset_ms"] < 400
