"""Stored chat completions (``store: true``) end to end: the official ``openai`` SDK's
``chat.completions`` create / retrieve / update / list / delete / messages.list against the
gateway over HTTP, with the simulator behind it (an OpenAI passthrough route and an
Anthropic translated one), streamed and not; owners kept apart; a failed write never fails
the answer; the list's limit semantics; the table's queries, migration and retention on SQLite
and PostgreSQL.

Every 200 body from ``/v1/chat/completions…`` (but a stream) is validated against the
published OpenAI spec's operation (an httpx response hook).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from alembic import command
from sqlalchemy import Engine, inspect

from governance_harness import bearer, configured_url_wins, doc, make_key
from resilience_harness import AUTH, Server, gateway
from switchpoint.api.chat_store import assemble, message_resource
from switchpoint.simulator import SimConfig
from switchpoint.simulator import create_app as create_sim
from switchpoint.store import chat_completions as store
from switchpoint.store import migrate
from switchpoint.store.engine import make_engine
from switchpoint.store.migrate import _config
from switchpoint.store.writer import Writer

import specs
from store_db import db_url

__all__ = ["configured_url_wins", "db_url"]  # the test's own ledger file, whatever the environment names

BASE = "https://api.openai.com/v1"
MASTER = AUTH["authorization"].removeprefix("Bearer ")
CHECKED: list[str] = []


def _validate(response: httpx.Response) -> None:
    path = response.request.url.path
    if not path.startswith("/v1/chat/completions"):
        return
    if "text/event-stream" in response.headers.get("content-type", ""):
        return
    response.read()
    if response.status_code != 200:
        assert set(response.json()["error"]) >= {"message", "type", "param", "code"}
        return
    body = response.json()
    if path.endswith("/messages"):
        # The spec's item schema is the assistant's message (role "assistant" only), while its
        # own example, and the API, list the request's messages with their roles.
        body["data"] = [{**m, "role": "assistant"} for m in body["data"]]
    method = response.request.method
    specs.check_response("openai", method, BASE + path.removeprefix("/v1"), 200, json.dumps(body).encode())
    CHECKED.append(f"{method} {path}")


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    with Server(create_sim(SimConfig())) as server:
        yield server.url


def _client(url: str, secret: str = MASTER) -> openai.OpenAI:
    http = httpx.Client(event_hooks={"response": [_validate]}, timeout=30)
    return openai.OpenAI(base_url=f"{url}/v1", api_key=secret, max_retries=0, http_client=http)


def _stream_create(client: openai.OpenAI, **kw: Any) -> tuple[str, str]:
    """(the id the chunks carried, the text they added up to)."""
    ids, text = set(), ""
    for chunk in client.chat.completions.create(stream=True, **kw):
        ids.add(chunk.id)
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
    assert len(ids) == 1
    return ids.pop(), text


# --- the SDK, end to end ---------------------------------------------------------------------


@pytest.mark.parametrize("model", ["fast", "claude"])  # OpenAI passthrough; Anthropic, translated
def test_store_retrieve_update_list_delete_with_the_sdk(sim: str, tmp_path: Path, model: str) -> None:
    CHECKED.clear()
    with gateway(doc(sim, tmp_path, None)) as (url, _, _):
        c = _client(url)
        plain = c.chat.completions.create(
            model=model,
            messages=[
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": [{"type": "text", "text": "Say hello"}]},
            ],
            store=True,
            metadata={"purpose": "test", "run": "1"},
        )
        streamed_id, streamed_text = _stream_create(
            c,
            model=model,
            messages=[{"role": "user", "content": "Stream a hello"}],
            store=True,
            metadata={"purpose": "stream"},
        )
        unstored = c.chat.completions.create(model=model, messages=[{"role": "user", "content": "not kept"}])

        got = c.chat.completions.retrieve(plain.id)
        assert got.id == plain.id and got.choices[0].message.content == plain.choices[0].message.content
        assert got.model == plain.model and got.created == plain.created
        assert got.metadata == {"purpose": "test", "run": "1"}
        assert got.usage is not None and plain.usage is not None
        assert got.usage.total_tokens == plain.usage.total_tokens
        s = c.chat.completions.retrieve(streamed_id)
        assert s.object == "chat.completion" and s.choices[0].message.content == streamed_text
        assert s.choices[0].finish_reason == "stop" and s.usage is not None and s.usage.completion_tokens > 0
        with pytest.raises(openai.NotFoundError):
            c.chat.completions.retrieve(unstored.id)

        listed = c.chat.completions.list()
        assert [x.id for x in listed.data] == [plain.id, streamed_id]  # asc by created: the default
        assert not listed.has_more
        desc = c.chat.completions.list(order="desc", limit=1)
        assert [x.id for x in desc.data] == [streamed_id] and desc.has_more
        assert [x.id for x in c.chat.completions.list(order="desc", after=streamed_id).data] == [plain.id]
        assert [x.id for x in c.chat.completions.list(limit=1)] == [plain.id, streamed_id]  # auto-paging
        assert [x.id for x in c.chat.completions.list(metadata={"purpose": "stream"}).data] == [streamed_id]
        assert c.chat.completions.list(metadata={"purpose": "test", "run": "2"}).data == []
        assert len(c.chat.completions.list(model=model).data) == 2
        assert c.chat.completions.list(model="some-other-model").data == []

        updated = c.chat.completions.update(plain.id, metadata={"purpose": "renamed"})
        assert updated.id == plain.id and updated.metadata == {"purpose": "renamed"}
        assert c.chat.completions.retrieve(plain.id).metadata == {"purpose": "renamed"}
        assert [x.id for x in c.chat.completions.list(metadata={"purpose": "renamed"}).data] == [plain.id]

        msgs = c.chat.completions.messages.list(plain.id)
        assert [m.id for m in msgs.data] == [f"{plain.id}-0", f"{plain.id}-1"]
        assert [m.role for m in msgs.data] == ["system", "user"]  # type: ignore[comparison-overlap]
        assert msgs.data[0].content == "Be terse." and msgs.data[0].content_parts is None
        assert msgs.data[1].content == "Say hello"
        assert msgs.data[1].content_parts is not None and msgs.data[1].content_parts[0].type == "text"
        last = c.chat.completions.messages.list(plain.id, order="desc", limit=1)
        assert [m.id for m in last.data] == [f"{plain.id}-1"] and last.has_more
        rest = c.chat.completions.messages.list(plain.id, order="desc", after=f"{plain.id}-1")
        assert [m.id for m in rest.data] == [f"{plain.id}-0"] and not rest.has_more

        gone = c.chat.completions.delete(plain.id)
        assert (gone.id, gone.object, gone.deleted) == (plain.id, "chat.completion.deleted", True)
        for call in (
            lambda: c.chat.completions.retrieve(plain.id),
            lambda: c.chat.completions.delete(plain.id),
            lambda: c.chat.completions.update(plain.id, metadata={}),
            lambda: c.chat.completions.messages.list(plain.id),
        ):
            with pytest.raises(openai.NotFoundError) as err:
                call()
            assert err.value.status_code == 404
        assert [x.id for x in c.chat.completions.list().data] == [streamed_id]
        c.close()
    assert {"GET /v1/chat/completions", f"GET /v1/chat/completions/{streamed_id}"} <= set(CHECKED)
    assert f"POST /v1/chat/completions/{plain.id}" in CHECKED
    assert f"DELETE /v1/chat/completions/{plain.id}" in CHECKED
    assert f"GET /v1/chat/completions/{plain.id}/messages" in CHECKED


def test_the_passthrough_body_keeps_store_and_metadata(sim: str, tmp_path: Path) -> None:
    """An OpenAI upstream gets the client's body as sent (lossless passthrough): ``store`` and
    ``metadata`` included; an Anthropic one gets neither."""
    sent: list[bytes] = []
    with gateway(doc(sim, tmp_path, None)) as (url, gw, _):
        inner = gw.executor.transport

        class Recording:
            async def send(self, request: Any, **kw: Any) -> Any:
                sent.append(request.body)
                return await inner.send(request, **kw)

            def __getattr__(self, name: str) -> Any:
                return getattr(inner, name)

        gw.executor.transport = Recording()  # type: ignore[assignment]
        body = {"messages": [{"role": "user", "content": "hi"}], "store": True, "metadata": {"a": "b"}}
        for model in ("fast", "claude"):
            r = httpx.post(
                f"{url}/v1/chat/completions", json={**body, "model": model}, headers=AUTH, timeout=30
            )
            assert r.status_code == 200, r.text
    forwarded = [json.loads(b) for b in sent]
    assert forwarded[0]["store"] is True and forwarded[0]["metadata"] == {"a": "b"}
    assert "store" not in forwarded[1] and "metadata" not in forwarded[1]


def test_a_keys_completions_are_its_own(sim: str, tmp_path: Path) -> None:
    with gateway(doc(sim, tmp_path, None)) as (url, _, _):
        alice_secret, _ = make_key(url)
        bob_secret, _ = make_key(url)
        alice, bob, master = _client(url, alice_secret), _client(url, bob_secret), _client(url)
        mine = alice.chat.completions.create(
            model="fast", messages=[{"role": "user", "content": "a secret plan"}], store=True
        )
        theirs_id, _ = _stream_create(
            bob, model="claude", messages=[{"role": "user", "content": "bob's"}], store=True
        )
        for other in (bob, master):
            cc = other.chat.completions
            for call in (
                functools.partial(cc.retrieve, mine.id),
                functools.partial(cc.update, mine.id, metadata={"x": "y"}),
                functools.partial(cc.messages.list, mine.id),
                functools.partial(cc.delete, mine.id),
            ):
                with pytest.raises(openai.NotFoundError):
                    call()
        assert [x.id for x in alice.chat.completions.list().data] == [mine.id]
        assert [x.id for x in bob.chat.completions.list().data] == [theirs_id]
        assert master.chat.completions.list().data == []
        assert bob.chat.completions.list(after=mine.id).data == []  # another owner's id is no cursor
        assert alice.chat.completions.retrieve(mine.id).metadata == {}
        for c in (alice, bob, master):
            c.close()


def _counts(url: str) -> dict[str, int]:
    return dict(httpx.get(f"{url}/admin/stats", headers=AUTH, timeout=10).json()["chat_store"])


def test_a_failed_write_is_counted_and_never_fails_the_answer(
    sim: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(engine: Engine, row: store.StoredCompletion) -> None:
        raise RuntimeError("the database refused")

    with gateway(doc(sim, tmp_path, None)) as (url, _, _):
        monkeypatch.setattr(store, "insert", refuse)
        c = _client(url)
        body: dict[str, Any] = {
            "model": "fast",
            "messages": [{"role": "user", "content": "hi"}],
            "store": True,
        }
        answer = c.chat.completions.create(**body)
        assert answer.choices[0].message.content
        _, text = _stream_create(c, **{**body, "model": "claude"})
        assert text
        deadline = time.monotonic() + 10
        while _counts(url)["failed"] < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _counts(url) == {"stored": 0, "failed": 2, "dropped": 0, "pending": 0}
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
        assert 'switchpoint_chat_store_writes_total{outcome="failed"} 2' in metrics
        with pytest.raises(openai.NotFoundError):
            c.chat.completions.retrieve(answer.id)
        monkeypatch.undo()
        kept = c.chat.completions.create(**body)
        assert c.chat.completions.retrieve(kept.id).id == kept.id
        assert _counts(url)["stored"] == 1
        c.close()


def test_limit_order_and_bad_parameters(sim: str, tmp_path: Path) -> None:
    with gateway(doc(sim, tmp_path, None)) as (url, gw, _):
        c = _client(url)
        c.chat.completions.create(model="fast", messages=[{"role": "user", "content": "not kept"}])
        _, _ = _stream_create(c, model="fast", messages=[{"role": "user", "content": "nor this"}])
        # without store: true the chat store is never touched (not even its threads started;
        # other tests' gateways may have threads of that name still ending, so this one's)
        assert gw.chats is not None and gw.chats._pool is None
        assert gw.chats.stats() == {"stored": 0, "failed": 0, "dropped": 0, "pending": 0}
        ids = [
            c.chat.completions.create(
                model="fast", messages=[{"role": "user", "content": f"n{i}"}], store=True
            ).id
            for i in range(3)
        ]
        assert [x.id for x in c.chat.completions.list().data] == ids  # default limit 20, asc
        empty = c.chat.completions.list(limit=0)
        assert empty.data == [] and empty.has_more is True
        assert [x.id for x in c.chat.completions.list(limit=1000).data] == ids  # clamped, not refused
        assert [x.id for x in c.chat.completions.list(order="desc").data] == ids[::-1]
        assert [x.id for x in c.chat.completions.list(after=ids[0], limit=1).data] == [ids[1]]
        assert c.chat.completions.messages.list(ids[0], limit=0).data == []
        # an unknown cursor (the SDK's own suite sends after="after"): an empty page, not an error
        unknown = c.chat.completions.list(after="after", limit=0, metadata={"foo": "string"}, model="model")
        assert unknown.data == [] and not unknown.has_more
        assert c.chat.completions.list(after="chatcmpl-none").data == []
        assert c.chat.completions.messages.list(ids[0], after="nope").data == []

        def get(path: str, **params: str) -> httpx.Response:
            return httpx.get(f"{url}/v1/chat/completions{path}", params=params, headers=AUTH, timeout=10)

        for path, params, param in (
            ("", {"limit": "-1"}, "limit"),
            ("", {"limit": "ten"}, "limit"),
            ("", {"order": "sideways"}, "order"),
            (f"/{ids[0]}/messages", {"limit": "-5"}, "limit"),
        ):
            r = get(path, **params)
            assert r.status_code == 400, (path, params, r.text)
            assert (
                r.json()["error"]["param"] == param and r.json()["error"]["type"] == "invalid_request_error"
            )
        missing = get("/chatcmpl-does-not-exist")
        assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"

        def post(body: Any) -> httpx.Response:
            return httpx.post(f"{url}/v1/chat/completions/{ids[0]}", json=body, headers=AUTH, timeout=10)

        for body, param in (
            ({"metadata": {"a": "b"}, "model": "x"}, "model"),
            ({}, "metadata"),
            ({"metadata": {"a": 1}}, "metadata.a"),
            ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
            ({"metadata": "nope"}, "metadata"),
        ):
            r = post(body)
            assert r.status_code == 400 and r.json()["error"]["param"] == param, (body, r.text)
        cleared = post({"metadata": None})
        assert cleared.status_code == 200 and cleared.json()["metadata"] == {}
        c.close()


def test_with_the_ledger_off_nothing_is_stored(sim: str, tmp_path: Path) -> None:
    document = doc(sim, tmp_path, None)
    document["storage"] = {"enabled": False}
    with gateway(document) as (url, gw, _):
        c = _client(url)
        answer = c.chat.completions.create(
            model="fast", messages=[{"role": "user", "content": "hi"}], store=True
        )
        assert answer.choices[0].message.content
        with pytest.raises(openai.NotFoundError, match="ledger"):
            c.chat.completions.retrieve(answer.id)
        with pytest.raises(openai.NotFoundError):
            c.chat.completions.list()
        assert gw.chats.stats() == {"stored": 0, "failed": 0, "dropped": 0, "pending": 0}
        c.close()


def test_a_second_gateway_on_the_same_database_reads_them(sim: str, ledger_url: str, tmp_path: Path) -> None:
    document = doc(sim, tmp_path, None)
    document["storage"]["url"] = ledger_url
    with gateway(document) as (url, _, _):
        secret, _ = make_key(url)
        c = _client(url, secret)
        first = c.chat.completions.create(
            model="claude",
            messages=[{"role": "user", "content": "remember me"}],
            store=True,
            metadata={"t": "1"},
        )
        c.close()
    with gateway(document) as (url, _, _):
        c = _client(url, secret)
        again = c.chat.completions.retrieve(first.id)
        assert again.choices[0].message.content == first.choices[0].message.content
        assert [x.id for x in c.chat.completions.list(metadata={"t": "1"}).data] == [first.id]
        c.close()
        r = httpx.get(f"{url}/v1/chat/completions/{first.id}", headers=bearer(MASTER), timeout=10)
        assert r.status_code == 404


# --- the pieces ------------------------------------------------------------------------------


def test_a_stream_is_assembled_from_its_chunks() -> None:
    def frame(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        chunk = {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 7,
            "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return b"data: " + json.dumps(chunk).encode() + b"\n\n"

    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a"'}}
    stream = b"".join(
        [
            frame({"role": "assistant", "content": ""}, system_fingerprint="fp"),
            frame({"reasoning_content": "hm"}),
            frame({"content": "Hel"}),
            frame({"content": "lo"}),
            frame({"tool_calls": [call]}),
            frame({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}),
            frame({}, "tool_calls"),
            b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":7,"model":"m","choices":[],'
            b'"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}\n\n',
            b"data: [DONE]\n\n",
        ]
    )
    doc = json.loads(assemble(stream))
    specs.check_schema("openai", "CreateChatCompletionResponse", doc)
    assert (doc["id"], doc["created"], doc["model"], doc["system_fingerprint"]) == (
        "chatcmpl-1",
        7,
        "m",
        "fp",
    )
    message = doc["choices"][0]["message"]
    assert message["content"] == "Hello" and message["reasoning_content"] == "hm"
    assert message["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    ]
    assert doc["choices"][0]["finish_reason"] == "tool_calls" and doc["usage"]["total_tokens"] == 5


def test_messages_as_listed() -> None:
    tool_turn = {"role": "assistant", "content": None, "tool_calls": [{"id": "c"}]}
    assert message_resource(tool_turn, "chatcmpl-x", 2) == {
        **tool_turn,
        "id": "chatcmpl-x-2",
        "content_parts": None,
        "refusal": None,
        "name": None,
    }
    image = {"type": "image_url", "image_url": {"url": "https://x/y.png"}}
    parts = message_resource({"role": "user", "content": [image]}, "c", 0)
    assert parts["content"] is None and parts["content_parts"] == [image]


def _row(
    cid: str, at: float, owner: str = "key:k1", meta: dict[str, str] | None = None
) -> store.StoredCompletion:
    return store.StoredCompletion(
        id=cid,
        owner=owner,
        created_at=at,
        model="fast" if cid != "other-model" else "claude",
        metadata=meta,
        messages=[{"role": "user", "content": cid}],
        completion=json.dumps({"id": cid, "object": "chat.completion"}).encode(),
    )


def test_the_queries_page_filter_update_and_prune(ledger_url: str) -> None:
    engine = make_engine(ledger_url)
    try:
        _queries(engine)
    finally:
        engine.dispose()


def _queries(engine: Engine) -> None:
    now = time.time()
    for i, cid in enumerate(["a", "b", "c", "other-model"]):
        store.insert(engine, _row(cid, now + i, meta={"n": str(i), "even": str(i % 2 == 0)}))
    store.insert(engine, _row("tie", now + 1, meta={"n": "1"}))  # same time as b: the id orders them
    store.insert(engine, _row("theirs", now, owner="key:k2"))
    store.insert(engine, _row("old", now - 40 * 86400))

    def ids(**kw: Any) -> tuple[list[str], bool]:
        rows, more = store.page(engine, "key:k1", **{"limit": 20, **kw})
        return [r.id for r in rows], more

    assert ids() == (["old", "a", "b", "tie", "c", "other-model"], False)
    assert ids(order="desc", limit=2) == (["other-model", "c"], True)
    assert ids(after="b", limit=2) == (["tie", "c"], True)
    assert ids(order="desc", after="tie") == (["b", "a", "old"], False)
    assert ids(model="claude") == (["other-model"], False)
    assert ids(where={"even": "True"}) == (["a", "c"], False)
    assert ids(where={"even": "True", "n": "2"}) == (["c"], False)
    assert ids(limit=0) == ([], True)
    assert store.page(engine, "key:k1", limit=5, after="theirs") == ([], False)
    updated = store.set_metadata(engine, "a", "key:k1", {"n": "changed"})
    assert updated is not None and updated.metadata == {"n": "changed"}
    assert store.set_metadata(engine, "a", "key:k2", {}) is None
    assert store.remove(engine, "a", "key:k2") is False
    got = store.get(engine, "a", "key:k1")
    assert got is not None and got.messages == [{"role": "user", "content": "a"}]
    Writer(engine).prune(now - 30 * 86400)  # the ledger's retention prunes stored completions too
    assert store.get(engine, "old", "key:k1") is None and store.get(engine, "a", "key:k1") is not None


def test_the_migration_upgrades_and_downgrades(db_url: str) -> None:
    e = make_engine(db_url)
    try:
        assert migrate.upgrade(e, "0010_task_totals") == "0010_task_totals"
        assert "chat_completions" not in inspect(e).get_table_names()
        assert migrate.upgrade(e) == migrate.head()
        assert "chat_completions" in inspect(e).get_table_names()
        columns = {c["name"] for c in inspect(e).get_columns("chat_completions")}
        assert columns == {c.name for c in store.chat_completions.columns}
        indexes = {i["name"] for i in inspect(e).get_indexes("chat_completions")}
        assert indexes == {"ix_chat_completions_owner_created_at", "ix_chat_completions_created_at"}
        store.insert(e, _row("kept", time.time(), meta={"a": "b"}))
        with e.begin() as conn:
            command.downgrade(_config(conn), "0010_task_totals")
        assert "chat_completions" not in inspect(e).get_table_names()
        with e.connect() as conn:
            assert migrate.current(conn) == "0010_task_totals"
        assert migrate.upgrade(e) == migrate.head()
    finally:
        e.dispose()


def test_past_the_pending_bound_a_completion_is_dropped_and_counted(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    from types import SimpleNamespace

    from switchpoint.api import chat_store
    from switchpoint.api.shadow import SHADOW
    from switchpoint.canonical import ChatRequest, Usage
    from switchpoint.executor import RequestContext
    from switchpoint.governance.principal import Principal

    engine = make_engine(ledger_url)
    chats = chat_store.ChatStore(SimpleNamespace(ledger=SimpleNamespace(engine=engine)))  # type: ignore[arg-type]
    request = ChatRequest(
        model="fast", messages=[], store=True, raw={"messages": [{"role": "user", "content": "x"}]}
    )
    ctx = RequestContext("req-1")
    ctx.usage = Usage(input_tokens=3, output_tokens=2)
    principal = Principal(key_id="k9", name="k")
    body = b'{"id":"chatcmpl-bound","object":"chat.completion","created":1,"model":"m","choices":[]}'

    async def run() -> None:
        monkeypatch.setattr(chat_store, "MAX_PENDING", 0)
        chats.keep(request, body, principal, ctx)
        monkeypatch.setattr(chat_store, "MAX_PENDING", 1000)
        chats.keep(request, body, principal, ctx)
        chats.keep(request, body, SHADOW, ctx)  # a shadow copy of a stored request: not kept
        await chats.settled()
        await chats.close()

    try:
        asyncio.run(run())
        assert chats.stats() == {"stored": 1, "failed": 0, "dropped": 1, "pending": 0}
        row = store.get(engine, "chatcmpl-bound", "key:k9")
        assert row is not None and row.messages == [{"role": "user", "content": "x"}]
        kept = json.loads(row.completion)  # no usage in the body: the request's
        assert kept["usage"]["prompt_tokens"] == 3 and kept["usage"]["total_tokens"] == 5
    finally:
        engine.dispose()
