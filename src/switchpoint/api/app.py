"""App assembly: routes, the request path, errors rendered once in the client's dialect."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import os
import re
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from switchpoint import tokens
from switchpoint.accounting import Accounting
from switchpoint.api import route_admin
from switchpoint.api.anthropic import AnthropicDialect
from switchpoint.api.dialect import Dialect, StreamEncoder
from switchpoint.api.openai import OpenAIDialect
from switchpoint.auth import Authenticator
from switchpoint.config import Config
from switchpoint.errors import (
    BadRequest,
    ConfigError,
    InternalError,
    NotFound,
    PayloadTooLarge,
    ShuttingDown,
    SwitchpointError,
)
from switchpoint.executor import (
    CommittedStream,
    Executor,
    H1Transport,
    RequestContext,
    Transport,
    limits_from_headers,
)
from switchpoint.health import HealthRegistry
from switchpoint.records import RequestRecord
from switchpoint.routing import Router

log = logging.getLogger("switchpoint")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_JSON = "application/json"
_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}

OPENAI = OpenAIDialect()
ANTHROPIC = AnthropicDialect()


class Gateway:
    """Everything a request needs, built once from a frozen config."""

    def __init__(
        self, config: Config, transport: Transport | None = None, *, shutdown_timeout_s: float = 30.0
    ) -> None:
        self.config = config
        self.router = Router(config)
        self.auth = Authenticator(config.master_key)
        self.transport = transport or H1Transport(pool_size=config.pool_size)
        self.health = HealthRegistry()
        self.executor = Executor(self.transport, health=self.health, resilience=config.resilience)
        self.shutdown_timeout_s = shutdown_timeout_s
        #: HTTP requests being served (streams until their last byte); see :class:`_Tracker`.
        self.inflight = 0
        self.draining = False
        self._idle = asyncio.Event()
        self.accounting = Accounting(config.deployments)
        self.ready = False
        self.started = time.time()

    async def startup(self) -> None:
        self.accounting.start()
        self.ready = True

    def begin_drain(self) -> None:
        """Shutdown has begun: report not ready (load balancers stop sending new requests)."""
        self.draining = True
        self.ready = False

    def left(self) -> None:
        self.inflight -= 1
        if self.inflight == 0:
            self._idle.set()

    async def drained(self, timeout_s: float) -> bool:
        """Wait until no request is in flight; False when ``timeout_s`` passed first."""
        deadline = time.monotonic() + timeout_s
        while self.inflight > 0:
            self._idle.clear()
            try:
                await asyncio.wait_for(self._idle.wait(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return False
        return True

    async def shutdown(self) -> None:
        self.begin_drain()
        if not await self.drained(self.shutdown_timeout_s):
            log.warning("shutting down with %d request(s) still in flight", self.inflight)
        await self.accounting.stop()
        await self.transport.close()


# Request ids: a random per-process prefix and a counter — unique across replicas and
# workers, and far cheaper than a uuid4 per request.
_ID_PREFIX = "req_" + os.urandom(6).hex()
_ID_COUNTER = itertools.count(1)


def _request_id(headers: Mapping[str, str]) -> str:
    given = headers.get("x-request-id")
    if given and _REQUEST_ID.match(given):
        return given
    return f"{_ID_PREFIX}{next(_ID_COUNTER):010x}"


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Request body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _error_response(dialect: Dialect, err: SwitchpointError, headers: dict[str, str]) -> Response:
    reply = _error_reply(dialect, err, headers)
    return Response(reply.body, status_code=reply.status, headers=reply.headers, media_type=_JSON)


def _internal(exc: BaseException, rid: str) -> InternalError:
    log.error("request %s failed unexpectedly", rid, exc_info=exc)
    return InternalError(f"The gateway hit an internal error (request id {rid})")


def _record(
    ctx: RequestContext,
    *,
    dialect: str,
    endpoint: str,
    model: str,
    stream: bool,
    status: int,
    error: str | None,
    principal: str | None,
    route: dict[str, Any] | None = None,
) -> RequestRecord:
    return RequestRecord(
        request_id=ctx.request_id,
        started_at=ctx.started_at,
        dialect=dialect,
        endpoint=endpoint,
        model=model,
        deployment=ctx.deployment,
        stream=stream,
        status=status,
        error=error,
        latency_ms=ctx.elapsed_ms(),
        ttft_ms=ctx.ttft_ms,
        usage=ctx.usage,
        attempts=tuple(ctx.attempts),
        principal=principal,
        route=route,
    )


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class Reply:
    """What a chat route answers, whichever server writes it: a body, or a stream of bytes."""

    __slots__ = ("abort", "body", "headers", "media_type", "status", "stream")

    def __init__(
        self,
        status: int,
        headers: dict[str, str],
        body: bytes = b"",
        *,
        stream: StreamBody | None = None,
        media_type: str = _JSON,
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


def _error_reply(dialect: Dialect, err: SwitchpointError, headers: dict[str, str]) -> Reply:
    status, body = dialect.render_error(err)
    if err.retry_after is not None:
        headers["retry-after"] = str(max(1, round(err.retry_after)))
    return Reply(status, headers, body)


class ChatRoute:
    """``POST /v1/chat/completions`` or ``POST /v1/messages``: decode, route, execute, encode.

    Called with the request's headers (lower-case names) and its whole body; never raises:
    every failure is answered in the dialect's error shape and booked as a record.
    """

    __slots__ = ("dialect", "endpoint", "gw")

    def __init__(self, gw: Gateway, dialect: Dialect, endpoint: str) -> None:
        self.gw = gw
        self.dialect = dialect
        self.endpoint = endpoint

    def rejected(self, headers: Mapping[str, str], err: SwitchpointError) -> Reply:
        """A request refused before it could be read (its body is over the limit)."""
        return _error_reply(self.dialect, err, {"x-request-id": _request_id(headers)})

    async def __call__(self, request_headers: Mapping[str, str], body: bytes) -> Reply:
        gw, dialect, endpoint = self.gw, self.dialect, self.endpoint
        rid = _request_id(request_headers)
        ctx = RequestContext(rid)
        headers = {"x-request-id": rid}
        model, stream, principal = "", False, None
        route: dict[str, Any] | None = None
        try:
            principal = gw.auth.check(request_headers)
            ctx.limits = limits_from_headers(request_headers)
            creq = dialect.decode_chat(body, request_headers)
            model, stream = creq.model, creq.stream
            router = gw.router
            decision = await router.aroute(
                creq, headers=request_headers, principal=principal, health=gw.health
            )
            headers["x-switchpoint-route"] = decision.header()
            route = decision.trace()
            xreq = decision.request or creq  # presets applied, context trimmed
            if creq.stream:
                committed = await gw.executor.chat_stream(xreq, decision, ctx)
                router.pin(decision, committed.deployment.name)
                headers["x-switchpoint-deployment"] = committed.deployment.name
                headers.update(_SSE_HEADERS)
                encoder = dialect.stream_encoder(creq)
                encoder.commit(committed.family)
                return Reply(
                    200,
                    headers,
                    stream=StreamBody(
                        gw, dialect, encoder, creq.model, committed, ctx, endpoint, principal, route
                    ),
                    media_type="text/event-stream",
                    abort=encoder.error,
                )
            result = await gw.executor.chat(xreq, decision, ctx)
            if ctx.deployment:
                router.pin(decision, ctx.deployment)
            headers["x-switchpoint-deployment"] = ctx.deployment or ""
            out = dialect.encode_chat(result, creq)
            gw.accounting.submit(
                _record(
                    ctx,
                    dialect=dialect.name,
                    endpoint=endpoint,
                    model=model,
                    stream=False,
                    status=200,
                    error=None,
                    principal=principal,
                    route=route,
                )
            )
            return Reply(200, headers, out)
        except Exception as exc:
            err = exc if isinstance(exc, SwitchpointError) else _internal(exc, rid)
            if ctx.deployment:
                headers["x-switchpoint-deployment"] = ctx.deployment
            gw.accounting.submit(
                _record(
                    ctx,
                    dialect=dialect.name,
                    endpoint=endpoint,
                    model=model,
                    stream=stream,
                    status=err.status,
                    error=err.kind,
                    principal=principal,
                    route=route,
                )
            )
            return _error_reply(dialect, err, headers)


def _asgi_route(route: ChatRoute) -> Handler:
    """A chat route behind Starlette (any ASGI server): read the body, then answer."""

    async def handle(request: Request) -> Response:
        try:
            body = await _read_body(request, route.gw.config.max_body_bytes)
        except PayloadTooLarge as err:
            reply = route.rejected(request.headers, err)
        else:
            reply = await route(request.headers, body)
        if reply.stream is not None:
            return StreamingResponse(
                _drained(reply.stream), reply.status, reply.headers, media_type=reply.media_type
            )
        return Response(reply.body, reply.status, reply.headers, media_type=reply.media_type)

    return handle


class StreamBody:
    """A committed stream's bytes for the client, in the dialect's encoding: one piece per
    upstream read. Iterate it once; whatever ends it (the last byte, a failure, :meth:`aclose`
    when the client leaves, a cancellation at shutdown) books the request's record, once.

    A failure after commit ends the stream with the dialect's error event (the last piece).
    """

    __slots__ = (
        "_committed",
        "_ctx",
        "_dialect",
        "_encoder",
        "_endpoint",
        "_gw",
        "_model",
        "_open",
        "_principal",
        "_route",
    )

    def __init__(
        self,
        gw: Gateway,
        dialect: Dialect,
        encoder: StreamEncoder,
        model: str,
        committed: CommittedStream,
        ctx: RequestContext,
        endpoint: str,
        principal: str | None,
        route: dict[str, Any] | None = None,
    ) -> None:
        self._gw = gw
        self._dialect = dialect
        self._encoder = encoder
        self._model = model
        self._committed = committed
        self._ctx = ctx
        self._endpoint = endpoint
        self._principal = principal
        self._route = route
        self._open = True

    def __aiter__(self) -> StreamBody:
        return self

    async def __anext__(self) -> bytes:
        encoder = self._encoder
        while self._open:
            try:
                batch = await self._committed.next()
                if batch is None:
                    tail = encoder.finish()
                    self._book(200, None)
                    if tail:
                        return tail
                    break
                encode = encoder.encode
                out = b"".join([encode(events, frame) for events, frame in batch])
            except Exception as exc:
                failure = exc if isinstance(exc, SwitchpointError) else _internal(exc, self._ctx.request_id)
                await self._committed.aclose()  # an encoder's failure: the upstream is given up too
                self._book(failure.status, failure.kind)
                return encoder.error(failure)
            except asyncio.CancelledError:
                if self._gw.draining:  # cut by shutdown, not by the client leaving
                    self._book(ShuttingDown.status, ShuttingDown.kind)
                else:
                    self._book(499, "client_disconnected")
                raise
            if out:
                return out
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """The client is gone (or the server stops writing): give the upstream up."""
        if self._open:
            await self._committed.aclose()
            self._book(499, "client_disconnected")

    def _book(self, status: int, error: str | None) -> None:
        self._open = False
        self._gw.accounting.submit(
            _record(
                self._ctx,
                dialect=self._dialect.name,
                endpoint=self._endpoint,
                model=self._model,
                stream=True,
                status=status,
                error=error,
                principal=self._principal,
                route=self._route,
            )
        )


async def _drained(body: StreamBody) -> AsyncIterator[bytes]:
    """``body`` for a server that does not close what it iterates (ASGI)."""
    try:
        async for piece in body:
            yield piece
    finally:
        await body.aclose()


def _embeddings_handler(gw: Gateway) -> Handler:
    async def handle(request: Request) -> Response:
        rid = _request_id(request.headers)
        ctx = RequestContext(rid)
        headers = {"x-request-id": rid}
        model, principal = "", None
        try:
            principal = gw.auth.check(request.headers)
            body = await _read_body(request, gw.config.max_body_bytes)
            ereq = OPENAI.decode_embeddings(body, request.headers)
            model = ereq.model
            deployments = gw.router.deployments_for(ereq.model, "embedding")
            result = await gw.executor.embeddings(ereq, deployments, ctx)
            headers["x-switchpoint-deployment"] = ctx.deployment or ""
            out = OPENAI.encode_embeddings(result, ereq)
            gw.accounting.submit(
                _record(
                    ctx,
                    dialect="openai",
                    endpoint="embeddings",
                    model=model,
                    stream=False,
                    status=200,
                    error=None,
                    principal=principal,
                )
            )
            return Response(out, headers=headers, media_type=_JSON)
        except Exception as exc:
            err = exc if isinstance(exc, SwitchpointError) else _internal(exc, rid)
            gw.accounting.submit(
                _record(
                    ctx,
                    dialect="openai",
                    endpoint="embeddings",
                    model=model,
                    stream=False,
                    status=err.status,
                    error=err.kind,
                    principal=principal,
                )
            )
            return _error_response(OPENAI, err, headers)

    return handle


def _count_tokens_handler(gw: Gateway) -> Handler:
    async def handle(request: Request) -> Response:
        rid = _request_id(request.headers)
        headers = {"x-request-id": rid}
        try:
            gw.auth.check(request.headers)
            body = await _read_body(request, gw.config.max_body_bytes)
            creq = ANTHROPIC.decode_count_tokens(body, request.headers)
            deps = gw.router.deployments_for(creq.model, "chat")
            count = tokens.estimate_request_tokens(creq, deps[0].family)
            headers["x-switchpoint-estimate"] = "true"
            return Response(msgspec.json.encode({"input_tokens": count}), headers=headers, media_type=_JSON)
        except Exception as exc:
            err = exc if isinstance(exc, SwitchpointError) else _internal(exc, rid)
            return _error_response(ANTHROPIC, err, headers)

    return handle


def _dialect_for(path: str, headers: Mapping[str, str]) -> Dialect:
    """The dialect to answer a request in when its route does not say."""
    if path.startswith("/v1/messages") or "anthropic-version" in headers:
        return ANTHROPIC
    return OPENAI


def _dialect_of(request: Request) -> Dialect:
    return _dialect_for(request.url.path, request.headers)


def _models_handler(gw: Gateway) -> Handler:
    async def handle(request: Request) -> Response:
        rid = _request_id(request.headers)
        headers = {"x-request-id": rid}
        anthropic = "anthropic-version" in request.headers
        try:
            gw.auth.check(request.headers)
        except SwitchpointError as err:
            return _error_response(ANTHROPIC if anthropic else OPENAI, err, headers)
        names = [
            *(["auto"] if gw.config.routing is not None else []),
            *gw.config.aliases,
            *gw.config.deployments,
        ]
        created = int(gw.started)
        if anthropic:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))
            data: list[dict[str, Any]] = [
                {"type": "model", "id": n, "display_name": n, "created_at": stamp} for n in names
            ]
            doc: dict[str, Any] = {
                "data": data,
                "has_more": False,
                "first_id": names[0] if names else None,
                "last_id": names[-1] if names else None,
            }
        else:
            doc = {
                "object": "list",
                "data": [
                    {"id": n, "object": "model", "created": created, "owned_by": "switchpoint"} for n in names
                ],
            }
        return Response(msgspec.json.encode(doc), headers=headers, media_type=_JSON)

    return handle


async def _health(request: Request) -> Response:
    return Response(
        b'{"status":"ok"}', headers={"x-request-id": _request_id(request.headers)}, media_type=_JSON
    )


def _ready_handler(gw: Gateway) -> Handler:
    async def handle(request: Request) -> Response:
        headers = {"x-request-id": _request_id(request.headers)}
        if not gw.ready:
            state = b'{"status":"draining"}' if gw.draining else b'{"status":"starting"}'
            return Response(state, status_code=503, headers=headers, media_type=_JSON)
        body = {
            "status": "ready",
            "simulated": gw.config.simulated,
            "deployments": len(gw.config.deployments),
        }
        return Response(msgspec.json.encode(body), headers=headers, media_type=_JSON)

    return handle


def _admin_json(gw: Gateway, produce: Callable[[], Coroutine[Any, Any, Any]]) -> Handler:
    """An admin view: master key required, JSON out."""

    async def handle(request: Request) -> Response:
        headers = {"x-request-id": _request_id(request.headers)}
        try:
            gw.auth.check(request.headers)
        except SwitchpointError as err:
            return _error_response(OPENAI, err, headers)
        return Response(msgspec.json.encode(await produce()), headers=headers, media_type=_JSON)

    return handle


def _stats_handler(gw: Gateway) -> Handler:
    async def stats() -> Any:
        await gw.accounting.flush()
        return gw.accounting.snapshot()

    return _admin_json(gw, stats)


def _breakers_handler(gw: Gateway) -> Handler:
    async def breakers() -> Any:
        return {"deployments": gw.health.breakers(), "counters": gw.executor.stats.as_dict()}

    return _admin_json(gw, breakers)


def _metrics_handler(gw: Gateway) -> Handler:
    async def handle(request: Request) -> Response:
        lines = [*gw.health.prometheus(), *gw.executor.stats.prometheus()]
        lines += [
            "# HELP switchpoint_requests_inflight HTTP requests being served.",
            "# TYPE switchpoint_requests_inflight gauge",
            f"switchpoint_requests_inflight {gw.inflight}",
        ]
        return Response("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4; charset=utf-8")

    return handle


class _Tracker:
    """Counts HTTP requests in flight (a stream until its last byte), for a graceful drain."""

    def __init__(self, app: Any, gw: Gateway) -> None:
        self.app = app
        self.gw = gw

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        gw = self.gw
        gw.inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            gw.left()


def _drain_on_sigterm(gw: Gateway) -> None:
    """Flip readiness as soon as SIGTERM arrives, then let the server's own handler run."""
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)
    if not callable(previous):
        return

    def handler(signum: int, frame: Any) -> None:
        gw.begin_drain()
        previous(signum, frame)

    signal.signal(signal.SIGTERM, handler)


