"""The chat request path: ``POST /v1/chat/completions`` and ``POST /v1/messages`` from the
request's headers and body to a :class:`Reply` (a body, or a :class:`StreamBody`), whichever
server writes it; and the request ids and records every route shares."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from switchpoint.api.dialect import Dialect, StreamEncoder
from switchpoint.cache.response import HEADER as CACHE_HEADER
from switchpoint.cache.response import Entry, Lookup, Recorder, Replay
from switchpoint.canonical import ChatRequest
from switchpoint.errors import BudgetExceeded, InternalError, ShuttingDown, SwitchpointError
from switchpoint.executor import CommittedStream, RequestContext, limits_from_headers
from switchpoint.governance.access import check_alias
from switchpoint.governance.gate import Admission, Slow
from switchpoint.governance.principal import Principal
from switchpoint.records import RequestRecord
from switchpoint.routing import Decision

if TYPE_CHECKING:
    from switchpoint.api.app import Gateway
    from switchpoint.api.chat_store import ChatStore
    from switchpoint.api.shadow import Shadower

log = logging.getLogger("switchpoint")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
JSON = "application/json"
_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}

# Request ids: a random per-process prefix and a counter — unique across replicas and
# workers, and far cheaper than a uuid4 per request.
_ID_PREFIX = "req_" + os.urandom(6).hex()
_ID_COUNTER = itertools.count(1)


def request_id(headers: Mapping[str, str]) -> str:
    given = headers.get("x-request-id")
    if given and _REQUEST_ID.match(given):
        return given
    return f"{_ID_PREFIX}{next(_ID_COUNTER):010x}"


def internal_error(exc: BaseException, rid: str) -> InternalError:
    log.error("request %s failed unexpectedly", rid, exc_info=exc)
    return InternalError(f"The gateway hit an internal error (request id {rid})")


def make_record(
    ctx: RequestContext,
    *,
    dialect: str,
    endpoint: str,
    model: str,
    stream: bool,
    status: int,
    error: str | None,
    principal: Principal | None,
    decision: Decision | None = None,
    end_user: str | None = None,
) -> RequestRecord:
    """The request's record. Task, session and tags come from what routing already read
    (``x-switchpoint-task`` / classification, ``x-switchpoint-session`` / ``metadata.session_id``,
    ``x-switchpoint-tags`` / metadata); ``end_user`` is the body's OpenAI ``user`` or Anthropic
    ``metadata.user_id``, and the session when none was named."""
    task = session = None
    tags: tuple[str, ...] = ()
    if decision is not None:
        task, session, tags = decision.task, decision.session, decision.tags
    return RequestRecord(
        request_id=ctx.request_id,
        started_at=ctx.started_at,
        dialect=dialect,
        endpoint=endpoint,
        model=model,
        deployment=ctx.deployment,
        stream=stream,
        status=status,
        error=error if error is not None else ctx.outcome,
        latency_ms=ctx.elapsed_ms(),
        ttft_ms=ctx.ttft_ms,
        usage=ctx.usage,
        attempts=tuple(ctx.attempts),
        principal=principal.name if principal is not None else None,
        key_id=principal.key_id if principal is not None else None,
        team=principal.team_name if principal is not None else None,
        decision=decision,
        end_user=end_user,
        task=task,
        session=session or end_user,
        tags=tags,
    )


class ReplyStream(Protocol):
    """A stream's pieces for the server to write (a :class:`StreamBody`, or a cached one)."""

    def __aiter__(self) -> ReplyStream: ...

    async def __anext__(self) -> bytes: ...

    async def aclose(self) -> None: ...


