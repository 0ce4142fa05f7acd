"""The Responses route in the gateway's ledger: its rows (endpoint ``responses``), conversations
that outlive the process that stored them, failures mid-stream, and the ledger turned off."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import openai
import pytest

from switchpoint.api.app import create_app
from switchpoint.config import parse
from test_responses_sdk import check_stream

import specs
from servers import serve_in_thread


def _document(sim: str, *, storage: bool = True) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "providers": {
            "p-openai": {"family": "openai", "base_url": f"{sim}/openai/v1", "simulated": True},
            "p-anthropic": {"family": "anthropic", "base_url": f"{sim}/anthropic", "simulated": True},
            "p-gemini": {"family": "gemini", "base_url": f"{sim}/gemini/v1beta", "simulated": True},
        },
        "deployments": {
            "d-openai": {"provider": "p-openai", "model": "sim-gpt", "price": {"input": 1.0, "output": 2.0}},
            "d-anthropic": {
                "provider": "p-anthropic",
                "model": "sim-claude",
                "price": {"input": 1.0, "output": 2.0},
            },
            "d-gemini": {
                "provider": "p-gemini",
                "model": "sim-gemini",
                "price": {"input": 1.0, "output": 2.0},
            },
        },
        "models": {"up-openai": "d-openai", "up-anthropic": "d-anthropic", "up-gemini": "d-gemini"},
    }
    if not storage:
        doc["storage"] = {"enabled": False}
    return doc


def _rows(url: str, want: set[str]) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + 15
    while True:
        got = httpx.get(f"{url}/admin/requests", params={"limit": "100"}, timeout=10).json()["data"]
        rows = {r["request_id"]: r for r in got}
        if want <= set(rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def _stream(url: str, body: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    events = []
    with httpx.stream("POST", f"{url}/v1/responses", json={**body, "stream": True}, timeout=30) as r:
        assert r.status_code == 200
        rid = r.headers["x-request-id"]
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    return rid, events


@pytest.mark.parametrize("upstream", ["openai", "anthropic", "gemini"])
def test_rows_conversations_across_processes_and_failures(
    simulator_url: str, ledger_url: str, monkeypatch: pytest.MonkeyPatch, upstream: str
) -> None:
    monkeypatch.setenv("SWITCHPOINT_DATABASE_URL", ledger_url)
    cfg = parse(_document(simulator_url), env={})
    model = f"up-{upstream}"
    with serve_in_thread(create_app(cfg)) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
        raw = client.responses.with_raw_response.create(model=model, input="first turn", user="erin")
        first = raw.parse()
        plain_id = raw.headers["x-request-id"]
        stream_id, events = _stream(url, {"model": model, "input": "streamed turn"})
        check_stream(events)
        cut_id, cut = _stream(url, {"model": model, "input": "Go on [[sim cut_after=2 output_tokens=30]]"})
        check_stream(cut)
        rows = _rows(url, {plain_id, stream_id, cut_id})
        client.close()
    plain, streamed, failed = rows[plain_id], rows[stream_id], rows[cut_id]
    assert (plain["endpoint"], plain["stream"], plain["status"]) == ("responses", False, 200)
    assert plain["deployment"] == f"d-{upstream}" and plain["end_user"] == "erin"
    assert plain["input_tokens"] == first.usage.input_tokens  # type: ignore[union-attr]
    assert plain["output_tokens"] == first.usage.output_tokens  # type: ignore[union-attr]
    assert plain["cost_usd"] > 0
    assert (streamed["endpoint"], streamed["stream"], streamed["status"]) == ("responses", True, 200)
    assert streamed["output_tokens"] == events[-1]["response"]["usage"]["output_tokens"]
    assert failed["endpoint"] == "responses" and failed["status"] >= 500
    kinds = [e["type"] for e in cut]
    assert "response.output_text.delta" in kinds and kinds[-2:] != ["response.completed"]
    assert "error" in kinds and kinds[-1] == "response.failed"
    assert cut[-1]["response"]["status"] == "failed"

    # A second gateway on the same database (a restart, another worker) continues the conversation.
    with serve_in_thread(create_app(parse(_document(simulator_url), env={}))) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
        again = client.responses.retrieve(first.id)
        assert again.output_text == first.output_text
        nxt = client.responses.create(model=model, previous_response_id=first.id, input="second turn")
        assert nxt.usage is not None and first.usage is not None
        assert nxt.usage.input_tokens > first.usage.input_tokens  # the first turn went along
        failed_id = cut[-1]["response"]["id"]
        with pytest.raises(openai.NotFoundError):  # a failed stream is not kept
            client.responses.retrieve(failed_id)
        client.close()


def test_with_the_ledger_off_nothing_is_stored_and_continuing_is_a_400(simulator_url: str) -> None:
    cfg = parse(_document(simulator_url, storage=False), env={})
    with serve_in_thread(create_app(cfg)) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
        raw = client.responses.with_raw_response.create(model="up-openai", input="hello")
        specs.check_schema("openai", "Response", raw.http_response.json())
        r = raw.parse()
        with pytest.raises(openai.NotFoundError) as missing:
            client.responses.retrieve(r.id)
        assert "storage.enabled" in missing.value.message
        with pytest.raises(openai.BadRequestError) as bad:
            client.responses.create(model="up-openai", input="again", previous_response_id=r.id)
        assert bad.value.body["param"] == "previous_response_id"  # type: ignore[index]
        client.close()
