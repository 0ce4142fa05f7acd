"""OpenTelemetry traces, built after the fact from the records (the ``otel`` extra).

One span per request (kind SERVER, named ``"{operation} {alias}"``) and one child span per
upstream attempt (kind CLIENT, named ``"{operation} {upstream model}"``), with the times the
record kept: the request's ``started_at`` and latency, each attempt's offset and latency. The
attributes follow the OpenTelemetry gen_ai semantic conventions (docs/observability.md).

Nothing of this runs on the request path, nor on the event loop: :meth:`TraceSink.write` puts
the batch on a queue (one call per batch); the sink's own thread builds the spans, and the
SDK's ``BatchSpanProcessor`` exports them over OTLP/HTTP from its thread. OpenTelemetry is
imported only when a sink is made, so the gateway runs without the extra unless traces are
configured.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import random
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from switchpoint.accounting import Booked
from switchpoint.canonical import Usage
from switchpoint.config import Deployment
from switchpoint.config.telemetry import Telemetry
from switchpoint.errors import ConfigError
from switchpoint.records import Attempt

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

log = logging.getLogger("switchpoint.traces")

#: ``gen_ai.provider.name`` for the provider names the conventions know under another spelling.
_PROVIDER_NAMES = {
    "gemini": "gcp.gemini",
    "google": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
    "vertex_ai": "gcp.vertex_ai",
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "bedrock": "aws.bedrock",
    "mistral": "mistral_ai",
    "xai": "x_ai",
    "grok": "x_ai",
    "watsonx": "ibm.watsonx.ai",
}


#: A client may send any string as its model: span names and attributes keep this much of it.
MODEL_CHARS = 128


def provider_name(provider: str) -> str:
    """The conventions' well-known name for a configured provider (its own name otherwise)."""
    key = provider.lower()
    return _PROVIDER_NAMES.get(key, key)


def operation(endpoint: str) -> str:
    """``gen_ai.operation.name`` for a record's endpoint."""
    return "embeddings" if endpoint == "embeddings" else "chat"


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _server(dep: Deployment | None) -> dict[str, Any]:
    if dep is None:
        return {}
    url = urlsplit(dep.provider.base_url)
    out: dict[str, Any] = {}
    if url.hostname:
        out["server.address"] = url.hostname
        out["server.port"] = url.port or (443 if url.scheme == "https" else 80)
    return out


def request_attributes(booked: Booked, deployments: Mapping[str, Deployment]) -> dict[str, Any]:
    """The request span's attributes."""
    rec = booked.record
    dep = deployments.get(rec.deployment) if rec.deployment else None
    answered: Attempt | None = None
    for a in reversed(rec.attempts):
        if a.deployment == rec.deployment and a.error is None:
            answered = a
            break
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": operation(rec.endpoint),
        "gen_ai.request.model": rec.model[:MODEL_CHARS],
        "gen_ai.request.stream": rec.stream,
        "http.response.status_code": rec.status,
        "switchpoint.request_id": rec.request_id,
        "switchpoint.dialect": rec.dialect,
        "switchpoint.endpoint": rec.endpoint,
        "switchpoint.attempts": len(rec.attempts),
        "switchpoint.cost_usd": booked.cost.total,
        "switchpoint.price_version": booked.price_version,
    }
    provider = answered.provider if answered is not None else (dep.provider.name if dep else None)
    if provider is not None:
        name = provider_name(provider)
        attrs["gen_ai.provider.name"] = name
        attrs["gen_ai.system"] = name  # the attribute's older name, for older backends
    if rec.deployment:
        attrs["switchpoint.deployment"] = rec.deployment
    if dep is not None:
        attrs["gen_ai.response.model"] = dep.model
    if rec.error is not None:
        attrs["error.type"] = rec.error
    if rec.ttft_ms is not None:
        attrs["gen_ai.response.time_to_first_chunk"] = rec.ttft_ms / 1000.0
    if rec.usage is not None:
        attrs.update(_usage(rec.usage))
    if rec.session:
        attrs["gen_ai.conversation.id"] = rec.session
    for key, value in (("task", rec.task), ("team", rec.team), ("key_id", rec.key_id)):
        if value:
            attrs[f"switchpoint.{key}"] = value
    if rec.tags:
        attrs["switchpoint.tags"] = list(rec.tags)
    if rec.cached:
        attrs["switchpoint.cached"] = True
    if rec.batch:
        attrs["switchpoint.batch"] = True
    return attrs


