"""The ``routing`` section: rules, classifier, affinity, catalog settings (docs/routing.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from switchpoint.config.base import _Frozen, error_path
from switchpoint.config.guarantees import GuaranteesSpec, check_guarantees

if TYPE_CHECKING:
    from switchpoint.config.model import DeploymentSpec

from switchpoint.config.resilience import (
    ExecutionOptions,
)

# --- routing policy (see docs/routing.md) ----------------------------------------------------

Strategy = Literal[
    "priority", "weighted", "lowest_latency", "lowest_cost", "least_busy", "cost_under_constraint"
]
PriorityMode = Literal["accuracy", "speed", "budget"]
Effort = Literal["minimal", "low", "medium", "high"]


class RangeSpec(_Frozen, frozen=True):
    """Inclusive bounds; either may be left out."""

    min: float | None = None
    max: float | None = None


class MatchSpec(_Frozen, frozen=True):
    """Request features a rule matches; every key given must hold. Lists mean "any of"."""

    #: The model name the client sent: ``auto``, an alias, or ``*`` for any (default: ``auto``).
    model: str | list[str] | None = None
    task: str | list[str] | None = None
    prompt_tokens: RangeSpec | None = None
    output_tokens: RangeSpec | None = None
    tools: bool | None = None
    images: bool | None = None
    json_schema: bool | None = None
    stream: bool | None = None
    latency_ms: RangeSpec | None = None
    priority: PriorityMode | list[PriorityMode] | None = None
    max_cost_usd: RangeSpec | None = None
    principal: str | list[str] | None = None
    team: str | list[str] | None = None
    tags: dict[str, str | list[str]] | None = None


class ParamsSpec(_Frozen, frozen=True):
    """Presets applied to a request unless the client set the parameter itself."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    reasoning_effort: Effort | None = None
    thinking_budget: int | None = None
    stop: list[str] | None = None


class ContextSpec(_Frozen, frozen=True):
    """What to do when a prompt is above every candidate's usable window."""

    overflow: Literal["reject", "trim"] = "reject"
    #: Larger-window deployments tried only when none of the rule's own candidates fits.
    overflow_to: list[str] = msgspec.field(default_factory=list)
    #: Trimming never drops the newest this many turns.
    keep_last_turns: int = 1
    #: Before dropping old turns, cut their text parts to this many characters.
    truncate_chars: int | None = None


class OnBudgetSpec(_Frozen, frozen=True):
    """What a rule does when the caller's budget cannot hold a request's worst case."""

    #: Serve the request with this (cheaper) alias instead of refusing it.
    downgrade_to: str


class ShadowSpec(_Frozen, frozen=True):
    """A copy of a sample of the rule's requests, sent to ``alias`` after the client's answer is
    done (docs/evals.md#shadow-traffic)."""

    alias: str
    #: The fraction of the rule's answered requests copied (0 to 1).
    sample: float = 1.0


class RuleSpec(_Frozen, frozen=True):
    name: str = "default"
    match: MatchSpec = msgspec.field(default_factory=MatchSpec)
    candidates: list[str] = msgspec.field(default_factory=list)
    strategy: Strategy = "priority"
    weights: dict[str, float] | None = None
    #: cost_under_constraint: the observed-latency limit when the request sets none.
    max_latency_ms: float | None = None
    params: ParamsSpec | None = None
    context: ContextSpec | None = None
    execution: ExecutionOptions | None = None
    on_budget: OnBudgetSpec | None = None
    #: Checked JSON output and output-token budgets (opt-in).
    guarantees: GuaranteesSpec | None = None
    #: Shadow traffic: a sample of the rule's requests also sent to a candidate alias.
    shadow: ShadowSpec | None = None


class FeatureRuleSpec(_Frozen, frozen=True):
    task: str
    when: MatchSpec


class SemanticSpec(_Frozen, frozen=True):
    enabled: bool = True
    #: Lowest cosine similarity that counts as a match.
    threshold: float = 0.4
    #: Task -> example prompts.
    examples: dict[str, list[str]] = msgspec.field(default_factory=dict)
    #: Characters of the prompt that are embedded.
    max_chars: int = 1000


