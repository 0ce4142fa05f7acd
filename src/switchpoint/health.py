"""Live health of deployments: latency EWMAs, in-flight counts, breaker state.

The executor writes (``on_start`` / ``on_first_token`` / ``on_success`` / ``on_failure`` /
``on_end``); routing reads an immutable :class:`HealthSnapshot` per deployment and stays pure.
All updates are O(1) and lock-free (one event loop per process).
"""

from __future__ import annotations

import time
from typing import Literal

import msgspec

BreakerState = Literal["closed", "open", "half_open"]

#: Weight of the newest sample in the moving averages.
EWMA_ALPHA = 0.2


class HealthSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    inflight: int = 0
    ttft_ewma_ms: float | None = None
    total_ewma_ms: float | None = None
    breaker: BreakerState = "closed"
    #: Requests observed (successes + failures) and failures, since start.
    requests: int = 0
    failures: int = 0

    @property
    def healthy(self) -> bool:
        return self.breaker != "open"


class DeploymentHealth:
    """Mutable per-deployment state. Only the executor and the breaker logic write it."""

    __slots__ = ("breaker", "failures", "inflight", "opened_at", "requests", "total_ewma_ms", "ttft_ewma_ms")

    def __init__(self) -> None:
        self.inflight = 0
        self.ttft_ewma_ms: float | None = None
        self.total_ewma_ms: float | None = None
        self.breaker: BreakerState = "closed"
        self.opened_at = 0.0
        self.requests = 0
        self.failures = 0

    def snapshot(self) -> HealthSnapshot:
        return HealthSnapshot(
            inflight=self.inflight,
            ttft_ewma_ms=self.ttft_ewma_ms,
            total_ewma_ms=self.total_ewma_ms,
            breaker=self.breaker,
            requests=self.requests,
            failures=self.failures,
        )


def _ewma(old: float | None, sample: float) -> float:
    return sample if old is None else old + EWMA_ALPHA * (sample - old)


class HealthRegistry:
    """Per-process registry of :class:`DeploymentHealth`, keyed by deployment name."""

    def __init__(self) -> None:
        self._by_name: dict[str, DeploymentHealth] = {}
        self.clock = time.monotonic

    def get(self, name: str) -> DeploymentHealth:
        h = self._by_name.get(name)
        if h is None:
            h = self._by_name[name] = DeploymentHealth()
        return h

    def snapshot(self, name: str) -> HealthSnapshot:
        h = self._by_name.get(name)
        return h.snapshot() if h is not None else HealthSnapshot()

    def snapshots(self) -> dict[str, HealthSnapshot]:
        return {name: h.snapshot() for name, h in self._by_name.items()}

    # --- written by the executor ------------------------------------------------------------

    def on_start(self, name: str) -> None:
        self.get(name).inflight += 1

    def on_end(self, name: str) -> None:
        h = self.get(name)
        h.inflight = max(0, h.inflight - 1)

    def on_first_token(self, name: str, ttft_ms: float) -> None:
        h = self.get(name)
        h.ttft_ewma_ms = _ewma(h.ttft_ewma_ms, ttft_ms)

    def on_success(self, name: str, total_ms: float) -> None:
        h = self.get(name)
        h.requests += 1
        h.total_ewma_ms = _ewma(h.total_ewma_ms, total_ms)

    def on_failure(self, name: str, kind: str) -> None:
        h = self.get(name)
        h.requests += 1
        h.failures += 1
