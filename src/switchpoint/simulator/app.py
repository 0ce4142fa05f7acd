"""The simulator as one raw ASGI application: routing, scripted faults and timing, sending."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from dataclasses import dataclass
from typing import Any

from . import anthropic_wire, bedrock_wire, gemini_wire, media_wire, openai_wire, responses_wire, vertex_wire
from .behavior import HANG_LIMIT_S, Plan, Plans, SimConfig
from .common import Frames, Headers, SimError, corrupt, retry_after_headers
from .content import Answer, ChatCall, PromptCache, generate

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY = 32 * 1024 * 1024
_JSON = b"application/json"
_SSE = b"text/event-stream; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Wire:
    """The per-family functions the generic request flow needs."""

    name: str
    check_auth: Callable[[Headers, bytes], SimError | None]
    error_body: Callable[[SimError], bytes]
    response_headers: Callable[[], Headers]
    render_chat: Callable[[ChatCall, Answer], bytes]
    stream_chat: Callable[[ChatCall, Answer], Frames]
    #: Headers of an error answer (Bedrock names the error type in one).
    error_headers: Callable[[SimError], Headers] = lambda err: []


OPENAI = Wire(
    "openai",
    openai_wire.check_auth,
    openai_wire.error_body,
    openai_wire.response_headers,
    openai_wire.render_chat,
    openai_wire.stream_chat,
)
#: The Responses API on the OpenAI prefix (its auth, errors and headers).
RESPONSES = Wire(
    "openai",
    openai_wire.check_auth,
    openai_wire.error_body,
    openai_wire.response_headers,
    responses_wire.render_responses,
    responses_wire.stream_responses,
)
ANTHROPIC = Wire(
    "anthropic",
    anthropic_wire.check_auth,
    anthropic_wire.error_body,
    anthropic_wire.response_headers,
    anthropic_wire.render_chat,
    anthropic_wire.stream_chat,
)
GEMINI = Wire(
    "gemini",
    gemini_wire.check_auth,
    gemini_wire.error_body,
    gemini_wire.response_headers,
    gemini_wire.render_chat,
    gemini_wire.stream_chat,
)
BEDROCK = Wire(
    "bedrock",
    bedrock_wire.check_auth,
    bedrock_wire.error_body,
    bedrock_wire.response_headers,
    bedrock_wire.render_converse,
    bedrock_wire.stream_converse,
    bedrock_wire.error_headers,
)
#: Bedrock's InvokeModel with Anthropic Messages bodies (same prefix, auth and errors).
BEDROCK_INVOKE = Wire(
    "bedrock",
    bedrock_wire.check_auth,
    bedrock_wire.error_body,
    bedrock_wire.response_headers,
    bedrock_wire.render_invoke,
    bedrock_wire.stream_invoke,
    bedrock_wire.error_headers,
)
#: Vertex AI: one prefix, the publisher in the path picks the Gemini or Anthropic wire.
VERTEX = Wire(
    "vertex",
    vertex_wire.check_auth,
    vertex_wire.error_body,
    vertex_wire.response_headers,
    gemini_wire.render_chat,
    gemini_wire.stream_chat,
)
_PREFIXES = (
    ("/openai/v1/", OPENAI),
    ("/anthropic/", ANTHROPIC),
    ("/gemini/v1beta/", GEMINI),
    ("/bedrock/", BEDROCK),
    ("/vertex/v1/", VERTEX),
)


def _wire_for(path: str) -> tuple[Wire, str] | None:
    for prefix, wire in _PREFIXES:
        if path.startswith(prefix):
            return wire, path[len(prefix) :]
    return None


@dataclass(slots=True)
class _Request:
    route: str
    body: bytes
    scope: Scope
    receive: Receive
    send: Send


Handler = Callable[[_Request], Awaitable[None]]


class _Disconnected(Exception):
    pass


async def _read_body(receive: Receive) -> bytes:
    message = await receive()
    if message["type"] == "http.disconnect":
        raise _Disconnected
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        return body
    chunks = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise SimError(413, "Request body too large.")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _until_disconnect(work: Coroutine[Any, Any, None], receive: Receive) -> None:
    """Run ``work``; cancel it as soon as the client goes away."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_disconnect(receive))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        task.cancel()
        watcher.cancel()
        await asyncio.gather(task, watcher, return_exceptions=True)
    if not task.cancelled():
        error = task.exception()
        if error is not None:
            raise error


