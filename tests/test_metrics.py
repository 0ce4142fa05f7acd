"""/metrics: usage families from booked records, bounded labels, valid Prometheus text."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from switchpoint.accounting import Booked
from switchpoint.accounting.metrics import (
    GatewayMetrics,
    Labels,
    LedgerTotals,
    MetricsSink,
    Totals,
    bucket_index,
)
from switchpoint.canonical import Usage
from switchpoint.pricing import Cost
from switchpoint.records import Attempt, RequestRecord
from switchpoint.store.tables import BUCKETS, INF

LABELS = Labels(aliases=("smart",), deployments=("d-a", "d-b"), tasks=("code",))


def booked(
    rid: str,
    *,
    model: str = "smart",
    deployment: str | None = "d-a",
    status: int = 200,
    error: str | None = None,
    usage: Usage | None = None,
    latency_ms: float = 120.0,
    ttft_ms: float | None = None,
    cost: float = 0.0,
    task: str | None = None,
    saved: float = 0.0,
) -> Booked:
    attempt = Attempt(deployment=deployment or "d-a", provider="p", family="openai", status=status)
    rec = RequestRecord(
        request_id=rid,
        started_at=1_700_000_000.0,
        dialect="openai",
        endpoint="chat.completions",
        model=model,
        deployment=deployment,
        status=status,
        error=error,
        latency_ms=latency_ms,
        ttft_ms=ttft_ms,
        usage=usage,
        attempts=(attempt,),
        key_id="key-secret-id",
        session="sess-1",
        task=task,
    )
    c = Cost(input=cost)
    return Booked(record=rec, cost=c, attempt_costs=(c,), price_version="test", saved_usd=saved)


def parse(text: str) -> dict[str, Any]:
    """Families by name; each family's samples as {(sample name, sorted labels): value}."""
    out: dict[str, Any] = {}
    for fam in text_string_to_metric_families(text):
        out[fam.name] = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in fam.samples} | {
            "__type__": fam.type
        }
    return out


def sample(fams: dict[str, Any], family: str, name: str, **labels: str) -> float:
    return float(fams[family][(name, tuple(sorted(labels.items())))])


