"""The semantic cache (opt-in): a request whose last user message means the same as one answered
before, in the same scope, gets that answer.

* **Scope**: everything but the last user message must be equal — the tenant (key or team), the
  dialect and stream framing, the rule, the model alias, the system prompt, the earlier turns,
  tools, response format and sampling parameters (a hash of the request without its last
  message). Only the wording of the last question may differ.
* **Similarity**: the cosine of the last user messages' embeddings (all-MiniLM-L6-v2, the model
  routing's classifier already loads; nothing is downloaded) at or above ``threshold``.
* **Eligible** only where the exact cache would be (same rules, same client directives).
* **Index**: one float32 matrix in this process (at most ``max_entries`` rows, the oldest
  replaced first) and a scope id per row; a search is one matrix-vector product over the rows
  (numpy), the rows of other scopes masked out. The answers themselves live in the exact
  cache's backend under their exact key, so its TTL and byte bound apply to them too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from switchpoint.canonical import ChatRequest

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vectors = npt.NDArray[np.float32]
else:
    Vectors = Any

DIMENSION = 384
_ENCODE = msgspec.json.Encoder(order="sorted").encode


class Embedder(Protocol):
    def embed(self, texts: Sequence[str]) -> Vectors: ...


def question(request: ChatRequest) -> str | None:
    """The text the semantic cache compares: the last message, when it is the user's."""
    if not request.messages:
        return None
    last = request.messages[-1]
    if last.role != "user":
        return None
    text = last.text().strip()
    return text or None


def semantic_scope(request: ChatRequest, scope: str, rule: str | None) -> int:
    """A 63-bit id of everything but the last message (see the module's docstring)."""
    h = hashlib.blake2b(digest_size=8)
    h.update(
        f"{scope}\x00{request.dialect}|{int(request.stream)}|{int(request.include_usage)}|{rule or ''}".encode()
    )
    rest = msgspec.structs.replace(
        request,
        messages=request.messages[:-1],
        raw=None,
        user=None,
        metadata=None,
        passthrough_headers=None,
        prompt_cache=None,
    )
    h.update(_ENCODE(rest))
    if request.raw is not None:  # fields only the wire knows decide the answer too
        extra = {k: v for k, v in request.raw.items() if k not in ("messages", "system", "user", "metadata")}
        h.update(_ENCODE(extra))
    return int.from_bytes(h.digest(), "little") >> 1


class SemanticIndex:
    """Unit vectors with their scope ids and exact-cache keys, bounded (oldest replaced)."""

    __slots__ = ("_keys", "_next", "_np", "_scopes", "_size", "_vectors", "capacity")

    def __init__(self, capacity: int, dimension: int = DIMENSION) -> None:
        import numpy

        self._np: Any = numpy
        self.capacity = capacity
        self._vectors = numpy.zeros((capacity, dimension), dtype=numpy.float32)
        self._scopes = numpy.full(capacity, -1, dtype=numpy.int64)
        self._keys: list[str | None] = [None] * capacity
        self._next = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, scope: int, vector: Vectors, key: str) -> None:
        i = self._next
        self._vectors[i] = vector
        self._scopes[i] = scope
        self._keys[i] = key
        self._next = (i + 1) % self.capacity
        self._size = min(self._size + 1, self.capacity)

    def search(self, scope: int, vector: Vectors, threshold: float) -> tuple[str, float] | None:
        """The most similar entry of ``scope`` at or above ``threshold``: (its key, similarity)."""
        n = self._size
        if n == 0:
            return None
        np = self._np
        same = self._scopes[:n] == scope
        rows = np.flatnonzero(same)
        if rows.size == 0:
            return None
        if rows.size * 8 < n:  # a few rows: gather them
            sims = self._vectors[rows] @ vector
            best = int(np.argmax(sims))
            row = int(rows[best])
        else:  # most rows: one product over the matrix, other scopes masked (no copy)
            sims = self._vectors[:n] @ vector
            sims[~same] = -2.0
            row = best = int(np.argmax(sims))
        score = float(sims[best])
        if score < threshold:
            return None
        key = self._keys[row]
        return (key, score) if key is not None else None


class SemanticCache:
    """The index and the embedder (loaded on first use, in a worker thread by the caller)."""

    __slots__ = ("_embedder", "_factory", "_index", "capacity", "threshold")

    def __init__(self, threshold: float, capacity: int, embedder: Callable[[], Embedder | None]) -> None:
        self.threshold = threshold
        self.capacity = capacity
        self._factory = embedder
        self._embedder: Embedder | None = None
        self._index: SemanticIndex | None = None

    def embed(self, text: str) -> Vectors | None:
        """The text's unit vector (blocking: call it in a thread), None without the model."""
        if self._embedder is None:
            self._embedder = self._factory()
            if self._embedder is None:
                return None
        vector: Vectors = self._embedder.embed([text])[0]
        return vector

    @property
    def index(self) -> SemanticIndex:
        if self._index is None:
            self._index = SemanticIndex(self.capacity)
        return self._index

    def search(self, scope: int, vector: Vectors) -> tuple[str, float] | None:
        return self.index.search(scope, vector, self.threshold)

    def add(self, scope: int, vector: Vectors, key: str) -> None:
        self.index.add(scope, vector, key)
