"""App assembly: the gateway's state, routes, the ASGI app; errors rendered once in the client's dialect."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
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
from starlette.routing import Mount, Route

from switchpoint import console, tokens
from switchpoint.accounting import Accounting
from switchpoint.accounting.ledger import ledger_for
from switchpoint.accounting.metrics import (
    METRICS_CONTENT_TYPE,
    gateway_metrics,
    labels_of,
    ledger_lines,
    ledger_reader,
)
from switchpoint.accounting.traces import trace_sink
from switchpoint.api import (
    batches,
    chat_store,
    files,
    keys_admin,
    ledger_admin,
    media,
    message_batches,
    route_admin,
)
from switchpoint.api.anthropic import AnthropicDialect
from switchpoint.api.chat import (
    JSON,
    ChatRoute,
    Reply,
    ReplyStream,
    error_reply,
    internal_error,
    make_record,
    request_id,
)
from switchpoint.api.connections import connection_stats
from switchpoint.api.dialect import Dialect
from switchpoint.api.openai import OpenAIDialect
from switchpoint.api.paging import anthropic_limit
from switchpoint.api.responses import ResponsesDialect
from switchpoint.api.responses_state import ResponseState
from switchpoint.api.responses_state import routes as response_routes
from switchpoint.api.shadow import Shadower
from switchpoint.cache import Caches
from switchpoint.canonical import ChatRequest
from switchpoint.config import Config
from switchpoint.errors import (
    BadRequest,
    ConfigError,
    NotFound,
    PayloadTooLarge,
    SwitchpointError,
)
from switchpoint.executor import (
    CLOUD_CREDENTIALS,
    Executor,
    RequestContext,
    Transport,
    transport_for,
)
from switchpoint.governance.access import Access, check_alias
from switchpoint.governance.gate import gate_for
from switchpoint.governance.keys import key_ring
from switchpoint.governance.limits import text_tokens
from switchpoint.health import HealthRegistry
from switchpoint.routing import Router
from switchpoint.routing.embedder import default_embedder

log = logging.getLogger("switchpoint")


OPENAI = OpenAIDialect()
ANTHROPIC = AnthropicDialect()
RESPONSES = ResponsesDialect()


class Gateway:
    """Everything a request needs, built once from a frozen config."""

    def __init__(
        self, config: Config, transport: Transport | None = None, *, shutdown_timeout_s: float = 30.0
    ) -> None:
        self.config = config
        self.router = Router(config)
        #: Who is calling: the master key, virtual keys (kept in the ledger's database), or open.
        self.auth = Access(config.master_key, key_ring(config))
        #: Limits, budgets and the priority queue over the shared state (memory or Redis).
        self.gate = gate_for(config, self.auth.ring.engine if self.auth.ring is not None else None)
        self.transport = transport or transport_for(config)
        self.health = HealthRegistry()
        self.executor = Executor(self.transport, health=self.health, resilience=config.resilience)
        #: Prompt-cache planning and the response caches (``cache:``, docs/caching.md).
        self.caches = Caches(config, embedder=default_embedder)
        self.shutdown_timeout_s = shutdown_timeout_s
        #: HTTP requests being served (streams until their last byte); see :class:`_Tracker`.
        self.inflight = 0
        self.draining = False
        self._idle = asyncio.Event()
        #: The durable ledger (None when ``storage.enabled`` is false); migrated at start-up.
        self.ledger = ledger_for(config)
        self.store_bodies = self.ledger is not None and config.storage.store_bodies
        self.accounting = Accounting(config.deployments, sinks=[self.ledger] if self.ledger else [])
        #: Stored chat completions (``store: true``), written on threads of their own.
        self.chats = chat_store.ChatStore(self)
        #: /metrics: usage from the ledger (every worker) or from an in-process sink.
        self.metrics = gateway_metrics(
            config,
            self.accounting.sinks,
            ledger=None if self.ledger is None else ledger_reader(self.ledger.engine, self.ledger.instance),
        )
        #: OpenTelemetry spans from the records (``telemetry.otlp_endpoint``), off the loop.
        self.traces = trace_sink(config.telemetry, config.deployments) if config.telemetry else None
        if self.traces is not None:
            self.accounting.sinks.append(self.traces)
        self.ready = False
        self.started = time.time()

    async def startup(self) -> None:
        if self.ledger is not None:
            self.ledger.start()  # migrates the database (one query when it is at head)
        if self.auth.ring is not None:
            await self.auth.ring.start()
        self.accounting.start()
        # Bedrock / Vertex credentials: fetched once now, then refreshed in the background.
        await CLOUD_CREDENTIALS.start(self.config.providers.values())
        self.ready = True

    def relabel(self, config: Config) -> None:
        """A reloaded config's aliases and deployments, for metric labels and span attributes."""
        self.metrics.use_labels(labels_of(config))
        if self.traces is not None:
            self.traces.use_deployments(config.deployments)

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
        await self.chats.close()
        await self.accounting.stop()
        await self.caches.close()
        await self.gate.close()
        if self.auth.ring is not None:
            await self.auth.ring.stop()
        await CLOUD_CREDENTIALS.close()
        await self.transport.close()


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
    reply = error_reply(dialect, err, headers)
    return Response(reply.body, status_code=reply.status, headers=reply.headers, media_type=JSON)


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


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


