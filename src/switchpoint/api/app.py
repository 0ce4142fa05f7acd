"""App assembly: routes, the request path, errors rendered once in the client's dialect."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from switchpoint import tokens
from switchpoint.accounting import Accounting
from switchpoint.api.anthropic import AnthropicDialect
from switchpoint.api.dialect import Dialect
from switchpoint.api.openai import OpenAIDialect
from switchpoint.auth import Authenticator
from switchpoint.canonical import ChatRequest
from switchpoint.config import Config
from switchpoint.errors import (
    BadRequest,
    InternalError,
    NotFound,
    PayloadTooLarge,
    SwitchpointError,
)
from switchpoint.executor import AiohttpTransport, CommittedStream, Executor, RequestContext, Transport
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

    def __init__(self, config: Config, transport: Transport | None = None) -> None:
        self.config = config
        self.router = Router(config)
        self.auth = Authenticator(config.master_key)
        self.transport = transport or AiohttpTransport(pool_size=config.pool_size)
        self.health = HealthRegistry()
        self.executor = Executor(self.transport, health=self.health)
        self.accounting = Accounting(config.deployments)
        self.ready = False
        self.started = time.time()

    async def startup(self) -> None:
        self.accounting.start()
        self.ready = True

    async def shutdown(self) -> None:
        self.ready = False
        await self.accounting.stop()
        await self.transport.close()


# Request ids: a random per-process prefix and a counter — unique across replicas and
# workers, and far cheaper than a uuid4 per request.
_ID_PREFIX = "req_" + os.urandom(6).hex()
_ID_COUNTER = itertools.count(1)


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id")
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
    status, body = dialect.render_error(err)
    if err.retry_after is not None:
        headers["retry-after"] = str(max(1, round(err.retry_after)))
    return Response(body, status_code=status, headers=headers, media_type=_JSON)


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
    )


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def _chat_handler(gw: Gateway, dialect: Dialect, endpoint: str) -> Handler:
    async def handle(request: Request) -> Response:
        rid = _request_id(request)
        ctx = RequestContext(rid)
        headers = {"x-request-id": rid}
        model, stream, principal = "", False, None
        try:
            principal = gw.auth.check(request.headers)
            body = await _read_body(request, gw.config.max_body_bytes)
            creq = dialect.decode_chat(body, request.headers)
            model, stream = creq.model, creq.stream
            decision = gw.router.route(creq)
            headers["x-switchpoint-route"] = decision.header()
            if creq.stream:
                committed = await gw.executor.chat_stream(creq, decision, ctx)
                headers["x-switchpoint-deployment"] = committed.deployment.name
                headers.update(_SSE_HEADERS)
                return StreamingResponse(
                    _stream_body(gw, dialect, creq, committed, ctx, endpoint, principal),
                    media_type="text/event-stream",
                    headers=headers,
                )
            result = await gw.executor.chat(creq, decision, ctx)
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
                )
            )
            return Response(out, headers=headers, media_type=_JSON)
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
                )
            )
            return _error_response(dialect, err, headers)

    return handle


async def _stream_body(
    gw: Gateway,
    dialect: Dialect,
    creq: ChatRequest,
    committed: CommittedStream,
    ctx: RequestContext,
    endpoint: str,
    principal: str | None,
) -> AsyncIterator[bytes]:
    encoder = dialect.stream_encoder(creq)
    encoder.commit(committed.family)
    status: int = 499
    error: str | None = "client_disconnected"
    try:
        async for events, frame in committed.items():
            out = encoder.encode(events, frame)
            if out:
                yield out
        tail = encoder.finish()
        status, error = 200, None
        if tail:
            yield tail
    except Exception as exc:
        failure = exc if isinstance(exc, SwitchpointError) else _internal(exc, ctx.request_id)
        status, error = failure.status, failure.kind
        yield encoder.error(failure)
    finally:
        gw.accounting.submit(
            _record(
                ctx,
                dialect=dialect.name,
                endpoint=endpoint,
                model=creq.model,
                stream=True,
                status=status,
                error=error,
                principal=principal,
            )
        )


def _embeddings_handler(gw: Gateway) -> Handler:
    async def handle(request: Request) -> Response:
        rid = _request_id(request)
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
        rid = _request_id(request)
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


def _dialect_of(request: Request) -> Dialect:
    if request.url.path.startswith("/v1/messages") or "anthropic-version" in request.headers:
        return ANTHROPIC
    return OPENAI


def _models_handler(gw: Gateway) -> Handler:
    async def handle(request: Request) -> Response:
        rid = _request_id(request)
        headers = {"x-request-id": rid}
        anthropic = "anthropic-version" in request.headers
        try:
            gw.auth.check(request.headers)
        except SwitchpointError as err:
            return _error_response(ANTHROPIC if anthropic else OPENAI, err, headers)
        names = [*gw.config.aliases, *gw.config.deployments]
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
    return Response(b'{"status":"ok"}', headers={"x-request-id": _request_id(request)}, media_type=_JSON)


def _ready_handler(gw: Gateway) -> Handler:
    async def handle(request: Request) -> Response:
        headers = {"x-request-id": _request_id(request)}
        if not gw.ready:
            return Response(b'{"status":"starting"}', status_code=503, headers=headers, media_type=_JSON)
        body = {
            "status": "ready",
            "simulated": gw.config.simulated,
            "deployments": len(gw.config.deployments),
        }
        return Response(msgspec.json.encode(body), headers=headers, media_type=_JSON)

    return handle


def _stats_handler(gw: Gateway) -> Handler:
    async def handle(request: Request) -> Response:
        headers = {"x-request-id": _request_id(request)}
        try:
            gw.auth.check(request.headers)
        except SwitchpointError as err:
            return _error_response(OPENAI, err, headers)
        await gw.accounting.flush()
        return Response(msgspec.json.encode(gw.accounting.snapshot()), headers=headers, media_type=_JSON)

    return handle


async def _not_found(request: Request, exc: Exception) -> Response:
    err = NotFound(f"No route for {request.method} {request.url.path}")
    return _error_response(_dialect_of(request), err, {"x-request-id": _request_id(request)})


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    err = BadRequest(f"Method {request.method} is not allowed on {request.url.path}")
    _, body = _dialect_of(request).render_error(err)
    headers = {"x-request-id": _request_id(request)}
    allow = (getattr(exc, "headers", None) or {}).get("Allow")
    if allow:
        headers["allow"] = allow
    return Response(body, status_code=405, headers=headers, media_type=_JSON)


def create_app(config: Config, *, transport: Transport | None = None) -> Starlette:
    gw = Gateway(config, transport)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gw.startup()
        try:
            yield
        finally:
            await gw.shutdown()

    routes = [
        Route("/v1/chat/completions", _chat_handler(gw, OPENAI, "chat.completions"), methods=["POST"]),
        Route("/v1/messages", _chat_handler(gw, ANTHROPIC, "messages"), methods=["POST"]),
        Route("/v1/messages/count_tokens", _count_tokens_handler(gw), methods=["POST"]),
        Route("/v1/embeddings", _embeddings_handler(gw), methods=["POST"]),
        Route("/v1/models", _models_handler(gw), methods=["GET"]),
        Route("/health", _health, methods=["GET"]),
        Route("/ready", _ready_handler(gw), methods=["GET"]),
        Route("/admin/stats", _stats_handler(gw), methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: _not_found, 405: _method_not_allowed},
    )
    app.state.gateway = gw
    return app


def app_from_env() -> Starlette:
    """Factory for worker processes: rebuild the config the parent resolved.

    ``SWITCHPOINT_CONFIG`` names a config file; without it the embedded defaults are used,
    with the simulator the parent started at ``SWITCHPOINT_SIM_BASE``.
    """
    import os

    from switchpoint import config as config_mod
    from switchpoint import defaults

    path = os.environ.get("SWITCHPOINT_CONFIG")
    cfg = config_mod.load(path) if path else defaults.embedded(os.environ.get("SWITCHPOINT_SIM_BASE"))
    return create_app(cfg)