def attempt_attributes(
    rec_endpoint: str, seq: int, attempt: Attempt, cost: float, dep: Deployment | None
) -> dict[str, Any]:
    """An attempt span's attributes."""
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": operation(rec_endpoint),
        "gen_ai.provider.name": provider_name(attempt.provider),
        "gen_ai.system": provider_name(attempt.provider),
        "switchpoint.deployment": attempt.deployment,
        "switchpoint.provider": attempt.provider,
        "switchpoint.family": attempt.family,
        "switchpoint.attempt": seq,
        "switchpoint.cost_usd": cost,
        **_server(dep),
    }
    if dep is not None:
        attrs["gen_ai.request.model"] = dep.model
        if attempt.error is None:
            attrs["gen_ai.response.model"] = dep.model
    if attempt.status is not None:
        attrs["http.response.status_code"] = attempt.status
    if attempt.error is not None:
        attrs["error.type"] = attempt.error
    if attempt.ttft_ms is not None:
        attrs["gen_ai.response.time_to_first_chunk"] = attempt.ttft_ms / 1000.0
    if attempt.hedge:
        attrs["switchpoint.hedge"] = True
    if attempt.usage is not None:
        attrs.update(_usage(attempt.usage))
    return attrs


def _usage(usage: Usage) -> dict[str, int]:
    out = {
        "gen_ai.usage.input_tokens": usage.input_tokens,
        "gen_ai.usage.output_tokens": usage.output_tokens,
    }
    if usage.cached_input_tokens:
        out["gen_ai.usage.cache_read.input_tokens"] = usage.cached_input_tokens
    writes = usage.cache_write_tokens
    if writes:
        out["gen_ai.usage.cache_creation.input_tokens"] = writes
    if usage.reasoning_tokens:
        out["gen_ai.usage.reasoning.output_tokens"] = usage.reasoning_tokens
    return out


def emit(tracer: Tracer, booked: Booked, deployments: Mapping[str, Deployment]) -> None:
    """The spans of one booked record: the request's, then one child per attempt."""
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind, Status, StatusCode

    rec = booked.record
    start = _ns(rec.started_at)
    op = operation(rec.endpoint)
    span = tracer.start_span(
        f"{op} {rec.model[:MODEL_CHARS]}",
        kind=SpanKind.SERVER,
        start_time=start,
        attributes=request_attributes(booked, deployments),
    )
    if not span.is_recording():  # not sampled
        span.end(end_time=start)
        return
    if rec.status >= 500:  # a 4xx is the client's: the server span's status stays unset
        span.set_status(Status(StatusCode.ERROR, rec.error or str(rec.status)))
    parent = trace.set_span_in_context(span)
    for seq, attempt in enumerate(rec.attempts):
        dep = deployments.get(attempt.deployment)
        a_start = start + int(attempt.offset_ms * 1e6)
        cost = booked.attempt_costs[seq].total if seq < len(booked.attempt_costs) else 0.0
        child = tracer.start_span(
            f"{op} {dep.model if dep is not None else attempt.deployment}",
            context=parent,
            kind=SpanKind.CLIENT,
            start_time=a_start,
            attributes=attempt_attributes(rec.endpoint, seq, attempt, cost, dep),
        )
        if attempt.ttft_ms is not None:
            child.add_event("gen_ai.first_chunk", timestamp=a_start + int(attempt.ttft_ms * 1e6))
        if attempt.error is not None:
            child.set_status(Status(StatusCode.ERROR, attempt.error_message or attempt.error))
        child.end(end_time=a_start + int(attempt.latency_ms * 1e6))
    span.end(end_time=start + int(rec.latency_ms * 1e6))


