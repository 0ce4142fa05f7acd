"""Background responses with the official ``openai`` SDK against the gateway (the simulator
behind it): ``background: true`` polled to its end, a background stream left and resumed with
``starting_after``, a stored response streamed again, ``cancel``, the per-worker limit, rows a
stopped worker left behind, and shutdown."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import openai
import pytest

from governance_harness import bearer, configured_url_wins, doc, make_key
from resilience_harness import AUTH, Server, gateway
from switchpoint.api.responses_background import RESTARTED, SHUT_DOWN
from switchpoint.simulator import SimConfig
from switchpoint.simulator import create_app as create_sim
from switchpoint.store import migrate
from switchpoint.store import responses as store
from switchpoint.store.engine import make_engine
from test_responses_sdk import WEATHER, check_stream, sse_events

import specs

__all__ = ["configured_url_wins"]  # the test's own ledger file, whatever the environment names

MASTER = AUTH["authorization"].removeprefix("Bearer ")
SLOW = "Tell a long story [[sim tokens_per_s=10 output_tokens=80]]"


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    with Server(create_sim(SimConfig())) as server:
        yield server.url


def _doc(sim: str, tmp_path: Path, url: str | None = None, **storage: Any) -> dict[str, Any]:
    settings = {"url": url or f"sqlite:///{tmp_path / 'ledger.db'}", "flush_interval_ms": 20, **storage}
    return doc(sim, tmp_path, None, storage=settings)


def _client(url: str, secret: str = MASTER) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=secret, max_retries=0)


def _until(client: openai.OpenAI, rid: str, done: set[str], timeout_s: float = 20) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        r = client.responses.retrieve(rid)
        if r.status in done or time.monotonic() > deadline:
            return r
        time.sleep(0.05)


def _ledger(url: str, rid: str, timeout_s: float = 15) -> list[dict[str, Any]]:
    """The ledger's rows of request ``rid`` (once there is one)."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = httpx.get(f"{url}/admin/requests", params={"limit": "200"}, headers=AUTH, timeout=10)
        rows = [r for r in got.json()["data"] if r["request_id"] == rid]
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def _shape(events: list[dict[str, Any]]) -> tuple[list[str], str]:
    """The event types (a run of deltas as one) and the text the deltas carried."""
    kinds: list[str] = []
    for e in events:
        if not (kinds and kinds[-1] == e["type"] and e["type"].endswith(".delta")):
            kinds.append(e["type"])
    text = "".join(e.get("delta", "") for e in events if e["type"].endswith(".delta"))
    return kinds, text


def test_a_background_response_is_queued_then_polled_to_completed_with_one_ledger_row(
    sim: str, tmp_path: Path
) -> None:
    with gateway(_doc(sim, tmp_path)) as (url, _, _):
        client = _client(url)
        raw = client.responses.with_raw_response.create(model="fast", input="hello there", background=True)
        specs.check_response("openai", "POST", "https://api.openai.com/v1/responses", 200, raw.content)
        first = raw.parse()
        assert first.background is True and first.status in ("queued", "in_progress")
        assert first.output == [] and first.id.startswith("resp_")
        done = _until(client, first.id, {"completed", "failed", "incomplete"})
        assert done.status == "completed" and done.background is True
        assert done.output_text.startswith("[simulated") and done.usage is not None
        assert done.id == first.id and done.created_at == first.created_at
        rows = _ledger(url, raw.headers["x-request-id"])
        assert len(rows) == 1
        row = rows[0]
        assert (row["endpoint"], row["status"], row["deployment"]) == ("responses", 200, "d-gpt")
        assert row["output_tokens"] == done.usage.output_tokens and row["cost_usd"] >= 0
        # it continues a conversation like any stored response
        nxt = client.responses.create(model="fast", input="and then?", previous_response_id=first.id)
        assert nxt.status == "completed"
        with pytest.raises(openai.BadRequestError) as refused:  # background needs store
            client.responses.create(model="fast", input="x", background=True, store=False)
        assert refused.value.body["param"] == "background"  # type: ignore[index]
        client.close()


def test_a_background_stream_outlives_its_client_and_resumes_after_a_sequence_number(
    sim: str, tmp_path: Path
) -> None:
    with gateway(_doc(sim, tmp_path)) as (url, _, _):
        client = _client(url)
        seen: list[dict[str, Any]] = []
        live = client.responses.create(model="fast", input=SLOW, background=True, stream=True)
        for event in live:
            seen.append(event.to_dict())
            if len(seen) == 6:
                break
        live.close()  # the client goes away
        rid = seen[0]["response"]["id"]
        assert [e["sequence_number"] for e in seen] == list(range(6))
        assert seen[0]["response"]["background"] is True
        assert client.responses.retrieve(rid).status == "in_progress"  # still running
        rest = [e.to_dict() for e in client.responses.retrieve(rid, stream=True, starting_after=5)]
        assert rest[0]["sequence_number"] == 6
        whole = seen + rest
        check_stream(whole)  # numbered 0, 1, 2 … with no gap and no duplicate
        assert whole[-1]["type"] == "response.completed"
        done = client.responses.retrieve(rid)
        assert done.status == "completed"
        assert _shape(whole)[1] == done.output_text
        # resumed again after the end: the same events (the worker keeps them a while)
        again = [e.to_dict() for e in client.responses.retrieve(rid, stream=True, starting_after=5)]
        assert again == rest
        client.close()


