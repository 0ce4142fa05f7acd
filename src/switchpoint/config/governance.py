"""The governance sections: ``state`` (shared state), ``alerts`` (budget thresholds), ``queue``
(the priority queue), and the ``limits`` of a deployment (docs/governance.md)."""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from switchpoint.config.base import Secret, _Base

DEFAULT_PREFIX = "switchpoint:"


class StateSpec(_Base):
    #: ``redis://…`` (or an ``env:NAME`` reference to one); unset = this process's memory.
    redis_url: str | None = None
    #: Prefix of every Redis key and channel the gateway uses.
    prefix: str = DEFAULT_PREFIX


class LimitsSpec(_Base):
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None


class AlertsSpec(_Base):
    #: Where alerts are POSTed (JSON); unset = log line and metric only.
    webhook_url: str | None = None
    #: ``env:NAME``: the shared secret the webhook's HMAC-SHA256 signature is made with.
    secret: str | None = None
    #: Fractions of a budget at which an alert fires (once per budget period).
    thresholds: list[float] = msgspec.field(default_factory=lambda: [0.5, 0.8, 1.0])
    #: Attempts per webhook delivery, and the timeout of each.
    attempts: int = 3
    timeout_s: float = 5.0


class QueueSpec(_Base):
    #: Requests that may wait (per process) for a concurrency slot; more are refused (429).
    max_size: int = 1000
    #: Longest wait for a slot, seconds (0: refuse at once).
    max_wait_s: float = 30.0


class StateSettings(msgspec.Struct, frozen=True, kw_only=True):
    redis_url: Secret | str | None = None
    prefix: str = DEFAULT_PREFIX


class DeploymentLimits(msgspec.Struct, frozen=True, kw_only=True):
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None


class Alerts(msgspec.Struct, frozen=True, kw_only=True):
    webhook_url: str | None = None
    secret: Secret | None = None
    thresholds: tuple[float, ...] = (0.5, 0.8, 1.0)
    attempts: int = 3
    timeout_s: float = 5.0


class Queue(msgspec.Struct, frozen=True, kw_only=True):
    max_size: int = 1000
    max_wait_s: float = 30.0


SecretResolver = Callable[[str, str], Secret | None]


def resolve_state(spec: StateSpec | None, problems: list[str], secret: SecretResolver) -> StateSettings:
    if spec is None:
        return StateSettings()
    url: Secret | str | None = spec.redis_url
    if spec.redis_url is not None:
        if spec.redis_url.startswith("env:"):
            url = secret(spec.redis_url, "$.state.redis_url")
        elif not spec.redis_url.startswith(("redis://", "rediss://", "unix://")):
            problems.append("$.state.redis_url: expected redis://, rediss://, unix:// or an env: reference")
    if not spec.prefix:
        problems.append("$.state.prefix: must not be empty")
    return StateSettings(redis_url=url, prefix=spec.prefix)


def resolve_limits(spec: LimitsSpec | None, path: str, problems: list[str]) -> DeploymentLimits | None:
    if spec is None:
        return None
    for name in ("rpm", "tpm", "max_parallel"):
        value = getattr(spec, name)
        if value is not None and value < 1:
            problems.append(f"{path}.{name}: must be positive (or left out for no limit)")
    if spec.rpm is None and spec.tpm is None and spec.max_parallel is None:
        return None
    return DeploymentLimits(rpm=spec.rpm, tpm=spec.tpm, max_parallel=spec.max_parallel)


def resolve_alerts(spec: AlertsSpec | None, problems: list[str], secret: SecretResolver) -> Alerts:
    if spec is None:
        return Alerts()
    if spec.webhook_url is not None and not spec.webhook_url.startswith(("http://", "https://")):
        problems.append("$.alerts.webhook_url: must start with http:// or https://")
    for i, t in enumerate(spec.thresholds):
        if not 0 < t <= 10:
            problems.append(f"$.alerts.thresholds[{i}]: a fraction of the budget above 0 (1.0 = all of it)")
    if spec.attempts < 1 or spec.timeout_s <= 0:
        problems.append("$.alerts: attempts and timeout_s must be positive")
    key = secret(spec.secret, "$.alerts.secret") if spec.secret is not None else None
    return Alerts(
        webhook_url=spec.webhook_url,
        secret=key,
        thresholds=tuple(sorted(set(spec.thresholds))),
        attempts=spec.attempts,
        timeout_s=spec.timeout_s,
    )


def resolve_queue(spec: QueueSpec | None, problems: list[str]) -> Queue:
    if spec is None:
        return Queue()
    if spec.max_size < 0 or spec.max_wait_s < 0:
        problems.append("$.queue: max_size and max_wait_s must not be negative")
    return Queue(max_size=spec.max_size, max_wait_s=spec.max_wait_s)
