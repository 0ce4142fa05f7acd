"""Streaming attempts: open, read until the first content event, then commit.

A stream is committed to a candidate only when its first content event arrives; until then a
failure (an error status, a broken connection, a stall, no first token in time) is the
executor's to handle invisibly. After commit, :class:`CommittedStream` hands the events to the
API layer; a failure there ends the client's stream with the dialect's error event.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING, TypeAlias

from switchpoint.canonical import CONTENT_EVENTS, ChatRequest, StreamEvent, Usage, UsageUpdate
from switchpoint.config import Deployment, TimeoutLimits
from switchpoint.errors import ProviderError, SwitchpointError
from switchpoint.executor.transport import Transport
from switchpoint.health import HealthRegistry
from switchpoint.providers import Adapter, StreamParser, UpstreamResponse
from switchpoint.records import Attempt
from switchpoint.streaming import Marks, SSEDecoder, SSEFrame

if TYPE_CHECKING:
    from switchpoint.executor.core import RequestContext

#: Events and the frame they came from (``None``: events only, at the end of a stream). In a
#: passthrough stream, an item may instead carry a run of frames to forward unread, with no
#: events (see :meth:`SSEDecoder.scan`).
Item: TypeAlias = tuple[list[StreamEvent], SSEFrame | None]
#: The items of one upstream read: written to the client together, in one write.
Batch: TypeAlias = list[Item]


def make_attempt(
    dep: Deployment,
    t0: float,
    *,
    err: SwitchpointError | None = None,
    error: str | None = None,
    status: int | None = None,
    usage: Usage | None = None,
    ttft_ms: float | None = None,
) -> Attempt:
    """The record of one upstream call. ``error`` names a failure that is no SwitchpointError
    (``cancelled``, ``hedge_lost``)."""
    if err is not None:
        if isinstance(err, ProviderError) and err.deployment is None:
            err.deployment = dep.name
        status = getattr(err, "upstream_status", None)
        error = err.kind
    return Attempt(
        deployment=dep.name,
        provider=dep.provider.name,
        family=dep.family,
        status=status,
        error=error,
        error_message=err.message[:300] if err is not None else None,
        latency_ms=(time.perf_counter() - t0) * 1000.0,
        ttft_ms=ttft_ms,
        usage=usage,
    )


async def upstream_items(
    transport: Transport, adapter: Adapter, request: ChatRequest, dep: Deployment, limits: TimeoutLimits
) -> AsyncGenerator[Batch, None]:
    """Canonical events (with the frame they came from) of one upstream stream, one batch per
    upstream read: what arrived together leaves together, in one write to the client.

    A passthrough stream (see :func:`passthrough_marks`) is parsed frame by frame only until its
    first content event (what :func:`peek` commits on); from the next frame on, complete frames
    go out as runs of bytes with no events, and only the frames the parser marks (usage, an
    error, the end) are parsed, each as its own item, so the encoder can still drop one.
    """
    upstream = adapter.build_chat(request, dep)
    stream = await transport.open_stream(
        upstream,
        connect_timeout_s=limits.connect_s,
        read_timeout_s=limits.stall_s,
        total_timeout_s=limits.total_s,
    )
    try:
        if stream.status >= 400:
            body = await stream.read()
            raise adapter.classify(
                UpstreamResponse(status=stream.status, headers=stream.headers, body=body), dep
            )
        parser = adapter.stream_parser(request, dep)
        decoder = SSEDecoder()
        marks = passthrough_marks(request, dep, parser)
        if marks is None:
            async for chunk in stream.chunks():
                frames = decoder.feed(chunk)
                if frames:
                    yield [(parser.feed(frame), frame) for frame in frames]
        else:
            committed = False
            async for chunk in stream.chunks():
                decoder.push(chunk)
                batch: Batch = []
                if not committed:
                    committed = _until_content(decoder, parser, batch)
                if committed:
                    # A run of frames has no data and needs no parsing; a marked frame is parsed.
                    batch += [(parser.feed(f) if f.data else [], f) for f in decoder.scan(marks)]
                if batch:
                    yield batch
        last: Batch = [(parser.feed(frame), frame) for frame in decoder.flush()]
        tail = parser.close()
        if tail:
            last.append((tail, None))
        if last:
            yield last
    finally:
        stream.close()


def passthrough_marks(request: ChatRequest, dep: Deployment, parser: StreamParser) -> Marks | None:
    """The parser's marks when the client gets this upstream's frames unchanged, else ``None``.

    That is when the request came from a dialect (it carries the client's body) named like the
    deployment's wire family: each dialect's stream encoder forwards the frames of its own
    family (``StreamEncoder.commit``), and needs events only from the frames marked.
    """
    if request.raw is None or request.dialect != dep.family:
        return None
    return parser.passthrough_marks


def _until_content(decoder: SSEDecoder, parser: StreamParser, batch: Batch) -> bool:
    """Parse the buffered frames into ``batch`` up to the first with a content event; True when
    that one came (the stream commits on it: the frames after it may be scanned)."""
    while (frame := decoder.next()) is not None:
        events = parser.feed(frame)
        batch.append((events, frame))
        if any(isinstance(e, CONTENT_EVENTS) for e in events):
            return True
    return False


class Opened:
    """A stream that produced its first content event (or ended without one)."""

    __slots__ = ("deployment", "gen", "pending", "t0", "ttft_ms")

    def __init__(
        self, deployment: Deployment, pending: Batch, gen: AsyncGenerator[Batch, None], t0: float
    ) -> None:
        self.deployment = deployment
        self.pending = pending
        self.gen = gen
        self.t0 = t0
        self.ttft_ms = (time.perf_counter() - t0) * 1000.0


async def peek(gen: AsyncGenerator[Batch, None], dep: Deployment, t0: float, ttft_s: float | None) -> Opened:
    """Read ``gen`` until the batch with its first content event; the TTFT timer runs from ``t0``."""
    pending: Batch = []
    timer: contextlib.AbstractAsyncContextManager[object] = contextlib.nullcontext()
    if ttft_s:
        left = ttft_s - (time.perf_counter() - t0)
        timer = asyncio.timeout_at(asyncio.get_running_loop().time() + left)
    try:
        async with timer:
            async for batch in gen:
                pending.extend(batch)
                if any(isinstance(e, CONTENT_EVENTS) for events, _ in batch for e in events):
                    break
    except TimeoutError:
        await gen.aclose()
        raise ProviderError("timeout", f"no first token within {ttft_s:g} s") from None
    except BaseException:
        await gen.aclose()
        raise
    return Opened(dep, pending, gen, t0)


class CommittedStream:
    """A stream that has produced its first content event on one deployment.

    Iterate :meth:`items` once: it yields the buffered first items, then the rest, keeps
    usage, records the attempt and reports to health when the upstream ends (or fails).
    """

    def __init__(self, opened: Opened, ctx: RequestContext, health: HealthRegistry) -> None:
        self.deployment = opened.deployment
        self.family = opened.deployment.family
        self._opened = opened
        self._ctx = ctx
        self._health = health
        self._settled = False
        self.usage = Usage()

    def _settle(self) -> None:
        """The attempt is over: it no longer counts as in flight (exactly once)."""
        if not self._settled:
            self._settled = True
            self._health.on_end(self.deployment.name)

    def __del__(self) -> None:
        # Never iterated (the client left before the response started): still not in flight.
        if not self._settled:
            self._settle()
            self._health.on_release(self.deployment.name)

    def _see(self, events: list[StreamEvent]) -> None:
        for e in events:
            if isinstance(e, UsageUpdate):
                self.usage = self.usage.merge(e.usage)

    async def items(self) -> AsyncIterator[Item]:
        """One item at a time (see :meth:`batches`)."""
        batches = self.batches()
        try:
            async for batch in batches:
                for item in batch:
                    yield item
        finally:
            await batches.aclose()

    async def batches(self) -> AsyncGenerator[Batch, None]:
        """The buffered first items as one batch, then one batch per upstream read."""
        ctx, dep, opened = self._ctx, self.deployment, self._opened
        finished = False
        try:
            pending, opened.pending = opened.pending, []
            if pending:
                for events, _ in pending:
                    self._see(events)
                yield pending
            async for batch in opened.gen:
                for events, _ in batch:
                    self._see(events)
                yield batch
            finished = True
        except SwitchpointError as err:
            ctx.attempts.append(
                make_attempt(dep, opened.t0, err=err, usage=self.usage, ttft_ms=opened.ttft_ms)
            )
            self._health.on_failure(dep.name, err.kind, retry_after=err.retry_after)
            raise
        except BaseException:
            ctx.attempts.append(
                make_attempt(dep, opened.t0, error="cancelled", usage=self.usage, ttft_ms=opened.ttft_ms)
            )
            self._health.on_release(dep.name)
            raise
        finally:
            ctx.usage = self.usage
            self._settle()
            await opened.gen.aclose()
        if finished:
            attempt = make_attempt(dep, opened.t0, status=200, usage=self.usage, ttft_ms=opened.ttft_ms)
            ctx.attempts.append(attempt)
            self._health.on_success(dep.name, attempt.latency_ms)

    async def aclose(self) -> None:
        """Give the stream up without reading it."""
        if not self._settled:
            self._settle()
            self._health.on_release(self.deployment.name)
        await self._opened.gen.aclose()
