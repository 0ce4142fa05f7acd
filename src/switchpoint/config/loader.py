"""Loading: YAML → checked, resolved :class:`Config`; every problem with its path."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
import yaml

from switchpoint import catalog
from switchpoint.config.accounting import AccountingSpec, resolve_accounting
from switchpoint.config.base import _SECRET_RE, Secret, error_path
from switchpoint.config.batches import BatchesSpec, resolve_batches
from switchpoint.config.cache import CacheSpec, check_rule_names, resolve_cache
from switchpoint.config.clouds import deployment_cloud_fields, provider_cloud_problems
from switchpoint.config.governance import (
    AlertsSpec,
    QueueSpec,
    StateSpec,
    resolve_alerts,
    resolve_limits,
    resolve_queue,
    resolve_state,
)
from switchpoint.config.model import (
    Config,
    ConnectionLimits,
    Deployment,
    DeploymentSpec,
    FileSpec,
    Provider,
    ProviderSpec,
    ServerSpec,
    _resolve_price,
)
from switchpoint.config.resilience import (
    BreakerSettings,
    BreakerSpec,
    ResilienceSpec,
    RetryPolicy,
    RetrySettings,
    TimeoutLimits,
    Timeouts,
    _layered,
    _resolve_resilience,
    check_breaker,
    check_retry,
    check_timeouts,
)
from switchpoint.config.routing import (
    _check_routing,
    _routing_section,
)
from switchpoint.config.storage import StorageSpec, resolve_storage
from switchpoint.config.telemetry import TelemetrySpec, resolve_telemetry
from switchpoint.errors import ConfigError

# --- loading ---------------------------------------------------------------------------------


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


def _resolve_proxy(
    p: ProviderSpec, path: str, problems: list[str], env: Mapping[str, str]
) -> tuple[str | None, str | None, Secret | None]:
    """A provider's proxy: (URL or ``direct``, user name, password)."""
    spec = p.proxy
    if spec is None:
        return None, None, None
    if isinstance(spec, str):
        url, user, password = spec.strip(), None, None
    else:
        url, user = spec.url.strip(), spec.username
        password = (
            _resolve_secret(spec.password, f"{path}.proxy.password", problems, env) if spec.password else None
        )
    if url == "direct":
        return url, None, None
    if "@" in url.rpartition("://")[2]:
        problems.append(
            f"{path}.proxy: put the credentials in proxy.username / proxy.password (an env: reference), not in the URL"
        )
        return None, None, None
    if not url.startswith("http://"):
        problems.append(
            f"{path}.proxy: must be an http:// URL (HTTPS upstreams go through it with CONNECT) or 'direct'"
        )
        return None, None, None
    return url, user, password


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
            problems.append(error_path(str(exc), f"$.{name}"))
            return None

    server = section("server", ServerSpec) or ServerSpec()
    routing, rule_index = _routing_section(data.get("routing"), problems)
    res_spec = section("resilience", ResilienceSpec) if data.get("resilience") is not None else None
    resilience = _resolve_resilience(res_spec, problems)
    tel_spec = section("telemetry", TelemetrySpec) if data.get("telemetry") is not None else None
    telemetry = resolve_telemetry(tel_spec, problems, lambda ref, at: _resolve_secret(ref, at, problems, env))
    acc_spec = section("accounting", AccountingSpec) if data.get("accounting") is not None else None
    currency = resolve_accounting(acc_spec, problems)
    storage = resolve_storage(
        section("storage", StorageSpec) if data.get("storage") is not None else None, problems
    )

    def secret_ref(ref: str, at: str) -> Secret | None:
        return _resolve_secret(ref, at, problems, env)

    state_spec = section("state", StateSpec) if data.get("state") is not None else None
    state = resolve_state(state_spec, problems, secret_ref)
    alerts = resolve_alerts(
        section("alerts", AlertsSpec) if data.get("alerts") is not None else None, problems, secret_ref
    )
    queue = resolve_queue(section("queue", QueueSpec) if data.get("queue") is not None else None, problems)
    cache = resolve_cache(
        section("cache", CacheSpec) if data.get("cache") is not None else None,
        problems,
        redis=state.redis_url is not None,
    )
    batches = resolve_batches(
        section("batches", BatchesSpec) if data.get("batches") is not None else None, problems
    )
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
                problems.append(error_path(str(exc), f"$.{name}.{key}"))
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
    connections = _connection_limits(server, problems)

    providers: dict[str, Provider] = {}
    for name, p in provider_specs.items():
        path = f"$.providers.{name}"
        provider_cloud_problems(p.family, p, path, problems)
        if p.base_url and not p.base_url.startswith(("http://", "https://")):
            problems.append(f"{path}.base_url: must start with http:// or https://")
        if p.connect_timeout_s is not None and p.connect_timeout_s <= 0:
            problems.append(f"{path}.connect_timeout_s: must be positive")
        if p.timeout_s is not None and p.timeout_s < 0:
            problems.append(f"{path}.timeout_s: must be positive (or 0 for off)")
        key = _resolve_secret(p.api_key, f"{path}.api_key", problems, env) if p.api_key else None
        if key is None and p.simulated and not p.api_key:
            # The simulator wants an auth header present, never a particular value.
            key = Secret("simulated", "simulated")
        headers: list[tuple[str, str | Secret]] = []
        for h, v in p.headers.items():
            if v.startswith("env:"):
                s = _resolve_secret(v, f"{path}.headers.{h}", problems, env)
                if s is not None:
                    headers.append((h.lower(), s))
            else:
                headers.append((h.lower(), v))
        proxy, proxy_user, proxy_password = _resolve_proxy(p, path, problems, env)
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
            proxy=proxy,
            proxy_username=proxy_user,
            proxy_password=proxy_password,
            ca_file=p.ca_file,
            region=p.region,
            aws_profile=p.aws_profile,
            project=p.project,
            location=p.location,
            credentials_file=p.credentials_file,
        )

    deployments: dict[str, Deployment] = {}
    for name, d in deployment_specs.items():
        path = f"$.deployments.{name}"
        prov = providers.get(d.provider)
        if prov is None:
            if d.provider not in provider_specs:
                problems.append(f"{path}.provider: no provider named '{d.provider}'")
            continue
        if d.kind == "embedding" and prov.family in ("anthropic", "bedrock", "vertex"):
            problems.append(f"{path}.kind: the {prov.family} family has no embeddings API")
        if d.kind in ("audio", "image") and prov.family != "openai":
            problems.append(f"{path}.kind: {d.kind} deployments speak the openai family's wire")
        if prov.family == "anthropic" and {"audio", "video"} & set(d.capabilities):
            problems.append(f"{path}.capabilities: the anthropic family takes no audio or video input")
        if d.batch_api and prov.family != "openai":
            problems.append(f"{path}.batch_api: only the openai family's Batch API is supported")
        if d.responses_api and prov.family != "openai":
            problems.append(f"{path}.responses_api: only the openai family speaks the Responses API")
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
            limits=resolve_limits(d.limits, f"{path}.limits", problems),
            prompt_cache=d.prompt_cache,
            batch_api=d.batch_api,
            responses_api=d.responses_api,
            **deployment_cloud_fields(
                prov.family, d.model, d.api, d.region, d.location, prov, path, problems, project=d.project
            ),
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
    if cache.rules:
        names = [] if routing is None else [r.name for r in routing.rules]
        if routing is not None and routing.default is not None:
            names.append(routing.default.name)
        check_rule_names(cache, names, aliases if routing is not None else (), problems)
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
        telemetry=telemetry,
        connections=connections,
        storage=storage,
        instance=server.instance,
        currency=currency,
        state=state,
        alerts=alerts,
        queue=queue,
        cache=cache,
        batches=batches,
    )


def _connection_limits(server: ServerSpec, problems: list[str]) -> ConnectionLimits:
    positive = ("head_timeout_s", "body_timeout_s", "keep_alive_s", "send_timeout_s")
    for name in (*positive, "body_min_bytes_per_s", "max_head_bytes"):
        if getattr(server, name) <= 0:
            problems.append(f"$.server.{name}: must be positive")
    if server.max_connections is not None and server.max_connections <= 0:
        problems.append("$.server.max_connections: must be positive (or left out for the default)")
    return ConnectionLimits(
        head_timeout_s=server.head_timeout_s,
        body_timeout_s=server.body_timeout_s,
        body_min_bytes_per_s=server.body_min_bytes_per_s,
        keep_alive_s=server.keep_alive_s,
        send_timeout_s=server.send_timeout_s,
        max_head_bytes=server.max_head_bytes,
        max_connections=server.max_connections,
    )


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
    return parse(read(path), source=str(path), env=env)


def read(path: str | Path) -> Any:
    """The decoded YAML document of a config file (not yet checked)."""
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
    return data
