"""Scripted faults of the simulated provider, in-process: error statuses in each wire's format,
Retry-After, seeded failure rates, malformed bodies and frames, directives and precedence."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from switchpoint.simulator import Behavior, SimConfig
from test_simulator import (
    ANTHROPIC_H,
    ANTHROPIC_SPEC,
    GEMINI_H,
    GEMINI_PATH,
    OPENAI_H,
    client_for,
    gemini_user,
    openai_chat,
    sse,
    user,
)

import specs


async def _status_in_each_wire(
    client: httpx.AsyncClient, text: str, headers: dict[str, str]
) -> list[httpx.Response]:
    return [
        await client.post(
            "/openai/v1/chat/completions",
            json={"model": "m", "messages": user(text)},
            headers=OPENAI_H | headers,
        ),
        await client.post(
            "/anthropic/v1/messages",
            json={"model": "m", "max_tokens": 50, "messages": user(text)},
            headers=ANTHROPIC_H | headers,
        ),
        await client.post(
            GEMINI_PATH + ":generateContent", json={"contents": gemini_user(text)}, headers=GEMINI_H | headers
        ),
    ]


@pytest.mark.parametrize("where", ["header", "directive"])
async def test_429_with_retry_after_in_each_wire(where: str) -> None:
    headers = {"x-sim-status": "429", "x-sim-retry-after-s": "2"} if where == "header" else {}
    text = "hello" if where == "header" else "hello [[sim status=429 retry_after_s=2]]"
    async with client_for() as client:
        openai, anthropic, gemini = await _status_in_each_wire(client, text, headers)
    for resp in (openai, anthropic, gemini):
        assert resp.status_code == 429
        assert resp.headers["retry-after"] == "2"
    specs.check_response("openai", "POST", "https://api.openai.com/v1/chat/completions", 429, openai.content)
    specs.check_schema("openai", "ErrorResponse", openai.json())
    assert openai.json()["error"]["code"] == "rate_limit_exceeded"
    assert openai.headers["retry-after-ms"] == "2000"
    specs.check_response("anthropic", "POST", ANTHROPIC_SPEC, 429, anthropic.content)
    assert anthropic.json()["error"]["type"] == "rate_limit_error"
    error = gemini.json()["error"]
    specs.check_schema("gemini", "Status", error)
    assert error["status"] == "RESOURCE_EXHAUSTED"
    assert error["details"][0]["retryDelay"] == "2s"


@pytest.mark.parametrize(
    ("status", "openai_type", "anthropic_type", "gemini_status"),
    [
        (500, "server_error", "api_error", "INTERNAL"),
        (503, "server_error", "overloaded_error", "UNAVAILABLE"),
        (529, "server_error", "overloaded_error", "INTERNAL"),
        (404, "invalid_request_error", "not_found_error", "NOT_FOUND"),
    ],
)
async def test_scripted_status_in_each_wire(
    status: int, openai_type: str, anthropic_type: str, gemini_status: str
) -> None:
    async with client_for() as client:
        openai, anthropic, gemini = await _status_in_each_wire(client, "x", {"x-sim-status": str(status)})
    assert openai.status_code == anthropic.status_code == gemini.status_code == status
    specs.check_schema("openai", "ErrorResponse", openai.json())
    assert openai.json()["error"]["type"] == openai_type
    specs.check_schema("anthropic", "ErrorResponse", anthropic.json())
    assert anthropic.json()["error"]["type"] == anthropic_type
    assert gemini.json()["error"]["status"] == gemini_status
    assert "retry-after" not in openai.headers


async def test_precedence_header_directive_model_default() -> None:
    config = SimConfig(default=Behavior(status=500), models={"special": Behavior(status=503)})
    async with client_for(config) as client:

        async def status(model: str, text: str, headers: dict[str, str] | None = None) -> int:
            body = {"model": model, "messages": user(text)}
            resp = await client.post(
                "/openai/v1/chat/completions", json=body, headers=OPENAI_H | (headers or {})
            )
            return resp.status_code

        assert await status("plain", "x") == 500
        assert await status("special", "x") == 503
        assert await status("special", "x [[sim status=502]]") == 502
        assert await status("special", "x [[sim status=502]]", {"x-sim-status": "504"}) == 504


async def test_per_model_output_tokens_and_header_override() -> None:
    config = SimConfig(models={"short": Behavior(output_tokens=3)})
    async with client_for(config) as client:
        short = (await openai_chat(client, model="short", messages=user("x"))).json()
        assert short["usage"]["completion_tokens"] == 3
        longer = await client.post(
            "/openai/v1/chat/completions",
            json={"model": "short", "messages": user("x")},
            headers=OPENAI_H | {"x-sim-output-tokens": "40"},
        )
        assert longer.json()["usage"]["completion_tokens"] == 40


async def test_directive_only_from_the_last_user_message() -> None:
    messages = [
        {"role": "user", "content": "[[sim status=500]]"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "fine now"},
    ]
    async with client_for() as client:
        assert (await openai_chat(client, messages=messages)).status_code == 200
        assert (await openai_chat(client, messages=user("notes on [[simulation]] design"))).status_code == 200
        last = await openai_chat(client, messages=user("please [[sim status=500]] thanks"))
        assert last.status_code == 500


@pytest.mark.parametrize(
    "directive",
    [
        "[[sim status=abc]]",
        "[[sim status=200]]",
        "[[sim bogus=1]]",
        "[[sim fail_rate=2]]",
        "[[sim hang=maybe]]",
        "[[sim status=429",
    ],
)
async def test_bad_directive_is_400_in_each_wire(directive: str) -> None:
    async with client_for() as client:
        openai, anthropic, gemini = await _status_in_each_wire(client, f"hi {directive}", {})
    assert openai.status_code == anthropic.status_code == gemini.status_code == 400
    assert "simulator directive" in openai.json()["error"]["message"]
    specs.check_schema("openai", "ErrorResponse", openai.json())
    specs.check_response("anthropic", "POST", ANTHROPIC_SPEC, 400, anthropic.content)
    assert gemini.json()["error"]["status"] == "INVALID_ARGUMENT"


async def test_bad_header_is_400() -> None:
    async with client_for() as client:
        resp = await client.post(
            "/openai/v1/chat/completions",
            json={"model": "m", "messages": user("x")},
            headers=OPENAI_H | {"x-sim-latency-ms": "-5"},
        )
    assert resp.status_code == 400
    assert "simulator header" in resp.json()["error"]["message"]


async def _fail_pattern(seed: int, n: int) -> list[int]:
    config = SimConfig(seed=seed, default=Behavior(fail_rate=0.3, fail_status=503))
    async with client_for(config) as client:
        return [(await openai_chat(client, messages=user("x"))).status_code for _ in range(n)]


async def test_fail_rate_is_seeded() -> None:
    first = await _fail_pattern(seed=11, n=200)
    assert set(first) == {200, 503}
    assert 35 <= first.count(503) <= 85
    assert await _fail_pattern(seed=11, n=200) == first
    assert await _fail_pattern(seed=12, n=200) != first


async def test_fail_rate_per_request_directive() -> None:
    async with client_for() as client:
        always = await openai_chat(client, messages=user("[[sim fail_rate=1 fail_status=502]]"))
        never = await openai_chat(client, messages=user("[[sim fail_rate=0]]"))
    assert always.status_code == 502 and never.status_code == 200


async def test_malformed_plain_bodies_are_not_json() -> None:
    async with client_for() as client:
        for resp in await _status_in_each_wire(client, "x [[sim malformed]]", {}):
            assert resp.status_code == 200
            with pytest.raises(json.JSONDecodeError):
                json.loads(resp.content)


def _undecodable(events: list[tuple[str | None, str]]) -> list[int]:
    bad = []
    for index, (_, data) in enumerate(events):
        try:
            json.loads(data)
        except json.JSONDecodeError:
            bad.append(index)
    return bad


async def test_malformed_streams_have_one_bad_frame() -> None:
    async with client_for() as client:
        openai = await client.post(
            "/openai/v1/chat/completions",
            json={"model": "m", "stream": True, "messages": user("x")},
            headers=OPENAI_H | {"x-sim-malformed": "true"},
        )
        anthropic = await client.post(
            "/anthropic/v1/messages",
            json={"model": "m", "max_tokens": 99, "stream": True, "messages": user("x [[sim malformed=1]]")},
            headers=ANTHROPIC_H,
        )
        gemini = await client.post(
            GEMINI_PATH + ":streamGenerateContent?alt=sse",
            json={"contents": gemini_user("x [[sim malformed]]")},
            headers=GEMINI_H,
        )
    openai_events = sse(openai.text)
    assert _undecodable(openai_events[:-1]) == [1]
    assert openai_events[-1] == (None, "[DONE]")
    anthropic_events = sse(anthropic.text)
    assert _undecodable(anthropic_events) == [3]
    assert anthropic_events[3][0] == "content_block_delta"
    assert _undecodable(sse(gemini.text)) == [0]


async def test_embeddings_obey_scripted_status() -> None:
    async with client_for() as client:
        openai = await client.post(
            "/openai/v1/embeddings",
            json={"model": "m", "input": "x"},
            headers=OPENAI_H | {"x-sim-status": "429", "x-sim-retry-after-s": "1"},
        )
        gemini = await client.post(
            "/gemini/v1beta/models/e:embedContent",
            json={"content": {"parts": [{"text": "x [[sim status=500]]"}]}},
            headers=GEMINI_H,
        )
    assert openai.status_code == 429 and openai.headers["retry-after"] == "1"
    specs.check_schema("openai", "ErrorResponse", openai.json())
    assert gemini.status_code == 500 and gemini.json()["error"]["status"] == "INTERNAL"


async def test_streams_answer_errors_before_streaming() -> None:
    async with client_for() as client:
        resp = await client.post(
            "/anthropic/v1/messages",
            json={"model": "m", "max_tokens": 9, "stream": True, "messages": user("x [[sim status=529]]")},
            headers=ANTHROPIC_H,
        )
    assert resp.status_code == 529
    assert resp.headers["content-type"] == "application/json"
    body: dict[str, Any] = resp.json()
    specs.check_schema("anthropic", "ErrorResponse", body)
    assert body["error"]["type"] == "overloaded_error"
