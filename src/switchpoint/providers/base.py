"""The adapter seam: one pure translator per wire family.

An adapter turns a canonical request into bytes for its upstream (:class:`UpstreamRequest`),
and the upstream's answer back into canonical values. It never opens a socket: the executor
owns the one pooled HTTP client, sends what ``build_*`` returns and hands the answer to
``parse_*`` / :class:`StreamParser` / ``classify``.

Lossless passthrough: when ``request.dialect == self.family`` and ``request.raw`` is set,
``build_chat`` starts from the client's own body (unknown fields kept) and changes only what
the gateway must (the upstream model id, streaming usage reporting).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Protocol

import msgspec

from switchpoint.canonical import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    MediaRequest,
    MediaResponse,
    StreamEvent,
    anthropic_only_blocks,
)
from switchpoint.config import Deployment
from switchpoint.errors import ProviderError
from switchpoint.streaming import Marks, SSEFrame


def reject_anthropic_only_blocks(request: ChatRequest, family: str) -> None:
    """Translation to a non-Anthropic family fails clearly on blocks it cannot carry."""
    found = anthropic_only_blocks(request.messages)
    if found:
        param, types = found[0]
        raise ProviderError(
            "bad_request",
            f"{param} has block type(s) {', '.join(sorted(set(types)))} that only Anthropic models accept; "
            f"this request was routed to a {family} model",
            param=param,
        )


class UpstreamRequest(msgspec.Struct, kw_only=True):
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    stream: bool = False


class UpstreamResponse(msgspec.Struct, kw_only=True):
    """A complete (non-streaming) upstream answer. Header names are lower-case."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class FrameDecoder(Protocol):
    """Bytes in, frames out: SSE (:class:`~switchpoint.streaming.SSEDecoder`) unless a stream
    parser names its own framing in a ``frame_decoder`` attribute (a class or factory), as
    Bedrock's binary event stream does. Such a parser has no ``passthrough_marks``."""

    def feed(self, chunk: bytes) -> list[SSEFrame]: ...

    def flush(self) -> list[SSEFrame]: ...


class StreamParser(Protocol):
    """Stateful parser of one upstream stream (one instance per attempt)."""

    @property
    def passthrough_marks(self) -> Marks | None:
        """When the client speaks this family, what marks the frames that must still be parsed
        once the stream is committed (usage, an error, the end; see ``executor/stream.py``): a
        frame in which one of the marks matches is parsed; the others are forwarded as bytes,
        unread. A false match costs one parse; a missed one loses usage, an error or the end.
        ``None``: parse every frame."""
        ...

    def feed(self, frame: SSEFrame) -> list[StreamEvent]:
        """Canonical events for one SSE frame. Raises :class:`ProviderError` on an error
        event or on a frame that cannot be understood (kind ``invalid_response``)."""
        ...

    def close(self) -> list[StreamEvent]:
        """Called once at end of input. Raises ``ProviderError('invalid_response', ...)`` when the
        stream ended before its terminal event (a cut stream)."""
        ...


class Adapter(ABC):
    family: str

    @abstractmethod
    def build_chat(self, request: ChatRequest, deployment: Deployment) -> UpstreamRequest: ...

    @abstractmethod
    def parse_chat(self, response: UpstreamResponse, deployment: Deployment) -> ChatResponse:
        """Parse a 2xx body. The result has ``family`` set and ``raw`` = the body bytes.
        Raises ``ProviderError('invalid_response', ...)`` on a body that is not the expected shape."""

    @abstractmethod
    def stream_parser(self, request: ChatRequest, deployment: Deployment) -> StreamParser: ...

    @abstractmethod
    def classify(self, response: UpstreamResponse, deployment: Deployment) -> ProviderError:
        """Turn a non-2xx answer into a ProviderError (kind, retry_after, a safe message)."""

    def build_embeddings(self, request: EmbeddingRequest, deployment: Deployment) -> UpstreamRequest:
        raise ProviderError("bad_request", f"the {self.family} family has no embeddings API")

    def parse_embeddings(self, response: UpstreamResponse, deployment: Deployment) -> EmbeddingResponse:
        raise ProviderError("bad_request", f"the {self.family} family has no embeddings API")

    def build_media(self, request: MediaRequest, deployment: Deployment) -> UpstreamRequest:
        """The audio and image endpoints (``request.operation``); the OpenAI wire has them."""
        raise ProviderError("bad_request", f"the {self.family} family has no {request.operation} API")

    def parse_media(self, response: UpstreamResponse, request: MediaRequest) -> MediaResponse:
        raise ProviderError("bad_request", f"the {self.family} family has no {request.operation} API")