def _route_handler(gw: Gateway) -> Handler:
    """``POST /v1/route``: the routing decision for a chat body, without calling a model."""

    async def handle(request: Request) -> Response:
        headers = {"x-request-id": _request_id(request.headers)}
        dialect: Dialect = OPENAI
        try:
            principal = gw.auth.check(request.headers)
            body = await _read_body(request, gw.config.max_body_bytes)
            dialect = route_admin.dialect_for(body, request.headers, request.query_params.get("dialect"))
            out = route_admin.dry_run(gw, body, request.headers, principal, dialect)
            return Response(out, headers=headers, media_type=_JSON)
        except Exception as exc:
            err = exc if isinstance(exc, SwitchpointError) else _internal(exc, headers["x-request-id"])
            return _error_response(dialect, err, headers)

    return handle


def _reload_handler(gw: Gateway, reloader: route_admin.Reloader) -> Handler:
    """``POST /admin/reload`` (master key): re-read the config file; a bad one is rejected."""

    async def handle(request: Request) -> Response:
        headers = {"x-request-id": _request_id(request.headers)}
        try:
            reloader.check_admin(gw.auth.check(request.headers))
            out = await reloader.reload()
            return Response(msgspec.json.encode(out), headers=headers, media_type=_JSON)
        except ConfigError as exc:
            return Response(route_admin.rejected(exc), status_code=400, headers=headers, media_type=_JSON)
        except Exception as exc:
            err = exc if isinstance(exc, SwitchpointError) else _internal(exc, headers["x-request-id"])
            return _error_response(OPENAI, err, headers)

    return handle


