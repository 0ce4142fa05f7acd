"""Virtual keys: a presented secret → its :class:`Principal`, from an in-process cache.

A secret looks like ``sk-sp-<prefix>-<rest>``: the 10-character prefix is public (stored in clear,
shown in listings), the whole secret is stored only as its SHA-256. The request path looks the
prefix up in a dict, hashes what was presented and compares the digests in constant time; the
first use of a key reads its row once, in a thread (:meth:`KeyRing.load`), never on the loop.

Changes reach every replica's cache within a second: each change bumps a counter in the database
(``governance_version``); a background task (:meth:`KeyRing.run`) polls it every
:data:`POLL_S` seconds, or, with Redis, wakes on a pub/sub notice (and polls every
:data:`POLL_WITH_REDIS_S` as a safety net), then re-reads only what changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine

from switchpoint.config import Config, Secret
from switchpoint.errors import AuthenticationFailed, SwitchpointError
from switchpoint.governance.principal import Budgets, Limits, Principal, Team
from switchpoint.store import keys as store
from switchpoint.store.keys import KeyRow, TeamRow

log = logging.getLogger("switchpoint.governance")

SECRET_PREFIX = "sk-sp-"
PREFIX_CHARS = 10
#: ``sk-sp-`` + prefix + ``-`` + 43 characters of ``token_urlsafe(32)``.
SECRET_LENGTH = len(SECRET_PREFIX) + PREFIX_CHARS + 1 + 43
POLL_S = 0.5
POLL_WITH_REDIS_S = 5.0
#: Unknown prefixes remembered (so junk keys do not each cost a database read); cleared on change.
MAX_UNKNOWN = 10_000

_INVALID = "Invalid API key"


class KeyStoreUnavailable(SwitchpointError):
    """A key's first use could not read the database: a 503 the client may retry."""

    status = 503
    kind = "key_store_unavailable"
    default_retryable = True


