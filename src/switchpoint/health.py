"""Live health of deployments: latency EWMAs, TTFT p95, in-flight counts, circuit breakers.

The executor writes (``admit`` / ``on_start`` / ``on_first_token`` / ``on_success`` /
``on_failure`` / ``on_release`` / ``on_end``); routing reads an immutable
:class:`HealthSnapshot` per deployment and stays pure. All updates are O(1) and lock-free
(one event loop per process).

Circuit breaker, per deployment::

    closed ──(N failures in a row, or error rate ≥ R over the window)──▶ open
    open ──(cooldown elapsed)──▶ half_open: up to P probes are let through
    half_open ──probe succeeds──▶ closed        half_open ──probe fails──▶ open

Only failures that say something about the deployment count (:data:`BREAKER_KINDS`); a bad
request or a filtered prompt does not. A ``Retry-After`` from the upstream throttles the
deployment until then, independently of the breaker.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Literal

import msgspec

from switchpoint.config import BreakerSettings

BreakerState = Literal["closed", "open", "half_open"]

#: Weight of the newest sample in the moving averages.
EWMA_ALPHA = 0.2
#: Error kinds that count against a deployment's breaker.
BREAKER_KINDS = frozenset(
    {
        "server_error",
        "overloaded",
        "timeout",
        "connection",
        "invalid_response",
        "rate_limited",
        "authentication",
        "permission",
    }
)
#: Time-to-first-token samples kept per deployment for the p95 (a ring buffer).
TTFT_SAMPLES = 128
#: Fewer samples than this: no p95 yet.
TTFT_MIN_SAMPLES = 20
_BUCKETS = 10
_DEFAULT_POLICY = BreakerSettings()
_STATE_CODE = {"closed": 0, "open": 1, "half_open": 2}


class HealthSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    inflight: int = 0
    ttft_ewma_ms: float | None = None
    total_ewma_ms: float | None = None
    #: ``half_open`` as soon as the cooldown has elapsed (the next attempt is a probe).
    breaker: BreakerState = "closed"
    #: Requests observed (successes + failures) and failures, since start.
    requests: int = 0
    failures: int = 0
    #: The upstream asked for a pause (``Retry-After``) that has not elapsed.
    throttled: bool = False
    #: Last computed p95 time to first token (None until enough samples).
    ttft_p95_ms: float | None = None

    @property
    def healthy(self) -> bool:
        return self.breaker != "open" and not self.throttled


class Quantiles:
    """The last :data:`TTFT_SAMPLES` samples in a ring; p95 recomputed after every 8 new ones."""

    __slots__ = ("_n", "_p95", "_p95_at", "_ring")

    def __init__(self) -> None:
        self._ring: list[float] = []
        self._n = 0
        self._p95: float | None = None
        self._p95_at = 0

    def add(self, sample: float) -> None:
        if len(self._ring) < TTFT_SAMPLES:
            self._ring.append(sample)
        else:
            self._ring[self._n % TTFT_SAMPLES] = sample
        self._n += 1

    @property
    def last_p95(self) -> float | None:
        return self._p95

    def p95(self) -> float | None:
        if len(self._ring) < TTFT_MIN_SAMPLES:
            return None
        if self._p95 is None or self._n - self._p95_at >= 8:
            ordered = sorted(self._ring)
            self._p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
            self._p95_at = self._n
        return self._p95


class DeploymentHealth:
    """Mutable per-deployment state. Only the executor (through the registry) writes it."""

    __slots__ = (
        "_fails",
        "_slots",
        "_totals",
        "breaker",
        "consecutive",
        "failures",
        "inflight",
        "latency",
        "opened_at",
        "opens",
        "policy",
        "probes",
        "reopen_at",
        "requests",
        "throttled_until",
        "total_ewma_ms",
        "ttft",
        "ttft_ewma_ms",
    )

    def __init__(self) -> None:
        self.inflight = 0
        self.ttft_ewma_ms: float | None = None
        self.total_ewma_ms: float | None = None
        self.breaker: BreakerState = "closed"
        self.opened_at = 0.0
        self.reopen_at = 0.0
        self.throttled_until = 0.0
        self.requests = 0
        self.failures = 0
        self.consecutive = 0
        self.probes = 0
        self.opens = 0
        self.policy = _DEFAULT_POLICY
        self._slots = [-1] * _BUCKETS
        self._totals = [0] * _BUCKETS
        self._fails = [0] * _BUCKETS
        #: Streams: time to the first content event. Non-streamed calls: time to the answer.
        self.ttft = Quantiles()
        self.latency = Quantiles()

    # --- breaker bookkeeping -------------------------------------------------------------

    def state_at(self, now: float) -> BreakerState:
        if self.breaker == "open" and now >= self.reopen_at:
            return "half_open"
        return self.breaker

    def count(self, now: float, failed: bool) -> None:
        slot = int(now * _BUCKETS / self.policy.window_s)
        i = slot % _BUCKETS
        if self._slots[i] != slot:
            self._slots[i] = slot
            self._totals[i] = 0
            self._fails[i] = 0
        self._totals[i] += 1
        if failed:
            self._fails[i] += 1

    def window(self, now: float) -> tuple[int, int]:
        """(attempts, failures) counted over the last ``window_s``."""
        current = int(now * _BUCKETS / self.policy.window_s)
        total = fails = 0
        for i in range(_BUCKETS):
            if current - self._slots[i] < _BUCKETS:
                total += self._totals[i]
                fails += self._fails[i]
        return total, fails

    def open(self, now: float) -> None:
        self.breaker = "open"
        self.opened_at = now
        self.reopen_at = now + self.policy.cooldown_s
        self.probes = 0
        self.opens += 1

    def close(self) -> None:
        self.breaker = "closed"
        self.probes = 0
        self.consecutive = 0
        self._slots = [-1] * _BUCKETS

    def snapshot(self, now: float) -> HealthSnapshot:
        return HealthSnapshot(
            inflight=self.inflight,
            ttft_ewma_ms=self.ttft_ewma_ms,
            total_ewma_ms=self.total_ewma_ms,
            breaker=self.state_at(now),
            requests=self.requests,
            failures=self.failures,
            throttled=self.throttled_until > now,
            ttft_p95_ms=self.ttft.last_p95,
        )


def _label(value: str) -> str:
    """A quoted Prometheus label value."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _ewma(old: float | None, sample: float) -> float:
    return sample if old is None else old + EWMA_ALPHA * (sample - old)