async def _not_found(request: Request, exc: Exception) -> Response:
    err = NotFound(f"No route for {request.method} {request.url.path}")
    return _error_response(_dialect_of(request), err, {"x-request-id": _request_id(request.headers)})


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    err = BadRequest(f"Method {request.method} is not allowed on {request.url.path}")
    _, body = _dialect_of(request).render_error(err)
    headers = {"x-request-id": _request_id(request.headers)}
    allow = (getattr(exc, "headers", None) or {}).get("Allow")
    if allow:
        headers["allow"] = allow
    return Response(body, status_code=405, headers=headers, media_type=_JSON)


def create_app(
    config: Config, *, transport: Transport | None = None, shutdown_timeout_s: float = 30.0
) -> GatewayApp:
    """The gateway app. ``shutdown_timeout_s``: how long shutdown waits for requests in flight."""
    gw = Gateway(config, transport, shutdown_timeout_s=shutdown_timeout_s)
    reloader = route_admin.Reloader(gw)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gw.startup()
        _drain_on_sigterm(gw)
        reloader.install_sighup()
        try:
            yield
        finally:
            await reloader.close()
            await gw.shutdown()

    chat = {
        "/v1/chat/completions": ChatRoute(gw, OPENAI, "chat.completions"),
        "/v1/messages": ChatRoute(gw, ANTHROPIC, "messages"),
    }
    asgi_chat = {path: _asgi_route(route) for path, route in chat.items()}
    routes = [
        *(Route(path, handler, methods=["POST"]) for path, handler in asgi_chat.items()),
        Route("/v1/messages/count_tokens", _count_tokens_handler(gw), methods=["POST"]),
        Route("/v1/embeddings", _embeddings_handler(gw), methods=["POST"]),
        Route("/v1/models", _models_handler(gw), methods=["GET"]),
        Route("/health", _health, methods=["GET"]),
        Route("/ready", _ready_handler(gw), methods=["GET"]),
        Route("/v1/route", _route_handler(gw), methods=["POST"]),
        Route("/admin/reload", _reload_handler(gw, reloader), methods=["POST"]),
        Route("/admin/stats", _stats_handler(gw), methods=["GET"]),
        Route("/admin/breakers", _breakers_handler(gw), methods=["GET"]),
        Route("/metrics", _metrics_handler(gw), methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(_Tracker, gw=gw)],
        exception_handlers={404: _not_found, 405: _method_not_allowed},
    )
    app.state.gateway = gw
    return GatewayApp(app, gw, chat, asgi_chat)


