"""After the response, never on the hot path: records → usage, cost, counters.

The request path calls :meth:`Accounting.submit`, which never blocks: records go into a
bounded buffer, accounted together by one callback once the current event-loop iteration has
served what was ready (no task switch per record). When the buffer is full the record is
dropped and counted (``dropped``), so a slow sink can never slow requests down.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Mapping
from typing import Any

import msgspec

from switchpoint.config import Deployment
from switchpoint.pricing import cost_usd
from switchpoint.records import RequestRecord

log = logging.getLogger("switchpoint.accounting")


class DeploymentTotals(msgspec.Struct, kw_only=True):
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


class Accounting:
    def __init__(
        self, deployments: Mapping[str, Deployment], *, queue_size: int = 10_000, keep: int = 1_000
    ) -> None:
        self._deployments = deployments
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
        """Price later records with a reloaded config's deployments."""
        self._deployments = deployments

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
        """Account what is buffered, then stop scheduling."""
        self._drain()
        self._loop = None

    async def flush(self) -> None:
        """Account what is buffered now."""
        self._drain()

    def _drain(self) -> None:
        if self._drain_handle is not None:
            self._drain_handle.cancel()
            self._drain_handle = None
        pending, self._pending = self._pending, []
        for record in pending:
            try:
                self._account(record)
            except Exception:  # a bad record must not stop accounting
                log.exception("could not account request %s", record.request_id)

    def _account(self, record: RequestRecord) -> None:
        self.requests += 1
        if record.status >= 400:
            self.failed += 1
        total = 0.0
        for attempt in record.attempts:
            t = self.totals.get(attempt.deployment)
            if t is None:
                t = self.totals[attempt.deployment] = DeploymentTotals()
            t.requests += 1
            if attempt.error is not None:
                t.errors += 1
            if attempt.usage is not None:
                dep = self._deployments.get(attempt.deployment)
                cost = cost_usd(attempt.usage, dep.price if dep else None)
                t.input_tokens += attempt.usage.input_tokens
                t.cached_input_tokens += attempt.usage.cached_input_tokens
                t.output_tokens += attempt.usage.output_tokens
                t.cost_usd += cost
                total += cost
        self.recent.append((record, total))

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "failed": self.failed,
            "dropped": self.dropped,
            "deployments": {k: msgspec.to_builtins(v) for k, v in sorted(self.totals.items())},
        }
