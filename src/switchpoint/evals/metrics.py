"""Metrics per candidate, with confidence intervals where the sample allows.

Rates (pass rates, tool-call argument accuracy, refusal on a missing record) carry a Wilson
score interval; percentiles of TTFT and latency and the mean costs a percentile bootstrap
interval (seeded, so a report is reproducible), from :data:`MIN_BOOTSTRAP` samples up.

Costs are those of answered cases: the cost per case averages the cases that got an answer, the
cost per session the sessions (cases sharing ``session``, per repetition) whose every case did,
so a candidate that fails is not made cheap by its failures.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Callable, Sequence

import msgspec

from switchpoint.evals.state import Result

Z95 = 1.959963984540054
MIN_BOOTSTRAP = 5
BOOTSTRAP_ROUNDS = 1000

#: Metrics where less is better (the rest: more is better).
LOWER_IS_BETTER = frozenset(
    {"p50_ttft", "p95_ttft", "p50_latency", "p95_latency", "cost_per_case", "cost_per_session", "error_rate"}
)


class Stat(msgspec.Struct, kw_only=True):
    value: float | None
    low: float | None = None
    high: float | None = None
    n: int = 0


def wilson(passed: int, n: int, z: float = Z95) -> Stat:
    if n == 0:
        return Stat(value=None)
    p = passed / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Stat(value=p, low=max(0.0, centre - half), high=min(1.0, centre + half), n=n)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("no values")
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def bootstrap(values: Sequence[float], stat: Callable[[Sequence[float]], float], seed: int = 0) -> Stat:
    if not values:
        return Stat(value=None)
    point = stat(values)
    if len(values) < MIN_BOOTSTRAP:
        return Stat(value=point, n=len(values))
    rng = random.Random(seed)
    n = len(values)
    draws = sorted(stat([values[rng.randrange(n)] for _ in range(n)]) for _ in range(BOOTSTRAP_ROUNDS))
    return Stat(value=point, low=percentile(draws, 0.025), high=percentile(draws, 0.975), n=n)


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs)


def _rate(flags: list[bool]) -> Stat:
    return wilson(sum(flags), len(flags))


class CandidateMetrics(msgspec.Struct, kw_only=True):
    candidate: str
    cases: int
    errors: int
    metrics: dict[str, Stat]
    checks: dict[str, Stat]
    """Pass rate per check label."""
    deployments: dict[str, int]


def for_candidate(name: str, results: list[Result]) -> CandidateMetrics:
    ttft = [r.outcome.ttft_s for r in results if r.outcome.ttft_s is not None and r.outcome.error is None]
    latency = [r.outcome.latency_s for r in results if r.outcome.error is None]
    served = [r for r in results if r.outcome.error is None]
    costs = [r.outcome.cost_usd for r in served if r.outcome.cost_usd is not None]
    priced = bool(served) and len(costs) == len(served)
    failed_sessions = {r.session for r in results if r.outcome.error is not None}
    sessions: dict[str, float] = defaultdict(float)
    for r in served:
        if r.session not in failed_sessions:
            sessions[r.session] += r.outcome.cost_usd or 0.0
    by_label: dict[str, list[bool]] = defaultdict(list)
    by_kind: dict[str, list[bool]] = defaultdict(list)
    for r in results:
        for c in r.checks:
            by_label[c.label].append(c.passed)
            by_kind[c.kind].append(c.passed)
    deployments: dict[str, int] = defaultdict(int)
    for r in results:
        deployments[r.outcome.deployment or "-"] += 1
    metrics = {
        "pass_rate": _rate([r.outcome.error is None and all(c.passed for c in r.checks) for r in results]),
        "tool_arg_accuracy": _rate(by_kind.get("tool_call", [])),
        "refusal_on_missing": _rate(by_kind.get("refusal", [])),
        "error_rate": _rate([r.outcome.error is not None for r in results]),
        "p50_ttft": bootstrap(ttft, lambda xs: percentile(xs, 0.5)),
        "p95_ttft": bootstrap(ttft, lambda xs: percentile(xs, 0.95)),
        "p50_latency": bootstrap(latency, lambda xs: percentile(xs, 0.5)),
        "p95_latency": bootstrap(latency, lambda xs: percentile(xs, 0.95)),
        "cost_per_case": bootstrap(costs, _mean) if costs and priced else Stat(value=None),
        "cost_per_session": bootstrap(list(sessions.values()), _mean)
        if costs and priced
        else Stat(value=None),
    }
    return CandidateMetrics(
        candidate=name,
        cases=len(results),
        errors=sum(r.outcome.error is not None for r in results),
        metrics=metrics,
        checks={label: _rate(flags) for label, flags in sorted(by_label.items())},
        deployments=dict(deployments),
    )


def compute(results: list[Result], candidates: list[str]) -> list[CandidateMetrics]:
    by: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        by[r.candidate].append(r)
    return [for_candidate(name, by.get(name, [])) for name in candidates]