class GatewayApp:
    """The ASGI app: the two chat routes go straight to their handlers, the rest to Starlette.

    The chat routes answer every failure themselves, so Starlette's router, middleware stack
    and exception wrappers add nothing on the hottest path but cost. ``chat`` is also what
    :mod:`switchpoint.api.server` calls directly, without ASGI, when it serves the app.
    """

    __slots__ = ("_app", "_asgi_chat", "chat", "gateway", "router", "state")

    def __init__(
        self, app: Starlette, gw: Gateway, chat: dict[str, ChatRoute], asgi_chat: dict[str, Handler]
    ) -> None:
        self._app = app
        self.gateway = gw
        self.chat = chat
        self._asgi_chat = asgi_chat
        self.state = app.state
        self.router = app.router  # routes and the lifespan, as on the Starlette app

    def too_large(self, path: str, headers: Mapping[str, str], err: SwitchpointError) -> Reply:
        """The answer to a body over the limit on any route, in that route's dialect."""
        return _error_reply(_dialect_for(path, headers), err, {"x-request-id": _request_id(headers)})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            handler = self._asgi_chat.get(scope["path"])
            if handler is not None:
                gw = self.gateway
                gw.inflight += 1
                try:
                    response = await handler(Request(scope, receive, send))
                    await response(scope, receive, send)
                finally:
                    gw.left()
                return
        await self._app(scope, receive, send)


def app_from_env() -> GatewayApp:
    """Factory for worker processes: rebuild the config the parent resolved.

    ``SWITCHPOINT_CONFIG`` names a config file; without it the embedded defaults are used,
    with the simulator the parent started at ``SWITCHPOINT_SIM_BASE``.
    """
    import os

    from switchpoint import config as config_mod
    from switchpoint import defaults

    path = os.environ.get("SWITCHPOINT_CONFIG")
    cfg = config_mod.load(path) if path else defaults.embedded(os.environ.get("SWITCHPOINT_SIM_BASE"))
    app = create_app(cfg, shutdown_timeout_s=float(os.environ.get("SWITCHPOINT_SHUTDOWN_TIMEOUT", "30")))
    freeze_heap()
    return app


def freeze_heap() -> None:
    """Leave what the process holds from start-up (modules, config, catalogs) out of every
    later garbage collection: the full collections a busy server runs every few hundred
    requests then walk only what requests made. For a serving process, once, before serving."""
    gc.collect()
    gc.freeze()
