"""The durable ledger: a :class:`~switchpoint.accounting.Sink` that writes every booked request
(and its attempts) to the database, never on the request path.

On the event loop, :meth:`Ledger.write` only appends the batch to a bounded buffer. One tracked
writer thread (``switchpoint-ledger``) turns records into row tuples, builds the routing trace's
JSON, and writes a batch every ``flush_interval_ms`` or as soon as ``flush_rows`` are waiting: the
inserts and the per-instance totals in one transaction (``store.writer``). A thread, not an async
driver: the work is the row building (Python, off the loop) and the database call (the driver
releases the GIL), and one code path serves SQLite and PostgreSQL (docs/decisions.md).

What can be lost: a ``kill -9`` loses what was waiting in the buffer, the requests completed in the
last flush window (plus the one being written). A graceful stop (:meth:`close`) writes everything.
When the database is down or slow the request path never waits: a failed batch goes to the spill
file (JSON lines), and so do new records once the buffer is full (a second thread writes them); the
spill file is replayed when the database answers again or on the next start. Only when the spill
file cannot be written either are records dropped, and counted (``dropped``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from switchpoint.accounting import Booked
from switchpoint.accounting.route_form import compact
from switchpoint.canonical import MediaUnits, Usage
from switchpoint.config import Config, Deployment, Secret, Storage
from switchpoint.records import Attempt
from switchpoint.routing.explain import Decision
from switchpoint.store.engine import database_url, make_engine, sqlite_path
from switchpoint.store.migrate import upgrade
from switchpoint.store.tables import MEDIA_COLUMNS, REQUEST_COLUMNS
from switchpoint.store.writer import Row, Writer

log = logging.getLogger("switchpoint.ledger")

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
#: A spill file written before ``saved_usd`` existed (migration 0005) has request rows one
#: column short: it goes back in at its place, as NULL.
_SAVED_AT = REQUEST_COLUMNS.index("saved_usd")

#: A spill file written before the media units existed (migration 0008) has request rows
#: without them at the end: they go back in as NULL.
_NO_UNITS: tuple[None, ...] = (None,) * len(MEDIA_COLUMNS)


def _units(units: MediaUnits) -> tuple[float | int | None, ...]:
    """The request row's ``audio_seconds``, ``characters``, ``images``."""
    q = units.quantity
    if units.unit == "seconds":
        return (q, None, None)
    return (None, int(q), None) if units.unit == "characters" else (None, None, int(q))


#: Always scrubbed from stored bodies and error messages, whatever ``storage.redact`` says.
BUILTIN_REDACT = (
    r"(?i:\bbearer\s+)[A-Za-z0-9._~+/=-]+",
    r"\bsk-[A-Za-z0-9_-]{12,}",
    r"\bAIza[0-9A-Za-z_-]{20,}",
)
REDACTED = "[REDACTED]"
#: Set by a ``serve --workers N`` parent: the instance name its workers share.
ENV_INSTANCE = "SWITCHPOINT_INSTANCE"

#: Seconds between tries while the database is down (doubling up to the maximum).
RETRY_MIN_S, RETRY_MAX_S = 0.5, 5.0
#: Seconds between retention prunes.
PRUNE_EVERY_S = 3600.0


class Redactor:
    """Replaces secrets (known values, built-in key shapes, configured patterns) in text."""

    def __init__(self, patterns: Iterable[str] = (), secrets: Iterable[str] = ()) -> None:
        parts = [re.escape(s) for s in sorted({s for s in secrets if s}, key=len, reverse=True)]
        parts += [f"(?:{p})" for p in BUILTIN_REDACT]
        #: Known secrets and key shapes in one pass; each configured pattern on its own (it may
        #: carry its own flags).
        self._res = [re.compile("|".join(parts)), *(re.compile(p) for p in patterns)]

    def __call__(self, text: str) -> str:
        for pattern in self._res:
            text = pattern.sub(REDACTED, text)
        return text

    def body(self, raw: bytes | None) -> str | None:
        if raw is None:
            return None
        return self(raw.decode("utf-8", "replace"))


