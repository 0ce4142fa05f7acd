"""What the request path calls: :meth:`Gate.admit` before the upstream call, and
:meth:`Admission.settle` when the request ends (exactly once, however it ends).

Admission takes, in one atomic step of the shared state, everything the request falls under:
its key's and team's rate limits (RPM, TPM) and in-flight cap, the worst case of its cost from
each of their budgets, and the limits of the deployment it will go to. A deployment at its limit
is passed over for the next candidate; a caller or deployment at its in-flight cap waits in the
priority queue. Whatever cannot be had is refused in the client's dialect: 429 ``rate_limited``
with ``Retry-After``, or ``budget_exceeded`` (429 until the period resets, 402 for a total
budget) — unless the routing rule says ``on_budget: {downgrade_to: <alias>}``, which the caller
handles with :meth:`Gate.downgrade_for`.

A request that falls under nothing (the master key, an open gateway, a key without limits, no
deployment limits) costs one dict lookup: :meth:`Gate.admit` answers None at once.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from switchpoint.canonical import MediaUnits
from switchpoint.config import Config, Deployment
from switchpoint.errors import BudgetExceeded, RateLimited, StateNotShared, StateUnavailable
from switchpoint.governance.alerts import Alerter
from switchpoint.governance.budgets import (
    Budget,
    Reserve,
    Seeder,
    caller_budgets,
    next_change,
    real_cost,
    units_reserve,
)
from switchpoint.governance.limits import (
    WHOLE_SECONDS,
    Limit,
    caller_limits,
    deployment_limits,
    duration,
)
from switchpoint.governance.principal import Principal
from switchpoint.governance.queue import RANK, WaitQueue
from switchpoint.governance.state import Adjust, Check, MemoryState, Outcome, State

log = logging.getLogger("switchpoint.governance")

PRIORITY_HEADER = "x-switchpoint-priority"
BUDGET_HEADER = "x-switchpoint-budget"
BUDGET_RESET_HEADER = "x-switchpoint-budget-reset"
_MAX_PLANS = 10_000


class Slow:
    """:meth:`Gate.admit_now`'s answer when the request needs :meth:`Gate.admit`."""


SLOW = Slow()
_UNITS = {"rpm": "requests per minute", "tpm": "tokens per minute"}


class CallerPlan:
    """A principal's limits and budgets, built once per principal (and budget period)."""

    __slots__ = (
        "budgets",
        "empty",
        "fixed",
        "headers",
        "limits",
        "prepared",
        "principal",
        "seeded",
        "slots",
        "tpm",
        "valid_until",
    )

    def __init__(self, principal: Principal, now: float) -> None:
        self.principal = principal
        self.limits: list[Limit] = caller_limits(principal)
        self.budgets: list[Budget] = caller_budgets(principal, now)
        self.valid_until = next_change(self.budgets)
        self.empty = not self.limits and not self.budgets
        #: Whether the budgets' spend has been read from the ledger (this process, this period).
        self.seeded = not self.budgets
        #: The checks resolved in the memory state (its usual path), once.
        self.prepared: list[Any] | None = None
        #: Per limit, its check when it does not depend on the request (rpm, parallel), else None.
        self.fixed: list[Check | None] = [None if lim.what == "tpm" else lim.check(0) for lim in self.limits]
        self.slots = [lim.key for lim in self.limits if lim.what == "parallel"]
        self.tpm = [lim.key for lim in self.limits if lim.what == "tpm"]
        #: Per header set (requests, tokens): its three names and [(check index, limit, limit
        #: as text)] of the limits it may show (the one with the least room left is shown).
        self.headers: list[tuple[str, str, str, list[tuple[int, int, str]]]] = [
            (
                f"x-ratelimit-limit-{suffix}",
                f"x-ratelimit-remaining-{suffix}",
                f"x-ratelimit-reset-{suffix}",
                found,
            )
            for what, suffix in (("rpm", "requests"), ("tpm", "tokens"))
            if (
                found := [
                    (i, lim.limit, str(lim.limit)) for i, lim in enumerate(self.limits) if lim.what == what
                ]
            )
        ]

    def checks(self, tokens: int, cost: float) -> list[Check]:
        out = [
            c if c is not None else Check("window", lim.key, lim.limit, float(tokens))
            for c, lim in zip(self.fixed, self.limits, strict=True)
        ]
        for b in self.budgets:
            out.append(Check("budget", b.key, b.limit, cost, b.until))
        return out

    def set_headers(self, outcome: Outcome, headers: dict[str, str]) -> None:
        used, reset = outcome.used, outcome.reset
        n = len(used)
        for limit_name, remaining_name, reset_name, found in self.headers:
            i, limit, text = found[0]
            if len(found) > 1:
                best = [(lim - used[j], j, t) for j, lim, t in found if j < n]
                if not best:
                    continue
                room, i, text = min(best)
            elif i < n:
                room = limit - used[i]
            else:
                continue
            headers[limit_name] = text
            headers[remaining_name] = str(int(room)) if room > 0 else "0"
            r = reset[i]
            headers[reset_name] = WHOLE_SECONDS[math.ceil(r)] if 1.0 <= r <= 60.0 else duration(r)


