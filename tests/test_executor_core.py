"""The executor against a scripted transport: attempts, health, stream commit, timeouts, hedging."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from switchpoint.canonical import ChatRequest, EmbeddingRequest, Message, TextDelta, TextPart
from switchpoint.config import Deployment, ExecutionOptions, Hedging, Timeouts, parse
from switchpoint.errors import AllCandidatesFailed, ProviderError
from switchpoint.executor import Executor, RequestContext, RequestLimits
from switchpoint.executor.core import describe_attempts
from switchpoint.providers.base import UpstreamRequest, UpstreamResponse
from switchpoint.routing import Candidate, Decision

CFG = parse(
    {
        "providers": {"p": {"family": "openai", "base_url": "http://up.test/v1"}},
        "deployments": {
            "a": {"provider": "p", "model": "model-a", "price": {"input": 1, "output": 2}},
            "b": {"provider": "p", "model": "model-b", "price": {"input": 1, "output": 2}},
            "e": {"provider": "p", "model": "embed-e", "kind": "embedding"},
            "f": {"provider": "p", "model": "embed-f", "kind": "embedding"},
        },
        "resilience": {"retry": {"backoff_base_s": 0.001, "backoff_max_s": 0.002}},
    },
    env={},
)
DEPS = CFG.deployments


def _answer(model: str, text: str = "hello") -> bytes:
    return msgspec.json.encode(
        {
            "id": "c1",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
        }
    )


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None, usage: bool = False) -> bytes:
    body: dict[str, Any] = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage:
        body = {
            **body,
            "choices": [],
            "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
        }
    return b"data: " + msgspec.json.encode(body) + b"\n\n"


def _stream_chunks(model: str) -> list[bytes]:
    return [
        _chunk(model, {"role": "assistant"}),
        _chunk(model, {"content": "hel"}),
        _chunk(model, {"content": "lo"}),
        _chunk(model, {}, "stop"),
        _chunk(model, {}, usage=True),
        b"data: [DONE]\n\n",
    ]


class Script:
    """What one upstream call does: wait, then answer a status (or stream chunks), or raise."""

    def __init__(
        self,
        status: int = 200,
        *,
        delay: float = 0.0,
        raise_: ProviderError | None = None,
        chunks: list[bytes] | None = None,
        gap_before: dict[int, float] | None = None,
        break_after: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.delay = delay
        self.raise_ = raise_
        self.chunks = chunks
        self.gap_before = gap_before or {}
        self.break_after = break_after
        self.headers = headers or {}


class FakeStream:
    def __init__(self, script: Script, model: str) -> None:
        self.status = script.status
        self.headers = script.headers
        self._script = script
        self._model = model
        self.closed = False

    async def chunks(self) -> AsyncIterator[bytes]:
        chunks = self._script.chunks if self._script.chunks is not None else _stream_chunks(self._model)
        for i, chunk in enumerate(chunks):
            if i == self._script.break_after:
                raise ProviderError("connection", "upstream stream broke: ClientPayloadError")
            gap = self._script.gap_before.get(i)
            if gap:
                await asyncio.sleep(gap)
            yield chunk

    async def read(self) -> bytes:
        return b'{"error": {"message": "scripted", "type": "server_error"}}'

    def close(self) -> None:
        self.closed = True


class FakeTransport:
    """Scripts per upstream model id, consumed in order; records each call's timeouts."""

    def __init__(self, scripts: dict[str, list[Script]]) -> None:
        self.scripts = scripts
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.streams: list[FakeStream] = []

    def _next(self, request: UpstreamRequest, kw: dict[str, Any]) -> tuple[str, Script]:
        model = msgspec.json.decode(request.body)["model"]
        self.calls.append((model, kw))
        queue = self.scripts.get(model) or [Script()]
        return model, queue.pop(0) if len(queue) > 1 else queue[0]

    async def send(self, request: UpstreamRequest, **kw: Any) -> UpstreamResponse:
        model, script = self._next(request, kw)
        if script.delay:
            await asyncio.sleep(script.delay)
        if script.raise_ is not None:
            raise script.raise_
        if script.status >= 400:
            body = b'{"error": {"message": "scripted", "type": "server_error"}}'
            return UpstreamResponse(status=script.status, headers=script.headers, body=body)
        if "embed" in model:
            body = msgspec.json.encode(
                {
                    "object": "list",
                    "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
                    "model": model,
                    "usage": {"prompt_tokens": 3, "total_tokens": 3},
                }
            )
            return UpstreamResponse(status=200, headers={}, body=body)
        return UpstreamResponse(status=200, headers={}, body=_answer(model))

    async def open_stream(self, request: UpstreamRequest, **kw: Any) -> FakeStream:
        model, script = self._next(request, kw)
        if script.delay:
            await asyncio.sleep(script.delay)
        if script.raise_ is not None:
            raise script.raise_
        stream = FakeStream(script, model)
        self.streams.append(stream)
        return stream

    async def close(self) -> None:
        pass