_NO_TOKENS: tuple[None, ...] = (None, None, None, None, None, None)
_ZERO_TOKENS = (0, 0, 0, 0, 0, 0)


def _tally(tries: Sequence[Attempt]) -> tuple[int, int, int]:
    """(retries, failovers, hedges) of a request's attempts: a hedge is a hedge; any other attempt
    after the first is a retry on the deployment before it or a failover to another."""
    retries = failovers = hedges = 0
    prev: str | None = None
    for a in tries:
        if a.hedge:
            hedges += 1
            continue
        if prev is not None:
            if a.deployment == prev:
                retries += 1
            else:
                failovers += 1
        prev = a.deployment
    return retries, failovers, hedges


def default_spill_path(url: str) -> Path:
    db = sqlite_path(url)
    if db is not None:
        return db.with_name(db.name + ".spill.jsonl")
    return Path("switchpoint-spill.jsonl")


class Ledger:
    """The ledger sink. :meth:`start` in the running loop, :meth:`close` to flush and stop."""

    def __init__(
        self,
        storage: Storage,
        url: str,
        *,
        instance: str,
        deployments: Mapping[str, Deployment] = {},
        secrets: Iterable[str] = (),
        migrate: bool = True,
    ) -> None:
        self.storage = storage
        self.url = url
        self.instance = instance
        self._interval = storage.flush_interval_ms / 1000.0
        self._flush_rows = storage.flush_rows
        self._limit = storage.buffer_rows
        self._redact = Redactor(storage.redact, secrets)
        self._bodies = storage.store_bodies
        self.spill_path = Path(storage.spill_path) if storage.spill_path else default_spill_path(url)
        self._replaying = self.spill_path.with_name(self.spill_path.name + ".replaying")
        self.use_deployments(deployments)
        self.engine = make_engine(url)
        self._writer = Writer(self.engine)
        self._migrate = migrate
        self._buffer: deque[Booked] = deque()
        self._overflow: deque[Booked] = deque()
        self._wake = threading.Event()
        self._spill_wake = threading.Event()
        self._spill_lock = threading.Lock()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._spiller: threading.Thread | None = None
        self._db_ok = True
        self._retry_at = 0.0
        self._backoff = RETRY_MIN_S
        self._next_prune = 0.0
        #: Requests written to the database (replays included), spilled to the file, replayed
        #: from it, and dropped (the spill file could not be written either).
        self.written = 0
        self.spilled = 0
        self.replayed = 0
        self.dropped = 0
        self.failures = 0

    def use_deployments(self, deployments: Mapping[str, Deployment]) -> None:
        """Name upstream models from a reloaded config's deployments."""
        self._models = {name: d.model for name, d in deployments.items()}

    # --- on the event loop -------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._ready()  # a database that is down now is retried by the writer
        self._thread = threading.Thread(target=self._run, name="switchpoint-ledger", daemon=True)
        self._thread.start()

    def write(self, batch: Sequence[Booked]) -> None:
        buffer = self._buffer
        if len(buffer) + len(batch) <= self._limit:
            buffer.extend(batch)
            if len(buffer) >= self._flush_rows:
                self._wake.set()
            return
        self._spill_later(batch)

    def _spill_later(self, batch: Sequence[Booked]) -> None:
        """The buffer is full (the database is slow): these records go to the spill file."""
        room = self._limit - len(self._overflow)
        if room < len(batch):
            self.dropped += len(batch) - max(room, 0)
            batch = batch[: max(room, 0)]
        self._overflow.extend(batch)
        if self._spiller is None:
            self._spiller = threading.Thread(
                target=self._run_spiller, name="switchpoint-ledger-spill", daemon=True
            )
            self._spiller.start()
        self._spill_wake.set()

    async def close(self) -> None:
        """Write everything buffered, then stop the writer (waits off the loop)."""
        self._stopping = True
        self._wake.set()
        self._spill_wake.set()
        for thread in (self._spiller, self._thread):
            if thread is not None:
                await asyncio.to_thread(thread.join)
        self._thread = self._spiller = None
        left = len(self._buffer) + len(self._overflow)
        if left:
            log.error("ledger: %d record(s) were not written at shutdown", left)
        self.engine.dispose()

    def stats(self) -> dict[str, Any]:
        return {
            "buffered": len(self._buffer),
            "written": self.written,
            "spilled": self.spilled,
            "replayed": self.replayed,
            "dropped": self.dropped,
            "failures": self.failures,
            "database_ok": self._db_ok,
        }

    # --- the writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        if self._db_ok:
            self._replay()
        due = time.monotonic() + self._interval
        while True:
            self._wake.wait(max(0.0, due - time.monotonic()))
            self._wake.clear()
            stopping = self._stopping
            now = time.monotonic()
            # Between two intervals only full batches go (woken by ``flush_rows`` waiting);
            # what is left waits for the interval's end. Draining everything at once instead
            # chased the records that arrive during a write with small batches, each paying a
            # commit and the slower one-row inserts (114 rows a batch on average at 5.8 k req/s).
            whole = stopping or now >= due
            if whole:
                due = now + self._interval
            try:
                self._flush(whole)
                if (
                    not self._db_ok
                    and time.monotonic() >= self._retry_at
                    and self._ready()
                    and self._replay()
                ):
                    self._up()
                self._maybe_prune()
            except Exception:  # never let the writer die
                log.exception("ledger writer failed")
            if stopping and not self._buffer:
                return

    def _flush(self, whole: bool = True) -> None:
        """Write the buffer in batches of ``flush_rows``; the last, smaller batch too when
        ``whole`` (the flush interval has passed, or the ledger is closing)."""
        buffer, n = self._buffer, self._flush_rows
        popleft = buffer.popleft
        # what was waiting when a whole flush began; records arriving meanwhile wait for a
        # full batch or the next interval (no chase of the tail)
        left = len(buffer) if whole else 0
        while len(buffer) >= n or left > 0:
            chunk = [popleft() for _ in range(min(n, len(buffer)))]
            left -= len(chunk)
            requests, attempts = self._rows(chunk)
            if not self._db_ok and time.monotonic() < self._retry_at:
                self._spill(requests, attempts)
                continue
            try:
                if not self._ready():
                    raise ConnectionError("the ledger database could not be migrated")
                self._writer.write(requests, attempts)
            except Exception as exc:
                self._down(exc)
                self._spill(requests, attempts)
                continue
            self.written += len(requests)
            if not self._db_ok:
                self._up()

    def _ready(self) -> bool:
        """Migrate the database first if this ledger should and has not yet (False: failed)."""
        if not self._migrate:
            return True
        try:
            upgrade(self.engine)
        except Exception as exc:
            self._down(exc)
            return False
        self._migrate = False
        return True

    def _down(self, exc: BaseException) -> None:
        self.failures += 1
        if self._db_ok:
            log.error("ledger: the database failed (%s); spilling to %s", exc, self.spill_path)
        self._db_ok = False
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, RETRY_MAX_S)

    def _up(self) -> None:
        log.warning("ledger: the database is back; replaying %s", self.spill_path)
        self._db_ok = True
        self._backoff = RETRY_MIN_S
        if not self._replay():
            self._db_ok = False

    def _maybe_prune(self) -> None:
        days = self.storage.retention_days
        if days is None or not self._db_ok or time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + PRUNE_EVERY_S
        self.prune(time.time() - days * 86400.0)

    def prune(self, before: float) -> int:
        """Delete the ledger's rows older than ``before`` (epoch seconds)."""
        try:
            n = self._writer.prune(before)
        except Exception as exc:
            log.warning("ledger: pruning failed: %s", exc)
            return 0
        if n:
            log.info(
                "ledger: pruned %d request(s) older than %s", n, time.strftime("%F", time.gmtime(before))
            )
        return n

    # --- records → rows ----------------------------------------------------------------------

    def _rows(self, chunk: Iterable[Booked]) -> tuple[list[Row], list[Row]]:
        requests: list[Row] = []
        attempts: list[Row] = []
        instance, models, redact, bodies = self.instance, self._models, self._redact, self._bodies
        truth = self._writer.truth
        for b in chunk:
            r = b.record
            rid, started = r.request_id, r.started_at
            answered = r.deployment
            tries = r.attempts
            # one attempt is the usual request: no retry, failover or hedge to count
            retries, failovers, hedges = (0, 0, 0) if len(tries) < 2 else _tally(tries)
            provider: str | None = None
            u: Usage | None = None
            tokens: tuple[int | None, ...] = _NO_TOKENS
            for seq, (a, ac) in enumerate(zip(tries, b.attempt_costs, strict=False)):
                dep = a.deployment
                if a.error is None and dep == answered:
                    provider = a.provider
                u = a.usage
                if u is None:
                    tokens = _NO_TOKENS
                else:
                    w1h = u.cache_write_1h_tokens
                    tokens = (
                        u.input_tokens,
                        u.cached_input_tokens,
                        u.cache_write_tokens - w1h,
                        w1h,
                        u.output_tokens,
                        u.reasoning_tokens,
                    )
                message = a.error_message
                attempts.append(
                    (
                        rid,
                        seq,
                        started + a.offset_ms / 1000.0,
                        a.offset_ms,
                        dep,
                        a.provider,
                        a.family,
                        a.status,
                        a.error,
                        None if message is None else redact(message),
                        a.latency_ms,
                        a.ttft_ms,
                        truth[a.hedge],
                        *tokens,
                        ac.total,
                    )
                )
            ru = r.usage
            if ru is None:
                rtokens: tuple[int | None, ...] = _ZERO_TOKENS
            elif ru is u:  # the answering attempt's usage, already split into classes
                rtokens = tokens
            else:
                w1h = ru.cache_write_1h_tokens
                rtokens = (
                    ru.input_tokens,
                    ru.cached_input_tokens,
                    ru.cache_write_tokens - w1h,
                    w1h,
                    ru.output_tokens,
                    ru.reasoning_tokens,
                )
            c = b.cost
            decision = r.decision
            route: str | None = None
            if decision is not None:
                try:  # the compact form (store.route_form): its trace is built when read
                    form = compact(decision) if isinstance(decision, Decision) else decision.trace()
                    route = _encode(form).decode()
                except Exception:  # a decision that cannot be stored still leaves its row
                    log.exception("ledger: no routing decision stored for request %s", rid)
            requests.append(
                (
                    rid,
                    started,
                    instance,
                    r.dialect,
                    r.endpoint,
                    r.model,
                    answered,
                    provider,
                    None if answered is None else models.get(answered),
                    r.key_id,
                    r.team,
                    r.end_user,
                    r.task,
                    r.session,
                    _encode(list(r.tags)).decode() if r.tags else None,
                    truth[r.stream],
                    r.status,
                    r.error,
                    r.latency_ms,
                    r.ttft_ms,
                    *rtokens,
                    c.input,
                    c.cached_input,
                    c.cache_write_5m,
                    c.cache_write_1h,
                    c.output,
                    c.reasoning,
                    c.total,
                    b.saved_usd,
                    len(r.attempts),
                    retries,
                    failovers,
                    hedges,
                    truth[r.cached],
                    truth[r.batch],
                    b.price_version,
                    route,
                    redact.body(r.request_body) if bodies else None,
                    redact.body(r.response_body) if bodies else None,
                    *(_NO_UNITS if r.units is None else _units(r.units)),
                )
            )
        return requests, attempts

    # --- the spill file ----------------------------------------------------------------------

    def _run_spiller(self) -> None:
        overflow = self._overflow
        while True:
            self._spill_wake.wait(self._interval)
            self._spill_wake.clear()
            stopping = self._stopping
            while overflow:
                chunk = [overflow.popleft() for _ in range(min(self._flush_rows, len(overflow)))]
                try:
                    requests, attempts = self._rows(chunk)
                except Exception:
                    log.exception("ledger: could not convert %d record(s)", len(chunk))
                    self.dropped += len(chunk)
                    continue
                self._spill(requests, attempts)
            if stopping:
                return

    def _spill(self, requests: Sequence[Row], attempts: Sequence[Row]) -> None:
        """Append rows to the spill file: one JSON line per request, ``[row, [attempt rows]]``."""
        by_request: dict[str, list[Row]] = {}
        for a in attempts:
            by_request.setdefault(a[0], []).append(a)
        lines = b"".join(_encode([r, by_request.get(r[0], [])]) + b"\n" for r in requests)
        try:
            with self._spill_lock:
                self.spill_path.parent.mkdir(parents=True, exist_ok=True)
                with self.spill_path.open("ab") as f:
                    f.write(lines)
                    f.flush()
        except OSError as exc:
            self.dropped += len(requests)
            log.error("ledger: could not spill %d record(s) to %s: %s", len(requests), self.spill_path, exc)
            return
        self.spilled += len(requests)

    def _replay(self) -> bool:
        """Write what the spill file holds (a crash mid-replay leaves ``.replaying``; rows already
        in the database are skipped, so nothing is counted twice)."""
        with self._spill_lock:
            if not self._replaying.exists():
                if not self.spill_path.exists() or self.spill_path.stat().st_size == 0:
                    return True
                os.replace(self.spill_path, self._replaying)
            elif self.spill_path.exists():  # both: append the newer spill to the one being replayed
                with self._replaying.open("ab") as dst:
                    dst.write(self.spill_path.read_bytes())
                self.spill_path.unlink()
        try:
            lines = self._replaying.read_bytes().splitlines()
        except OSError as exc:
            log.error("ledger: cannot read %s: %s", self._replaying, exc)
            return False
        for i in range(0, len(lines), self._flush_rows):
            requests: list[Row] = []
            attempts: list[Row] = []
            for line in lines[i : i + self._flush_rows]:
                try:
                    row, rows = _decode(line)
                except (msgspec.DecodeError, ValueError):
                    log.error("ledger: skipping a damaged line in %s", self._replaying)
                    continue
                short = len(REQUEST_COLUMNS) - len(row)
                if short in (1, 1 + len(MEDIA_COLUMNS)):
                    row = [*row[:_SAVED_AT], None, *row[_SAVED_AT:]]
                    short -= 1
                if short == len(MEDIA_COLUMNS):
                    row = [*row, *_NO_UNITS]
                requests.append(tuple(row))
                attempts.extend(tuple(a) for a in rows)
            try:
                self._writer.replay(requests, attempts)
            except Exception as exc:
                self._down(exc)
                return False  # the file stays; replayed (and deduplicated) next time
            self.replayed += len(requests)
            self.written += len(requests)
        with contextlib.suppress(FileNotFoundError):
            self._replaying.unlink()
        if lines:
            log.warning("ledger: replayed %d record(s) from the spill file", len(lines))
        return True