async def _drained(body: ReplyStream) -> AsyncIterator[bytes]:
    """``body`` for a server that does not close what it iterates (ASGI)."""
    try:
        async for piece in body:
            yield piece
    finally:
        await body.aclose()


def _embeddings_handler(gw: Gateway) -> Handler:
    async def handle(request: Request) -> Response:
        rid = request_id(request.headers)
        ctx = RequestContext(rid)
        headers = {"x-request-id": rid}
        model, principal, end_user = "", None, None
        try:
            principal = await gw.auth.principal(request.headers)
            body = await _read_body(request, gw.config.max_body_bytes)
            ereq = OPENAI.decode_embeddings(body, request.headers)
            model, end_user = ereq.model, ereq.user
            check_alias(principal, model)
            deployments = gw.router.deployments_for(ereq.model, "embedding")
            admission = await gw.gate.admit(  # limits and budgets, as for chat (no output tokens)
                principal,
                deployments,
                rid=rid,
                prompt_tokens=text_tokens(ereq.inputs),
                exact=False,
                max_tokens=0,
                request_headers=request.headers,
                headers=headers,
            )
            if admission is not None and admission.deployments is not None:
                deployments = admission.deployments
            try:
                result = await gw.executor.embeddings(ereq, deployments, ctx)
            finally:  # answered, failed or cancelled: settled once
                if admission is not None:
                    admission.settle(ctx.attempts)
            headers["x-switchpoint-deployment"] = ctx.deployment or ""
            out = OPENAI.encode_embeddings(result, ereq)
            gw.accounting.submit(
                make_record(
                    ctx,
                    dialect="openai",
                    endpoint="embeddings",
                    model=model,
                    stream=False,
                    status=200,
                    error=None,
                    principal=principal,
                    end_user=end_user,
                )
            )
            return Response(out, headers=headers, media_type=JSON)
        except Exception as exc:
            err = exc if isinstance(exc, SwitchpointError) else internal_error(exc, rid)
            gw.accounting.submit(
                make_record(
                    ctx,
                    dialect="openai",
                    endpoint="embeddings",
                    model=model,
                    stream=False,
                    status=err.status,
                    error=err.kind,
                    principal=principal,
                    end_user=end_user,
                )
            )
            return _error_response(OPENAI, err, headers)

    return handle


def _count_handler(
    gw: Gateway,
    dialect: Dialect,
    decode: Callable[[bytes, Mapping[str, str]], ChatRequest],
    answer: Callable[[int], dict[str, Any]],
    conversations: ResponseState | None = None,
) -> Handler:
    """A token count: ``POST /v1/messages/count_tokens`` and ``POST /v1/responses/input_tokens``.

    The body is decoded as its chat route decodes it (``decode``: the dialect's reader behind
    the decode boundary), its conversation restored (``conversations``: ``previous_response_id``),
    the model checked against the key as for chat; the count is
    :func:`tokens.estimate_request_tokens` for the family of the model's first deployment (no
    model: the dialect's own family). An estimate, so the header says so; nothing is booked."""

    async def handle(request: Request) -> Response:
        rid = request_id(request.headers)
        headers = {"x-request-id": rid}
        try:
            principal = await gw.auth.principal(request.headers)
            body = await _read_body(request, gw.config.max_body_bytes)
            creq = decode(body, request.headers)
            if conversations is not None:
                creq = await conversations.restore(creq, principal)
            family = dialect.name
            if creq.model:
                check_alias(principal, creq.model)
                family = gw.router.deployments_for(creq.model, "chat")[0].family
            count = tokens.estimate_request_tokens(creq, family)
            headers["x-switchpoint-estimate"] = "true"
            return Response(msgspec.json.encode(answer(count)), headers=headers, media_type=JSON)
        except Exception as exc:
            err = exc if isinstance(exc, SwitchpointError) else internal_error(exc, rid)
            return _error_response(dialect, err, headers)

    return handle


