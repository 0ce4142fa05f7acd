"""The batch tables on SQLite and PostgreSQL: one migration head, the tables as store/batches.py
declares them, one runner per batch (a lease), an answered line never answered again, files
and batches read (and a batch deleted) only by their owner, pages in order."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

from switchpoint.store import batches as store
from switchpoint.store import migrate
from switchpoint.store.engine import make_engine


@pytest.fixture
def engine(ledger_url: str) -> Iterator[Engine]:
    e = make_engine(ledger_url)
    yield e
    e.dispose()


def _batch(
    bid: str, owner: str = "key:k1", created: float | None = None, dialect: str = "openai"
) -> store.BatchRow:
    now = created if created is not None else time.time()
    return store.BatchRow(
        id=bid,
        owner=owner,
        dialect=dialect,
        endpoint="/v1/chat/completions",
        input_file_id="file-x",
        completion_window="24h",
        status="validating",
        created_at=now,
        expires_at=now + 86400,
        total=3,
        metadata={"a": "b"},
    )


LINES = [("c0", '{"model":"m"}'), ("c1", '{"model":"m"}'), ("c2", '{"model":"m"}')]


def test_the_migration_chains_and_builds_the_tables(engine: Engine) -> None:
    script = ScriptDirectory.from_config(migrate._config())
    assert len(script.get_heads()) == 1
    assert script.get_revision("0006_batches").down_revision == "0005_cache_savings"
    names = set(inspect(engine).get_table_names())
    for table in (store.files, store.batches, store.batch_lines):
        assert table.name in names
        assert {c["name"] for c in inspect(engine).get_columns(table.name)} == {c.name for c in table.columns}


def test_one_runner_holds_a_batch_until_its_lease_ends(engine: Engine) -> None:
    store.insert_batch(engine, _batch("b1"), LINES)
    now = time.time()
    assert [b.id for b in store.claim(engine, "r1", now, 60)] == ["b1"]
    assert store.claim(engine, "r2", now, 60) == []  # held by r1
    assert [b.id for b in store.claim(engine, "r1", now, 60)] == ["b1"]  # r1 keeps it
    assert [b.id for b in store.claim(engine, "r2", now + 61, 60)] == ["b1"]  # r1's lease ran out
    store.release(engine, "r2")
    assert [b.id for b in store.claim(engine, "r1", now, 60)] == ["b1"]  # given up: free at once
    assert store.set_status(engine, "b1", "completed", only_from=store.ACTIVE, completed_at=now)
    assert store.claim(engine, "r1", now, 60) == []  # an ended batch is nobody's work
    assert not store.set_status(engine, "b1", "cancelling", only_from=("validating", "in_progress"))


def test_an_answered_line_keeps_its_first_answer(engine: Engine) -> None:
    store.insert_batch(engine, _batch("b2"), LINES)
    assert [line.custom_id for line in store.pending_lines(engine, "b2", -1, 10)] == ["c0", "c1", "c2"]
    first = store.LineResult(
        line=1, custom_id="c1", status=store.SUCCEEDED, status_code=200, result='{"n":1}'
    )
    assert store.save_results(engine, "b2", [first], "r1", time.time() + 60) == "validating"
    again = store.LineResult(line=1, custom_id="c1", status=store.ERRORED, status_code=500, result='{"n":2}')
    failed = store.LineResult(line=2, custom_id="c2", status=store.ERRORED, status_code=404, result="{}")
    store.save_results(engine, "b2", [again, failed], "r1", time.time() + 60)
    assert [line.line for line in store.pending_lines(engine, "b2", -1, 10)] == [0]
    assert [line.line for line in store.pending_lines(engine, "b2", 0, 10)] == []
    rows = store.results(engine, "b2", -1, 10)
    assert [(r.status, r.status_code, r.result) for r in rows] == [
        (store.PENDING, None, None),
        (store.SUCCEEDED, 200, '{"n":1}'),
        (store.ERRORED, 404, "{}"),
    ]
    row = store.get_batch(engine, "b2")
    assert row is not None and (row.completed, row.failed) == (1, 1)
    assert store.cancel_pending(engine, "b2") == 1
    row = store.get_batch(engine, "b2")
    assert row is not None and (row.completed, row.failed) == (1, 2)
    assert store.counts(engine, "b2") == {store.SUCCEEDED: 1, store.ERRORED: 1, store.CANCELED: 1}


def test_files_and_batches_are_their_owners_and_page_in_order(engine: Engine) -> None:
    for i in range(5):
        f = store.FileRow(
            id=f"file-{i}", owner="key:k1", purpose="batch", filename="f", bytes=1, created_at=100.0 + i
        )
        store.insert_file(engine, f, b"x")
        store.insert_batch(engine, _batch(f"b-{i}", created=100.0 + i), LINES[:1])
    store.insert_batch(engine, _batch("m-0", dialect="anthropic"), LINES[:1])
    assert store.get_file(engine, "file-1", "key:k2") is None
    assert store.get_batch(engine, "b-1", "key:k2") is None
    assert not store.delete_file(engine, "file-1", "key:k2")
    assert store.file_content(engine, "file-1") == b"x"

    def ids(rows: list[store.FileRow] | list[store.BatchRow]) -> list[str]:
        return [r.id for r in rows]

    newest = store.list_files(engine, "key:k1", purpose=None, limit=2, after=None, newest_first=True)
    assert ids(newest) == ["file-4", "file-3"]
    after = store.list_files(engine, "key:k1", purpose=None, limit=2, after="file-3", newest_first=True)
    assert ids(after) == ["file-2", "file-1"]
    oldest = store.list_files(engine, "key:k1", purpose="batch", limit=2, after="file-1", newest_first=False)
    assert ids(oldest) == ["file-2", "file-3"]
    assert (
        store.list_files(engine, "key:k1", purpose="user_data", limit=9, after=None, newest_first=True) == []
    )
    assert ids(store.list_batches(engine, "key:k1", "openai", limit=2, after=None)) == ["b-4", "b-3"]
    assert ids(store.list_batches(engine, "key:k1", "openai", limit=2, after="b-3")) == ["b-2", "b-1"]
    assert ids(store.list_batches(engine, "key:k1", "openai", limit=2, after=None, before="b-1")) == [
        "b-3",
        "b-2",
    ]
    assert ids(store.list_batches(engine, "key:k1", "anthropic", limit=9, after=None)) == ["m-0"]
    batch = store.get_batch(engine, "b-0", "key:k1")
    assert batch is not None and batch.metadata == {"a": "b"}
    assert store.delete_file(engine, "file-1", "key:k1")
    assert store.get_file(engine, "file-1", "key:k1") is None


def test_a_deleted_batch_takes_its_lines_and_only_its_owner_deletes(engine: Engine) -> None:
    store.insert_batch(engine, _batch("b-gone"), LINES)
    store.insert_batch(engine, _batch("b-kept"), LINES)
    assert not store.delete_batch(engine, "b-gone", "key:k2")
    assert store.counts(engine, "b-gone") == {store.PENDING: 3}
    assert store.delete_batch(engine, "b-gone", "key:k1")
    assert store.get_batch(engine, "b-gone") is None and store.counts(engine, "b-gone") == {}
    assert store.counts(engine, "b-kept") == {store.PENDING: 3}
    assert not store.delete_batch(engine, "b-gone", "key:k1")
