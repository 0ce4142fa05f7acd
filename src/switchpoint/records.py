"""Frozen values the request path hands to accounting (through a bounded queue).

Accounting never calls back into the request path; these records are all it sees.
"""

from __future__ import annotations

from typing import Any

import msgspec

from switchpoint.canonical import Usage


class Attempt(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
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


class RequestRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
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
    #: The routing decision's full explanation (``Decision.trace()``).
    route: dict[str, Any] | None = None
