"""OpenAI's own Batch API on the wire (``/v1/files`` + ``/v1/batches``), for deployments with
``batch_api: true``: the requests to upload an input file, create, read and cancel a batch and
download its files, and what their answers say. I/O is the executor's
(:mod:`switchpoint.executor.upstream_batches`)."""

from __future__ import annotations

from typing import Any

import msgspec

from switchpoint.canonical import Usage
from switchpoint.config import Deployment
from switchpoint.errors import ProviderError
from switchpoint.multipart import FormPart, encode
from switchpoint.providers.base import UpstreamRequest, UpstreamResponse
from switchpoint.providers.openai import OpenAIAdapter, _headers, _url, _Usage
from switchpoint.providers.openai import _usage as usage_from

#: The upstream's batch statuses after which nothing changes.
ENDED = ("completed", "failed", "expired", "cancelled")
_ADAPTER = OpenAIAdapter()


class UpstreamBatch(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    status: str
    output_file_id: str | None = None
    error_file_id: str | None = None
    completed: int = 0
    failed: int = 0


def _request(deployment: Deployment, method: str, operation: str, body: bytes = b"") -> UpstreamRequest:
    return UpstreamRequest(
        method=method, url=_url(deployment, operation), headers=_headers(deployment), body=body
    )


def upload(deployment: Deployment, content: bytes, filename: str) -> UpstreamRequest:
    """``POST /files`` (purpose ``batch``)."""
    body, content_type = encode(
        [
            FormPart(name="purpose", data=b"batch"),
            FormPart(name="file", data=content, filename=filename, content_type="application/jsonl"),
        ]
    )
    req = _request(deployment, "POST", "files", body)
    req.headers["content-type"] = content_type
    return req


def create(deployment: Deployment, file_id: str, endpoint: str) -> UpstreamRequest:
    body = {"input_file_id": file_id, "endpoint": endpoint, "completion_window": "24h"}
    return _request(deployment, "POST", "batches", msgspec.json.encode(body))


def retrieve(deployment: Deployment, batch_id: str) -> UpstreamRequest:
    return _request(deployment, "GET", f"batches/{batch_id}")


def cancel(deployment: Deployment, batch_id: str) -> UpstreamRequest:
    return _request(deployment, "POST", f"batches/{batch_id}/cancel")


def content(deployment: Deployment, file_id: str) -> UpstreamRequest:
    return _request(deployment, "GET", f"files/{file_id}/content")


def checked(response: UpstreamResponse, deployment: Deployment) -> UpstreamResponse:
    """The answer, or the provider's error as the gateway's."""
    if response.status >= 300:
        raise _ADAPTER.classify(response, deployment)
    return response


def _object(response: UpstreamResponse) -> dict[str, Any]:
    try:
        doc = msgspec.json.decode(response.body)
    except msgspec.DecodeError:
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
        raise ProviderError(
            "invalid_response", "the provider's batch API answered something that is not an object with an id"
        )
    return doc


def file_id(response: UpstreamResponse) -> str:
    return str(_object(response)["id"])


def batch(response: UpstreamResponse) -> UpstreamBatch:
    doc = _object(response)
    counts = doc.get("request_counts") or {}
    return UpstreamBatch(
        id=doc["id"],
        status=str(doc.get("status") or ""),
        output_file_id=doc.get("output_file_id") or None,
        error_file_id=doc.get("error_file_id") or None,
        completed=int(counts.get("completed") or 0),
        failed=int(counts.get("failed") or 0),
    )


class UpstreamLine(msgspec.Struct, frozen=True, kw_only=True):
    """One line of the provider's output or error file."""

    custom_id: str
    #: The answer's HTTP status (None: the provider did not run it; ``body`` holds its error).
    status_code: int | None
    body: bytes
    usage: Usage | None = None


def lines(content: bytes) -> list[UpstreamLine]:
    """An output or error file's lines (lines without a ``custom_id`` are skipped)."""
    out: list[UpstreamLine] = []
    for raw in content.splitlines():
        try:
            doc = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            continue
        if not isinstance(doc, dict) or not isinstance(doc.get("custom_id"), str):
            continue
        response = doc.get("response")
        if isinstance(response, dict) and isinstance(response.get("status_code"), int):
            body = response.get("body")
            out.append(
                UpstreamLine(
                    custom_id=doc["custom_id"],
                    status_code=response["status_code"],
                    body=msgspec.json.encode(body),
                    usage=usage(body),
                )
            )
        else:
            error = doc.get("error") if isinstance(doc.get("error"), dict) else {"message": "not run"}
            out.append(
                UpstreamLine(
                    custom_id=doc["custom_id"], status_code=None, body=msgspec.json.encode({"error": error})
                )
            )
    return out


def usage(body: Any) -> Usage | None:
    """A Chat Completions answer's usage (None: it has none)."""
    if not isinstance(body, dict) or not isinstance(body.get("usage"), dict):
        return None
    try:
        return usage_from(msgspec.convert(body["usage"], _Usage))
    except msgspec.ValidationError:
        return None