# --- wiring (the gateway builds its ledger from the config) --------------------------------


def instance_id(config: Config) -> str:
    """The serving instance's name in the ledger: ``server.instance``, else the one a
    ``serve --workers N`` parent handed its workers, else ``hostname:pid``."""
    return config.instance or os.environ.get(ENV_INSTANCE) or f"{socket.gethostname()}:{os.getpid()}"


def secrets_of(config: Config) -> list[str]:
    """Every secret value the config holds (never to be stored): the master key, provider keys
    and secret headers. Placeholders of simulated providers are not secrets."""
    found: list[Secret] = [config.master_key] if config.master_key is not None else []
    for p in config.providers.values():
        if p.simulated:
            continue
        if p.api_key is not None:
            found.append(p.api_key)
        found += [v for _, v in p.headers if isinstance(v, Secret)]
    return [s.reveal() for s in found if len(s.reveal()) >= 6]


def ledger_for(config: Config, *, migrate: bool = True) -> Ledger | None:
    """The config's ledger (None when ``storage.enabled`` is false)."""
    storage = config.storage
    if not storage.enabled:
        return None
    return Ledger(
        storage,
        database_url(storage.url),
        instance=instance_id(config),
        deployments=config.deployments,
        secrets=secrets_of(config),
        migrate=migrate,
    )
