"""Budgets that hold: USD per UTC day, ISO week (from Monday), calendar month, and in total.

Each request reserves its worst case (the estimated prompt plus all the output it may produce,
at the deployment's price) against every budget it falls under — its key's and its team's — in
the same atomic step as its rate limits; when it ends (answered, failed, cancelled, the client
gone) the reservation is corrected to what it really cost. So the spent-plus-reserved figure
never passes the budget, and spend can exceed it only by what a request's estimate missed.
An audio or image request, priced by its units, reserves the units known up front at the
deployment's per-unit price and is settled to its answer's units (:func:`units_real_cost`).

Spend survives a restart: the first time a process uses a budget (per period), its spent-so-far
is read from the ledger (the requests of the key or team since the period began) and seeded into
the state — in Redis only when no process has done it yet.
"""

from __future__ import annotations

import asyncio
import calendar
import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from switchpoint.canonical import MediaUnits, Usage
from switchpoint.config import Deployment, Price
from switchpoint.governance.limits import INPUT_MARGIN, family_factor
from switchpoint.governance.principal import Budgets, Principal
from switchpoint.governance.state import Check, State
from switchpoint.pricing import cost_usd, units_cost

log = logging.getLogger("switchpoint.governance")

PERIODS = ("daily", "weekly", "monthly", "total")


def period_bounds(period: str, now: float) -> tuple[float, float]:
    """(start, end) of the UTC period holding ``now``; ``total``: (0, 0) — it never ends."""
    if period == "total":
        return 0.0, 0.0
    t = datetime.fromtimestamp(now, UTC)
    day = datetime(t.year, t.month, t.day, tzinfo=UTC)
    if period == "daily":
        start, end = day, day + timedelta(days=1)
    elif period == "weekly":
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    else:
        start = datetime(t.year, t.month, 1, tzinfo=UTC)
        days = calendar.monthrange(t.year, t.month)[1]
        end = start + timedelta(days=days)
    return start.timestamp(), end.timestamp()