class Admission:
    """What one admitted request holds; :meth:`settle` gives it back (once)."""

    __slots__ = (
        "_done",
        "_gate",
        "budgets",
        "deployments",
        "prepared",
        "reserved_cost",
        "reserved_tokens",
        "rid",
        "skipped",
        "slots",
        "windows",
    )

    def __init__(self, gate: Gate, rid: str) -> None:
        self._gate = gate
        self._done = False
        self.rid = rid
        #: The candidates to execute when admission changed them (None: as routed), and the
        #: ones passed over as (deployment, why).
        self.deployments: tuple[Deployment, ...] | None = None
        self.skipped: list[tuple[str, str]] = []
        self.slots: list[str] = []
        self.windows: list[str] = []  # TPM windows, corrected to the real tokens
        self.budgets: list[Budget] = []
        self.reserved_tokens = 0
        self.reserved_cost = 0.0
        #: Admitted by the memory state's prepared path: settled the same way.
        self.prepared: list[Any] | None = None

    @property
    def settled(self) -> bool:
        return self._done

    def settle(
        self, attempts: Sequence[Any], *, cost: float | None = None, tokens: int | None = None
    ) -> None:
        """The request ended (any way): correct its reservations to its attempts' real usage
        and cost, and give its slots back. Idempotent; never blocks.

        ``cost`` and ``tokens``, when given, are what the request really cost and used, in
        place of its attempts' token usage priced by the deployment (a request priced by its
        units — audio, images — whose attempts carry no token usage)."""
        if self._done:
            return
        self._done = True
        gate = self._gate
        prepared = self.prepared
        if prepared is not None:  # admitted by the memory state's prepared path
            used = 0
            if tokens is not None:
                used = tokens
            else:
                for a in attempts:
                    u = a.usage
                    if u is not None:
                        used += u.input_tokens + u.output_tokens
            budgets = self.budgets
            delta = 0.0
            if budgets:
                real = cost if cost is not None else real_cost(attempts, gate.deployments)
                delta = real - self.reserved_cost
            assert gate.memory is not None
            levels = gate.memory.settle_prepared(
                self.rid, prepared, float(used - self.reserved_tokens), delta
            )
            if self.slots:
                for lane in self.slots:
                    gate.queue.released(lane)
            if budgets:
                for b, level in zip(budgets, levels, strict=True):
                    if level >= b.alert_at:  # below it the alerter has nothing to do
                        gate.alerter.observe(b, level)
            return
        adjusts: list[Adjust] = [Adjust("slot", k) for k in self.slots]
        if self.windows:
            used = 0
            if tokens is not None:
                used = tokens
            else:
                for a in attempts:
                    if a.usage is not None:
                        used += a.usage.input_tokens + a.usage.output_tokens
            delta = float(used - self.reserved_tokens)
            adjusts += [Adjust("window", k, delta) for k in self.windows]
        first_budget = len(adjusts)
        if self.budgets:
            real = cost if cost is not None else real_cost(attempts, gate.deployments)
            delta = real - self.reserved_cost
            adjusts += [Adjust("budget", b.key, delta, b.until) for b in self.budgets]
        if not adjusts:
            return
        budgets, slots = self.budgets, self.slots

        def then(levels: list[float]) -> None:
            for lane in slots:
                gate.queue.released(lane)
            for i, b in enumerate(budgets):
                gate.alerter.observe(b, levels[first_budget + i])

        gate.state.settle(self.rid, adjusts, then)


