"""After the response, never on the hot path: records → usage, cost, counters.

The request path calls :meth:`Accounting.submit`, which never blocks: records go into a
bounded queue drained by one tracked task. When the queue is full the record is dropped and
counted (``dropped``), so a slow sink can never slow requests down.
"""

from __future__ import annotations

import asyncio
import contextlib
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
        self._queue: asyncio.Queue[RequestRecord] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None
        self.recent: deque[tuple[RequestRecord, float]] = deque(maxlen=keep)
        self.totals: dict[str, DeploymentTotals] = {}
        self.requests = 0
        self.failed = 0
        self.dropped = 0

    def use_deployments(self, deployments: Mapping[str, Deployment]) -> None:
        """Price later records with a reloaded config's deployments."""
        self._deployments = deployments

    def submit(self, record: RequestRecord) -> None:
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            self.dropped += 1

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="switchpoint-accounting")

    async def stop(self) -> None:
        """Drain what is queued, then stop the task."""
        if self._task is None:
            return
        await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def flush(self) -> None:
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            record = await self._queue.get()
            try:
                self._account(record)
            except Exception:  # a bad record must not stop accounting
                log.exception("could not account request %s", record.request_id)
            finally:
                self._queue.task_done()

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
