"""Stored chat completions: ``store: true`` on ``POST /v1/chat/completions``, and the routes
that read them back (OpenAI's ``/v1/chat/completions`` list, ``/{id}`` get, update, delete and
``/{id}/messages``).

* Keeping one: the chat route hands over the completion the client got (a stream's: assembled
  from the chunks it was sent, with their id) and the request; :meth:`ChatStore.keep` puts the
  write on a thread of its own and returns at once. The answer never waits for it and never
  fails with it: a failed write is logged and counted (``/metrics``,
  ``switchpoint_chat_store_writes_total{outcome}``). Requests without ``store: true`` never
  get here.
* Reading: every read first waits (briefly) for this process's writes in flight, so a client
  that stored a completion finds it on its next call.

A stored completion belongs to whoever stored it, as a stored Response does (the virtual key by
id, else the principal's name); anyone else gets the 404 of an id that does not exist. With the
ledger off (``storage.enabled: false``) nothing is stored and the reads are 404s saying so.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from switchpoint.api.dialect import Dialect, StreamEncoder
from switchpoint.api.files import guarded, json_response, read_limited
from switchpoint.api.openai import usage_out
from switchpoint.api.paging import openai_limit, openai_order
from switchpoint.api.responses_state import owner_of
from switchpoint.api.shadow import SHADOW
from switchpoint.canonical import ChatRequest, StreamEvent, Usage
from switchpoint.errors import BadRequest, NotFound, SwitchpointError
from switchpoint.executor import RequestContext
from switchpoint.governance.principal import Principal
from switchpoint.store import chat_completions as store
from switchpoint.streaming import SSEDecoder, SSEFrame

if TYPE_CHECKING:
    from switchpoint.api.app import Gateway

log = logging.getLogger("switchpoint")
T = TypeVar("T")

#: Writes waiting for a thread at most; past it a completion is not stored (counted as dropped).
MAX_PENDING = 1000
#: How long a read waits for this process's writes in flight.
SETTLE_S = 5.0
#: The largest page a list answers (a larger ``limit`` is clamped to it).
MAX_LIMIT = 100
#: OpenAI's metadata bounds.
META_KEYS, META_KEY_LEN, META_VALUE_LEN = 16, 64, 512
_OUTCOMES = ("stored", "failed", "dropped")


class ChatStore:
    """The stored completions of the chat route (see the module's docstring)."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self._pool: ThreadPoolExecutor | None = None
        self._pending: set[Future[None]] = set()
        self._lock = threading.Lock()
        #: Writes by outcome: stored, failed (the database refused), dropped (too many waiting).
        self.counts = dict.fromkeys(_OUTCOMES, 0)

    def engine(self) -> Engine | None:
        ledger = self.gw.ledger
        return ledger.engine if ledger is not None else None

    def _threads(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(2, thread_name_prefix="switchpoint-chat-store")
        return self._pool

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads(), functools.partial(fn, *args))

    async def close(self) -> None:
        """Let the writes in flight finish, then stop the threads."""
        if self._pool is not None:
            await asyncio.to_thread(self._pool.shutdown)
            self._pool = None

    # --- keeping -----------------------------------------------------------------------------

    def keep(
        self,
        request: ChatRequest,
        completion: bytes | Callable[[], bytes],
        principal: Principal | None,
        ctx: RequestContext,
    ) -> None:
        """Store a completion (the encoded ``chat.completion``, or what makes it) off the event
        loop; returns at once and never raises. Its time is the request's start (the list's
        order); the request's usage fills in a stream's when no chunk carried it. A shadow copy
        of a stored request (``api/shadow.py``) is not kept again."""
        engine = self.engine()
        if engine is None or principal is SHADOW:
            return
        try:
            if len(self._pending) >= MAX_PENDING:
                self._count("dropped")
                log.warning("chat store: %d writes waiting; a completion was not stored", MAX_PENDING)
                return
            messages = (request.raw or {}).get("messages") or []
            owner = owner_of(principal)
            future = self._threads().submit(
                self._write, engine, request, completion, owner, ctx.started_at, messages, ctx.usage
            )
            with self._lock:
                self._pending.add(future)
            future.add_done_callback(self._done)
        except Exception:  # the answer is already the client's: nothing here may fail it
            self._count("failed")
            log.exception("chat store: could not store a completion of %s", request.model)

    def _write(
        self,
        engine: Engine,
        request: ChatRequest,
        completion: bytes | Callable[[], bytes],
        owner: str,
        created: float,
        messages: list[Any],
        usage: Usage | None,
    ) -> None:
        try:
            body = completion if isinstance(completion, bytes) else completion()
            doc = msgspec.json.decode(body)
            if doc.get("usage") is None and usage is not None:
                doc["usage"] = usage_out(usage)
                body = msgspec.json.encode(doc)
            row = store.StoredCompletion(
                id=doc["id"],
                owner=owner,
                created_at=created,
                model=request.model,
                metadata=request.metadata,
                messages=messages,
                completion=body,
            )
            store.insert(engine, row)
        except Exception:
            self._count("failed")
            log.exception("chat store: could not store a completion of %s", request.model)
        else:
            self._count("stored")

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def _count(self, outcome: str) -> None:
        with self._lock:
            self.counts[outcome] += 1

    def recording(
        self, encoder: StreamEncoder, request: ChatRequest, principal: Principal | None, ctx: RequestContext
    ) -> StreamEncoder:
        """``encoder``, keeping what it sends: a stream that ends well is stored, assembled."""
        return _Recording(encoder, self, request, principal, ctx)

    async def settled(self) -> None:
        """Wait (at most :data:`SETTLE_S`) for the writes this process has in flight."""
        with self._lock:
            pending = list(self._pending)
        if pending:
            await asyncio.wait([asyncio.wrap_future(f) for f in pending], timeout=SETTLE_S)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {**self.counts, "pending": len(self._pending)}

    def prometheus(self) -> list[str]:
        counts = self.stats()
        lines = [
            "# HELP switchpoint_chat_store_writes_total Stored chat completions written, by outcome.",
            "# TYPE switchpoint_chat_store_writes_total counter",
        ]
        lines += [f'switchpoint_chat_store_writes_total{{outcome="{o}"}} {counts[o]}' for o in _OUTCOMES]
        return lines

    # --- reading -----------------------------------------------------------------------------

    async def owned(self, request: Request, principal: Principal) -> tuple[store.StoredCompletion, Engine]:
        cid = request.path_params["completion_id"]
        engine = self.reading()
        await self.settled()
        row = await self.run(store.get, engine, cid, owner_of(principal))
        if row is None:
            raise NotFound(f"Chat completion with id '{cid}' not found.", param="completion_id")
        return row, engine

    def reading(self) -> Engine:
        engine = self.engine()
        if engine is None:
            raise NotFound("Stored chat completions need the ledger, and it is off (storage.enabled: false)")
        return engine


class _Recording(StreamEncoder):
    """A stream encoder that keeps every byte it hands out; at a clean end the stream is
    stored (assembled on the store's thread, from the chunks as the client got them)."""

    def __init__(
        self,
        inner: StreamEncoder,
        chats: ChatStore,
        request: ChatRequest,
        principal: Principal | None,
        ctx: RequestContext,
    ) -> None:
        self._inner = inner
        self._chats = chats
        self._request = request
        self._principal = principal
        self._ctx = ctx
        self._sent: list[bytes] = []

    def commit(self, family: str) -> None:
        self._inner.commit(family)

    def encode(self, events: list[StreamEvent], frame: SSEFrame | None) -> bytes:
        out = self._inner.encode(events, frame)
        self._sent.append(out)
        return out

    def finish(self) -> bytes:
        tail = self._inner.finish()
        sent = b"".join(self._sent) + tail
        self._sent = []
        self._chats.keep(self._request, functools.partial(assemble, sent), self._principal, self._ctx)
        return tail

    def error(self, err: SwitchpointError) -> bytes:
        return self._inner.error(err)

    def result(self) -> bytes | None:
        return self._inner.result()


def assemble(stream: bytes) -> bytes:
    """The ``chat.completion`` a stream of ``chat.completion.chunk`` frames adds up to (the
    first choice's; its id, created and model; usage when a chunk carried it)."""
    head: dict[str, Any] = {}
    texts: list[str] = []
    thinking: list[str] = []
    refusal: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    function_call: dict[str, str] | None = None
    finish: str | None = None
    usage: Any = None
    for frame in SSEDecoder().feed(stream):
        if not frame.data or frame.data == b"[DONE]":
            continue
        chunk = msgspec.json.decode(frame.data)
        if not head and chunk.get("id"):
            head = {k: chunk[k] for k in ("id", "created", "model") if k in chunk}
            head.update({k: chunk[k] for k in ("system_fingerprint", "service_tier") if chunk.get(k)})
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            texts.append(delta.get("content") or "")
            thinking.append(delta.get("reasoning_content") or "")
            refusal.append(delta.get("refusal") or "")
            for call in delta.get("tool_calls") or ():
                into = calls.setdefault(
                    call.get("index", 0),
                    {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
                )
                into["id"] = call.get("id") or into["id"]
                fn = call.get("function") or {}
                into["function"]["name"] += fn.get("name") or ""
                into["function"]["arguments"] += fn.get("arguments") or ""
            if delta.get("function_call") is not None:
                fn = delta["function_call"]
                function_call = function_call or {"name": "", "arguments": ""}
                function_call["name"] += fn.get("name") or ""
                function_call["arguments"] += fn.get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) or None,
        "refusal": "".join(refusal) or None,
    }
    if "".join(thinking):
        message["reasoning_content"] = "".join(thinking)
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    if function_call is not None:
        message["function_call"] = function_call
    doc = {
        "id": head.get("id", ""),
        "object": "chat.completion",
        "created": head.get("created", int(time.time())),
        "model": head.get("model", ""),
        "choices": [{"index": 0, "message": message, "finish_reason": finish or "stop", "logprobs": None}],
        **{k: v for k, v in head.items() if k not in ("id", "created", "model")},
    }
    if usage is not None:
        doc["usage"] = usage
    return msgspec.json.encode(doc)


