"""Frozen values the request path hands to accounting (through a bounded buffer).

Accounting never calls back into the request path; these records are all it sees.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgspec

from switchpoint.canonical import MediaUnits, Usage


class Attempt(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """One upstream call made for a request."""

    deployment: str
    provider: str
    family: str
    #: HTTP status the upstream answered (None: no answer, e.g. connection error).
    status: int | None = None
    #: Error kind (see ``errors.PROVIDER_KINDS``) or None on success.
    error: str | None = None
    error_message: str | None = None
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    usage: Usage | None = None
    #: When the attempt began, in ms after the request started (a timeline of attempts).
    offset_ms: float = 0.0
    #: A hedge: started while an earlier attempt was still running.
    hedge: bool = False


class Explained(Protocol):
    """A routing decision, as a record keeps it: explained in full only when read."""

    def trace(self) -> dict[str, Any]: ...


class RequestRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    request_id: str
    started_at: float
    dialect: str
    endpoint: str
    #: The model name the client asked for.
    model: str
    #: The deployment that produced the answer (None if every attempt failed).
    deployment: str | None = None
    stream: bool = False
    status: int = 200
    error: str | None = None
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    usage: Usage | None = None
    attempts: tuple[Attempt, ...] = ()
    principal: str | None = None
    #: The routing decision (None when the request failed before one was made).
    decision: Explained | None = None
    #: The caller: virtual key id and team (None for the master key / an open gateway) and
    #: the end user the client named (OpenAI ``user``, Anthropic ``metadata.user_id``).
    key_id: str | None = None
    team: str | None = None
    end_user: str | None = None
    #: Task type (``x-switchpoint-task`` or routing's classification) and session id.
    task: str | None = None
    session: str | None = None
    tags: tuple[str, ...] = ()
    #: Served from the gateway's response cache (no upstream call was billed).
    cached: bool = False
    #: Part of a batch (billed at the deployment's batch discount).
    batch: bool = False
    #: What an audio or image request is billed by (seconds, characters, images), when known.
    units: MediaUnits | None = None
    #: The request and response bodies, only when ``storage.store_bodies`` is on (redacted).
    request_body: bytes | None = None
    response_body: bytes | None = None

    @property
    def route(self) -> dict[str, Any] | None:
        """The routing decision's full explanation (``Decision.trace()``), built when read:
        most records are only counted, so the request path never pays for it."""
        return self.decision.trace() if self.decision is not None else None