@pytest.mark.parametrize("tools", [False, True])
def test_a_stored_response_streams_again_as_the_live_stream_went(
    sim: str, tmp_path: Path, tools: bool
) -> None:
    with gateway(_doc(sim, tmp_path)) as (url, _, _):
        body: dict[str, Any] = {"model": "claude", "input": "What is the weather in Oslo?", "stream": True}
        if tools:
            body |= {"tools": [WEATHER], "tool_choice": "required"}
        with httpx.stream("POST", f"{url}/v1/responses", json=body, headers=AUTH, timeout=30) as r:
            live = sse_events(r.iter_lines())
        check_stream(live)
        rid = live[-1]["response"]["id"]
        client = _client(url)
        again = [e.to_dict() for e in client.responses.retrieve(rid, stream=True)]
        check_stream(again)
        assert _shape(again) == _shape(live)
        assert again[-1]["response"] == live[-1]["response"]
        kinds = {e["type"] for e in again}
        assert ("response.function_call_arguments.done" in kinds) is tools
        tail = [e.to_dict() for e in client.responses.retrieve(rid, stream=True, starting_after=3)]
        assert tail == again[4:]
        raw = httpx.get(
            f"{url}/v1/responses/{rid}",
            params={"stream": "true", "include_obfuscation": "false"},
            headers=AUTH,
            timeout=10,
        )
        assert raw.status_code == 200 and raw.headers["content-type"].startswith("text/event-stream")
        bad = httpx.get(
            f"{url}/v1/responses/{rid}", params={"stream": "true", "starting_after": "x"}, headers=AUTH
        )
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "starting_after"
        client.close()


def test_cancel_stops_a_slow_run_and_settles_it_once(sim: str, tmp_path: Path) -> None:
    document = _doc(sim, tmp_path)
    document["queue"] = {"max_wait_s": 0}  # a request past max_parallel is refused, not queued
    with gateway(document) as (url, _, _):
        secret, _ = make_key(url, limits={"max_parallel": 1})
        client = _client(url, secret)
        raw = client.responses.with_raw_response.create(model="fast", input=SLOW, background=True)
        started = raw.parse()
        assert _until(client, started.id, {"in_progress"}).status == "in_progress"
        # its one slot is taken while it runs
        busy = httpx.post(
            f"{url}/v1/responses", json={"model": "fast", "input": "hi"}, headers=bearer(secret), timeout=30
        )
        assert busy.status_code == 429
        raw_cancel = client.responses.with_raw_response.cancel(started.id)
        specs.check_response(
            "openai",
            "POST",
            f"https://api.openai.com/v1/responses/{started.id}/cancel",
            200,
            raw_cancel.content,
        )
        cancelled = raw_cancel.parse()
        assert cancelled.status == "cancelled" and cancelled.id == started.id
        assert client.responses.retrieve(started.id).status == "cancelled"
        assert client.responses.cancel(started.id).status == "cancelled"  # again: unchanged
        rows = _ledger(url, raw.headers["x-request-id"])
        assert len(rows) == 1 and (rows[0]["status"], rows[0]["error_kind"]) == (499, "cancelled")
        # the slot came back, once
        again = client.responses.create(model="fast", input="now?")
        assert again.status == "completed"
        time.sleep(0.3)
        assert len(_ledger(url, raw.headers["x-request-id"])) == 1
        # a foreground response cannot be cancelled; an unknown id is a 404
        with pytest.raises(openai.BadRequestError) as sync:
            client.responses.cancel(again.id)
        assert sync.value.body["message"] == "Cannot cancel a synchronous response."  # type: ignore[index]
        with pytest.raises(openai.NotFoundError):
            client.responses.cancel("resp_unknown")
        other, _ = make_key(url)
        with pytest.raises(openai.NotFoundError):  # someone else's
            _client(url, other).responses.cancel(started.id)
        client.close()


def test_a_run_cancelled_while_queued_is_booked_once(sim: str, tmp_path: Path) -> None:
    with gateway(_doc(sim, tmp_path)) as (url, _, _):
        client = _client(url)
        body = {"model": "fast", "input": "wait [[sim latency_ms=20000]]", "background": True, "stream": True}
        with httpx.stream("POST", f"{url}/v1/responses", json=body, headers=AUTH, timeout=30) as r:
            assert r.status_code == 200
            request = r.headers["x-request-id"]
            first = sse_events(r.iter_lines(), stop_after=2)  # at once, before the upstream answers
        assert [e["type"] for e in first] == ["response.created", "response.queued"]
        assert first[0]["response"]["status"] == "queued"
        rid = first[0]["response"]["id"]
        assert client.responses.retrieve(rid).status == "queued"
        assert client.responses.cancel(rid).status == "cancelled"
        booked = _ledger(url, request)
        assert len(booked) == 1 and (booked[0]["status"], booked[0]["error_kind"]) == (499, "cancelled")
        # a stream of it now ends at once (no terminal event: the Responses stream has none for it)
        assert [e.type for e in client.responses.retrieve(rid, stream=True)] == [
            "response.created",
            "response.queued",
        ]
        client.close()


