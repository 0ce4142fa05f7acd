"""A batch for a deployment with ``batch_api: true`` goes to the provider's own Batch API (the
simulator's): one upload and one batch there, the answers read back into OpenAI's output file,
each line booked in the ledger as a batch request at the discounted price; a restart goes on
with the same upstream batch; a mixed or other-model batch is still run by the gateway."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from sqlalchemy import Engine, select

from batch_harness import MASTER, chat_lines
from batch_harness import wait as _wait
from governance_harness import configured_url_wins, doc
from resilience_harness import Server, gateway
from switchpoint.simulator import create_app as create_sim
from switchpoint.simulator.batch_wire import BatchAPI, with_batch_api
from switchpoint.store import batches as batch_store
from switchpoint.store import tables
from switchpoint.store.engine import make_engine

import specs

__all__ = ["configured_url_wins"]
INPUT, OUTPUT, DISCOUNT = 0.15, 0.6, 0.5  # gpt-4o-mini (data/prices.json)


@pytest.fixture(scope="module")
def sim() -> Iterator[tuple[str, BatchAPI]]:
    app = with_batch_api(create_sim())
    with Server(app) as server:
        yield server.url, app


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield engine
    engine.dispose()


def _config(sim_url: str, tmp_path: Path) -> dict[str, Any]:
    deployments = {
        "d-gpt": {"provider": "p", "model": "gpt-4o-mini", "batch_api": True},
        "d-claude": {"provider": "q", "model": "claude-haiku-4-5"},
    }
    return doc(sim_url, tmp_path, None, deployments=deployments, batches={"poll_s": 0.05})


def test_a_batch_api_deployment_gets_the_batch_and_the_ledger_the_discount(
    sim: tuple[str, BatchAPI], tmp_path: Path, ledger: Engine
) -> None:
    url_sim, upstream = sim
    before_batches, before_lines = upstream.created, upstream.lines
    with gateway(_config(url_sim, tmp_path)) as (url, gw, _):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=MASTER, max_retries=0)
        f = client.files.create(file=("fwd.jsonl", chat_lines(40)), purpose="batch")
        batch = client.batches.create(
            input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        done = _wait(lambda: client.batches.retrieve(batch.id), lambda b: b.status == "completed")
        assert done.status == "completed", done
        specs.check_schema("openai", "Batch", done.model_dump(exclude_none=True))
        assert done.request_counts is not None and done.request_counts.completed == 40
        assert done.output_file_id is not None
        out = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
        client.close()
        assert gw.accounting.requests == 40  # booked by the gateway, not run by it
    assert upstream.created - before_batches == 1 and upstream.lines - before_lines == 40
    assert sorted(o["custom_id"] for o in out) == sorted(f"line-{i}" for i in range(40))
    for o in out:
        assert o["response"]["status_code"] == 200
        specs.check_schema("openai", "CreateChatCompletionResponse", o["response"]["body"])
    r = tables.requests.c
    with ledger.connect() as conn:
        rows = conn.execute(
            select(r.batch, r.deployment, r.cost_usd, r.input_tokens, r.output_tokens).where(
                r.request_id.like(f"{batch.id}-%")
            )
        ).all()
    assert len(rows) == 40 and all(row.batch and row.deployment == "d-gpt" for row in rows)
    full = sum(row.input_tokens * INPUT + row.output_tokens * OUTPUT for row in rows) / 1e6
    assert full > 0
    assert sum(row.cost_usd for row in rows) == pytest.approx(full * (1 - DISCOUNT), rel=1e-9)


def test_other_models_and_mixed_batches_are_run_by_the_gateway(
    sim: tuple[str, BatchAPI], tmp_path: Path
) -> None:
    url_sim, upstream = sim
    before = upstream.created
    with gateway(_config(url_sim, tmp_path)) as (url, _, _):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=MASTER, max_retries=0)
        mixed = chat_lines(3) + chat_lines(1, model="claude").replace(b'"line-0"', b'"c-0"')
        for content in (chat_lines(3, model="claude"), mixed):
            f = client.files.create(file=("x.jsonl", content), purpose="batch")
            b = client.batches.create(
                input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
            done = _wait(lambda b=b: client.batches.retrieve(b.id), lambda x: x.status == "completed")
            assert done.status == "completed" and done.request_counts is not None
            assert done.request_counts.failed == 0
        client.close()
    assert upstream.created == before


def test_a_restart_goes_on_with_the_same_upstream_batch_and_a_cancel_is_passed_on(
    sim: tuple[str, BatchAPI], tmp_path: Path, ledger: Engine
) -> None:
    url_sim, upstream = sim
    config = _config(url_sim, tmp_path)
    before = upstream.created
    upstream.hold = True
    try:
        with gateway(config) as (url, _, _):
            client = openai.OpenAI(base_url=f"{url}/v1", api_key=MASTER, max_retries=0)
            f = client.files.create(file=("r.jsonl", chat_lines(10)), purpose="batch")
            kept = client.batches.create(
                input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
            f2 = client.files.create(file=("c.jsonl", chat_lines(5)), purpose="batch")
            stopped = client.batches.create(
                input_file_id=f2.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
            for bid in (kept.id, stopped.id):
                _wait(lambda bid=bid: batch_store.get_batch(ledger, bid), lambda b: b.upstream_id is not None)
            assert upstream.created - before == 2
            assert client.batches.cancel(stopped.id).status == "cancelling"
            ended = _wait(lambda: client.batches.retrieve(stopped.id), lambda b: b.status == "cancelled")
            assert ended.status == "cancelled" and ended.request_counts is not None
            assert ended.request_counts.failed == 5  # the provider ran none of them
            assert client.batches.retrieve(kept.id).status == "in_progress"
            client.close()
        upstream.hold = False
        with gateway(config) as (url, gw, _):
            client = openai.OpenAI(base_url=f"{url}/v1", api_key=MASTER, max_retries=0)
            done = _wait(lambda: client.batches.retrieve(kept.id), lambda b: b.status == "completed")
            client.close()
            assert done.status == "completed" and done.request_counts is not None
            assert done.request_counts.completed == 10
            assert gw.accounting.requests == 10
    finally:
        upstream.hold = False
    assert upstream.created - before == 2  # the restart created no second upstream batch
    r = tables.requests.c
    with ledger.connect() as conn:
        n = conn.execute(select(r.request_id).where(r.request_id.like(f"{kept.id}-%"))).all()
    assert len(n) == 10
