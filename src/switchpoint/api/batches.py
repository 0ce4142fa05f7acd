"""OpenAI's Batch API (``/v1/batches``): create from an uploaded JSONL file, retrieve, list,
cancel. The runner (:mod:`.batch_runner`) does the work.

Creating a batch reads its input file at once and checks every line (JSON, a unique
``custom_id``, ``method`` POST, ``url`` the batch's endpoint, a ``body`` object that does not
ask to stream); a bad file is a 400 naming the first bad line, and nothing is stored. A line
that is well formed but wrong for the gateway (an unknown model, a model the key may not use)
is answered by the chat path like any request: its error goes to the batch's error file.
Endpoints: ``/v1/chat/completions`` and ``/v1/responses`` (answers are not stored for
``previous_response_id``).
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from switchpoint.api.batch_forward import forward_target
from switchpoint.api.batch_runner import BatchRunner
from switchpoint.api.dialect import Dialect
from switchpoint.api.files import FileStore, guarded, json_response, new_id, read_limited
from switchpoint.api.paging import openai_limit
from switchpoint.api.responses_state import owner_of
from switchpoint.errors import BadRequest, NotFound
from switchpoint.governance.principal import Principal
from switchpoint.store import batches as store

if TYPE_CHECKING:
    from switchpoint.api.app import Gateway

ENDPOINTS = ("/v1/chat/completions", "/v1/responses")
DAY_S = 24 * 3600.0
_STAMPS = (
    "in_progress_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "cancelling_at",
    "cancelled_at",
)


def batch_object(row: store.BatchRow) -> dict[str, Any]:
    """The OpenAI ``Batch`` object (times not yet reached are left out)."""
    out: dict[str, Any] = {
        "id": row.id,
        "object": "batch",
        "endpoint": row.endpoint,
        "input_file_id": row.input_file_id or "",
        "completion_window": row.completion_window,
        "status": row.status,
        "created_at": int(row.created_at),
        "expires_at": int(row.expires_at),
        "request_counts": {"total": row.total, "completed": row.completed, "failed": row.failed},
        "metadata": row.metadata,
    }
    for name in _STAMPS:
        value = getattr(row, name)
        if value is not None:
            out[name] = int(value)
    for name in ("output_file_id", "error_file_id"):
        value = getattr(row, name)
        if value is not None:
            out[name] = value
    return out


def _line_problem(number: int, what: str) -> BadRequest:
    return BadRequest(
        f"Invalid input file, line {number}: {what}", param="input_file_id", code="invalid_input_file"
    )


def read_lines(content: bytes, endpoint: str, max_lines: int) -> list[tuple[str, str]]:
    """An input file's lines as ``(custom_id, body)``; raises on the first bad line."""
    lines: list[tuple[str, str]] = []
    seen: set[str] = set()
    for number, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            doc = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            raise _line_problem(number, "not valid JSON") from None
        if not isinstance(doc, dict):
            raise _line_problem(number, "expected a JSON object")
        cid = doc.get("custom_id")
        if not isinstance(cid, str) or not cid:
            raise _line_problem(number, "'custom_id' must be a non-empty string")
        if cid in seen:
            raise _line_problem(number, f"the custom_id '{cid}' is used twice")
        seen.add(cid)
        if doc.get("method") != "POST":
            raise _line_problem(number, "'method' must be 'POST'")
        if doc.get("url") != endpoint:
            raise _line_problem(number, f"'url' must be the batch's endpoint '{endpoint}'")
        body = doc.get("body")
        if not isinstance(body, dict):
            raise _line_problem(number, "'body' must be a JSON object")
        if body.get("stream"):
            raise _line_problem(number, "a batch's requests cannot stream")
        lines.append((cid, msgspec.json.encode(body).decode()))
        if len(lines) > max_lines:
            raise BadRequest(f"Invalid input file: more than {max_lines} requests", param="input_file_id")
    if not lines:
        raise BadRequest(
            "Invalid input file: it has no requests", param="input_file_id", code="invalid_input_file"
        )
    return lines


