"""The attempt plan: actions per error kind, retries with backoff, budgets, deadline, breakers."""

from __future__ import annotations

import random
from typing import Any

import pytest

from switchpoint.config import Deployment, ExecutionOptions, RetryPolicy, parse
from switchpoint.errors import AllCandidatesFailed, ProviderError
from switchpoint.executor.policy import Plan, ResilienceStats, Step, full_jitter
from switchpoint.health import HealthRegistry


def _deployments(**retry: Any) -> dict[str, Deployment]:
    doc = {
        "providers": {"p": {"family": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "deployments": {
            "a": {"provider": "p", "model": "a", "context_window": 8000},
            "b": {"provider": "p", "model": "b", "context_window": 8000},
            "c": {"provider": "p", "model": "c", "context_window": 128000},
        },
        "resilience": {"retry": {"backoff_base_s": 0.1, "backoff_max_s": 1.0, **retry}},
    }
    return dict(parse(doc, env={}).deployments)


DEPS = _deployments()


def _plan(
    names: str = "abc",
    *,
    deps: dict[str, Deployment] = DEPS,
    health: HealthRegistry | None = None,
    options: ExecutionOptions | None = None,
    deadline_s: float | None = None,
    stats: ResilienceStats | None = None,
) -> Plan:
    return Plan(
        [deps[n] for n in names],
        health=health or HealthRegistry(),
        actions=parse({}, env={}).resilience.actions,
        options=options,
        stats=stats or ResilienceStats(),
        rng=random.Random(1),
        deadline_s=deadline_s,
    )


def _go(plan: Plan) -> Step:
    step = plan.next()
    assert step is not None
    plan.started(step)
    return step


def _err(kind: str, retry_after: float | None = None) -> ProviderError:
    return ProviderError(kind, f"{kind} happened", retry_after=retry_after)


def test_failover_walks_the_candidates_then_retries_with_backoff() -> None:
    stats = ResilienceStats()
    plan = _plan(stats=stats)
    order = []
    while (step := plan.next()) is not None:
        plan.started(step)
        order.append((step.deployment.name, step.delay_s > 0))
        plan.failed(step, _err("server_error"))
    assert order == [("a", False), ("b", False), ("c", False), ("a", True), ("b", True), ("c", True)]
    assert plan.total == 6, "two attempts per deployment (the default)"
    assert (stats.failovers, stats.retries, stats.attempts) == (2, 3, 6)
    failure = plan.failure("m")
    assert isinstance(failure, AllCandidatesFailed) and len(failure.errors) == 6


def test_backoff_is_full_jitter_capped() -> None:
    rng = random.Random(7)
    draws = [full_jitter(0.1, 1.0, n, rng) for n in range(12) for _ in range(50)]
    assert all(0 <= d <= 1.0 for d in draws)
    assert max(full_jitter(0.1, 1.0, 0, rng) for _ in range(200)) <= 0.1
    assert max(full_jitter(0.1, 1.0, 10, rng) for _ in range(200)) > 0.5, "grows to the cap"


def test_retry_same_stays_on_the_deployment() -> None:
    doc = {
        "providers": {"p": {"family": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "deployments": {n: {"provider": "p", "model": n} for n in "ab"},
        "resilience": {"actions": {"connection": "retry_same"}, "retry": {"attempts": 3}},
    }
    cfg = parse(doc, env={})
    plan = Plan(
        [cfg.deployments["a"], cfg.deployments["b"]],
        health=HealthRegistry(),
        actions=cfg.resilience.actions,
        options=None,
        stats=ResilienceStats(),
        rng=random.Random(1),
    )
    names = []
    for _ in range(4):
        step = _go(plan)
        names.append(step.deployment.name)
        plan.failed(step, _err("connection"))
    assert names == ["a", "a", "a", "b"]


def test_return_action_stops_at_once() -> None:
    plan = _plan()
    step = _go(plan)
    plan.failed(step, _err("bad_request"))
    assert plan.next() is None
    assert plan.failure("m").kind == "bad_request"


def test_a_non_retryable_failover_never_comes_back() -> None:
    plan = _plan("ab")
    step = _go(plan)
    plan.failed(step, _err("authentication"))
    names = []
    while (step := plan.next()) is not None:
        plan.started(step)
        names.append(step.deployment.name)
        plan.failed(step, _err("server_error"))
    assert names == ["b", "b"], "a is never retried after an auth error"


def test_context_too_long_falls_back_to_a_larger_window() -> None:
    plan = _plan()
    step = _go(plan)
    plan.failed(step, _err("context_too_long"))
    step = _go(plan)
    assert step.deployment.name == "c", "b has the same window as a"
    plan.failed(step, _err("context_too_long"))
    assert plan.next() is None


def test_budget_from_the_rule() -> None:
    plan = _plan(options=ExecutionOptions(retry=RetryPolicy(max_total_attempts=2, attempts=5)))
    for _ in range(2):
        plan.failed(_go(plan), _err("overloaded"))
    assert plan.next() is None and plan.total == 2


def test_retry_after_is_waited_for_when_short_and_excludes_when_long() -> None:
    health = HealthRegistry()
    plan = _plan("a", health=health)
    step = _go(plan)
    health.on_failure("a", "rate_limited", retry_after=0.5)
    plan.failed(step, _err("rate_limited", 0.5))
    again = plan.next()
    assert again is not None and again.deployment.name == "a" and again.delay_s > 0.49

    health2 = HealthRegistry()
    plan2 = _plan("ab", health=health2)
    step = _go(plan2)
    health2.on_failure("a", "rate_limited", retry_after=30)
    plan2.failed(step, _err("rate_limited", 30))
    names = []
    while (step := plan2.next()) is not None:
        plan2.started(step)
        names.append(step.deployment.name)
        plan2.failed(step, _err("server_error"))
    assert "a" not in names, "a 30 s pause is more than retry_after_max_s: a is out for this request"


def test_open_breaker_goes_last_as_a_last_resort() -> None:
    health = HealthRegistry()
    for _ in range(5):
        health.admit("a", DEPS["a"].breaker)
        health.on_failure("a", "server_error")
    assert health.snapshot("a").breaker == "open"
    plan = _plan("ab", health=health)
    first = _go(plan)
    assert first.deployment.name == "b"
    plan.failed(first, _err("server_error"))
    second = _go(plan)
    assert (second.deployment.name, second.delay_s) == ("a", 0.0), "tried, as a last resort, before b again"


def test_deadline_bounds_the_plan() -> None:
    plan = _plan(deadline_s=0.05)
    step = _go(plan)
    plan.failed(step, _err("server_error"))
    remaining = plan.remaining()
    assert remaining is not None and 0 < remaining <= 0.05
    expired = _plan(deadline_s=-1)
    assert expired.next() is None
    assert expired.failure("m").kind == "timeout"


def test_rule_deadline_zero_means_none_and_request_deadline_caps() -> None:
    plan = _plan(options=ExecutionOptions(retry=RetryPolicy(deadline_s=0)))
    assert plan.deadline is None
    capped = _plan(options=ExecutionOptions(retry=RetryPolicy(deadline_s=10)), deadline_s=1)
    remaining = capped.remaining()
    assert remaining is not None and remaining <= 1


def test_hedge_takes_only_an_untried_candidate_that_can_start_now() -> None:
    plan = _plan("ab")
    first = _go(plan)
    hedge = plan.next(busy=frozenset({first.index}), hedge=True)
    assert hedge is not None and hedge.deployment.name == "b" and hedge.delay_s == 0
    plan.started(hedge, hedge=True)
    assert plan.next(busy=frozenset({0, 1}), hedge=True) is None


@pytest.mark.parametrize("kind", ["rate_limited", "overloaded", "server_error", "timeout", "connection"])
def test_transient_kinds_fail_over_by_default(kind: str) -> None:
    plan = _plan("ab")
    plan.failed(_go(plan), _err(kind))
    step = plan.next()
    assert step is not None and step.deployment.name == "b"