def _req(stream: bool = False) -> ChatRequest:
    return ChatRequest(
        model="m", messages=[Message(role="user", parts=[TextPart(text="say hello " * 20)])], stream=stream
    )


def _decision(*names: str, options: ExecutionOptions | None = None) -> Decision:
    cands = tuple(Candidate(deployment=DEPS[n], reason="test") for n in names)
    return Decision(model="m", candidates=cands, options=options)


def _executor(scripts: dict[str, list[Script]]) -> tuple[Executor, FakeTransport]:
    transport = FakeTransport(scripts)
    return Executor(transport, resilience=CFG.resilience, seed=1), transport


async def test_chat_fails_over_and_keeps_every_attempt() -> None:
    ex, _ = _executor({"model-a": [Script(503)]})
    ctx = RequestContext("r1")
    result = await ex.chat(_req(), _decision("a", "b"), ctx)
    assert result.usage.input_tokens == 7
    assert [(a.deployment, a.error, a.status) for a in ctx.attempts] == [
        ("a", "overloaded", 503),
        ("b", None, 200),
    ]
    assert ctx.deployment == "b" and ctx.usage is not None
    assert ex.health.snapshot("a").failures == 1 and ex.health.snapshot("b").requests == 1
    assert ex.health.snapshot("a").inflight == ex.health.snapshot("b").inflight == 0
    assert describe_attempts(ctx.attempts)[0]["error"] == "overloaded"
    # the first attempt (made before any plan) and the failover are each counted once
    assert (ex.stats.attempts, ex.stats.failovers, ex.stats.retries) == (2, 1, 0)
    answered = ex.health.snapshot("b")
    assert answered.ttft_ewma_ms is not None and answered.total_ewma_ms == answered.ttft_ewma_ms
    assert ex.health.ttft_p95("b", streamed=False) is None  # one latency sample, fewer than p95 needs


async def test_timeouts_of_rule_and_request_reach_the_transport() -> None:
    ex, transport = _executor({})
    options = ExecutionOptions(timeouts=Timeouts(total_s=3, connect_s=2))
    await ex.chat(_req(), _decision("a", options=options), RequestContext("r"))
    assert transport.calls[-1][1] == {"timeout_s": 3, "connect_timeout_s": 2, "read_timeout_s": 600}
    ctx = RequestContext("r", RequestLimits(deadline_s=1.0, stall_s=0.25))
    committed = await ex.chat_stream(_req(True), _decision("a", options=options), ctx)
    [batch async for batch in committed]
    kw = transport.calls[-1][1]
    assert kw["read_timeout_s"] == 0.25 and kw["total_timeout_s"] <= 1.0 and kw["connect_timeout_s"] <= 1.0


