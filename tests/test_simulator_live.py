"""The simulated provider over a real loopback HTTP server: latency, time to first token, pacing,
stalls, cut connections and hangs (bounds are loose on purpose: they check order, not speed)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from switchpoint.simulator import Behavior, SimConfig, serving
from test_simulator import ANTHROPIC_H, GEMINI_H, OPENAI_H, gemini_user, user


@pytest.fixture
async def base() -> AsyncIterator[str]:
    config = SimConfig(models={"slow": Behavior(latency_ms=250)})
    async with serving(config) as url:
        yield url


async def _timed_events(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str]
) -> list[tuple[float, str]]:
    """(seconds since the request, line) for each SSE data line."""
    out: list[tuple[float, str]] = []
    start = time.monotonic()
    async with client.stream("POST", url, json=body, headers=headers) as resp:
        assert resp.status_code == 200
        async for line in resp.aiter_lines():
            if line.startswith("data: "):
                out.append((time.monotonic() - start, line[6:]))
    return out


def _content_times(events: list[tuple[float, str]]) -> list[float]:
    times = []
    for at, data in events:
        if data != "[DONE]":
            chunk = json.loads(data)
            if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                times.append(at)
    return times


async def test_latency_per_model(base: str) -> None:
    async with httpx.AsyncClient(base_url=base) as client:
        start = time.monotonic()
        resp = await client.post(
            "/openai/v1/chat/completions", json={"model": "slow", "messages": user("x")}, headers=OPENAI_H
        )
        slow = time.monotonic() - start
        start = time.monotonic()
        await client.post(
            "/openai/v1/chat/completions", json={"model": "fast", "messages": user("x")}, headers=OPENAI_H
        )
        fast = time.monotonic() - start
    assert resp.status_code == 200
    assert 0.25 <= slow < 3.0
    assert fast < slow


async def test_ttft_and_pacing(base: str) -> None:
    body = {
        "model": "m",
        "stream": True,
        "messages": user("x [[sim ttft_ms=300 tokens_per_s=100 output_tokens=11]]"),
    }
    async with httpx.AsyncClient(base_url=base) as client:
        events = await _timed_events(client, "/openai/v1/chat/completions", body, OPENAI_H)
    role_at = events[0][0]
    content = _content_times(events)
    assert len(content) == 11
    assert content[0] - role_at >= 0.25  # the role chunk is sent before the wait
    assert 0.3 <= content[0] < 3.0
    assert content[-1] - content[0] >= 0.09  # ten gaps at 100 pieces/s


async def test_stall_after_n_chunks(base: str) -> None:
    body = {"model": "m", "stream": True, "messages": user("x")}
    headers = OPENAI_H | {"x-sim-stall-ms": "400", "x-sim-stall-after": "3"}
    async with httpx.AsyncClient(base_url=base) as client:
        events = await _timed_events(client, "/openai/v1/chat/completions", body, headers)
    content = _content_times(events)
    gaps = [b - a for a, b in itertools.pairwise(content)]
    assert gaps.index(max(gaps)) == 2  # the pause falls between the 3rd and the 4th chunk
    assert max(gaps) >= 0.35
    assert events[-1][1] == "[DONE]"


async def test_cut_stream_drops_the_connection(base: str) -> None:
    body = {"model": "m", "stream": True, "messages": user("x [[sim cut_after=3]]")}
    lines: list[str] = []
    async with httpx.AsyncClient(base_url=base) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            async with client.stream(
                "POST", "/openai/v1/chat/completions", json=body, headers=OPENAI_H
            ) as resp:
                assert resp.status_code == 200
                async for line in resp.aiter_lines():
                    if line.startswith("data: "):
                        lines.append(line[6:])
        assert len(lines) == 4  # role chunk + 3 content chunks, no finish chunk, no [DONE]
        assert all(json.loads(x)["choices"][0]["finish_reason"] is None for x in lines)
        after = await client.post(
            "/openai/v1/chat/completions", json={"model": "m", "messages": user("x")}, headers=OPENAI_H
        )
    assert after.status_code == 200


async def test_cut_anthropic_and_gemini_streams(base: str) -> None:
    async with httpx.AsyncClient(base_url=base) as client:
        for url, body, headers in [
            (
                "/anthropic/v1/messages",
                {"model": "m", "max_tokens": 99, "stream": True, "messages": user("x")},
                ANTHROPIC_H,
            ),
            (
                "/gemini/v1beta/models/g:streamGenerateContent?alt=sse",
                {"contents": gemini_user("x")},
                GEMINI_H,
            ),
        ]:
            seen = b""
            with pytest.raises(httpx.RemoteProtocolError):
                async with client.stream(
                    "POST", url, json=body, headers=headers | {"x-sim-cut-after": "2"}
                ) as resp:
                    async for chunk in resp.aiter_bytes():
                        seen += chunk
            assert b"message_stop" not in seen and b"finishReason" not in seen
            assert seen.count(b"data: ") >= 2


async def test_cut_plain_body(base: str) -> None:
    async with httpx.AsyncClient(base_url=base) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(
                "/openai/v1/chat/completions",
                json={"model": "m", "messages": user("[[sim cut_after=0]]")},
                headers=OPENAI_H,
            )


async def test_hang_until_client_gives_up(base: str) -> None:
    async with httpx.AsyncClient(base_url=base) as client:
        start = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await client.post(
                "/openai/v1/chat/completions",
                json={"model": "m", "messages": user("[[sim hang]]")},
                headers=OPENAI_H,
                timeout=0.3,
            )
        assert time.monotonic() - start < 2.0
        resp = await client.post(
            "/openai/v1/chat/completions", json={"model": "m", "messages": user("x")}, headers=OPENAI_H
        )
    assert resp.status_code == 200


async def test_hang_is_cancelled_in_process() -> None:
    from switchpoint.simulator import create_app

    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(
                client.post(
                    "/anthropic/v1/messages",
                    headers=ANTHROPIC_H | {"x-sim-hang": "1"},
                    json={"model": "m", "max_tokens": 9, "messages": user("x")},
                ),
                0.2,
            )


async def test_thread_server_fixture_serves_all_wires(simulator_url: str) -> None:
    async with httpx.AsyncClient(base_url=simulator_url) as client:
        openai = await client.post(
            "/openai/v1/chat/completions", json={"model": "m", "messages": user("x")}, headers=OPENAI_H
        )
        anthropic = await client.post(
            "/anthropic/v1/messages",
            json={"model": "m", "max_tokens": 9, "messages": user("x")},
            headers=ANTHROPIC_H,
        )
        gemini = await client.post(
            "/gemini/v1beta/models/g:generateContent", json={"contents": gemini_user("x")}, headers=GEMINI_H
        )
        with pytest.raises(httpx.RemoteProtocolError):
            async with client.stream(
                "POST",
                "/openai/v1/chat/completions",
                headers=OPENAI_H,
                json={"model": "m", "stream": True, "messages": user("[[sim cut_after=1]]")},
            ) as resp:
                async for _ in resp.aiter_bytes():
                    pass
    assert [openai.status_code, anthropic.status_code, gemini.status_code] == [200, 200, 200]
