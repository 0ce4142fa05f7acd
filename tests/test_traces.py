"""Traces: one span per request, one child per attempt, built from the record after the fact."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from switchpoint.accounting import Booked
from switchpoint.accounting.traces import TraceSink, provider_name, tracer_provider
from switchpoint.canonical import Usage
from switchpoint.config import parse
from switchpoint.config.telemetry import Telemetry
from switchpoint.errors import ConfigError
from switchpoint.pricing import Cost
from switchpoint.records import Attempt, RequestRecord

SIM = "http://127.0.0.1:9"
DOC: dict[str, Any] = {
    "providers": {
        "openai": {"family": "openai", "base_url": "https://api.openai.com/v1", "api_key": "env:K"},
        "claude": {"family": "anthropic", "base_url": "http://10.1.2.3:8080", "api_key": "env:K"},
    },
    "deployments": {
        "gpt": {"provider": "openai", "model": "gpt-5.5", "price": {"input": 1.0, "output": 2.0}},
        "sonnet": {
            "provider": "claude",
            "model": "claude-sonnet-4-5",
            "price": {"input": 3.0, "output": 15.0},
        },
    },
    "models": {"smart": ["gpt", "sonnet"]},
    "storage": {"enabled": False},
}
ENV = {"K": "sk-test"}
T0 = 1_700_000_000.25


def config() -> Any:
    return parse(DOC, env=ENV)


def failover_record() -> Booked:
    """gpt times out after 300 ms; sonnet answers, starting 310 ms in, first token at 80 ms."""
    usage = Usage(input_tokens=120, cached_input_tokens=20, output_tokens=40, reasoning_tokens=10)
    rec = RequestRecord(
        request_id="req-1",
        started_at=T0,
        dialect="openai",
        endpoint="chat.completions",
        model="smart",
        deployment="sonnet",
        stream=True,
        status=200,
        latency_ms=900.0,
        ttft_ms=390.0,
        usage=usage,
        attempts=(
            Attempt(
                deployment="gpt",
                provider="openai",
                family="openai",
                status=None,
                error="timeout",
                error_message="no first token within 0.3 s",
                latency_ms=300.0,
            ),
            Attempt(
                deployment="sonnet",
                provider="claude",
                family="anthropic",
                status=200,
                latency_ms=580.0,
                ttft_ms=80.0,
                usage=usage,
                offset_ms=310.0,
            ),
        ),
        task="code",
        session="conv-7",
        key_id="k-1",
    )
    costs = (Cost(), Cost(input=0.0003, output=0.0006))
    return Booked(record=rec, cost=costs[1], attempt_costs=costs, price_version="config")


def failed_record(status: int = 502, error: str = "connection") -> Booked:
    rec = RequestRecord(
        request_id="req-2",
        started_at=T0 + 5,
        dialect="anthropic",
        endpoint="messages",
        model="gpt",
        status=status,
        error=error,
        latency_ms=20.0,
        attempts=(
            Attempt(deployment="gpt", provider="openai", family="openai", error=error, latency_ms=19.0),
        ),
    )
    return Booked(record=rec, cost=Cost(), attempt_costs=(Cost(),), price_version="config")


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def sink_for(exporter: InMemorySpanExporter, ratio: float = 1.0, **kw: Any) -> TraceSink:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return TraceSink(provider, config().deployments, sample_ratio=ratio, **kw)


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {s.name: s for s in spans}


async def test_one_request_span_and_one_child_per_attempt(exporter: InMemorySpanExporter) -> None:
    sink = sink_for(exporter)
    sink.write([failover_record()])
    await sink.close()
    spans = by_name(exporter.get_finished_spans())
    assert set(spans) == {"chat smart", "chat gpt-5.5", "chat claude-sonnet-4-5"}
    root, first, second = spans["chat smart"], spans["chat gpt-5.5"], spans["chat claude-sonnet-4-5"]

    # structure: both attempts are children of the request, in one trace
    assert root.parent is None and root.kind is SpanKind.SERVER
    for child in (first, second):
        assert child.kind is SpanKind.CLIENT
        assert child.parent is not None and child.parent.span_id == root.context.span_id
        assert child.context.trace_id == root.context.trace_id

    # times: the record's own, not when the spans were built
    ns = 1_000_000
    start = int(T0 * 1e9)
    assert (root.start_time, root.end_time) == (start, start + 900 * ns)
    assert (first.start_time, first.end_time) == (start, start + 300 * ns)
    assert (second.start_time, second.end_time) == (start + 310 * ns, start + 890 * ns)
    (event,) = second.events
    assert event.name == "gen_ai.first_chunk" and event.timestamp == start + 390 * ns

    # gen_ai semantic conventions
    a = dict(root.attributes or {})
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.request.model"] == "smart"
    assert a["gen_ai.response.model"] == "claude-sonnet-4-5"
    assert a["gen_ai.provider.name"] == a["gen_ai.system"] == "claude"
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (120, 40)
    assert a["gen_ai.usage.cache_read.input_tokens"] == 20
    assert a["gen_ai.usage.reasoning.output_tokens"] == 10
    assert a["gen_ai.request.stream"] is True
    assert a["gen_ai.response.time_to_first_chunk"] == pytest.approx(0.39)
    assert a["gen_ai.conversation.id"] == "conv-7"
    assert a["http.response.status_code"] == 200
    assert a["switchpoint.request_id"] == "req-1" and a["switchpoint.attempts"] == 2
    assert a["switchpoint.cost_usd"] == pytest.approx(0.0009)
    assert a["switchpoint.task"] == "code"
    assert "error.type" not in a
    assert root.status.status_code is StatusCode.UNSET

    f = dict(first.attributes or {})
    assert f["gen_ai.request.model"] == "gpt-5.5" and "gen_ai.response.model" not in f
    assert f["gen_ai.provider.name"] == "openai"
    assert f["server.address"] == "api.openai.com" and f["server.port"] == 443
    assert f["error.type"] == "timeout" and "http.response.status_code" not in f
    assert first.status.status_code is StatusCode.ERROR
    assert first.status.description == "no first token within 0.3 s"
    assert f["switchpoint.attempt"] == 0

    s = dict(second.attributes or {})
    assert s["gen_ai.request.model"] == s["gen_ai.response.model"] == "claude-sonnet-4-5"
    assert s["server.address"] == "10.1.2.3" and s["server.port"] == 8080
    assert s["http.response.status_code"] == 200 and s["switchpoint.attempt"] == 1
    assert s["switchpoint.cost_usd"] == pytest.approx(0.0009)
    assert second.status.status_code is StatusCode.UNSET


async def test_errors_and_embeddings(exporter: InMemorySpanExporter) -> None:
    sink = sink_for(exporter)
    bad_gateway = failed_record()
    client_error = failed_record(429, "rate_limited")
    emb = RequestRecord(
        request_id="req-3",
        started_at=T0,
        dialect="openai",
        endpoint="embeddings",
        model="gpt",
        deployment="gpt",
        latency_ms=12.0,
        usage=Usage(input_tokens=9),
        attempts=(
            Attempt(deployment="gpt", provider="openai", family="openai", status=200, latency_ms=11.0),
        ),
    )
    sink.write([bad_gateway, client_error])
    sink.write([Booked(record=emb, cost=Cost(), attempt_costs=(Cost(),), price_version="config")])
    await sink.close()
    spans = exporter.get_finished_spans()
    roots = [s for s in spans if s.parent is None]
    assert len(roots) == 3 and len(spans) == 6
    by_status = {dict(s.attributes or {})["http.response.status_code"]: s for s in roots}
    assert by_status[502].status.status_code is StatusCode.ERROR
    assert dict(by_status[502].attributes or {})["error.type"] == "connection"
    # a 4xx is the client's: error.type says what, the server span's status stays unset
    assert by_status[429].status.status_code is StatusCode.UNSET
    assert dict(by_status[429].attributes or {})["error.type"] == "rate_limited"
    assert by_status[200].name == "embeddings gpt"
    assert dict(by_status[200].attributes or {})["gen_ai.operation.name"] == "embeddings"


async def test_sampling_picks_a_share_of_requests_whole(exporter: InMemorySpanExporter) -> None:
    sink = sink_for(exporter, ratio=0.0)
    sink.write([failover_record()] * 20)
    await sink.close()
    assert exporter.get_finished_spans() == ()

    random.seed(12)
    exporter = InMemorySpanExporter()  # the first one was shut down with its provider
    sink = sink_for(exporter, ratio=0.25)
    for _ in range(100):
        sink.write([failover_record()] * 10)
    await sink.close()
    spans = exporter.get_finished_spans()
    roots = [s for s in spans if s.parent is None]
    assert 200 <= len(roots) <= 300
    assert len(spans) == 3 * len(roots), "a sampled request keeps all its attempts"


async def test_records_past_the_pending_bound_are_dropped_and_counted(exporter: InMemorySpanExporter) -> None:
    """While span building is held up, at most ``max_pending`` records wait; the rest are counted."""
    gate = threading.Event()

    class Slow(SimpleSpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            gate.wait(10)
            super().on_end(span)

    provider = TracerProvider()
    provider.add_span_processor(Slow(exporter))
    sink = TraceSink(provider, config().deployments, max_pending=5)
    sink.write([failover_record()] * 3)
    sink.write([failover_record()] * 2)
    sink.write([failover_record()] * 4)  # 9 > 5: not traced
    assert sink.dropped == 4
    gate.set()
    await sink.close()
    assert len([s for s in exporter.get_finished_spans() if s.parent is None]) == 5


async def test_a_bad_record_is_skipped_and_writes_after_close_are_ignored(
    exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    sink = sink_for(exporter)
    bad = RequestRecord(
        request_id="req-bad",
        started_at="not a time",  # type: ignore[arg-type]  # no span can be built from it
        dialect="openai",
        endpoint="chat.completions",
        model="smart",
    )
    sink.write([Booked(record=bad, cost=Cost(), attempt_costs=(), price_version="x"), failed_record()])
    await sink.close()
    assert sorted(s.name for s in exporter.get_finished_spans()) == ["chat gpt", "chat gpt-5.5"]
    assert "could not trace request req-bad" in caplog.text
    sink.write([failed_record()])  # after close: ignored
    assert len(exporter.get_finished_spans()) == 2


async def test_a_huge_model_name_is_cut_in_the_span(exporter: InMemorySpanExporter) -> None:
    sink = sink_for(exporter)
    rec = RequestRecord(
        request_id="req-x", started_at=T0, dialect="openai", endpoint="chat.completions", model="m" * 5000
    )
    sink.write([Booked(record=rec, cost=Cost(), attempt_costs=(), price_version="x")])
    await sink.close()
    (span,) = exporter.get_finished_spans()
    assert span.name == "chat " + "m" * 128
    assert dict(span.attributes or {})["gen_ai.request.model"] == "m" * 128


def test_provider_names_follow_the_conventions() -> None:
    assert provider_name("OpenAI") == "openai"
    assert provider_name("gemini") == "gcp.gemini"
    assert provider_name("mistral") == "mistral_ai"
    assert provider_name("my-vllm") == "my-vllm"


# --- configuration ---------------------------------------------------------------------------


def test_telemetry_section_is_checked_and_headers_are_references() -> None:
    doc = DOC | {
        "telemetry": {
            "otlp_endpoint": "http://127.0.0.1:4318/v1/traces",
            "service_name": "gw-eu",
            "sample_ratio": 0.25,
            "headers": {"Authorization": "env:OTLP_TOKEN", "x-team": "ml"},
        }
    }
    cfg = parse(doc, env=ENV | {"OTLP_TOKEN": "Bearer abc"})
    t = cfg.telemetry
    assert t is not None and (t.service_name, t.sample_ratio) == ("gw-eu", 0.25)
    assert t.header_values() == {"authorization": "Bearer abc", "x-team": "ml"}
    assert "abc" not in repr(t)
    assert parse(DOC, env=ENV).telemetry is None

    bad = DOC | {
        "telemetry": {
            "otlp_endpoint": "collector:4317",
            "sample_ratio": 2,
            "service_name": " ",
            "headers": {"authorization": "env:NOT_SET"},
            "colour": "red",
        }
    }
    with pytest.raises(ConfigError) as exc:
        parse(bad, env=ENV)
    text = str(exc.value)
    assert "$.telemetry" in text and "colour" in text
    bad["telemetry"].pop("colour")
    with pytest.raises(ConfigError) as exc:
        parse(bad, env=ENV)
    problems = "\n".join(exc.value.problems)
    assert "$.telemetry.otlp_endpoint: must start with http://" in problems
    assert "$.telemetry.sample_ratio: must be between 0 and 1" in problems
    assert "$.telemetry.service_name" in problems
    assert "$.telemetry.headers.authorization: environment variable NOT_SET is not set" in problems


BLOCK_OTEL = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Block())
from switchpoint.config import parse
from switchpoint.errors import ConfigError
doc = {"telemetry": {"otlp_endpoint": "http://127.0.0.1:4318/v1/traces"}, "storage": {"enabled": False}}
try:
    parse(doc, env={})
except ConfigError as exc:
    print("\\n".join(exc.problems))
parse({"storage": {"enabled": False}}, env={})
from switchpoint.api.app import create_app
create_app(parse({"storage": {"enabled": False}}, env={}))
print("without telemetry: fine")
"""