class Reply:
    """What a chat route answers, whichever server writes it: a body, or a stream of bytes."""

    __slots__ = ("abort", "body", "headers", "media_type", "status", "stream")

    def __init__(
        self,
        status: int,
        headers: dict[str, str],
        body: bytes = b"",
        *,
        stream: ReplyStream | None = None,
        media_type: str = JSON,
        abort: Callable[[SwitchpointError], bytes] | None = None,
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.stream = stream
        self.media_type = media_type
        #: For a stream: the bytes that end it in the dialect's error shape, should the
        #: server have to stop it (shutdown past its drain deadline).
        self.abort = abort


def error_reply(dialect: Dialect, err: SwitchpointError, headers: dict[str, str]) -> Reply:
    status, body = dialect.render_error(err)
    if err.retry_after is not None:
        headers["retry-after"] = str(max(1, round(err.retry_after)))
    return Reply(status, headers, body)


class Conversations(Protocol):
    """State a route keeps between requests (the Responses API's ``previous_response_id``)."""

    async def restore(self, request: ChatRequest, principal: Principal | None) -> ChatRequest:
        """The decoded request with the conversation it continues (raises in the dialect)."""
        ...

    async def keep(self, request: ChatRequest, response: bytes | None, principal: Principal | None) -> None:
        """Keep an answer (the encoded whole) before the client gets it; never raises."""
        ...

    @property
    def launch(
        self,
    ) -> Callable[
        [ChatRoute, ChatRequest, Principal, Mapping[str, str], bytes, dict[str, str]],
        Coroutine[Any, Any, Reply],
    ]:
        """Start a request asked to run in the background (``background: true``) and answer
        at once: ``(route, request, principal, request_headers, body, headers)``; the run calls
        ``route`` again with the decoded ``request``."""
        ...


class ChatRoute:
    """``POST /v1/chat/completions``, ``POST /v1/messages`` or ``POST /v1/responses``: decode,
    (restore the conversation,) route, execute, encode, (keep the answer).

    Called with the request's headers (lower-case names) and its whole body; never raises:
    every failure is answered in the dialect's error shape and booked as a record.
    """

    __slots__ = ("batch", "chats", "dialect", "endpoint", "gw", "shadow", "state")

    def __init__(
        self,
        gw: Gateway,
        dialect: Dialect,
        endpoint: str,
        state: Conversations | None = None,
        *,
        batch: bool = False,
        shadow: Shadower | None = None,
        chats: ChatStore | None = None,
    ) -> None:
        self.gw = gw
        self.dialect = dialect
        self.endpoint = endpoint
        #: Shadow traffic (rules with ``shadow:``); None: never copied.
        self.shadow = shadow
        #: Conversation state (Responses); None for the stateless chat routes.
        self.state = state
        #: The route of a batch's lines: their records carry the batch flag (batch prices).
        self.batch = batch
        #: Where ``store: true`` completions are kept (Chat Completions); None: not kept.
        self.chats = chats

    def rejected(self, headers: Mapping[str, str], err: SwitchpointError) -> Reply:
        """A request refused before it could be read (its body is over the limit)."""
        return error_reply(self.dialect, err, {"x-request-id": request_id(headers)})

    def book(
        self,
        ctx: RequestContext,
        model: str,
        stream: bool,
        status: int,
        error: str | None,
        principal: Principal | None,
        decision: Decision | None,
        end_user: str | None = None,
        request_body: bytes | None = None,
        response_body: bytes | None = None,
    ) -> None:
        """Hand the request's record to accounting (with the bodies when ``storage.store_bodies``)."""
        record = make_record(
            ctx,
            dialect=self.dialect.name,
            endpoint=self.endpoint,
            model=model,
            stream=stream,
            status=status,
            error=error,
            principal=principal,
            decision=decision,
            end_user=end_user,
        )
        if self.batch:
            record = msgspec.structs.replace(record, batch=True)
        if self.gw.store_bodies:
            record = msgspec.structs.replace(record, request_body=request_body, response_body=response_body)
        self.gw.accounting.submit(record)
        if self.shadow is not None and decision is not None:
            self.shadow.after(self, ctx.request_id, decision.rule, status, request_body)

    async def __call__(
        self,
        request_headers: Mapping[str, str],
        body: bytes,
        caller: Principal | None = None,
        *,
        request: ChatRequest | None = None,
    ) -> Reply:
        """``caller``: who the request is made for when the gateway makes it itself (a batch's
        line, for the batch's owner); otherwise the request's key says. ``request``: the
        request already decoded (and its conversation restored): a background run's."""
        gw, dialect = self.gw, self.dialect
        rid = request_id(request_headers)
        ctx = RequestContext(rid)
        headers = {"x-request-id": rid}
        response_cache = gw.caches.response
        if response_cache is not None:  # until the cache's lookup says otherwise
            headers[CACHE_HEADER] = "bypass"
        model, stream = "", False
        principal: Principal | None = None
        decision: Decision | None = None
        end_user: str | None = None
        admission: Admission | None = None
        try:
            principal = caller or gw.auth.resolve(request_headers) or await gw.auth.principal(request_headers)
            ctx.limits = limits_from_headers(request_headers)
            if request is None:
                creq = dialect.decode_chat(body, request_headers)
                if self.state is not None:
                    creq = await self.state.restore(creq, principal)
                    if getattr(creq, "background", False):  # answered now, run in a task
                        return await self.state.launch(self, creq, principal, request_headers, body, headers)
            else:
                creq = request
            model, stream, end_user = creq.model, creq.stream, creq.user
            check_alias(principal, model)
            router = gw.router
            decision = await router.aroute(
                creq,
                headers=request_headers,
                principal=principal.name,
                team=principal.team_name,
                health=gw.health,
            )
            headers["x-switchpoint-route"] = decision.header()
            xreq = decision.request or creq  # presets applied, context trimmed
            cached: Lookup | None = None
            if response_cache is not None and self.state is None:  # the exact response cache
                scope = response_cache.scope(principal.key_id, principal.team_name, principal.name)
                cached = await response_cache.lookup(xreq, decision.rule, scope, request_headers, headers)
                if cached.hit is not None:
                    return self._cached(cached.hit, ctx, creq, principal, decision, headers, body)
            if principal.key_id is not None or gw.gate.limited:  # limits, budgets, queue
                fast = gw.gate.admit_now(
                    principal,
                    decision.candidates[0].deployment,
                    rid,
                    decision.prompt_tokens,
                    decision.tokens_exact,
                    xreq.max_tokens,
                    headers,
                )
                if isinstance(fast, Slow):
                    admission, decision, xreq = await self._admit(
                        principal, creq, xreq, decision, request_headers, headers, rid
                    )
                else:
                    admission = fast
            if decision.request is not None:  # the record keeps the decision, not the prompt
                decision = msgspec.structs.replace(decision, request=None)
            prompt_caching = gw.caches.prompt
            if prompt_caching is not None:  # provider prompt caching (cache/prompt.py)
                xreq = prompt_caching.apply(
                    xreq,
                    decision.rule,
                    decision.prompt_tokens,
                    session=decision.session,
                    key_id=principal.key_id,
                )
            if creq.stream:
                committed = await gw.executor.chat_stream(xreq, decision, ctx)
                router.pin(decision, committed.deployment.name)
                headers["x-switchpoint-deployment"] = committed.deployment.name
                headers.update(_SSE_HEADERS)
                encoder = dialect.stream_encoder(creq)
                if creq.store and self.chats is not None:
                    encoder = self.chats.recording(encoder, creq, principal, ctx)
                encoder.commit(committed.family)
                answer = StreamBody(
                    self, encoder, model, committed, ctx, principal, decision, end_user, body, admission, creq
                )
                return Reply(
                    200,
                    headers,
                    stream=answer
                    if cached is None or cached.key is None
                    else _recorded(answer, cached, decision),
                    media_type="text/event-stream",
                    abort=encoder.error,
                )
            result = await gw.executor.chat(xreq, decision, ctx)
            if admission is not None:
                admission.settle(ctx.attempts)
            if ctx.deployment:
                router.pin(decision, ctx.deployment)
            headers["x-switchpoint-deployment"] = ctx.deployment or ""
            out = dialect.encode_chat(result, creq)
            if self.state is not None:
                await self.state.keep(creq, out, principal)
            if creq.store and self.chats is not None:
                self.chats.keep(creq, out, principal, ctx)
            if cached is not None and cached.key is not None and response_cache is not None:
                entry = Entry(deployment=ctx.deployment or "", usage=ctx.usage, body=out)
                response_cache.store(cached, decision.rule, entry)
            self.book(ctx, model, False, 200, None, principal, decision, end_user, body, out)
            return Reply(200, headers, out)
        except Exception as exc:
            err = exc if isinstance(exc, SwitchpointError) else internal_error(exc, rid)
            if ctx.deployment:
                headers["x-switchpoint-deployment"] = ctx.deployment
            if admission is not None:
                admission.settle(ctx.attempts)
            reply = error_reply(dialect, err, headers)
            self.book(
                ctx, model, stream, err.status, err.kind, principal, decision, end_user, body, reply.body
            )
            return reply
        except BaseException:  # cancelled (the client left, shutdown): the reservation ends too
            if admission is not None:
                admission.settle(ctx.attempts)
            if request is not None:  # a background run cancelled before its stream began
                status, kind = (ShuttingDown.status, ShuttingDown.kind) if gw.draining else (499, "cancelled")
                self.book(ctx, model, stream, status, kind, principal, decision, end_user, body)
            raise

    def _cached(
        self,
        entry: Entry,
        ctx: RequestContext,
        creq: ChatRequest,
        principal: Principal,
        decision: Decision,
        headers: dict[str, str],
        body: bytes,
    ) -> Reply:
        """A response-cache hit: the stored answer, booked as cached (no upstream call, no cost;
        the ledger's ``saved_usd`` is what the original cost)."""
        if decision.request is not None:
            decision = msgspec.structs.replace(decision, request=None)
        ctx.deployment, ctx.usage = entry.deployment or None, entry.usage
        headers["x-switchpoint-deployment"] = entry.deployment
        if entry.chunks is not None:
            ctx.ttft_ms = ctx.elapsed_ms()
        record = msgspec.structs.replace(
            make_record(
                ctx,
                dialect=self.dialect.name,
                endpoint=self.endpoint,
                model=creq.model,
                stream=creq.stream,
                status=200,
                error=None,
                principal=principal,
                decision=decision,
                end_user=creq.user,
            ),
            cached=True,
            batch=self.batch,
        )
        if self.gw.store_bodies:
            response_body = None if entry.chunks is not None else entry.body
            record = msgspec.structs.replace(record, request_body=body, response_body=response_body)
        self.gw.accounting.submit(record)
        if entry.chunks is not None:
            headers.update(_SSE_HEADERS)
            return Reply(200, headers, stream=Replay(entry.chunks), media_type="text/event-stream")
        return Reply(200, headers, entry.body)

    async def _admit(
        self,
        principal: Principal,
        creq: ChatRequest,
        xreq: ChatRequest,
        decision: Decision,
        request_headers: Mapping[str, str],
        headers: dict[str, str],
        rid: str,
    ) -> tuple[Admission | None, Decision, ChatRequest]:
        """Governance: reserve the request's limits and budgets (raises 429 / 402 in the
        dialect); a rule's ``on_budget.downgrade_to`` re-routes a request its budget cannot hold
        to the cheaper alias (marked ``downgraded=`` in the route header). Returns the admission
        and the decision and request to execute (candidates at their limit left out)."""
        gw = self.gw
        gate = gw.gate

        def admit(d: Decision, x: ChatRequest) -> Coroutine[Any, Any, Admission | None]:
            return gate.admit(
                principal,
                [c.deployment for c in d.candidates],
                rid=rid,
                prompt_tokens=d.prompt_tokens,
                exact=d.tokens_exact,
                max_tokens=x.max_tokens,
                request_headers=request_headers,
                headers=headers,
            )

        note = ""
        try:
            admission = await admit(decision, xreq)
        except BudgetExceeded:
            alias = gate.downgrade_for(decision.rule)
            if alias is None or alias == creq.model:
                raise
            cheaper = msgspec.structs.replace(creq, model=alias)
            decision = await gw.router.aroute(
                cheaper,
                headers=request_headers,
                principal=principal.name,
                team=principal.team_name,
                health=gw.health,
            )
            xreq = decision.request or cheaper
            admission = await admit(decision, xreq)
            note = f"; downgraded=budget:{creq.model}->{alias}"
            headers.pop("x-switchpoint-budget", None)
            headers.pop("x-switchpoint-budget-reset", None)
        if admission is not None and admission.deployments is not None:
            keep = {d.name for d in admission.deployments}
            decision = msgspec.structs.replace(
                decision,
                candidates=tuple([c for c in decision.candidates if c.deployment.name in keep]),
                skipped=(*decision.skipped, *admission.skipped),
            )
        if note or (admission is not None and admission.deployments is not None):
            headers["x-switchpoint-route"] = decision.header() + note
        return admission, decision, xreq


class StreamBody:
    """A committed stream's bytes for the client, in the dialect's encoding: one piece per
    upstream read. Iterate it once; whatever ends it (the last byte, a failure, :meth:`aclose`
    when the client leaves, a cancellation at shutdown) books the request's record, once.

    A failure after commit ends the stream with the dialect's error event (the last piece).
    """

    __slots__ = (
        "_admission",
        "_committed",
        "_ctx",
        "_decision",
        "_encoder",
        "_end_user",
        "_model",
        "_open",
        "_principal",
        "_request",
        "_request_body",
        "_route",
        "cancel_reason",
        "status",
    )

    def __init__(
        self,
        route: ChatRoute,
        encoder: StreamEncoder,
        model: str,
        committed: CommittedStream,
        ctx: RequestContext,
        principal: Principal | None,
        decision: Decision | None = None,
        end_user: str | None = None,
        request_body: bytes | None = None,
        admission: Admission | None = None,
        request: ChatRequest | None = None,
    ) -> None:
        self._route = route
        self._request = request
        self._admission = admission
        self._request_body = request_body
        self._encoder = encoder
        self._model = model
        self._committed = committed
        self._ctx = ctx
        self._principal = principal
        self._decision = decision
        self._end_user = end_user
        self._open = True
        #: The record's error when the stream is cancelled or closed early (a background run
        #: cancelled by ``POST /v1/responses/{id}/cancel`` books ``cancelled``).
        self.cancel_reason = "client_disconnected"
        #: How the stream ended (None: not yet).
        self.status: int | None = None

    def __aiter__(self) -> StreamBody:
        return self

    async def __anext__(self) -> bytes:
        encoder = self._encoder
        while self._open:
            try:
                batch = await self._committed.next()
                if batch is None:
                    tail = encoder.finish()
                    state = self._route.state
                    if state is not None and self._request is not None:
                        await state.keep(self._request, encoder.result(), self._principal)
                    self._book(200, None)
                    if tail:
                        return tail
                    break
                encode = encoder.encode
                out = b"".join([encode(events, frame) for events, frame in batch])
            except Exception as exc:
                failure = (
                    exc if isinstance(exc, SwitchpointError) else internal_error(exc, self._ctx.request_id)
                )
                await self._committed.aclose()  # an encoder's failure: the upstream is given up too
                self._book(failure.status, failure.kind)
                return encoder.error(failure)
            except asyncio.CancelledError:
                if self._route.gw.draining:  # cut by shutdown, not by the client leaving
                    self._book(ShuttingDown.status, ShuttingDown.kind)
                else:
                    self._book(499, self.cancel_reason)
                raise
            if out:
                return out
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """The client is gone (or the server stops writing): give the upstream up."""
        if self._open:
            await self._committed.aclose()
            self._book(499, self.cancel_reason)

    def _book(self, status: int, error: str | None) -> None:
        self._open = False
        self.status = status
        if self._admission is not None:
            self._admission.settle(self._ctx.attempts)
        self._route.book(
            self._ctx,
            self._model,
            True,
            status,
            error,
            self._principal,
            self._decision,
            self._end_user,
            self._request_body,  # a stream's response is not kept
        )


def _recorded(answer: StreamBody, cached: Lookup, decision: Decision) -> Recorder:
    """A miss's stream, stored in the response cache once it has ended with a 200."""
    cache = answer._route.gw.caches.response
    assert cache is not None and cached.key is not None
    ctx = answer._ctx

    def done(chunks: list[bytes]) -> None:
        entry = Entry(deployment=ctx.deployment or "", usage=ctx.usage, chunks=chunks)
        cache.store(cached, decision.rule, entry)

    return Recorder(answer, lambda: answer.status == 200, done, cache.settings.max_entry_bytes)
