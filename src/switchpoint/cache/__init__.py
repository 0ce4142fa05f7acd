"""Caching (layer L4, beside routing and governance): provider prompt-cache planning per family
(``prompt``), the exact response cache (``response``) and the semantic cache (``semantic``).
docs/caching.md describes every setting."""

from __future__ import annotations

from switchpoint.cache.prompt import PromptCaching
from switchpoint.config import Config


class Caches:
    """What the request path asks: ``prompt`` (None: no prompt caching added)."""

    __slots__ = ("prompt",)

    def __init__(self, config: Config) -> None:
        settings = config.cache
        wanted = settings.prompt or any(r.prompt for r in settings.rules.values())
        self.prompt = PromptCaching(settings) if wanted else None

    def configure(self, config: Config) -> Caches:
        """The caches for a reloaded config."""
        return Caches(config)


__all__ = ["Caches", "PromptCaching"]