class Gate:
    def __init__(
        self, config: Config, state: State, *, ledger_spend: Any = None, clock: Any = time.time
    ) -> None:
        self.state = state
        self.clock = clock
        self.deployments: Mapping[str, Deployment] = config.deployments
        self.limited: dict[str, list[Limit]] = {
            name: lims for name, d in config.deployments.items() if (lims := deployment_limits(d))
        }
        poll = 0.02 if state.name == "redis" else 0.25
        self.queue = WaitQueue(config.queue.max_size, config.queue.max_wait_s, poll)
        self.alerter = Alerter(config.alerts, state)
        self.seeder = Seeder(state, ledger_spend)
        routing = config.routing
        self.default_output = routing.default_output_tokens if routing is not None else 512
        rules = [
            *(routing.rules if routing is not None else ()),
            *([routing.default] if routing and routing.default else []),
        ]
        self.downgrades = {r.name: r.on_budget.downgrade_to for r in rules if r.on_budget is not None}
        self._plans: dict[int, CallerPlan] = {}
        #: Per deployment, what its requests reserve (built on first use).
        self._reserves: dict[str, Reserve] = {}
        #: One of several workers, each with its own memory state: limited callers are refused.
        self.unshared = state.name == "memory" and int(os.environ.get(ENV_WORKERS) or 1) > 1
        #: The memory backend, called without a coroutine on the usual path.
        self.memory = state if isinstance(state, MemoryState) else None
        #: Refusals by kind (for /admin/stats).
        self.refused: dict[str, int] = {}
        #: Each admission holds its windows and slots under a token of its own (never the
        #: client's x-request-id, which two requests may share): this process's tag and a count.
        self._tag = os.urandom(4).hex()
        self._seq = itertools.count()

    def configure(self, config: Config) -> Gate:
        """The same state under a reloaded config (deployment limits, rules, queue, alerts)."""
        return Gate(config, self.state, ledger_spend=self.seeder.ledger_spend, clock=self.clock)

    def downgrade_for(self, rule: str | None) -> str | None:
        """The alias a rule serves with when a budget cannot hold the request (None: refuse)."""
        return self.downgrades.get(rule) if rule is not None else None

    def _plan(self, principal: Principal, now: float) -> CallerPlan:
        plans = self._plans
        plan = plans.get(id(principal))
        if plan is None or plan.principal is not principal or now >= plan.valid_until:
            if len(plans) >= _MAX_PLANS:
                plans.clear()
            plan = plans[id(principal)] = CallerPlan(principal, now)
        return plan

    async def admit(
        self,
        principal: Principal,
        deployments: Sequence[Deployment],
        *,
        rid: str,
        prompt_tokens: int,
        exact: bool,
        max_tokens: int | None,
        request_headers: Mapping[str, str],
        headers: dict[str, str],
        units: MediaUnits | None = None,
    ) -> Admission | None:
        """Reserve what the request needs (see the module's docstring); None: it falls under
        nothing. Sets the ``x-ratelimit-*`` headers in ``headers``; raises
        :class:`RateLimited` or :class:`BudgetExceeded`.

        ``units``: the request is priced by its units (audio, images), not by tokens; its
        budgets reserve these units at each deployment's per-unit price (settle it with
        ``cost=``)."""
        limited = self.limited
        if principal.key_id is None and not limited:
            return None
        now = self.clock()
        plan = self._plan(principal, now)
        if plan.empty and not limited:
            return None
        if self.unshared and not plan.empty:
            raise StateNotShared(
                "This key has limits or budgets, and this gateway runs several workers without "
                "shared state (state.redis_url): it cannot enforce them, so it refuses the request"
            )
        if not plan.seeded:
            await self.seeder.ensure(plan.budgets)
            plan.seeded = True
        if self.memory is not None and not limited:
            fast = self.admit_now(
                principal, deployments[0], rid, prompt_tokens, exact, max_tokens, headers, units
            )
            if not isinstance(fast, Slow):
                return fast
        rid = f"{self._tag}{next(self._seq):x}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.queue.max_wait_s
        waiter = None
        try:
            while True:
                found = await self._try(
                    plan, deployments, rid, prompt_tokens, exact, max_tokens, headers, units
                )
                if isinstance(found, Admission):
                    if waiter is not None:
                        self.queue.served += 1
                    return found
                lane, err = found
                if lane is None:
                    raise err
                if waiter is None:
                    if self.queue.max_wait_s <= 0 or self.queue.full():
                        self.queue.overflowed += 1
                        raise err
                    priority = request_headers.get(PRIORITY_HEADER)
                    if priority not in RANK:
                        priority = principal.priority
                    waiter = self.queue.join(lane, priority)
                left = deadline - loop.time()
                if left <= 0:
                    self.queue.timed_out += 1
                    raise RateLimited(
                        f"{err.message} (waited {self.queue.max_wait_s:g}s in the queue)",
                        code="queue_timeout",
                        retry_after=1.0,
                    )
                if waiter.lane != lane:  # now waiting for another slot
                    self.queue.leave(waiter)
                    waiter = self.queue.join(lane, waiter_priority(waiter))
                await self.queue.wait(waiter, left)
                while not self.queue.head(waiter):
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    await self.queue.wait(waiter, left)
        except (RateLimited, BudgetExceeded) as exc:
            self.refused[exc.kind] = self.refused.get(exc.kind, 0) + 1
            raise
        finally:
            if waiter is not None:
                self.queue.leave(waiter)

    def admit_now(
        self,
        principal: Principal,
        dep: Deployment,
        rid: str,
        prompt_tokens: int,
        exact: bool,
        max_tokens: int | None,
        headers: dict[str, str],
        units: MediaUnits | None = None,
    ) -> Admission | Slow | None:
        """The usual request in one synchronous step (memory state, no deployment limits, the
        caller's budgets already read from the ledger, everything fits): its admission, None
        when it falls under nothing, or :data:`SLOW` — then call :meth:`admit`, which does
        everything else (and refuses what does not fit). The checks were resolved once per
        plan; only this request's amounts are filled in."""
        if principal.key_id is None and not self.limited:
            return None
        memory = self.memory
        if memory is None or self.limited or self.unshared:
            return SLOW
        plan = self._plans.get(id(principal))
        if plan is None or plan.principal is not principal or not plan.seeded:
            return SLOW
        if plan.empty:
            return None
        if self.clock() >= plan.valid_until:
            return SLOW
        reserve = self._reserves.get(dep.name)
        if reserve is None or reserve.dep is not dep:
            reserve = self._reserves[dep.name] = Reserve(dep, self.default_output)
        tokens, cost = reserve.amounts(prompt_tokens, exact, max_tokens, bool(plan.budgets))
        if units is not None and plan.budgets:
            cost = units_reserve(units, dep.price)
        prepared = plan.prepared
        if prepared is None:
            prepared = plan.prepared = memory.prepare(plan.checks(0, 0.0))
        token = f"{self._tag}{next(self._seq):x}"
        out = memory.admit_prepared(token, prepared, tokens, cost)
        if out.refused is not None:
            return SLOW  # admit() says why
        if plan.headers:
            plan.set_headers(out, headers)
        adm = Admission(self, token)
        adm.prepared = prepared
        adm.slots = plan.slots
        adm.budgets = plan.budgets
        adm.reserved_tokens = tokens
        adm.reserved_cost = cost
        return adm

    async def _try(
        self,
        plan: CallerPlan,
        deployments: Sequence[Deployment],
        rid: str,
        prompt_tokens: int,
        exact: bool,
        max_tokens: int | None,
        headers: dict[str, str],
        units: MediaUnits | None = None,
    ) -> Admission | tuple[str | None, RateLimited | BudgetExceeded]:
        """One pass over the candidates: an admission, or (the slot lane to wait for, the error)."""
        lims, budgets = plan.limits, plan.budgets
        n_lims, n_caller = len(lims), len(lims) + len(budgets)
        skipped: list[tuple[str, str]] = []
        wait_lane: str | None = None
        dep_error: RateLimited | None = None
        for i, dep in enumerate(deployments):
            dlims = self.limited.get(dep.name, ())
            reserve = self._reserves.get(dep.name)
            if reserve is None or reserve.dep is not dep:
                reserve = self._reserves[dep.name] = Reserve(dep, self.default_output)
            tokens, cost = reserve.amounts(prompt_tokens, exact, max_tokens, bool(budgets))
            if units is not None and budgets:
                cost = units_reserve(units, dep.price)
            checks = plan.checks(tokens, cost)
            checks += [lim.check(tokens) for lim in dlims]
            try:
                out = await self.state.admit(rid, checks)
            except Exception as exc:
                log.warning(
                    "governance: the %s state did not answer (%s)", self.state.name, type(exc).__name__
                )
                raise StateUnavailable(
                    "The gateway's shared limit and budget state is unavailable; retry shortly",
                    retry_after=1.0,
                ) from None
            if plan.headers:
                plan.set_headers(out, headers)
            r = out.refused
            if r is None:
                adm = Admission(self, rid)
                adm.slots = [c.key for c in checks if c.kind == "slot"]
                adm.windows = [lim.key for lim in (*lims, *dlims) if lim.what == "tpm"]
                adm.budgets = budgets
                adm.reserved_tokens = tokens
                adm.reserved_cost = cost
                if i > 0:
                    rest = deployments[i + 1 :]
                    adm.deployments = (dep, *[d for d in rest if d.name not in self.limited])
                    adm.skipped = skipped
                elif len(deployments) > 1 and any(d.name in self.limited for d in deployments[1:]):
                    # failover goes only where nothing is to be reserved
                    adm.deployments = (dep, *[d for d in deployments[1:] if d.name not in self.limited])
                return adm
            if r < n_lims:
                lim = lims[r]
                if lim.what == "parallel":
                    return lim.key, RateLimited(
                        f"{lim.who} has {lim.limit} requests in flight (its max_parallel)",
                        code="too_many_parallel_requests",
                        retry_after=1.0,
                    )
                return None, RateLimited(
                    f"Rate limit reached for {lim.who}: {lim.limit} {_UNITS[lim.what]}",
                    code="rate_limit_exceeded",
                    retry_after=max(1.0, out.retry_after),
                )
            if r < n_caller:
                b = budgets[r - n_lims]
                spent = out.used[r] if r < len(out.used) else 0.0
                reset = b.reset_iso()
                headers[BUDGET_HEADER] = b.label
                if reset is not None:
                    headers[BUDGET_RESET_HEADER] = reset
                when = f"; it resets at {reset}" if reset else "; it does not reset"
                return None, BudgetExceeded(
                    f"Budget exceeded: the {b.label} budget of ${b.limit:.2f} cannot hold this "
                    f"request (worst case ${cost:.6f}; ${spent:.6f} spent or reserved){when}",
                    budget=b.label,
                    resets_at=reset,
                    retry_after=max(1.0, b.until - self.clock()) if b.until else None,
                )
            lim = dlims[r - n_caller]
            skipped.append((dep.name, f"at its {lim.what} limit"))
            if lim.what == "parallel":
                wait_lane = wait_lane or lim.key
                retry = 1.0
            else:
                retry = max(1.0, out.retry_after)
            if dep_error is None or (dep_error.retry_after or 0) > retry:
                dep_error = RateLimited(
                    f"Every deployment for this request is at its limit ({lim.who}: {lim.limit} "
                    f"{_UNITS.get(lim.what, 'requests in flight')})",
                    code="deployment_at_limit",
                    retry_after=retry,
                )
        assert dep_error is not None
        return wait_lane, dep_error

    def stats(self) -> dict[str, Any]:
        q = self.queue
        return {
            "backend": self.state.name,
            "queue": {
                "waiting": q.size,
                "served": q.served,
                "timed_out": q.timed_out,
                "overflowed": q.overflowed,
            },
            "refused": dict(self.refused),
            "alerts_fired": sum(self.alerter.fired.values()),
        }

    def prometheus(self) -> list[str]:
        """``/metrics`` lines: budget alerts fired, refusals by kind, the queue (this process)."""
        out = [
            "# HELP switchpoint_budget_alerts_total Budget threshold alerts fired (this process).",
            "# TYPE switchpoint_budget_alerts_total counter",
        ]
        fired = self.alerter.fired
        out += [
            f'switchpoint_budget_alerts_total{{scope="{scope}",period="{period}",threshold="{t:g}"}} {n}'
            for (scope, period, t), n in sorted(fired.items())
        ] or ["switchpoint_budget_alerts_total 0"]
        out += [
            "# HELP switchpoint_governance_refused_total Requests refused by a limit, a budget or the queue.",
            "# TYPE switchpoint_governance_refused_total counter",
            *[
                f'switchpoint_governance_refused_total{{kind="{k}"}} {n}'
                for k, n in sorted(self.refused.items())
            ],
            "# HELP switchpoint_governance_queue_waiting Requests waiting for an in-flight slot.",
            "# TYPE switchpoint_governance_queue_waiting gauge",
            f"switchpoint_governance_queue_waiting {self.queue.size}",
        ]
        return out

    async def close(self) -> None:
        await self.state.drain()
        await self.alerter.drain()
        await self.state.close()


