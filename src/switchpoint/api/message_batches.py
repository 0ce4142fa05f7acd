"""Anthropic's Message Batches API (``/v1/messages/batches``): create (the requests inline),
retrieve, list, results, cancel, delete (an ended batch only, as Anthropic has it); answered in
Anthropic's shapes and errors. The lines run as ``POST /v1/messages`` requests through the
gateway's chat path, like an OpenAI batch's (:mod:`.batch_runner`); the results are read from the
lines once the batch has ended.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from switchpoint.api.batches import BatchService, json_body
from switchpoint.api.dialect import Dialect
from switchpoint.api.files import guarded, json_response, read_limited
from switchpoint.api.paging import anthropic_limit
from switchpoint.api.responses_state import owner_of
from switchpoint.errors import BadRequest
from switchpoint.governance.principal import Principal
from switchpoint.store import batches as store

_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_STATUS = {
    "cancelling": "canceling",
    "completed": "ended",
    "cancelled": "ended",
    "failed": "ended",
    "expired": "ended",
}


def _when(value: float | None) -> str | None:
    if value is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(value)) + f".{int(value % 1 * 1e6):06d}Z"


def message_batch(row: store.BatchRow, counts: dict[str, int], base_url: str) -> dict[str, Any]:
    """The Anthropic ``MessageBatch`` object."""
    status = _STATUS.get(row.status, "in_progress")
    ended = row.completed_at or row.cancelled_at or row.failed_at
    return {
        "id": row.id,
        "type": "message_batch",
        "processing_status": status,
        "request_counts": {
            "processing": counts.get(store.PENDING, 0),
            "succeeded": counts.get(store.SUCCEEDED, 0),
            "errored": counts.get(store.ERRORED, 0),
            "canceled": counts.get(store.CANCELED, 0),
            "expired": 0,
        },
        "created_at": _when(row.created_at),
        "expires_at": _when(row.expires_at),
        "ended_at": _when(ended) if status == "ended" else None,
        "cancel_initiated_at": _when(row.cancelling_at),
        "archived_at": None,
        "results_url": f"{base_url}/v1/messages/batches/{row.id}/results" if status == "ended" else None,
    }


def read_requests(doc: dict[str, Any], max_lines: int) -> list[tuple[str, str]]:
    requests = doc.get("requests")
    if not isinstance(requests, list) or not requests:
        raise BadRequest("requests: expected a non-empty array of {custom_id, params}", param="requests")
    if len(requests) > max_lines:
        raise BadRequest(f"requests: at most {max_lines} requests in one batch", param="requests")
    lines: list[tuple[str, str]] = []
    seen: set[str] = set()
    for i, item in enumerate(requests):
        at = f"requests.{i}"
        if not isinstance(item, dict):
            raise BadRequest(f"{at}: expected an object", param=at)
        extra = set(item) - {"custom_id", "params"}
        if extra:
            raise BadRequest(f"{at}.{sorted(extra)[0]}: Extra inputs are not permitted", param=at)
        cid = item.get("custom_id")
        if not isinstance(cid, str) or not _CUSTOM_ID.match(cid):
            raise BadRequest(f"{at}.custom_id: must match ^[a-zA-Z0-9_-]{{1,64}}$", param=f"{at}.custom_id")
        if cid in seen:
            raise BadRequest(
                f"{at}.custom_id: '{cid}' is used twice; custom ids must be unique", param=f"{at}.custom_id"
            )
        seen.add(cid)
        params = item.get("params")
        if not isinstance(params, dict):
            raise BadRequest(f"{at}.params: Field required", param=f"{at}.params")
        if params.get("stream"):
            raise BadRequest(
                f"{at}.params.stream: a batch's requests cannot stream", param=f"{at}.params.stream"
            )
        lines.append((cid, msgspec.json.encode(params).decode()))
    return lines


def result_line(r: store.LineResult) -> bytes:
    """One line of the results (``MessageBatchIndividualResponse``)."""
    result: dict[str, Any]
    if r.status == store.SUCCEEDED:
        result = {"type": "succeeded", "message": msgspec.json.decode(r.result or "{}")}
    elif r.status == store.ERRORED:
        result = {"type": "errored", "error": msgspec.json.decode(r.result or "{}")}
    else:
        result = {"type": "canceled"}
    return msgspec.json.encode({"custom_id": r.custom_id, "result": result}) + b"\n"


def routes(service: BatchService, dialect: Dialect) -> list[Route]:
    gw, files = service.gw, service.files

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    async def render(request: Request, row: store.BatchRow) -> Response:
        counts = await files.run(store.counts, files.engine(), row.id)
        return json_response(message_batch(row, counts, base(request)))

    async def create(request: Request, principal: Principal) -> Response:
        doc = json_body(await read_limited(request, gw.config.batches.max_file_bytes))
        lines = read_requests(doc, gw.config.batches.max_lines)
        row = await service.create(owner_of(principal), "anthropic", "/v1/messages", lines)
        return await render(request, row)

    async def retrieve(request: Request, principal: Principal) -> Response:
        return await render(
            request, await service.get(request.path_params["batch_id"], owner_of(principal), "anthropic")
        )

    async def cancel(request: Request, principal: Principal) -> Response:
        row = await service.get(request.path_params["batch_id"], owner_of(principal), "anthropic")
        return await render(request, await service.cancel(row))

    async def remove(request: Request, principal: Principal) -> Response:
        row = await service.get(request.path_params["batch_id"], owner_of(principal), "anthropic")
        if _STATUS.get(row.status) != "ended":
            raise BadRequest(
                f"Batch {row.id} has not ended yet; a Message Batch can be deleted once it has "
                "finished processing (cancel it first)",
                param="message_batch_id",
            )
        await files.run(store.delete_batch, files.engine(), row.id, row.owner)
        return json_response({"id": row.id, "type": "message_batch_deleted"})

    async def listing(request: Request, principal: Principal) -> Response:
        q = request.query_params
        limit = anthropic_limit(q)
        rows = await files.run(
            functools.partial(
                store.list_batches,
                files.engine(),
                owner_of(principal),
                "anthropic",
                limit=limit + 1,
                after=q.get("after_id"),
                before=q.get("before_id"),
            )
        )
        more = len(rows) > limit
        rows = rows[:limit] if q.get("before_id") is None else rows[-limit:]
        data = []
        for row in rows:
            counts = await files.run(store.counts, files.engine(), row.id)
            data.append(message_batch(row, counts, base(request)))
        return json_response(
            {
                "data": data,
                "has_more": more,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        )

    async def results(request: Request, principal: Principal) -> Response:
        row = await service.get(request.path_params["batch_id"], owner_of(principal), "anthropic")
        if _STATUS.get(row.status) != "ended":
            raise BadRequest(
                f"Batch {row.id} has not ended yet; its results are not ready", param="message_batch_id"
            )
        engine = files.engine()

        async def lines() -> AsyncIterator[bytes]:
            after = -1
            while True:
                page = await files.run(store.results, engine, row.id, after, 1000)
                if not page:
                    return
                yield b"".join(result_line(r) for r in page)
                after = page[-1].line

        return StreamingResponse(lines(), media_type="application/x-jsonl")

    return [
        Route("/v1/messages/batches", guarded(gw, dialect, create), methods=["POST"]),
        Route("/v1/messages/batches", guarded(gw, dialect, listing), methods=["GET"]),
        Route("/v1/messages/batches/{batch_id}", guarded(gw, dialect, retrieve), methods=["GET"]),
        Route("/v1/messages/batches/{batch_id}", guarded(gw, dialect, remove), methods=["DELETE"]),
        Route("/v1/messages/batches/{batch_id}/cancel", guarded(gw, dialect, cancel), methods=["POST"]),
        Route("/v1/messages/batches/{batch_id}/results", guarded(gw, dialect, results), methods=["GET"]),
    ]
