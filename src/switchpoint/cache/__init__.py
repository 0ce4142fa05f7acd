"""Caching (layer L4, beside routing and governance): provider prompt-cache planning per family
(``prompt``), the exact response cache (``response``) and the semantic cache (``semantic``).
docs/caching.md describes every setting."""

from __future__ import annotations

from typing import Any

from switchpoint.cache.backends import Backend, MemoryBackend, RedisBackend
from switchpoint.cache.prompt import PromptCaching
from switchpoint.cache.response import ResponseCache
from switchpoint.config import Config
from switchpoint.config.base import Secret


def _backend(config: Config) -> Backend:
    settings = config.cache
    if settings.backend == "redis":
        url = config.state.redis_url
        assert url is not None  # the config refuses redis without state.redis_url
        return RedisBackend(url.reveal() if isinstance(url, Secret) else url, config.state.prefix + "cache:")
    return MemoryBackend(settings.max_bytes)


class Caches:
    """What the request path asks: ``prompt`` and ``response`` (None: not configured, and the
    request path pays one attribute read for it)."""

    __slots__ = ("prompt", "response")

    def __init__(self, config: Config, *, keep: ResponseCache | None = None) -> None:
        settings = config.cache
        wanted = settings.prompt or any(r.prompt for r in settings.rules.values())
        self.prompt = PromptCaching(settings) if wanted else None
        self.response: ResponseCache | None = None
        if settings.responses_possible:
            if keep is not None and keep.settings.backend == settings.backend:
                keep.settings = settings  # a reload keeps the entries
                self.response = keep
            else:
                self.response = ResponseCache(settings, _backend(config))

    def configure(self, config: Config) -> Caches:
        """The caches for a reloaded config (the response cache's entries are kept)."""
        return Caches(config, keep=self.response)

    async def close(self) -> None:
        if self.response is not None:
            await self.response.close()

    def stats(self) -> dict[str, Any]:
        return {"response": self.response.stats() if self.response is not None else None}


__all__ = ["Caches", "PromptCaching", "ResponseCache"]
