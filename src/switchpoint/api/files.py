"""OpenAI's Files API (``/v1/files``): upload (multipart), list, retrieve, content, delete.

A file belongs to whoever uploaded it (the virtual key by id, else the principal's name, as for
stored responses); anyone else gets a 404, as for an id that does not exist. Its bytes are kept
in the ledger's database, or in ``batches.files_dir`` when that is set (the row then names the
path). With the ledger off (``storage.enabled: false``) there is nowhere to keep files: every
call answers 400 saying so. The database and disk calls run on two threads of their own.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from switchpoint.api.chat import JSON, error_reply, internal_error, request_id
from switchpoint.api.dialect import Dialect
from switchpoint.api.paging import openai_limit, openai_order
from switchpoint.api.responses_state import owner_of
from switchpoint.errors import BadRequest, NotFound, PayloadTooLarge, SwitchpointError
from switchpoint.governance.principal import Principal
from switchpoint.multipart import MultipartError, boundary_of, parse
from switchpoint.store import batches as store

if TYPE_CHECKING:
    from switchpoint.api.app import Gateway

T = TypeVar("T")
#: Purposes a client may upload with (OpenAI's); ``batch_output`` files are the gateway's own.
PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
#: Room for the form's boundaries and headers around a file of the largest size.
_FORM_SLACK = 64 * 1024


def file_object(row: store.FileRow) -> dict[str, Any]:
    """The OpenAI ``File`` object."""
    out: dict[str, Any] = {
        "id": row.id,
        "object": "file",
        "bytes": row.bytes,
        "created_at": int(row.created_at),
        "filename": row.filename,
        "purpose": row.purpose,
        "status": "processed",
    }
    if row.expires_at is not None:
        out["expires_at"] = int(row.expires_at)
    return out


def new_id(prefix: str) -> str:
    return prefix + os.urandom(12).hex()


class FileStore:
    """Where files are kept, and the threads that read and write them."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.dir = Path(gw.config.batches.files_dir) if gw.config.batches.files_dir else None
        self._pool: ThreadPoolExecutor | None = None

    def engine(self) -> Engine:
        ledger = self.gw.ledger
        if ledger is None:
            raise BadRequest(
                "Files and batches need the ledger's database, and it is off (storage.enabled: false)"
            )
        return ledger.engine

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(2, thread_name_prefix="switchpoint-files")
        return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(fn, *args))

    async def close(self) -> None:
        if self._pool is not None:
            await asyncio.to_thread(self._pool.shutdown)
            self._pool = None

    async def save(
        self, owner: str, purpose: str, filename: str, content: bytes, file_id: str | None = None
    ) -> store.FileRow:
        """Keep a file (a ``file_id`` already there is replaced: a batch's output written again)."""
        engine = self.engine()
        fid = file_id or new_id("file-")
        path = str(self.dir / fid) if self.dir is not None else None
        row = store.FileRow(
            id=fid,
            owner=owner,
            purpose=purpose,
            filename=filename,
            bytes=len(content),
            created_at=time.time(),
            path=path,
        )
        await self.run(self._write, engine, row, content)
        return row

    def _write(self, engine: Engine, row: store.FileRow, content: bytes) -> None:
        if row.path is not None:
            target = Path(row.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(".partial")
            partial.write_bytes(content)
            partial.replace(target)
        store.delete_file(engine, row.id, row.owner)
        store.insert_file(engine, row, None if row.path is not None else content)

    async def get(self, file_id: str, owner: str, param: str = "file_id") -> store.FileRow:
        row = await self.run(store.get_file, self.engine(), file_id, owner)
        if row is None:
            raise NotFound(f"No such File object: {file_id}", param=param)
        return row

    async def content(self, row: store.FileRow) -> bytes:
        if row.path is not None:
            return await self.run(Path(row.path).read_bytes)
        return await self.run(store.file_content, self.engine(), row.id) or b""

    async def remove(self, row: store.FileRow) -> None:
        await self.run(store.delete_file, self.engine(), row.id, row.owner)
        if row.path is not None:
            await self.run(functools.partial(Path(row.path).unlink, missing_ok=True))


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def guarded(
    gw: Gateway, dialect: Dialect, handle: Callable[[Request, Principal], Coroutine[Any, Any, Response]]
) -> Handler:
    """A route that authenticates the caller and answers every failure in ``dialect``."""

    async def run(request: Request) -> Response:
        headers = {"x-request-id": request_id(request.headers)}
        try:
            principal = await gw.auth.principal(request.headers)
            response = await handle(request, principal)
            response.headers.update(headers)
            return response
        except Exception as exc:
            err = exc if isinstance(exc, SwitchpointError) else internal_error(exc, headers["x-request-id"])
            reply = error_reply(dialect, err, headers)
            return Response(reply.body, status_code=reply.status, headers=reply.headers, media_type=JSON)

    return run


def json_response(doc: Any) -> Response:
    return Response(msgspec.json.encode(doc), media_type=JSON)


async def read_limited(request: Request, limit: int) -> bytes:
    """The request's body, refused past ``limit`` bytes (413)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _upload(files: FileStore, request: Request, principal: Principal) -> Response:
    limit = files.gw.config.batches.max_file_bytes
    boundary = boundary_of(request.headers.get("content-type", ""))
    if boundary is None:
        raise BadRequest("Upload a file as multipart/form-data with the fields 'file' and 'purpose'")
    body = await read_limited(request, limit + _FORM_SLACK)
    try:
        parts = parse(body, boundary)
    except MultipartError as exc:
        raise BadRequest(f"The multipart body could not be read: {exc}") from None
    fields = {p.name: p for p in parts}
    purpose = fields["purpose"].text() if "purpose" in fields else ""
    if not purpose:
        raise BadRequest("'purpose' is required", param="purpose")
    if purpose not in PURPOSES:
        raise BadRequest(f"'purpose': must be one of {', '.join(PURPOSES)}", param="purpose")
    upload = fields.get("file")
    if upload is None or upload.filename is None:
        raise BadRequest("'file' is required: send the file's bytes as a multipart file field", param="file")
    if len(upload.data) > limit:
        raise PayloadTooLarge(f"The file exceeds the limit of {limit} bytes")
    if not upload.data:
        raise BadRequest("The file is empty", param="file")
    row = await files.save(owner_of(principal), purpose, upload.filename or "upload", upload.data)
    return json_response(file_object(row))


def routes(files: FileStore, dialect: Dialect) -> list[Route]:
    """``/v1/files`` and ``/v1/files/{file_id}`` (``/content``)."""
    gw = files.gw

    async def upload(request: Request, principal: Principal) -> Response:
        return await _upload(files, request, principal)

    async def listing(request: Request, principal: Principal) -> Response:
        q = request.query_params
        order = openai_order(q, default="desc")
        limit = openai_limit(q, default=10_000, most=10_000)
        rows = await files.run(
            functools.partial(
                store.list_files,
                files.engine(),
                owner_of(principal),
                purpose=q.get("purpose"),
                limit=limit + 1,
                after=q.get("after"),
                newest_first=order == "desc",
            )
        )
        data = [file_object(r) for r in rows[:limit]]
        return json_response(
            {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else "",
                "last_id": data[-1]["id"] if data else "",
                "has_more": len(rows) > limit,
            }
        )

    async def retrieve(request: Request, principal: Principal) -> Response:
        return json_response(
            file_object(await files.get(request.path_params["file_id"], owner_of(principal)))
        )

    async def content(request: Request, principal: Principal) -> Response:
        row = await files.get(request.path_params["file_id"], owner_of(principal))
        media = "application/jsonl" if row.filename.endswith(".jsonl") else "application/octet-stream"
        return Response(await files.content(row), media_type=media)

    async def remove(request: Request, principal: Principal) -> Response:
        row = await files.get(request.path_params["file_id"], owner_of(principal))
        await files.remove(row)
        return json_response({"id": row.id, "object": "file", "deleted": True})

    return [
        Route("/v1/files", guarded(gw, dialect, upload), methods=["POST"]),
        Route("/v1/files", guarded(gw, dialect, listing), methods=["GET"]),
        Route("/v1/files/{file_id}", guarded(gw, dialect, retrieve), methods=["GET"]),
        Route("/v1/files/{file_id}", guarded(gw, dialect, remove), methods=["DELETE"]),
        Route("/v1/files/{file_id}/content", guarded(gw, dialect, content), methods=["GET"]),
    ]
