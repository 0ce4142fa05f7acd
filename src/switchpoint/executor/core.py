"""The executor: try candidates in order, translate through adapters, keep every attempt.

Non-streaming: first success wins; a retryable failure moves on to the next candidate.
Streaming: a stream is committed to a candidate only when its first content event arrives;
failures before that move on invisibly. After commit, failures end the client's stream (the
API layer writes the dialect's error event): output is never duplicated or interleaved.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any, TypeAlias

from switchpoint.canonical import (
    CONTENT_EVENTS,
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    StreamEvent,
    Usage,
    UsageUpdate,
)
from switchpoint.config import Deployment
from switchpoint.errors import AllCandidatesFailed, ProviderError, SwitchpointError
from switchpoint.executor.transport import Transport
from switchpoint.health import HealthRegistry
from switchpoint.providers import Adapter, UpstreamResponse, adapter_for
from switchpoint.records import Attempt
from switchpoint.routing import Decision
from switchpoint.streaming import SSEDecoder, SSEFrame

Item: TypeAlias = tuple[list[StreamEvent], SSEFrame | None]


class RequestContext:
    """Mutable per-request state the executor fills in; the API turns it into a record."""

    __slots__ = ("attempts", "deployment", "request_id", "start", "started_at", "ttft_ms", "usage")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.start = time.perf_counter()
        self.started_at = time.time()
        self.attempts: list[Attempt] = []
        self.deployment: str | None = None
        self.ttft_ms: float | None = None
        self.usage: Usage | None = None

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.start) * 1000.0


def _attempt(
    dep: Deployment,
    t0: float,
    *,
    err: SwitchpointError | None = None,
    status: int | None = None,
    usage: Usage | None = None,
    ttft_ms: float | None = None,
) -> Attempt:
    upstream = getattr(err, "upstream_status", None) if err is not None else status
    return Attempt(
        deployment=dep.name,
        provider=dep.provider.name,
        family=dep.family,
        status=upstream,
        error=err.kind if err is not None else None,
        error_message=err.message[:300] if err is not None else None,
        latency_ms=(time.perf_counter() - t0) * 1000.0,
        ttft_ms=ttft_ms,
        usage=usage,
    )


def _failure(errors: list[SwitchpointError]) -> SwitchpointError:
    return errors[0] if len(errors) == 1 else AllCandidatesFailed(errors)


def _tag(err: SwitchpointError, dep: Deployment) -> SwitchpointError:
    if isinstance(err, ProviderError) and err.deployment is None:
        err.deployment = dep.name
    return err


class CommittedStream:
    """A stream that has produced its first content event on one deployment.

    Iterate :meth:`items` once: it yields the buffered first items, then the rest, keeps
    usage, and records the attempt when the upstream ends (or fails).
    """

    def __init__(
        self,
        deployment: Deployment,
        pending: list[Item],
        rest: AsyncGenerator[Item, None],
        ctx: RequestContext,
        t0: float,
        ttft_ms: float,
    ) -> None:
        self.deployment = deployment
        self.family = deployment.family
        self._pending = pending
        self._rest = rest
        self._ctx = ctx
        self._t0 = t0
        self._ttft_ms = ttft_ms
        self.usage = Usage()

    def _see(self, events: list[StreamEvent]) -> None:
        for e in events:
            if isinstance(e, UsageUpdate):
                self.usage = self.usage.merge(e.usage)

    async def items(self) -> AsyncIterator[Item]:
        ctx, dep = self._ctx, self.deployment
        try:
            for item in self._pending:
                self._see(item[0])
                yield item
            self._pending = []
            async for item in self._rest:
                self._see(item[0])
                yield item
        except SwitchpointError as err:
            ctx.attempts.append(
                _attempt(dep, self._t0, err=_tag(err, dep), usage=self.usage, ttft_ms=self._ttft_ms)
            )
            ctx.usage = self.usage
            raise
        finally:
            await self.aclose()
        ctx.attempts.append(_attempt(dep, self._t0, status=200, usage=self.usage, ttft_ms=self._ttft_ms))
        ctx.usage = self.usage

    async def aclose(self) -> None:
        await self._rest.aclose()


class Executor:
    def __init__(
        self,
        transport: Transport,
        adapters: Mapping[str, Adapter] | None = None,
        *,
        health: HealthRegistry | None = None,
    ) -> None:
        self.transport = transport
        self._adapters: Mapping[str, Adapter] = adapters or {}
        self.health = health or HealthRegistry()

    def adapter(self, family: str) -> Adapter:
        found = self._adapters.get(family)
        return found if found is not None else adapter_for(family)

    # --- non-streaming ---------------------------------------------------------------------

    async def chat(self, request: ChatRequest, decision: Decision, ctx: RequestContext) -> ChatResponse:
        errors: list[SwitchpointError] = []
        for cand in decision.candidates:
            dep = cand.deployment
            adapter = self.adapter(dep.family)
            t0 = time.perf_counter()
            try:
                upstream = adapter.build_chat(request, dep)
                resp = await self.transport.send(
                    upstream,
                    timeout_s=dep.provider.timeout_s,
                    connect_timeout_s=dep.provider.connect_timeout_s,
                )
                if resp.status >= 400:
                    raise adapter.classify(resp, dep)
                result = adapter.parse_chat(resp, dep)
            except ProviderError as err:
                ctx.attempts.append(_attempt(dep, t0, err=_tag(err, dep)))
                errors.append(err)
                if not err.retryable:
                    break
                continue
            ctx.attempts.append(_attempt(dep, t0, status=resp.status, usage=result.usage))
            ctx.deployment = dep.name
            ctx.usage = result.usage
            return result
        raise _failure(errors)

    async def embeddings(
        self, request: EmbeddingRequest, deployments: tuple[Deployment, ...], ctx: RequestContext
    ) -> EmbeddingResponse:
        errors: list[SwitchpointError] = []
        for dep in deployments:
            adapter = self.adapter(dep.family)
            t0 = time.perf_counter()
            try:
                upstream = adapter.build_embeddings(request, dep)
                resp = await self.transport.send(
                    upstream,
                    timeout_s=dep.provider.timeout_s,
                    connect_timeout_s=dep.provider.connect_timeout_s,
                )
                if resp.status >= 400:
                    raise adapter.classify(resp, dep)
                result = adapter.parse_embeddings(resp, dep)
            except ProviderError as err:
                ctx.attempts.append(_attempt(dep, t0, err=_tag(err, dep)))
                errors.append(err)
                if not err.retryable:
                    break
                continue
            ctx.attempts.append(_attempt(dep, t0, status=resp.status, usage=result.usage))
            ctx.deployment = dep.name
            ctx.usage = result.usage
            return result
        raise _failure(errors)

    # --- streaming -------------------------------------------------------------------------

    async def chat_stream(
        self, request: ChatRequest, decision: Decision, ctx: RequestContext
    ) -> CommittedStream:
        errors: list[SwitchpointError] = []
        for cand in decision.candidates:
            dep = cand.deployment
            t0 = time.perf_counter()
            gen = self._attempt_stream(request, dep)
            pending: list[Item] = []
            try:
                while True:
                    try:
                        item = await gen.__anext__()
                    except StopAsyncIteration:
                        break
                    pending.append(item)
                    if any(isinstance(e, CONTENT_EVENTS) for e in item[0]):
                        break
            except ProviderError as err:
                await gen.aclose()
                ctx.attempts.append(_attempt(dep, t0, err=_tag(err, dep)))
                errors.append(err)
                if not err.retryable:
                    break
                continue
            except BaseException:
                await gen.aclose()
                raise
            ttft_ms = (time.perf_counter() - t0) * 1000.0
            ctx.deployment = dep.name
            ctx.ttft_ms = ctx.elapsed_ms()
            return CommittedStream(dep, pending, gen, ctx, t0, ttft_ms)
        raise _failure(errors)

    async def _attempt_stream(self, request: ChatRequest, dep: Deployment) -> AsyncGenerator[Item, None]:
        adapter = self.adapter(dep.family)
        upstream = adapter.build_chat(request, dep)
        stream = await self.transport.open_stream(
            upstream, connect_timeout_s=dep.provider.connect_timeout_s, read_timeout_s=dep.provider.timeout_s
        )
        try:
            if stream.status >= 400:
                body = await stream.read()
                raise adapter.classify(
                    UpstreamResponse(status=stream.status, headers=stream.headers, body=body), dep
                )
            parser = adapter.stream_parser(request, dep)
            decoder = SSEDecoder()
            async for chunk in stream.chunks():
                for frame in decoder.feed(chunk):
                    yield parser.feed(frame), frame
            for frame in decoder.flush():
                yield parser.feed(frame), frame
            tail = parser.close()
            if tail:
                yield tail, None
        finally:
            stream.close()


def describe_attempts(attempts: list[Attempt]) -> list[dict[str, Any]]:
    """A compact, secret-free view of attempts (for logs and admin views)."""
    return [
        {
            "deployment": a.deployment,
            "status": a.status,
            "error": a.error,
            "latency_ms": round(a.latency_ms, 2),
        }
        for a in attempts
    ]
