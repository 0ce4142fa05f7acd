"""OpenAI's Batch API, simulated: ``/openai/v1/files`` (upload, content) and
``/openai/v1/batches`` (create, retrieve, cancel) in front of a simulator app.

A batch is ``in_progress`` when created and has run every line by the time it is next read
(each line answered as ``POST /openai/v1/chat/completions`` would be, without the
behaviour's delays or faults); its output and error files follow OpenAI's batch output format.
``with_batch_api(create_app())`` serves both.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec

from switchpoint.multipart import MultipartError, boundary_of, parse

from . import openai_wire
from .app import SimulatorApp
from .behavior import DEFAULT_OUTPUT_TOKENS
from .common import SimError, new_id, now
from .content import generate

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
_PREFIX = "/openai/v1/"


class BatchAPI:
    def __init__(self, app: SimulatorApp) -> None:
        self.app = app
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        #: Batches created and lines answered (for tests).
        self.created = 0
        self.lines = 0
        #: While true, batches stay ``in_progress`` when read (a provider still working).
        self.hold = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith((_PREFIX + "files", _PREFIX + "batches")):
            await self.app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            refused = openai_wire.check_auth(scope["headers"], scope.get("query_string", b""))
            if refused is not None and self.app.config.require_auth:
                raise refused
            status, out, media = self._answer(scope["method"], path.removeprefix(_PREFIX), headers, body)
        except SimError as err:
            status, out, media = err.status, openai_wire.error_body(err), "application/json"
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", media.encode()), (b"content-length", str(len(out)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": out})

    def _answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes, str]:
        parts = path.split("/")
        if method == "POST" and path == "files":
            return self._upload(headers, body)
        if method == "GET" and len(parts) == 3 and parts[0] == "files" and parts[2] == "content":
            if parts[1] not in self.files:
                raise SimError(404, f"No such File object: {parts[1]}")
            return 200, self.files[parts[1]], "application/jsonl"
        if method == "POST" and path == "batches":
            return self._create(body)
        if parts[0] == "batches" and len(parts) >= 2 and parts[1] in self.batches:
            batch = self.batches[parts[1]]
            if method == "GET" and len(parts) == 2:
                if batch["status"] == "in_progress" and not self.hold:
                    self._run(batch)
                elif batch["status"] == "cancelling":
                    batch.update(status="cancelled", cancelled_at=now())
                return 200, json.dumps(batch).encode(), "application/json"
            if method == "POST" and len(parts) == 3 and parts[2] == "cancel":
                if batch["status"] == "in_progress":
                    batch.update(status="cancelling", cancelling_at=now())
                return 200, json.dumps(batch).encode(), "application/json"
        raise SimError(404, f"No route for {method} /v1/{path}")

    def _upload(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes, str]:
        boundary = boundary_of(headers.get("content-type", ""))
        if boundary is None:
            raise SimError(400, "expected multipart/form-data")
        try:
            parts = {p.name: p for p in parse(body, boundary)}
        except MultipartError as exc:
            raise SimError(400, str(exc)) from None
        if "file" not in parts or parts.get("purpose") is None or parts["purpose"].text() != "batch":
            raise SimError(400, "'file' and purpose 'batch' are required", param="file")
        fid = new_id("file-")
        self.files[fid] = parts["file"].data
        doc = {
            "id": fid,
            "object": "file",
            "bytes": len(parts["file"].data),
            "created_at": now(),
            "filename": parts["file"].filename or "input.jsonl",
            "purpose": "batch",
            "status": "processed",
        }
        return 200, json.dumps(doc).encode(), "application/json"

    def _create(self, body: bytes) -> tuple[int, bytes, str]:
        try:
            doc = json.loads(body)
        except ValueError:
            raise SimError(400, "We could not parse the JSON body of your request.") from None
        fid = doc.get("input_file_id")
        if fid not in self.files:
            raise SimError(404, f"No such File object: {fid}", param="input_file_id")
        lines = [x for x in self.files[fid].splitlines() if x.strip()]
        bid = new_id("batch_")
        batch = {
            "id": bid,
            "object": "batch",
            "endpoint": doc.get("endpoint", "/v1/chat/completions"),
            "input_file_id": fid,
            "completion_window": doc.get("completion_window", "24h"),
            "status": "in_progress",
            "created_at": now(),
            "in_progress_at": now(),
            "expires_at": now() + 86400,
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
        }
        self.batches[bid] = batch
        self.created += 1
        return 200, json.dumps(batch).encode(), "application/json"

    def _run(self, batch: dict[str, Any]) -> None:
        out, err = [], []
        for raw in self.files[batch["input_file_id"]].splitlines():
            if not raw.strip():
                continue
            line = json.loads(raw)
            rid = new_id("req_")
            try:
                call = openai_wire.parse_chat(msgspec.json.encode(line.get("body")))
                answer = generate(call.conv, DEFAULT_OUTPUT_TOKENS, self.app.config.seed, self.app.cache)
                response = {
                    "status_code": 200,
                    "request_id": rid,
                    "body": json.loads(openai_wire.render_chat(call, answer)),
                }
                out.append(
                    {
                        "id": new_id("batch_req_"),
                        "custom_id": line.get("custom_id"),
                        "response": response,
                        "error": None,
                    }
                )
            except SimError as e:
                body = json.loads(openai_wire.error_body(e))
                response = {"status_code": e.status, "request_id": rid, "body": body}
                err.append(
                    {
                        "id": new_id("batch_req_"),
                        "custom_id": line.get("custom_id"),
                        "response": response,
                        "error": None,
                    }
                )
            self.lines += 1
        for kind, rows in (("output_file_id", out), ("error_file_id", err)):
            if rows:
                fid = new_id("file-")
                self.files[fid] = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
                batch[kind] = fid
        batch["request_counts"] = {"total": len(out) + len(err), "completed": len(out), "failed": len(err)}
        batch.update(status="completed", finalizing_at=now(), completed_at=now())


def with_batch_api(app: SimulatorApp) -> BatchAPI:
    """``app`` with OpenAI's Batch API in front of it."""
    return BatchAPI(app)
