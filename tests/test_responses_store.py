"""Stored Responses in the ledger's database (SQLite and PostgreSQL): one migration head, rows
kept per owner, a conversation read back as its chain of previous_response_id links."""

from __future__ import annotations

import time
from collections.abc import Iterator

import msgspec
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

from switchpoint.api.responses_state import owner_of
from switchpoint.governance.principal import Principal
from switchpoint.store import migrate
from switchpoint.store import responses as store
from switchpoint.store.engine import make_engine


@pytest.fixture
def engine(ledger_url: str) -> Iterator[Engine]:
    e = make_engine(ledger_url)
    yield e
    e.dispose()


def _row(rid: str, owner: str = "key:k1", previous: str | None = None) -> store.StoredResponse:
    return store.StoredResponse(
        id=rid,
        owner=owner,
        created_at=time.time(),
        model="m",
        previous_response_id=previous,
        input_items=[{"role": "user", "content": f"to {rid}"}],
        response=b'{"id": "%s", "output": []}' % rid.encode(),
    )


def test_the_migrations_have_one_head_and_build_the_table(engine: Engine) -> None:
    script = ScriptDirectory.from_config(migrate._config())
    assert len(script.get_heads()) == 1  # chained onto the one head there was
    assert "0004_responses" in {r.revision for r in script.walk_revisions()}
    assert script.get_revision("0004_responses").down_revision == "0003_governance"
    assert "responses" in inspect(engine).get_table_names()
    columns = {c["name"] for c in inspect(engine).get_columns("responses")}
    assert columns == {c.name for c in store.responses.columns}


def test_a_conversation_is_read_back_oldest_first(engine: Engine) -> None:
    store.insert(engine, _row("r1"))
    store.insert(engine, _row("r2", previous="r1"))
    store.insert(engine, _row("r3", previous="r2"))
    store.insert(engine, _row("other", owner="key:k2"))
    chain = store.chain(engine, "r3", "key:k1")
    assert [r.id for r in chain] == ["r1", "r2", "r3"]
    assert chain[0].input_items == [{"role": "user", "content": "to r1"}]
    assert chain[2].response == b'{"id": "r3", "output": []}'
    assert [r.id for r in store.chain(engine, "r2", "key:k1", limit=0)] == ["r2"]


def test_only_the_owner_reads_or_deletes(engine: Engine) -> None:
    store.insert(engine, _row("mine"))
    assert store.get(engine, "mine", "key:k2") is None
    assert store.chain(engine, "mine", "key:k2") == []
    assert store.remove(engine, "mine", "key:k2") is False
    got = store.get(engine, "mine", "key:k1")
    assert got is not None and got.model == "m"
    assert store.remove(engine, "mine", "key:k1") is True
    assert store.get(engine, "mine", "key:k1") is None


def test_a_deleted_link_ends_the_conversation(engine: Engine) -> None:
    store.insert(engine, _row("a"))
    store.insert(engine, _row("b", previous="a"))
    store.insert(engine, _row("c", previous="b"))
    assert store.remove(engine, "b", "key:k1")
    assert [r.id for r in store.chain(engine, "c", "key:k1")] == ["c"]


def test_owners_are_keys_by_id_else_names() -> None:
    assert owner_of(Principal(key_id="k1", name="alice")) == "key:k1"
    assert owner_of(Principal(key_id="k1", name="renamed")) == "key:k1"
    assert owner_of(Principal(key_id=None, name="master")) == "name:master"
    assert owner_of(None) == "anonymous"


def test_a_background_row_changes_only_while_it_is_queued_or_in_progress(engine: Engine) -> None:
    now = time.time()
    row = msgspec.structs.replace(
        _row("bg"), status="queued", background=True, worker="w1", heartbeat_at=now - 100
    )
    store.insert(engine, row)
    store.insert(engine, _row("fg"))  # a foreground answer: completed, never stale
    assert [r.id for r in store.stale(engine, now - 50)] == ["bg"]
    store.touch(engine, "w2", ["bg"], now)  # another worker's mark does not count
    assert [r.id for r in store.stale(engine, now - 50)] == ["bg"]
    store.touch(engine, "w1", ["bg"], now)
    assert store.stale(engine, now - 50) == []
    assert store.settle(engine, "bg", "key:k1", "in_progress", b'{"status": "in_progress"}')
    assert store.cancel(engine, "bg", "key:k1", b'{"status": "cancelled"}')
    assert not store.settle(engine, "bg", "key:k1", "completed", b'{"status": "completed"}')
    assert not store.cancel(engine, "bg", "key:k2", b"{}")  # only the owner's
    got = store.get(engine, "bg", "key:k1")
    assert got is not None and (got.status, got.background, got.worker) == ("cancelled", True, "w1")
    assert got.response == b'{"status": "cancelled"}'
    fg = store.get(engine, "fg", "key:k1")
    assert fg is not None and (fg.status, fg.background, fg.heartbeat_at) == ("completed", False, None)
    assert not store.settle(engine, "fg", "key:k1", "failed", b"{}")  # a finished row stays
