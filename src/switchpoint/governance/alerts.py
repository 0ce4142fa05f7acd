"""Budget alerts: when a budget's spend passes a threshold (50 %, 80 %, 100 % by default), a
log line, a metric and — with ``alerts.webhook_url`` — a JSON POST signed with the shared secret
(``x-switchpoint-signature: sha256=<hex HMAC-SHA256 of the body>``), retried with backoff.

Each (budget, period, threshold) fires once, across every replica: the state's latch decides
which process sends it. Nothing here runs on the request path: the check is a comparison after
a request's cost is settled, the rest is a background task.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import time
import urllib.request
from typing import Any

import msgspec

from switchpoint.config.governance import Alerts
from switchpoint.governance.budgets import Budget
from switchpoint.governance.state import State

log = logging.getLogger("switchpoint.governance")

SIGNATURE_HEADER = "x-switchpoint-signature"


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class Alerter:
    def __init__(self, settings: Alerts, state: State) -> None:
        self.settings = settings
        self.state = state
        self._secret = settings.secret.reveal().encode() if settings.secret is not None else None
        #: Latches this process has seen taken (no state round trip for them again).
        self._done: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        #: (scope, period, threshold) → alerts fired by this process (the metric).
        self.fired: dict[tuple[str, str, float], int] = {}
        self.delivery_failures = 0

    def observe(self, budget: Budget, spent: float) -> None:
        """A budget's spend after a request settled: fire what it passed (in the background)."""
        if spent < budget.alert_at or budget.limit <= 0:
            return
        ratio = spent / budget.limit
        budget.alert_at = math.inf
        for t in self.settings.thresholds:
            if ratio + 1e-12 < t:
                budget.alert_at = t * budget.limit - 1e-12  # nothing to do until then
                break
            latch = f"alert:{budget.key}:{t}"
            if latch in self._done:
                continue
            self._done.add(latch)
            task = asyncio.get_running_loop().create_task(self._fire(latch, budget, t, spent))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _fire(self, latch: str, budget: Budget, threshold: float, spent: float) -> None:
        try:
            if not await self.state.latch(latch, budget.until):
                return  # another process (or an earlier life of this one) sent it
        except Exception as exc:
            log.warning("governance: alert latch failed (%s); alert not sent", type(exc).__name__)
            self._done.discard(latch)
            return
        key = (budget.scope, budget.period, threshold)
        self.fired[key] = self.fired.get(key, 0) + 1
        log.warning(
            "budget alert: %s at %.0f%% of $%.2f (threshold %.0f%%)",
            budget.label,
            100 * spent / budget.limit,
            budget.limit,
            100 * threshold,
        )
        if self.settings.webhook_url:
            await self._post(self._payload(budget, threshold, spent))

    def _payload(self, budget: Budget, threshold: float, spent: float) -> dict[str, Any]:
        return {
            "type": "budget_threshold",
            "budget": budget.label,
            "scope": budget.scope,
            "id": budget.holder,
            "name": budget.name,
            "period": budget.period,
            "period_start": budget.start or None,
            "resets_at": budget.reset_iso(),
            "limit_usd": budget.limit,
            "spent_usd": round(spent, 8),
            "threshold": threshold,
            "at": time.time(),
        }

    async def _post(self, payload: dict[str, Any]) -> None:
        body = msgspec.json.encode(payload)
        headers = {"content-type": "application/json", "user-agent": "switchpoint-alerts"}
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._secret, body)
        url = self.settings.webhook_url
        assert url is not None
        for attempt in range(self.settings.attempts):
            try:
                await asyncio.to_thread(self._send, url, body, headers)
                return
            except Exception as exc:
                if attempt + 1 == self.settings.attempts:
                    self.delivery_failures += 1
                    log.warning("budget alert: webhook delivery failed (%s)", type(exc).__name__)
                    return
                await asyncio.sleep(min(5.0, 0.25 * 2**attempt))

    def _send(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        req = urllib.request.Request(url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=self.settings.timeout_s) as resp:
            if resp.status >= 300:
                raise OSError(f"webhook answered {resp.status}")

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