def _dialect_for(path: str, headers: Mapping[str, str]) -> Dialect:
    """The dialect to answer a request in when its route does not say."""
    if path.startswith("/v1/messages") or "anthropic-version" in headers:
        return ANTHROPIC
    return OPENAI


def _dialect_of(request: Request) -> Dialect:
    return _dialect_for(request.url.path, request.headers)


def _model_names(gw: Gateway) -> list[str]:
    """The names a client may send as ``model``: ``auto`` (with a policy), aliases, deployments."""
    return [
        *(["auto"] if gw.config.routing is not None else []),
        *gw.config.aliases,
        *gw.config.deployments,
    ]


def _model_entry(gw: Gateway, name: str, created: int, anthropic: bool) -> dict[str, Any]:
    """One model as the dialect lists it (Anthropic's ``ModelInfo``, OpenAI's ``Model``);
    a deployment's window and output limit are known, an alias's or ``auto``'s are not."""
    if anthropic:
        dep = gw.config.deployments.get(name)
        return {
            "type": "model",
            "id": name,
            "display_name": name,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created)),
            "capabilities": None,
            "max_input_tokens": dep.context_window if dep is not None else None,
            "max_tokens": dep.max_output_tokens if dep is not None else None,
            # Not in the published schema yet, required by the anthropic SDK's ModelInfo.
            "lifecycle": "active",
            "deprecated_at": None,
            "retires_at": None,
            "line": None,
        }
    return {"id": name, "object": "model", "created": created, "owned_by": "switchpoint"}


def _models_page(names: list[str], params: Mapping[str, str]) -> tuple[list[str], bool]:
    """Anthropic's page of the model list: ``limit`` (1-1000, default 20) names after ``after_id``
    / before ``before_id`` (an id not in the list is no bound), and whether there are more."""
    limit = anthropic_limit(params)
    after, before = params.get("after_id"), params.get("before_id")
    start = names.index(after) + 1 if after in names else 0
    end = names.index(before) if before in names else len(names)
    window = names[start:end]
    page = window[-limit:] if before is not None and after is None else window[:limit]
    return page, len(window) > len(page)


def _models_handler(gw: Gateway) -> Handler:
    """``GET /v1/models`` and ``GET /v1/models/{id}``, in Anthropic's shape when the client
    sends ``anthropic-version``; an unknown id is a 404 in the same dialect."""

    async def handle(request: Request) -> Response:
        rid = request_id(request.headers)
        headers = {"x-request-id": rid}
        anthropic = "anthropic-version" in request.headers
        dialect = ANTHROPIC if anthropic else OPENAI
        try:
            await gw.auth.principal(request.headers)
        except SwitchpointError as err:
            return _error_response(dialect, err, headers)
        names = _model_names(gw)
        created = int(gw.started)
        one = request.path_params.get("model_id")
        if one is not None:
            if one not in names:
                missing = NotFound(f"The model '{one}' does not exist", param="model", code="model_not_found")
                return _error_response(dialect, missing, headers)
            entry = _model_entry(gw, one, created, anthropic)
            return Response(msgspec.json.encode(entry), headers=headers, media_type=JSON)
        doc: dict[str, Any]
        if anthropic:
            try:
                page, more = _models_page(names, request.query_params)
            except SwitchpointError as err:
                return _error_response(dialect, err, headers)
            doc = {
                "data": [_model_entry(gw, n, created, anthropic) for n in page],
                "has_more": more,
                "first_id": page[0] if page else None,
                "last_id": page[-1] if page else None,
            }
        else:
            doc = {"object": "list", "data": [_model_entry(gw, n, created, anthropic) for n in names]}
        return Response(msgspec.json.encode(doc), headers=headers, media_type=JSON)

    return handle


async def _health(request: Request) -> Response:
    return Response(
        b'{"status":"ok"}', headers={"x-request-id": request_id(request.headers)}, media_type=JSON
    )


def _ready_handler(gw: Gateway) -> Handler:
    async def handle(request: Request) -> Response:
        headers = {"x-request-id": request_id(request.headers)}
        if not gw.ready:
            state = b'{"status":"draining"}' if gw.draining else b'{"status":"starting"}'
            return Response(state, status_code=503, headers=headers, media_type=JSON)
        body = {
            "status": "ready",
            "simulated": gw.config.simulated,
            "deployments": len(gw.config.deployments),
        }
        return Response(msgspec.json.encode(body), headers=headers, media_type=JSON)

    return handle


