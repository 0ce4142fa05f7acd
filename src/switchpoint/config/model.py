"""The file's shape (closed structs) and the resolved, frozen configuration."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import msgspec

from switchpoint import catalog
from switchpoint.config.accounting import AccountingSpec, DisplayCurrency
from switchpoint.config.base import ALL_CAPABILITIES, Capability, Family, Secret, _Base
from switchpoint.config.batches import Batches, BatchesSpec
from switchpoint.config.cache import CacheSpec, Caching
from switchpoint.config.governance import (
    Alerts,
    AlertsSpec,
    DeploymentLimits,
    LimitsSpec,
    Queue,
    QueueSpec,
    StateSettings,
    StateSpec,
)
from switchpoint.config.resilience import (
    BreakerSettings,
    BreakerSpec,
    Resilience,
    ResilienceSpec,
    RetryPolicy,
    RetrySettings,
    TimeoutLimits,
    Timeouts,
)
from switchpoint.config.routing import (
    RoutingSpec,
)
from switchpoint.config.storage import Storage, StorageSpec
from switchpoint.config.telemetry import Telemetry, TelemetrySpec


class ServerSpec(_Base):
    host: str = "127.0.0.1"
    port: int = 4000
    #: ``env:NAME`` reference to the master key; unset = open gateway (warned at start-up).
    master_key: str | None = None
    max_body_bytes: int = 32 * 1024 * 1024
    #: Upstream connection pool size per host.
    pool_size: int = 256
    #: This gateway's name in the ledger (one ``serve``, all its workers); default ``host:pid``.
    instance: str | None = None
    #: Client connection limits, per worker (docs/configuration.md, "Connection limits").
    #: Seconds to read a request's head, from its first byte.
    head_timeout_s: float = 10.0
    #: Seconds of slack to read a body; each byte received adds 1 / ``body_min_bytes_per_s``.
    body_timeout_s: float = 30.0
    body_min_bytes_per_s: int = 64 * 1024
    #: Seconds a connection may wait for the first byte of its next request.
    keep_alive_s: float = 5.0
    #: Seconds a client may leave the answer unread once the gateway's writes are held back.
    send_timeout_s: float = 60.0
    #: Bytes a request's head (request line and headers) may have; a larger one gets a 431.
    max_head_bytes: int = 64 * 1024
    #: Open client connections per worker; unset = half the process's open-file limit, at
    #: most 10,000.
    max_connections: int | None = None


class ProxySpec(_Base):
    """An outbound proxy with credentials (``Proxy-Authorization: Basic``)."""

    url: str
    username: str | None = None
    #: ``env:NAME`` reference.
    password: str | None = None


class ProviderSpec(_Base):
    family: Family
    #: Required but for ``bedrock`` and ``vertex``, whose endpoints follow from the region or
    #: location (a base URL given there replaces that endpoint: a VPC endpoint, a simulator).
    base_url: str = ""
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
    #: Outbound proxy for this provider: a URL (``http://host:3128``), ``{url, username,
    #: password}``, or ``direct`` (no proxy); unset: ``HTTPS_PROXY`` / ``HTTP_PROXY`` /
    #: ``NO_PROXY`` decide (docs/providers.md).
    proxy: str | ProxySpec | None = None
    #: PEM bundle of the CAs this provider's TLS certificates are checked against.
    ca_file: str | None = None
    #: Bedrock: the AWS region (deployments may override it) and the shared-config profile of
    #: the credentials (unset: botocore's default chain). Vertex: the Google Cloud project, the
    #: location (deployments may override it) and a service-account JSON file (unset:
    #: application default credentials). See docs/providers.md.
    region: str | None = None
    aws_profile: str | None = None
    project: str | None = None
    location: str | None = None
    credentials_file: str | None = None


class PriceSpec(_Base):
    """USD per million tokens. Fields given override the catalog's; the rest come from it."""

    input: float | None = None
    cached_input: float | None = None
    #: The 5-minute cache write; ``cache_write_1h`` the 1-hour one (docs/accounting.md).
    cache_write: float | None = None
    cache_write_1h: float | None = None
    output: float | None = None
    reasoning: float | None = None
    batch_discount: float | None = None
    #: Deployments of kind ``audio`` / ``image``: USD per second of audio transcribed, per
    #: character of speech, per image generated.
    per_second: float | None = None
    per_character: float | None = None
    per_image: float | None = None


class DeploymentSpec(_Base):
    provider: str
    #: The upstream's own model id.
    model: str
    context_window: int = 128_000
    max_output_tokens: int = 16_384
    capabilities: list[Capability] = msgspec.field(default_factory=lambda: list(ALL_CAPABILITIES))
    price: PriceSpec | None = None
    #: Gemini/OpenAI embeddings models are deployments too, with kind ``embedding``.
    #: ``audio`` (transcription, speech) and ``image`` (generation) serve ``/v1/audio/*`` and
    #: ``/v1/images/generations`` (docs/providers.md).
    kind: Literal["chat", "embedding", "audio", "image"] = "chat"
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
    #: What this deployment may take (its provider's quota): requests and tokens per minute,
    #: requests in flight (docs/governance.md).
    limits: LimitsSpec | None = None
    #: Bedrock: ``converse`` (default) or ``invoke`` (InvokeModel with the Anthropic Messages
    #: body); Vertex: ``gemini`` or ``anthropic`` (default by the model's name). Bedrock's
    #: ``region`` and Vertex's ``project`` and ``location`` override the provider's.
    api: str | None = None
    region: str | None = None
    project: str | None = None
    location: str | None = None
    #: Provider prompt caching the gateway adds (breakpoints, ``prompt_cache_key``); false opts
    #: this deployment out (docs/caching.md).
    prompt_cache: bool = True
    #: OpenAI family: batches of this deployment go to the provider's own Batch API
    #: (``/v1/files`` + ``/v1/batches``) instead of the gateway's runner (docs/batches.md).
    batch_api: bool = False
    #: OpenAI family: the upstream serves the Responses API (``POST {base_url}/responses``), so
    #: a Responses client's body is forwarded to it unchanged (docs/responses.md).
    responses_api: bool = False


