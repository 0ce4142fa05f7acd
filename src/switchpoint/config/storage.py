"""The ``storage:`` section: the durable ledger (docs/configuration.md, "Storage").

On by default, on a SQLite file next to where the gateway runs; ``SWITCHPOINT_DATABASE_URL``
overrides ``url`` (so one config serves a laptop and a team's PostgreSQL).
"""

from __future__ import annotations

import re

import msgspec

from switchpoint.config.base import _Base

DEFAULT_URL = "sqlite:///./switchpoint.db"
#: Overrides ``storage.url`` when set.
ENV_URL = "SWITCHPOINT_DATABASE_URL"


class StorageSpec(_Base):
    enabled: bool = True
    #: SQLAlchemy URL: ``sqlite:///path.db`` or ``postgresql://user:pass@host/db``.
    url: str | None = None
    #: Keep request and response bodies (redacted with ``redact``); off: never stored.
    store_bodies: bool = False
    #: Regular expressions whose matches are replaced by ``[REDACTED]`` in stored bodies.
    redact: list[str] = msgspec.field(default_factory=list)
    #: Delete requests older than this many days (unset: keep everything).
    retention_days: float | None = None
    flush_interval_ms: int = 200
    flush_rows: int = 500
    #: Rows waiting for the database before new ones spill to ``spill_path``.
    buffer_rows: int = 20_000
    #: JSON-lines file for rows the database could not take yet (default: beside a SQLite
    #: database, else ``./switchpoint-spill.jsonl``); replayed when the database is back.
    spill_path: str | None = None
    #: Background responses (``background: true``) one worker runs at once; past it, a 429.
    background_max_inflight: int = 64
    #: Stream events a background response keeps in memory while it runs (for resuming).
    background_events: int = 10_000
    #: How often a worker marks its background responses alive (and sweeps dead ones).
    background_heartbeat_s: float = 10.0
    #: A queued or in-progress background response unmarked this long is failed (its worker died).
    background_stale_s: float = 60.0


class Storage(msgspec.Struct, frozen=True, kw_only=True):
    enabled: bool = True
    #: None: ``SWITCHPOINT_DATABASE_URL``, else :data:`DEFAULT_URL` (see ``store.engine.database_url``).
    url: str | None = None
    store_bodies: bool = False
    redact: tuple[str, ...] = ()
    retention_days: float | None = None
    flush_interval_ms: int = 200
    flush_rows: int = 500
    buffer_rows: int = 20_000
    spill_path: str | None = None
    background_max_inflight: int = 64
    background_events: int = 10_000
    background_heartbeat_s: float = 10.0
    background_stale_s: float = 60.0


def resolve_storage(spec: StorageSpec | None, problems: list[str]) -> Storage:
    if spec is None:
        return Storage()
    for i, pattern in enumerate(spec.redact):
        try:
            re.compile(pattern)
        except re.error as exc:
            problems.append(f"$.storage.redact[{i}]: not a regular expression ({exc})")
    for name in (
        "flush_interval_ms",
        "flush_rows",
        "buffer_rows",
        "background_max_inflight",
        "background_events",
        "background_heartbeat_s",
    ):
        if getattr(spec, name) <= 0:
            problems.append(f"$.storage.{name}: must be positive")
    if spec.retention_days is not None and spec.retention_days <= 0:
        problems.append("$.storage.retention_days: must be positive (omit it to keep everything)")
    if spec.background_stale_s <= spec.background_heartbeat_s:
        problems.append("$.storage.background_stale_s: must be longer than background_heartbeat_s")
    if spec.url is not None and "://" not in spec.url:
        problems.append(
            f"$.storage.url: not a database URL (sqlite:///file.db, postgresql://…): {spec.url!r}"
        )
    return Storage(
        enabled=spec.enabled,
        url=spec.url,
        store_bodies=spec.store_bodies,
        redact=tuple(spec.redact),
        retention_days=spec.retention_days,
        flush_interval_ms=spec.flush_interval_ms,
        flush_rows=spec.flush_rows,
        buffer_rows=spec.buffer_rows,
        spill_path=spec.spill_path,
        background_max_inflight=spec.background_max_inflight,
        background_events=spec.background_events,
        background_heartbeat_s=spec.background_heartbeat_s,
        background_stale_s=spec.background_stale_s,
    )
