"""Configuration: one YAML file, checked up front, resolved into frozen objects.

Parsing is closed (unknown keys are errors, reported with their path). Secrets are
references (``env:NAME``) resolved at load time; a :class:`Secret` never prints its value.
Every problem found is collected, so ``check-config`` can print them all at once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

from switchpoint import catalog
from switchpoint.errors import PROVIDER_KINDS, ConfigError

Family = Literal["openai", "anthropic", "gemini"]
Capability = Literal["tools", "vision", "json_schema", "streaming", "embeddings", "thinking"]
ALL_CAPABILITIES: tuple[Capability, ...] = ("tools", "vision", "json_schema", "streaming", "thinking")

_SECRET_RE = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)$")


class Secret:
    """A resolved secret. ``str()`` and ``repr()`` never show the value."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str) -> None:
        self._value = value
        self.source = source

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.source})"

    __str__ = __repr__


# --- the file's shape (closed: unknown keys are errors) -------------------------------------


class _Base(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class _Frozen(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True, omit_defaults=True):
    pass


class ServerSpec(_Base):
    host: str = "127.0.0.1"
    port: int = 4000
    #: ``env:NAME`` reference to the master key; unset = open gateway (warned at start-up).
    master_key: str | None = None
    max_body_bytes: int = 32 * 1024 * 1024
    #: Upstream connection pool size per host.
    pool_size: int = 256


class ProviderSpec(_Base):
    family: Family
    base_url: str
    #: ``env:NAME`` reference; omitted for keyless upstreams (a local vLLM or Ollama).
    api_key: str | None = None
    #: Extra headers sent on every request to this provider (values may be ``env:`` refs).
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    #: Azure OpenAI: the ``api-version`` query value; switches to Azure's URL layout and header.
    azure_api_version: str | None = None
    #: Anthropic: the ``anthropic-version`` header.
    anthropic_version: str = "2023-06-01"
    #: Longest silence on a connection (a non-streamed call's whole answer, the gap between
    #: stream chunks) and the connect timeout of this provider's deployments (docs/resilience.md).
    timeout_s: float | None = None
    connect_timeout_s: float | None = None
    simulated: bool = False


class Timeouts(_Frozen, frozen=True):
    """Seconds. ``None`` = not set at this level (the next level down decides); ``0`` = off
    (not allowed for ``connect_s``)."""

    connect_s: float | None = None
    #: Streams: until the first content event.
    ttft_s: float | None = None
    #: Streams: longest silence between two chunks.
    stall_s: float | None = None
    #: The whole attempt.
    total_s: float | None = None


class RetryPolicy(_Frozen, frozen=True):
    #: Attempts on the same deployment for a retryable error (1 = no retry).
    attempts: int | None = None
    backoff_base_s: float | None = None
    backoff_max_s: float | None = None
    #: Total attempts across all candidates for one request.
    max_total_attempts: int | None = None
    #: Overall deadline for one request, seconds (0 = none).
    deadline_s: float | None = None
    #: Longest ``Retry-After`` waited inside a request before retrying that deployment.
    retry_after_max_s: float | None = None


class Hedging(_Frozen, frozen=True):
    enabled: bool = False
    #: Start the next candidate after this delay without a first token; ``None`` = the
    #: first candidate's observed p95 time to first token.
    delay_ms: float | None = None
    max_extra: int = 1


class ExecutionOptions(_Frozen, frozen=True):
    """How the candidates of one decision are executed; set by a routing rule, read by the
    executor. Every field overrides the deployment's own setting when set."""

    timeouts: Timeouts | None = None
    retry: RetryPolicy | None = None
    hedging: Hedging | None = None


# --- resilience (see docs/resilience.md) -----------------------------------------------------

#: What the executor does after an attempt failed with a given error kind.
ErrorAction = Literal["retry_same", "failover", "fallback_larger_context", "return"]

DEFAULT_ACTIONS: dict[str, ErrorAction] = {
    "rate_limited": "failover",
    "overloaded": "failover",
    "server_error": "failover",
    "timeout": "failover",
    "connection": "failover",
    "invalid_response": "failover",
    "context_too_long": "fallback_larger_context",
    "request_too_large": "failover",
    "authentication": "failover",
    "permission": "failover",
    "not_found": "failover",
    "content_filtered": "return",
    "bad_request": "return",
    "unprocessable": "return",
}


class BreakerSpec(_Frozen, frozen=True):
    """Circuit breaker of one deployment; ``None`` = not set at this level."""

    enabled: bool | None = None
    #: Open after this many failures in a row.
    consecutive_failures: int | None = None
    #: Open when the failure share over ``window_s`` reaches this (with ``min_requests`` seen).
    error_rate: float | None = None
    min_requests: int | None = None
    window_s: float | None = None
    #: Seconds open before a half-open probe is let through.
    cooldown_s: float | None = None
    #: Probes allowed at once while half open.
    half_open_probes: int | None = None


class ResilienceSpec(_Frozen, frozen=True):
    """Defaults for every deployment, hedging default, and the action per error kind."""

    timeouts: Timeouts | None = None
    retry: RetryPolicy | None = None
    breaker: BreakerSpec | None = None
    hedging: Hedging | None = None
    actions: dict[str, ErrorAction] = msgspec.field(default_factory=dict)


class TimeoutLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Resolved timeouts in seconds; ``None`` = off."""

    connect_s: float = 10.0
    ttft_s: float | None = None
    stall_s: float | None = 600.0
    total_s: float | None = None


class RetrySettings(msgspec.Struct, frozen=True, kw_only=True):
    """Resolved retry policy of one deployment."""

    attempts: int = 2
    backoff_base_s: float = 0.2
    backoff_max_s: float = 5.0
    max_total_attempts: int = 6
    deadline_s: float | None = None
    retry_after_max_s: float = 10.0


class BreakerSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Resolved circuit-breaker settings of one deployment."""

    enabled: bool = True
    consecutive_failures: int = 5
    error_rate: float = 0.5
    min_requests: int = 20
    window_s: float = 30.0
    cooldown_s: float = 30.0
    half_open_probes: int = 1


class Resilience(msgspec.Struct, frozen=True, kw_only=True):
    """Resolved gateway-wide resilience settings (per-deployment ones live on Deployment)."""

    actions: Mapping[str, ErrorAction] = msgspec.field(default_factory=lambda: dict(DEFAULT_ACTIONS))
    hedging: Hedging = Hedging()


class PriceSpec(_Base):
    """USD per million tokens. Fields given override the catalog's; the rest come from it."""

    input: float | None = None
    cached_input: float | None = None
    cache_write: float | None = None
    output: float | None = None
    reasoning: float | None = None
    batch_discount: float | None = None


class DeploymentSpec(_Base):
    provider: str
    #: The upstream's own model id.
    model: str
    context_window: int = 128_000
    max_output_tokens: int = 16_384
    capabilities: list[Capability] = msgspec.field(default_factory=lambda: list(ALL_CAPABILITIES))
    price: PriceSpec | None = None
    #: Gemini/OpenAI embeddings models are deployments too, with kind ``embedding``.
    kind: Literal["chat", "embedding"] = "chat"
    #: Share of ``context_window`` the model handles well; routing never plans past it.
    usable_fraction: float = 1.0
    #: Free labels (shown in route explanations).
    tags: list[str] = msgspec.field(default_factory=list)
    #: Catalog key for the price, when the upstream id is not one (default: ``model``).
    catalog_model: str | None = None
    #: Over ``resilience`` defaults (see docs/resilience.md).
    timeouts: Timeouts | None = None
    retry: RetryPolicy | None = None
    breaker: BreakerSpec | None = None


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


class FileSpec(_Base):
    server: ServerSpec = msgspec.field(default_factory=ServerSpec)
    providers: dict[str, ProviderSpec] = msgspec.field(default_factory=dict)
    deployments: dict[str, DeploymentSpec] = msgspec.field(default_factory=dict)
    #: Alias -> one deployment name or a list in priority order.
    models: dict[str, str | list[str]] = msgspec.field(default_factory=dict)
    routing: RoutingSpec | None = None
    resilience: ResilienceSpec | None = None


# --- the resolved, frozen configuration -----------------------------------------------------


class Provider(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    family: Family
    base_url: str
    api_key: Secret | None
    headers: tuple[tuple[str, str | Secret], ...]
    azure_api_version: str | None
    anthropic_version: str
    timeout_s: float
    connect_timeout_s: float
    simulated: bool


class Price(msgspec.Struct, frozen=True, kw_only=True):
    input: float
    cached_input: float
    cache_write: float
    output: float
    reasoning: float
    batch_discount: float = 0.0
    #: Where it came from: ``config``, ``catalog:<version>:<key>`` or both joined by ``+``.
    source: str = "config"
    #: The whole request is billed at ``long_context`` once its prompt passes this many tokens.
    long_context_above: int | None = None
    long_context: Price | None = None


class Deployment(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    provider: Provider
    model: str
    context_window: int
    max_output_tokens: int
    capabilities: frozenset[str]
    price: Price | None
    kind: str
    usable_fraction: float = 1.0
    tags: tuple[str, ...] = ()
    timeouts: TimeoutLimits = TimeoutLimits()
    retry: RetrySettings = RetrySettings()
    breaker: BreakerSettings = BreakerSettings()

    @property
    def family(self) -> Family:
        return self.provider.family

    @property
    def usable_window(self) -> int:
        """Tokens (prompt plus output) routing plans for: the window times its usable fraction."""
        return int(self.context_window * self.usable_fraction)


class Config(msgspec.Struct, frozen=True, kw_only=True):
    host: str
    port: int
    master_key: Secret | None
    max_body_bytes: int
    pool_size: int
    providers: Mapping[str, Provider]
    deployments: Mapping[str, Deployment]
    #: Alias -> deployment names in priority order.
    aliases: Mapping[str, tuple[str, ...]]
    source: str = "<defaults>"
    #: The routing policy; None = aliases in priority order only.
    routing: RoutingSpec | None = None
    resilience: Resilience = Resilience()

    @property
    def simulated(self) -> bool:
        return bool(self.providers) and all(p.simulated for p in self.providers.values())

    def candidates(self, model: str) -> tuple[Deployment, ...] | None:
        """Deployments for a client-facing model name (alias, else a deployment name)."""
        names = self.aliases.get(model)
        if names is not None:
            return tuple(self.deployments[n] for n in names)
        dep = self.deployments.get(model)
        return (dep,) if dep is not None else None


# --- loading ---------------------------------------------------------------------------------


def _path_of(msg: str, prefix: str) -> str:
    # msgspec says "... - at `$.a.b`"; turn that into "prefix.a.b: ..."
    m = re.search(r" - at `\$(.*)`$", msg)
    if not m:
        return f"{prefix}: {msg}"
    return f"{prefix}{m.group(1)}: {msg[: m.start()]}"


def _resolve_secret(ref: str, path: str, problems: list[str], env: Mapping[str, str]) -> Secret | None:
    m = _SECRET_RE.match(ref)
    if not m:
        problems.append(f"{path}: secrets must be references like 'env:OPENAI_API_KEY', not literal values")
        return None
    value = env.get(m.group(1))
    if not value:
        problems.append(f"{path}: environment variable {m.group(1)} is not set")
        return None
    return Secret(value, ref)


def parse(data: Any, *, source: str = "<config>", env: Mapping[str, str] | None = None) -> Config:
    """Validate a decoded YAML document and resolve it. Raises :class:`ConfigError`."""
    env = os.environ if env is None else env
    problems: list[str] = []
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"$: expected a mapping at the top level, got {type(data).__name__}"])

    known = set(FileSpec.__struct_fields__)
    for key in data:
        if key not in known:
            problems.append(f"$.{key}: unknown key (expected one of: {', '.join(sorted(known))})")

    def section(name: str, typ: Any) -> Any:
        try:
            return msgspec.convert(data.get(name, {}), typ, strict=True)
        except msgspec.ValidationError as exc:
            problems.append(_path_of(str(exc), f"$.{name}"))
            return None

    server = section("server", ServerSpec) or ServerSpec()
    routing, rule_index = _routing_section(data.get("routing"), problems)
    res_spec = section("resilience", ResilienceSpec) if data.get("resilience") is not None else None
    resilience = _resolve_resilience(res_spec, problems)
    prices = catalog.bundled() if routing is None or routing.catalog.enabled else None

    def rows(name: str, typ: Any) -> dict[str, Any]:
        raw = data.get(name, {}) or {}
        if not isinstance(raw, dict):
            problems.append(f"$.{name}: expected a mapping of name -> entry")
            return {}
        out = {}
        for key, value in raw.items():
            try:
                out[str(key)] = msgspec.convert(value, typ, strict=True)
            except msgspec.ValidationError as exc:
                problems.append(_path_of(str(exc), f"$.{name}.{key}"))
        return out

    provider_specs: dict[str, ProviderSpec] = rows("providers", ProviderSpec)
    deployment_specs: dict[str, DeploymentSpec] = rows("deployments", DeploymentSpec)
    aliases_raw = data.get("models", {}) or {}
    if not isinstance(aliases_raw, dict):
        problems.append("$.models: expected a mapping of alias -> deployment name(s)")
        aliases_raw = {}

    if server.master_key is not None:
        master = _resolve_secret(server.master_key, "$.server.master_key", problems, env)
    elif env.get("SWITCHPOINT_MASTER_KEY"):
        master = Secret(env["SWITCHPOINT_MASTER_KEY"], "env:SWITCHPOINT_MASTER_KEY")
    else:
        master = None
    if not 0 < server.port < 65536:
        problems.append(f"$.server.port: {server.port} is not a valid TCP port")
    if server.max_body_bytes <= 0:
        problems.append("$.server.max_body_bytes: must be positive")

    providers: dict[str, Provider] = {}
    for name, p in provider_specs.items():
        path = f"$.providers.{name}"
        if not p.base_url.startswith(("http://", "https://")):
            problems.append(f"{path}.base_url: must start with http:// or https://")
        if p.connect_timeout_s is not None and p.connect_timeout_s <= 0:
            problems.append(f"{path}.connect_timeout_s: must be positive")
        if p.timeout_s is not None and p.timeout_s < 0:
            problems.append(f"{path}.timeout_s: must be positive (or 0 for off)")
        key = _resolve_secret(p.api_key, f"{path}.api_key", problems, env) if p.api_key else None
        headers: list[tuple[str, str | Secret]] = []
        for h, v in p.headers.items():
            if v.startswith("env:"):
                s = _resolve_secret(v, f"{path}.headers.{h}", problems, env)
                if s is not None:
                    headers.append((h.lower(), s))
            else:
                headers.append((h.lower(), v))
        providers[name] = Provider(
            name=name,
            family=p.family,
            base_url=p.base_url.rstrip("/"),
            api_key=key,
            headers=tuple(headers),
            azure_api_version=p.azure_api_version,
            anthropic_version=p.anthropic_version,
            timeout_s=600.0 if p.timeout_s is None else p.timeout_s,
            connect_timeout_s=10.0 if p.connect_timeout_s is None else p.connect_timeout_s,
            simulated=p.simulated,
        )

    deployments: dict[str, Deployment] = {}
    for name, d in deployment_specs.items():
        path = f"$.deployments.{name}"
        prov = providers.get(d.provider)
        if prov is None:
            if d.provider not in provider_specs:
                problems.append(f"{path}.provider: no provider named '{d.provider}'")
            continue
        if d.kind == "embedding" and prov.family == "anthropic":
            problems.append(f"{path}.kind: the anthropic family has no embeddings API")
        if d.context_window <= 0 or d.max_output_tokens <= 0:
            problems.append(f"{path}: context_window and max_output_tokens must be positive")
        if not 0 < d.usable_fraction <= 1:
            problems.append(f"{path}.usable_fraction: must be above 0 and at most 1")
        price = _resolve_price(d, prices, path, problems)
        caps = set(d.capabilities)
        if d.kind == "embedding":
            caps.add("embeddings")
        deployments[name] = Deployment(
            name=name,
            provider=prov,
            model=d.model,
            context_window=d.context_window,
            max_output_tokens=d.max_output_tokens,
            capabilities=frozenset(caps),
            price=price,
            kind=d.kind,
            usable_fraction=d.usable_fraction,
            tags=tuple(d.tags),
            **_deployment_resilience(d, provider_specs[d.provider], res_spec, path, problems),
        )

    aliases: dict[str, tuple[str, ...]] = {}
    for alias, target in aliases_raw.items():
        path = f"$.models.{alias}"
        names = [target] if isinstance(target, str) else target
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            problems.append(f"{path}: expected a deployment name or a non-empty list of them")
            continue
        if alias in deployment_specs:
            problems.append(f"{path}: alias has the same name as a deployment")
        for i, n in enumerate(names):
            if n not in deployment_specs:
                where = path if isinstance(target, str) else f"{path}[{i}]"
                problems.append(f"{where}: alias points to unknown deployment '{n}'")
        aliases[str(alias)] = tuple(n for n in names if n in deployments)

    if routing is not None:
        _check_routing(routing, rule_index, deployment_specs, aliases, problems)
    if problems:
        raise ConfigError(problems)
    return Config(
        host=server.host,
        port=server.port,
        master_key=master,
        max_body_bytes=server.max_body_bytes,
        pool_size=server.pool_size,
        providers=providers,
        deployments=deployments,
        aliases=aliases,
        source=source,
        routing=routing,
        resilience=resilience,
    )


def _rates(spec: PriceSpec | None, entry: catalog.Rates | None) -> Price:
    def pick(name: str) -> float | None:
        given = getattr(spec, name) if spec is not None else None
        return given if given is not None else (getattr(entry, name) if entry is not None else None)

    inp, out = pick("input") or 0.0, pick("output") or 0.0
    cached, write, reasoning = pick("cached_input"), pick("cache_write"), pick("reasoning")
    return Price(
        input=inp,
        cached_input=inp if cached is None else cached,
        cache_write=inp if write is None else write,
        output=out,
        reasoning=out if reasoning is None else reasoning,
    )


def _resolve_price(
    d: DeploymentSpec, prices: catalog.Catalog | None, path: str, problems: list[str]
) -> Price | None:
    """The deployment's price. A ``price`` with ``input`` or ``output`` is a price of its own
    (the other rates default from those two); otherwise the catalog entry for the model, with
    any other ``price`` fields given overriding it."""
    found = catalog.lookup(d.catalog_model or d.model, prices) if prices is not None else None
    if d.catalog_model is not None and found is None:
        problems.append(f"{path}.catalog_model: '{d.catalog_model}' is not in the price catalog")
    own = d.price is not None and (d.price.input is not None or d.price.output is not None)
    if found is None or own:
        if d.price is None:
            return None
        return msgspec.structs.replace(_rates(d.price, None), batch_discount=d.price.batch_discount or 0.0)
    key, entry = found
    assert prices is not None
    origin = f"catalog:{prices.version}:{key}"
    spec = d.price
    discount = spec.batch_discount if spec is not None and spec.batch_discount is not None else None
    tier = entry.long_context
    return msgspec.structs.replace(
        _rates(spec, entry),
        batch_discount=entry.batch_discount if discount is None else discount,
        source=f"config+{origin}" if spec is not None else origin,
        long_context_above=tier.above if tier is not None else None,
        long_context=_rates(None, tier) if tier is not None else None,
    )


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
            problems.append(_path_of(str(exc), f"$.routing.rules[{i}]"))
    try:
        spec = msgspec.convert({**raw, "rules": []}, RoutingSpec, strict=True)
    except msgspec.ValidationError as exc:
        problems.append(_path_of(str(exc), "$.routing"))
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


# --- resilience settings: checked, then layered (deployment > provider > resilience > built-in) ---


def check_timeouts(t: Timeouts | None, path: str, problems: list[str]) -> None:
    if t is None:
        return
    for name in Timeouts.__struct_fields__:
        value = getattr(t, name)
        if value is not None and (value < 0 or (value == 0 and name == "connect_s")):
            off = "" if name == "connect_s" else " (or 0 for off)"
            problems.append(f"{path}.{name}: must be positive{off}")


def check_retry(r: RetryPolicy | None, path: str, problems: list[str]) -> None:
    if r is None:
        return
    for name in ("attempts", "max_total_attempts"):
        value = getattr(r, name)
        if value is not None and value < 1:
            problems.append(f"{path}.{name}: must be at least 1")
    for name in ("backoff_base_s", "backoff_max_s", "deadline_s", "retry_after_max_s"):
        value = getattr(r, name)
        if value is not None and value < 0:
            problems.append(f"{path}.{name}: must not be negative")
    if r.backoff_base_s is not None and r.backoff_max_s is not None and r.backoff_base_s > r.backoff_max_s:
        problems.append(f"{path}.backoff_base_s: must not exceed backoff_max_s")


def check_breaker(b: BreakerSpec | None, path: str, problems: list[str]) -> None:
    if b is None:
        return
    for name in ("consecutive_failures", "min_requests", "half_open_probes"):
        value = getattr(b, name)
        if value is not None and value < 1:
            problems.append(f"{path}.{name}: must be at least 1")
    if b.error_rate is not None and not 0 < b.error_rate <= 1:
        problems.append(f"{path}.error_rate: must be above 0 and at most 1")
    if b.window_s is not None and b.window_s <= 0:
        problems.append(f"{path}.window_s: must be positive")
    if b.cooldown_s is not None and b.cooldown_s < 0:
        problems.append(f"{path}.cooldown_s: must not be negative")


def check_hedging(h: Hedging | None, path: str, problems: list[str]) -> None:
    if h is None:
        return
    if h.delay_ms is not None and h.delay_ms <= 0:
        problems.append(f"{path}.delay_ms: must be positive (leave it out for the observed p95)")
    if h.max_extra < 1:
        problems.append(f"{path}.max_extra: must be at least 1")


def check_execution(options: ExecutionOptions | None, path: str, problems: list[str]) -> None:
    """Problems of a routing rule's ``execution`` block, each with its path."""
    if options is None:
        return
    check_timeouts(options.timeouts, f"{path}.timeouts", problems)
    check_retry(options.retry, f"{path}.retry", problems)
    check_hedging(options.hedging, f"{path}.hedging", problems)


def _layered(fields: tuple[str, ...], *layers: Any) -> dict[str, Any]:
    """Per field, the value of the first layer that sets it (layers may be None)."""
    out: dict[str, Any] = {}
    for name in fields:
        for layer in layers:
            value = getattr(layer, name) if layer is not None else None
            if value is not None:
                out[name] = value
                break
    return out


def _resolve_resilience(spec: ResilienceSpec | None, problems: list[str]) -> Resilience:
    if spec is None:
        return Resilience()
    path = "$.resilience"
    check_timeouts(spec.timeouts, f"{path}.timeouts", problems)
    check_retry(spec.retry, f"{path}.retry", problems)
    check_breaker(spec.breaker, f"{path}.breaker", problems)
    check_hedging(spec.hedging, f"{path}.hedging", problems)
    actions = dict(DEFAULT_ACTIONS)
    for kind, action in spec.actions.items():
        known = PROVIDER_KINDS.get(kind)
        if known is None:
            expected = ", ".join(sorted(PROVIDER_KINDS))
            problems.append(f"{path}.actions.{kind}: unknown error kind (expected one of: {expected})")
        elif action == "retry_same" and not known[1]:
            problems.append(
                f"{path}.actions.{kind}: '{kind}' is not retryable; "
                "use failover, fallback_larger_context or return"
            )
        else:
            actions[kind] = action
    return Resilience(actions=actions, hedging=spec.hedging or Hedging())


def _deployment_resilience(
    d: DeploymentSpec, p: ProviderSpec, spec: ResilienceSpec | None, path: str, problems: list[str]
) -> dict[str, Any]:
    """Resolved ``timeouts``, ``retry`` and ``breaker`` of one deployment."""
    check_timeouts(d.timeouts, f"{path}.timeouts", problems)
    check_retry(d.retry, f"{path}.retry", problems)
    check_breaker(d.breaker, f"{path}.breaker", problems)
    own = Timeouts(connect_s=p.connect_timeout_s, stall_s=p.timeout_s)
    t = _layered(Timeouts.__struct_fields__, d.timeouts, own, spec.timeouts if spec else None)
    t = {k: (None if v == 0 else v) for k, v in t.items()}
    r = _layered(RetryPolicy.__struct_fields__, d.retry, spec.retry if spec else None)
    if r.get("deadline_s") == 0:
        r["deadline_s"] = None
    b = _layered(BreakerSpec.__struct_fields__, d.breaker, spec.breaker if spec else None)
    return {"timeouts": TimeoutLimits(**t), "retry": RetrySettings(**r), "breaker": BreakerSettings(**b)}


def load(path: str | Path, *, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a YAML config file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{p}: cannot read ({exc.strerror})"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([f"{p}: not valid YAML{where}: {getattr(exc, 'problem', exc)}"]) from None
    return parse(data, source=str(p), env=env)