def new_secret() -> tuple[str, str]:
    """A fresh secret and its public prefix."""
    prefix = secrets.token_hex(PREFIX_CHARS // 2)
    return f"{SECRET_PREFIX}{prefix}-{secrets.token_urlsafe(32)}", prefix


def digest(secret: str) -> str:
    """What is stored for a secret: its SHA-256, hex (the secret is 256 random bits)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def prefix_of(secret: str) -> str | None:
    """The public prefix of something shaped like a virtual key's secret (None: not one)."""
    if len(secret) != SECRET_LENGTH or not secret.startswith(SECRET_PREFIX):
        return None
    end = len(SECRET_PREFIX) + PREFIX_CHARS
    if secret[end] != "-":
        return None
    return secret[len(SECRET_PREFIX) : end]


def looks_like_key(secret: str) -> bool:
    return secret.startswith(SECRET_PREFIX)


def team_of(row: TeamRow) -> Team:
    return Team(
        id=row.id,
        name=row.name,
        limits=Limits(rpm=row.rpm, tpm=row.tpm, max_parallel=row.max_parallel),
        budgets=Budgets(
            daily=row.budget_daily,
            weekly=row.budget_weekly,
            monthly=row.budget_monthly,
            total=row.budget_total,
        ),
    )


def principal_of(row: KeyRow, team: TeamRow | None) -> Principal:
    return Principal(
        key_id=row.id,
        name=row.name,
        team=team_of(team) if team is not None else None,
        roles=frozenset(row.roles),
        allowed_aliases=row.allowed_aliases,
        limits=Limits(rpm=row.rpm, tpm=row.tpm, max_parallel=row.max_parallel),
        budgets=Budgets(
            daily=row.budget_daily,
            weekly=row.budget_weekly,
            monthly=row.budget_monthly,
            total=row.budget_total,
        ),
        priority=row.priority,
        tags=row.tags,
        metadata=dict(row.metadata),
        expires_at=row.expires_at,
    )


class _Entry:
    """One secret of one key, as the cache holds it."""

    __slots__ = ("digest", "principal", "revoked", "seen", "until")

    def __init__(self, principal: Principal, digest_hex: str, until: float | None, revoked: bool) -> None:
        self.principal = principal
        self.digest = bytes.fromhex(digest_hex)
        #: The secret itself, once a request has proved it against the digest (memory only):
        #: later requests compare against it in constant time without hashing again.
        self.seen: bytes | None = None
        #: A rotated-out secret: valid until then (None: the current secret).
        self.until = until
        self.revoked = revoked


def _entries(row: KeyRow, team: TeamRow | None) -> dict[str, _Entry]:
    p = principal_of(row, team)
    revoked = row.revoked_at is not None
    out = {row.prefix: _Entry(p, row.secret_hash, None, revoked)}
    if row.previous_prefix and row.previous_hash and row.previous_valid_until is not None:
        out[row.previous_prefix] = _Entry(p, row.previous_hash, row.previous_valid_until, revoked)
    return out


class KeyRing:
    """The virtual keys this process has seen, kept current with the database."""

    def __init__(
        self,
        engine: Engine,
        *,
        redis_url: str | None = None,
        channel: str = "switchpoint:governance:changes",
        poll_s: float | None = None,
    ) -> None:
        self.engine = engine
        self.redis_url = redis_url
        self.channel = channel
        self.poll_s = poll_s if poll_s is not None else (POLL_WITH_REDIS_S if redis_url else POLL_S)
        self._by_prefix: dict[str, _Entry] = {}
        #: Cached key id → its prefixes (current and previous) and team id.
        self._keys: dict[str, tuple[tuple[str, ...], str | None]] = {}
        self._unknown: set[str] = set()
        self._loading: dict[str, asyncio.Task[None]] = {}
        self.version = -1
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._redis: Any = None
        #: Counters for /admin/stats and the tests: database reads on a cache miss, refreshes.
        self.loads = 0
        self.refreshes = 0
        #: Change notices received over Redis pub/sub.
        self.notices = 0
        self._failing = False
        #: The poll's single-row read of the change number (one connection of its own).
        self._probe = store.VersionReader(engine)

    # --- the request path ---------------------------------------------------------------------

    def resolve(self, secret: str) -> Principal | None:
        """The secret's principal from the cache; None when the key must be loaded first.
        Raises :class:`AuthenticationFailed` for a wrong, revoked or expired secret."""
        prefix = prefix_of(secret)
        if prefix is None:
            raise AuthenticationFailed(_INVALID, code="invalid_api_key")
        entry = self._by_prefix.get(prefix)
        if entry is None:
            if prefix in self._unknown:
                raise AuthenticationFailed(_INVALID, code="invalid_api_key")
            return None
        presented = secret.encode()
        seen = entry.seen
        if seen is not None:
            if not hmac.compare_digest(presented, seen):
                raise AuthenticationFailed(_INVALID, code="invalid_api_key")
        elif hmac.compare_digest(hashlib.sha256(presented).digest(), entry.digest):
            entry.seen = presented
        else:
            raise AuthenticationFailed(_INVALID, code="invalid_api_key")
        if entry.revoked:
            raise AuthenticationFailed("This API key has been revoked", code="key_revoked")
        p = entry.principal
        if p.expires_at is not None or entry.until is not None:
            now = time.time()
            if p.expires_at is not None and now >= p.expires_at:
                raise AuthenticationFailed("This API key has expired", code="key_expired")
            if entry.until is not None and now >= entry.until:
                raise AuthenticationFailed("This API key was rotated; use its new secret", code="key_rotated")
        return p

    async def principal(self, secret: str) -> Principal:
        """The secret's principal, loading its key (once, in a thread) on first use."""
        p = self.resolve(secret)
        if p is not None:
            return p
        await self.load(secret)
        p = self.resolve(secret)
        if p is None:  # loaded, yet gone again (a change raced the load): the database decides
            raise AuthenticationFailed(_INVALID, code="invalid_api_key")
        return p

    async def load(self, secret: str) -> None:
        """Read the secret's key into the cache (concurrent first uses of one key share one read,
        which a caller that goes away does not cancel)."""
        prefix = prefix_of(secret)
        if prefix is None:
            return
        task = self._loading.get(prefix)
        if task is None:
            task = self._loading[prefix] = asyncio.create_task(self._load(prefix))
            task.add_done_callback(functools.partial(self._loaded, prefix))
        await asyncio.shield(task)

    def _loaded(self, prefix: str, task: asyncio.Task[None]) -> None:
        self._loading.pop(prefix, None)
        if not task.cancelled():
            task.exception()  # retrieved, even when every waiter has gone

    async def _load(self, prefix: str) -> None:
        try:
            for _ in range(3):  # a refresh that ran meanwhile could not see this key: re-read
                seen = self.version
                found = await asyncio.to_thread(store.key_by_prefix, self.engine, prefix)
                if self.version == seen:
                    break
        except Exception as exc:
            log.warning(
                "governance: could not read key %s%s… (%s)", SECRET_PREFIX, prefix, type(exc).__name__
            )
            raise KeyStoreUnavailable(
                "The gateway cannot check this API key right now: its key store is unavailable",
                retry_after=1.0,
            ) from None
        self.loads += 1
        if found is None:
            if len(self._unknown) >= MAX_UNKNOWN:
                self._unknown.clear()
            self._unknown.add(prefix)
        else:
            self._install(*found)

    # --- keeping the cache current ------------------------------------------------------------

    def _install(self, row: KeyRow, team: TeamRow | None) -> None:
        old = self._keys.pop(row.id, None)
        if old is not None:
            for prefix in old[0]:
                self._by_prefix.pop(prefix, None)
        entries = _entries(row, team)
        self._by_prefix.update(entries)
        self._keys[row.id] = (tuple(entries), row.team_id)

    def cached(self, key_id: str) -> bool:
        return key_id in self._keys

    def forget(self, key_ids: Iterable[str]) -> None:
        for key_id in key_ids:
            old = self._keys.pop(key_id, None)
            if old is not None:
                for prefix in old[0]:
                    self._by_prefix.pop(prefix, None)

    def _changes(self, since: int) -> tuple[int, list[tuple[KeyRow, TeamRow | None]]]:
        """(Thread) What changed after ``since`` among the cached keys, with their teams."""
        if self._probe.read() <= since:  # the usual poll: nothing changed
            return since, []
        now, ks, ts = store.changed_since(self.engine, since)
        if now <= since:
            return now, []
        changed = {k.id: k for k in ks if k.id in self._keys}
        team_ids = {t.id for t in ts}
        for key_id, (_, team_id) in list(self._keys.items()):
            if team_id is not None and team_id in team_ids and key_id not in changed:
                row = store.get_key(self.engine, key_id)
                if row is not None:
                    changed[key_id] = row
        needed = {k.team_id for k in changed.values() if k.team_id is not None}
        teams = store.teams_by_id(self.engine, sorted(needed))
        return now, [(k, teams.get(k.team_id) if k.team_id else None) for k in changed.values()]

    async def refresh(self) -> int:
        """Re-read what changed since the last refresh; returns the change number now seen."""
        since = self.version
        if since < 0:
            self.version = await asyncio.to_thread(store.current_version, self.engine)
            return self.version
        now, changed = await asyncio.to_thread(self._changes, since)
        if now > since:
            self._unknown.clear()  # a key created since may be one of them
            for row, team in changed:
                self._install(row, team)
            self.version = now
            self.refreshes += 1
        return self.version

    async def changed(self) -> None:
        """This process changed keys or teams: apply it here now, and tell the other replicas."""
        await self.refresh()
        await self.publish()

    async def publish(self) -> None:
        if self._redis is None:
            return
        try:
            await self._redis.publish(self.channel, str(self.version))
        except Exception as exc:  # the others still poll
            log.warning("governance: could not publish a key change to Redis (%s)", type(exc).__name__)

    async def start(self) -> None:
        if self._task is not None:
            return
        if self.redis_url:
            import redis.asyncio as aioredis

            self._redis = aioredis.Redis.from_url(self.redis_url)
        try:
            await self.refresh()
        except Exception as exc:
            log.warning("governance: the key store is not reachable yet (%s)", type(exc).__name__)
        self._task = asyncio.create_task(self.run(), name="switchpoint-keyring")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()
            self._redis = None
        await asyncio.to_thread(self._probe.close)
        await asyncio.to_thread(self.engine.dispose)

    async def run(self) -> None:
        """Poll (and listen on Redis) until cancelled."""
        listener = asyncio.create_task(self._listen()) if self._redis is not None else None
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_s)
                self._wake.clear()
                try:
                    await self.refresh()
                except Exception as exc:
                    if not self._failing:  # once per outage, not twice a second
                        log.warning("governance: key refresh failed (%s); retrying", type(exc).__name__)
                    self._failing = True
                else:
                    if self._failing:
                        log.warning("governance: key refresh works again")
                    self._failing = False
        finally:
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener

    async def _listen(self) -> None:
        while True:
            try:
                pubsub = self._redis.pubsub()
                await pubsub.subscribe(self.channel)
                try:
                    self._wake.set()  # catch up on whatever was missed while not listening
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self.notices += 1
                            self._wake.set()
                finally:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("governance: Redis listener lost (%s); retrying", type(exc).__name__)
                await asyncio.sleep(1.0)

    def stats(self) -> dict[str, int]:
        return {
            "keys_cached": len(self._keys),
            "loads": self.loads,
            "refreshes": self.refreshes,
            "notices": self.notices,
            "version": self.version,
        }


