"""Ordering strategies for the candidates that passed the hard constraints.

Each takes the candidates in the rule's order and returns them ordered, each with the reason
for its place. Health snapshots and the random source are passed in: no clock, no global
state. Deployments never measured count as fast (they get tried, and so measured).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from switchpoint.config import Deployment
from switchpoint.health import HealthSnapshot


class Option:
    """A candidate while it is being ordered."""

    __slots__ = ("cost", "dep", "health", "rank", "reason", "weight")

    def __init__(
        self, dep: Deployment, rank: int, cost: float | None, health: HealthSnapshot, weight: float = 1.0
    ) -> None:
        self.dep = dep
        self.rank = rank
        self.cost = cost
        self.health = health
        self.weight = weight
        self.reason = ""


def latency_of(h: HealthSnapshot, stream: bool) -> float | None:
    """Observed latency: time to first token for streams, total time otherwise."""
    return h.ttft_ewma_ms if stream else h.total_ewma_ms


def _fmt_cost(cost: float | None) -> str:
    return "unpriced" if cost is None else f"${cost:.6f}"


def _fmt_ms(ms: float | None) -> str:
    return "unmeasured" if ms is None else f"{ms:.0f}ms"


def priority(
    opts: Sequence[Option], *, stream: bool, rng: random.Random, limit_ms: float | None
) -> list[Option]:
    for o in opts:
        o.reason = f"priority {o.rank + 1}"
    return list(opts)


def weighted(
    opts: Sequence[Option], *, stream: bool, rng: random.Random, limit_ms: float | None
) -> list[Option]:
    # Weighted sampling without replacement: sort by u ** (1 / w) (Efraimidis and Spirakis).
    keyed = sorted(opts, key=lambda o: rng.random() ** (1.0 / o.weight), reverse=True)
    total = sum(o.weight for o in opts)
    for o in keyed:
        o.reason = f"weighted draw (weight {o.weight:g} of {total:g})"
    return keyed


def lowest_latency(
    opts: Sequence[Option], *, stream: bool, rng: random.Random, limit_ms: float | None
) -> list[Option]:
    what = "ttft" if stream else "total"
    out = sorted(opts, key=lambda o: (latency_of(o.health, stream) or 0.0, o.rank))
    for o in out:
        o.reason = f"{what} ewma {_fmt_ms(latency_of(o.health, stream))}"
    return out


def lowest_cost(
    opts: Sequence[Option], *, stream: bool, rng: random.Random, limit_ms: float | None
) -> list[Option]:
    out = sorted(opts, key=lambda o: (o.cost is None, o.cost or 0.0, o.rank))
    for o in out:
        o.reason = f"est {_fmt_cost(o.cost)}"
    return out


def least_busy(
    opts: Sequence[Option], *, stream: bool, rng: random.Random, limit_ms: float | None
) -> list[Option]:
    out = sorted(opts, key=lambda o: (o.health.inflight, o.rank))
    for o in out:
        o.reason = f"{o.health.inflight} in flight"
    return out


def cost_under_constraint(
    opts: Sequence[Option], *, stream: bool, rng: random.Random, limit_ms: float | None
) -> list[Option]:
    """Cheapest first among those whose observed latency meets the limit; the rest after, fastest first."""
    meets: list[Option] = []
    misses: list[Option] = []
    for o in opts:
        ms = latency_of(o.health, stream)
        (misses if limit_ms is not None and ms is not None and ms > limit_ms else meets).append(o)
    meets.sort(key=lambda o: (o.cost is None, o.cost or 0.0, o.rank))
    misses.sort(key=lambda o: (latency_of(o.health, stream) or 0.0, o.rank))
    limit = _fmt_ms(limit_ms) if limit_ms is not None else "none"
    for o in meets:
        o.reason = f"est {_fmt_cost(o.cost)}, latency {_fmt_ms(latency_of(o.health, stream))} within {limit}"
    for o in misses:
        o.reason = f"latency {_fmt_ms(latency_of(o.health, stream))} over {limit} (fallback)"
    return meets + misses


Strategy = Callable[..., list[Option]]

STRATEGIES: dict[str, Strategy] = {
    "priority": priority,
    "weighted": weighted,
    "lowest_latency": lowest_latency,
    "lowest_cost": lowest_cost,
    "least_busy": least_busy,
    "cost_under_constraint": cost_under_constraint,
}


def healthy_first(opts: list[Option]) -> list[Option]:
    """Unhealthy deployments (breaker open) move to the back, keeping their relative order."""
    bad = [o for o in opts if not o.health.healthy]
    if not bad:
        return opts
    for o in bad:
        o.reason += "; unhealthy, moved to the back"
    return [o for o in opts if o.health.healthy] + bad
