"""The semantic cache (opt-in): a request whose last user message means the same as one answered
before, in the same scope, gets that answer.

* **Scope**: everything but the last user message must be equal — the tenant (key or team), the
  dialect and stream framing, the rule, the model alias, the system prompt, the earlier turns,
  tools, response format and sampling parameters (a hash of the request without its last
  message). Only the wording of the last question may differ.
* **Similarity**: the cosine of the last user messages' embeddings (all-MiniLM-L6-v2, the model
  routing's classifier already loads; nothing is downloaded) at or above ``threshold``.
* **Eligible** only where the exact cache would be (same rules, same client directives).
* **Index**: float32 rows in this process, by scope (at most ``max_entries`` in all, the oldest
  replaced first); a search reads only its scope's rows (numpy), pruned exactly by a bound over
  64 dimensions in a scope of thousands, and runs in a worker thread with the embedding. The
  answers themselves live in the exact cache's backend under their exact key, so its TTL and
  byte bound apply to them too.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
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


#: A scope with this many rows gets a pruning basis (below).
PRUNE_AT = 2048
#: Dimensions of the pruning basis.
PRUNE_DIMENSIONS = 64
#: Rows the basis is fitted on (the scope's latest).
_FIT_ROWS = 4096
#: Float32 rounding room for the bound (it must never drop a row that passes).
_SLACK = 1e-4


class _Rows:
    """One scope's rows, oldest first, in ``[start, end)`` of growable arrays (the oldest leave
    from the front; the arrays are compacted or doubled when the end is reached).

    Past :data:`PRUNE_AT` rows the scope gets an orthonormal basis ``B`` (the top singular
    directions of its latest rows) and keeps each row's projection ``Bx`` and the norm of what
    the projection misses, ``|x - BᵀBx|``. Then for every row, exactly (Cauchy-Schwarz on the
    residuals): ``q·x ≤ Bq·Bx + |rq|·|rx|``; a search computes that bound over 64 dimensions
    instead of 384 and takes the exact product only for the few rows whose bound reaches the
    threshold. Any orthonormal basis keeps it exact; a fitted one keeps the bound tight."""

    __slots__ = ("basis", "end", "fitted", "keys", "reduced", "residual", "start", "vectors")

    def __init__(self, np: Any, dimension: int) -> None:
        self.vectors = np.empty((16, dimension), dtype=np.float32)
        self.keys: list[str | None] = [None] * 16
        self.start = self.end = 0
        self.basis: Any = None
        self.reduced: Any = None
        self.residual: Any = None
        self.fitted = 0

    def __len__(self) -> int:
        return self.end - self.start

    def append(self, np: Any, vector: Vectors, key: str) -> None:
        if self.end == len(self.keys):
            self._make_room(np)
        i = self.end
        self.vectors[i] = vector
        self.keys[i] = key
        if self.basis is not None:
            self._project(np, i, i + 1)
        self.end = i + 1

    def drop_oldest(self) -> None:
        self.keys[self.start] = None
        self.start += 1

    def _make_room(self, np: Any) -> None:
        lo, hi, capacity = self.start, self.end, len(self.keys)
        live = hi - lo
        arrays = ("vectors", "reduced", "residual")
        if lo >= capacity // 2:  # half is gone from the front: move the live rows down
            for name in arrays:
                a = getattr(self, name)
                if a is not None:
                    a[:live] = a[lo:hi]
            self.keys[:live] = self.keys[lo:hi]
            self.keys[live:] = [None] * (capacity - live)
        else:  # double
            for name in arrays:
                a = getattr(self, name)
                if a is not None:
                    grown = np.empty((2 * capacity, *a.shape[1:]), dtype=a.dtype)
                    grown[:live] = a[lo:hi]
                    setattr(self, name, grown)
            self.keys = self.keys[lo:hi] + [None] * (2 * capacity - live)
        self.start, self.end = 0, live

    def _project(self, np: Any, lo: int, hi: int) -> None:
        rows = self.vectors[lo:hi]
        r = rows @ self.basis.T
        self.reduced[lo:hi] = r
        self.residual[lo:hi] = np.sqrt(
            np.maximum(0.0, np.einsum("ij,ij->i", rows, rows) - np.einsum("ij,ij->i", r, r))
        )

    def fit(self, np: Any) -> None:
        """The basis from the latest rows, and every live row projected on it."""
        lo, hi = self.start, self.end
        sample = self.vectors[max(lo, hi - _FIT_ROWS) : hi]
        _, _, vt = np.linalg.svd(sample, full_matrices=False)
        self.basis = np.ascontiguousarray(vt[:PRUNE_DIMENSIONS], dtype=np.float32)
        capacity = len(self.keys)
        self.reduced = np.empty((capacity, len(self.basis)), dtype=np.float32)
        self.residual = np.empty(capacity, dtype=np.float32)
        self._project(np, lo, hi)
        self.fitted = hi - lo

    def search(self, np: Any, vector: Vectors, threshold: float) -> tuple[int, float]:
        """(the best row, its similarity), or (-1, -2.0) when no row can reach ``threshold``."""
        lo, hi = self.start, self.end
        if hi - lo >= PRUNE_AT and (self.basis is None or hi - lo >= 4 * self.fitted):
            self.fit(np)
        candidates = None
        if self.basis is not None and hi - lo >= PRUNE_AT:
            q = self.basis @ vector
            rq = float(np.sqrt(max(0.0, float(vector @ vector) - float(q @ q))))
            upper = self.reduced[lo:hi] @ q
            upper += rq * self.residual[lo:hi]
            candidates = np.flatnonzero(upper >= threshold - _SLACK)
            if candidates.size == 0:
                return -1, -2.0
        if candidates is None or candidates.size * 8 > hi - lo:  # few rows, or a loose bound
            sims = self.vectors[lo:hi] @ vector
            best = int(np.argmax(sims))
            return lo + best, float(sims[best])
        rows = candidates + lo
        sims = self.vectors[rows] @ vector
        best = int(np.argmax(sims))
        return int(rows[best]), float(sims[best])


class SemanticIndex:
    """Unit vectors with their exact-cache keys, by scope, bounded (the oldest replaced first).

    A search reads only its scope's rows (pruned, exactly, in a large scope: :class:`_Rows`).
    Searches may run in worker threads: they hold the index's lock, and an :meth:`add` that
    finds it held is queued and applied by the next search instead of waiting (the event loop
    never waits for a search)."""

    __slots__ = ("_dimension", "_lock", "_np", "_order", "_pending", "_scopes", "_size", "capacity")

    def __init__(self, capacity: int, dimension: int = DIMENSION) -> None:
        import numpy

        self._np: Any = numpy
        self.capacity = capacity
        self._dimension = dimension
        self._scopes: dict[int, _Rows] = {}
        self._order: deque[int] = deque()  # the scope of every row, oldest first
        self._size = 0
        self._lock = threading.Lock()
        self._pending: deque[tuple[int, Vectors, str]] = deque()

    def __len__(self) -> int:
        return self._size + len(self._pending)

    def nbytes(self) -> int:
        """Bytes of the arrays held (vectors, and the pruning projections)."""
        arrays = (a for r in self._scopes.values() for a in (r.vectors, r.reduced, r.residual))
        return sum(a.nbytes for a in arrays if a is not None)

    def add(self, scope: int, vector: Vectors, key: str) -> None:
        if not self._lock.acquire(blocking=False):
            self._pending.append((scope, vector, key))
            return
        try:
            self._add(scope, vector, key)
        finally:
            self._lock.release()

    def _add(self, scope: int, vector: Vectors, key: str) -> None:
        while self._pending:  # what waited for a search, first
            self._add_one(*self._pending.popleft())
        self._add_one(scope, vector, key)

    def _add_one(self, scope: int, vector: Vectors, key: str) -> None:
        if self._size >= self.capacity:
            oldest = self._order.popleft()
            gone = self._scopes[oldest]
            gone.drop_oldest()
            if not gone:
                del self._scopes[oldest]
            self._size -= 1
        rows = self._scopes.get(scope)
        if rows is None:
            rows = self._scopes[scope] = _Rows(self._np, self._dimension)
        rows.append(self._np, vector, key)
        self._order.append(scope)
        self._size += 1

    def search(self, scope: int, vector: Vectors, threshold: float) -> tuple[str, float] | None:
        """The most similar entry of ``scope`` at or above ``threshold``: (its key, similarity)."""
        with self._lock:
            while self._pending:
                self._add_one(*self._pending.popleft())
            rows = self._scopes.get(scope)
            if rows is None:
                return None
            row, score = rows.search(self._np, vector, threshold)
            if row < 0 or score < threshold:
                return None
            key = rows.keys[row]
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

    def find(self, text: str, scope: int, read: bool) -> tuple[Vectors | None, tuple[str, float] | None]:
        """The text's vector and, when ``read``, its nearest entry in ``scope`` (blocking: one
        call in a worker thread does both)."""
        vector = self.embed(text)
        if vector is None or not read:
            return vector, None
        return vector, self.search(scope, vector)

    def add(self, scope: int, vector: Vectors, key: str) -> None:
        self.index.add(scope, vector, key)