def publish_sync(redis_url: str | None, channel: str, version: int) -> None:
    """Tell running replicas about a change made outside them (the CLI)."""
    if not redis_url:
        return
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=2)
    try:
        client.publish(channel, str(version))
    except Exception as exc:
        log.warning("governance: could not publish a key change to Redis (%s)", type(exc).__name__)
    finally:
        client.close()


def redis_settings(config: Config) -> tuple[str | None, str]:
    """``state.redis_url`` (None: no Redis) and the prefix of every Redis name the gateway uses."""
    url = config.state.redis_url
    revealed = url.reveal() if isinstance(url, Secret) else url
    return revealed or None, config.state.prefix


def changes_channel(prefix: str) -> str:
    """The Redis channel key and team changes are announced on."""
    return f"{prefix}governance:changes"


def key_ring(config: Config) -> KeyRing | None:
    """The config's key ring: on the ledger's database (None when ``storage.enabled`` is false)."""
    if not config.storage.enabled:
        return None
    from switchpoint.store.engine import database_url, is_sqlite, make_engine

    url = database_url(config.storage.url)
    # its own small pool: a first use's read never waits behind the ledger's writer
    engine = make_engine(url) if is_sqlite(url) else make_engine(url, pool_size=2, max_overflow=4)
    redis_url, prefix = redis_settings(config)
    return KeyRing(engine, redis_url=redis_url, channel=changes_channel(prefix))