# --- the routes --------------------------------------------------------------------------------


def _completion(row: store.StoredCompletion) -> dict[str, Any]:
    """The stored ``chat.completion`` with its metadata (as the API answers reads)."""
    doc: dict[str, Any] = msgspec.json.decode(row.completion)
    doc["metadata"] = row.metadata or {}
    return doc


def message_resource(message: Any, completion_id: str, index: int) -> dict[str, Any]:
    """A request message as ``/messages`` lists it: an id (the completion's and the message's
    place), ``content`` as text (a parts array's text parts joined, and the parts themselves
    in ``content_parts``), ``refusal``, ``name``."""
    out = dict(message) if isinstance(message, dict) else {}
    content = out.get("content")
    parts = None
    if isinstance(content, list):
        parts = content
        texts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        content = "".join(texts) if texts else None
    out.update(
        id=f"{completion_id}-{index}",
        content=content if isinstance(content, str) else None,
        content_parts=parts,
    )
    out.setdefault("refusal", None)
    out.setdefault("name", None)
    return out


def _filters(request: Request) -> dict[str, str]:
    """``metadata[key]=value`` query parameters, as a dict."""
    where: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name.startswith("metadata[") and name.endswith("]") and len(name) > 10:
            where[name[9:-1]] = value
        elif name == "metadata" or name.startswith("metadata["):
            raise BadRequest("'metadata': filter as metadata[key]=value", param="metadata")
    return where


