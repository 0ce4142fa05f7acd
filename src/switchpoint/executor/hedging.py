"""Hedged attempts: when the first candidate is slow to produce its first token, race another.

Opt-in (a routing rule's ``execution.hedging``, or ``resilience.hedging``). The first attempt
starts alone; if it has produced no first token (streams: first content event; non-streamed:
the answer) after the hedge delay, the next untried candidate starts too, up to ``max_extra``
extra attempts. The first attempt to produce a token wins; the others are cancelled. Every
attempt is recorded; a cancelled one with its input tokens estimated (the upstream has read
the prompt), so it is priced: the router's prompt count when it made one, else characters / 4
(cheap: nothing is tokenized on the request path).

The delay is ``delay_ms`` when set, else the first candidate's observed p95 time to first
token; with too few observations there is no hedge. No task is created unless hedging is on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from switchpoint.canonical import ChatRequest, TextPart, ThinkingPart, ToolCallPart, ToolResultPart, Usage
from switchpoint.config import Deployment, Hedging, TimeoutLimits
from switchpoint.errors import ProviderError
from switchpoint.executor.policy import Plan, Step
from switchpoint.executor.stream import Opened, make_attempt

if TYPE_CHECKING:
    from switchpoint.executor.core import Executor, RequestContext

T = TypeVar("T")
Once = Callable[[Deployment, TimeoutLimits, float], Awaitable[T]]

#: ``Attempt.error`` of a hedged attempt that lost the race.
HEDGE_LOST = "hedge_lost"


def rough_prompt_tokens(request: ChatRequest) -> int:
    """About four characters per token, plus a few per message."""
    chars = 0
    for message in request.messages:
        for part in message.parts:
            if isinstance(part, TextPart | ThinkingPart):
                chars += len(part.text)
            elif isinstance(part, ToolCallPart):
                chars += len(part.arguments) + len(part.name)
            elif isinstance(part, ToolResultPart):
                chars += sum(len(c.text) for c in part.content if isinstance(c, TextPart))
    return chars // 4 + 4 * len(request.messages) + 3


def hedge_delay(executor: Executor, dep: Deployment, hedging: Hedging, streamed: bool) -> float | None:
    if hedging.delay_ms is not None:
        return hedging.delay_ms / 1000.0
    p95 = executor.health.ttft_p95(dep.name, streamed=streamed)
    return None if p95 is None else p95 / 1000.0


class Race(Generic[T]):
    """One hedged step: the first attempt plus up to ``max_extra`` hedges."""

    def __init__(
        self,
        executor: Executor,
        plan: Plan,
        ctx: RequestContext,
        once: Once[T],
        request: ChatRequest | None,
        prompt_tokens: int = 0,
    ) -> None:
        self._ex = executor
        self._plan = plan
        self._ctx = ctx
        self._once = once
        self._request = request
        self._prompt_tokens = prompt_tokens
        self._racers: dict[asyncio.Future[T], tuple[Step, float]] = {}

    def _launch(self, step: Step, *, hedge: bool = False) -> None:
        dep = step.deployment
        limits = self._ex.limits_for(dep, self._plan, self._ctx)
        self._plan.started(step, hedge=hedge)
        self._ex.health.on_start(dep.name)
        t0 = time.perf_counter()
        if hedge:
            ctx = self._ctx
            if ctx.hedges is None:
                ctx.hedges = set()
            ctx.hedges.add(t0)
        self._racers[asyncio.ensure_future(self._once(dep, limits, t0))] = (step, t0)

    async def run(self, first: Step, delay: float, hedging: Hedging) -> tuple[T, Deployment, float] | None:
        """The winner (result, deployment, start time), or None when every racer failed."""
        self._launch(first)
        extra = 0
        winner: tuple[T, Deployment, float] | None = None
        try:
            while self._racers and winner is None:
                timeout = delay if extra < hedging.max_extra else None
                done, _ = await asyncio.wait(
                    self._racers, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    extra += 1
                    busy = frozenset(step.index for step, _ in self._racers.values())
                    step = self._plan.next(busy=busy, hedge=True)
                    if step is not None:
                        self._ex.stats.hedges += 1
                        self._launch(step, hedge=True)
                    continue
                for task in done:
                    winner = await self._settle(task, winner)
        finally:
            await self._cancel_rest()
        if winner is not None and winner[1] is not first.deployment:
            self._ex.stats.hedge_wins += 1
        return winner

    async def _settle(
        self, task: asyncio.Future[T], winner: tuple[T, Deployment, float] | None
    ) -> tuple[T, Deployment, float] | None:
        step, t0 = self._racers.pop(task)
        dep = step.deployment
        exc = task.exception()
        if exc is None:
            result = task.result()
            if winner is None:
                return result, dep, t0
            await self._lost(dep, t0, result)  # finished in the same instant as the winner
            return winner
        if not isinstance(exc, ProviderError):
            raise exc
        self._ex.failed(self._plan, step, exc, self._ctx, t0)
        return winner

    async def _lost(self, dep: Deployment, t0: float, result: Any) -> None:
        usage = getattr(result, "usage", None)
        if isinstance(result, Opened):
            usage = None
            result.reader.close()
        if not isinstance(usage, Usage) and self._request is not None:
            usage = Usage(input_tokens=self._prompt_tokens or rough_prompt_tokens(self._request))
        self._ctx.attempts.append(make_attempt(dep, t0, error=HEDGE_LOST, usage=usage, ctx=self._ctx))
        self._ex.health.on_end(dep.name)
        self._ex.health.on_release(dep.name)

    async def _cancel_rest(self) -> None:
        racers, self._racers = self._racers, {}
        if not racers:
            return
        for task in racers:
            task.cancel()
        await asyncio.wait(racers)
        for task, (step, t0) in racers.items():
            done = not task.cancelled() and task.exception() is None
            await self._lost(step.deployment, t0, task.result() if done else None)
