"""Shared governance state: one protocol, two backends (this process's memory, or Redis).

Everything a limit or a budget needs to agree on across processes goes through :class:`State`:

- **windows** — a sliding 60-second window (``rpm``, ``tpm``): every request takes its amount
  and gets it back 60 s later, so no 60 seconds ever admit more than the limit; a TPM entry is
  later corrected to the real usage (:meth:`State.settle`);
- **slots** — requests in flight (``max_parallel``): taken at admission, given back at the end
  (a lease of :data:`SLOT_LEASE_S` frees a slot whose holder died without giving it back);
- **budgets** — USD spent in a period: the worst case is reserved at admission and corrected to
  the real cost at the end;
- **latches** — "fire once per period" (alerts).

:meth:`State.admit` checks every limit and budget of a request and takes them all, or none, in
one atomic step (one Lua script, one round trip, on Redis). :meth:`State.settle` never blocks
the request path: on memory it applies at once; on Redis it is sent by a background task
(:meth:`State.drain` waits for those).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol

import msgspec

from switchpoint.governance.resp import FastRedis, RespError

log = logging.getLogger("switchpoint.governance")

#: A slot not given back within this many seconds is freed (its holder died).
SLOT_LEASE_S = 900.0
WINDOW_S = 60.0
#: The memory state's window entries are kept per this many seconds: a request comes back at
#: most this much after its 60 s (never sooner, so a window never admits more than its limit).
BUCKET_S = 0.1
#: A window's token index is swept of stale tokens when it reaches this size (then twice the rest).
_SWEEP_AT = 4096
#: Budget and latch keys outlive their period by this much (then Redis drops them).
KEEP_AFTER_PERIOD_S = 86400.0
_EPS = 1e-9

Kind = Literal["window", "slot", "budget"]


class Check(msgspec.Struct, frozen=True):
    """One limit or budget a request falls under: ``key`` names it in the state.

    ``window``: ``amount`` of a 60 s window of ``limit`` (1 per request for RPM, tokens for TPM);
    ``slot``: one of ``limit`` in-flight slots; ``budget``: ``amount`` USD of ``limit`` for the
    period that ends at ``until`` (epoch seconds; 0: never).
    """

    kind: Kind
    key: str
    limit: float
    amount: float = 1.0
    until: float = 0.0


class Outcome(msgspec.Struct):
    """What :meth:`State.admit` answered: ``refused`` is the index of the first check that did
    not fit (None: all taken), ``retry_after`` when it could fit (seconds), ``used`` the level of
    each check after the admission (or at the refusal), and ``reset`` per check: seconds until
    its oldest entry leaves the window (windows), until the period ends (budgets)."""

    refused: int | None
    retry_after: float
    used: list[float]
    reset: list[float]


class Adjust(msgspec.Struct, frozen=True):
    """At the end of a request: give a slot back, correct a window entry or a budget by
    ``delta`` (real minus reserved)."""

    kind: Kind
    key: str
    delta: float = 0.0
    until: float = 0.0


class State(Protocol):
    """The seam every governance decision goes through (see the module's docstring)."""

    name: str

    async def admit(self, rid: str, checks: Sequence[Check]) -> Outcome: ...

    def settle(
        self, rid: str, adjusts: Sequence[Adjust], then: Callable[[list[float]], None] | None = None
    ) -> None:
        """Apply ``adjusts`` (without blocking); ``then`` gets each budget's spend after it (0
        for the other adjusts)."""
        ...

    async def drain(self) -> None: ...

    async def seed(self, key: str, spent: float, until: float) -> None:
        """Set a budget's spent-so-far unless it is known already (the ledger's figure)."""
        ...

    async def spent(self, key: str) -> float: ...

    async def latch(self, key: str, until: float) -> bool:
        """True exactly once per key (until ``until``), across every process."""
        ...

    async def close(self) -> None: ...


# --- this process ------------------------------------------------------------------------------


def _bucket(t: float) -> float:
    """``t`` rounded up to the next :data:`BUCKET_S` boundary."""
    return math.ceil(t / BUCKET_S) * BUCKET_S


class _Window:
    __slots__ = ("buckets", "entries", "live", "sum", "sweep_at")

    def __init__(self) -> None:
        #: [expiry, amount] oldest first: the requests admitted within one :data:`BUCKET_S`
        #: share one, and come back together at its end (at most that much after their 60 s),
        #: so a window holds a few hundred of them at any rate.
        self.entries: deque[list[float]] = deque()
        #: expiry → its entry (a settle corrects the entry its request went into).
        self.buckets: dict[float, list[float]] = {}
        #: token → the expiry of its entry, while its settle may still correct it (TPM).
        self.live: dict[str, float] = {}
        self.sum = 0.0
        self.sweep_at = _SWEEP_AT

    def take(self, expiry: float, amount: float) -> None:
        """Add ``amount`` to the entry that ends at ``expiry`` (a bucket boundary)."""
        entries = self.entries
        if entries and entries[-1][0] == expiry:
            entries[-1][1] += amount
        else:
            entry = [expiry, amount]
            entries.append(entry)
            self.buckets[expiry] = entry
        self.sum += amount

    def expire(self, now: float) -> None:
        entries, buckets = self.entries, self.buckets
        total = self.sum
        while entries and entries[0][0] <= now:
            exp, amount = entries.popleft()
            total -= amount
            buckets.pop(exp, None)
        self.sum = total if entries else 0.0
        live = self.live
        if len(live) >= self.sweep_at:  # tokens whose entry left before their settle came
            for token in [t for t, exp in live.items() if exp <= now]:
                del live[token]
            self.sweep_at = max(_SWEEP_AT, 2 * len(live))

    def correct(self, token: str, delta: float, now: float) -> None:
        """Correct the entry of ``token`` by ``delta`` (real minus reserved) while it is in
        the window; once only."""
        exp = self.live.pop(token, None)
        if exp is not None and exp > now:
            entry = self.buckets.get(exp)
            if entry is not None:
                entry[1] += delta
                self.sum += delta

    def wait_for(self, room: float, now: float) -> float:
        """Seconds until ``room`` more fits under the current sum."""
        freed = 0.0
        for exp, amount in self.entries:
            freed += amount
            if self.sum - freed <= room + _EPS:
                return max(0.0, float(exp) - now)
        return WINDOW_S


class MemoryState:
    """One process's state (the default). Every operation runs without awaiting, so each is
    atomic on the event loop."""

    name = "memory"

    def __init__(self, clock: Any = time.time) -> None:
        self._clock = clock
        self._windows: dict[str, _Window] = {}
        self._slots: dict[str, dict[str, float]] = {}
        self._budgets: dict[str, tuple[float, float]] = {}  # key -> (spent, until)
        self._latches: dict[str, float] = {}

    def _window(self, key: str) -> _Window:
        w = self._windows.get(key)
        if w is None:
            w = self._windows[key] = _Window()
        return w

    def _spent(self, key: str, now: float) -> float:
        found = self._budgets.get(key)
        if found is None:
            return 0.0
        spent, until = found
        if until and until + KEEP_AFTER_PERIOD_S <= now:
            del self._budgets[key]
            return 0.0
        return spent

    async def admit(self, rid: str, checks: Sequence[Check]) -> Outcome:
        return self.admit_now(rid, checks)

    def admit_now(self, rid: str, checks: Sequence[Check]) -> Outcome:
        now = self._clock()
        used: list[float] = []
        reset: list[float] = []
        found: list[Any] = []  # each check's window, slot holders, or None (a budget)
        windows, slots = self._windows, self._slots
        for i, c in enumerate(checks):
            kind = c.kind
            if kind == "window":
                w = windows.get(c.key)
                if w is None:
                    w = windows[c.key] = _Window()
                entries = w.entries
                if entries and entries[0][0] <= now:
                    w.expire(now)
                level = w.sum
                reset.append(entries[0][0] - now if entries else 0.0)
                # a request larger than the whole limit passes only through an empty window
                if level + c.amount > c.limit + _EPS and level > _EPS:
                    wait = w.wait_for(max(0.0, c.limit - c.amount), now)
                    return Outcome(i, wait, [*used, level], reset)
                found.append(w)
            elif kind == "slot":
                held = slots.get(c.key)
                if held is None:
                    held = slots[c.key] = {}
                elif len(held) >= c.limit:
                    for k in [k for k, exp in held.items() if exp <= now]:
                        del held[k]
                level = float(len(held))
                reset.append(0.0)
                if level + 1 > c.limit + _EPS:
                    return Outcome(i, 1.0, [*used, level], reset)
                found.append(held)
            else:
                level = self._spent(c.key, now)
                reset.append(max(0.0, c.until - now) if c.until else 0.0)
                if level + c.amount > c.limit + _EPS:
                    return Outcome(i, reset[-1], [*used, level], reset)
                found.append(None)
            used.append(level)
        for i, c in enumerate(checks):
            kind = c.kind
            amount = c.amount
            if kind == "window":
                w = found[i]
                exp = _bucket(now + WINDOW_S)
                w.take(exp, amount)
                w.live[rid] = exp
                if reset[i] <= 0.0:
                    reset[i] = WINDOW_S
            elif kind == "slot":
                found[i][rid] = now + SLOT_LEASE_S
            else:
                self._budgets[c.key] = (used[i] + amount, c.until)
            used[i] += amount
        return Outcome(None, 0.0, used, reset)

    def settle(
        self, rid: str, adjusts: Sequence[Adjust], then: Callable[[list[float]], None] | None = None
    ) -> None:
        now = self._clock()
        levels: list[float] = []
        for a in adjusts:
            levels.append(0.0)
            if a.kind == "slot":
                held = self._slots.get(a.key)
                if held is not None:
                    held.pop(rid, None)
            elif a.kind == "window":
                w = self._windows.get(a.key)
                if w is not None:
                    w.correct(rid, a.delta, now)
            else:
                spent = max(0.0, self._spent(a.key, now) + a.delta)
                self._budgets[a.key] = (spent, a.until)
                levels[-1] = spent
        if then is not None:
            then(levels)

    # --- the same, for a request whose checks were resolved once (the gate's usual path) ------

    def prepare(self, checks: Sequence[Check]) -> list[tuple[int, Any, float, str, float]]:
        """Checks resolved to this state's objects: (code, window | slot holders | None, limit,
        key, until); code 0 = a window of 1 per request (rpm), 1 = a window of the request's
        tokens (tpm), 2 = a slot, 3 = a budget of the request's cost. For :meth:`admit_prepared`."""
        out: list[tuple[int, Any, float, str, float]] = []
        for c in checks:
            if c.kind == "window":
                w = self._windows.get(c.key)
                if w is None:
                    w = self._windows[c.key] = _Window()
                out.append((0 if c.amount == 1.0 else 1, w, c.limit, c.key, 0.0))
            elif c.kind == "slot":
                out.append((2, self._slots.setdefault(c.key, {}), c.limit, c.key, 0.0))
            else:
                out.append((3, None, c.limit, c.key, c.until))
        return out

    def admit_prepared(
        self, rid: str, items: list[tuple[int, Any, float, str, float]], tokens: float, cost: float
    ) -> Outcome:
        """:meth:`admit_now` for prepared checks, with this request's tokens and cost: each is
        taken as it is checked, and what was taken is put back should a later one not fit."""
        now = self._clock()
        used: list[float] = []
        reset: list[float] = []
        budgets = self._budgets
        expiry = math.ceil((now + WINDOW_S) / BUCKET_S) * BUCKET_S
        for code, obj, limit, key, until in items:
            if code < 2:
                entries = obj.entries
                if entries:
                    oldest = entries[0][0]
                    if oldest <= now:
                        obj.expire(now)
                        oldest = entries[0][0] if entries else expiry
                else:
                    oldest = expiry
                level = obj.sum
                if code == 0:
                    if level + 1.0 > limit + _EPS and level > _EPS:
                        return self._put_back(rid, items, len(used), tokens, cost, used, reset, level, now)
                    if entries and entries[-1][0] == expiry:
                        entries[-1][1] += 1.0
                    else:
                        obj.take(expiry, 0.0)
                        entries[-1][1] = 1.0
                    obj.sum = level = level + 1.0
                else:
                    if level + tokens > limit + _EPS and level > _EPS:
                        return self._put_back(rid, items, len(used), tokens, cost, used, reset, level, now)
                    if entries and entries[-1][0] == expiry:
                        entries[-1][1] += tokens
                    else:
                        obj.take(expiry, 0.0)
                        entries[-1][1] = tokens
                    obj.live[rid] = expiry
                    obj.sum = level = level + tokens
                reset.append(oldest - now)
                used.append(level)
            elif code == 2:
                if len(obj) >= limit:
                    for k in [k for k, exp in obj.items() if exp <= now]:
                        del obj[k]
                level = float(len(obj))
                if level + 1 > limit + _EPS:
                    return self._put_back(rid, items, len(used), tokens, cost, used, reset, level, now)
                obj[rid] = now + SLOT_LEASE_S
                reset.append(0.0)
                used.append(level + 1.0)
            else:
                found = budgets.get(key)
                level = found[0] + cost if found is not None else cost
                if level > limit + _EPS:
                    return self._put_back(rid, items, len(used), tokens, cost, used, reset, level - cost, now)
                budgets[key] = (level, until)
                reset.append(until - now if until else 0.0)
                used.append(level)
        return Outcome(None, 0.0, used, reset)

    def _put_back(
        self,
        rid: str,
        items: list[tuple[int, Any, float, str, float]],
        refused: int,
        tokens: float,
        cost: float,
        used: list[float],
        reset: list[float],
        level: float,
        now: float,
    ) -> Outcome:
        """Check ``refused`` did not fit at ``level``: give back what the checks before it took;
        the refusal's outcome (as :meth:`admit_now` answers it)."""
        budgets = self._budgets
        for code, obj, _, key, until in items[:refused]:
            if code < 2:
                amount = 1.0 if code == 0 else tokens
                obj.entries[-1][1] -= amount  # the entry this admission added to, just now
                obj.sum -= amount
                if code == 1:
                    obj.live.pop(rid, None)
            elif code == 2:
                obj.pop(rid, None)
            else:
                spent, _ = budgets[key]
                budgets[key] = (spent - cost, until)
        code, obj, limit, _, until = items[refused]
        if code < 2:
            entries = obj.entries
            reset.append(entries[0][0] - now if entries else 0.0)
            wait = obj.wait_for(max(0.0, limit - (1.0 if code == 0 else tokens)), now)
            return Outcome(refused, wait, [*used, level], reset)
        if code == 2:
            reset.append(0.0)
            return Outcome(refused, 1.0, [*used, level], reset)
        reset.append(until - now if until else 0.0)
        return Outcome(refused, reset[-1], [*used, level], reset)

    def settle_prepared(
        self, rid: str, items: list[tuple[int, Any, float, str, float]], tokens: float, cost: float
    ) -> list[float]:
        """Correct a prepared admission by ``tokens`` and ``cost`` (real minus reserved) and give
        its slots back; the budgets' spend after it, in their order."""
        now = self._clock()
        levels: list[float] = []
        budgets = self._budgets
        for code, obj, _, key, until in items:
            if code == 1:
                obj.correct(rid, tokens, now)
            elif code == 2:
                obj.pop(rid, None)
            elif code == 3:
                found = budgets.get(key)
                spent = (found[0] if found is not None else 0.0) + cost
                if spent < 0.0:
                    spent = 0.0
                budgets[key] = (spent, until)
                levels.append(spent)
        return levels

    async def drain(self) -> None:
        return None

    async def seed(self, key: str, spent: float, until: float) -> None:
        if key not in self._budgets:
            self._budgets[key] = (spent, until)

    async def spent(self, key: str) -> float:
        return self._spent(key, self._clock())

    async def latch(self, key: str, until: float) -> bool:
        now = self._clock()
        exp = self._latches.get(key)
        if exp is not None and exp > now:
            return False
        self._latches[key] = until + KEEP_AFTER_PERIOD_S if until else float("inf")
        return True

    async def close(self) -> None:
        return None


# --- Redis ----------------------------------------------------------------------------------------

# KEYS[i]: the check's key (a window's amounts live in the hash KEYS[i] .. ':a', field '_' = sum).
# ARGV: rid, then the checks as JSON: [[kind (w|s|b), limit, amount, until], …]. The answer is
# JSON too: [refused (0: none, else the check's 1-based index), retry after, used, reset].
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local rid = ARGV[1]
local spec = cjson.decode(ARGV[2])
local n = #spec
local window = WINDOW_S
local lease = LEASE_S
local keep = KEEP_S
local eps = 1e-9
local used, reset = {}, {}
local function answer(refused, wait)
  return cjson.encode({refused, wait, used, reset})
end
for i = 1, n do
  local kind, limit, amount, until_ = spec[i][1], spec[i][2], spec[i][3], spec[i][4]
  local k = KEYS[i]
  local level
  if kind == 'w' then
    local h = k .. ':a'
    local old = redis.call('ZRANGEBYSCORE', k, '-inf', now)
    local sum = tonumber(redis.call('HGET', h, '_') or '0')
    if #old > 0 then
      for _, m in ipairs(old) do
        sum = sum - tonumber(redis.call('HGET', h, m) or '0')
        redis.call('HDEL', h, m)
      end
      redis.call('ZREMRANGEBYSCORE', k, '-inf', now)
      if redis.call('ZCARD', k) == 0 then sum = 0 end
      redis.call('HSET', h, '_', tostring(sum))
    end
    level = sum
    local first = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
    if #first > 0 then reset[i] = tonumber(first[2]) - now else reset[i] = 0 end
    if level + amount > limit + eps and level > eps then
      local room = limit - amount
      if room < 0 then room = 0 end
      local freed, wait = 0, window
      local all = redis.call('ZRANGE', k, 0, -1, 'WITHSCORES')
      for j = 1, #all, 2 do
        freed = freed + tonumber(redis.call('HGET', h, all[j]) or '0')
        if sum - freed <= room + eps then wait = tonumber(all[j + 1]) - now; break end
      end
      used[i] = level
      return answer(i, wait)
    end
  elseif kind == 's' then
    redis.call('ZREMRANGEBYSCORE', k, '-inf', now)
    level = redis.call('ZCARD', k)
    reset[i] = 0
    if level + 1 > limit + eps then
      used[i] = level
      return answer(i, 1)
    end
  else
    level = tonumber(redis.call('GET', k) or '0')
    if until_ > 0 then reset[i] = until_ - now else reset[i] = 0 end
    if level + amount > limit + eps then
      used[i] = level
      return answer(i, reset[i])
    end
  end
  used[i] = level
end
for i = 1, n do
  local kind, amount, until_ = spec[i][1], spec[i][3], spec[i][4]
  local k = KEYS[i]
  if kind == 'w' then
    local h = k .. ':a'
    redis.call('ZADD', k, now + window, rid)
    redis.call('HSET', h, rid, tostring(amount))
    redis.call('HINCRBYFLOAT', h, '_', amount)
    redis.call('PEXPIRE', k, math.floor((window + 1) * 1000))
    redis.call('PEXPIRE', h, math.floor((window + 1) * 1000))
    if reset[i] <= 0 then reset[i] = window end
  elseif kind == 's' then
    redis.call('ZADD', k, now + lease, rid)
    redis.call('PEXPIRE', k, math.floor((lease + 1) * 1000))
  else
    redis.call('INCRBYFLOAT', k, amount)
    if until_ > 0 and redis.call('PTTL', k) < 0 then
      redis.call('PEXPIREAT', k, math.floor((until_ + keep) * 1000))
    end
  end
  used[i] = used[i] + amount
end
return answer(0, 0)
"""

# ARGV: rid, then the adjusts as JSON: [[kind, delta, until], …]. Answers each one's level (JSON).
_SETTLE = """
local rid = ARGV[1]
local spec = cjson.decode(ARGV[2])
local n = #spec
local keep = KEEP_S
local levels = {}
for i = 1, n do
  levels[i] = 0
  local kind, delta, until_ = spec[i][1], spec[i][2], spec[i][3]
  local k = KEYS[i]
  if kind == 's' then
    redis.call('ZREM', k, rid)
  elseif kind == 'w' then
    local h = k .. ':a'
    if redis.call('ZSCORE', k, rid) then
      redis.call('HINCRBYFLOAT', h, rid, delta)
      redis.call('HINCRBYFLOAT', h, '_', delta)
    end
  else
    local v = tonumber(redis.call('INCRBYFLOAT', k, delta))
    if v < 0 then redis.call('SET', k, '0', 'KEEPTTL'); v = 0 end
    if until_ > 0 and redis.call('PTTL', k) < 0 then
      redis.call('PEXPIREAT', k, math.floor((until_ + keep) * 1000))
    end
    levels[i] = v
  end
end
return cjson.encode(levels)
"""

_CODE = {"window": "w", "slot": "s", "budget": "b"}
_JSON = msgspec.json.Encoder()
_DECODE = msgspec.json.decode


def _script(text: str) -> str:
    return (
        text.replace("WINDOW_S", repr(WINDOW_S))
        .replace("LEASE_S", repr(SLOT_LEASE_S))
        .replace("KEEP_S", repr(KEEP_AFTER_PERIOD_S))
    )


class RedisState:
    """State in Redis, shared by every process that uses the same URL and prefix."""

    name = "redis"

    def __init__(self, url: str, prefix: str = "switchpoint:", *, client: Any = None) -> None:
        import redis.asyncio as aioredis

        self.prefix = prefix
        self._redis: Any = client if client is not None else aioredis.Redis.from_url(url)
        self._scripts = {name: _script(text) for name, text in (("admit", _ADMIT), ("settle", _SETTLE))}
        self._sha = {
            name: hashlib.sha1(text.encode()).hexdigest().encode() for name, text in self._scripts.items()
        }
        #: The request path's two calls go over one pipelined connection of our own (redis://).
        self._fast = FastRedis(url) if url.startswith("redis://") and client is None else None
        self._admit = self._redis.register_script(self._scripts["admit"])
        self._settle = self._redis.register_script(self._scripts["settle"])
        self._pending: set[asyncio.Task[None]] = set()
        #: Settles written on the fast connection whose replies have not come back yet.
        self._sent: set[asyncio.Future[Any]] = set()
        #: Settle calls that failed (Redis unreachable): the reservation stays until it expires.
        self.settle_failures = 0

    def _k(self, key: str) -> str:
        return self.prefix + key

    async def _eval(self, name: str, keys: list[str], args: list[str | bytes]) -> Any:
        fast = self._fast
        if fast is None:
            script = self._admit if name == "admit" else self._settle
            return await script(keys=keys, args=args)
        call = (
            b"EVALSHA",
            self._sha[name],
            str(len(keys)).encode(),
            *[k.encode() for k in keys],
            *[a if isinstance(a, bytes) else a.encode() for a in args],
        )
        try:
            return await fast.call(*call)
        except RespError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            sha = await self._redis.script_load(self._scripts[name])
            self._sha[name] = sha.encode() if isinstance(sha, str) else bytes(sha)
            return await fast.call(call[0], self._sha[name], *call[2:])

    async def admit(self, rid: str, checks: Sequence[Check]) -> Outcome:
        prefix = self.prefix
        keys = [prefix + c.key for c in checks]
        spec = _JSON.encode([(_CODE[c.kind], c.limit, c.amount, c.until) for c in checks])
        refused, wait, used, reset = _DECODE(await self._eval("admit", keys, [rid, spec]))
        return Outcome(None if refused == 0 else refused - 1, float(wait), used, reset)

    def settle(
        self, rid: str, adjusts: Sequence[Adjust], then: Callable[[list[float]], None] | None = None
    ) -> None:
        if not adjusts:
            return
        fast = self._fast
        if fast is not None:  # written at once on the open connection; its reply read later
            keys = [(self.prefix + a.key).encode() for a in adjusts]
            spec = _JSON.encode([(_CODE[a.kind], a.delta, a.until) for a in adjusts])
            sent = fast.send_now(
                b"EVALSHA", self._sha["settle"], b"%d" % len(keys), *keys, rid.encode(), spec
            )
            if sent is not None:
                self._sent.add(sent)
                sent.add_done_callback(functools.partial(self._settled, rid, adjusts, then))
                return
        self._retry_settle(rid, adjusts, then)

    def _settled(
        self,
        rid: str,
        adjusts: Sequence[Adjust],
        then: Callable[[list[float]], None] | None,
        sent: asyncio.Future[Any],
    ) -> None:
        self._sent.discard(sent)
        if sent.cancelled() or sent.exception() is not None:  # NOSCRIPT, the connection lost
            self._retry_settle(rid, adjusts, then)
        elif then is not None:
            then([float(v) for v in _DECODE(sent.result())])

    def _retry_settle(
        self, rid: str, adjusts: Sequence[Adjust], then: Callable[[list[float]], None] | None
    ) -> None:
        task = asyncio.get_running_loop().create_task(self._send_settle(rid, adjusts, then))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _send_settle(
        self, rid: str, adjusts: Sequence[Adjust], then: Callable[[list[float]], None] | None
    ) -> None:
        prefix = self.prefix
        keys = [prefix + a.key for a in adjusts]
        args: list[str | bytes] = [rid, _JSON.encode([(_CODE[a.kind], a.delta, a.until) for a in adjusts])]
        levels: Any = None
        for attempt in range(3):
            try:
                levels = await self._eval("settle", keys, args)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if attempt == 2:
                    self.settle_failures += 1
                    log.warning("governance: settling %s in Redis failed (%s)", rid, type(exc).__name__)
                    return
                await asyncio.sleep(0.05 * (attempt + 1))
        if then is not None:
            then([float(v) for v in _DECODE(levels)])

    async def drain(self) -> None:
        while self._pending or self._sent:
            await asyncio.gather(*self._pending, *self._sent, return_exceptions=True)
            await asyncio.sleep(0)  # the done callbacks (a retry task among them) run

    async def seed(self, key: str, spent: float, until: float) -> None:
        args: dict[str, Any] = {"nx": True}
        if until:
            args["pxat"] = int((until + KEEP_AFTER_PERIOD_S) * 1000)
        await self._redis.set(self._k(key), repr(float(spent)), **args)

    async def spent(self, key: str) -> float:
        value = await self._redis.get(self._k(key))
        return float(value) if value is not None else 0.0

    async def latch(self, key: str, until: float) -> bool:
        args: dict[str, Any] = {"nx": True}
        if until:
            args["pxat"] = int((until + KEEP_AFTER_PERIOD_S) * 1000)
        return bool(await self._redis.set(self._k(key), "1", **args))

    async def close(self) -> None:
        await self.drain()
        if self._fast is not None:
            await self._fast.close()
        with contextlib.suppress(Exception):
            await self._redis.aclose()


def make_state(redis_url: str | None, prefix: str = "switchpoint:") -> State:
    """The backend the config asks for: Redis when ``state.redis_url`` is set, else memory."""
    if redis_url:
        return RedisState(redis_url, prefix)
    return MemoryState()
