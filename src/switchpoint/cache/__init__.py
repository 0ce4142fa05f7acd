"""Caching (layer L4, beside routing and governance): provider prompt-cache planning per family
(``prompt``), the exact response cache (``response``) and the semantic cache (``semantic``).
docs/caching.md describes every setting."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from switchpoint.cache.backends import Backend, MemoryBackend, RedisBackend
from switchpoint.cache.disk import SqliteBackend
from switchpoint.cache.prompt import PromptCaching
from switchpoint.cache.response import ResponseCache
from switchpoint.cache.semantic import Embedder, SemanticCache
from switchpoint.config import Config
from switchpoint.config.base import Secret


def _backend(config: Config) -> Backend:
    settings = config.cache
    if settings.backend == "redis":
        url = config.state.redis_url
        assert url is not None  # the config refuses redis without state.redis_url
        return RedisBackend(url.reveal() if isinstance(url, Secret) else url, config.state.prefix + "cache:")
    if settings.backend == "sqlite":
        assert settings.path is not None  # the config refuses sqlite without a path
        return SqliteBackend(settings.path, settings.max_bytes)
    return MemoryBackend(settings.max_bytes)


class Caches:
    """What the request path asks: ``prompt`` and ``response`` (None: not configured, and the
    request path pays one attribute read for it)."""

    __slots__ = ("_closing", "_embedder", "prompt", "response")

    def __init__(
        self,
        config: Config,
        *,
        embedder: Callable[[], Embedder | None] | None = None,
        keep: ResponseCache | None = None,
    ) -> None:
        self._embedder = embedder
        self._closing: list[asyncio.Task[None]] = []
        settings = config.cache
        wanted = settings.prompt or any(r.prompt for r in settings.rules.values())
        self.prompt = PromptCaching(settings) if wanted else None
        self.response: ResponseCache | None = None
        if settings.responses_possible:
            semantic = None
            if embedder is not None and (
                settings.semantic or any(r.semantic for r in settings.rules.values())
            ):
                semantic = SemanticCache(settings.threshold, settings.max_entries, embedder)
            if keep is not None and (keep.settings.backend, keep.settings.path) == (
                settings.backend,
                settings.path,
            ):
                keep.settings = settings  # a reload keeps the entries
                if isinstance(keep.backend, MemoryBackend | SqliteBackend):
                    keep.backend.max_bytes = settings.max_bytes
                if semantic is None or keep.semantic is None or keep.semantic.capacity != semantic.capacity:
                    keep.semantic = semantic
                else:
                    keep.semantic.threshold = semantic.threshold
                self.response = keep
            else:
                self.response = ResponseCache(settings, _backend(config), semantic)

    def configure(self, config: Config) -> Caches:
        """The caches for a reloaded config (the response cache's entries are kept; a backend
        the new config no longer uses is closed)."""
        fresh = Caches(config, embedder=self._embedder, keep=self.response)
        old = self.response
        if old is not None and fresh.response is not old:
            fresh._closing.append(asyncio.get_running_loop().create_task(old.close()))
        fresh._closing += self._closing
        return fresh

    async def close(self) -> None:
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        if self.response is not None:
            await self.response.close()

    def stats(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt is not None,
            "response": self.response.stats() if self.response is not None else None,
        }

    def prometheus(self) -> list[str]:
        """The response cache's counters (none when it is not configured)."""
        cache = self.response
        if cache is None:
            return []
        lines: list[str] = []
        for name, value, help_ in (
            ("hits", cache.hits, "Answers served from the response cache (exact and semantic)."),
            ("semantic_hits", cache.semantic_hits, "Answers served by the semantic cache."),
            ("misses", cache.misses, "Eligible requests the response cache could not answer."),
            ("stored", cache.stored, "Answers stored in the response cache."),
        ):
            lines += [
                f"# HELP switchpoint_response_cache_{name}_total {help_}",
                f"# TYPE switchpoint_response_cache_{name}_total counter",
                f"switchpoint_response_cache_{name}_total {value}",
            ]
        backend = cache.backend
        if isinstance(backend, MemoryBackend | SqliteBackend):
            size = backend.bytes if isinstance(backend, MemoryBackend) else backend.total_bytes()
            lines += [
                "# HELP switchpoint_response_cache_bytes Bytes of answers in the response cache "
                "(memory: this process's; sqlite: the file's).",
                "# TYPE switchpoint_response_cache_bytes gauge",
                f"switchpoint_response_cache_bytes {size}",
            ]
        return lines


__all__ = ["Caches", "PromptCaching", "ResponseCache"]