def metadata_of(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > 16:
        raise BadRequest("'metadata': expected an object of at most 16 string values", param="metadata")
    for key, item in value.items():
        if not isinstance(item, str) or len(key) > 64 or len(item) > 512:
            raise BadRequest(
                "'metadata': keys up to 64 characters, string values up to 512", param="metadata"
            )
    return dict(value)


class BatchService:
    """Files, batches and their runner: what the lifespan starts and the routes share."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.files = FileStore(gw)
        self.runner = BatchRunner(gw, self.files)

    async def start(self) -> None:
        await self.runner.start()

    async def close(self) -> None:
        await self.runner.stop(self.gw.shutdown_timeout_s)
        await self.files.close()

    async def create(
        self, owner: str, dialect: str, endpoint: str, lines: list[tuple[str, str]], **fields: Any
    ) -> store.BatchRow:
        now = time.time()
        row = store.BatchRow(
            id=new_id("msgbatch_" if dialect == "anthropic" else "batch_"),
            owner=owner,
            dialect=dialect,
            endpoint=endpoint,
            input_file_id=fields.get("input_file_id"),
            completion_window=fields.get("completion_window", "24h"),
            status="validating",
            created_at=now,
            expires_at=now + DAY_S,
            total=len(lines),
            metadata=fields.get("metadata"),
            deployment=fields.get("deployment"),
        )
        await self.files.run(store.insert_batch, self.files.engine(), row, lines)
        self.runner.wake()
        return row

    async def get(self, batch_id: str, owner: str, dialect: str) -> store.BatchRow:
        row = await self.files.run(store.get_batch, self.files.engine(), batch_id, owner)
        if row is None or row.dialect != dialect:
            raise NotFound(f"No such batch: {batch_id}", param="batch_id")
        return row

    async def cancel(self, row: store.BatchRow) -> store.BatchRow:
        """Ask the runner to stop the batch: ``cancelling`` now, ``cancelled`` once it has."""
        if row.status in ("cancelling", "cancelled"):
            return row
        if row.status not in ("validating", "in_progress"):
            raise BadRequest(f"Cannot cancel a batch whose status is '{row.status}'", param="batch_id")
        engine = self.files.engine()
        moved = await self.files.run(
            functools.partial(
                store.set_status,
                engine,
                row.id,
                "cancelling",
                only_from=("validating", "in_progress"),
                cancelling_at=time.time(),
            )
        )
        self.runner.wake()
        current = await self.files.run(store.get_batch, engine, row.id)
        if not moved and current is not None and current.status not in ("cancelling", "cancelled"):
            raise BadRequest(f"Cannot cancel a batch whose status is '{current.status}'", param="batch_id")
        return current or row


def json_body(raw: bytes) -> dict[str, Any]:
    try:
        doc = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise BadRequest("The request body is not valid JSON") from None
    if not isinstance(doc, dict):
        raise BadRequest("The request body must be a JSON object")
    return doc


def routes(service: BatchService, dialect: Dialect) -> list[Route]:
    """``/v1/batches``, ``/v1/batches/{batch_id}`` and ``/v1/batches/{batch_id}/cancel``."""
    gw, files = service.gw, service.files

    async def create(request: Request, principal: Principal) -> Response:
        doc = json_body(await read_limited(request, gw.config.max_body_bytes))
        endpoint = doc.get("endpoint")
        if not isinstance(endpoint, str):
            raise BadRequest("'endpoint' is required", param="endpoint")
        if endpoint not in ENDPOINTS:
            raise BadRequest(
                f"'endpoint': this gateway runs batches for {' and '.join(ENDPOINTS)}", param="endpoint"
            )
        if doc.get("completion_window") != "24h":
            raise BadRequest("'completion_window': must be '24h'", param="completion_window")
        file_id = doc.get("input_file_id")
        if not isinstance(file_id, str) or not file_id:
            raise BadRequest("'input_file_id' is required", param="input_file_id")
        owner = owner_of(principal)
        source = await files.get(file_id, owner, param="input_file_id")
        if source.purpose != "batch":
            raise BadRequest(
                f"The file '{file_id}' has purpose '{source.purpose}'; a batch's input file must have purpose 'batch'",
                param="input_file_id",
                code="invalid_file_purpose",
            )
        lines = read_lines(await files.content(source), endpoint, gw.config.batches.max_lines)
        deployment = forward_target(gw.config, lines, endpoint, principal)
        row = await service.create(
            owner,
            "openai",
            endpoint,
            lines,
            input_file_id=file_id,
            completion_window="24h",
            metadata=metadata_of(doc.get("metadata")),
            deployment=deployment,
        )
        return json_response(batch_object(row))

    async def retrieve(request: Request, principal: Principal) -> Response:
        row = await service.get(request.path_params["batch_id"], owner_of(principal), "openai")
        return json_response(batch_object(row))

    async def cancel(request: Request, principal: Principal) -> Response:
        row = await service.get(request.path_params["batch_id"], owner_of(principal), "openai")
        return json_response(batch_object(await service.cancel(row)))

    async def listing(request: Request, principal: Principal) -> Response:
        limit = openai_limit(request.query_params, default=20, most=100)
        rows = await files.run(
            functools.partial(
                store.list_batches,
                files.engine(),
                owner_of(principal),
                "openai",
                limit=limit + 1,
                after=request.query_params.get("after"),
            )
        )
        data = [batch_object(r) for r in rows[:limit]]
        doc: dict[str, Any] = {"object": "list", "data": data, "has_more": len(rows) > limit}
        if data:
            doc["first_id"], doc["last_id"] = data[0]["id"], data[-1]["id"]
        return json_response(doc)

    return [
        Route("/v1/batches", guarded(gw, dialect, create), methods=["POST"]),
        Route("/v1/batches", guarded(gw, dialect, listing), methods=["GET"]),
        Route("/v1/batches/{batch_id}", guarded(gw, dialect, retrieve), methods=["GET"]),
        Route("/v1/batches/{batch_id}/cancel", guarded(gw, dialect, cancel), methods=["POST"]),
    ]
