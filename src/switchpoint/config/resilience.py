"""Resilience settings: timeouts, retries, breakers, hedging, actions per error kind.

See docs/resilience.md. Checked with their paths, then layered
(deployment > provider > ``resilience`` section > built-in).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from switchpoint.config.base import _Frozen
from switchpoint.errors import PROVIDER_KINDS


class Timeouts(_Frozen, frozen=True):
    """Seconds. ``None`` = not set at this level (the next level down decides); ``0`` = off
    (not allowed for ``connect_s``)."""

    connect_s: float | None = None
    #: Streams: until the first content event.
    ttft_s: float | None = None
    #: Streams: longest silence between two chunks.
    stall_s: float | None = None
    #: The whole attempt.
    total_s: float | None = None


class RetryPolicy(_Frozen, frozen=True):
    #: Attempts on the same deployment for a retryable error (1 = no retry).
    attempts: int | None = None
    backoff_base_s: float | None = None
    backoff_max_s: float | None = None
    #: Total attempts across all candidates for one request.
    max_total_attempts: int | None = None
    #: Overall deadline for one request, seconds (0 = none).
    deadline_s: float | None = None
    #: Longest ``Retry-After`` waited inside a request before retrying that deployment.
    retry_after_max_s: float | None = None


class Hedging(_Frozen, frozen=True):
    enabled: bool = False
    #: Start the next candidate after this delay without a first token; ``None`` = the
    #: first candidate's observed p95 time to first token.
    delay_ms: float | None = None
    max_extra: int = 1


class ExecutionOptions(_Frozen, frozen=True):
    """How the candidates of one decision are executed; set by a routing rule, read by the
    executor. Every field overrides the deployment's own setting when set."""

    timeouts: Timeouts | None = None
    retry: RetryPolicy | None = None
    hedging: Hedging | None = None


# --- resilience (see docs/resilience.md) -----------------------------------------------------

#: What the executor does after an attempt failed with a given error kind.
ErrorAction = Literal["retry_same", "failover", "fallback_larger_context", "return"]

DEFAULT_ACTIONS: dict[str, ErrorAction] = {
    "rate_limited": "failover",
    "overloaded": "failover",
    "server_error": "failover",
    "timeout": "failover",
    "connection": "failover",
    "invalid_response": "failover",
    "invalid_output": "failover",
    "context_too_long": "fallback_larger_context",
    "request_too_large": "failover",
    "authentication": "failover",
    "permission": "failover",
    "not_found": "failover",
    "content_filtered": "return",
    "bad_request": "return",
    "unprocessable": "return",
}


class BreakerSpec(_Frozen, frozen=True):
    """Circuit breaker of one deployment; ``None`` = not set at this level."""

    enabled: bool | None = None
    #: Open after this many failures in a row.
    consecutive_failures: int | None = None
    #: Open when the failure share over ``window_s`` reaches this (with ``min_requests`` seen).
    error_rate: float | None = None
    min_requests: int | None = None
    window_s: float | None = None
    #: Seconds open before a half-open probe is let through.
    cooldown_s: float | None = None
    #: Probes allowed at once while half open.
    half_open_probes: int | None = None


class ResilienceSpec(_Frozen, frozen=True):
    """Defaults for every deployment, hedging default, and the action per error kind."""

    timeouts: Timeouts | None = None
    retry: RetryPolicy | None = None
    breaker: BreakerSpec | None = None
    hedging: Hedging | None = None
    actions: dict[str, ErrorAction] = msgspec.field(default_factory=dict)


class TimeoutLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Resolved timeouts in seconds; ``None`` = off."""

    connect_s: float = 10.0
    ttft_s: float | None = None
    stall_s: float | None = 600.0
    total_s: float | None = None


class RetrySettings(msgspec.Struct, frozen=True, kw_only=True):
    """Resolved retry policy of one deployment."""

    attempts: int = 2
    backoff_base_s: float = 0.2
    backoff_max_s: float = 5.0
    max_total_attempts: int = 6
    deadline_s: float | None = None
    retry_after_max_s: float = 10.0


class BreakerSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Resolved circuit-breaker settings of one deployment."""

    enabled: bool = True
    consecutive_failures: int = 5
    error_rate: float = 0.5
    min_requests: int = 20
    window_s: float = 30.0
    cooldown_s: float = 30.0
    half_open_probes: int = 1