def test_without_the_extra_only_a_telemetry_config_is_refused() -> None:
    """OpenTelemetry absent: a clear error naming the extra, and only when traces are asked for."""
    out = subprocess.run(
        [sys.executable, "-c", BLOCK_OTEL], capture_output=True, text=True, timeout=60, env=dict(os.environ)
    )
    assert out.returncode == 0, out.stderr
    assert "$.telemetry.otlp_endpoint: traces need OpenTelemetry" in out.stdout
    assert "pip install 'switchpoint[otel]'" in out.stdout
    assert "without telemetry: fine" in out.stdout


# --- end to end: the gateway exports over OTLP/HTTP ------------------------------------------


class Collector:
    """A loopback OTLP/HTTP receiver: decodes every export request it gets."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        self.requests: list[Any] = []
        self.headers: list[dict[str, str]] = []
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                msg = ExportTraceServiceRequest()
                msg.ParseFromString(body)
                received.requests.append(msg)
                received.headers.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def spans(self) -> list[Any]:
        return [
            span
            for req in self.requests
            for rs in req.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        ]


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    c.thread.start()
    try:
        yield c
    finally:
        c.server.shutdown()
        c.server.server_close()


async def test_the_gateway_exports_its_spans_over_otlp_http(simulator_url: str, collector: Collector) -> None:
    from switchpoint.api.app import create_app

    from gateway_harness import ENV as E2E_ENV
    from gateway_harness import e2e_document

    doc = e2e_document(simulator_url) | {
        "storage": {"enabled": False},
        "telemetry": {
            "otlp_endpoint": collector.url,
            "service_name": "switchpoint-test",
            "headers": {"authorization": "env:OTLP_TOKEN"},
        },
    }
    app = create_app(parse(doc, env=E2E_ENV | {"OTLP_TOKEN": "Bearer t0k"}))
    headers = {"authorization": f"Bearer {E2E_ENV['E2E_GATEWAY_KEY']}"}
    async with app.router.lifespan_context(app):  # type: ignore[attr-defined]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            r = await client.post(
                "/v1/chat/completions",
                json={"model": "d-openai", "messages": [{"role": "user", "content": "hi"}]},
                headers=headers,
            )
            assert r.status_code == 200, r.text
            r = await client.post(
                "/v1/chat/completions",
                json={"model": "nope", "messages": [{"role": "user", "content": "hi"}]},
                headers=headers,
            )
            assert r.status_code == 404
            m = await client.get("/metrics")
            assert "switchpoint_traces_dropped_total 0" in m.text
    # the lifespan's end closed the sink: built, exported and flushed
    spans = collector.spans()
    names = sorted(s.name for s in spans)
    assert names == ["chat d-openai", "chat nope", "chat sim-gpt"], names
    resource = collector.requests[0].resource_spans[0].resource
    attrs = {kv.key: kv.value.string_value for kv in resource.attributes}
    assert attrs["service.name"] == "switchpoint-test"
    assert collector.headers[0]["authorization"] == "Bearer t0k"
    root = next(s for s in spans if s.name == "chat d-openai")
    child = next(s for s in spans if s.name == "chat sim-gpt")
    assert child.parent_span_id == root.span_id and child.trace_id == root.trace_id
    rattrs = {kv.key: kv.value for kv in root.attributes}
    assert rattrs["gen_ai.usage.input_tokens"].int_value > 0
    assert rattrs["gen_ai.response.model"].string_value == "sim-gpt"
    missing = next(s for s in spans if s.name == "chat nope")
    assert {kv.key: kv.value for kv in missing.attributes}["error.type"].string_value == "model_not_found"


def test_tracer_provider_builds_the_otlp_exporter() -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    telemetry = Telemetry(otlp_endpoint="http://127.0.0.1:4318/v1/traces", service_name="x")
    provider = tracer_provider(telemetry)
    try:
        processors = provider._active_span_processor._span_processors
        (processor,) = processors
        assert isinstance(processor.span_exporter, OTLPSpanExporter)  # type: ignore[attr-defined]
        assert provider.resource.attributes["service.name"] == "x"
    finally:
        asyncio.run(asyncio.to_thread(provider.shutdown))
