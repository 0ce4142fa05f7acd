"""The dialect seam: how one client wire format maps to and from the canonical model.

A dialect decodes the client's body into a canonical request (raising ``BadRequest`` with a
useful message and ``param`` on bad input), encodes canonical responses and stream events back,
and renders every :class:`SwitchpointError` in its own error shape. Dialects never import
``providers``: they see only canonical values (and, for passthrough, the upstream's raw bytes
when the upstream family equals the dialect's name).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import TypeVar

import msgspec

from switchpoint.canonical import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    StreamEvent,
)
from switchpoint.errors import BadRequest, NotFound, SwitchpointError
from switchpoint.streaming import SSEFrame

log = logging.getLogger("switchpoint")
T = TypeVar("T")


# --- the decode boundary ---------------------------------------------------------------------


def undecodable(exc: Exception) -> BadRequest:
    """The one translation of a decoder's or validator's failure on a client's body.

    The readers raise :class:`BadRequest` with a precise message and ``param`` for every
    mistake they check for; anything else they raise while reading (msgspec's errors, a
    ``RecursionError`` for a body nested deeper than the decoder goes, a ``TypeError`` from an
    unhashable value where a string was expected, a ``KeyError``, a ``UnicodeDecodeError`` …)
    is the body's fault too, not the gateway's: it becomes a 400 with a message that carries
    no internals. The original is logged at debug level, so a reader's blind spot can be found.
    """
    log.debug("request body not decodable: %r", exc, exc_info=exc)
    if isinstance(exc, RecursionError):
        return BadRequest("the request body is nested too deeply")
    if isinstance(exc, msgspec.MsgspecError | UnicodeError):
        return BadRequest(f"could not parse the JSON body: {exc}")
    return BadRequest("the request body could not be read: a value has an unexpected type or shape")


def decode_boundary(
    read: Callable[[bytes, Mapping[str, str]], T], body: bytes, headers: Mapping[str, str]
) -> T:
    """``read(body, headers)``, every failure a :class:`BadRequest` (see :func:`undecodable`)."""
    try:
        return read(body, headers)
    except SwitchpointError:
        raise
    except Exception as exc:
        raise undecodable(exc) from None


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

    def result(self) -> bytes | None:
        """The whole answer, encoded, once :meth:`finish` has run (for a dialect that keeps
        answers: Responses); None where the dialect has no such object."""
        return None


class Dialect(ABC):
    """A client wire format. Subclasses implement the readers (``read_chat``,
    ``read_embeddings``); callers use ``decode_chat`` / ``decode_embeddings``, the decode
    boundary around them: whatever a body makes a reader raise is a :class:`BadRequest`."""

    name: str

    def decode_chat(self, body: bytes, headers: Mapping[str, str]) -> ChatRequest:
        """The client's chat body as a canonical request; every failure a :class:`BadRequest`."""
        try:  # the boundary of decode_boundary, inline: this is every chat request's path
            return self.read_chat(body, headers)
        except SwitchpointError:
            raise
        except Exception as exc:
            raise undecodable(exc) from None

    def decode_embeddings(self, body: bytes, headers: Mapping[str, str]) -> EmbeddingRequest:
        """The client's embeddings body as a canonical request; every failure a :class:`BadRequest`."""
        return decode_boundary(self.read_embeddings, body, headers)

    @abstractmethod
    def read_chat(self, body: bytes, headers: Mapping[str, str]) -> ChatRequest:
        """Decode and validate a chat body (called through :meth:`decode_chat` only)."""

    @abstractmethod
    def encode_chat(self, response: ChatResponse, request: ChatRequest) -> bytes: ...

    @abstractmethod
    def stream_encoder(self, request: ChatRequest) -> StreamEncoder: ...

    @abstractmethod
    def render_error(self, err: SwitchpointError) -> tuple[int, bytes]:
        """(HTTP status, JSON body) for an error in this dialect."""

    def read_embeddings(self, body: bytes, headers: Mapping[str, str]) -> EmbeddingRequest:
        raise NotFound(f"Embeddings are not served in the {self.name} dialect")

    def encode_embeddings(self, response: EmbeddingResponse, request: EmbeddingRequest) -> bytes:
        raise NotImplementedError
