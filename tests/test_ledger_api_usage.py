"""Proof: after requests through the official SDKs on embedded defaults (no config file),
``GET /admin/usage?group_by=deployment`` equals the usage the SDKs saw and the hand-computed
cost; a restarted gateway on the same database gives the same answer. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from typing import Any

import anthropic
import httpx
import msgspec
import openai
import pytest

from switchpoint import defaults
from switchpoint.api.app import create_app
from switchpoint.config.accounting import DisplayCurrency

from servers import serve_in_thread

#: The embedded simulated deployments' prices (USD per million tokens), as defaults.py sets them:
#: written out here so the cost below is computed by hand, not by the code under test.
PRICES = {
    "sim-gpt": {"input": 1.25, "cached": 0.125, "write": 1.25, "output": 10.0, "reasoning": 10.0},
    "sim-gemini": {"input": 0.3, "cached": 0.03, "write": 0.3, "output": 2.5, "reasoning": 2.5},
    "sim-claude": {"input": 5.0, "cached": 0.5, "write": 6.25, "output": 25.0, "reasoning": 25.0},
}
CLASSES = (
    "input_tokens",
    "cached_input_tokens",
    "cache_write_5m_tokens",
    "output_tokens",
    "reasoning_tokens",
)


class Seen:
    """What the SDKs were told, per deployment (canonical classes: input includes cache reads
    and writes, output includes reasoning)."""

    def __init__(self) -> None:
        self.tokens: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(CLASSES, 0))
        self.requests: dict[str, int] = defaultdict(int)
        self.ids: list[str] = []

    def openai(self, dep: str, usage: Any, rid: str) -> None:
        t = self.tokens[dep]
        t["input_tokens"] += usage.prompt_tokens
        details = usage.prompt_tokens_details
        t["cached_input_tokens"] += (details.cached_tokens or 0) if details else 0
        t["output_tokens"] += usage.completion_tokens
        out = usage.completion_tokens_details
        t["reasoning_tokens"] += (out.reasoning_tokens or 0) if out else 0
        self.requests[dep] += 1
        self.ids.append(rid)

    def anthropic(self, dep: str, usage: Any, rid: str) -> None:
        t = self.tokens[dep]
        read, write = usage.cache_read_input_tokens or 0, usage.cache_creation_input_tokens or 0
        t["input_tokens"] += usage.input_tokens + read + write
        t["cached_input_tokens"] += read
        t["cache_write_5m_tokens"] += write
        t["output_tokens"] += usage.output_tokens
        self.requests[dep] += 1
        self.ids.append(rid)

    def cost(self, dep: str) -> float:
        t, p = self.tokens[dep], PRICES[dep]
        plain_in = t["input_tokens"] - t["cached_input_tokens"] - t["cache_write_5m_tokens"]
        plain_out = t["output_tokens"] - t["reasoning_tokens"]
        return (
            plain_in * p["input"]
            + t["cached_input_tokens"] * p["cached"]
            + t["cache_write_5m_tokens"] * p["write"]
            + plain_out * p["output"]
            + t["reasoning_tokens"] * p["reasoning"]
        ) / 1_000_000


@pytest.fixture
def db_env(ledger_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SWITCHPOINT_DATABASE_URL", ledger_url)
    monkeypatch.delenv("SWITCHPOINT_MASTER_KEY", raising=False)
    return ledger_url


@pytest.fixture
def embedded(simulator_url: str, db_env: str) -> Any:
    return defaults.embedded(simulator_url)


def _usage(url: str, query: str = "group_by=deployment", *, want: int | None = None) -> dict[str, Any]:
    """``/admin/usage``; with ``want``, polled until that many requests are in the ledger (rows
    land within one flush window)."""
    deadline = time.monotonic() + 15
    while True:
        r = httpx.get(f"{url}/admin/usage?{query}", timeout=10)
        assert r.status_code == 200, r.text
        doc: dict[str, Any] = r.json()
        if want is None or doc["totals"]["requests"] >= want or time.monotonic() > deadline:
            return doc
        time.sleep(0.05)


def _traffic(url: str, seen: Seen) -> None:
    tag = uuid.uuid4().hex
    long_prompt = f"{tag} " + "The ledger keeps every token and every cent. " * 150  # cacheable
    oai = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    ant = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
    try:
        for _ in range(2):  # the second is a cache read
            raw = oai.chat.completions.with_raw_response.create(
                model="sim-gpt",
                messages=[{"role": "user", "content": long_prompt}],
                reasoning_effort="low",
                user="alice",
            )
            r = raw.parse()
            seen.openai(raw.headers["x-switchpoint-deployment"], r.usage, raw.headers["x-request-id"])
        with oai.chat.completions.with_streaming_response.create(
            model="sim-gpt",
            messages=[{"role": "user", "content": f"{tag} stream please"}],
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"x-switchpoint-task": "summarize", "x-switchpoint-session": f"s-{tag}"},
        ) as resp:
            usage = None
            for chunk in resp.parse():
                if chunk.usage is not None:
                    usage = chunk.usage
            seen.openai(resp.headers["x-switchpoint-deployment"], usage, resp.headers["x-request-id"])
        raw = oai.chat.completions.with_raw_response.create(
            model="sim-gemini",
            messages=[{"role": "user", "content": f"{tag} hello gemini"}],
            extra_headers={"x-switchpoint-tags": "env=test, team=ledger"},
        )
        seen.openai(raw.headers["x-switchpoint-deployment"], raw.parse().usage, raw.headers["x-request-id"])
        system: Any = [{"type": "text", "text": long_prompt, "cache_control": {"type": "ephemeral"}}]
        for _ in range(2):  # a cache write, then a read
            araw = ant.messages.with_raw_response.create(
                model="sim-claude",
                max_tokens=64,
                system=system,
                messages=[{"role": "user", "content": "Summarise the above."}],
                metadata={"user_id": "bob"},
            )
            m = araw.parse()
            seen.anthropic(araw.headers["x-switchpoint-deployment"], m.usage, araw.headers["x-request-id"])
        with ant.messages.stream(
            model="sim-claude", max_tokens=32, messages=[{"role": "user", "content": f"{tag} stream"}]
        ) as stream:
            final = stream.get_final_message()
            rid = stream.response.headers["x-request-id"]
            dep = stream.response.headers["x-switchpoint-deployment"]
        seen.anthropic(dep, final.usage, rid)
    finally:
        oai.close()
        ant.close()


def _check(doc: dict[str, Any], seen: Seen) -> None:
    got = {row["deployment"]: row for row in doc["data"]}
    assert set(got) == set(seen.requests), (got.keys(), seen.requests)
    for dep, tokens in seen.tokens.items():
        row = got[dep]
        assert row["requests"] == seen.requests[dep]
        assert row["errors"] == 0
        for cls, n in tokens.items():
            assert row[cls] == n, (dep, cls)
        assert row["cost_usd"] == pytest.approx(seen.cost(dep), rel=1e-9, abs=1e-12), dep
    assert doc["totals"]["requests"] == sum(seen.requests.values())
    assert doc["totals"]["cost_usd"] == pytest.approx(sum(seen.cost(d) for d in seen.tokens), rel=1e-9)
    assert got["sim-gpt"]["cached_input_tokens"] > 0 and got["sim-gpt"]["reasoning_tokens"] > 0
    assert got["sim-claude"]["cache_write_5m_tokens"] > 0 and got["sim-claude"]["cached_input_tokens"] > 0


def test_usage_equals_what_the_sdks_saw_and_survives_a_restart(embedded: Any, simulator_url: str) -> None:
    seen = Seen()
    with serve_in_thread(create_app(embedded)) as url:
        _traffic(url, seen)
        n = sum(seen.requests.values())
        live = _usage(url, want=n)
        _check(live, seen)
        csv = httpx.get(f"{url}/admin/usage?group_by=deployment&format=csv", timeout=10)
        assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
        lines = csv.text.strip().splitlines()
        assert lines[0].startswith("deployment,requests,errors,input_tokens")
        assert len(lines) == 1 + len(seen.requests)
    with serve_in_thread(create_app(defaults.embedded(simulator_url))) as url:  # a new gateway, same database
        again = _usage(url)
    assert again["data"] == live["data"]
    _check(again, seen)


def test_ingress_fields_requests_listing_and_one_request(embedded: Any) -> None:
    seen = Seen()
    with serve_in_thread(create_app(embedded)) as url:
        _traffic(url, seen)
        _usage(url, want=sum(seen.requests.values()))
        by_task = {r["task"]: r["requests"] for r in _usage(url, "group_by=task")["data"]}
        assert by_task["summarize"] == 1
        listing = httpx.get(f"{url}/admin/requests", params={"task": "summarize"}, timeout=10).json()
        (row,) = listing["data"]
        assert row["session"].startswith("s-") and row["stream"] is True and row["deployment"] == "sim-gpt"
        alice = httpx.get(f"{url}/admin/requests", params={"end_user": "alice"}, timeout=10).json()["data"]
        assert len(alice) == 2 and all(r["session"] == "alice" for r in alice)  # OpenAI `user`
        bob = httpx.get(f"{url}/admin/requests", params={"end_user": "bob"}, timeout=10).json()["data"]
        assert len(bob) == 2 and all(r["session"] == "bob" for r in bob)  # Anthropic metadata.user_id
        csv = httpx.get(f"{url}/admin/requests", params={"task": "summarize", "format": "csv"}, timeout=10)
        assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
        header, line = csv.text.strip().splitlines()
        assert header.startswith("request_id,started_at,") and line.startswith(row["request_id"] + ",")
        tagged = httpx.get(f"{url}/admin/requests", params={"tag": "team=ledger"}, timeout=10).json()["data"]
        assert [r["deployment"] for r in tagged] == ["sim-gemini"]
        assert tagged[0]["tags"] == ["env=test", "team=ledger"]
        # paging walks every request exactly once
        ids: list[str] = []
        cursor = None
        while True:
            params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
            page = httpx.get(f"{url}/admin/requests", params=params, timeout=10).json()
            ids += [r["request_id"] for r in page["data"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(ids) == sorted(seen.ids)
        one = httpx.get(f"{url}/admin/requests/{seen.ids[0]}", timeout=10)
        assert one.status_code == 200
        doc = one.json()
        assert doc["request"]["request_id"] == seen.ids[0]
        assert [a["deployment"] for a in doc["attempts"]] == ["sim-gpt"]
        assert doc["attempts"][0]["status"] == 200
        assert doc["route"]["candidates"][0]["deployment"] == "sim-gpt"
        missing = httpx.get(f"{url}/admin/requests/req_nope", timeout=10)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "request_not_found"
        bad = httpx.get(f"{url}/admin/usage?group_by=colour", timeout=10)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "group_by"
        bad = httpx.get(f"{url}/admin/usage?since=yesterday-ish", timeout=10)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "since"
        bad = httpx.get(f"{url}/admin/requests?cursor=zzz", timeout=10)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "cursor"


def test_feedback(embedded: Any) -> None:
    seen = Seen()
    with serve_in_thread(create_app(embedded)) as url:
        _traffic(url, seen)
        rid = seen.ids[0]
        ok = httpx.post(f"{url}/v1/feedback", json={"request_id": rid, "outcome": "completed", "score": 0.8})
        assert ok.status_code == 200, ok.text
        assert ok.json()["outcome"] == "completed" and ok.json()["id"] > 0
        task = httpx.post(f"{url}/v1/feedback", json={"task_id": "my-task-1", "outcome": "abandoned"})
        assert task.status_code == 200
        cases: list[tuple[Any, int, str | None]] = [
            ({"request_id": "req_unknown", "outcome": "failed"}, 404, "request_id"),
            ({"request_id": rid, "outcome": "great"}, 400, "outcome"),
            ({"outcome": "completed"}, 400, "request_id"),
            ({"request_id": rid, "task_id": "t", "outcome": "completed"}, 400, "request_id"),
            ({"request_id": rid, "outcome": "completed", "score": "high"}, 400, "score"),
            ({"request_id": rid, "outcome": "completed", "colour": 1}, 400, "colour"),
            ([1, 2], 400, None),
        ]
        for body, status, param in cases:
            r = httpx.post(f"{url}/v1/feedback", json=body)
            assert r.status_code == status, (body, r.text)
            err = r.json()["error"]
            assert err["param"] == param and err["message"], body
        big = httpx.post(
            f"{url}/v1/feedback", json={"task_id": "t", "outcome": "completed", "x": "y" * 70_000}
        )
        assert big.status_code == 413 and big.json()["error"]["message"]
        garbage = httpx.post(
            f"{url}/v1/feedback", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert garbage.status_code == 400 and "error" in garbage.json()
        _usage(url, want=len(seen.ids))
        doc = httpx.get(f"{url}/admin/requests/{rid}").json()
        assert [(f["outcome"], f["score"]) for f in doc["feedback"]] == [("completed", 0.8)]


def test_display_currency_everywhere_spend_is_shown(embedded: Any) -> None:
    cfg = msgspec.structs.replace(embedded, currency=DisplayCurrency(code="CNY", rate=7.1))
    seen = Seen()
    with serve_in_thread(create_app(cfg)) as url:
        _traffic(url, seen)
        doc = _usage(url, want=sum(seen.requests.values()))
        assert doc["currency"] == {"code": "CNY", "per_usd": 7.1}
        for row in doc["data"]:
            assert row["cost_cny"] == pytest.approx(row["cost_usd"] * 7.1)
        assert doc["totals"]["cost_cny"] == pytest.approx(doc["totals"]["cost_usd"] * 7.1)
        csv = httpx.get(f"{url}/admin/usage?group_by=deployment&format=csv").text
        assert "cost_usd" in csv.splitlines()[0] and "cost_cny" in csv.splitlines()[0]
        item = httpx.get(f"{url}/admin/requests?limit=1").json()["data"][0]
        assert item["cost_cny"] == pytest.approx(item["cost_usd"] * 7.1)


def test_admin_views_need_the_master_key(
    simulator_url: str, db_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWITCHPOINT_MASTER_KEY", "sk-master-ledger")
    cfg = defaults.embedded(simulator_url)
    assert cfg.master_key is not None
    with serve_in_thread(create_app(cfg)) as url:
        for path in ("/admin/usage", "/admin/requests", "/admin/requests/x"):
            r = httpx.get(f"{url}{path}")
            assert r.status_code == 401 and r.json()["error"]["type"], path
            r = httpx.get(f"{url}{path}", headers={"authorization": "Bearer sk-master-ledger"})
            assert r.status_code in (200, 404), path
        r = httpx.post(f"{url}/v1/feedback", json={"task_id": "t", "outcome": "completed"})
        assert r.status_code == 401


def test_ledger_off_is_a_clear_404(embedded: Any) -> None:
    from switchpoint.config.storage import Storage

    cfg = msgspec.structs.replace(embedded, storage=Storage(enabled=False))
    with serve_in_thread(create_app(cfg)) as url:
        for r in (
            httpx.get(f"{url}/admin/usage"),
            httpx.get(f"{url}/admin/requests"),
            httpx.post(f"{url}/v1/feedback", json={"task_id": "t", "outcome": "completed"}),
        ):
            assert r.status_code == 404
            assert r.json()["error"]["code"] == "ledger_disabled"