class FileSpec(_Base):
    server: ServerSpec = msgspec.field(default_factory=ServerSpec)
    providers: dict[str, ProviderSpec] = msgspec.field(default_factory=dict)
    deployments: dict[str, DeploymentSpec] = msgspec.field(default_factory=dict)
    #: Alias -> one deployment name or a list in priority order.
    models: dict[str, str | list[str]] = msgspec.field(default_factory=dict)
    routing: RoutingSpec | None = None
    resilience: ResilienceSpec | None = None
    telemetry: TelemetrySpec | None = None
    storage: StorageSpec | None = None
    accounting: AccountingSpec | None = None
    state: StateSpec | None = None
    alerts: AlertsSpec | None = None
    queue: QueueSpec | None = None
    cache: CacheSpec | None = None
    batches: BatchesSpec | None = None


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
    #: Proxy URL (credentials apart), ``direct``, or ``None`` (the environment decides).
    proxy: str | None = None
    proxy_username: str | None = None
    proxy_password: Secret | None = None
    ca_file: str | None = None
    region: str | None = None
    aws_profile: str | None = None
    project: str | None = None
    location: str | None = None
    credentials_file: str | None = None


class Price(msgspec.Struct, frozen=True, kw_only=True):
    input: float
    cached_input: float
    cache_write: float
    output: float
    reasoning: float
    #: The 1-hour cache write; None: billed as ``cache_write``.
    cache_write_1h: float | None = None
    batch_discount: float = 0.0
    #: USD per unit of the audio and image endpoints (None: that unit is not priced).
    per_second: float | None = None
    per_character: float | None = None
    per_image: float | None = None
    #: Where it came from: ``config``, ``catalog:<version>:<key>`` or both joined by ``+``.
    source: str = "config"
    #: The price version stored with each ledger row: the catalog's version, ``config`` for a
    #: price given wholly in the config, ``config+<version>`` for catalog rates overridden.
    version: str = "config"
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
    limits: DeploymentLimits | None = None
    prompt_cache: bool = True
    batch_api: bool = False
    responses_api: bool = False
    #: Bedrock / Vertex: the API used (see DeploymentSpec.api), the region, project, location.
    api: str = ""
    region: str | None = None
    project: str | None = None
    location: str | None = None

    @property
    def family(self) -> Family:
        return self.provider.family

    @property
    def usable_window(self) -> int:
        """Tokens (prompt plus output) routing plans for: the window times its usable fraction."""
        return int(self.context_window * self.usable_fraction)


class ConnectionLimits(msgspec.Struct, frozen=True, kw_only=True):
    """What the server allows a client connection (``server:`` keys of the same names)."""

    head_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    body_min_bytes_per_s: int = 64 * 1024
    keep_alive_s: float = 5.0
    send_timeout_s: float = 60.0
    max_head_bytes: int = 64 * 1024
    #: None: chosen at start-up from the open-file limit (``api/connections.py``).
    max_connections: int | None = None


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
    #: OpenTelemetry traces (None: off).
    telemetry: Telemetry | None = None
    connections: ConnectionLimits = ConnectionLimits()
    #: The durable ledger (``storage:``).
    storage: Storage = Storage()
    #: ``server.instance`` (None: ``hostname:pid`` of the serving parent).
    instance: str | None = None
    #: ``accounting.display_currency``: spend is shown in USD and this currency.
    currency: DisplayCurrency = DisplayCurrency()
    #: Governance: shared state (``state:``), budget alerts, the priority queue.
    state: StateSettings = StateSettings()
    alerts: Alerts = Alerts()
    queue: Queue = Queue()
    #: ``cache:``: prompt caching, the response and semantic caches (docs/caching.md).
    cache: Caching = Caching()
    #: ``batches:``: the batch runner and its files (docs/batches.md).
    batches: Batches = Batches()

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


def _rates(spec: PriceSpec | None, entry: catalog.Rates | None) -> Price:
    def pick(name: str) -> float | None:
        given = getattr(spec, name) if spec is not None else None
        return given if given is not None else (getattr(entry, name) if entry is not None else None)

    inp, out = pick("input") or 0.0, pick("output") or 0.0
    cached, write, reasoning = pick("cached_input"), pick("cache_write"), pick("reasoning")
    write_1h = pick("cache_write_1h")
    return Price(
        input=inp,
        cached_input=inp if cached is None else cached,
        cache_write=inp if write is None else write,
        cache_write_1h=write_1h,
        output=out,
        reasoning=out if reasoning is None else reasoning,
        per_second=pick("per_second"),
        per_character=pick("per_character"),
        per_image=pick("per_image"),
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
        version=f"config+{prices.version}" if spec is not None else prices.version,
        long_context_above=tier.above if tier is not None else None,
        long_context=_rates(None, tier) if tier is not None else None,
    )
