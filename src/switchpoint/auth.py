"""Who is calling. For now one master key; no key configured means an open gateway."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from switchpoint.config import Secret
from switchpoint.errors import AuthenticationFailed


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a client sent: ``Authorization: Bearer …`` (OpenAI SDKs) or ``x-api-key`` (Anthropic)."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = headers.get("x-api-key")
    return key.strip() if key else None


class Authenticator:
    __slots__ = ("_key",)

    def __init__(self, master_key: Secret | None) -> None:
        self._key = master_key.reveal().encode() if master_key is not None else None

    @property
    def open(self) -> bool:
        return self._key is None

    def check(self, headers: Mapping[str, str]) -> str:
        """The principal's name, or raise :class:`AuthenticationFailed`."""
        if self._key is None:
            return "anonymous"
        key = presented_key(headers)
        if key is None:
            raise AuthenticationFailed(
                "Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'"
            )
        if not hmac.compare_digest(key.encode(), self._key):
            raise AuthenticationFailed("Invalid API key", code="invalid_api_key")
        return "master"
