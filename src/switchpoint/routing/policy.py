"""The policy compiled for speed: ordered rules, each a list of small predicates.

The config has already been validated (``config._check_routing``): names resolve, ranges are
ordered. Compiling turns each ``match`` into predicates over :class:`Features`, expands aliases
in candidate lists, and indexes the rules by the model name a client sends.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from switchpoint.config import (
    Config,
    ContextSpec,
    Deployment,
    ExecutionOptions,
    GuaranteesSpec,
    MatchSpec,
    ParamsSpec,
    RangeSpec,
    RuleSpec,
)
from switchpoint.routing.features import Features, family_factor

Predicate = Callable[[Features], bool]
AUTO = "auto"


def _names(value: str | Sequence[str] | None) -> frozenset[str]:
    return frozenset([value] if isinstance(value, str) else value or ())


def _in_range(r: RangeSpec, get: Callable[[Features], float | None]) -> Predicate:
    lo = r.min if r.min is not None else float("-inf")
    hi = r.max if r.max is not None else float("inf")

    def check(f: Features) -> bool:
        v = get(f)
        return v is not None and lo <= v <= hi

    return check


def _one_of(names: frozenset[str], get: Callable[[Features], str | None]) -> Predicate:
    return lambda f: get(f) in names


def _flag(want: bool, key: str) -> Predicate:
    return lambda f: bool(getattr(f, key)) is want


def _tags(want: Mapping[str, str | list[str]]) -> Predicate:
    wanted = [(k, _names(v)) for k, v in want.items()]
    return lambda f: all(f.tags.get(k) in vs for k, vs in wanted)


def compile_match(m: MatchSpec, default_output_tokens: int) -> tuple[Predicate, ...]:
    """Predicates for every feature ``m`` constrains (the model name is indexed separately)."""
    preds: list[Predicate] = []
    if m.task is not None:
        preds.append(_one_of(_names(m.task), lambda f: f.task))
    if m.prompt_tokens is not None:
        preds.append(_in_range(m.prompt_tokens, lambda f: f.prompt_tokens))
    if m.output_tokens is not None:
        out = default_output_tokens
        preds.append(_in_range(m.output_tokens, lambda f: f.output_tokens or out))
    for key in ("tools", "images", "json_schema", "stream"):
        want = getattr(m, key)
        if want is not None:
            preds.append(_flag(want, key))
    if m.latency_ms is not None:
        preds.append(_in_range(m.latency_ms, lambda f: f.latency_ms))
    if m.priority is not None:
        preds.append(_one_of(_names(m.priority), lambda f: f.priority))
    if m.max_cost_usd is not None:
        preds.append(_in_range(m.max_cost_usd, lambda f: f.max_cost_usd))
    if m.principal is not None:
        preds.append(_one_of(_names(m.principal), lambda f: f.principal))
    if m.team is not None:
        preds.append(_one_of(_names(m.team), lambda f: f.team))
    if m.tags:
        preds.append(_tags(m.tags))
    return tuple(preds)


def _token_limits(m: MatchSpec) -> list[float]:
    r = m.prompt_tokens
    return [v for v in ((r.min, r.max) if r is not None else ()) if v is not None]


class Rule:
    """One compiled rule. ``candidates`` are chat deployments, aliases expanded, no repeats."""

    __slots__ = (
        "candidates",
        "context",
        "guarantees",
        "max_latency_ms",
        "name",
        "options",
        "overflow",
        "params",
        "preds",
        "strategy",
        "uses_task",
        "weights",
    )

    def __init__(
        self,
        name: str | None,
        preds: tuple[Predicate, ...],
        candidates: tuple[Deployment, ...],
        *,
        strategy: str = "priority",
        weights: tuple[float, ...] = (),
        max_latency_ms: float | None = None,
        params: ParamsSpec | None = None,
        context: ContextSpec | None = None,
        overflow: tuple[Deployment, ...] = (),
        options: ExecutionOptions | None = None,
        uses_task: bool = False,
        guarantees: GuaranteesSpec | None = None,
    ) -> None:
        self.name = name
        self.preds = preds
        self.candidates = candidates
        self.strategy = strategy
        self.weights = dict(zip((d.name for d in candidates), weights, strict=True)) if weights else {}
        self.max_latency_ms = max_latency_ms
        self.params = params
        self.context = context
        self.overflow = overflow
        self.options = options
        self.uses_task = uses_task
        self.guarantees = guarantees

    def matches(self, f: Features) -> bool:
        for p in self.preds:  # noqa: SIM110 (a plain loop is faster than all() over a generator)
            if not p(f):
                return False
        return True

    def weight(self, dep: Deployment) -> float:
        return self.weights.get(dep.name, 1.0)


def _expand(names: list[str], config: Config) -> tuple[Deployment, ...]:
    out: dict[str, Deployment] = {}
    for n in names:
        for d in config.candidates(n) or ():
            if d.kind == "chat":
                out.setdefault(d.name, d)
    return tuple(out.values())


def compile_rule(spec: RuleSpec, config: Config, default_output_tokens: int) -> Rule:
    candidates = _expand(spec.candidates, config)
    weights = spec.weights or {}
    return Rule(
        spec.name,
        compile_match(spec.match, default_output_tokens),
        candidates,
        strategy=spec.strategy,
        weights=tuple(float(weights.get(d.name, 1.0)) for d in candidates),
        max_latency_ms=spec.max_latency_ms,
        params=spec.params,
        context=spec.context,
        overflow=tuple(d for d in _expand(spec.context.overflow_to, config) if d not in candidates)
        if spec.context is not None
        else (),
        options=spec.execution,
        uses_task=spec.match.task is not None,
        guarantees=spec.guarantees,
    )


class Policy:
    """Rules indexed by the model name a client sends (``auto`` or an alias)."""

    def __init__(self, config: Config) -> None:
        spec = config.routing
        assert spec is not None
        out_default = spec.default_output_tokens
        self.spec = spec
        self.rules = tuple(compile_rule(r, config, out_default) for r in spec.rules)
        self.default = compile_rule(spec.default, config, out_default) if spec.default is not None else None
        self.direct_access = frozenset(spec.direct_access) if spec.direct_access is not None else None
        by_model: dict[str, list[Rule]] = {AUTO: []}
        for alias in config.aliases:
            by_model[alias] = []
        for rule, rspec in zip(self.rules, spec.rules, strict=True):
            models = _names(rspec.match.model) or frozenset({AUTO})
            for model, bucket in by_model.items():
                if "*" in models or model in models:
                    bucket.append(rule)
        self.by_model: dict[str, tuple[Rule, ...]] = {k: tuple(v) for k, v in by_model.items()}
        self.alias_rules = {
            alias: Rule(f"alias:{alias}", (), _expand([alias], config), strategy=spec.strategy)
            for alias in config.aliases
        }
        #: Token counts where a decision changes: rule bounds, usable windows, price tiers.
        limits: set[float] = set()
        for r in spec.rules:
            limits.update(_token_limits(r.match))
        for frule in spec.classifier.rules:
            limits.update(_token_limits(frule.when))
        limits.update(_deployment_limits(config))
        self.token_limits = tuple(sorted(limits))

    def rules_for(self, model: str) -> tuple[Rule, ...] | None:
        return self.by_model.get(model)

    def describe(self) -> list[dict[str, Any]]:
        return [{"name": r.name, "candidates": [d.name for d in r.candidates]} for r in self.rules]


def _deployment_limits(config: Config) -> list[float]:
    out: list[float] = []
    for d in config.deployments.values():
        if d.kind != "chat":
            continue
        factor = family_factor(d.family)
        out.append(d.usable_window / factor)
        if d.price is not None and d.price.long_context_above is not None:
            out.append(d.price.long_context_above / factor)
    return out


def legacy_limits(config: Config) -> tuple[float, ...]:
    return tuple(sorted(set(_deployment_limits(config))))
