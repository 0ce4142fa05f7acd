"""Conversation state for the Responses API, kept in the ledger's database.

* ``previous_response_id``: :meth:`ResponseState.restore` reads the conversation (the chain
  of stored responses, one query) and puts its items — each turn's input items, then its
  output items — between the request's instructions and its own input. Instructions are not
  carried over from earlier turns (as OpenAI has it).
* ``store`` (default true): :meth:`ResponseState.keep` writes the response before the client
  gets it (the last event of a stream), so a follow-up naming it always finds it, on any
  worker sharing the database.
* ``DELETE /v1/responses/{id}`` and ``GET /v1/responses/{id}/input_items``; ``GET
  /v1/responses/{id}`` (and its stream), ``POST …/cancel`` and ``background: true`` are in
  :mod:`.responses_background`.

A stored response belongs to whoever stored it: the virtual key (by id, so a rotated key
keeps its conversations), else the principal's name (the master key, an open gateway);
anyone else gets a 404. The database calls run on two threads of their own. With the
ledger off (``storage.enabled: false``) nothing is stored: ``previous_response_id`` and the
reads answer 400 / 404 saying so.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from switchpoint.api import responses_background
from switchpoint.api.chat import JSON, request_id
from switchpoint.api.dialect import Dialect
from switchpoint.api.paging import openai_limit, openai_order
from switchpoint.api.responses import ResponsesRequest, read_items
from switchpoint.canonical import ChatRequest
from switchpoint.errors import BadRequest, NotFound
from switchpoint.governance.principal import Principal
from switchpoint.store import responses as store

if TYPE_CHECKING:
    from switchpoint.api.app import Gateway

log = logging.getLogger("switchpoint")
T = TypeVar("T")
_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco", "reasoning": "rs"}


def owner_of(principal: Principal | None) -> str:
    if principal is None:
        return "anonymous"
    return f"key:{principal.key_id}" if principal.key_id is not None else f"name:{principal.name}"


class ResponseState:
    """The Responses route's conversation store (see the module's docstring)."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self._pool: ThreadPoolExecutor | None = None
        #: ``background: true`` runs of this worker.
        self.background = responses_background.BackgroundRuns(self)
        self.launch = self.background.launch

    def engine(self) -> Engine | None:
        ledger = self.gw.ledger
        return ledger.engine if ledger is not None else None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(2, thread_name_prefix="switchpoint-responses")
        return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(fn, *args))

    async def start(self) -> None:
        await self.background.start()

    async def close(self) -> None:
        await self.background.close(self.gw.shutdown_timeout_s)
        if self._pool is not None:
            await asyncio.to_thread(self._pool.shutdown)
            self._pool = None

    # --- the route's hooks ---------------------------------------------------------------

    async def restore(self, request: ChatRequest, principal: Principal | None) -> ChatRequest:
        """The request with its conversation before its own input (``previous_response_id``)."""
        if not isinstance(request, ResponsesRequest) or request.previous_response_id is None:
            return request
        previous = request.previous_response_id
        engine = self.engine()
        if engine is None:
            raise BadRequest(
                "previous_response_id needs stored responses, and the ledger is off (storage.enabled: false)",
                param="previous_response_id",
            )
        rows = await self.run(store.chain, engine, previous, owner_of(principal))
        if not rows or rows[-1].id != previous:
            raise NotFound(
                f"Previous response with id '{previous}' not found.",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        items: list[Any] = []
        for row in rows:
            items += row.input_items
            items += msgspec.json.decode(row.response).get("output") or []
        history = read_items(items, "previous_response_id")
        lead = request.lead
        messages = request.messages[:lead] + history + request.messages[lead:]
        return msgspec.structs.replace(request, messages=messages)

    async def keep(self, request: ChatRequest, response: bytes | None, principal: Principal | None) -> None:
        """Store the answer (``store`` true, the ledger on); a failure is logged, not raised:
        the client still gets its answer."""
        if not isinstance(request, ResponsesRequest) or not request.store or response is None:
            return
        if request.background:  # its run keeps its row up to date (responses_background)
            return
        engine = self.engine()
        if engine is None:
            return
        try:
            doc = msgspec.json.decode(response)
            row = store.StoredResponse(
                id=doc["id"],
                owner=owner_of(principal),
                created_at=time.time(),
                model=request.model,
                previous_response_id=request.previous_response_id,
                input_items=request.items,
                response=response,
                status=str(doc.get("status") or "completed"),
            )
            await self.run(store.insert, engine, row)
        except Exception:
            log.exception("could not store response for %s", request.model)

    # --- the reads -------------------------------------------------------------------------

    async def stored(self, request: Request) -> tuple[store.StoredResponse, Engine]:
        principal = await self.gw.auth.principal(request.headers)
        rid = request.path_params["response_id"]
        engine = self.engine()
        if engine is None:
            raise NotFound("Stored responses need the ledger, and it is off (storage.enabled: false)")
        row = await self.run(store.get, engine, rid, owner_of(principal))
        if row is None:
            raise NotFound(f"Response with id '{rid}' not found.", param="response_id")
        return row, engine


def item_resource(item: dict[str, Any], response_id: str, index: int) -> dict[str, Any]:
    """An input item as ``input_items`` lists it: with an id (the client's, else one made from
    the response's id and the item's place) and a status."""
    kind = item.get("type", "message")
    out = dict(item)
    out["type"] = kind
    out.setdefault("id", f"{_PREFIX.get(kind, 'item')}_{response_id.removeprefix('resp_')}{index:04d}")
    if kind == "message":
        content = item.get("content")
        assistant = item.get("role") == "assistant"
        if isinstance(content, str):
            content = [{"type": "output_text" if assistant else "input_text", "text": content}]
        parts = []
        for part in content or []:
            part = dict(part)
            if part.get("type") == "input_image":
                part.setdefault("detail", "auto")
            if assistant and part.get("type") in ("input_text", "output_text"):
                part = {
                    "type": "output_text",
                    "text": part.get("text", ""),
                    "annotations": [],
                    "logprobs": [],
                }
            parts.append(part)
        out["content"] = parts
    if kind != "reasoning" or "status" in item:
        out.setdefault("status", "completed")
    if kind == "reasoning":
        out.setdefault("summary", [])
    return out


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def _guarded(
    state: ResponseState, dialect: Dialect, handle: Callable[[Request], Coroutine[Any, Any, bytes]]
) -> Handler:
    async def guarded(request: Request) -> Response:
        headers = {"x-request-id": request_id(request.headers)}
        try:
            return Response(await handle(request), headers=headers, media_type=JSON)
        except Exception as exc:
            return responses_background.error_response(dialect, exc, headers)

    return guarded


def routes(state: ResponseState, dialect: Dialect) -> list[Route]:
    """``GET``/``DELETE /v1/responses/{id}``, ``POST /v1/responses/{id}/cancel`` and ``GET
    /v1/responses/{id}/input_items``."""

    async def delete(request: Request) -> bytes:
        row, engine = await state.stored(request)
        await state.run(store.remove, engine, row.id, row.owner)
        return msgspec.json.encode({"id": row.id, "object": "response", "deleted": True})

    async def input_items(request: Request) -> bytes:
        q = request.query_params
        limit = openai_limit(q, default=20, most=100)
        order = openai_order(q, default="desc")
        row, _ = await state.stored(request)
        items = [item_resource(item, row.id, i) for i, item in enumerate(row.input_items)]
        if order == "desc":
            items.reverse()
        after = q.get("after")
        if after is not None:
            ids = [i["id"] for i in items]
            if after not in ids:
                raise BadRequest(f"'after': no input item '{after}' in this response", param="after")
            items = items[ids.index(after) + 1 :]
        page = items[:limit]
        return msgspec.json.encode(
            {
                "object": "list",
                "data": page,
                "has_more": len(items) > len(page),
                "first_id": page[0]["id"] if page else "",
                "last_id": page[-1]["id"] if page else "",
            }
        )

    return [
        *responses_background.routes(state, state.background, dialect),
        Route("/v1/responses/{response_id}", _guarded(state, dialect, delete), methods=["DELETE"]),
        Route(
            "/v1/responses/{response_id}/input_items", _guarded(state, dialect, input_items), methods=["GET"]
        ),
    ]
