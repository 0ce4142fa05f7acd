"""The timeouts of one attempt: the deployment's, under the rule's, under the request's.

Layers (the first that sets a field wins): request headers > the routing rule's
``execution.timeouts`` > the deployment's resolved :class:`~switchpoint.config.TimeoutLimits`.
In a rule, ``None`` inherits and ``0`` turns a timeout off. The request's overall deadline caps
every attempt's total.
"""

from __future__ import annotations

from collections.abc import Mapping

from switchpoint.config import TimeoutLimits, Timeouts
from switchpoint.errors import BadRequest

#: Request headers that override timeouts, in milliseconds.
DEADLINE_HEADER = "x-switchpoint-timeout-ms"
TTFT_HEADER = "x-switchpoint-ttft-timeout-ms"
STALL_HEADER = "x-switchpoint-stall-timeout-ms"
#: A client may not ask for more than this (one hour).
_MAX_MS = 3_600_000


class RequestLimits:
    """Per-request overrides from headers, seconds (``None`` = not set)."""

    __slots__ = ("deadline_s", "stall_s", "ttft_s")

    def __init__(
        self, deadline_s: float | None = None, ttft_s: float | None = None, stall_s: float | None = None
    ) -> None:
        self.deadline_s = deadline_s
        self.ttft_s = ttft_s
        self.stall_s = stall_s


def _ms(headers: Mapping[str, str], name: str) -> float | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= _MAX_MS:
        raise BadRequest(f"{name} must be a number of milliseconds between 1 and {_MAX_MS}", param=name)
    return value / 1000.0


def limits_from_headers(headers: Mapping[str, str]) -> RequestLimits | None:
    """The request's own timeouts, or None when it sets none. Raises BadRequest on bad values."""
    deadline = _ms(headers, DEADLINE_HEADER)
    ttft = _ms(headers, TTFT_HEADER)
    stall = _ms(headers, STALL_HEADER)
    if deadline is None and ttft is None and stall is None:
        return None
    return RequestLimits(deadline, ttft, stall)


def _pick(rule: float | None, own: float | None) -> float | None:
    if rule is None:
        return own
    return rule if rule > 0 else None


def attempt_limits(
    own: TimeoutLimits,
    rule: Timeouts | None,
    request: RequestLimits | None,
    remaining_s: float | None,
) -> TimeoutLimits:
    """The timeouts one attempt runs with. ``remaining_s``: time left before the deadline."""
    if rule is None and request is None and remaining_s is None:
        return own
    connect = own.connect_s if rule is None or not rule.connect_s else rule.connect_s
    ttft = own.ttft_s if rule is None else _pick(rule.ttft_s, own.ttft_s)
    stall = own.stall_s if rule is None else _pick(rule.stall_s, own.stall_s)
    total = own.total_s if rule is None else _pick(rule.total_s, own.total_s)
    if request is not None:
        ttft = request.ttft_s or ttft
        stall = request.stall_s or stall
    if remaining_s is not None:
        total = remaining_s if total is None else min(total, remaining_s)
        connect = min(connect, remaining_s)
    return TimeoutLimits(connect_s=connect, ttft_s=ttft, stall_s=stall, total_s=total)
