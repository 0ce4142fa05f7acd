"""Streaming attempts: open, read until the first content event, then commit.

A stream is committed to a candidate only when its first content event arrives; until then a
failure (an error status, a broken connection, a stall, no first token in time) is the
executor's to handle invisibly. After commit, :class:`CommittedStream` hands the events to the
API layer; a failure there ends the client's stream with the dialect's error event.

The path is plain objects awaited in turn (:class:`Reader`, :class:`CommittedStream`), not
nested async generators: it runs once per upstream read of every stream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, TypeAlias

from switchpoint.canonical import CONTENT_EVENTS, ChatRequest, StreamEvent, Usage, UsageUpdate
from switchpoint.config import Deployment, TimeoutLimits
from switchpoint.errors import ProviderError, SwitchpointError
from switchpoint.executor.transport import Transport, UpstreamStream
from switchpoint.health import HealthRegistry
from switchpoint.providers import Adapter, StreamParser, UpstreamResponse
from switchpoint.providers.base import FrameDecoder
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
    ctx: RequestContext | None = None,
) -> Attempt:
    """The record of one upstream call. ``error`` names a failure that is no SwitchpointError
    (``cancelled``, ``hedge_lost``). With the request's ``ctx``: when the call began (ms after
    the request) and whether it was a hedge (``t0`` registered in ``ctx.hedges``)."""
    if err is not None:
        if isinstance(err, ProviderError) and err.deployment is None:
            err.deployment = dep.name
        if usage is None:  # an answer refused by an output guarantee was billed all the same
            usage = getattr(err, "usage", None)
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
        offset_ms=0.0 if ctx is None else (t0 - ctx.start) * 1000.0,
        hedge=ctx is not None and ctx.hedges is not None and t0 in ctx.hedges,
    )


class Reader:
    """One upstream stream, read into canonical events (with the frame they came from), one
    batch per upstream read: what arrived together leaves together, in one write to the client.

    A passthrough stream (see :func:`passthrough_marks`) is parsed frame by frame only until its
    first content event (what the stream commits on); from the next frame on, complete frames
    go out as runs of bytes with no events, and only the frames the parser marks (usage, an
    error, the end) are parsed, each as its own item, so the encoder can still drop one.
    """

    __slots__ = ("_chunks", "_decoder", "_frames", "_marks", "_parser", "content", "ended", "stream")

    def __init__(self, stream: UpstreamStream, parser: StreamParser, marks: Marks | None) -> None:
        self.stream = stream
        self._chunks = stream.chunks()
        self._parser = parser
        self._decoder = SSEDecoder()
        #: How the upstream frames its stream: SSE, or the parser's own framing (Bedrock's
        #: binary event stream), which is never forwarded as bytes (``marks`` is then None).
        make = getattr(parser, "frame_decoder", None)
        self._frames: FrameDecoder = self._decoder if make is None else make()
        self._marks = marks
        #: A content event has been read (the stream may commit).
        self.content = False
        self.ended = False

    async def next(self) -> Batch | None:
        """The items of the next upstream read that has any; ``None`` once the stream ended.
        Raises the parser's errors and the transport's."""
        while not self.ended:
            try:
                chunk = await self._chunks.__anext__()
            except StopAsyncIteration:
                self.ended = True
                return self._last() or None
            batch = self._read(chunk)
            if batch:
                return batch
        return None

    def _read(self, chunk: bytes) -> Batch:
        decoder, parser, marks = self._decoder, self._parser, self._marks
        if marks is None:
            batch: Batch = [(parser.feed(frame), frame) for frame in self._frames.feed(chunk)]
            if not self.content:
                self.content = any(isinstance(e, CONTENT_EVENTS) for events, _ in batch for e in events)
            return batch
        decoder.push(chunk)
        batch = []
        if not self.content:
            # Parsed one by one up to the first content event; the frames after it are scanned.
            while not self.content:
                frame = decoder.next()
                if frame is None:
                    return batch
                events = parser.feed(frame)
                batch.append((events, frame))
                for e in events:
                    if isinstance(e, CONTENT_EVENTS):
                        self.content = True
                        break
        for frame in decoder.scan(marks):
            # A run of frames has no data and needs no parsing; a marked frame is parsed.
            batch.append((parser.feed(frame) if frame.data else [], frame))
        return batch

    def _last(self) -> Batch:
        """At the end: a last frame without its blank line, and what the parser has left."""
        parser = self._parser
        last: Batch = [(parser.feed(frame), frame) for frame in self._frames.flush()]
        tail = parser.close()
        if tail:
            last.append((tail, None))
        return last

    def close(self) -> None:
        self.ended = True
        self.stream.close()


def passthrough_marks(request: ChatRequest, dep: Deployment, parser: StreamParser) -> Marks | None:
    """The parser's marks when the client gets this upstream's frames unchanged, else ``None``.

    That is when the request came from a dialect (it carries the client's body) named like the
    deployment's wire family: each dialect's stream encoder forwards the frames of its own
    family (``StreamEncoder.commit``), and needs events only from the frames marked.
    """
    if request.raw is None or request.dialect != dep.family:
        # a parser of a forwarded wire of its own (the Responses API) forwards its frames too
        return parser.passthrough_marks if getattr(parser, "wire", None) else None
    return parser.passthrough_marks


class Opened:
    """A stream that produced its first content event (or ended without one)."""

    __slots__ = ("deployment", "pending", "reader", "t0", "ttft_ms")

    def __init__(self, deployment: Deployment, pending: Batch, reader: Reader, t0: float) -> None:
        self.deployment = deployment
        self.pending = pending
        self.reader = reader
        self.t0 = t0
        self.ttft_ms = (time.perf_counter() - t0) * 1000.0


async def open_stream(
    transport: Transport,
    adapter: Adapter,
    request: ChatRequest,
    dep: Deployment,
    limits: TimeoutLimits,
    t0: float,
    *,
    parse_all: bool = False,
    whole: Callable[[Batch], None] | None = None,
) -> Opened:
    """One attempt up to commit: send, check the status, read until the batch with the first
    content event. The TTFT timeout (from ``t0``) covers all of it.

    ``parse_all``: every frame is read into events (no passthrough runs of bytes). ``whole``:
    the stream is read to its end before it commits, and ``whole`` checks it (raising a
    :class:`ProviderError` makes this attempt a failure like any other)."""
    parse = parse_all or whole is not None
    if not limits.ttft_s:
        opened = await _open(transport, adapter, request, dep, limits, t0, parse)
    else:
        left = limits.ttft_s - (time.perf_counter() - t0)
        try:
            async with asyncio.timeout_at(asyncio.get_running_loop().time() + left):
                opened = await _open(transport, adapter, request, dep, limits, t0, parse)
        except TimeoutError:
            raise ProviderError("timeout", f"no first token within {limits.ttft_s:g} s") from None
    if whole is not None:
        reader = opened.reader
        try:
            while (batch := await reader.next()) is not None:
                opened.pending += batch
            whole(opened.pending)
        except BaseException:
            reader.close()
            raise
    return opened


async def _open(
    transport: Transport,
    adapter: Adapter,
    request: ChatRequest,
    dep: Deployment,
    limits: TimeoutLimits,
    t0: float,
    parse_all: bool = False,
) -> Opened:
    stream = await transport.open_stream(
        adapter.build_chat(request, dep),
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
        reader = Reader(stream, parser, None if parse_all else passthrough_marks(request, dep, parser))
        pending: Batch = []
        while not reader.content:
            batch = await reader.next()
            if batch is None:
                break
            pending += batch
    except BaseException:
        stream.close()
        raise
    return Opened(dep, pending, reader, t0)


class CommittedStream:
    """A stream that has produced its first content event on one deployment.

    Iterate it once (``async for batch in committed``): the buffered first items as one batch,
    then one batch per upstream read. It keeps usage, records the attempt and reports to health
    when the upstream ends or fails; :meth:`aclose` gives it up (the client left).
    """

    __slots__ = (
        "_ctx",
        "_done",
        "_health",
        "_opened",
        "_pending",
        "_settled",
        "deployment",
        "family",
        "usage",
    )

    def __init__(self, opened: Opened, ctx: RequestContext, health: HealthRegistry) -> None:
        self.deployment = opened.deployment
        #: The wire the client's encoder may forward frames of (empty: it translates every event):
        #: the deployment's family, or the parser's own wire (``openai-responses``).
        self.family: str = getattr(opened.reader._parser, "wire", None) or opened.deployment.family
        self._opened = opened
        self._ctx = ctx
        self._health = health
        self._pending: Batch | None = opened.pending
        self._settled = False
        self._done = False
        self.usage = Usage()

    def _settle(self) -> None:
        """The attempt is over: it no longer counts as in flight (exactly once)."""
        if not self._settled:
            self._settled = True
            self._health.on_end(self.deployment.name)

    def __del__(self) -> None:
        # Never read to the end nor closed: still not in flight.
        if not self._settled:
            self._settle()
            self._health.on_release(self.deployment.name)

    def _see(self, batch: Batch) -> None:
        for events, _ in batch:
            for e in events:
                if isinstance(e, UsageUpdate):
                    self.usage = self.usage.merge(e.usage)

    def __aiter__(self) -> AsyncIterator[Batch]:
        return self

    async def __anext__(self) -> Batch:
        batch = await self.next()
        if batch is None:
            raise StopAsyncIteration
        return batch

    async def next(self) -> Batch | None:
        """The next batch, ``None`` at the end (the attempt is then booked as a success)."""
        pending = self._pending
        if pending is not None:
            self._pending = None
            if pending:
                self._see(pending)
                return pending
        if self._done:
            return None
        opened = self._opened
        try:
            batch = await opened.reader.next()
        except SwitchpointError as err:
            self._end(
                make_attempt(
                    self.deployment,
                    opened.t0,
                    err=err,
                    usage=self.usage,
                    ttft_ms=opened.ttft_ms,
                    ctx=self._ctx,
                )
            )
            self._health.on_failure(self.deployment.name, err.kind, retry_after=err.retry_after)
            raise
        except BaseException:
            self._cancelled()
            raise
        if batch is not None:
            self._see(batch)
            return batch
        attempt = make_attempt(
            self.deployment, opened.t0, status=200, usage=self.usage, ttft_ms=opened.ttft_ms, ctx=self._ctx
        )
        self._end(attempt)
        self._health.on_success(self.deployment.name, attempt.latency_ms)
        return None

    def stop(self) -> None:
        """End the stream here, cleanly (the gateway has what it needs): the upstream is let go
        and the attempt booked as a success with the usage seen so far."""
        if self._done:
            return
        opened = self._opened
        attempt = make_attempt(
            self.deployment, opened.t0, status=200, usage=self.usage, ttft_ms=opened.ttft_ms, ctx=self._ctx
        )
        self._end(attempt)
        self._health.on_success(self.deployment.name, attempt.latency_ms)

    def _end(self, attempt: Attempt) -> None:
        self._done = True
        self._ctx.attempts.append(attempt)
        self._ctx.usage = self.usage
        self._settle()
        self._opened.reader.close()

    def _cancelled(self) -> None:
        opened = self._opened
        self._end(
            make_attempt(
                self.deployment,
                opened.t0,
                error="cancelled",
                usage=self.usage,
                ttft_ms=opened.ttft_ms,
                ctx=self._ctx,
            )
        )
        self._health.on_release(self.deployment.name)

    async def aclose(self) -> None:
        """Give the stream up: booked as cancelled once reading began; never read, only let go."""
        if self._done:
            return
        if self._pending is None:
            self._cancelled()
            return
        self._done = True
        self._pending = None
        if not self._settled:
            self._settle()
            self._health.on_release(self.deployment.name)
        self._opened.reader.close()