@pytest.mark.parametrize(
    ("directive", "began"),
    [("[[sim status=400]]", False), ("[[sim cut_after=2 output_tokens=30]]", True)],
    ids=["refused-upstream", "cut-mid-stream"],
)
def test_a_run_that_fails_leaves_its_row_failed_with_the_error(
    sim: str, tmp_path: Path, directive: str, began: bool
) -> None:
    with gateway(_doc(sim, tmp_path)) as (url, _, _):
        client = _client(url)
        body = {"model": "fast", "input": f"go {directive}", "background": True, "stream": True}
        with httpx.stream("POST", f"{url}/v1/responses", json=body, headers=AUTH, timeout=30) as r:
            events = sse_events(r.iter_lines())
        check_stream(events)
        kinds = [e["type"] for e in events]
        assert "error" in kinds and kinds[-1] == "response.failed"
        assert ("response.output_text.delta" in kinds) is began
        raw = client.responses.with_raw_response.retrieve(events[0]["response"]["id"])
        failed = raw.parse()
        assert failed.status == "failed" and failed.error is not None and failed.error.code == "server_error"
        assert raw.http_response.json() == events[-1]["response"]  # stored as the stream ended it
        client.close()


def test_with_the_ledger_off_background_is_a_400(sim: str, tmp_path: Path) -> None:
    with gateway(_doc(sim, tmp_path, enabled=False)) as (url, _, _):
        client = _client(url)
        with pytest.raises(openai.BadRequestError) as refused:
            client.responses.create(model="fast", input="x", background=True)
        assert "storage.enabled" in refused.value.message
        client.close()


def test_past_the_limit_in_flight_a_background_request_is_a_429(sim: str, tmp_path: Path) -> None:
    with gateway(_doc(sim, tmp_path, background_max_inflight=1)) as (url, _, _):
        client = _client(url)
        running = client.responses.create(model="fast", input=SLOW, background=True)
        with pytest.raises(openai.RateLimitError) as refused:
            client.responses.create(model="fast", input="one more", background=True)
        assert "background" in refused.value.message
        assert refused.value.body["type"] == "rate_limit_error"  # type: ignore[index]
        assert client.responses.create(model="fast", input="foreground").status == "completed"
        client.responses.cancel(running.id)
        assert client.responses.create(model="fast", input="now", background=True).background is True
        client.close()


def test_rows_a_stopped_worker_left_are_failed_saying_so(sim: str, tmp_path: Path, ledger_url: str) -> None:
    migrate.upgrade(ledger_url)
    engine = make_engine(ledger_url)
    now = time.time()

    def seed(rid: str, heartbeat: float) -> None:
        doc = {"id": rid, "object": "response", "status": "in_progress", "background": True, "output": []}
        store.insert(
            engine,
            store.StoredResponse(
                id=rid,
                owner="name:master",
                created_at=now,
                model="fast",
                previous_response_id=None,
                input_items=[],
                response=msgspec.json.encode(doc),
                status="in_progress",
                background=True,
                worker="gone",
                heartbeat_at=heartbeat,
            ),
        )

    seed("resp_dead", now - 3600)
    seed("resp_alive_elsewhere", now + 3600)  # another worker's, marked alive
    try:
        with gateway(_doc(sim, tmp_path, ledger_url)) as (url, _, _):
            client = _client(url)
            dead = _until(client, "resp_dead", {"failed"}, timeout_s=5)
            assert dead.status == "failed" and dead.error is not None
            assert dead.error.message == RESTARTED
            assert client.responses.retrieve("resp_alive_elsewhere").status == "in_progress"
            # a row cancelled elsewhere is not overwritten by the run that ends later
            cancelled = client.responses.cancel("resp_alive_elsewhere")
            assert cancelled.status == "cancelled"
            assert not store.settle(engine, "resp_alive_elsewhere", "name:master", "completed", b"{}")
            again = [e.type for e in client.responses.retrieve("resp_dead", stream=True)]
            assert again == ["response.created", "response.queued", "response.in_progress", "response.failed"]
            client.close()
    finally:
        engine.dispose()


def test_shutdown_fails_the_runs_it_cannot_wait_for(sim: str, tmp_path: Path) -> None:
    document = _doc(sim, tmp_path)
    with gateway(document, shutdown_timeout_s=0.2) as (url, _, _):
        client = _client(url)
        running = client.responses.create(model="fast", input=SLOW, background=True)
        _until(client, running.id, {"in_progress"})
        client.close()
    with gateway(document) as (url, _, _):
        client = _client(url)
        ended = client.responses.retrieve(running.id)
        assert ended.status == "failed" and ended.error is not None and ended.error.message == SHUT_DOWN
        client.close()
