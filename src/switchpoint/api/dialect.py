"""The dialect seam: how one client wire format maps to and from the canonical model.

A dialect decodes the client's body into a canonical request (raising ``BadRequest`` with a
useful message and ``param`` on bad input), encodes canonical responses and stream events back,
and renders every :class:`SwitchpointError` in its own error shape. Dialects never import
``providers``: they see only canonical values (and, for passthrough, the upstream's raw bytes
when the upstream family equals the dialect's name).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

from switchpoint.canonical import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    StreamEvent,
)
from switchpoint.errors import SwitchpointError
from switchpoint.streaming import SSEFrame


class StreamEncoder(ABC):
    """Stateful encoder of one client stream."""

    @abstractmethod
    def commit(self, family: str) -> None:
        """Called once, when the stream commits to an upstream of wire ``family``. When the
        family equals the dialect, :meth:`encode` may forward upstream frames unchanged."""

    @abstractmethod
    def encode(self, events: list[StreamEvent], frame: SSEFrame | None) -> bytes:
        """Bytes to send the client for the events parsed from one upstream frame."""

    @abstractmethod
    def finish(self) -> bytes:
        """Bytes that properly end a stream whose upstream ended normally."""

    @abstractmethod
    def error(self, err: SwitchpointError) -> bytes:
        """Bytes that end a committed stream with an error event in this dialect."""


class Dialect(ABC):
    name: str

    @abstractmethod
    def decode_chat(self, body: bytes, headers: Mapping[str, str]) -> ChatRequest: ...

    @abstractmethod
    def encode_chat(self, response: ChatResponse, request: ChatRequest) -> bytes: ...

    @abstractmethod
    def stream_encoder(self, request: ChatRequest) -> StreamEncoder: ...

    @abstractmethod
    def render_error(self, err: SwitchpointError) -> tuple[int, bytes]:
        """(HTTP status, JSON body) for an error in this dialect."""

    def decode_embeddings(self, body: bytes, headers: Mapping[str, str]) -> EmbeddingRequest:
        raise NotImplementedError

    def encode_embeddings(self, response: EmbeddingResponse, request: EmbeddingRequest) -> bytes:
        raise NotImplementedError
