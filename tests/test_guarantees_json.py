"""The JSON output guarantee: a simulated deployment that breaks 30% of its JSON answers, behind a
rule with ``guarantees.json``; every answer the client gets parses and validates, and the
refused answers are in the ledger as ``invalid_output`` attempts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import jsonschema
import openai
import pytest

from resilience_harness import AUTH, GATEWAY_KEY, Server, document, gateway, provider
from switchpoint.canonical import ChatRequest, Message, ResponseFormat, TextPart, Tool, ToolChoice
from switchpoint.config.storage import ENV_URL
from switchpoint.executor.guarantees import json_check
from switchpoint.simulator import Behavior, SimConfig
from switchpoint.simulator import create_app as create_sim
from switchpoint.store.engine import make_engine

from store_db import rows

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 1},
        "population": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
    },
    "required": ["city", "population", "tags"],
    "additionalProperties": False,
}
RESPONSE_FORMAT = {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA, "strict": True}}
BROKEN = 0.3


@pytest.fixture(autouse=True)
def configured_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_URL, raising=False)


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    flaky = Behavior(bad_json_rate=BROKEN)
    config = SimConfig(seed=11, models={"sim-gpt": flaky, "sim-gpt-b": flaky, "sim-claude": flaky})
    with Server(create_sim(config)) as server:
        yield server.url


def _doc(sim: str, db: str, guarantees: dict[str, Any] | None) -> dict[str, Any]:
    quick = {"attempts": 4, "backoff_base_s": 0.001, "backoff_max_s": 0.002, "max_total_attempts": 8}
    no_breaker = {"enabled": False}
    rule: dict[str, Any] = {
        "name": "structured",
        "match": {"model": ["json", "claude"]},
        "candidates": ["d-a", "d-b"],
        "execution": {"retry": quick},
    }
    claude_rule: dict[str, Any] = {
        "name": "claude-tools",
        "match": {"model": "claude"},
        "candidates": ["d-claude"],
        "execution": {"retry": quick},
    }
    if guarantees is not None:
        rule["guarantees"] = guarantees
        claude_rule["guarantees"] = guarantees
    return document(
        {"p": provider(sim, "openai"), "q": provider(sim, "anthropic")},
        {
            "d-a": {"provider": "p", "model": "sim-gpt", "breaker": no_breaker},
            "d-b": {"provider": "p", "model": "sim-gpt-b", "breaker": no_breaker},
            "d-claude": {"provider": "q", "model": "sim-claude", "breaker": no_breaker},
        },
        {"json": ["d-a", "d-b"], "claude": "d-claude"},
        routing={"rules": [claude_rule, rule]},
        storage={"url": db, "flush_interval_ms": 20},
    )


def _valid(text: str | None) -> bool:
    try:
        jsonschema.validate(json.loads(text or ""), SCHEMA)
    except (ValueError, jsonschema.ValidationError):
        return False
    return True


def _ask(client: openai.OpenAI, n: int) -> list[str | None]:
    """``n`` non-streamed requests for the schema, one after the other: their answers' text."""
    return [
        client.chat.completions.create(
            model="json",
            messages=[{"role": "user", "content": f"city number {i}"}],
            response_format=RESPONSE_FORMAT,  # type: ignore[arg-type]
        )
        .choices[0]
        .message.content
        for i in range(n)
    ]