class ClassifierSpec(_Frozen, frozen=True):
    default_task: str | None = None
    rules: list[FeatureRuleSpec] = msgspec.field(default_factory=list)
    semantic: SemanticSpec | None = None


class AffinitySpec(_Frozen, frozen=True):
    enabled: bool = True
    ttl_s: float = 1800.0
    max_sessions: int = 100_000


class CatalogSpec(_Frozen, frozen=True):
    enabled: bool = True
    #: Display currency for explanations, and units of it per USD.
    currency: str = "USD"
    usd_rate: float = 1.0


class RoutingSpec(_Frozen, frozen=True):
    rules: list[RuleSpec] = msgspec.field(default_factory=list)
    #: Used for ``auto`` when no rule matches.
    default: RuleSpec | None = None
    #: Ordering for aliases that no rule names.
    strategy: Strategy = "priority"
    #: Principals that may name a deployment directly (bypassing policy); None = everyone.
    direct_access: list[str] | None = None
    #: Output tokens assumed when a request sets no limit (cost estimates).
    default_output_tokens: int = 512
    classifier: ClassifierSpec = msgspec.field(default_factory=ClassifierSpec)
    affinity: AffinitySpec = msgspec.field(default_factory=AffinitySpec)
    catalog: CatalogSpec = msgspec.field(default_factory=CatalogSpec)


def _routing_section(raw: Any, problems: list[str]) -> tuple[RoutingSpec | None, list[int]]:
    """The ``routing`` section, and the position in the file of each rule kept. Each rule is
    checked on its own so that every bad one is reported."""
    if raw is None:
        return None, []
    if not isinstance(raw, dict):
        problems.append("$.routing: expected a mapping")
        return None, []
    rules: list[RuleSpec] = []
    index: list[int] = []
    raw_rules = raw.get("rules") or []
    if not isinstance(raw_rules, list):
        problems.append("$.routing.rules: expected a list of rules")
        raw_rules = []
    for i, rule in enumerate(raw_rules):
        try:
            rules.append(msgspec.convert(rule, RuleSpec, strict=True))
            index.append(i)
        except msgspec.ValidationError as exc:
            problems.append(error_path(str(exc), f"$.routing.rules[{i}]"))
    try:
        spec = msgspec.convert({**raw, "rules": []}, RoutingSpec, strict=True)
    except msgspec.ValidationError as exc:
        problems.append(error_path(str(exc), "$.routing"))
        return None, []
    return msgspec.structs.replace(spec, rules=rules), index


def _names(value: str | list[str] | None) -> list[str]:
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def _check_range(r: RangeSpec | None, path: str, problems: list[str]) -> None:
    if r is not None and r.min is not None and r.max is not None and r.min > r.max:
        problems.append(f"{path}: min is above max")


def _check_match(m: MatchSpec, path: str, aliases: Mapping[str, Any], problems: list[str]) -> None:
    for name in _names(m.model):
        if name not in ("auto", "*") and name not in aliases:
            problems.append(f"{path}.model: '{name}' is not 'auto', '*' or an alias of models")
    for key in ("prompt_tokens", "output_tokens", "latency_ms", "max_cost_usd"):
        _check_range(getattr(m, key), f"{path}.{key}", problems)


