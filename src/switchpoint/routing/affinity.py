"""Session affinity: requests of one session stay on one deployment while it is healthy.

Provider prompt caches are per deployment, so keeping a conversation where it started keeps
them hitting. A pin lasts ``ttl_s`` after its last use; the store holds at most
``max_sessions`` pins and forgets the least recently used first. The clock is injected.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class AffinityStore:
    __slots__ = ("_pins", "clock", "max_sessions", "ttl_s")

    def __init__(self, ttl_s: float, max_sessions: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_sessions = max_sessions
        self.clock = clock
        self._pins: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pins)

    def get(self, session: str) -> str | None:
        """The deployment ``session`` is pinned to, if the pin is still live."""
        found = self._pins.get(session)
        if found is None:
            return None
        name, expires = found
        if self.clock() >= expires:
            del self._pins[session]
            return None
        return name

    def pin(self, session: str, deployment: str) -> None:
        """Pin (or re-pin) ``session`` to ``deployment``; refreshes the TTL."""
        self._pins[session] = (deployment, self.clock() + self.ttl_s)
        self._pins.move_to_end(session)
        while len(self._pins) > self.max_sessions:
            self._pins.popitem(last=False)

    def resize(self, ttl_s: float, max_sessions: int) -> None:
        """New limits after a reload; pins made so far are kept."""
        self.ttl_s = ttl_s
        self.max_sessions = max_sessions
        while len(self._pins) > max_sessions:
            self._pins.popitem(last=False)