async def _start(send: Send, status: int, media_type: bytes, headers: Headers, length: int | None) -> None:
    raw = [(b"content-type", media_type), *headers]
    if length is not None:
        raw.append((b"content-length", str(length).encode()))
    else:
        raw.append((b"cache-control", b"no-cache"))
    await send({"type": "http.response.start", "status": status, "headers": raw})


async def _send_json(send: Send, status: int, body: bytes, headers: Headers) -> None:
    await _start(send, status, _JSON, headers, len(body))
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class SimulatorApp:
    """ASGI app serving the OpenAI, Anthropic and Gemini wires under their own prefixes."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.plans = Plans(self.config)
        self.cache = PromptCache(self.config.cache_entries)
        self.rng = random.Random(self.config.seed)
        self.model_ids = list(dict.fromkeys([*self.config.model_ids, *self.config.models]))
        self._routes: dict[str, dict[str, Handler]] = {
            OPENAI.name: {
                "chat/completions": self._openai_chat,
                "responses": self._openai_responses,
                "embeddings": self._openai_embed,
                "models": self._openai_models,
                **dict.fromkeys(media_wire.ROUTES, self._openai_media),
            },
            ANTHROPIC.name: {
                "v1/messages": self._anthropic_chat,
                "v1/messages/count_tokens": self._anthropic_count,
            },
            GEMINI.name: {  # by the action after the model name
                "generateContent": self._gemini_chat,
                "streamGenerateContent": self._gemini_chat,
                "embedContent": self._gemini_embed,
                "batchEmbedContents": self._gemini_embed,
            },
            BEDROCK.name: {  # by the action after the model id
                "converse": self._bedrock_chat,
                "converse-stream": self._bedrock_chat,
                "invoke": self._bedrock_chat,
                "invoke-with-response-stream": self._bedrock_chat,
            },
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await _lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        found = _wire_for(path)
        if found is None:
            await _send_json(send, 404, b'{"error":{"message":"Not found.","code":404}}', [])
            return
        wire, route = found
        try:
            await self._dispatch(wire, route, scope, receive, send)
        except SimError as err:
            headers = (
                retry_after_headers(err.status, err.retry_after_s)
                + wire.response_headers()
                + wire.error_headers(err)
            )
            await _send_json(send, err.status, wire.error_body(err), headers)
        except _Disconnected:
            return

    async def _dispatch(self, wire: Wire, route: str, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        handler = self._route(wire, route)
        if handler is None:
            raise SimError(404, f"Unknown path: {scope['path']}")
        expected = "GET" if route == "models" else "POST"
        if method != expected:
            raise SimError(405, f"Method {method} not allowed.")
        headers: Headers = scope["headers"]
        if self.config.require_auth:
            denied = wire.check_auth(headers, scope.get("query_string", b""))
            if denied is not None:
                raise denied
        body = await _read_body(receive) if method == "POST" else b""
        await handler(_Request(route, body, scope, receive, send))

    def _route(self, wire: Wire, route: str) -> Handler | None:
        if wire is GEMINI:
            if not route.startswith("models/"):
                return None
            return self._routes[GEMINI.name].get(route.rpartition(":")[2])
        if wire is BEDROCK:
            if not route.startswith("model/"):
                return None
            return self._routes[BEDROCK.name].get(route.rpartition("/")[2])
        if wire is VERTEX:
            m = vertex_wire.ROUTE.match(route)
            if m is None or m.group(5) not in vertex_wire.ACTIONS[m.group(3)]:
                return None
            return self._vertex_chat
        return self._routes[wire.name].get(route)

    # --- handlers -------------------------------------------------------------------------

    async def _openai_chat(self, r: _Request) -> None:
        await self._chat(OPENAI, openai_wire.parse_chat(r.body), r)

    async def _openai_responses(self, r: _Request) -> None:
        await self._chat(RESPONSES, responses_wire.parse_responses(r.body), r)

    async def _anthropic_chat(self, r: _Request) -> None:
        await self._chat(ANTHROPIC, anthropic_wire.parse_chat(r.body), r)

    async def _gemini_chat(self, r: _Request) -> None:
        model, _, action = r.route[len("models/") :].rpartition(":")
        stream = action == "streamGenerateContent"
        sse = b"alt=sse" in r.scope.get("query_string", b"")
        await self._chat(GEMINI, gemini_wire.parse_chat(r.body, model, stream=stream, sse=sse), r)

    async def _bedrock_chat(self, r: _Request) -> None:
        model, _, action = r.route[len("model/") :].rpartition("/")
        stream = action.endswith("-stream")
        if action.startswith("invoke"):
            await self._chat(BEDROCK_INVOKE, bedrock_wire.parse_invoke(r.body, model, stream=stream), r)
        else:
            await self._chat(BEDROCK, bedrock_wire.parse_converse(r.body, model, stream=stream), r)

    async def _vertex_chat(self, r: _Request) -> None:
        m = vertex_wire.ROUTE.match(r.route)
        assert m is not None
        publisher, model, action = m.group(3), m.group(4), m.group(5)
        stream = action.startswith("stream")
        if publisher == "anthropic":
            await self._chat(ANTHROPIC, vertex_wire.parse_anthropic(r.body, model, stream=stream), r)
            return
        sse = b"alt=sse" in r.scope.get("query_string", b"")
        await self._chat(VERTEX, gemini_wire.parse_chat(r.body, model, stream=stream, sse=sse), r)

    async def _anthropic_count(self, r: _Request) -> None:
        call = anthropic_wire.parse_chat(r.body, count_only=True)
        await _send_json(r.send, 200, anthropic_wire.render_count(call), ANTHROPIC.response_headers())

    async def _openai_models(self, r: _Request) -> None:
        await _send_json(r.send, 200, openai_wire.render_models(self.model_ids), OPENAI.response_headers())

    async def _openai_embed(self, r: _Request) -> None:
        request = openai_wire.parse_embeddings(r.body)
        texts = openai_wire.embedding_texts(request)
        plan = self.plans.resolve(request.model, r.scope["headers"], texts[-1])
        dims = self.config.embedding_dimensions

        def render() -> bytes:
            return openai_wire.render_embeddings(request, texts, dims)

        await self._guarded(plan, self._json_answer(OPENAI, plan, render, r.send), r.receive)

    async def _openai_media(self, r: _Request) -> None:
        headers = r.scope["headers"]
        plan = self.plans.resolve(media_wire.model_of(r.route, headers, r.body), headers, "")

        async def work() -> None:
            await self._prelude(plan)
            body, media_type = media_wire.answer(r.route, headers, r.body)
            await _start(r.send, 200, media_type, OPENAI.response_headers(), len(body))
            await r.send({"type": "http.response.body", "body": body})

        await self._guarded(plan, work(), r.receive)

    async def _gemini_embed(self, r: _Request) -> None:
        model, _, action = r.route[len("models/") :].rpartition(":")
        batch = action == "batchEmbedContents"
        requests = gemini_wire.parse_embed(r.body, batch)
        plan = self.plans.resolve(model, r.scope["headers"], gemini_wire.embed_texts(requests)[-1])
        dims = self.config.embedding_dimensions

        def render() -> bytes:
            return gemini_wire.render_embed(requests, batch, dims)

        await self._guarded(plan, self._json_answer(GEMINI, plan, render, r.send), r.receive)

    # --- the generic flow -----------------------------------------------------------------

    async def _chat(self, wire: Wire, call: ChatCall, r: _Request) -> None:
        plan = self.plans.resolve(call.conv.model, r.scope["headers"], call.conv.last_user_text)
        await self._guarded(plan, self._chat_answer(wire, call, plan, r.send), r.receive)

    async def _guarded(self, plan: Plan, work: Coroutine[Any, Any, None], receive: Receive) -> None:
        if plan.latency_s or plan.hang or plan.paced:
            await _until_disconnect(work, receive)
        else:
            await work

    async def _prelude(self, plan: Plan) -> None:
        """Latency, hang and scripted error statuses: everything before an answer is made."""
        if plan.latency_s:
            await asyncio.sleep(plan.latency_s)
        if plan.hang:
            await asyncio.sleep(HANG_LIMIT_S)
            raise SimError(504, "")
        status = plan.status
        if not status and plan.fail_rate and self.rng.random() < plan.fail_rate:
            status = plan.fail_status
        if status:
            raise SimError(status, "", retry_after_s=plan.retry_after_s)

    async def _chat_answer(self, wire: Wire, call: ChatCall, plan: Plan, send: Send) -> None:
        await self._prelude(plan)
        answer = generate(call.conv, plan.output_tokens, self.config.seed, self.cache)
        if plan.bad_json_rate and self.rng.random() < plan.bad_json_rate:
            break_json(answer)
        if call.stream:
            await self._stream(wire, plan, wire.stream_chat(call, answer), send)
            return
        wait = plan.ttft_s + (answer.usage.output_tokens / plan.tokens_per_s if plan.tokens_per_s else 0.0)
        if plan.stall_s and plan.stall_after < answer.usage.output_tokens:
            wait += plan.stall_s
        if wait:
            await asyncio.sleep(wait)
        await self._send_body(wire, plan, wire.render_chat(call, answer), send)

    async def _json_answer(self, wire: Wire, plan: Plan, render: Callable[[], bytes], send: Send) -> None:
        await self._prelude(plan)
        await self._send_body(wire, plan, render(), send)

    async def _send_body(self, wire: Wire, plan: Plan, body: bytes, send: Send) -> None:
        if plan.malformed:
            body = body[: len(body) // 2]
        headers = wire.response_headers()
        if plan.cut_after is None:
            await _send_json(send, 200, body, headers)
            return
        await _start(send, 200, _JSON, headers, len(body))
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})

    async def _stream(self, wire: Wire, plan: Plan, frames: Frames, send: Send) -> None:
        content = frames.content
        post = frames.post
        if plan.malformed:
            if content:
                content = [corrupt(content[0]), *content[1:]]
            else:
                post = [corrupt(post[0]), *post[1:]]
        media = _SSE if frames.media_type == b"text/event-stream" else frames.media_type
        await _start(send, 200, media, wire.response_headers(), None)
        if not plan.paced and plan.cut_after is None:
            await send({"type": "http.response.body", "body": b"".join([*frames.pre, *content, *post])})
            return
        if frames.pre:
            await send({"type": "http.response.body", "body": b"".join(frames.pre), "more_body": True})
        await self._pace(plan, content, send)
        if plan.cut_after is None:
            if plan.stall_s and plan.stall_after == len(content):
                await asyncio.sleep(plan.stall_s)
            await send({"type": "http.response.body", "body": b"".join(post)})

    async def _pace(self, plan: Plan, content: list[bytes], send: Send) -> None:
        if plan.ttft_s:
            await asyncio.sleep(plan.ttft_s)
        gap = 1.0 / plan.tokens_per_s if plan.tokens_per_s else 0.0
        limit = len(content) if plan.cut_after is None else min(plan.cut_after, len(content))
        for index in range(limit):
            if plan.stall_s and index == plan.stall_after:
                await asyncio.sleep(plan.stall_s)
            elif gap and index:
                await asyncio.sleep(gap)
            await send({"type": "http.response.body", "body": content[index], "more_body": True})


def break_json(answer: Answer) -> None:
    """The ``bad_json_rate`` fault: a JSON answer cut short (a text document loses its last
    piece; a tool call's arguments their last character, and the object form its members)."""
    text = answer.text
    if text and text[0].lstrip()[:1] in ("{", "["):
        if len(text) > 1:
            text.pop()
        else:
            text[0] = text[0][: len(text[0]) // 2]
    for call in answer.calls:
        call.json = call.json[:-1]
        call.pieces = call.pieces[:-1] if len(call.pieces) > 1 else [call.json]
        call.arguments = {}


def create_app(config: SimConfig | None = None) -> SimulatorApp:
    """The simulator's ASGI app (a fresh prompt cache and RNG per app)."""
    return SimulatorApp(config)
