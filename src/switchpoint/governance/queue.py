"""The priority queue: requests waiting for an in-flight slot (a key's, a team's or a
deployment's ``max_parallel``).

One lane per slot; in a lane, ``high`` goes before ``normal`` before ``low`` (the batch lane),
first come first served within a priority. Only the head of a lane tries for the slot: it is
woken when this process gives one back, and (with Redis, where another process may give one
back) it also looks every :attr:`WaitQueue.poll_s`. The queue is bounded (``queue.max_size``
waiters per process) and so is each wait (``queue.max_wait_s``): past either, a 429.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools

RANK = {"high": 0, "normal": 1, "low": 2}


class Waiter:
    __slots__ = ("event", "lane", "rank", "seq")

    def __init__(self, lane: str, rank: int, seq: int) -> None:
        self.lane = lane
        self.rank = rank
        self.seq = seq
        self.event = asyncio.Event()

    def __lt__(self, other: Waiter) -> bool:
        return (self.rank, self.seq) < (other.rank, other.seq)


class WaitQueue:
    def __init__(self, max_size: int, max_wait_s: float, poll_s: float = 0.25) -> None:
        self.max_size = max_size
        self.max_wait_s = max_wait_s
        self.poll_s = poll_s
        self._lanes: dict[str, list[Waiter]] = {}
        self._seq = itertools.count()
        self.size = 0
        #: Requests that waited and then got their slot / were refused (for /admin/stats).
        self.served = 0
        self.timed_out = 0
        self.overflowed = 0

    def full(self) -> bool:
        return self.size >= self.max_size

    def join(self, lane: str, priority: str) -> Waiter:
        w = Waiter(lane, RANK.get(priority, 1), next(self._seq))
        heapq.heappush(self._lanes.setdefault(lane, []), w)
        self.size += 1
        return w

    def head(self, w: Waiter) -> bool:
        lane = self._lanes.get(w.lane)
        return bool(lane) and lane[0] is w  # type: ignore[index]

    def leave(self, w: Waiter) -> None:
        lane = self._lanes.get(w.lane)
        if lane is None or w not in lane:
            return
        if lane[0] is w:
            heapq.heappop(lane)
        else:
            lane.remove(w)
            heapq.heapify(lane)
        self.size -= 1
        if lane:
            lane[0].event.set()  # the next one tries at once (more than one slot may be free)
        else:
            del self._lanes[w.lane]

    def released(self, lane: str) -> None:
        """This process gave a slot of ``lane`` back: its head tries now."""
        waiters = self._lanes.get(lane)
        if waiters:
            waiters[0].event.set()

    async def wait(self, w: Waiter, at_most_s: float) -> None:
        """Until woken, ``at_most_s`` passes, or (at the head) the next poll."""
        if self.head(w):
            at_most_s = min(at_most_s, self.poll_s)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(w.event.wait(), max(0.0, at_most_s))
        w.event.clear()