def _ended(h: DeploymentHealth) -> None:
    h.inflight = max(0, h.inflight - 1)


def _first_token(h: DeploymentHealth, ttft_ms: float, streamed: bool) -> None:
    h.ttft_ewma_ms = _ewma(h.ttft_ewma_ms, ttft_ms)
    (h.ttft if streamed else h.latency).add(ttft_ms)


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
        return h.snapshot(self.clock()) if h is not None else HealthSnapshot()

    def snapshots(self) -> dict[str, HealthSnapshot]:
        now = self.clock()
        return {name: h.snapshot(now) for name, h in self._by_name.items()}

    def __iter__(self) -> Iterator[tuple[str, DeploymentHealth]]:
        return iter(sorted(self._by_name.items()))

    # --- read by the executor ----------------------------------------------------------------

    def admit(self, name: str, policy: BreakerSettings) -> bool:
        """May an attempt go to this deployment now? Lets half-open probes through, one slot
        at a time (the caller must report the attempt's outcome or :meth:`on_release` it)."""
        h = self.get(name)
        h.policy = policy
        if h.breaker == "closed" and not h.throttled_until:
            return True
        now = self.clock()
        if h.throttled_until > now:
            return False
        h.throttled_until = 0.0
        if h.breaker == "closed" or not policy.enabled:
            return True
        if h.breaker == "open":
            if now < h.reopen_at:
                return False
            h.breaker = "half_open"
        if h.probes >= policy.half_open_probes:
            return False
        h.probes += 1
        return True

    def available_in(self, name: str) -> float:
        """Seconds until :meth:`admit` may say yes (0 = now)."""
        h = self._by_name.get(name)
        if h is None:
            return 0.0
        now = self.clock()
        wait = max(0.0, h.throttled_until - now)
        if h.breaker == "open":
            wait = max(wait, h.reopen_at - now)
        return wait

    def throttled_for(self, name: str) -> float:
        """Seconds left of the pause the upstream asked for (``Retry-After``); 0 = none."""
        h = self._by_name.get(name)
        return max(0.0, h.throttled_until - self.clock()) if h is not None else 0.0

    def ttft_p95(self, name: str, *, streamed: bool = True) -> float | None:
        """p95 time to first token (streams) or to the answer (non-streamed), milliseconds."""
        h = self._by_name.get(name)
        if h is None:
            return None
        return h.ttft.p95() if streamed else h.latency.p95()

    # --- written by the executor ------------------------------------------------------------

    def on_start(self, name: str) -> None:
        self.get(name).inflight += 1

    def on_end(self, name: str) -> None:
        _ended(self.get(name))

    def on_first_token(self, name: str, ttft_ms: float, *, streamed: bool = True) -> None:
        _first_token(self.get(name), ttft_ms, streamed)

    def on_answer(self, name: str, latency_ms: float) -> None:
        """A non-streamed attempt came back fine: :meth:`on_end`, :meth:`on_first_token` (not
        streamed) and :meth:`on_success` in one call."""
        h = self.get(name)
        _ended(h)
        _first_token(h, latency_ms, False)
        self._succeeded(h, latency_ms)

    def on_success(self, name: str, total_ms: float) -> None:
        self._succeeded(self.get(name), total_ms)

    def _succeeded(self, h: DeploymentHealth, total_ms: float) -> None:
        h.requests += 1
        h.total_ewma_ms = _ewma(h.total_ewma_ms, total_ms)
        h.consecutive = 0
        if h.breaker != "closed":  # a probe, or a last-resort attempt, came back fine
            h.close()
        elif h.policy.enabled:
            h.count(self.clock(), False)

    def on_failure(self, name: str, kind: str, *, retry_after: float | None = None) -> None:
        h = self.get(name)
        h.requests += 1
        h.failures += 1
        now = self.clock()
        if retry_after is not None and retry_after > 0:
            h.throttled_until = max(h.throttled_until, now + retry_after)
        if kind not in BREAKER_KINDS or not h.policy.enabled:
            self._release(h)
            return
        h.consecutive += 1
        if h.breaker == "open":  # a last-resort attempt failed: the cooldown starts over
            h.reopen_at = now + h.policy.cooldown_s
        elif h.breaker == "half_open":
            h.open(now)
        elif h.breaker == "closed":
            h.count(now, True)
            policy = h.policy
            if h.consecutive >= policy.consecutive_failures:
                h.open(now)
            else:
                total, fails = h.window(now)
                if total >= policy.min_requests and fails >= policy.error_rate * total:
                    h.open(now)

    def on_release(self, name: str) -> None:
        """An admitted attempt ended without a verdict (cancelled): free its probe slot."""
        h = self._by_name.get(name)
        if h is not None:
            self._release(h)

    @staticmethod
    def _release(h: DeploymentHealth) -> None:
        if h.breaker == "half_open" and h.probes > 0:
            h.probes -= 1

    # --- views ---------------------------------------------------------------------------------

    def breakers(self) -> dict[str, dict[str, object]]:
        """Breaker state per deployment, for the admin endpoint."""
        now = self.clock()
        out: dict[str, dict[str, object]] = {}
        for name, h in self:
            total, fails = h.window(now)
            state = h.state_at(now)
            out[name] = {
                "state": state,
                "consecutive_failures": h.consecutive,
                "window_attempts": total,
                "window_failures": fails,
                "opens": h.opens,
                "open_for_s": round(now - h.opened_at, 3) if state != "closed" else None,
                "probe_in_s": round(max(0.0, h.reopen_at - now), 3) if h.breaker == "open" else None,
                "throttled_for_s": round(h.throttled_until - now, 3) if h.throttled_until > now else None,
                "inflight": h.inflight,
                "requests": h.requests,
                "failures": h.failures,
                "ttft_ewma_ms": None if h.ttft_ewma_ms is None else round(h.ttft_ewma_ms, 2),
                "ttft_p95_ms": h.ttft.p95(),
            }
        return out

    def prometheus(self) -> list[str]:
        """Exposition-format lines: breaker state (0 closed, 1 open, 2 half open), opens, in flight."""
        now = self.clock()
        lines = [
            "# HELP switchpoint_breaker_state Circuit breaker state (0 closed, 1 open, 2 half open).",
            "# TYPE switchpoint_breaker_state gauge",
        ]
        rows = [(_label(n), h) for n, h in self]
        lines += [
            f"switchpoint_breaker_state{{deployment={n}}} {_STATE_CODE[h.state_at(now)]}" for n, h in rows
        ]
        lines += [
            "# HELP switchpoint_breaker_opens_total Times the breaker opened.",
            "# TYPE switchpoint_breaker_opens_total counter",
        ]
        lines += [f"switchpoint_breaker_opens_total{{deployment={n}}} {h.opens}" for n, h in rows]
        lines += [
            "# HELP switchpoint_upstream_inflight Attempts in flight.",
            "# TYPE switchpoint_upstream_inflight gauge",
        ]
        lines += [f"switchpoint_upstream_inflight{{deployment={n}}} {h.inflight}" for n, h in rows]
        return lines