def _page(data: list[dict[str, Any]], has_more: bool) -> Response:
    return json_response(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else "",
            "last_id": data[-1]["id"] if data else "",
            "has_more": has_more,
        }
    )


def read_metadata(body: bytes) -> dict[str, str] | None:
    """An update's body: ``{"metadata": {…} | null}``, and nothing else."""
    try:
        doc = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"could not parse the JSON body: {exc}") from None
    if not isinstance(doc, dict) or "metadata" not in doc:
        raise BadRequest("the body must be a JSON object with 'metadata'", param="metadata")
    other = sorted(k for k in doc if k != "metadata")
    if other:
        raise BadRequest(f"only 'metadata' can be updated, not '{other[0]}'", param=other[0])
    meta = doc["metadata"]
    if meta is None:
        return None
    if not isinstance(meta, dict):
        raise BadRequest("'metadata': expected an object of strings", param="metadata")
    if len(meta) > META_KEYS:
        raise BadRequest(f"'metadata': at most {META_KEYS} keys", param="metadata")
    for key, value in meta.items():
        if len(key) > META_KEY_LEN:
            raise BadRequest(f"'metadata': keys are at most {META_KEY_LEN} characters", param="metadata")
        if not isinstance(value, str) or len(value) > META_VALUE_LEN:
            raise BadRequest(
                f"'metadata.{key}': expected a string of at most {META_VALUE_LEN} characters",
                param=f"metadata.{key}",
            )
    return meta


