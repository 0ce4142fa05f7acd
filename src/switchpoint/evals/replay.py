"""Replay: logged requests re-routed through a candidate policy, without calling any model.

For each logged chat request: the deployment the candidate policy would have chosen, whether it
differs from the one that served it, and the counterfactual cost — the chosen deployment's
price applied to the request's logged token counts. A request whose body was stored
(``storage.store_bodies: true``) is routed on that body, decoded by its own dialect; any other
on what the ledger keeps: the alias asked for, the task, the prompt size, streaming (a rule that
matches tools, images or a JSON schema cannot see those without the body).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Mapping

import msgspec

from switchpoint import pricing
from switchpoint.api.anthropic import AnthropicDialect
from switchpoint.api.dialect import Dialect
from switchpoint.api.openai import OpenAIDialect
from switchpoint.canonical import ChatRequest, Message, TextPart, Usage
from switchpoint.config import Config
from switchpoint.errors import SwitchpointError
from switchpoint.health import HealthRegistry
from switchpoint.routing import Router
from switchpoint.routing.features import Features, extract
from switchpoint.store.evals import LoggedRequest

DIALECTS: Mapping[str, Dialect] = {"openai": OpenAIDialect(), "anthropic": AnthropicDialect()}
UNROUTABLE = "(unroutable)"


class Transition(msgspec.Struct, kw_only=True):
    logged: str
    replayed: str
    requests: int
    logged_usd: float
    replayed_usd: float


class ReplayReport(msgspec.Struct, kw_only=True):
    requests: int
    from_bodies: int
    """Routed on their stored body (the rest on the ledger's fields)."""
    changed: int
    unroutable: int
    logged_usd: float
    replayed_usd: float
    transitions: list[Transition]
    """Logged deployment → the candidate's, most requests first."""
    reasons: dict[str, int]
    """Why requests could not be routed, by message."""

    @property
    def changed_rate(self) -> float:
        return self.changed / self.requests if self.requests else 0.0


def _usage(row: LoggedRequest) -> Usage:
    return Usage(
        input_tokens=row.input_tokens,
        cached_input_tokens=row.cached_input_tokens,
        cache_write_tokens=row.cache_write_tokens,
        output_tokens=row.output_tokens,
        reasoning_tokens=row.reasoning_tokens,
    )


def _from_body(row: LoggedRequest) -> ChatRequest | None:
    dialect = DIALECTS.get(row.dialect)
    if row.request_body is None or dialect is None:
        return None
    try:
        return dialect.decode_chat(row.request_body.encode(), {})
    except SwitchpointError:
        return None


def _features_only(row: LoggedRequest) -> tuple[ChatRequest, Features]:
    request = ChatRequest(model=row.alias, messages=[Message(role="user", parts=[TextPart(text="")])])
    f = extract(request, team=row.team)
    f.prompt_tokens = row.input_tokens
    f.stream = bool(row.stream)
    if row.task is not None:
        f.task, f.task_source = row.task, "declared"
    return request, f


def replay(rows: list[LoggedRequest], candidate: Config, *, seed: int = 0) -> ReplayReport:
    """Route every row through ``candidate`` (health as on a fresh start: every deployment up)."""
    router = Router(candidate, rng=random.Random(seed))
    health = HealthRegistry()
    moves: Counter[tuple[str, str]] = Counter()
    logged_cost: defaultdict[tuple[str, str], float] = defaultdict(float)
    replayed_cost: defaultdict[tuple[str, str], float] = defaultdict(float)
    reasons: Counter[str] = Counter()
    from_bodies = changed = unroutable = 0
    for row in rows:
        body = _from_body(row)
        try:
            if body is not None:
                from_bodies += 1
                decision = router.route(body, team=row.team, health=health)
            else:
                request, f = _features_only(row)
                decision = router.decide(request, f, health)
            chosen = decision.candidates[0].deployment.name if decision.candidates else None
            if chosen is None:
                reasons["no candidate left"] += 1
        except SwitchpointError as exc:
            chosen = None
            reasons[exc.message] += 1
        new = chosen or UNROUTABLE
        old = row.deployment or "-"
        unroutable += chosen is None
        changed += chosen is not None and chosen != row.deployment
        dep = candidate.deployments.get(chosen) if chosen is not None else None
        key = (old, new)
        moves[key] += 1
        logged_cost[key] += row.cost_usd or 0.0
        replayed_cost[key] += pricing.cost_usd(_usage(row), dep.price) if dep is not None else 0.0
    transitions = [
        Transition(
            logged=o,
            replayed=n,
            requests=c,
            logged_usd=logged_cost[(o, n)],
            replayed_usd=replayed_cost[(o, n)],
        )
        for (o, n), c in moves.most_common()
    ]
    return ReplayReport(
        requests=len(rows),
        from_bodies=from_bodies,
        changed=changed,
        unroutable=unroutable,
        logged_usd=sum(logged_cost.values()),
        replayed_usd=sum(replayed_cost.values()),
        transitions=transitions,
        reasons=dict(reasons.most_common()),
    )
