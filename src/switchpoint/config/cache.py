"""The ``cache:`` section: provider prompt caching (automatic), the exact response cache and the
semantic cache (docs/caching.md has every setting)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Literal

import msgspec

from switchpoint.config.base import _Base

TTL = Literal["5m", "1h"]
Scope = Literal["key", "team"]
Backend = Literal["memory", "sqlite", "redis"]


class PromptCacheSpec(_Base):
    #: Add provider prompt caching to requests the client did not mark (on by default).
    enabled: bool = True
    #: Anthropic: the TTL of the breakpoints the gateway places (``5m`` or ``1h``).
    ttl: TTL = "5m"
    #: OpenAI: what ``prompt_cache_key`` is made from when the client sent none: the session,
    #: else the caller's key (``session``); the key only (``key``); never (``off``).
    openai_key: Literal["session", "key", "off"] = "session"


class ResponseCacheSpec(_Base):
    #: The exact response cache (off by default).
    enabled: bool = False
    #: Seconds an answer stays.
    ttl_s: float = 300.0
    #: Who shares answers: the same virtual key (``key``) or the same team (``team``).
    scope: Scope = "key"
    #: Only requests with temperature 0 or a ``seed`` are cached (unless a rule says otherwise).
    deterministic_only: bool = True
    #: ``memory`` (per process, bounded by bytes, LRU), ``sqlite`` (a file: survives a restart,
    #: shared by the processes of one host, bounded by bytes, LRU) or ``redis``
    #: (``state.redis_url``, shared by replicas).
    backend: Backend = "memory"
    #: The ``sqlite`` backend's file.
    path: str | None = None
    #: Memory and sqlite backends: bytes of answers kept at most.
    max_bytes: int = 64 * 1024 * 1024
    #: An answer larger than this is not cached.
    max_entry_bytes: int = 1024 * 1024


class SemanticCacheSpec(_Base):
    #: The semantic cache (off unless turned on here or by a rule).
    enabled: bool = False
    #: Cosine similarity a cached prompt needs to answer a new one (the default keeps false hits
    #: under 1% on tests/paraphrase_pairs.py; docs/caching.md has the measurement).
    threshold: float = 0.97
    #: Entries kept per process (oldest out).
    max_entries: int = 10_000


class CacheRuleSpec(_Base):
    """Overrides for the requests one routing rule matched (by the rule's name)."""

    prompt: bool | None = None
    prompt_ttl: TTL | None = None
    response: bool | None = None
    deterministic_only: bool | None = None
    ttl_s: float | None = None
    semantic: bool | None = None


class CacheSpec(_Base):
    prompt: PromptCacheSpec = msgspec.field(default_factory=PromptCacheSpec)
    response: ResponseCacheSpec = msgspec.field(default_factory=ResponseCacheSpec)
    semantic: SemanticCacheSpec = msgspec.field(default_factory=SemanticCacheSpec)
    #: Per routing rule (its ``name``, or ``alias:<name>`` for an alias no rule names).
    rules: dict[str, CacheRuleSpec] = msgspec.field(default_factory=dict)


class CacheRule(msgspec.Struct, frozen=True, kw_only=True):
    prompt: bool | None = None
    prompt_ttl: TTL | None = None
    response: bool | None = None
    deterministic_only: bool | None = None
    ttl_s: float | None = None
    semantic: bool | None = None


class Caching(msgspec.Struct, frozen=True, kw_only=True):
    """The resolved section."""

    prompt: bool = True
    prompt_ttl: TTL = "5m"
    openai_key: Literal["session", "key", "off"] = "session"
    response: bool = False
    ttl_s: float = 300.0
    scope: Scope = "key"
    deterministic_only: bool = True
    backend: Backend = "memory"
    path: str | None = None
    max_bytes: int = 64 * 1024 * 1024
    max_entry_bytes: int = 1024 * 1024
    semantic: bool = False
    threshold: float = 0.97
    max_entries: int = 10_000
    rules: Mapping[str, CacheRule] = msgspec.field(default_factory=dict)

    @property
    def responses_possible(self) -> bool:
        """Whether any request can use a response cache (else the request path skips it)."""
        on = self.response or self.semantic
        return on or any(r.response or r.semantic for r in self.rules.values())


def check_rule_names(
    caching: Caching, rules: Collection[str], aliases: Collection[str], problems: list[str]
) -> None:
    """``cache.rules`` may name only routing rules, or ``alias:<name>`` for an alias."""
    known = set(rules) | {f"alias:{a}" for a in aliases}
    for name in caching.rules:
        if name not in known:
            if not rules:
                problems.append(
                    f"$.cache.rules.{name}: no routing rule has this name (there is no routing section)"
                )
            else:
                problems.append(
                    f"$.cache.rules.{name}: no routing rule has this name "
                    f"(expected one of: {', '.join(sorted(known))})"
                )


def resolve_cache(spec: CacheSpec | None, problems: list[str], *, redis: bool) -> Caching:
    if spec is None:
        return Caching()
    r, s = spec.response, spec.semantic
    if r.ttl_s <= 0:
        problems.append("$.cache.response.ttl_s: must be positive")
    if r.max_bytes <= 0 or r.max_entry_bytes <= 0:
        problems.append("$.cache.response: max_bytes and max_entry_bytes must be positive")
    if r.backend == "redis" and not redis:
        problems.append("$.cache.response.backend: redis needs state.redis_url")
    if r.backend == "sqlite" and not r.path:
        problems.append("$.cache.response.path: the sqlite backend needs a file path")
    if not 0 < s.threshold <= 1:
        problems.append("$.cache.semantic.threshold: must be above 0 and at most 1")
    if s.max_entries <= 0:
        problems.append("$.cache.semantic.max_entries: must be positive")
    rules: dict[str, CacheRule] = {}
    for name, rule in spec.rules.items():
        if rule.ttl_s is not None and rule.ttl_s <= 0:
            problems.append(f"$.cache.rules.{name}.ttl_s: must be positive")
        rules[name] = CacheRule(**msgspec.structs.asdict(rule))
    return Caching(
        prompt=spec.prompt.enabled,
        prompt_ttl=spec.prompt.ttl,
        openai_key=spec.prompt.openai_key,
        response=r.enabled,
        ttl_s=r.ttl_s,
        scope=r.scope,
        deterministic_only=r.deterministic_only,
        backend=r.backend,
        path=r.path,
        max_bytes=r.max_bytes,
        max_entry_bytes=r.max_entry_bytes,
        semantic=s.enabled,
        threshold=s.threshold,
        max_entries=s.max_entries,
        rules=rules,
    )
