"""The Amazon Bedrock wire family: Converse / ConverseStream, and InvokeModel for Anthropic models.

A deployment's ``api`` picks the wire:

* ``converse`` (default): ``POST /model/{modelId}/converse`` and ``/converse-stream``, one shape
  for every Bedrock model (:mod:`switchpoint.providers.bedrock_converse`).
* ``invoke``: ``POST /model/{modelId}/invoke`` and ``/invoke-with-response-stream`` with the
  Anthropic Messages body (``anthropic_version: bedrock-2023-05-31``, no ``model`` or
  ``stream`` in the body, ``anthropic-beta`` carried as ``anthropic_beta``). The body, the
  answer and the stream's events are the Anthropic family's: this adapter is given the
  Anthropic adapter (``registry.py``) and composes it rather than repeating its translation.

Streams come in AWS's binary event-stream framing (:mod:`switchpoint.providers.eventstream`,
both checksums checked). Requests are signed with SigV4 by botocore's signer
(:mod:`switchpoint.providers.aws_auth`), with credentials kept fresh off the request path; a
provider with an ``api_key`` (a Bedrock API key) sends it as a bearer token instead.

The endpoint is ``https://bedrock-runtime.{region}.amazonaws.com`` for the deployment's region,
unless the provider gives a ``base_url`` (a VPC endpoint, the simulator).

Errors: the type comes from ``x-amzn-errortype`` (or the body's ``__type``), the message from
the body's ``message``: ``ThrottlingException`` and ``ServiceQuotaExceededException`` →
``rate_limited``; ``ValidationException`` → ``bad_request``, or ``context_too_long`` when it
says the input is too long; ``ModelNotReadyException`` / ``ServiceUnavailableException`` →
``overloaded``; ``AccessDeniedException`` → ``permission``; ``UnrecognizedClientException``,
``InvalidSignatureException``, ``ExpiredTokenException`` … → ``authentication``;
``ResourceNotFoundException`` → ``not_found``; ``ModelTimeoutException`` → ``timeout``;
``ModelErrorException`` / ``InternalServerException`` / ``ModelStreamErrorException`` →
``server_error``. The same names inside a stream (``throttlingException`` …) classify alike.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import msgspec

from switchpoint.canonical import ChatRequest, ChatResponse, StreamEvent
from switchpoint.config import Deployment, Secret
from switchpoint.errors import ProviderError
from switchpoint.providers import bedrock_converse as converse
from switchpoint.providers.aws_auth import sign
from switchpoint.providers.base import Adapter, StreamParser, UpstreamRequest, UpstreamResponse
from switchpoint.providers.credentials import CREDENTIALS
from switchpoint.providers.eventstream import EventStreamDecoder
from switchpoint.streaming import SSEFrame

BEDROCK_ANTHROPIC_VERSION = "bedrock-2023-05-31"
MAX_ERROR_MESSAGE = 500
_JSON = "application/json"
_EVENTSTREAM = "application/vnd.amazon.eventstream"

_ERROR_KINDS: dict[str, str] = {
    "throttlingexception": "rate_limited",
    "servicequotaexceededexception": "rate_limited",
    "toomanyrequestsexception": "rate_limited",
    "validationexception": "bad_request",
    "modelnotreadyexception": "overloaded",
    "serviceunavailableexception": "overloaded",
    "accessdeniedexception": "permission",
    "unrecognizedclientexception": "authentication",
    "invalidsignatureexception": "authentication",
    "expiredtokenexception": "authentication",
    "incompletesignatureexception": "authentication",
    "missingauthenticationtokenexception": "authentication",
    "resourcenotfoundexception": "not_found",
    "modeltimeoutexception": "timeout",
    "modelerrorexception": "server_error",
    "internalserverexception": "server_error",
    "modelstreamerrorexception": "server_error",
    "conflictexception": "bad_request",
}
_STATUS_KINDS: dict[int, str] = {
    400: "bad_request",
    401: "authentication",
    403: "permission",
    404: "not_found",
    408: "timeout",
    413: "request_too_large",
    424: "server_error",
    429: "rate_limited",
    503: "overloaded",
    504: "timeout",
}
_TOO_LONG = re.compile(
    r"too long|too many (?:input )?tokens|context (?:limit|window|length)|exceeds? the maximum|"
    r"maximum context|input length",
    re.IGNORECASE,
)
_AWS_KEY = re.compile(r"(?:AKIA|ASIA)[A-Z0-9]{16}")


def endpoint(deployment: Deployment) -> str:
    base = deployment.provider.base_url
    if base:
        return base
    return f"https://bedrock-runtime.{deployment.region}.amazonaws.com"


def error_kind(name: str, message: str, status: int | None) -> str:
    kind = _ERROR_KINDS.get(name.lower())
    if kind is None:
        kind = _STATUS_KINDS.get(status or 0) or ("server_error" if (status or 500) >= 500 else "bad_request")
    if kind == "bad_request" and _TOO_LONG.search(message):
        kind = "context_too_long"
    return kind


def _safe(message: str) -> str:
    message = _AWS_KEY.sub("[redacted]", message)
    if len(message) > MAX_ERROR_MESSAGE:
        message = message[: MAX_ERROR_MESSAGE - 1] + "…"
    return message


def _error_fields(headers: Mapping[str, str], body: bytes) -> tuple[str, str]:
    name = headers.get("x-amzn-errortype", "")
    message = ""
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        data = None
    if isinstance(data, dict):
        raw = data.get("message") or data.get("Message") or ""
        message = raw if isinstance(raw, str) else ""
        if not name and isinstance(data.get("__type"), str):
            name = data["__type"]
    name = name.split(":", 1)[0].rsplit("#", 1)[-1]
    return name, message


def stream_exception(event: str, data: bytes) -> ProviderError:
    """An exception (or error) message inside an event stream."""
    name = event.split(":", 2)[2] if event.count(":") >= 2 else event
    message = ""
    try:
        body = msgspec.json.decode(data)
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            message = body["message"]
    except msgspec.DecodeError:
        message = data.decode("utf-8", "replace")
    kind = error_kind(name, message, None)
    text = _safe(message) or f"the Bedrock stream reported {name or 'an error'}"
    return ProviderError(kind, text, upstream_status=200, code=name or None)


class BedrockAdapter(Adapter):
    family = "bedrock"

    def __init__(self, messages: Adapter) -> None:
        #: The Anthropic Messages adapter, for deployments with ``api: invoke``.
        self._messages = messages

    # --- requests --------------------------------------------------------------------------

    def build_chat(self, request: ChatRequest, deployment: Deployment) -> UpstreamRequest:
        model = quote(deployment.model, safe="")
        base = endpoint(deployment)
        if deployment.api == "invoke":
            body = self._invoke_body(request, deployment)
            action = "invoke-with-response-stream" if request.stream else "invoke"
        else:
            body = msgspec.json.encode(converse.build_body(request, deployment))
            action = "converse-stream" if request.stream else "converse"
        url = f"{base}/model/{model}/{action}"
        headers = {"content-type": _JSON, "accept": _EVENTSTREAM if request.stream else _JSON}
        for name, value in deployment.provider.headers:
            headers[name] = value.reveal() if isinstance(value, Secret) else value
        headers = self._authorize(deployment, url, headers, body)
        return UpstreamRequest(method="POST", url=url, headers=headers, body=body, stream=request.stream)

    def _invoke_body(self, request: ChatRequest, deployment: Deployment) -> bytes:
        up = self._messages.build_chat(request, deployment)
        body = msgspec.json.decode(up.body)
        body.pop("model", None)
        body.pop("stream", None)
        body["anthropic_version"] = BEDROCK_ANTHROPIC_VERSION
        beta = up.headers.get("anthropic-beta")
        if beta:
            body["anthropic_beta"] = [b.strip() for b in beta.split(",") if b.strip()]
        return msgspec.json.encode(body)

    def _authorize(
        self, deployment: Deployment, url: str, headers: dict[str, str], body: bytes
    ) -> dict[str, str]:
        key = deployment.provider.api_key
        if key is not None:  # a Bedrock API key
            headers["authorization"] = f"Bearer {key.reveal()}"
            return headers
        source = CREDENTIALS.for_provider(deployment.provider)
        assert source is not None
        credentials = source.current()
        region = deployment.region or deployment.provider.region or ""
        return sign(credentials, region, "POST", url, headers, body)

    # --- answers ---------------------------------------------------------------------------

    def parse_chat(self, response: UpstreamResponse, deployment: Deployment) -> ChatResponse:
        if deployment.api == "invoke":
            parsed = self._messages.parse_chat(response, deployment)
            parsed.family = self.family  # Bedrock's body, not one to pass through as is
            return parsed
        return converse.parse_body(response.body, response.headers, deployment)

    def stream_parser(self, request: ChatRequest, deployment: Deployment) -> StreamParser:
        if deployment.api == "invoke":
            return InvokeStreamParser(self._messages.stream_parser(request, deployment))
        return ConverseParser(deployment)

    def classify(self, response: UpstreamResponse, deployment: Deployment) -> ProviderError:
        name, message = _error_fields(response.headers, response.body)
        kind = error_kind(name, message, response.status)
        text = _safe(message) or f"the Bedrock upstream answered HTTP {response.status}"
        return ProviderError(
            kind,
            text,
            upstream_status=response.status,
            retry_after=_retry_after(response.headers),
            deployment=deployment.name,
            code=name or None,
        )


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


class ConverseParser(converse.ConverseStreamParser):
    """ConverseStream, framed in AWS's event stream."""

    frame_decoder = EventStreamDecoder

    def __init__(self, deployment: Deployment) -> None:
        super().__init__(deployment, converse.response_id(None), stream_exception)


class _Chunk(msgspec.Struct):
    bytes: str


_CHUNK = msgspec.json.Decoder(_Chunk)


class InvokeStreamParser:
    """InvokeModelWithResponseStream: each ``chunk`` event carries one Anthropic stream event
    (base64 JSON), which the Anthropic parser reads as if it were its SSE frame."""

    passthrough_marks = None
    frame_decoder = EventStreamDecoder

    def __init__(self, inner: StreamParser) -> None:
        self._inner = inner

    def feed(self, frame: SSEFrame) -> list[StreamEvent]:
        event = frame.event or ""
        if event == "chunk":
            try:
                data = base64.b64decode(_CHUNK.decode(frame.data).bytes, validate=True)
            except (msgspec.MsgspecError, binascii.Error, ValueError):
                raise ProviderError(
                    "invalid_response", "upstream invoke stream chunk is not base64 JSON"
                ) from None
            name = _event_type(data)
            return self._inner.feed(SSEFrame(name, data, data))
        if event.startswith(":"):
            raise stream_exception(event, frame.data)
        return []

    def close(self) -> list[StreamEvent]:
        return self._inner.close()


def _event_type(data: bytes) -> str | None:
    try:
        value: Any = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    return kind if isinstance(kind, str) else None
