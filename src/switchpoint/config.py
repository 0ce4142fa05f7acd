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

from switchpoint.errors import ConfigError

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
    timeout_s: float = 600.0
    connect_timeout_s: float = 10.0
    simulated: bool = False


class Timeouts(_Frozen, frozen=True):
    """Seconds. ``None`` = not set at this level (the next level down decides)."""

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
    #: Overall deadline for one request, seconds.
    deadline_s: float | None = None


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


class PriceSpec(_Base):
    """USD per million tokens."""

    input: float = 0.0
    cached_input: float | None = None
    cache_write: float | None = None
    output: float = 0.0
    reasoning: float | None = None


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


class FileSpec(_Base):
    server: ServerSpec = msgspec.field(default_factory=ServerSpec)
    providers: dict[str, ProviderSpec] = msgspec.field(default_factory=dict)
    deployments: dict[str, DeploymentSpec] = msgspec.field(default_factory=dict)
    #: Alias -> one deployment name or a list in priority order.
    models: dict[str, str | list[str]] = msgspec.field(default_factory=dict)


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


class Deployment(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    provider: Provider
    model: str
    context_window: int
    max_output_tokens: int
    capabilities: frozenset[str]
    price: Price | None
    kind: str

    @property
    def family(self) -> Family:
        return self.provider.family


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
            timeout_s=p.timeout_s,
            connect_timeout_s=p.connect_timeout_s,
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
        price = None
        if d.price is not None:
            price = Price(
                input=d.price.input,
                cached_input=d.price.input if d.price.cached_input is None else d.price.cached_input,
                cache_write=d.price.input if d.price.cache_write is None else d.price.cache_write,
                output=d.price.output,
                reasoning=d.price.output if d.price.reasoning is None else d.price.reasoning,
            )
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
    )


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