def _admin_json(gw: Gateway, produce: Callable[[], Coroutine[Any, Any, Any]]) -> Handler:
    """An admin view: the master key or an admin-role key, JSON out."""

    async def handle(request: Request) -> Response:
        headers = {"x-request-id": request_id(request.headers)}
        try:
            await gw.auth.admin(request.headers)
        except SwitchpointError as err:
            return _error_response(OPENAI, err, headers)
        return Response(msgspec.json.encode(await produce()), headers=headers, media_type=JSON)

    return handle


def _stats_handler(gw: Gateway) -> Handler:
    async def stats() -> Any:
        await gw.accounting.flush()
        snapshot = gw.accounting.snapshot()
        if gw.ledger is not None:
            snapshot["ledger"] = gw.ledger.stats()
        if gw.auth.ring is not None:
            snapshot["keys"] = gw.auth.ring.stats()
        snapshot["governance"] = gw.gate.stats()
        snapshot["cache"] = gw.caches.stats()
        snapshot["chat_store"] = gw.chats.stats()
        return snapshot

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
        lines += connection_stats(gw).prometheus()  # the server's connection limits
        lines += gw.caches.prometheus()
        lines += gw.gate.prometheus()  # budget alerts, refusals, the queue
        lines += gw.chats.prometheus()
        if gw.traces is not None:
            lines += gw.traces.prometheus()
        if gw.ledger is not None:
            lines += ledger_lines(gw.ledger.stats())
        body = await gw.metrics.render(lines, dropped=gw.accounting.dropped)
        return Response(body, media_type=METRICS_CONTENT_TYPE)

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
        headers = {"x-request-id": request_id(request.headers)}
        dialect: Dialect = OPENAI
        try:
            principal = await gw.auth.principal(request.headers)
            body = await _read_body(request, gw.config.max_body_bytes)
            dialect = route_admin.dialect_for(body, request.headers, request.query_params.get("dialect"))
            out = route_admin.dry_run(gw, body, request.headers, principal, dialect)
            return Response(out, headers=headers, media_type=JSON)
        except Exception as exc:
            err = exc if isinstance(exc, SwitchpointError) else internal_error(exc, headers["x-request-id"])
            return _error_response(dialect, err, headers)

    return handle


def _reload_handler(gw: Gateway, reloader: route_admin.Reloader) -> Handler:
    """``POST /admin/reload`` (master key): re-read the config file; a bad one is rejected, and
    so is one failing the eval gate the body names (``{"gate": "SUITE.yaml"}``)."""

    async def handle(request: Request) -> Response:
        headers = {"x-request-id": request_id(request.headers)}
        try:
            await gw.auth.admin(request.headers, "Reloading the config")
            out = await reloader.reload(_reload_gate_of(await request.body()))
            return Response(msgspec.json.encode(out), headers=headers, media_type=JSON)
        except ConfigError as exc:
            return Response(route_admin.rejected(exc), status_code=400, headers=headers, media_type=JSON)
        except route_admin.GateFailed as exc:
            return Response(route_admin.gate_failed(exc), status_code=409, headers=headers, media_type=JSON)
        except Exception as exc:
            err = exc if isinstance(exc, SwitchpointError) else internal_error(exc, headers["x-request-id"])
            return _error_response(OPENAI, err, headers)

    return handle


def _reload_gate_of(body: bytes) -> str | None:
    """The eval suite a reload body names (``{"gate": "SUITE.yaml"}``); no body: no gate."""
    if not body.strip():
        return None
    try:
        doc = msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise BadRequest("The reload body must be a JSON object") from None
    gate = doc.get("gate") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or not (gate is None or isinstance(gate, str)):
        raise BadRequest("The reload body must be a JSON object; `gate` names a suite file", param="gate")
    return gate


async def _not_found(request: Request, exc: Exception) -> Response:
    err = NotFound(f"No route for {request.method} {request.url.path}")
    return _error_response(_dialect_of(request), err, {"x-request-id": request_id(request.headers)})


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    err = BadRequest(f"Method {request.method} is not allowed on {request.url.path}")
    _, body = _dialect_of(request).render_error(err)
    headers = {"x-request-id": request_id(request.headers)}
    allow = (getattr(exc, "headers", None) or {}).get("Allow")
    if allow:
        headers["allow"] = allow
    return Response(body, status_code=405, headers=headers, media_type=JSON)


def _console_deps(gw: Gateway, reads: ledger_admin.LedgerReads) -> console.ConsoleDeps:
    """What the console at ``/ui`` reads: the live config, breakers, keys and the ledger."""
    return console.ConsoleDeps(
        config=lambda: gw.config,
        engine=reads.engine,
        run=reads.run,
        health=gw.health,
        principal=lambda headers: gw.auth.principal(headers),
        ring=lambda: gw.auth.ring,
        alerter=lambda: gw.gate.alerter,
    )