def waiter_priority(waiter: Any) -> str:
    for name, rank in RANK.items():
        if rank == waiter.rank:
            return name
    return "normal"


def retry_after_header(seconds: float | None) -> str | None:
    return None if seconds is None else str(max(1, math.ceil(seconds)))


def gate_for(config: Config, engine: Any = None) -> Gate:
    """The config's gate: its state backend (Redis with ``state.redis_url``, else memory) and,
    with a ledger database (``engine``), budgets seeded from the ledger."""
    from switchpoint.governance.budgets import ledger_spender
    from switchpoint.governance.state import make_state

    url: Any = config.state.redis_url
    if url is not None and hasattr(url, "reveal"):
        url = url.reveal()
    state = make_state(str(url) if url else None, config.state.prefix)
    return Gate(config, state, ledger_spend=ledger_spender(engine) if engine is not None else None)


#: Set by ``switchpoint serve --workers N`` for its workers: the number of worker processes.
ENV_WORKERS = "SWITCHPOINT_WORKERS"


def shared_state_problem(config: Config, workers: int) -> str | None:
    """Why ``workers`` processes cannot govern this config without ``state.redis_url`` (None:
    they can — Redis is set, there is one worker, or nothing is limited). Reads the ledger's keys
    and teams once (the serving parent, before its workers start)."""
    if workers <= 1 or config.state.redis_url:
        return None
    limited = sorted(name for name, d in config.deployments.items() if d.limits is not None)
    if limited:
        return f"deployments {', '.join(limited)} have limits"
    if not config.storage.enabled:
        return None
    from switchpoint.store import keys as store
    from switchpoint.store.engine import database_url, make_engine

    engine = make_engine(database_url(config.storage.url))
    try:
        keys = store.list_keys(engine)
        teams = store.list_teams(engine)
    except Exception:  # no database yet (or not reachable): nothing is limited so far
        return None
    finally:
        engine.dispose()
    fields = ("rpm", "tpm", "max_parallel", "budget_daily", "budget_weekly", "budget_monthly", "budget_total")
    held = [f"key '{k.name}'" for k in keys if any(getattr(k, f) is not None for f in fields)]
    held += [f"team '{t.name}'" for t in teams if any(getattr(t, f) is not None for f in fields)]
    if held:
        shown = ", ".join(held[:3]) + (f" and {len(held) - 3} more" if len(held) > 3 else "")
        return f"{shown} {'has' if len(held) == 1 else 'have'} limits or budgets"
    return None
