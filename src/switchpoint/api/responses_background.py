"""Background responses (``background: true`` on ``POST /v1/responses``), their event streams,
and ``POST /v1/responses/{id}/cancel``.

A background request is decoded, its conversation restored and its row written (status
``queued``) before the client gets its answer: the Response object at once, or, with
``stream: true``, a stream that follows the run. The run is a task this worker tracks
(:class:`BackgroundRuns`, at most ``storage.background_max_inflight`` at once, past it a 429):
it calls the Responses route again with the decoded request, so it goes through the same
routing, governance, executor, failover and ledger as a foreground response (its one ledger
row is booked when it ends). The gateway always reads the run as a stream: its events are
kept in memory while it lasts (at most ``storage.background_events``) and for
:data:`RECENT_S` after, which lets any number of clients follow it and resume after a sequence
number (``GET …?stream=true&starting_after=N``); a client leaving does not stop it. Its
stream begins at once with ``response.created`` and ``response.queued`` (0 and 1); the run's
encoder goes on from 2. Its row follows the events: ``in_progress`` with the
stream's ``response.in_progress``, and how it ended with the terminal event.

Cancel marks the row ``cancelled`` (guarded by its status, in one UPDATE) and then cancels the
run when it lives in this worker. A run on another worker is not reached: it finishes, and its
last write finds the row no longer in progress and changes nothing. Every worker marks its
runs alive every ``background_heartbeat_s``; a queued or in-progress row unmarked for
``background_stale_s`` (its worker died) is failed by whichever worker sweeps first (at start
and at every heartbeat). On shutdown the runs get the drain deadline, then are cancelled and
failed, saying the gateway shut down.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from switchpoint.api.chat import JSON, ChatRoute, Reply, StreamBody, error_reply, internal_error, request_id
from switchpoint.api.dialect import Dialect
from switchpoint.api.responses import ResponsesRequest
from switchpoint.api.responses_out import (
    ResponsesStreamEncoder,
    StoredStream,
    queued_events,
    response_doc,
    split_events,
)
from switchpoint.canonical import ChatRequest
from switchpoint.errors import (
    BadRequest,
    InternalError,
    RateLimited,
    ShuttingDown,
    SwitchpointError,
)
from switchpoint.governance.principal import Principal
from switchpoint.store import responses as store

if TYPE_CHECKING:
    from switchpoint.api.responses_state import ResponseState

log = logging.getLogger("switchpoint")
_SSE = "text/event-stream"
_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
#: The events that change a background row, and the status each gives it.
_STATUS_OF = {
    b"response.in_progress": "in_progress",
    b"response.completed": "completed",
    b"response.incomplete": "incomplete",
    b"response.failed": "failed",
}
RESTARTED = "The gateway restarted before this background response finished."
SHUT_DOWN = "The gateway shut down before this background response finished."
#: How often a stream following a run on another worker reads its row again.
POLL_S = 0.5
#: How long a finished run's events stay for a client resuming its stream (at most as many
#: finished runs as may run at once): a resume then gets the very events the live stream had.
RECENT_S = 120.0


def _event_name(frame: bytes) -> bytes:
    if not frame.startswith(b"event: "):
        return b""
    return frame[7 : frame.find(b"\n")]


def _event_doc(frame: bytes) -> dict[str, Any]:
    data = frame[frame.find(b"data: ") + 6 :].strip()
    event: dict[str, Any] = msgspec.json.decode(data)
    return dict(event.get("response") or {})


def _ended(doc: dict[str, Any], message: str) -> bytes:
    """A stored Response that its run left unfinished, failed with ``message``."""
    doc.update(status="failed", error={"code": "server_error", "message": message}, completed_at=None)
    return msgspec.json.encode(doc)


class Run:
    """One background response being run here: its task and the stream's events so far."""

    def __init__(self, rid: str, owner: str, keep: int) -> None:
        self.id = rid
        self.owner = owner
        self.task: asyncio.Task[None] | None = None
        #: The events kept, one frame each; ``frames[0]`` has sequence number ``first``.
        self.frames: list[bytes] = []
        self.first = 0
        self.done = False
        self.body: StreamBody | None = None
        self._keep = keep
        self._changed = asyncio.Event()

    def publish(self, frames: list[bytes]) -> None:
        self.frames += frames
        over = len(self.frames) - self._keep
        if over > 0:  # the oldest go (a tenth at once, so trimming stays rare)
            drop = max(over, self._keep // 10)
            del self.frames[:drop]
            self.first += drop
        self.wake()

    def wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def signal(self) -> asyncio.Event:
        """Set at the next change (new events, the end)."""
        return self._changed


class Follow:
    """A stream of a run's events after ``after``, live until the run ends. Closing it (the
    client left) leaves the run alone."""

    def __init__(self, run: Run, after: int) -> None:
        self._run = run
        self._next = after + 1

    def __aiter__(self) -> Follow:
        return self

    async def __anext__(self) -> bytes:
        run = self._run
        while True:
            changed = run.signal()
            at = self._next - run.first
            if at < 0:  # fell behind what is kept: ended rather than given with a gap
                raise StopAsyncIteration
            if at < len(run.frames):
                pieces = run.frames[at:]
                self._next += len(pieces)
                return b"".join(pieces)
            if run.done:
                raise StopAsyncIteration
            await changed.wait()

    async def aclose(self) -> None:
        return None


class BackgroundRuns:
    """This worker's background runs (see the module's docstring)."""

    def __init__(self, state: ResponseState) -> None:
        self.state = state
        settings = state.gw.config.storage
        self.max_inflight = settings.background_max_inflight
        self.events = settings.background_events
        self.heartbeat_s = settings.background_heartbeat_s
        self.stale_s = settings.background_stale_s
        self.worker = f"{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.runs: dict[str, Run] = {}
        #: Runs that ended lately, oldest first, with when they ended (see RECENT_S).
        self.recent: dict[str, tuple[float, Run]] = {}
        self.closing = False
        self._ticker: asyncio.Task[None] | None = None

    # --- start and stop --------------------------------------------------------------------

    async def start(self) -> None:
        """Fail what dead workers left (at once, then at every heartbeat), in a task of its own:
        the gateway starts, and serves, while its database is down."""
        if self.state.engine() is None:
            return
        self._ticker = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception as exc:
                log.warning(
                    "could not sweep background responses (trying again in %ss): %s", self.heartbeat_s, exc
                )
            await asyncio.sleep(self.heartbeat_s)

    async def sweep(self) -> int:
        """Mark this worker's runs alive; fail the rows no live worker has marked lately."""
        engine = self.state.engine()
        if engine is None:
            return 0
        now = time.time()
        await self.state.run(store.touch, engine, self.worker, list(self.runs), now)
        failed = 0
        for row in await self.state.run(store.stale, engine, now - self.stale_s):
            if row.id in self.runs:
                continue
            doc = _ended(msgspec.json.decode(row.response), RESTARTED)
            if await self.state.run(store.settle, engine, row.id, row.owner, "failed", doc):
                failed += 1
        if failed:
            log.warning("failed %d background response(s) left unfinished by a stopped worker", failed)
        return failed

    async def close(self, timeout_s: float) -> None:
        """Refuse new runs; give those running ``timeout_s`` to end, then cancel them and
        fail their rows (the gateway shut down)."""
        self.closing = True
        self.state.gw.begin_drain()  # a run cut from here on is booked as shutting_down
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
            self._ticker = None
        tasks = {run.task: run for run in self.runs.values() if run.task is not None}
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        engine = self.state.engine()
        if engine is None or not pending:
            return
        log.warning("shutting down with %d background response(s) unfinished", len(pending))
        for task in pending:
            run = tasks[task]
            row = await self.state.run(store.get, engine, run.id, run.owner)
            if row is not None and row.status in store.ACTIVE:
                doc = _ended(msgspec.json.decode(row.response), SHUT_DOWN)
                await self.state.run(store.settle, engine, run.id, run.owner, "failed", doc)

    # --- a new run -------------------------------------------------------------------------

    async def launch(
        self,
        route: ChatRoute,
        request: ChatRequest,
        principal: Principal,
        request_headers: Mapping[str, str],
        body: bytes,
        headers: dict[str, str],
    ) -> Reply:
        from switchpoint.api.responses_state import owner_of

        assert isinstance(request, ResponsesRequest)
        engine = self.state.engine()
        if engine is None:
            raise BadRequest(
                "background responses are stored responses, and the ledger is off (storage.enabled: false)",
                param="background",
            )
        if self.closing or self.state.gw.draining:
            raise ShuttingDown("The gateway is shutting down; it starts no background response")
        if len(self.runs) >= self.max_inflight:
            raise RateLimited(
                f"Too many background responses in flight on this worker (at most {self.max_inflight}); "
                "retry later",
                code="rate_limit_exceeded",
                retry_after=1.0,
            )
        rid = "resp_" + uuid.uuid4().hex
        created = int(time.time())
        owner = owner_of(principal)
        run_request = msgspec.structs.replace(
            request, stream=True, include_usage=True, response_id=rid, response_created=created
        )
        queued = msgspec.json.encode(response_doc(run_request, rid, created, "queued", []))
        row = store.StoredResponse(
            id=rid,
            owner=owner,
            created_at=time.time(),
            model=request.model,
            previous_response_id=request.previous_response_id,
            input_items=request.items,
            response=queued,
            status="queued",
            background=True,
            worker=self.worker,
            heartbeat_at=time.time(),
        )
        run = Run(rid, owner, self.events)
        self.runs[rid] = run  # counted from now: the limit holds while the row is written
        try:
            await self.state.run(store.insert, engine, row)
        except BaseException:
            del self.runs[rid]
            raise
        run.publish(split_events(queued_events(run_request, msgspec.json.decode(queued))))
        run.task = asyncio.get_running_loop().create_task(
            # the run's record has this answer's request id
            self._run(
                run,
                route,
                run_request,
                principal,
                {**request_headers, "x-request-id": headers["x-request-id"]},
                body,
            )
        )
        if request.stream:
            headers.update(_SSE_HEADERS)
            return Reply(200, headers, stream=Follow(run, -1), media_type=_SSE)
        return Reply(200, headers, queued)

    async def _run(
        self,
        run: Run,
        route: ChatRoute,
        request: ResponsesRequest,
        principal: Principal,
        request_headers: dict[str, str],
        body: bytes,
    ) -> None:
        try:
            reply = await route(request_headers, body, principal, request=request)
            stream = reply.stream
            if stream is None:  # refused or failed before its stream began
                await self._frames(run, self._refused(request, reply))
                return
            if isinstance(stream, StreamBody):
                run.body = stream
                stream.cancel_reason = "cancelled"
            try:
                async for piece in stream:
                    await self._frames(run, split_events(piece))
            finally:
                await stream.aclose()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            err = internal_error(exc, request_headers.get("x-request-id", run.id))
            await self._frames(run, split_events(ResponsesStreamEncoder(request).error(err)))
        finally:
            run.done = True
            run.wake()
            self.runs.pop(run.id, None)
            self._ended(run)

    def _ended(self, run: Run) -> None:
        now = time.monotonic()
        self.recent[run.id] = (now, run)
        for rid, (ended, _) in list(self.recent.items()):
            if ended > now - RECENT_S and len(self.recent) <= self.max_inflight:
                break
            del self.recent[rid]

    @staticmethod
    def _refused(request: ResponsesRequest, reply: Reply) -> list[bytes]:
        """A run answered with an HTTP error (governance, every candidate failed …) as the
        stream's failure events."""
        try:
            message = str(msgspec.json.decode(reply.body)["error"]["message"])
        except Exception:
            message = f"the request failed with HTTP {reply.status}"
        err: SwitchpointError = RateLimited(message) if reply.status == 429 else InternalError(message)
        return split_events(ResponsesStreamEncoder(request).error(err))

    async def _frames(self, run: Run, frames: list[bytes]) -> None:
        """The run's next events: the row follows its status events (before anyone sees them,
        so a client that saw the end finds it stored), then the followers get them."""
        engine = self.state.engine()
        for frame in frames:
            status = _STATUS_OF.get(_event_name(frame))
            if status is not None and engine is not None:
                doc = msgspec.json.encode(_event_doc(frame))
                try:
                    await self.state.run(store.settle, engine, run.id, run.owner, status, doc)
                except Exception:
                    log.exception("could not store background response %s", run.id)
        run.publish(frames)

    # --- cancel ----------------------------------------------------------------------------

    async def cancel(self, row: store.StoredResponse) -> bytes:
        if not row.background:
            raise BadRequest("Cannot cancel a synchronous response.")
        if row.status not in store.ACTIVE:
            return row.response  # finished or cancelled already: unchanged
        engine = self.state.engine()
        assert engine is not None
        doc = msgspec.json.decode(row.response)
        doc.update(status="cancelled", completed_at=None)
        out = msgspec.json.encode(doc)
        if not await self.state.run(store.cancel, engine, row.id, row.owner, out):
            now = await self.state.run(store.get, engine, row.id, row.owner)
            return now.response if now is not None else out  # it ended meanwhile
        run = self.runs.get(row.id)
        if run is not None and run.task is not None:
            run.task.cancel()
            await asyncio.wait([run.task], timeout=5.0)
        return out

    # --- streams ---------------------------------------------------------------------------

    async def stream(self, row: store.StoredResponse, after: int) -> AsyncIterator[bytes] | Follow:
        """The response's events after ``after``: from its run when it is here (live, or ended
        lately), else from the stored Response (once its row says it ended, when its run is on
        another worker)."""
        run = self.runs.get(row.id)
        if run is None and row.id in self.recent:
            ended, run = self.recent[row.id]
            if ended < time.monotonic() - RECENT_S:
                run = None
        if run is not None:
            if after + 1 < run.first:
                raise BadRequest(
                    f"'starting_after': events before sequence number {run.first} are no longer kept",
                    param="starting_after",
                )
            return Follow(run, after)
        return self._stored(row, after)

    async def _stored(self, row: store.StoredResponse, after: int) -> AsyncIterator[bytes]:
        engine = self.state.engine()
        while row.status in store.ACTIVE and engine is not None:
            await asyncio.sleep(POLL_S)
            again = await self.state.run(store.get, engine, row.id, row.owner)
            if again is None:
                return
            row = again
        frames = StoredStream(msgspec.json.decode(row.response)).events()
        for frame in frames[after + 1 :]:
            yield frame


def error_response(dialect: Dialect, exc: Exception, headers: dict[str, str]) -> Response:
    """A failure answered in ``dialect``'s error JSON (an unexpected one as an internal error,
    logged); the routes of stored responses all answer through it."""
    err = exc if isinstance(exc, SwitchpointError) else internal_error(exc, headers["x-request-id"])
    reply = error_reply(dialect, err, headers)
    return Response(reply.body, status_code=reply.status, headers=reply.headers, media_type=JSON)


def _flag(value: str | None, param: str) -> bool:
    if value is None:
        return False
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise BadRequest(f"'{param}': expected a boolean", param=param)


def routes(state: ResponseState, runs: BackgroundRuns, dialect: Dialect) -> list[Route]:
    """``GET /v1/responses/{id}`` (the Response, or with ``stream=true`` its events) and
    ``POST /v1/responses/{id}/cancel``."""

    async def retrieve(request: Request) -> Response:
        headers = {"x-request-id": request_id(request.headers)}
        try:
            q = request.query_params
            streamed = _flag(q.get("stream"), "stream")
            _flag(q.get("include_obfuscation"), "include_obfuscation")  # accepted; nothing obfuscated
            after_text = q.get("starting_after", "-1")
            if not after_text.lstrip("-").isdigit() or int(after_text) < -1:
                raise BadRequest("'starting_after': expected a sequence number", param="starting_after")
            row, _ = await state.stored(request)
            if not streamed:
                return Response(row.response, headers=headers, media_type=JSON)
            events = await runs.stream(row, int(after_text))
        except Exception as exc:
            return error_response(dialect, exc, headers)
        return StreamingResponse(events, headers={**headers, **_SSE_HEADERS}, media_type=_SSE)

    async def cancel(request: Request) -> Response:
        headers = {"x-request-id": request_id(request.headers)}
        try:
            row, _ = await state.stored(request)
            return Response(await runs.cancel(row), headers=headers, media_type=JSON)
        except Exception as exc:
            return error_response(dialect, exc, headers)

    return [
        Route("/v1/responses/{response_id}", retrieve, methods=["GET"]),
        Route("/v1/responses/{response_id}/cancel", cancel, methods=["POST"]),
    ]