_STOP = None


class TraceSink:
    """Spans for booked records, built on the sink's own thread (see the module doc).

    ``sample_ratio`` picks the requests traced as they are written (a random draw per request:
    the others cost nothing more). At most ``max_pending`` records wait for the thread; past
    that, records are not traced and are counted in ``dropped`` (tracing never holds memory
    without bound when span building falls behind)."""

    def __init__(
        self,
        provider: TracerProvider,
        deployments: Mapping[str, Deployment],
        *,
        sample_ratio: float = 1.0,
        max_pending: int = 10_000,
    ) -> None:
        self.provider = provider
        self._tracer = provider.get_tracer("switchpoint")
        self._deployments = deployments
        self.sample_ratio = sample_ratio
        self.max_pending = max_pending
        self._queue: queue.SimpleQueue[Sequence[Booked] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None  # started by the first write
        self._closed = False
        self._written = 0  # records queued (the loop's count)
        self._done = 0  # records the thread has taken (the thread's count)
        self.dropped = 0

    def use_deployments(self, deployments: Mapping[str, Deployment]) -> None:
        self._deployments = deployments

    def write(self, batch: Sequence[Booked]) -> None:
        if self._closed:
            return
        if self.sample_ratio < 1.0:
            ratio = self.sample_ratio
            batch = [b for b in batch if random.random() < ratio]
            if not batch:
                return
        if self._written - self._done + len(batch) > self.max_pending:
            self.dropped += len(batch)
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="switchpoint-traces", daemon=True)
            self._thread.start()
        self._written += len(batch)
        self._queue.put(batch)

    def _run(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is _STOP:
                return
            deployments = self._deployments
            for booked in batch:
                try:
                    emit(self._tracer, booked, deployments)
                except Exception:  # one bad record must not end tracing
                    log.exception("could not trace request %s", booked.record.request_id)
            self._done += len(batch)

    def prometheus(self) -> list[str]:
        """This process's traces series (text exposition lines)."""
        return [
            "# HELP switchpoint_traces_dropped_total Records not traced: too many were waiting for span building.",
            "# TYPE switchpoint_traces_dropped_total counter",
            f"switchpoint_traces_dropped_total {self.dropped}",
        ]

    def join(self) -> None:
        """Build the spans of everything written so far, then stop the thread (blocking)."""
        self._closed = True
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()

    async def close(self) -> None:
        """Build what is queued, export what is buffered, then stop (off the event loop)."""
        await asyncio.to_thread(self.join)
        await asyncio.to_thread(self.provider.shutdown)


def tracer_provider(telemetry: Telemetry, *, exporter: Any = None) -> TracerProvider:
    """An SDK tracer provider for ``telemetry``: its resource, sampler, and a batch processor
    exporting to ``exporter`` (default: OTLP/HTTP to ``telemetry.otlp_endpoint``)."""
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON

        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(
                endpoint=telemetry.otlp_endpoint,
                headers=telemetry.header_values(),
                timeout=telemetry.export_timeout_s,
            )
    except ImportError as exc:
        raise ConfigError(
            [
                f"$.telemetry: traces need OpenTelemetry ({exc.name} is missing): pip install 'switchpoint[otel]'"
            ]
        ) from None
    from switchpoint import __version__

    provider = TracerProvider(
        resource=Resource.create({"service.name": telemetry.service_name, "service.version": __version__}),
        sampler=ALWAYS_ON,  # the sink samples (``sample_ratio``) before any span is built
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def trace_sink(telemetry: Telemetry, deployments: Mapping[str, Deployment]) -> TraceSink:
    """The sink ``telemetry`` configures (OTLP/HTTP export)."""
    return TraceSink(tracer_provider(telemetry), deployments, sample_ratio=telemetry.sample_ratio)