async def test_stream_commits_on_first_content_after_invisible_failures() -> None:
    ex, transport = _executor(
        {
            "model-a": [Script(raise_=ProviderError("connection", "refused"))],
            "model-b": [Script(500), Script()],
        }
    )
    ctx = RequestContext("r")
    committed = await ex.chat_stream(_req(True), _decision("a", "b"), ctx)
    assert committed.deployment.name == "b" and ctx.ttft_ms is not None
    # a, b, then a again (after a backoff), then b: its second call streams
    assert [(a.deployment, a.error) for a in ctx.attempts] == [
        ("a", "connection"),
        ("b", "server_error"),
        ("a", "connection"),
    ]
    text = ""
    async for batch in committed:
        text += "".join(e.text for events, _ in batch for e in events if isinstance(e, TextDelta))
    assert text == "hello"
    last = ctx.attempts[-1]
    assert (last.deployment, last.error, last.status) == ("b", None, 200)
    assert last.usage is not None and last.usage.output_tokens == 2 and last.ttft_ms is not None
    assert ex.health.snapshot("b").inflight == 0 and ex.health.snapshot("b").ttft_ewma_ms is not None
    assert all(s.closed for s in transport.streams)


async def test_failure_after_commit_ends_the_stream_and_is_recorded() -> None:
    ex, _ = _executor({"model-a": [Script(break_after=3)]})
    ctx = RequestContext("r")
    committed = await ex.chat_stream(_req(True), _decision("a", "b"), ctx)
    seen = []
    with pytest.raises(ProviderError) as info:
        async for batch in committed:
            seen.extend(e.text for events, _ in batch for e in events if isinstance(e, TextDelta))
    assert info.value.kind == "connection" and seen == ["hel", "lo"], "no failover after output"
    (attempt,) = ctx.attempts
    assert (attempt.deployment, attempt.error) == ("a", "connection")
    snap = ex.health.snapshot("a")
    assert snap.failures == 1 and snap.inflight == 0


async def test_client_going_away_is_recorded_as_cancelled() -> None:
    ex, transport = _executor({})
    ctx = RequestContext("r")
    committed = await ex.chat_stream(_req(True), _decision("a"), ctx)
    await committed.__anext__()
    await committed.aclose()
    assert [a.error for a in ctx.attempts] == ["cancelled"]
    assert ex.health.snapshot("a").inflight == 0 and transport.streams[0].closed


async def test_a_stream_never_read_does_not_stay_in_flight() -> None:
    ex, _ = _executor({})
    committed = await ex.chat_stream(_req(True), _decision("a"), RequestContext("r"))
    assert ex.health.snapshot("a").inflight == 1
    del committed
    assert ex.health.snapshot("a").inflight == 0
    given_up = await ex.chat_stream(_req(True), _decision("a"), RequestContext("r"))
    await given_up.aclose()
    await given_up.aclose()
    assert ex.health.snapshot("a").inflight == 0


async def test_ttft_timeout_moves_on_before_commit() -> None:
    slow = Script(gap_before={1: 1.0})
    ex, _ = _executor({"model-a": [slow]})
    options = ExecutionOptions(timeouts=Timeouts(ttft_s=0.15))
    ctx = RequestContext("r")
    t0 = time.perf_counter()
    committed = await ex.chat_stream(_req(True), _decision("a", "b", options=options), ctx)
    assert committed.deployment.name == "b" and time.perf_counter() - t0 < 0.6
    first = ctx.attempts[0]
    assert first.error == "timeout" and "first token within 0.15 s" in (first.error_message or "")
    assert 140 <= first.latency_ms < 300
    await committed.aclose()


async def test_cancelling_the_request_before_commit_records_the_attempt() -> None:
    ex, _ = _executor({"model-a": [Script(delay=5)]})
    ctx = RequestContext("r")
    task = asyncio.ensure_future(ex.chat(_req(), _decision("a"), ctx))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [a.error for a in ctx.attempts] == ["cancelled"] and ex.health.snapshot("a").inflight == 0


