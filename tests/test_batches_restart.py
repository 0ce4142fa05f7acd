"""A 1,000-line batch against the simulator: it completes across a gateway restart (the first
gateway's lifespan stopped midway, a new gateway on the same database finishes it) without
running a line twice, and its ledger cost is the deployment's batch-discounted price. Cancelling
a batch ends it with the lines not run in its error file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from sqlalchemy import Engine, select

from batch_harness import MASTER, chat_lines
from batch_harness import wait as _poll
from governance_harness import configured_url_wins, doc
from resilience_harness import Server, gateway
from switchpoint.simulator import Behavior, SimConfig
from switchpoint.simulator import create_app as create_sim
from switchpoint.store import batches as batch_store
from switchpoint.store import tables
from switchpoint.store.engine import make_engine

__all__ = ["configured_url_wins"]
LINES = 1000
#: gpt-4o-mini's list price (USD per million tokens) and its batch discount (data/prices.json).
INPUT, OUTPUT, DISCOUNT = 0.15, 0.6, 0.5


@pytest.fixture(scope="module")
def slow_sim() -> Iterator[str]:
    """Each answer takes 10 ms, so a 1,000-line batch at 4 lines at a time is still running
    when the test stops the first gateway."""
    with Server(create_sim(SimConfig(default=Behavior(latency_ms=10)))) as server:
        yield server.url


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield engine
    engine.dispose()


def test_a_thousand_lines_survive_a_restart_and_cost_the_batch_price(
    slow_sim: str, tmp_path: Path, ledger: Engine
) -> None:
    config = doc(slow_sim, tmp_path, None, batches={"concurrency": 4})
    with gateway(config) as (url, gw1, _):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=MASTER, max_retries=0)
        f = client.files.create(file=("big.jsonl", chat_lines(LINES)), purpose="batch")
        batch = client.batches.create(
            input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        moving = _poll(
            lambda: client.batches.retrieve(batch.id),
            lambda b: b.request_counts is not None and b.request_counts.completed >= 150,
        )
        assert moving.status == "in_progress"  # progress is reported while it runs
        client.close()
    first_run = gw1.accounting.requests  # the lines the first gateway answered (and booked)
    kept = batch_store.counts(ledger, batch.id)
    assert 0 < first_run < LINES, "the batch should have been cut midway"
    assert kept[batch_store.SUCCEEDED] == first_run  # every answer it booked was kept
    assert kept[batch_store.PENDING] == LINES - first_run

    with gateway(config) as (url, gw2, _):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=MASTER, max_retries=0)
        done = _poll(lambda: client.batches.retrieve(batch.id), lambda b: b.status == "completed")
        assert done.status == "completed", done
        assert done.request_counts is not None
        assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (
            LINES,
            LINES,
            0,
        )
        assert done.output_file_id is not None and done.error_file_id is None
        out = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
        client.close()
        assert gw2.accounting.requests == LINES - first_run  # only the lines not yet answered ran again
    assert sorted(o["custom_id"] for o in out) == sorted(f"line-{i}" for i in range(LINES))
    assert all(o["response"]["status_code"] == 200 for o in out)

    r = tables.requests.c
    with ledger.connect() as conn:
        rows = conn.execute(
            select(r.batch, r.cost_usd, r.input_tokens, r.cached_input_tokens, r.output_tokens).where(
                r.request_id.like(f"{batch.id}-%")
            )
        ).all()
    assert len(rows) == LINES and all(row.batch for row in rows)
    assert all(row.cached_input_tokens == 0 for row in rows)
    list_price = sum(row.input_tokens * INPUT + row.output_tokens * OUTPUT for row in rows) / 1e6
    assert list_price > 0
    assert sum(row.cost_usd for row in rows) == pytest.approx(list_price * (1 - DISCOUNT), rel=1e-9)


def test_a_cancelled_batch_ends_with_the_lines_not_run_in_its_error_file(
    slow_sim: str, tmp_path: Path
) -> None:
    config = doc(slow_sim, tmp_path, None, batches={"concurrency": 1})
    with gateway(config) as (url, _, _):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=MASTER, max_retries=0)
        f = client.files.create(file=("c.jsonl", chat_lines(300)), purpose="batch")
        batch = client.batches.create(
            input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        _poll(
            lambda: client.batches.retrieve(batch.id),
            lambda b: b.request_counts is not None and b.request_counts.completed >= 5,
        )
        cancelling = client.batches.cancel(batch.id)
        assert cancelling.status in ("cancelling", "cancelled")
        ended = _poll(lambda: client.batches.retrieve(batch.id), lambda b: b.status == "cancelled")
        assert ended.status == "cancelled" and ended.cancelled_at is not None
        assert ended.request_counts is not None
        ran = ended.request_counts.completed
        assert 5 <= ran < 300 and ended.request_counts.failed == 300 - ran
        assert ended.error_file_id is not None and ended.output_file_id is not None
        errors = [json.loads(x) for x in client.files.content(ended.error_file_id).text.splitlines()]
        assert len(errors) == 300 - ran
        assert all(e["response"] is None and e["error"]["code"] == "batch_cancelled" for e in errors)
        with pytest.raises(openai.BadRequestError):  # a completed batch cannot be cancelled
            client.batches.cancel(_completed(client))
        client.close()


def _completed(client: openai.OpenAI) -> str:
    f = client.files.create(file=("one.jsonl", chat_lines(1)), purpose="batch")
    b = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    _poll(lambda: client.batches.retrieve(b.id), lambda x: x.status == "completed")
    return b.id


def test_two_gateways_on_one_database_run_each_line_once(
    slow_sim: str, tmp_path: Path, ledger: Engine
) -> None:
    config = doc(slow_sim, tmp_path, None, batches={"concurrency": 4, "poll_s": 0.05})
    with gateway(config) as (url_a, gw_a, _), gateway(config) as (url_b, gw_b, _):
        a = openai.OpenAI(base_url=f"{url_a}/v1", api_key=MASTER, max_retries=0)
        b = openai.OpenAI(base_url=f"{url_b}/v1", api_key=MASTER, max_retries=0)
        ids = []
        for client in (a, b, a, b):
            f = client.files.create(file=("x.jsonl", chat_lines(60)), purpose="batch")
            batch = client.batches.create(
                input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
            ids.append(batch.id)
        for bid in ids:  # either gateway reads any batch of the same owner
            done = _poll(lambda bid=bid: b.batches.retrieve(bid), lambda x: x.status == "completed")
            assert done.status == "completed" and done.request_counts is not None
            assert done.request_counts.completed == 60
        a.close()
        b.close()
        assert gw_a.accounting.requests + gw_b.accounting.requests == 4 * 60  # no line ran twice
    r = tables.requests.c
    with ledger.connect() as conn:
        booked = conn.execute(select(r.request_id).where(r.batch.is_(True))).scalars().all()
    assert len(booked) == 4 * 60


def test_a_cancelled_message_batch_ends_with_canceled_results(slow_sim: str, tmp_path: Path) -> None:
    params = {"model": "claude", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    with gateway(doc(slow_sim, tmp_path, None, batches={"concurrency": 1})) as (url, _, _):
        client = anthropic.Anthropic(base_url=url, api_key=MASTER, max_retries=0)
        requests: Any = [{"custom_id": f"m{i}", "params": params} for i in range(200)]
        created = client.messages.batches.create(requests=requests)
        _poll(
            lambda: client.messages.batches.retrieve(created.id),
            lambda b: b.request_counts.succeeded >= 5,
        )
        canceling = client.messages.batches.cancel(created.id)
        assert canceling.processing_status in ("canceling", "ended")
        assert canceling.cancel_initiated_at is not None
        ended = _poll(
            lambda: client.messages.batches.retrieve(created.id), lambda b: b.processing_status == "ended"
        )
        assert ended.processing_status == "ended" and ended.ended_at is not None
        counts = ended.request_counts
        assert counts.canceled > 0 and counts.succeeded + counts.canceled == 200 and counts.processing == 0
        results = list(client.messages.batches.results(created.id))
        assert len(results) == 200
        assert sum(r.result.type == "canceled" for r in results) == counts.canceled
        client.close()
