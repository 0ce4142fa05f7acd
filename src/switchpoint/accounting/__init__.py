"""After the response, never on the hot path: records → usage, cost, counters.

The request path calls :meth:`Accounting.submit`, which never blocks: records go into a
bounded buffer, accounted together by one callback once the current event-loop iteration has
served what was ready (no task switch per record). When the buffer is full the record is
dropped and counted (``dropped``), so a slow sink can never slow requests down.

Each drained batch is priced once (:class:`Booked`: the record with its cost by token class,
per attempt and in all) and handed to every :class:`Sink` in turn: the durable ledger, the
metrics, the traces. A sink's ``write`` runs on the event loop, so it only buffers or counts;
anything slow (a database write, an export) happens on the sink's own tracked worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import msgspec

from switchpoint.catalog import bundled
from switchpoint.config import Deployment
from switchpoint.pricing import ZERO, Cost, cache_savings, cost_breakdown, price_version, units_cost
from switchpoint.records import RequestRecord

log = logging.getLogger("switchpoint.accounting")


class DeploymentTotals(msgspec.Struct, kw_only=True):
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


class Booked(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A record, priced: what every sink receives."""

    record: RequestRecord
    #: The request's cost: the sum over its attempts (a failed attempt may still have billed).
    cost: Cost
    #: One cost per ``record.attempts``, in the same order.
    attempt_costs: tuple[Cost, ...]
    #: The version of the price the answering deployment was costed at (``Price.version``: the
    #: catalog's version, ``config``, ``config+<version>``; ``unpriced`` without a price).
    price_version: str
    #: USD caching saved: provider prompt caching on every attempt (reads at their rate rather
    #: than the input rate, less the writes' surcharge) or, for a response-cache hit, what
    #: the original answer cost (docs/caching.md).
    saved_usd: float = 0.0


class Sink(Protocol):
    """Where booked records go. ``write`` is called on the event loop and must not block."""

    def write(self, batch: Sequence[Booked]) -> None: ...

    async def close(self) -> None:
        """Finish what was written (flush, export), then stop."""
        ...


class Accounting:
    def __init__(
        self,
        deployments: Mapping[str, Deployment],
        *,
        queue_size: int = 10_000,
        keep: int = 1_000,
        sinks: Sequence[Sink] = (),
    ) -> None:
        self._deployments = deployments
        self.sinks: list[Sink] = list(sinks)
        self.price_version = bundled().version
        self._limit = queue_size
        self._pending: list[RequestRecord] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_handle: asyncio.Handle | None = None
        self.recent: deque[tuple[RequestRecord, float]] = deque(maxlen=keep)
        self.totals: dict[str, DeploymentTotals] = {}
        self.requests = 0
        self.failed = 0
        self.dropped = 0

    def use_deployments(self, deployments: Mapping[str, Deployment]) -> None:
        """Price later records with a reloaded config's deployments (sinks that name
        deployments' upstream models get them too)."""
        self._deployments = deployments
        for sink in self.sinks:
            use = getattr(sink, "use_deployments", None)
            if use is not None:
                use(deployments)

    def submit(self, record: RequestRecord) -> None:
        pending = self._pending
        if len(pending) >= self._limit:
            self.dropped += 1
            return
        pending.append(record)
        if self._drain_handle is None and self._loop is not None:
            self._drain_handle = self._loop.call_soon(self._drain)

    def start(self) -> None:
        """Account from now on in the running loop (records submitted before wait for it)."""
        self._loop = asyncio.get_running_loop()
        if self._pending and self._drain_handle is None:
            self._drain_handle = self._loop.call_soon(self._drain)

    async def stop(self) -> None:
        """Account what is buffered, close every sink (they finish their writes), then stop."""
        self._drain()
        self._loop = None
        for sink in self.sinks:
            try:
                await sink.close()
            except Exception:
                log.exception("could not close accounting sink %r", sink)

    async def flush(self) -> None:
        """Account what is buffered now."""
        self._drain()

    def _drain(self) -> None:
        if self._drain_handle is not None:
            self._drain_handle.cancel()
            self._drain_handle = None
        pending, self._pending = self._pending, []
        if not pending:
            return
        booked: list[Booked] = []
        for record in pending:
            try:
                booked.append(self._account(record))
            except Exception:  # a bad record must not stop accounting
                log.exception("could not account request %s", record.request_id)
        for sink in self.sinks:
            try:
                sink.write(booked)
            except Exception:  # a failing sink must not stop the others
                log.exception("accounting sink %r failed on %d record(s)", sink, len(booked))

    def _account(self, record: RequestRecord) -> Booked:
        self.requests += 1
        if record.status >= 400:
            self.failed += 1
        costs: list[Cost] = []
        version = "unpriced"
        saved = 0.0
        if record.cached and not record.attempts and record.usage is not None:
            # A response-cache hit: no upstream call. The record carries the original's usage
            # for this: what it cost is what the hit saved. The sinks see no tokens (none
            # were billed), so token counts and cache-read ratios stay the upstreams'.
            dep = self._deployments.get(record.deployment or "")
            price = dep.price if dep else None
            version = price_version(price)
            saved = cost_breakdown(record.usage, price, batch=record.batch).total
            record = msgspec.structs.replace(record, usage=None)
        for attempt in record.attempts:
            t = self.totals.get(attempt.deployment)
            if t is None:
                t = self.totals[attempt.deployment] = DeploymentTotals()
            t.requests += 1
            if attempt.error is not None:
                t.errors += 1
            dep = self._deployments.get(attempt.deployment)
            price = dep.price if dep else None
            version = price_version(price)
            usage = attempt.usage
            if usage is None:
                units = record.units  # an audio or image request: billed by its units
                cost = ZERO if units is None or attempt.error is not None else units_cost(units, price)
                costs.append(cost)
                t.cost_usd += cost.total
                continue
            cost = cost_breakdown(usage, price, batch=record.batch)
            costs.append(cost)
            saved += cache_savings(usage, price, batch=record.batch)
            t.input_tokens += usage.input_tokens
            t.cached_input_tokens += usage.cached_input_tokens
            t.output_tokens += usage.output_tokens
            t.cost_usd += cost.total
        total = costs[0] if len(costs) == 1 else _sum(costs)
        self.recent.append((record, total.total))
        return Booked(
            record=record, cost=total, attempt_costs=tuple(costs), price_version=version, saved_usd=saved
        )

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "failed": self.failed,
            "dropped": self.dropped,
            "deployments": {k: msgspec.to_builtins(v) for k, v in sorted(self.totals.items())},
        }


def _sum(costs: Sequence[Cost]) -> Cost:
    if not costs:
        return ZERO
    return Cost(
        input=sum(c.input for c in costs),
        cached_input=sum(c.cached_input for c in costs),
        cache_write_5m=sum(c.cache_write_5m for c in costs),
        cache_write_1h=sum(c.cache_write_1h for c in costs),
        output=sum(c.output for c in costs),
        reasoning=sum(c.reasoning for c in costs),
    )
