"""Resilience settings in the config: layering, defaults, per-kind actions, every problem found,
and the timeouts of one attempt (deployment < rule < request headers < deadline)."""

from __future__ import annotations

from typing import Any

import pytest

from switchpoint.config import (
    DEFAULT_ACTIONS,
    BreakerSettings,
    ExecutionOptions,
    RetrySettings,
    TimeoutLimits,
    Timeouts,
    check_execution,
    parse,
)
from switchpoint.errors import PROVIDER_KINDS, BadRequest, ConfigError
from switchpoint.executor.timeouts import RequestLimits, attempt_limits, limits_from_headers


def _doc(**extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "providers": {
            "p": {"family": "openai", "base_url": "http://127.0.0.1:9/v1", "timeout_s": 120},
            "q": {"family": "openai", "base_url": "http://127.0.0.1:9/v1"},
        },
        "deployments": {
            "own": {
                "provider": "p",
                "model": "x",
                "timeouts": {"ttft_s": 2, "stall_s": 0},
                "retry": {"attempts": 4},
                "breaker": {"cooldown_s": 7},
            },
            "plain": {"provider": "q", "model": "y"},
            "onp": {"provider": "p", "model": "z"},
        },
    }
    doc.update(extra)
    return doc


def test_built_in_defaults() -> None:
    cfg = parse(_doc(), env={})
    plain = cfg.deployments["plain"]
    assert plain.timeouts == TimeoutLimits(connect_s=10.0, ttft_s=None, stall_s=600.0, total_s=None)
    assert plain.retry == RetrySettings()
    assert plain.breaker == BreakerSettings()
    assert cfg.resilience.actions == DEFAULT_ACTIONS and not cfg.resilience.hedging.enabled
    assert set(DEFAULT_ACTIONS) == set(PROVIDER_KINDS), "every error kind has an action"


def test_layers_deployment_over_provider_over_resilience() -> None:
    cfg = parse(
        _doc(
            resilience={
                "timeouts": {"ttft_s": 30, "stall_s": 20, "total_s": 300, "connect_s": 3},
                "retry": {"attempts": 3, "backoff_base_s": 0.5, "deadline_s": 60},
                "breaker": {"consecutive_failures": 9, "cooldown_s": 11},
                "hedging": {"enabled": True, "delay_ms": 250},
                "actions": {"server_error": "retry_same", "content_filtered": "failover"},
            }
        ),
        env={},
    )
    own, plain = cfg.deployments["own"], cfg.deployments["plain"]
    assert own.timeouts == TimeoutLimits(connect_s=3, ttft_s=2, stall_s=None, total_s=300)
    assert plain.timeouts == TimeoutLimits(connect_s=3, ttft_s=30, stall_s=20, total_s=300)
    assert cfg.deployments["onp"].timeouts.stall_s == 120, "the provider's timeout_s over resilience"
    assert (own.retry.attempts, own.retry.backoff_base_s, own.retry.deadline_s) == (4, 0.5, 60)
    assert (plain.retry.attempts, own.breaker.cooldown_s, own.breaker.consecutive_failures) == (3, 7, 9)
    assert cfg.resilience.actions["server_error"] == "retry_same"
    assert cfg.resilience.actions["content_filtered"] == "failover"
    assert cfg.resilience.actions["bad_request"] == "return"
    assert cfg.resilience.hedging.enabled and cfg.resilience.hedging.delay_ms == 250


def test_every_problem_is_reported_with_its_path() -> None:
    doc = _doc(
        resilience={
            "timeouts": {"ttft_s": -1, "connect_s": 0},
            "retry": {"attempts": 0, "backoff_base_s": 2, "backoff_max_s": 1},
            "breaker": {"error_rate": 1.5, "window_s": 0, "half_open_probes": 0},
            "hedging": {"delay_ms": 0, "max_extra": 0},
            "actions": {"bad_request": "retry_same", "gremlins": "return"},
        }
    )
    doc["deployments"]["own"]["breaker"] = {"cooldown_s": -1}
    doc["providers"]["q"]["connect_timeout_s"] = 0
    with pytest.raises(ConfigError) as info:
        parse(doc, env={})
    text = "\n".join(info.value.problems)
    for where in (
        "$.resilience.timeouts.ttft_s",
        "$.resilience.timeouts.connect_s",
        "$.resilience.retry.attempts",
        "$.resilience.retry.backoff_base_s",
        "$.resilience.breaker.error_rate",
        "$.resilience.breaker.window_s",
        "$.resilience.breaker.half_open_probes",
        "$.resilience.hedging.delay_ms",
        "$.resilience.hedging.max_extra",
        "$.resilience.actions.bad_request",
        "$.resilience.actions.gremlins",
        "$.deployments.own.breaker.cooldown_s",
        "$.providers.q.connect_timeout_s",
    ):
        assert where in text, where


def test_unknown_keys_are_errors() -> None:
    with pytest.raises(ConfigError) as info:
        parse(_doc(resilience={"retries": 3}), env={})
    assert "$.resilience" in info.value.problems[0]
    with pytest.raises(ConfigError):
        parse(_doc(resilience={"actions": {"timeout": "panic"}}), env={})


def test_rule_execution_options_are_checked() -> None:
    problems: list[str] = []
    check_execution(ExecutionOptions(timeouts=Timeouts(stall_s=-2)), "$.routing.rules[0].execution", problems)
    assert problems == ["$.routing.rules[0].execution.timeouts.stall_s: must be positive (or 0 for off)"]


# --- the timeouts of one attempt ------------------------------------------------------------

OWN = TimeoutLimits(connect_s=5, ttft_s=10, stall_s=20, total_s=100)


def test_no_overrides_is_the_deployments_own_object() -> None:
    assert attempt_limits(OWN, None, None, None) is OWN


def test_rule_overrides_and_zero_turns_off() -> None:
    got = attempt_limits(OWN, Timeouts(ttft_s=0, stall_s=3, connect_s=1), None, None)
    assert got == TimeoutLimits(connect_s=1, ttft_s=None, stall_s=3, total_s=100)


def test_request_overrides_the_rule_and_the_deadline_caps_the_total() -> None:
    got = attempt_limits(OWN, Timeouts(ttft_s=4), RequestLimits(ttft_s=0.5, stall_s=0.7), 2.5)
    assert got == TimeoutLimits(connect_s=2.5, ttft_s=0.5, stall_s=0.7, total_s=2.5)
    no_total = TimeoutLimits(connect_s=5, total_s=None)
    assert attempt_limits(no_total, None, None, 9.0).total_s == 9.0


def test_timeout_headers() -> None:
    assert limits_from_headers({}) is None
    got = limits_from_headers(
        {
            "x-switchpoint-timeout-ms": "1500",
            "x-switchpoint-ttft-timeout-ms": "200",
            "x-switchpoint-stall-timeout-ms": "50",
        }
    )
    assert got is not None and (got.deadline_s, got.ttft_s, got.stall_s) == (1.5, 0.2, 0.05)
    for bad in ("0", "-5", "soon", "nan", "99999999"):
        with pytest.raises(BadRequest) as info:
            limits_from_headers({"x-switchpoint-ttft-timeout-ms": bad})
        assert info.value.param == "x-switchpoint-ttft-timeout-ms"