def routes(chats: ChatStore, dialect: Dialect) -> list[Route]:
    """``GET /v1/chat/completions`` and ``GET``/``POST``/``DELETE /v1/chat/completions/{id}``,
    ``GET /v1/chat/completions/{id}/messages``."""
    gw = chats.gw

    async def listing(request: Request, principal: Principal) -> Response:
        limit, order, where = (
            openai_limit(request.query_params, default=20, most=MAX_LIMIT),
            openai_order(request.query_params, default="asc"),
            _filters(request),
        )
        q = request.query_params
        engine = chats.reading()
        await chats.settled()
        rows, has_more = await chats.run(
            functools.partial(
                store.page,
                engine,
                owner_of(principal),
                limit=limit,
                order=order,
                after=q.get("after"),
                model=q.get("model"),
                where=where,
            )
        )
        return _page([_completion(r) for r in rows], has_more)

    async def retrieve(request: Request, principal: Principal) -> Response:
        row, _ = await chats.owned(request, principal)
        return json_response(_completion(row))

    async def modify(request: Request, principal: Principal) -> Response:
        meta = read_metadata(await read_limited(request, gw.config.max_body_bytes))
        row, engine = await chats.owned(request, principal)
        updated = await chats.run(store.set_metadata, engine, row.id, row.owner, meta)
        if updated is None:  # deleted meanwhile
            raise NotFound(f"Chat completion with id '{row.id}' not found.", param="completion_id")
        return json_response(_completion(updated))

    async def remove(request: Request, principal: Principal) -> Response:
        row, engine = await chats.owned(request, principal)
        await chats.run(store.remove, engine, row.id, row.owner)
        return json_response({"object": "chat.completion.deleted", "id": row.id, "deleted": True})

    async def messages(request: Request, principal: Principal) -> Response:
        limit, order = (
            openai_limit(request.query_params, default=20, most=MAX_LIMIT),
            openai_order(request.query_params, default="asc"),
        )
        row, _ = await chats.owned(request, principal)
        items = [message_resource(m, row.id, i) for i, m in enumerate(row.messages)]
        if order == "desc":
            items.reverse()
        after = request.query_params.get("after")
        if after is not None:
            ids = [i["id"] for i in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        return _page(items[:limit], len(items) > limit)

    one = "/v1/chat/completions/{completion_id}"
    return [
        Route("/v1/chat/completions", guarded(gw, dialect, listing), methods=["GET"]),
        Route(one, guarded(gw, dialect, retrieve), methods=["GET"]),
        Route(one, guarded(gw, dialect, modify), methods=["POST"]),
        Route(one, guarded(gw, dialect, remove), methods=["DELETE"]),
        Route(one + "/messages", guarded(gw, dialect, messages), methods=["GET"]),
    ]
