"""Where cached answers live: this process's memory (bounded in bytes, least recently used out)
or Redis (shared by replicas, bounded by the server's ``maxmemory`` policy).

Both answer ``get`` with the stored bytes or None and never raise: a Redis that does not answer
is a miss (logged once per outage), never a failed request. ``put`` never blocks the request path
(Redis writes go out on tracked tasks, which :meth:`close` waits for).

Governance's ``State`` (``governance/state.py``) is a protocol of counters, windows and budgets;
a key-value store with a TTL is not among its operations and the cache layer may not import
governance (they are siblings), so the cache keeps this small protocol of its own over the same
Redis server (``state.redis_url``, keys under ``state.prefix`` + ``cache:``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger("switchpoint.cache")


class Backend(Protocol):
    name: str

    async def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, value: bytes, ttl_s: float) -> None: ...

    async def close(self) -> None: ...


class MemoryBackend:
    """Entries by key, each with its expiry; the total of their sizes stays under ``max_bytes``."""

    name = "memory"

    def __init__(self, max_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        return self.get_now(key)

    def get_now(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: str, value: bytes, ttl_s: float) -> None:
        size = len(value)
        if size > self.max_bytes:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (self._clock() + ttl_s, value)
        self.bytes += size
        while self.bytes > self.max_bytes:
            oldest = next(iter(self._entries))
            self._drop(oldest)
            self.evictions += 1

    def _drop(self, key: str) -> None:
        _, value = self._entries.pop(key)
        self.bytes -= len(value)

    async def close(self) -> None:
        self._entries.clear()
        self.bytes = 0


class RedisBackend:
    """``GET`` / ``SET … PX`` under ``prefix``; a client of its own (redis-py asyncio)."""

    name = "redis"

    def __init__(self, url: str, prefix: str, *, client: Any = None) -> None:
        import redis.asyncio as aioredis

        self._redis: Any = client if client is not None else aioredis.Redis.from_url(url)
        self.prefix = prefix
        self._tasks: set[asyncio.Task[None]] = set()
        self._down = False

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self._redis.get(self.prefix + key)
        except Exception as exc:
            self._failed(exc)
            return None
        self._up()
        return bytes(value) if value is not None else None

    def put(self, key: str, value: bytes, ttl_s: float) -> None:
        task = asyncio.get_running_loop().create_task(self._put(key, value, ttl_s))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _put(self, key: str, value: bytes, ttl_s: float) -> None:
        try:
            await self._redis.set(self.prefix + key, value, px=max(1, int(ttl_s * 1000)))
        except Exception as exc:
            self._failed(exc)

    def _failed(self, exc: BaseException) -> None:
        if not self._down:
            self._down = True
            log.warning("response cache: Redis does not answer (%s); answering without the cache", exc)

    def _up(self) -> None:
        if self._down:
            self._down = False
            log.warning("response cache: Redis answers again")

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._redis.aclose()
