"""The exact response cache: an answer given again to the same request from the same tenant.

* **Key**: a hash of what decides the answer — the scope (the caller's key, or its team), the
  client's dialect and whether it streams (an entry is the exact bytes that client got), the
  rule, and the request itself: the client's body (model alias, messages, tools, response format,
  sampling parameters and every other field; ``user`` and ``metadata`` left out) after the
  rule's presets.
* **Eligible** by default only when the answer is deterministic enough: ``temperature`` 0 or a
  ``seed`` (``cache.response.deterministic_only`` / a rule's ``deterministic_only: false`` lift
  that). Only 200 answers are stored, at most ``max_entry_bytes`` each, for ``ttl_s``.
* **The client decides too**: ``Cache-Control: no-store`` or ``x-switchpoint-cache: bypass``
  neither reads nor writes; ``Cache-Control: no-cache`` or ``x-switchpoint-cache: refresh``
  skips the read and stores the fresh answer. Every answer says which:
  ``x-switchpoint-cache: hit | miss | bypass``.
* A streamed hit replays the stored pieces: the same events, in the client's own framing.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from switchpoint.cache.backends import Backend
from switchpoint.cache.semantic import SemanticCache, Vectors, question, semantic_scope
from switchpoint.canonical import ChatRequest, Usage
from switchpoint.config.cache import Caching

HEADER = "x-switchpoint-cache"
SIMILARITY_HEADER = "x-switchpoint-cache-similarity"
_ENCODE = msgspec.json.Encoder(order="sorted").encode
#: Body fields that name the caller rather than decide the answer.
_IGNORED = ("user", "metadata")


class Entry(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """A stored answer: the body (or the stream's pieces) and what the ledger books for a hit."""

    deployment: str
    usage: Usage | None = None
    body: bytes = b""
    chunks: list[bytes] | None = None


_ENTRY_ENCODE = msgspec.msgpack.Encoder().encode
_ENTRY_DECODE = msgspec.msgpack.Decoder(Entry).decode


class Lookup:
    """What the cache said about one request: ``hit`` (an entry to answer with), else ``key``
    (where to store the answer; None: do not store) and, for the semantic cache, the last
    message's vector and the request's semantic scope."""

    __slots__ = ("hit", "key", "scope", "vector")

    def __init__(self, key: str | None, hit: Entry | None = None) -> None:
        self.key = key
        self.hit = hit
        self.vector: Vectors | None = None
        self.scope = 0


BYPASS = Lookup(None)


def deterministic(request: ChatRequest) -> bool:
    return request.temperature == 0 or request.seed is not None


def client_wants(headers: Mapping[str, str]) -> tuple[bool, bool]:
    """(read, write) as the client's ``Cache-Control`` and ``x-switchpoint-cache`` allow."""
    read = write = True
    control = headers.get("cache-control")
    if control:
        directives = {d.strip().lower() for d in control.split(",")}
        if "no-store" in directives:
            return False, False
        if "no-cache" in directives:
            read = False
    mode = headers.get(HEADER)
    if mode:
        mode = mode.strip().lower()
        if mode == "bypass":
            return False, False
        if mode == "refresh":
            read = False
    return read, write


def request_key(request: ChatRequest, scope: str, rule: str | None) -> str:
    """The entry's key: a hash of the scope, the wire and the body that decides the answer."""
    h = hashlib.blake2b(digest_size=20)
    h.update(scope.encode())
    h.update(b"\x00")
    h.update(f"{request.dialect}|{int(request.stream)}|{int(request.include_usage)}|{rule or ''}".encode())
    h.update(b"\x00")
    raw = request.raw
    if raw is not None:
        body = {k: v for k, v in raw.items() if k not in _IGNORED}
        body["model"] = request.model
        # The rule's presets change the request after it was read: they decide the answer too.
        body["\x00presets"] = [request.temperature, request.top_p, request.max_tokens, request.seed]
        h.update(_ENCODE(body))
    else:
        h.update(
            _ENCODE(msgspec.structs.replace(request, user=None, metadata=None, passthrough_headers=None))
        )
    return h.hexdigest()


class ResponseCache:
    """The ``cache.response`` settings over a backend (one per gateway)."""

    __slots__ = ("backend", "hits", "misses", "semantic", "semantic_hits", "settings", "stored")

    def __init__(self, settings: Caching, backend: Backend, semantic: SemanticCache | None = None) -> None:
        self.settings = settings
        self.backend = backend
        self.semantic = semantic
        self.hits = self.misses = self.stored = self.semantic_hits = 0

    def _rule(self, rule: str | None) -> tuple[bool, bool, float, bool]:
        """(enabled, deterministic only, TTL, semantic) for requests that matched ``rule``; the
        semantic cache on implies the exact cache (it keeps the answers)."""
        s = self.settings
        found = s.rules.get(rule) if rule is not None else None
        if found is None:
            return s.response or s.semantic, s.deterministic_only, s.ttl_s, s.semantic
        semantic = s.semantic if found.semantic is None else found.semantic
        enabled = (s.response if found.response is None else found.response) or semantic
        only = s.deterministic_only if found.deterministic_only is None else found.deterministic_only
        return enabled, only, s.ttl_s if found.ttl_s is None else found.ttl_s, semantic

    def scope(self, key_id: str | None, team: str | None, principal: str | None) -> str:
        """Who shares answers: the key (or the team with ``scope: team``); never two tenants."""
        if self.settings.scope == "team" and team is not None:
            return f"team:{team}"
        if key_id is not None:
            return f"key:{key_id}"
        return f"principal:{principal or ''}"

    async def lookup(
        self,
        request: ChatRequest,
        rule: str | None,
        scope: str,
        request_headers: Mapping[str, str],
        headers: dict[str, str],
    ) -> Lookup:
        """Read the cache for ``request`` and mark ``headers`` (hit, miss or bypass)."""
        enabled, only, _, semantic = self._rule(rule)
        read, write = client_wants(request_headers)
        if not enabled or not write or (only and not deterministic(request)):
            headers[HEADER] = "bypass"
            return BYPASS
        key = request_key(request, scope, rule)
        if read:
            entry = await self._get(key)
            if entry is not None:
                self.hits += 1
                headers[HEADER] = "hit"
                return Lookup(key, entry)
        found = Lookup(key)
        cache = self.semantic if semantic else None
        text = question(request) if cache is not None else None
        if cache is not None and text is not None:
            found.scope = semantic_scope(request, scope, rule)
            vector, near = await asyncio.to_thread(cache.find, text, found.scope, read)
            if vector is not None:
                found.vector = vector
                entry = await self._get(near[0]) if near is not None else None
                if near is not None and entry is not None:
                    self.hits += 1
                    self.semantic_hits += 1
                    headers[HEADER] = "hit"
                    headers[SIMILARITY_HEADER] = f"{near[1]:.4f}"
                    return Lookup(None, entry)
        self.misses += 1
        headers[HEADER] = "miss"
        return found

    async def _get(self, key: str) -> Entry | None:
        raw = await self.backend.get(key)
        if raw is None:
            return None
        try:
            return _ENTRY_DECODE(raw)
        except msgspec.DecodeError:
            return None

    def store(self, lookup: Lookup, rule: str | None, entry: Entry) -> None:
        """Keep an answer (never blocks; too large an answer is not kept)."""
        key = lookup.key
        if key is None:
            return
        value = _ENTRY_ENCODE(entry)
        if len(value) > self.settings.max_entry_bytes:
            return
        self.stored += 1
        self.backend.put(key, value, self._rule(rule)[2])
        if lookup.vector is not None and self.semantic is not None:
            self.semantic.add(lookup.scope, lookup.vector, key)

    def stats(self) -> dict[str, Any]:
        return {
            "backend": self.backend.name,
            "hits": self.hits,
            "semantic_hits": self.semantic_hits,
            "misses": self.misses,
            "stored": self.stored,
        }

    async def close(self) -> None:
        await self.backend.close()


class Recorder:
    """A miss's stream on its way to the client, its pieces kept; when it ends well
    (``ok()``), they are stored with ``done``."""

    __slots__ = ("_chunks", "_done", "_ok", "_size", "_stream", "limit")

    def __init__(
        self, stream: Any, ok: Callable[[], bool], done: Callable[[list[bytes]], None], limit: int
    ) -> None:
        self._stream = stream
        self._ok = ok
        self._done = done
        self._chunks: list[bytes] | None = []
        self._size = 0
        self.limit = limit

    def __aiter__(self) -> Recorder:
        return self

    async def __anext__(self) -> bytes:
        try:
            piece: bytes = await self._stream.__anext__()
        except StopAsyncIteration:
            chunks, self._chunks = self._chunks, None
            if chunks is not None and self._ok():
                self._done(chunks)
            raise
        chunks = self._chunks
        if chunks is not None:
            self._size += len(piece)
            if self._size > self.limit:
                self._chunks = None
            else:
                chunks.append(piece)
        return piece

    async def aclose(self) -> None:
        self._chunks = None
        await self._stream.aclose()


class Replay:
    """A streamed hit: the stored pieces again, one per read."""

    __slots__ = ("_chunks", "_i")

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks
        self._i = 0

    def __aiter__(self) -> Replay:
        return self

    async def __anext__(self) -> bytes:
        i = self._i
        if i >= len(self._chunks):
            raise StopAsyncIteration
        self._i = i + 1
        return self._chunks[i]

    async def aclose(self) -> None:
        self._i = len(self._chunks)