def _ledger(db: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    engine = make_engine(db)
    try:
        requests = rows(engine, "SELECT * FROM requests ORDER BY started_at")
        attempts = rows(engine, "SELECT * FROM attempts ORDER BY request_id, seq")
    finally:
        engine.dispose()
    return requests, attempts


def test_without_the_guarantee_broken_answers_reach_the_client(sim: str, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'off.db'}"
    with (
        gateway(_doc(sim, db, None)) as (url, _, _),
        openai.OpenAI(base_url=f"{url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client,
    ):
        answers = _ask(client, 40)
    broken = [a for a in answers if not _valid(a)]
    assert 4 <= len(broken) <= 24  # the fault is there: about 30% of 40


def test_every_non_streamed_answer_parses_and_validates_and_the_retries_are_recorded(
    sim: str, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'on.db'}"
    n = 200
    with (
        gateway(_doc(sim, db, {"json": {}})) as (url, _, _),
        openai.OpenAI(base_url=f"{url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client,
    ):
        answers = _ask(client, n)
    assert all(_valid(a) for a in answers)
    requests, attempts = _ledger(db)
    assert len(requests) == n and {r["status"] for r in requests} == {200}
    refused = [a for a in attempts if a["error_kind"] == "invalid_output"]
    # about 30% of all attempts were refused (n / 0.7 attempts in all, 0.3 of them refused)
    assert 0.15 * n <= len(refused) <= 0.7 * n
    assert len(attempts) == n + len(refused)
    assert {a["status"] for a in refused} == {200}  # the upstream answered; the answer was refused
    assert all(a["output_tokens"] and a["output_tokens"] > 0 for a in refused)  # billed tokens kept
    retried = sum(r["retries"] + r["failovers"] for r in requests)
    assert retried == len(refused)
    assert all("not valid JSON" in (a["error_message"] or "") for a in refused)  # cut short


def test_json_object_and_anthropic_forced_tools_are_checked(sim: str, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'tools.db'}"
    tool = {"name": "record_city", "description": "Record a city", "input_schema": SCHEMA}
    with (
        gateway(_doc(sim, db, {"json": {}})) as (url, _, _),
        openai.OpenAI(base_url=f"{url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client,
    ):
        for i in range(30):
            text = (
                client.chat.completions.create(
                    model="json",
                    messages=[{"role": "user", "content": f"object {i}"}],
                    response_format={"type": "json_object"},
                )
                .choices[0]
                .message.content
            )
            assert isinstance(json.loads(text or ""), dict)
        with anthropic.Anthropic(base_url=url, api_key=GATEWAY_KEY, max_retries=0) as claude:
            for i in range(30):
                msg = claude.messages.create(
                    model="claude",
                    max_tokens=300,
                    tools=[tool],  # type: ignore[list-item]
                    tool_choice={"type": "tool", "name": "record_city"},
                    messages=[{"role": "user", "content": f"record city {i}"}],
                )
                calls = [b for b in msg.content if b.type == "tool_use"]
                assert len(calls) == 1
                jsonschema.validate(calls[0].input, SCHEMA)
    requests, attempts = _ledger(db)
    assert len(requests) == 60 and {r["status"] for r in requests} == {200}
    refused = {a["deployment"] for a in attempts if a["error_kind"] == "invalid_output"}
    assert "d-claude" in refused and refused & {"d-a", "d-b"}


def test_buffered_streams_are_checked_before_the_client_gets_a_byte(sim: str, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'buffer.db'}"
    with (
        gateway(_doc(sim, db, {"json": {"stream": "buffer"}})) as (url, _, _),
        openai.OpenAI(base_url=f"{url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client,
    ):
        for i in range(40):
            stream = client.chat.completions.create(
                model="json",
                messages=[{"role": "user", "content": f"streamed city {i}"}],
                response_format=RESPONSE_FORMAT,  # type: ignore[arg-type]
                stream=True,
            )
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            assert _valid(text), text
    requests, attempts = _ledger(db)
    assert len(requests) == 40 and all(r["stream"] and r["status"] == 200 for r in requests)
    assert any(a["error_kind"] == "invalid_output" for a in attempts)
    assert all(r["error_kind"] is None for r in requests)


def test_validated_streams_are_forwarded_and_their_outcome_recorded(sim: str, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'validate.db'}"
    texts: list[str] = []
    with (
        gateway(_doc(sim, db, {"json": {"stream": "validate"}})) as (url, _, _),
        httpx.Client(base_url=url, timeout=30) as c,
    ):
        for i in range(40):
            body = {
                "model": "json",
                "stream": True,
                "response_format": RESPONSE_FORMAT,
                "messages": [{"role": "user", "content": f"validated city {i}"}],
            }
            r = c.post("/v1/chat/completions", json=body, headers={**AUTH, "x-request-id": f"v-{i:03d}"})
            assert r.status_code == 200
            chunks = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: {")]
            texts.append(
                "".join(ch["choices"][0]["delta"].get("content") or "" for ch in chunks if ch["choices"])
            )
    requests, attempts = _ledger(db)
    by_id = {r["request_id"]: r for r in requests}
    outcomes = [by_id[f"v-{i:03d}"]["error_kind"] for i in range(40)]
    assert outcomes == [None if _valid(t) else "invalid_output" for t in texts]
    assert "invalid_output" in outcomes and None in outcomes
    assert {r["status"] for r in requests} == {200}
    assert len(attempts) == 40  # nothing retried: the client had the bytes


def test_the_check_follows_what_the_request_asked_for() -> None:
    user = [Message(role="user", parts=[TextPart(text="hi")])]
    assert json_check(ChatRequest(model="m", messages=user)) is None
    schema = ChatRequest(
        model="m", messages=user, response_format=ResponseFormat(type="json_schema", schema=SCHEMA)
    )
    check = json_check(schema)
    assert check is not None
    assert check.problem('{"city": "Oslo", "population": 700000, "tags": ["fjord"]}') is None
    assert "schema" in (check.problem('{"city": "Oslo", "population": -1, "tags": ["x"]}') or "")
    assert "not valid JSON" in (check.problem('{"city": "Oslo", "popul') or "")
    obj = json_check(
        ChatRequest(model="m", messages=user, response_format=ResponseFormat(type="json_object"))
    )
    assert obj is not None and obj.problem("[1, 2]") == "the answer is not a JSON object"
    forced = ChatRequest(
        model="m",
        messages=user,
        tools=[Tool(name="f", parameters=SCHEMA)],
        tool_choice=ToolChoice(mode="tool", name="f"),
    )
    fcheck = json_check(forced)
    assert fcheck is not None and fcheck.tool == "f"
    assert (
        fcheck.problem(fcheck.text_of([TextPart(text="no call")])) == "the answer did not call the tool 'f'"
    )
    auto = ChatRequest(model="m", messages=user, tools=[Tool(name="f", parameters=SCHEMA)])
    assert json_check(auto) is None  # a tool the model may call or not: nothing to guarantee
