"""Files and Batches through the official SDKs, against the gateway in front of the simulator:
the openai SDK's files.create / batches.create / retrieve / files.content and the anthropic
SDK's messages.batches (delete: an ended batch only); the Batch, File and MessageBatch objects
validated against the published OpenAPI documents; the lines booked in the ledger with the batch
flag; ``limit`` on the lists (OpenAI's 0 and above the maximum, Anthropic's 1-1000)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from sqlalchemy import select

from batch_harness import MASTER, chat_line, jsonl
from batch_harness import wait as wait_done
from governance_harness import configured_url_wins, doc, make_key
from resilience_harness import AUTH, Server, gateway
from switchpoint.api.paging import anthropic_limit, openai_limit
from switchpoint.simulator import Behavior, SimConfig
from switchpoint.simulator import create_app as create_sim
from switchpoint.store import batches as store
from switchpoint.store import tables
from switchpoint.store.engine import make_engine

import specs

__all__ = ["configured_url_wins"]  # the test's own ledger file, whatever the environment names


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    with Server(create_sim(SimConfig())) as server:
        yield server.url


def test_openai_sdk_files_and_batches(sim: str, tmp_path: Path) -> None:
    with gateway(doc(sim, tmp_path, None)) as (url, gw, _):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=MASTER, max_retries=0)
        lines = [chat_line(i, max_tokens=16) for i in range(5)] + [chat_line(5, model="no-such-model")]
        uploaded = client.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
        specs.check_schema("openai", "OpenAIFile", uploaded.model_dump(exclude_none=True))
        assert uploaded.purpose == "batch" and uploaded.bytes == len(jsonl(lines))
        assert client.files.retrieve(uploaded.id).filename == "in.jsonl"
        assert client.files.content(uploaded.id).content == jsonl(lines)

        batch = client.batches.create(
            input_file_id=uploaded.id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            metadata={"job": "nightly"},
        )
        specs.check_schema("openai", "Batch", batch.model_dump(exclude_none=True))
        assert batch.request_counts is not None and batch.request_counts.total == 6
        done = wait_done(lambda: client.batches.retrieve(batch.id), lambda b: b.status == "completed")
        assert done.status == "completed", done
        specs.check_schema("openai", "Batch", done.model_dump(exclude_none=True))
        assert done.request_counts is not None
        assert (done.request_counts.completed, done.request_counts.failed) == (5, 1)
        assert done.metadata == {"job": "nightly"}
        assert done.output_file_id and done.error_file_id

        out = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
        assert sorted(o["custom_id"] for o in out) == [f"req-{i}" for i in range(5)]
        for o in out:
            assert o["error"] is None and o["response"]["status_code"] == 200
            specs.check_schema("openai", "CreateChatCompletionResponse", o["response"]["body"])
        err = [json.loads(x) for x in client.files.content(done.error_file_id).text.splitlines()]
        assert [e["custom_id"] for e in err] == ["req-5"]
        assert err[0]["response"]["status_code"] == 404
        assert err[0]["response"]["body"]["error"]["code"] == "model_not_found"
        output_file = client.files.retrieve(done.output_file_id)
        assert output_file.purpose == "batch_output"
        specs.check_schema("openai", "OpenAIFile", output_file.model_dump(exclude_none=True))

        listed = client.batches.list()
        assert [b.id for b in listed.data] == [batch.id]
        specs.check_response(
            "openai",
            "GET",
            "https://api.openai.com/v1/batches",
            200,
            listed.model_dump(exclude_none=True),
        )
        files = client.files.list()
        assert {f.id for f in files.data} == {uploaded.id, done.output_file_id, done.error_file_id}
        assert client.files.delete(uploaded.id).deleted is True
        with pytest.raises(openai.NotFoundError):
            client.files.retrieve(uploaded.id)
        client.close()

        gw_ledger = gw.ledger
        assert gw_ledger is not None
        engine = make_engine(str(gw_ledger.engine.url))
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    select(
                        tables.requests.c.request_id, tables.requests.c.batch, tables.requests.c.status
                    ).where(tables.requests.c.request_id.like(f"{batch.id}-%"))
                ).all()
        finally:
            engine.dispose()
        assert len(rows) == 6 and all(r.batch for r in rows)
        assert sorted(r.status for r in rows) == [200] * 5 + [404]


def test_anthropic_sdk_message_batches(sim: str, tmp_path: Path) -> None:
    with gateway(doc(sim, tmp_path, None)) as (url, _, _):
        client = anthropic.Anthropic(base_url=url, api_key=MASTER, max_retries=0)
        requests: list[Any] = [
            {
                "custom_id": f"q-{i}",
                "params": {
                    "model": "claude",
                    "max_tokens": 32,
                    "messages": [{"role": "user", "content": f"hello {i}"}],
                },
            }
            for i in range(3)
        ]
        requests.append(
            {
                "custom_id": "bad-model",
                "params": {"model": "nope", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]},
            }
        )
        created = client.messages.batches.create(requests=requests)
        specs.check_schema("anthropic", "MessageBatch", created.model_dump(mode="json"))
        assert created.id.startswith("msgbatch_")
        ended = wait_done(
            lambda: client.messages.batches.retrieve(created.id), lambda b: b.processing_status == "ended"
        )
        assert ended.processing_status == "ended", ended
        specs.check_schema("anthropic", "MessageBatch", ended.model_dump(mode="json"))
        assert ended.request_counts.succeeded == 3 and ended.request_counts.errored == 1
        results = {r.custom_id: r for r in client.messages.batches.results(created.id)}
        assert set(results) == {"q-0", "q-1", "q-2", "bad-model"}
        for i in range(3):
            res = results[f"q-{i}"].result
            assert res.type == "succeeded"
            specs.check_schema(
                "anthropic", "MessageBatchIndividualResponse", results[f"q-{i}"].model_dump(mode="json")
            )
        bad = results["bad-model"].result
        assert bad.type == "errored" and bad.error.error.type == "not_found_error"
        page = client.messages.batches.list()
        assert [b.id for b in page.data] == [created.id]
        client.close()


def test_one_key_cannot_read_another_keys_files_or_batches(sim: str, tmp_path: Path) -> None:
    with gateway(doc(sim, tmp_path, None)) as (url, _, _):
        alice_secret, _ = make_key(url)
        bob_secret, _ = make_key(url)
        alice = openai.OpenAI(base_url=f"{url}/v1", api_key=alice_secret, max_retries=0)
        bob = openai.OpenAI(base_url=f"{url}/v1", api_key=bob_secret, max_retries=0)
        f = alice.files.create(file=("a.jsonl", jsonl([chat_line(0)])), purpose="batch")
        b = alice.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
        for call in (
            lambda: bob.files.retrieve(f.id),
            lambda: bob.files.content(f.id),
            lambda: bob.files.delete(f.id),
            lambda: bob.batches.retrieve(b.id),
            lambda: bob.batches.cancel(b.id),
            lambda: bob.batches.create(
                input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
            ),
        ):
            with pytest.raises(openai.NotFoundError):
                call()
        assert bob.files.list().data == [] and bob.batches.list().data == []
        done = wait_done(lambda: alice.batches.retrieve(b.id), lambda x: x.status == "completed")
        assert done.status == "completed" and done.output_file_id
        with pytest.raises(openai.NotFoundError):
            bob.files.content(done.output_file_id)
        assert alice.files.content(done.output_file_id).text.count("\n") == 1
        alice.close()
        bob.close()


def _list_checked(client: openai.OpenAI, path: str, page: Any) -> None:
    specs.check_response(
        "openai", "GET", f"https://api.openai.com/v1/{path}", 200, page.model_dump(exclude_none=True)
    )


def test_openai_list_limits_empty_page_clamp_and_negative(sim: str, tmp_path: Path) -> None:
    """``limit`` on ``/v1/files`` and ``/v1/batches`` (the schema gives it no minimum or maximum):
    0 is an empty page whose ``has_more`` says whether there are objects, a limit above the
    maximum (10,000 / 100) is the maximum, a negative one is a 400."""
    with gateway(doc(sim, tmp_path, None)) as (url, _, _):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=MASTER, max_retries=0)
        none_yet = client.files.list(limit=0)
        assert none_yet.data == [] and none_yet.has_more is False
        assert client.batches.list(limit=0).has_more is False
        uploaded = [
            client.files.create(file=(f"in-{i}.jsonl", jsonl([chat_line(i)])), purpose="batch")
            for i in range(2)
        ]
        batches = [
            client.batches.create(
                input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
            for f in uploaded
        ]

        files = client.files.list(limit=0)
        assert files.data == [] and files.has_more is True
        _list_checked(client, "files", files)
        assert {f.id for f in client.files.list(limit=10_001).data} >= {f.id for f in uploaded}
        listed = client.batches.list(limit=0)
        assert listed.data == [] and listed.has_more is True
        _list_checked(client, "batches", listed)
        most = client.batches.list(limit=101)
        assert [b.id for b in most.data] == [b.id for b in reversed(batches)] and most.has_more is False
        for call in (lambda: client.files.list(limit=-1), lambda: client.batches.list(limit=-1)):
            with pytest.raises(openai.BadRequestError) as refused:
                call()
            assert refused.value.body["param"] == "limit"  # type: ignore[index]
        bad = httpx.get(f"{url}/v1/batches", params={"limit": "ten"}, headers=AUTH, timeout=10)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "limit"
        for b in batches:
            wait_done(lambda b=b: client.batches.retrieve(b.id), lambda x: x.status == "completed")
        client.close()


def test_the_limit_above_the_maximum_is_the_maximum() -> None:
    assert openai_limit({"limit": "150"}, default=20, most=100) == 100
    assert openai_limit({"limit": "0"}, default=20, most=100) == 0
    assert openai_limit({}, default=20, most=100) == 20
    assert anthropic_limit({"limit": "1000"}) == 1000 and anthropic_limit({}) == 20


def test_anthropic_sdk_deletes_an_ended_message_batch_only(tmp_path: Path) -> None:
    """``DELETE /v1/messages/batches/{id}``: a batch still processing (or cancelling) is a 400,
    as Anthropic has it (cancel it first); an ended one goes, with its lines, and the answer is
    ``{"id", "type": "message_batch_deleted"}``. ``limit`` on the list is 1-1000 (a 400 outside)."""
    slow = SimConfig(models={"claude-haiku-4-5": Behavior(latency_ms=2000)})
    with Server(create_sim(slow)) as sim, gateway(doc(sim.url, tmp_path, None)) as (url, gw, _):
        client = anthropic.Anthropic(base_url=url, api_key=MASTER, max_retries=0)
        params: Any = {"model": "claude", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
        batch = client.messages.batches.create(requests=[{"custom_id": "q-0", "params": params}])
        with pytest.raises(anthropic.BadRequestError) as early:
            client.messages.batches.delete(batch.id)
        assert early.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
        assert "cancel it first" in early.value.body["error"]["message"]  # type: ignore[index]
        cancelling = client.messages.batches.cancel(batch.id)
        if cancelling.processing_status == "canceling":  # the line still in flight
            with pytest.raises(anthropic.BadRequestError):
                client.messages.batches.delete(batch.id)
        ended = wait_done(
            lambda: client.messages.batches.retrieve(batch.id), lambda b: b.processing_status == "ended"
        )
        assert ended.processing_status == "ended", ended

        deleted = client.messages.batches.delete(batch.id)
        assert deleted.id == batch.id and deleted.type == "message_batch_deleted"
        specs.check_schema("anthropic", "DeleteMessageBatchResponse", deleted.model_dump(mode="json"))
        assert gw.ledger is not None and store.counts(gw.ledger.engine, batch.id) == {}  # its lines too
        for gone in (
            lambda: client.messages.batches.retrieve(batch.id),
            lambda: client.messages.batches.delete(batch.id),
            lambda: client.messages.batches.results(batch.id),
        ):
            with pytest.raises(anthropic.NotFoundError):
                gone()
        assert client.messages.batches.list().data == []
        for limit in (0, 1001, -1):
            with pytest.raises(anthropic.BadRequestError) as refused:
                client.messages.batches.list(limit=limit)
            assert refused.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
        client.close()