def create_app(
    config: Config,
    *,
    transport: Transport | None = None,
    shutdown_timeout_s: float = 30.0,
    reload_gate: route_admin.ReloadGate | None = None,
) -> GatewayApp:
    """The gateway app. ``shutdown_timeout_s``: how long shutdown waits for requests in flight;
    ``reload_gate``: what runs an eval gate asked for by ``POST /admin/reload``."""
    gw = Gateway(config, transport, shutdown_timeout_s=shutdown_timeout_s)
    reloader = route_admin.Reloader(gw, reload_gate)
    reads = ledger_admin.LedgerReads(gw)
    responses = ResponseState(gw)  # previous_response_id and stored responses (Responses API)
    batch_service = batches.BatchService(gw)  # /v1/files, /v1/batches, /v1/messages/batches

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gw.startup()
        _drain_on_sigterm(gw)
        reloader.install_sighup()
        await batch_service.start()
        await responses.start()  # background responses: fail what a stopped worker left
        try:
            yield
        finally:
            await batch_service.close()
            await reloader.close()
            await shadow.close()
            await reads.close()
            await responses.close()
            await gw.shutdown()

    shadow = Shadower(gw)  # rules' shadow traffic, copies sent after the answers
    chat = {
        "/v1/chat/completions": ChatRoute(gw, OPENAI, "chat.completions", shadow=shadow, chats=gw.chats),
        "/v1/messages": ChatRoute(gw, ANTHROPIC, "messages", shadow=shadow),
        "/v1/responses": ChatRoute(gw, RESPONSES, "responses", responses, shadow=shadow),
    }
    asgi_chat = {path: _asgi_route(route) for path, route in chat.items()}
    routes = [
        *(Route(path, handler, methods=["POST"]) for path, handler in asgi_chat.items()),
        Route(
            "/v1/messages/count_tokens",
            _count_handler(gw, ANTHROPIC, ANTHROPIC.decode_count_tokens, lambda n: {"input_tokens": n}),
            methods=["POST"],
        ),
        Route(
            "/v1/responses/input_tokens",
            _count_handler(
                gw,
                RESPONSES,
                RESPONSES.decode_input_tokens,
                lambda n: {"object": "response.input_tokens", "input_tokens": n},
                responses,
            ),
            methods=["POST"],
        ),
        *response_routes(responses, RESPONSES),
        *chat_store.routes(gw.chats, OPENAI),
        *files.routes(batch_service.files, OPENAI),
        *batches.routes(batch_service, OPENAI),
        *message_batches.routes(batch_service, ANTHROPIC),
        Route("/v1/embeddings", _embeddings_handler(gw), methods=["POST"]),
        *media.routes(gw, OPENAI, _read_body),
        Route("/v1/models", _models_handler(gw), methods=["GET"]),
        Route("/v1/models/{model_id:path}", _models_handler(gw), methods=["GET"]),
        Route("/health", _health, methods=["GET"]),
        Route("/ready", _ready_handler(gw), methods=["GET"]),
        Route("/v1/route", _route_handler(gw), methods=["POST"]),
        Route("/admin/reload", _reload_handler(gw, reloader), methods=["POST"]),
        Route("/admin/stats", _stats_handler(gw), methods=["GET"]),
        Route("/admin/breakers", _breakers_handler(gw), methods=["GET"]),
        Route("/metrics", _metrics_handler(gw), methods=["GET"]),
        *ledger_admin.routes(gw, reads),
        *keys_admin.routes(gw, reads),
        Mount("/ui", routes=console.routes(_console_deps(gw, reads))),
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
        return error_reply(_dialect_for(path, headers), err, {"x-request-id": request_id(headers)})

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
    with the simulator the parent started at ``SWITCHPOINT_SIM_BASE`` (see
    :func:`switchpoint.defaults.from_environment`).
    """

    from switchpoint import defaults

    cfg = defaults.from_environment()
    app = create_app(cfg, shutdown_timeout_s=float(os.environ.get("SWITCHPOINT_SHUTDOWN_TIMEOUT", "30")))
    freeze_heap()
    return app


def freeze_heap() -> None:
    """Leave what the process holds from start-up (modules, config, catalogs) out of every
    later garbage collection: the full collections a busy server runs every few hundred
    requests then walk only what requests made. For a serving process, once, before serving."""
    gc.collect()
    gc.freeze()