async def test_hedged_chat_lets_the_fast_one_win_and_prices_the_loser() -> None:
    ex, _ = _executor({"model-a": [Script(delay=1.0)], "model-b": [Script(delay=0.02)]})
    options = ExecutionOptions(hedging=Hedging(enabled=True, delay_ms=50))
    ctx = RequestContext("r")
    t0 = time.perf_counter()
    await ex.chat(_req(), _decision("a", "b", options=options), ctx)
    assert time.perf_counter() - t0 < 0.5
    by = {a.deployment: a for a in ctx.attempts}
    assert by["b"].error is None and ctx.deployment == "b"
    assert by["a"].error == "hedge_lost" and by["a"].usage is not None and by["a"].usage.input_tokens > 0
    assert (ex.stats.hedges, ex.stats.hedge_wins, ex.stats.failovers) == (1, 1, 0)
    assert ex.health.snapshot("a").inflight == 0 and ex.health.snapshot("a").failures == 0


async def test_hedged_stream_winner_commits_and_loser_is_closed() -> None:
    ex, transport = _executor({"model-a": [Script(gap_before={1: 1.0})]})
    options = ExecutionOptions(hedging=Hedging(enabled=True, delay_ms=40))
    ctx = RequestContext("r")
    committed = await ex.chat_stream(_req(True), _decision("a", "b", options=options), ctx)
    assert committed.deployment.name == "b"
    assert [a.error for a in ctx.attempts] == ["hedge_lost"]
    assert transport.streams[0].closed, "the loser's upstream stream is closed"
    [batch async for batch in committed]
    assert [a.deployment for a in ctx.attempts] == ["a", "b"] and ctx.attempts[1].error is None


async def test_hedge_racers_that_fail_hand_back_to_the_plan() -> None:
    boom = Script(delay=0.08, raise_=ProviderError("server_error", "boom"))
    ex, _ = _executor({"model-a": [boom, boom, boom], "model-b": [boom, boom, boom]})
    options = ExecutionOptions(hedging=Hedging(enabled=True, delay_ms=20))
    ctx = RequestContext("r")
    with pytest.raises(AllCandidatesFailed) as info:
        await ex.chat(_req(), _decision("a", "b", options=options), ctx)
    assert len(info.value.errors) == 4 and len(ctx.attempts) == 4
    assert all(a.error == "server_error" for a in ctx.attempts)


async def test_p95_hedging_waits_for_observations() -> None:
    ex, _ = _executor({"model-a": [Script(delay=0.15)]})
    options = ExecutionOptions(hedging=Hedging(enabled=True))
    ctx = RequestContext("r")
    await ex.chat(_req(), _decision("a", "b", options=options), ctx)
    assert [a.deployment for a in ctx.attempts] == ["a"], "no p95 yet: no hedge"
    for _ in range(20):
        ex.health.on_first_token("a", 10.0, streamed=False)
    ctx = RequestContext("r2")
    await ex.chat(_req(), _decision("a", "b", options=options), ctx)
    assert {a.deployment for a in ctx.attempts} == {"a", "b"} and ctx.deployment == "b"


async def test_embeddings_fail_over() -> None:
    ex, _ = _executor({"embed-e": [Script(502)]})
    ctx = RequestContext("r")
    result = await ex.embeddings(EmbeddingRequest(model="m", inputs=["x"]), (DEPS["e"], DEPS["f"]), ctx)
    assert result.usage.input_tokens == 3 and ctx.deployment == "f"
    assert [a.error for a in ctx.attempts] == ["server_error", None]


async def test_a_non_retryable_error_goes_straight_back() -> None:
    ex, transport = _executor({"model-a": [Script(400)]})
    ctx = RequestContext("r")
    with pytest.raises(ProviderError) as info:
        await ex.chat(_req(), _decision("a", "b"), ctx)
    assert info.value.kind == "bad_request" and len(transport.calls) == 1


def test_deployment_defaults_reach_the_executor() -> None:
    dep: Deployment = DEPS["a"]
    assert dep.retry.backoff_base_s == 0.001 and dep.timeouts.stall_s == 600 and dep.timeouts.total_s is None