def _check_rule(
    rule: RuleSpec,
    path: str,
    deployments: Mapping[str, DeploymentSpec],
    aliases: Mapping[str, Any],
    problems: list[str],
) -> None:
    if not rule.candidates:
        problems.append(f"{path}.candidates: at least one deployment (or alias) is needed")
    names = set()
    refs = [(f"{path}.candidates[{i}]", n) for i, n in enumerate(rule.candidates)]
    if rule.context is not None:
        refs += [(f"{path}.context.overflow_to[{i}]", n) for i, n in enumerate(rule.context.overflow_to)]
        if rule.context.keep_last_turns < 1:
            problems.append(f"{path}.context.keep_last_turns: must be at least 1")
        if rule.context.truncate_chars is not None and rule.context.truncate_chars < 1:
            problems.append(f"{path}.context.truncate_chars: must be positive")
    for where, n in refs:
        if n in aliases:
            names.update(aliases[n])
        elif n not in deployments:
            problems.append(f"{where}: no deployment or alias named '{n}'")
        elif deployments[n].kind != "chat":
            problems.append(f"{where}: '{n}' is an embedding deployment")
        else:
            names.add(n)
    for n, w in (rule.weights or {}).items():
        if n not in names:
            problems.append(f"{path}.weights.{n}: not one of the rule's candidates")
        if w <= 0:
            problems.append(f"{path}.weights.{n}: must be positive")
    if rule.on_budget is not None and rule.on_budget.downgrade_to not in aliases:
        problems.append(
            f"{path}.on_budget.downgrade_to: '{rule.on_budget.downgrade_to}' is not an alias of models"
        )
    if rule.shadow is not None:
        if rule.shadow.alias not in aliases:
            problems.append(f"{path}.shadow.alias: '{rule.shadow.alias}' is not an alias of models")
        if not 0 <= rule.shadow.sample <= 1:
            problems.append(f"{path}.shadow.sample: must be between 0 and 1")
    if rule.guarantees is not None:
        check_guarantees(rule.guarantees, f"{path}.guarantees", problems)
    p = rule.params
    if p is not None:
        if p.temperature is not None and not 0 <= p.temperature <= 2:
            problems.append(f"{path}.params.temperature: must be between 0 and 2")
        if p.top_p is not None and not 0 < p.top_p <= 1:
            problems.append(f"{path}.params.top_p: must be above 0 and at most 1")
        for key in ("max_tokens", "thinking_budget"):
            value = getattr(p, key)
            if value is not None and value < 1:
                problems.append(f"{path}.params.{key}: must be positive")


def _check_routing(
    spec: RoutingSpec,
    rule_index: list[int],
    deployments: Mapping[str, DeploymentSpec],
    aliases: Mapping[str, Any],
    problems: list[str],
) -> None:
    seen: set[str] = set()
    for i, rule in zip(rule_index, spec.rules, strict=True):
        path = f"$.routing.rules[{i}]"
        if rule.name in seen:
            problems.append(f"{path}.name: '{rule.name}' is used by an earlier rule")
        seen.add(rule.name)
        _check_match(rule.match, f"{path}.match", aliases, problems)
        _check_rule(rule, path, deployments, aliases, problems)
    if spec.default is not None:
        if spec.default.match != MatchSpec():
            problems.append("$.routing.default.match: the default rule matches everything; remove match")
        _check_rule(spec.default, "$.routing.default", deployments, aliases, problems)
    for i, frule in enumerate(spec.classifier.rules):
        path = f"$.routing.classifier.rules[{i}].when"
        extra = [
            k
            for k in ("model", "task", "latency_ms", "priority", "max_cost_usd", "principal", "team", "tags")
            if getattr(frule.when, k) is not None
        ]
        if extra:
            problems.append(f"{path}: classifier rules match request content only, not {', '.join(extra)}")
        _check_match(frule.when, path, aliases, problems)
    sem = spec.classifier.semantic
    if sem is not None:
        if sem.enabled and not any(sem.examples.values()):
            problems.append(
                "$.routing.classifier.semantic.examples: give example prompts for at least one task"
            )
        if not -1 <= sem.threshold <= 1:
            problems.append("$.routing.classifier.semantic.threshold: must be between -1 and 1")
    if spec.affinity.ttl_s <= 0 or spec.affinity.max_sessions < 1:
        problems.append("$.routing.affinity: ttl_s and max_sessions must be positive")
    if spec.catalog.usd_rate <= 0:
        problems.append("$.routing.catalog.usd_rate: must be positive")
    if spec.default_output_tokens < 1:
        problems.append("$.routing.default_output_tokens: must be positive")
