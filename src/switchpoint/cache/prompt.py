"""Provider prompt caching, decided per request (pure): whether the gateway adds caching to
what it sends upstream, with which TTL (Anthropic) and which ``prompt_cache_key`` (OpenAI).

The adapters apply the plan (``providers/anthropic.py`` places the breakpoints on the prompt's
longest stable prefix, ``providers/openai.py`` sends the key); a deployment with
``prompt_cache: false`` is left alone there. Gemini caches implicitly: nothing is added, the
cached tokens it reports are accounted like every family's.
"""

from __future__ import annotations

import hashlib

import msgspec

from switchpoint.canonical import ChatRequest, PromptCachePlan
from switchpoint.config.cache import Caching

#: No family caches a prefix shorter than this: a shorter prompt gets no plan at all.
MIN_CACHEABLE_TOKENS = 1024


def cache_key(value: str) -> str:
    """A ``prompt_cache_key`` that names the session or key without sending it upstream."""
    return "sp-" + hashlib.blake2b(value.encode(), digest_size=12).hexdigest()


class PromptCaching:
    """The ``cache.prompt`` settings and per-rule overrides, applied to one request."""

    __slots__ = ("_settings",)

    def __init__(self, settings: Caching) -> None:
        self._settings = settings

    def _base(self, rule: str | None) -> PromptCachePlan | None:
        s = self._settings
        found = s.rules.get(rule) if rule is not None else None
        enabled = s.prompt if found is None or found.prompt is None else found.prompt
        if not enabled:
            return None
        ttl = s.prompt_ttl if found is None or found.prompt_ttl is None else found.prompt_ttl
        return PromptCachePlan(ttl=ttl)

    def plan(
        self, rule: str | None, prompt_tokens: int, *, session: str | None, key_id: str | None
    ) -> PromptCachePlan | None:
        """The plan for a request that matched ``rule`` (None: nothing to add)."""
        if prompt_tokens < MIN_CACHEABLE_TOKENS:
            return None
        base = self._base(rule)
        if base is None:
            return None
        mode = self._settings.openai_key
        source = None
        if mode == "session":
            source = f"s:{session}" if session else (f"k:{key_id}" if key_id else None)
        elif mode == "key" and key_id:
            source = f"k:{key_id}"
        if source is None:
            return base
        return msgspec.structs.replace(base, key=cache_key(source))

    def apply(
        self,
        request: ChatRequest,
        rule: str | None,
        prompt_tokens: int,
        *,
        session: str | None,
        key_id: str | None,
    ) -> ChatRequest:
        plan = self.plan(rule, prompt_tokens, session=session, key_id=key_id)
        if plan is None:
            return request
        return msgspec.structs.replace(request, prompt_cache=plan)