class Resilience(msgspec.Struct, frozen=True, kw_only=True):
    """Resolved gateway-wide resilience settings (per-deployment ones live on Deployment)."""

    actions: Mapping[str, ErrorAction] = msgspec.field(default_factory=lambda: dict(DEFAULT_ACTIONS))
    hedging: Hedging = Hedging()


# --- resilience settings: checked, then layered (deployment > provider > resilience > built-in) ---


def check_timeouts(t: Timeouts | None, path: str, problems: list[str]) -> None:
    if t is None:
        return
    for name in Timeouts.__struct_fields__:
        value = getattr(t, name)
        if value is not None and (value < 0 or (value == 0 and name == "connect_s")):
            off = "" if name == "connect_s" else " (or 0 for off)"
            problems.append(f"{path}.{name}: must be positive{off}")


def check_retry(r: RetryPolicy | None, path: str, problems: list[str]) -> None:
    if r is None:
        return
    for name in ("attempts", "max_total_attempts"):
        value = getattr(r, name)
        if value is not None and value < 1:
            problems.append(f"{path}.{name}: must be at least 1")
    for name in ("backoff_base_s", "backoff_max_s", "deadline_s", "retry_after_max_s"):
        value = getattr(r, name)
        if value is not None and value < 0:
            problems.append(f"{path}.{name}: must not be negative")
    if r.backoff_base_s is not None and r.backoff_max_s is not None and r.backoff_base_s > r.backoff_max_s:
        problems.append(f"{path}.backoff_base_s: must not exceed backoff_max_s")


def check_breaker(b: BreakerSpec | None, path: str, problems: list[str]) -> None:
    if b is None:
        return
    for name in ("consecutive_failures", "min_requests", "half_open_probes"):
        value = getattr(b, name)
        if value is not None and value < 1:
            problems.append(f"{path}.{name}: must be at least 1")
    if b.error_rate is not None and not 0 < b.error_rate <= 1:
        problems.append(f"{path}.error_rate: must be above 0 and at most 1")
    if b.window_s is not None and b.window_s <= 0:
        problems.append(f"{path}.window_s: must be positive")
    if b.cooldown_s is not None and b.cooldown_s < 0:
        problems.append(f"{path}.cooldown_s: must not be negative")


def check_hedging(h: Hedging | None, path: str, problems: list[str]) -> None:
    if h is None:
        return
    if h.delay_ms is not None and h.delay_ms <= 0:
        problems.append(f"{path}.delay_ms: must be positive (leave it out for the observed p95)")
    if h.max_extra < 1:
        problems.append(f"{path}.max_extra: must be at least 1")


def check_execution(options: ExecutionOptions | None, path: str, problems: list[str]) -> None:
    """Problems of a routing rule's ``execution`` block, each with its path."""
    if options is None:
        return
    check_timeouts(options.timeouts, f"{path}.timeouts", problems)
    check_retry(options.retry, f"{path}.retry", problems)
    check_hedging(options.hedging, f"{path}.hedging", problems)


def _layered(fields: tuple[str, ...], *layers: Any) -> dict[str, Any]:
    """Per field, the value of the first layer that sets it (layers may be None)."""
    out: dict[str, Any] = {}
    for name in fields:
        for layer in layers:
            value = getattr(layer, name) if layer is not None else None
            if value is not None:
                out[name] = value
                break
    return out


def _resolve_resilience(spec: ResilienceSpec | None, problems: list[str]) -> Resilience:
    if spec is None:
        return Resilience()
    path = "$.resilience"
    check_timeouts(spec.timeouts, f"{path}.timeouts", problems)
    check_retry(spec.retry, f"{path}.retry", problems)
    check_breaker(spec.breaker, f"{path}.breaker", problems)
    check_hedging(spec.hedging, f"{path}.hedging", problems)
    actions = dict(DEFAULT_ACTIONS)
    for kind, action in spec.actions.items():
        known = PROVIDER_KINDS.get(kind)
        if known is None:
            expected = ", ".join(sorted(PROVIDER_KINDS))
            problems.append(f"{path}.actions.{kind}: unknown error kind (expected one of: {expected})")
        elif action == "retry_same" and not known[1]:
            problems.append(
                f"{path}.actions.{kind}: '{kind}' is not retryable; "
                "use failover, fallback_larger_context or return"
            )
        else:
            actions[kind] = action
    return Resilience(actions=actions, hedging=spec.hedging or Hedging())
