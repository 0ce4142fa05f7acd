"""Upstream adapters, one per wire family. Pure translation: no sockets here."""

from __future__ import annotations

from switchpoint.providers.base import Adapter, StreamParser, UpstreamRequest, UpstreamResponse

__all__ = ["Adapter", "StreamParser", "UpstreamRequest", "UpstreamResponse", "adapter_for"]


def adapter_for(family: str) -> Adapter:
    """The adapter instance for a wire family (adapters are stateless singletons)."""
    from switchpoint.providers.registry import ADAPTERS

    try:
        return ADAPTERS[family]
    except KeyError:
        raise ValueError(f"unknown wire family {family!r}") from None