async def render(sink: MetricsSink, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    metrics = GatewayMetrics(sink.labels, sink)
    return parse((await metrics.render(extra)).decode())


USAGE = Usage(
    input_tokens=1000,
    cached_input_tokens=300,
    cache_write_tokens=200,
    cache_write_1h_tokens=50,
    output_tokens=400,
    reasoning_tokens=100,
)


async def test_requests_tokens_cost_and_errors_by_bounded_labels() -> None:
    sink = MetricsSink(LABELS)
    sink.write(
        [
            booked("r1", usage=USAGE, cost=0.25, latency_ms=40.0, ttft_ms=8.0),
            booked("r2", usage=USAGE, cost=0.5, latency_ms=700.0, ttft_ms=300.0),
            booked("r3", deployment="d-b", status=429, error="rate_limited", latency_ms=3.0),
            booked("r4", model="gpt-made-up", deployment=None, status=404, error="model_not_found"),
            booked("r5", model="d-b", deployment="d-b", status=502, error="connection"),
        ]
    )
    fams = await render(sink)
    req = "switchpoint_requests"
    assert fams[req]["__type__"] == "counter"
    assert sample(fams, req, f"{req}_total", deployment="d-a", alias="smart", status_class="2xx") == 2
    assert sample(fams, req, f"{req}_total", deployment="d-b", alias="smart", status_class="4xx") == 1
    # a model name nobody configured is "other"; no deployment answered: "none"
    assert sample(fams, req, f"{req}_total", deployment="none", alias="other", status_class="4xx") == 1
    assert sample(fams, req, f"{req}_total", deployment="d-b", alias="d-b", status_class="5xx") == 1
    err = "switchpoint_request_errors"
    assert sample(fams, err, f"{err}_total", deployment="d-b", alias="smart", kind="rate_limited") == 1
    assert sample(fams, err, f"{err}_total", deployment="none", alias="other", kind="model_not_found") == 1
    assert sample(fams, err, f"{err}_total", deployment="d-b", alias="d-b", kind="connection") == 1
    assert not any(k[1] and dict(k[1]).get("kind") == "" for k in fams[err] if k != "__type__")

    tok = "switchpoint_tokens"
    by_class = {
        dict(k[1])["class"]: v
        for k, v in fams[tok].items()
        if k != "__type__" and dict(k[1])["deployment"] == "d-a"
    }
    # the classes partition the tokens: uncached input, cached reads, writes (5m, 1h),
    # output without reasoning, reasoning
    assert by_class == {
        "input": 2 * 500,
        "cached_input": 2 * 300,
        "cache_write_5m": 2 * 150,
        "cache_write_1h": 2 * 50,
        "output": 2 * 300,
        "reasoning": 2 * 100,
    }
    assert sum(by_class.values()) == 2 * (USAGE.input_tokens + USAGE.output_tokens)
    assert (
        sample(fams, "switchpoint_cost_usd", "switchpoint_cost_usd_total", deployment="d-a", alias="smart")
        == 0.75
    )

    # no label anywhere carries a key, a session or a request id
    text = (await GatewayMetrics(LABELS, sink).render()).decode()
    for secret in ("key-secret-id", "sess-1", "r1", "gpt-made-up"):
        assert secret not in text


async def test_caching_savings_and_input_classes_by_task() -> None:
    """Savings per deployment, alias and task, and each task's input classes (its cache-read
    ratio): a task the config names by name, any other "other", none "none"; the sink keeps one
    row for every task it was never told about, however many a client invents."""
    sink = MetricsSink(LABELS)
    sink.write(
        [
            booked("r1", usage=USAGE, task="code", saved=0.25),
            booked("r2", usage=USAGE, task="code", saved=0.5),
            booked("r3", usage=USAGE, saved=0.125),
            *(booked(f"x{i}", usage=USAGE, task=f"invented-{i}", saved=0.001) for i in range(50)),
        ]
    )
    fams = await render(sink)
    saved, inputs = "switchpoint_cache_saved_usd", "switchpoint_task_input_tokens"
    at = {"deployment": "d-a", "alias": "smart"}
    assert sample(fams, saved, f"{saved}_total", **at, task="code") == 0.75
    assert sample(fams, saved, f"{saved}_total", **at, task="none") == 0.125
    assert sample(fams, saved, f"{saved}_total", **at, task="other") == pytest.approx(0.05)
    code = {
        dict(k[1])["class"]: v
        for k, v in fams[inputs].items()
        if k != "__type__" and ("task", "code") in k[1]
    }
    assert code == {
        "input": 2 * 500,
        "cached_input": 2 * 300,
        "cache_write_5m": 2 * 150,
        "cache_write_1h": 2 * 50,
    }
    assert code["cached_input"] / sum(code.values()) == USAGE.cached_input_tokens / USAGE.input_tokens
    assert sample(fams, inputs, f"{inputs}_total", task="other", **{"class": "cached_input"}) == 50 * 300
    assert len(sink._rows) == 3  # code, none, other
    text = (await GatewayMetrics(LABELS, sink).render()).decode()
    assert "invented-" not in text


async def test_latency_and_ttft_histograms() -> None:
    sink = MetricsSink(LABELS)
    sink.write(
        [
            booked("a", latency_ms=5.0, ttft_ms=5.0),  # on a bound: counted in that bucket (le)
            booked("b", latency_ms=40.0, ttft_ms=None),
            booked("c", latency_ms=700.0, ttft_ms=250.0),
            booked("d", latency_ms=90_000.0, ttft_ms=61_000.0),  # past the last bound: +Inf only
        ]
    )
    fams = await render(sink)
    h = "switchpoint_request_duration_seconds"
    assert fams[h]["__type__"] == "histogram"
    lab = {"deployment": "d-a", "alias": "smart"}

    def bucket(name: str, le: str) -> float:
        return sample(fams, name, f"{name}_bucket", **lab, le=le)

    assert bucket(h, "0.005") == 1
    assert bucket(h, "0.025") == 1
    assert bucket(h, "0.05") == 2
    assert bucket(h, "1.0") == 3
    assert bucket(h, "60.0") == 3
    assert bucket(h, "+Inf") == 4
    assert sample(fams, h, f"{h}_count", **lab) == 4
    assert sample(fams, h, f"{h}_sum", **lab) == pytest.approx((5 + 40 + 700 + 90_000) / 1000)
    t = "switchpoint_time_to_first_token_seconds"
    assert bucket(t, "0.005") == 1
    assert bucket(t, "0.25") == 2
    assert bucket(t, "+Inf") == 3  # the request without a first token is not observed
    assert sample(fams, t, f"{t}_sum", **lab) == pytest.approx((5 + 250 + 61_000) / 1000)


async def test_process_lines_append_as_valid_text() -> None:
    sink = MetricsSink(LABELS)
    sink.write([booked("a")])
    metrics = GatewayMetrics(LABELS, sink)
    extra = (
        "# HELP switchpoint_requests_inflight HTTP requests being served.",
        "# TYPE switchpoint_requests_inflight gauge",
        "switchpoint_requests_inflight 3",
    )
    fams = parse((await metrics.render(extra, dropped=7)).decode())
    assert sample(fams, "switchpoint_requests_inflight", "switchpoint_requests_inflight") == 3
    assert sample(fams, "switchpoint_accounting_dropped", "switchpoint_accounting_dropped_total") == 7
    assert "switchpoint_requests" in fams


async def test_relabelling_after_a_reload() -> None:
    sink = MetricsSink(Labels(aliases=("smart",), deployments=("d-a",)))
    metrics = GatewayMetrics(sink.labels, sink)
    sink.write([booked("a", model="fresh")])
    metrics.use_labels(Labels(aliases=("smart", "fresh"), deployments=("d-a",)))
    sink.write([booked("b", model="fresh")])
    fams = parse((await metrics.render()).decode())
    req = "switchpoint_requests"
    # counted before the alias existed: "other"; after: its own name
    assert sample(fams, req, f"{req}_total", deployment="d-a", alias="other", status_class="2xx") == 1
    assert sample(fams, req, f"{req}_total", deployment="d-a", alias="fresh", status_class="2xx") == 1


def test_bucket_index_reads_stored_bounds() -> None:
    assert [bucket_index(b) for b in BUCKETS] == list(range(len(BUCKETS)))
    assert bucket_index(INF) == len(BUCKETS)
    assert bucket_index(float("inf")) == len(BUCKETS)


async def test_ledger_totals_are_read_off_the_loop_cached_and_shared() -> None:
    threads: list[str] = []
    gate = threading.Event()

    def read() -> Totals:
        threads.append(threading.current_thread().name)
        gate.wait(5)
        return Totals()

    source = LedgerTotals(read, max_age_s=60.0)
    scrapes = [asyncio.ensure_future(source.snapshot()) for _ in range(5)]
    await asyncio.sleep(0.05)
    assert len(threads) == 1, "five scrapes at once share one read"
    gate.set()
    results = await asyncio.gather(*scrapes)
    assert all(r is results[0] for r in results)
    assert threads[0] != threading.main_thread().name
    assert await source.snapshot() is results[0] and source.reads == 1, "fresh: cached"
    source.max_age_s = 0.0
    await source.snapshot()
    assert source.reads == 2


async def test_a_failed_ledger_read_serves_the_last_totals_and_counts() -> None:
    calls = 0
    first = Totals()

    def read() -> Totals:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise RuntimeError("database is down")
        return first

    source = LedgerTotals(read, max_age_s=0.0)
    assert await source.snapshot() is first
    assert await source.snapshot() is first
    assert source.errors == 1
    metrics = GatewayMetrics(LABELS, source)
    fams = parse((await metrics.render()).decode())
    errs = "switchpoint_metrics_ledger_read_errors"
    assert sample(fams, errs, f"{errs}_total") == 2  # this render's read failed too


async def test_the_gateway_app_serves_its_own_registry(simulator_url: str) -> None:
    """Two gateways in one process do not share series (no global registry)."""
    from switchpoint.api.app import create_app
    from switchpoint.config import parse as parse_config

    from gateway_harness import ENV, e2e_document

    doc = e2e_document(simulator_url) | {"storage": {"enabled": False}}
    apps = [create_app(parse_config(doc, env=ENV)) for _ in range(2)]
    headers = {"authorization": f"Bearer {ENV['E2E_GATEWAY_KEY']}"}
    texts = []
    for n, app in enumerate(apps, start=1):
        async with app.router.lifespan_context(app):  # type: ignore[attr-defined]
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                for _ in range(n):
                    r = await client.post(
                        "/v1/chat/completions",
                        json={"model": "d-openai", "messages": [{"role": "user", "content": "hi"}]},
                        headers=headers,
                    )
                    assert r.status_code == 200, r.text
                await app.gateway.accounting.flush()
                m = await client.get("/metrics")
                assert m.status_code == 200
                assert m.headers["content-type"].startswith("text/plain; version=0.0.4")
                texts.append(m.text)
    for n, text in enumerate(texts, start=1):
        fams = parse(text)
        req = "switchpoint_requests"
        got = sample(fams, req, f"{req}_total", deployment="d-openai", alias="d-openai", status_class="2xx")
        assert got == n
        # the process-local series are still there, in the same exposition
        assert "switchpoint_breaker_state" in fams and "switchpoint_attempts" in fams
        assert "switchpoint_requests_inflight" in fams


PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _postgres_missing() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return f"PostgreSQL at {PG_URL} is not reachable ({type(exc).__name__}: {exc})"
    return None


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ledger_db(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """A migrated ledger: a SQLite file, or a PostgreSQL schema of its own (dropped after)."""
    from switchpoint.store.migrate import upgrade

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
        upgrade(url)
        yield url
        return
    if (why := _postgres_missing()) is not None:
        pytest.skip(why)
    import psycopg

    schema = f"metrics_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        url = f"{PG_URL}?options=-csearch_path%3D{schema}"
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def test_ledger_totals_render_exactly_as_the_in_process_totals(ledger_db: str, tmp_path: Any) -> None:
    """The same records give the same /metrics whether counted in process or read back from
    the ledger's usage_totals and latency_buckets (SQLite and PostgreSQL)."""
    from switchpoint.accounting.ledger import Ledger
    from switchpoint.accounting.metrics import read_ledger
    from switchpoint.config.storage import Storage

    batch = [
        booked("r1", usage=USAGE, cost=0.25, latency_ms=40.0, ttft_ms=8.0),
        booked("r2", usage=USAGE, cost=0.5, latency_ms=700.0, ttft_ms=300.0),
        booked("r3", deployment="d-b", status=429, error="rate_limited", latency_ms=3.0),
        booked("r4", model="gpt-made-up", deployment=None, status=404, error="model_not_found"),
        booked("r5", model="also-unknown", deployment=None, status=404, error="model_not_found"),
        booked("r6", latency_ms=90_000.0, ttft_ms=61_000.0),
        booked("r7", usage=USAGE, task="code", saved=0.125),
        booked("r8", usage=USAGE, task="made-up-task", saved=0.5),
    ]
    storage = Storage(spill_path=str(tmp_path / "spill.jsonl"))
    ledger = Ledger(storage, ledger_db, instance="metrics-test")
    other = Ledger(storage, ledger_db, instance="someone-else", migrate=False)
    ledger.start()
    other.start()
    ledger.write(batch[:3])
    ledger.write(batch[3:])
    other.write([booked("x1"), booked("x2")])  # another instance's rows are not this one's
    await ledger.close()
    await other.close()

    sink = MetricsSink(LABELS)
    sink.write(batch)
    local = (await GatewayMetrics(LABELS, sink).render()).decode()
    source = LedgerTotals(lambda: read_ledger(ledger.engine, "metrics-test"))
    from_db = (await GatewayMetrics(LABELS, source).render()).decode()
    db_fams = parse(from_db)
    assert (
        db_fams.pop("switchpoint_metrics_ledger_read_errors")[
            ("switchpoint_metrics_ledger_read_errors_total", ())
        ]
        == 0
    )
    assert db_fams == parse(local)
    assert "switchpoint_requests_total" in local
    ledger.engine.dispose()


async def test_with_the_ledger_on_the_gateway_keeps_no_totals_of_its_own(
    simulator_url: str, tmp_path: Any
) -> None:
    """Ledger on: /metrics reads the database; no per-record metrics work in the process."""
    from switchpoint.api.app import create_app
    from switchpoint.config import parse as parse_config

    from gateway_harness import ENV, e2e_document

    doc = e2e_document(simulator_url) | {"storage": {"url": f"sqlite:///{tmp_path / 'l.db'}"}}
    app = create_app(parse_config(doc, env=ENV))
    gw = app.gateway
    assert isinstance(gw.metrics.source, LedgerTotals)
    assert not any(isinstance(s, MetricsSink) for s in gw.accounting.sinks)
    headers = {"authorization": f"Bearer {ENV['E2E_GATEWAY_KEY']}"}
    async with app.router.lifespan_context(app):  # type: ignore[attr-defined]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            for _ in range(3):
                r = await client.post(
                    "/v1/chat/completions",
                    json={"model": "d-openai", "messages": [{"role": "user", "content": "hi"}]},
                    headers=headers,
                )
                assert r.status_code == 200, r.text
            req = "switchpoint_requests"
            deadline = asyncio.get_running_loop().time() + 10
            while True:
                fams = parse((await client.get("/metrics")).text)
                labels = {"deployment": "d-openai", "alias": "d-openai", "status_class": "2xx"}
                key = (f"{req}_total", tuple(sorted(labels.items())))
                # the writer counts a batch once its transaction has committed, so the rows can
                # be readable a moment before the counter moves
                written = sample(fams, "switchpoint_ledger_written", "switchpoint_ledger_written_total")
                if fams.get(req, {}).get(key) == 3 and written == 3:
                    break
                assert asyncio.get_running_loop().time() < deadline, (fams.get(req), written)
                await asyncio.sleep(0.2)
            # the ledger writer's own series, per process
            assert sample(fams, "switchpoint_ledger_written", "switchpoint_ledger_written_total") == 3
            assert sample(fams, "switchpoint_ledger_dropped", "switchpoint_ledger_dropped_total") == 0
            assert sample(fams, "switchpoint_ledger_database_up", "switchpoint_ledger_database_up") == 1


async def test_a_reload_gives_new_aliases_their_own_label(
    simulator_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    from switchpoint.api.app import create_app
    from switchpoint.config import load

    from gateway_harness import ENV, e2e_document

    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    doc = e2e_document(simulator_url) | {"storage": {"enabled": False}}
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump(doc))
    app = create_app(load(path))
    headers = {"authorization": f"Bearer {ENV['E2E_GATEWAY_KEY']}"}
    body = {"model": "fresh", "messages": [{"role": "user", "content": "hi"}]}
    async with app.router.lifespan_context(app):  # type: ignore[attr-defined]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            assert (await client.post("/v1/chat/completions", json=body, headers=headers)).status_code == 404
            doc["models"]["fresh"] = "d-openai"
            path.write_text(yaml.safe_dump(doc))
            assert (await client.post("/admin/reload", headers=headers)).status_code == 200
            assert (await client.post("/v1/chat/completions", json=body, headers=headers)).status_code == 200
            await app.gateway.accounting.flush()
            fams = parse((await client.get("/metrics")).text)
    req = "switchpoint_requests"
    assert sample(fams, req, f"{req}_total", deployment="none", alias="other", status_class="4xx") == 1
    assert sample(fams, req, f"{req}_total", deployment="d-openai", alias="fresh", status_class="2xx") == 1
