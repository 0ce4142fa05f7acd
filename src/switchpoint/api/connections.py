"""Client connection limits of the gateway's HTTP/1.1 server: one sweep, and the counts.

Each connection (``api/server.py``) keeps one deadline, in loop time, and the phase it
belongs to (waiting for a request, reading its head, reading its body, lingering after a
refusal, or writes held back by a client that does not read); the protocol moves the
deadline as a request is read, with no timer per request.
One :class:`Sweeper` per server runs every ``interval`` seconds while the server has
connections and hands every connection past its deadline to its ``expire``. A sweep every
second over 10,000 connections is a few milliseconds; a request pays a few attribute stores.

:class:`ConnectionStats` holds what ``/metrics`` shows: connections open and connections the
server closed at a limit, by reason. One per gateway (a test process runs several), found
with :func:`connection_stats`.
"""

from __future__ import annotations

import asyncio
import math
import weakref
from collections.abc import Iterable
from typing import Any, Protocol

from switchpoint.config import ConnectionLimits

#: Why the server closed a connection: its head or body did not arrive in time, it waited
#: too long for its next request, it came past ``max_connections``, its client left the
#: answer unread for ``send_timeout_s``, or a head grew past ``max_head_bytes``.
REASONS = ("head_timeout", "body_timeout", "idle", "limit", "send_timeout", "head_too_large")

#: Seconds a refused connection is still read (and what it sends dropped) before it is
#: closed, so that the answer is not lost to a reset from bytes still arriving.
LINGER_S = 1.0

#: No deadline.
NEVER = math.inf

#: ``max_connections`` when the config leaves it out: this share of the open-file limit
#: (each client connection is one descriptor; upstream connections and files need the rest).
_DEFAULT_SHARE = 2
_DEFAULT_CAP = 10_000


class ConnectionStats:
    """Open connections and closes at a limit, by reason, for one gateway's server(s)."""

    __slots__ = ("__weakref__", "closed", "open")

    def __init__(self) -> None:
        self.open = 0
        self.closed: dict[str, int] = dict.fromkeys(REASONS, 0)

    def prometheus(self) -> list[str]:
        """The two metrics in Prometheus' text format, one line each."""
        lines = [
            "# HELP switchpoint_connections_open Client connections open.",
            "# TYPE switchpoint_connections_open gauge",
            f"switchpoint_connections_open {self.open}",
            "# HELP switchpoint_connections_closed_total Client connections the server closed "
            "at a limit, by reason.",
            "# TYPE switchpoint_connections_closed_total counter",
        ]
        lines += [f'switchpoint_connections_closed_total{{reason="{r}"}} {n}' for r, n in self.closed.items()]
        return lines


_STATS: weakref.WeakKeyDictionary[Any, ConnectionStats] = weakref.WeakKeyDictionary()
#: Servers of an app that is not the gateway's.
_UNOWNED = ConnectionStats()


def stats_for(owner: object | None) -> ConnectionStats:
    """The stats a server of ``owner`` (a ``Gateway``) counts into, made on first use."""
    if owner is None:
        return _UNOWNED
    stats = _STATS.get(owner)
    if stats is None:
        stats = _STATS[owner] = ConnectionStats()
    return stats


def connection_stats(owner: object | None = None) -> ConnectionStats:
    """The counts for ``/metrics``: of ``owner``'s server, or summed over the process."""
    if owner is not None:
        return stats_for(owner)
    total = ConnectionStats()
    for stats in (*_STATS.values(), _UNOWNED):
        total.open += stats.open
        for reason, n in stats.closed.items():
            total.closed[reason] += n
    return total


def max_connections(limits: ConnectionLimits) -> int:
    """The configured maximum, or half the process's open-file limit (at most 10,000)."""
    if limits.max_connections is not None:
        return limits.max_connections
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft == resource.RLIM_INFINITY:
            return _DEFAULT_CAP
    except (ImportError, OSError, ValueError):
        soft = 1024
    return max(16, min(_DEFAULT_CAP, soft // _DEFAULT_SHARE))


def sweep_interval(limits: ConnectionLimits) -> float:
    """A quarter of the shortest timeout, at most a second: a deadline is kept to within it."""
    shortest = min(limits.head_timeout_s, limits.body_timeout_s, limits.keep_alive_s, limits.send_timeout_s)
    return max(0.02, min(1.0, shortest / 4))


class Expiring(Protocol):
    """What the sweep needs of a connection."""

    deadline: float

    def expire(self, now: float) -> None: ...


class Sweeper:
    """One per server: every ``interval`` seconds, expires the connections past their deadline."""

    __slots__ = ("__weakref__", "connections", "handle", "interval", "loop", "max_connections")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, connections: Iterable[Any], limits: ConnectionLimits
    ) -> None:
        self.loop = loop
        self.connections = connections
        self.interval = sweep_interval(limits)
        #: Open connections the server allows (read once: the default asks the kernel).
        self.max_connections = max_connections(limits)
        self.handle: asyncio.TimerHandle | None = None

    def ensure(self) -> None:
        """A connection was made: sweep until none is left."""
        if self.handle is None:
            self.handle = self.loop.call_later(self.interval, self.sweep)

    def sweep(self) -> None:
        self.handle = None
        now = self.loop.time()
        due: list[Expiring] = [c for c in self.connections if c.deadline <= now]
        for conn in due:
            conn.expire(now)
        if self.connections:
            self.handle = self.loop.call_later(self.interval, self.sweep)


_SWEEPERS: weakref.WeakKeyDictionary[Any, Sweeper] = weakref.WeakKeyDictionary()


def sweeper_for(server_state: Any, loop: asyncio.AbstractEventLoop, limits: ConnectionLimits) -> Sweeper:
    """The sweep of the server whose shared state (uvicorn's ``ServerState``) this is."""
    sweeper = _SWEEPERS.get(server_state)
    if sweeper is None or sweeper.loop is not loop:
        sweeper = _SWEEPERS[server_state] = Sweeper(loop, server_state.connections, limits)
    return sweeper


__all__ = [
    "LINGER_S",
    "NEVER",
    "REASONS",
    "ConnectionStats",
    "Sweeper",
    "connection_stats",
    "max_connections",
    "stats_for",
    "sweep_interval",
    "sweeper_for",
]
