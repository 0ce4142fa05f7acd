"""The simulated provider's error answers, in-process: missing credentials, invalid requests and
unknown routes, each in the wire's own error format and checked against the published specs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from switchpoint.simulator import SimConfig
from test_simulator import (
    ANTHROPIC_H,
    ANTHROPIC_SPEC,
    GEMINI_H,
    GEMINI_PATH,
    OPENAI_H,
    client_for,
    gemini_user,
    user,
)

import specs


@pytest.fixture
async def sim() -> AsyncIterator[httpx.AsyncClient]:
    async with client_for() as client:
        yield client


async def test_missing_credentials_are_401_in_each_wire(sim: httpx.AsyncClient) -> None:
    resp = await sim.post("/openai/v1/chat/completions", json={"model": "m", "messages": user("x")})
    assert resp.status_code == 401
    specs.check_schema("openai", "ErrorResponse", resp.json())
    resp = await sim.post("/anthropic/v1/messages", json={}, headers={"anthropic-version": "2023-06-01"})
    assert resp.status_code == 401
    specs.check_response("anthropic", "POST", ANTHROPIC_SPEC, 401, resp.content)
    assert resp.json()["error"]["type"] == "authentication_error"
    resp = await sim.post(GEMINI_PATH + ":generateContent", json={"contents": gemini_user("x")})
    assert resp.status_code == 401
    assert resp.json()["error"]["status"] == "UNAUTHENTICATED"
    specs.check_schema("gemini", "Status", resp.json()["error"])
    keyed = await sim.post(GEMINI_PATH + ":generateContent?key=abc", json={"contents": gemini_user("x")})
    assert keyed.status_code == 200
    azure = await sim.post(
        "/openai/v1/chat/completions", json={"model": "m", "messages": user("x")}, headers={"api-key": "k"}
    )
    assert azure.status_code == 200


async def test_anthropic_version_header_is_required(sim: httpx.AsyncClient) -> None:
    resp = await sim.post(
        "/anthropic/v1/messages",
        json={"model": "m", "max_tokens": 5, "messages": user("x")},
        headers={"x-api-key": "k"},
    )
    assert resp.status_code == 400
    specs.check_response("anthropic", "POST", ANTHROPIC_SPEC, 400, resp.content)


async def test_auth_can_be_switched_off() -> None:
    async with client_for(SimConfig(require_auth=False)) as client:
        resp = await client.post("/openai/v1/chat/completions", json={"model": "m", "messages": user("x")})
    assert resp.status_code == 200


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"model": "m", "messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        (
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "auto"},
            "tool_choice",
        ),
    ],
)
async def test_openai_bad_requests(sim: httpx.AsyncClient, body: Any, param: str | None) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    resp = await sim.post("/openai/v1/chat/completions", content=content, headers=OPENAI_H)
    assert resp.status_code == 400
    specs.check_schema("openai", "ErrorResponse", resp.json())
    assert resp.json()["error"]["type"] == "invalid_request_error"
    assert resp.json()["error"]["param"] == param


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m", "messages": [{"role": "user", "content": "x"}]},
        {"model": "m", "max_tokens": -1, "messages": [{"role": "user", "content": "x"}]},
        {"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
        {"model": "m", "max_tokens": 5, "messages": "hello"},
    ],
)
async def test_anthropic_bad_requests(sim: httpx.AsyncClient, body: dict[str, Any]) -> None:
    resp = await sim.post("/anthropic/v1/messages", json=body, headers=ANTHROPIC_H)
    assert resp.status_code == 400
    specs.check_response("anthropic", "POST", ANTHROPIC_SPEC, 400, resp.content)
    assert resp.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"contents": []},
        {"contents": [{"role": "user", "parts": []}]},
        {"contents": [{"role": "bot", "parts": [{"text": "x"}]}]},
    ],
)
async def test_gemini_bad_requests(sim: httpx.AsyncClient, body: dict[str, Any]) -> None:
    resp = await sim.post(GEMINI_PATH + ":generateContent", json=body, headers=GEMINI_H)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT" and error["code"] == 400
    specs.check_schema("gemini", "Status", error)


async def test_unknown_paths_and_methods(sim: httpx.AsyncClient) -> None:
    assert (await sim.get("/nowhere")).status_code == 404
    missing = await sim.post("/openai/v1/completions", json={}, headers=OPENAI_H)
    assert missing.status_code == 404
    specs.check_schema("openai", "ErrorResponse", missing.json())
    wrong = await sim.get("/anthropic/v1/messages", headers=ANTHROPIC_H)
    assert wrong.status_code == 405
    specs.check_schema("anthropic", "ErrorResponse", wrong.json())
