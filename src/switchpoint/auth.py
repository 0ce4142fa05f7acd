"""The key a client presents. Who that makes the caller (the master key, a virtual key, or an
open gateway's anonymous) is decided in :mod:`switchpoint.governance.access`."""

from __future__ import annotations

from collections.abc import Mapping


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a client sent: ``Authorization: Bearer …`` (OpenAI SDKs) or ``x-api-key`` (Anthropic)."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = headers.get("x-api-key")
    return key.strip() if key else None