class Budget:
    """One budget of one holder in the current period."""

    __slots__ = ("alert_at", "holder", "key", "limit", "name", "period", "scope", "start", "until")

    def __init__(self, scope: str, holder: str, name: str, period: str, limit: float, now: float) -> None:
        #: ``key`` or ``team``; ``holder``: its id; ``name``: its name (for messages and the ledger).
        self.scope = scope
        self.holder = holder
        self.name = name
        self.period = period
        self.limit = limit
        self.start, self.until = period_bounds(period, now)
        self.key = f"b:{scope[0]}:{holder}:{period}:{int(self.start)}"
        #: Spend below which no alert can fire (the alerter keeps it; 0: look at the next one).
        self.alert_at = 0.0

    @property
    def label(self) -> str:
        """The budget's name in errors and alerts: ``key 'ci' daily``."""
        return f"{self.scope} '{self.name}' {self.period}"

    def check(self, amount: float) -> Check:
        return Check("budget", self.key, self.limit, amount, self.until)

    def reset_iso(self) -> str | None:
        if not self.until:
            return None
        return datetime.fromtimestamp(self.until, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _of(budgets: Budgets, scope: str, holder: str, name: str, now: float) -> list[Budget]:
    out: list[Budget] = []
    for period in PERIODS:
        limit = getattr(budgets, period)
        if limit is not None:
            out.append(Budget(scope, holder, name, period, float(limit), now))
    return out


def caller_budgets(principal: Principal, now: float) -> list[Budget]:
    out: list[Budget] = []
    if principal.key_id is not None:
        out += _of(principal.budgets, "key", principal.key_id, principal.name, now)
    team = principal.team
    if team is not None:
        out += _of(team.budgets, "team", team.id, team.name, now)
    return out


def next_change(budgets: list[Budget]) -> float:
    """When the earliest of these budgets' periods ends (inf: none ends)."""
    ends = [b.until for b in budgets if b.until]
    return min(ends) if ends else float("inf")


class Reserve:
    """What a request reserves on one deployment (built once per deployment): its tokens — the
    prompt's estimate plus ``max_tokens`` (or ``default_output``) — and its worst-case cost: the
    estimate plus all the output it may produce (``max_tokens``, at most the deployment's
    ``max_output_tokens``) at the deployment's price.

    The estimate is the prompt's tokens on the o200k basis times the deployment family's factor
    (:func:`~switchpoint.governance.limits.family_factor`), raised by ``INPUT_MARGIN`` plus 8
    when it was not counted exactly."""

    __slots__ = ("default_output", "dep", "factor", "max_output", "price")

    def __init__(self, dep: Deployment, default_output: int) -> None:
        self.dep = dep
        self.price = dep.price
        self.factor = family_factor(dep.family)
        self.max_output = dep.max_output_tokens
        self.default_output = default_output

    def amounts(
        self, prompt_tokens: int, exact: bool, max_tokens: int | None, priced: bool
    ) -> tuple[int, float]:
        """(tokens, cost) to reserve; the cost only when ``priced`` (a budget applies), else 0."""
        n = prompt_tokens * self.factor
        inp = math.ceil(n if exact else n * INPUT_MARGIN + 8)
        if max_tokens is None:
            tokens, out = inp + self.default_output, self.max_output
        else:
            tokens = inp + max_tokens
            out = min(max_tokens, self.max_output) if self.max_output else max_tokens
        return tokens, worst_case(self.price, inp, out) if priced else 0.0


def worst_case(price: Price | None, input_tokens: int, output_tokens: int) -> float:
    """USD for ``input_tokens`` in and ``output_tokens`` out at ``price`` (its long-context
    tier when the prompt is past it); 0 for an unpriced deployment."""
    if price is None:
        return 0.0
    rates = price
    if (
        price.long_context_above is not None
        and input_tokens > price.long_context_above
        and price.long_context
    ):
        rates = price.long_context
    return (input_tokens * rates.input + output_tokens * max(rates.output, rates.reasoning)) / 1_000_000


def real_cost(attempts: Any, deployments: Any) -> float:
    """What the request cost: every attempt's usage at its deployment's price (as the ledger)."""
    if len(attempts) == 1:  # the usual request: one attempt
        one = attempts[0]
        u: Usage | None = one.usage
        if u is None:
            return 0.0
        found: Deployment | None = deployments.get(one.deployment)
        price: Price | None = found.price if found is not None else None
        if price is None:
            return 0.0
        above = price.long_context_above
        if (
            not u.cached_input_tokens
            and not u.cache_write_tokens
            and not u.reasoning_tokens
            and (above is None or u.input_tokens <= above)
        ):  # plain tokens only: pricing's sum has two terms
            return (u.input_tokens * price.input + u.output_tokens * price.output) / 1_000_000
        return cost_usd(u, price)
    total = 0.0
    for a in attempts:
        usage: Usage | None = a.usage
        if usage is None:
            continue
        dep: Deployment | None = deployments.get(a.deployment)
        total += cost_usd(usage, dep.price if dep is not None else None)
    return total


def units_reserve(units: MediaUnits, price: Price | None) -> float:
    """What an audio or image request reserves: its units known up front (a speech's
    characters, the images asked for) at the deployment's per-unit price (0 unpriced)."""
    return units_cost(units, price).total


def units_real_cost(attempts: Any, deployments: Any, units: MediaUnits | None) -> float:
    """What an audio or image request cost, as the ledger prices it: its units (from the
    answer; None when it failed) at the price of every attempt that answered."""
    if units is None:
        return 0.0
    total = 0.0
    for a in attempts:
        if a.error is not None:
            continue
        dep: Deployment | None = deployments.get(a.deployment)
        total += units_cost(units, dep.price if dep is not None else None).total
    return total


class Seeder:
    """Seeds each budget's spent-so-far from the ledger, once per process and period."""

    def __init__(self, state: State, ledger_spend: Callable[[Budget], float] | None) -> None:
        self.state = state
        self.ledger_spend = ledger_spend
        self._seeded: set[str] = set()
        self._pending: dict[str, asyncio.Future[None]] = {}

    def ready(self, budgets: list[Budget]) -> bool:
        seeded = self._seeded
        return all(b.key in seeded for b in budgets)

    async def ensure(self, budgets: list[Budget]) -> None:
        for b in budgets:
            if b.key in self._seeded:
                continue
            pending = self._pending.get(b.key)
            if pending is not None:
                await asyncio.shield(pending)
                continue
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._pending[b.key] = fut
            try:
                spent = 0.0
                if self.ledger_spend is not None:
                    try:
                        spent = await asyncio.to_thread(self.ledger_spend, b)
                    except Exception as exc:  # the ledger is down: the state's own figure stands
                        log.warning("governance: budget %s not seeded from the ledger (%s)", b.label, exc)
                await self.state.seed(b.key, spent, b.until)
                self._seeded.add(b.key)
                fut.set_result(None)
            except BaseException as exc:
                fut.set_exception(exc)
                raise
            finally:
                del self._pending[b.key]
                if not fut.cancelled() and fut.exception() is not None:
                    fut.exception()


def ledger_spender(engine: Any) -> Callable[[Budget], float]:
    """(Thread) The ledger's spend of a budget's holder since its period began."""
    from switchpoint.store import queries

    def spend(b: Budget) -> float:
        filters = {"key": b.holder} if b.scope == "key" else {"team": b.name}
        rows = queries.usage(engine, since=b.start or None, filters=filters)
        return sum(r.cost_usd for r in rows)

    return spend
