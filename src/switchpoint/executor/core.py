"""The executor: try candidates, translate through adapters, keep every attempt.

Which candidate comes next, after how long, and when to give up is the per-request
:class:`~switchpoint.executor.policy.Plan`'s call (actions per error kind, retries with
backoff, budgets, deadline, breakers). Non-streaming: the first success wins. Streaming: a
stream is committed to a candidate only when its first content event arrives; failures before
that move on invisibly. After commit, failures end the client's stream (the API layer writes
the dialect's error event): output is never duplicated or interleaved. Hedging
(:mod:`~switchpoint.executor.hedging`) races a second candidate against a slow first one.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from switchpoint.canonical import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, Usage
from switchpoint.config import Deployment, ExecutionOptions, Resilience, TimeoutLimits
from switchpoint.errors import ProviderError
from switchpoint.executor.guarantees import Guard, GuardedStream, Spending, prepare
from switchpoint.executor.hedging import Race, hedge_delay
from switchpoint.executor.policy import Plan, ResilienceStats, Step, plan_deadline
from switchpoint.executor.stream import CommittedStream, Opened, make_attempt, open_stream
from switchpoint.executor.timeouts import RequestLimits, attempt_limits
from switchpoint.executor.transport import Transport
from switchpoint.health import HealthRegistry
from switchpoint.providers import Adapter, UpstreamRequest, UpstreamResponse, adapter_for
from switchpoint.records import Attempt
from switchpoint.routing import Decision

T = TypeVar("T")
Once = Callable[[Deployment, TimeoutLimits, float], Awaitable[T]]


class RequestContext:
    """Mutable per-request state the executor fills in; the API turns it into a record."""

    __slots__ = (
        "attempts",
        "deployment",
        "hedges",
        "limits",
        "outcome",
        "request_id",
        "start",
        "started_at",
        "ttft_ms",
        "usage",
    )

    def __init__(self, request_id: str, limits: RequestLimits | None = None) -> None:
        self.request_id = request_id
        self.start = time.perf_counter()
        self.started_at = time.time()
        self.attempts: list[Attempt] = []
        #: Start times (``perf_counter``) of the attempts that were hedges (None: no hedge).
        self.hedges: set[float] | None = None
        self.deployment: str | None = None
        self.ttft_ms: float | None = None
        self.usage: Usage | None = None
        #: Timeouts the client asked for (headers), if any.
        self.limits = limits
        #: What an output guarantee noted on an answer the client got (``output_budget``: ended
        #: early at its budget; ``invalid_output``: a stream's JSON failed its check).
        self.outcome: str | None = None

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.start) * 1000.0


class Executor:
    def __init__(
        self,
        transport: Transport,
        adapters: Mapping[str, Adapter] | None = None,
        *,
        health: HealthRegistry | None = None,
        resilience: Resilience | None = None,
        seed: int | None = None,
    ) -> None:
        self.transport = transport
        self._adapters: dict[str, Adapter] = dict(adapters or {})
        self.health = health or HealthRegistry()
        self.resilience = resilience or Resilience()
        self.stats = ResilienceStats()
        self._rng = random.Random(seed)
        #: Output tokens used by sessions and tasks under an output budget (this process).
        self.spending = Spending()

    def configure(self, resilience: Resilience) -> None:
        """New gateway-wide settings (a reloaded config); deployments carry their own."""
        self.resilience = resilience

    def adapter(self, family: str) -> Adapter:
        found = self._adapters.get(family)
        if found is None:
            found = self._adapters[family] = adapter_for(family)
        return found

    # --- the attempt loop ----------------------------------------------------------------------

    def limits_for(self, dep: Deployment, plan: Plan, ctx: RequestContext) -> TimeoutLimits:
        return attempt_limits(dep.timeouts, plan.timeouts, ctx.limits, plan.remaining())

    def failed(self, plan: Plan, step: Step, err: ProviderError, ctx: RequestContext, t0: float) -> None:
        """Book a failed attempt: health, record, plan."""
        name = step.deployment.name
        self.health.on_end(name)
        self.health.on_failure(name, err.kind, retry_after=err.retry_after)
        ctx.attempts.append(make_attempt(step.deployment, t0, err=err, ctx=ctx))
        plan.failed(step, err)

    async def _run(
        self,
        candidates: Sequence[Deployment],
        options: ExecutionOptions | None,
        ctx: RequestContext,
        model: str,
        once: Once[T],
        *,
        streamed: bool,
        request: ChatRequest | None = None,
        prompt_tokens: int = 0,
    ) -> tuple[T, Deployment, float]:
        """Attempts until one succeeds (result, deployment, its start time) or the plan ends."""
        limits = ctx.limits
        deadline_s = limits.deadline_s if limits is not None else None
        hedging = options.hedging if options is not None and options.hedging is not None else None
        if hedging is None:
            hedging = self.resilience.hedging
        plan: Plan | None = None
        rule = options.retry if options is not None else None
        first = candidates[0] if candidates else None
        if (
            first is not None
            and not hedging.enabled
            and plan_deadline(first.retry, rule, deadline_s) is None
            and self.health.admit(first.name, first.breaker)
        ):
            # The usual request: its first candidate, at once, with no deadline to keep. The
            # plan is made only if this attempt fails (it counts the attempt as its first).
            timeouts = options.timeouts if options is not None else None
            first_limits = attempt_limits(first.timeouts, timeouts, limits, None)
            self.stats.attempts += 1
            self.health.on_start(first.name)
            t0 = time.perf_counter()
            try:
                return await once(first, first_limits, t0), first, t0
            except ProviderError as err:
                plan = self._plan(candidates, options, deadline_s)
                self.failed(plan, plan.first_tried(), err, ctx, t0)
            except BaseException:
                self._given_up(first, t0, ctx)
                raise
        if plan is None:
            plan = self._plan(candidates, options, deadline_s)
        while True:
            step = plan.next()
            if step is None:
                raise plan.failure(model)
            dep = step.deployment
            if step.delay_s:
                await asyncio.sleep(step.delay_s)
            if hedging.enabled:
                delay = hedge_delay(self, dep, hedging, streamed)
                if delay is not None:
                    race = Race(self, plan, ctx, once, request, prompt_tokens)
                    won = await race.run(step, delay, hedging)
                    if won is not None:
                        return won
                    continue
            attempt_limits_ = self.limits_for(dep, plan, ctx)
            plan.started(step)
            self.health.on_start(dep.name)
            t0 = time.perf_counter()
            try:
                result = await once(dep, attempt_limits_, t0)
            except ProviderError as err:
                self.failed(plan, step, err, ctx, t0)
                continue
            except BaseException:
                self._given_up(dep, t0, ctx)
                raise
            return result, dep, t0

    def _plan(
        self, candidates: Sequence[Deployment], options: ExecutionOptions | None, deadline_s: float | None
    ) -> Plan:
        return Plan(
            candidates,
            health=self.health,
            actions=self.resilience.actions,
            options=options,
            stats=self.stats,
            rng=self._rng,
            deadline_s=deadline_s,
        )

    def _given_up(self, dep: Deployment, t0: float, ctx: RequestContext) -> None:
        """An attempt cancelled (the client left, shutdown): not in flight, no outcome."""
        self.health.on_end(dep.name)
        self.health.on_release(dep.name)
        ctx.attempts.append(make_attempt(dep, t0, error="cancelled", ctx=ctx))

    def _succeeded(self, ctx: RequestContext, dep: Deployment, t0: float, usage: Usage | None) -> None:
        attempt = make_attempt(dep, t0, status=200, usage=usage, ctx=ctx)
        ctx.attempts.append(attempt)
        ctx.deployment = dep.name
        ctx.usage = usage
        self.health.on_answer(dep.name, attempt.latency_ms)

    # --- non-streaming ---------------------------------------------------------------------

    async def _send(
        self, adapter: Adapter, dep: Deployment, upstream: UpstreamRequest, limits: TimeoutLimits
    ) -> UpstreamResponse:
        """One non-streaming call; a non-2xx answer becomes the adapter's classified error."""
        resp = await self.transport.send(
            upstream,
            timeout_s=limits.total_s,
            connect_timeout_s=limits.connect_s,
            read_timeout_s=limits.stall_s,
        )
        if resp.status >= 400:
            raise adapter.classify(resp, dep)
        return resp

    async def chat(self, request: ChatRequest, decision: Decision, ctx: RequestContext) -> ChatResponse:
        guard: Guard | None = None
        if decision.guarantees is not None:  # the rule's output guarantees (executor/guarantees.py)
            guard, request = prepare(request, decision, self.spending)

        async def once(dep: Deployment, limits: TimeoutLimits, t0: float) -> ChatResponse:
            adapter = self.adapter(dep.family)
            resp = await self._send(adapter, dep, adapter.build_chat(request, dep), limits)
            result = adapter.parse_chat(resp, dep)
            if guard is not None:
                guard.check_response(result)
            return result

        result, dep, t0 = await self._run_routed(decision, request, ctx, once, streamed=False)
        self._succeeded(ctx, dep, t0, result.usage)
        if guard is not None:
            guard.settle(ctx, result.usage, result.finish_reason)
        return result

    async def _run_routed(
        self, decision: Decision, request: ChatRequest, ctx: RequestContext, once: Once[T], *, streamed: bool
    ) -> tuple[T, Deployment, float]:
        """:meth:`_run` over the routing decision's candidates, with its options."""
        return await self._run(
            [c.deployment for c in decision.candidates],
            decision.options,
            ctx,
            decision.model,
            once,
            streamed=streamed,
            request=request,
            prompt_tokens=decision.prompt_tokens,
        )

    async def embeddings(
        self, request: EmbeddingRequest, deployments: tuple[Deployment, ...], ctx: RequestContext
    ) -> EmbeddingResponse:
        async def once(dep: Deployment, limits: TimeoutLimits, t0: float) -> EmbeddingResponse:
            adapter = self.adapter(dep.family)
            resp = await self._send(adapter, dep, adapter.build_embeddings(request, dep), limits)
            return adapter.parse_embeddings(resp, dep)

        result, dep, t0 = await self._run(deployments, None, ctx, request.model, once, streamed=False)
        self._succeeded(ctx, dep, t0, result.usage)
        return result

    # --- streaming -------------------------------------------------------------------------

    async def chat_stream(
        self, request: ChatRequest, decision: Decision, ctx: RequestContext
    ) -> CommittedStream:
        guard: Guard | None = None
        if decision.guarantees is not None:
            guard, request = prepare(request, decision, self.spending)
        whole = guard.check_batch if guard is not None and guard.buffer and guard.check is not None else None

        async def once(dep: Deployment, limits: TimeoutLimits, t0: float) -> Opened:
            adapter = self.adapter(dep.family)
            if guard is None:
                return await open_stream(self.transport, adapter, request, dep, limits, t0)
            return await open_stream(
                self.transport, adapter, request, dep, limits, t0, parse_all=True, whole=whole
            )

        opened, dep, _ = await self._run_routed(decision, request, ctx, once, streamed=True)
        ctx.deployment = dep.name
        ctx.ttft_ms = ctx.elapsed_ms()
        self.health.on_first_token(dep.name, opened.ttft_ms)
        if guard is not None:
            return GuardedStream(opened, ctx, self.health, guard)
        return CommittedStream(opened, ctx, self.health)


def describe_attempts(attempts: list[Attempt]) -> list[dict[str, Any]]:
    """A compact, secret-free view of attempts (for logs and admin views)."""
    return [
        {
            "deployment": a.deployment,
            "status": a.status,
            "error": a.error,
            "latency_ms": round(a.latency_ms, 2),
        }
        for a in attempts
    ]
