"""The ledger's schema: migrations apply on an empty database, are idempotent, and build exactly
the tables ``store.tables`` declares; engines carry the SQLite settings the writer relies on."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from switchpoint.config.storage import DEFAULT_URL, ENV_URL
from switchpoint.store import migrate, tables
from switchpoint.store.engine import database_url, make_engine, normalize, redacted

from store_db import db_url, scalar

__all__ = ["db_url"]

TABLES = {"requests", "attempts", "feedback", "usage_totals", "latency_buckets"}


def test_upgrade_builds_every_table_on_an_empty_database_and_is_idempotent(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert TABLES.isdisjoint(inspect(engine).get_table_names())
        assert migrate.upgrade(engine) == migrate.head()
        assert set(inspect(engine).get_table_names()) >= TABLES
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO feedback (created_at, outcome) VALUES (1.0, 'completed')")
        # again, and through a URL: nothing changes, nothing is lost
        assert migrate.upgrade(engine) == migrate.head()
        assert migrate.upgrade(db_url) == migrate.head()
        assert scalar(engine, "SELECT count(*) FROM feedback") == 1
        with engine.connect() as conn:
            assert migrate.current(conn) == migrate.head()
    finally:
        engine.dispose()


def test_the_migrated_schema_is_the_declared_one(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine)  # the ledger's tables as every revision left them
        # Other rooms' tables (governance, responses) are in metadata of their own.
        ours = {"include_name": lambda name, kind, _: kind != "table" or name in tables.metadata.tables}
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts=ours), tables.metadata)
        assert diff == []
        names = {c["name"] for c in inspect(engine).get_columns("requests")}
        assert names == set(tables.REQUEST_COLUMNS)
        indexes = {i["name"] for i in inspect(engine).get_indexes("requests")}
        for cols in ("started_at", "key_id", "team", "task", "session"):
            want = "ix_requests_started_at" if cols == "started_at" else f"ix_requests_{cols}_started_at"
            assert want in indexes
        # every request has a deployment and an alias: no index of their own (each cost every insert)
        assert not {"ix_requests_deployment_started_at", "ix_requests_alias_started_at"} & indexes
    finally:
        engine.dispose()


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'sub' / 'dir' / 'x.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
        assert (tmp_path / "sub" / "dir").is_dir()
    finally:
        engine.dispose()


def test_the_environment_overrides_the_configured_url() -> None:
    assert database_url(None, env={}) == DEFAULT_URL
    assert database_url("sqlite:///a.db", env={}) == "sqlite:///a.db"
    assert database_url("sqlite:///a.db", env={ENV_URL: "postgresql://u@h/db"}) == "postgresql://u@h/db"


def test_postgres_urls_use_psycopg_and_print_without_their_password() -> None:
    assert normalize("postgresql://u:pw@h/db").drivername == "postgresql+psycopg"
    assert normalize("postgres://u:pw@h/db").drivername == "postgresql+psycopg"
    assert "pw" not in redacted("postgresql://u:pw@h/db")


@pytest.mark.parametrize("bad", ["nonsense", "sqlite"])
def test_a_storage_url_that_is_no_url_is_a_config_error(bad: str) -> None:
    from switchpoint.config import parse
    from switchpoint.errors import ConfigError

    with pytest.raises(ConfigError, match=r"storage\.url"):
        parse({"storage": {"url": bad}})


def test_switchpoint_db_upgrade_migrates_the_configured_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from switchpoint.cli import cli

    monkeypatch.delenv(ENV_URL, raising=False)
    db = tmp_path / "from-config.db"
    conf = tmp_path / "gateway.yaml"
    conf.write_text(f"storage: {{url: 'sqlite:///{db}'}}\n")
    runner = CliRunner()
    result = runner.invoke(cli, ["db", "upgrade", "--config", str(conf)])
    assert result.exit_code == 0, result.output
    assert migrate.head() in result.output
    engine = make_engine(f"sqlite:///{db}")
    try:
        assert set(inspect(engine).get_table_names()) >= TABLES
    finally:
        engine.dispose()
    down = runner.invoke(cli, ["db", "upgrade", "--database", "postgresql://postgres:pw@127.0.0.1:1/none"])
    assert down.exit_code == 1
    assert "cannot migrate" in down.output and "pw" not in down.output


def test_the_totals_by_task_keep_older_totals_and_merge_back_on_downgrade(db_url: str) -> None:
    """0010 keys usage_totals by task too: the totals written before it stay, under no task; a
    downgrade sums each key's tasks back into one row."""
    from alembic import command

    from switchpoint.store.migrate import _config

    engine = make_engine(db_url)
    key = "'h:1', 'd-a', 'smart', 200, ''"
    sums = "requests, input_tokens, cached_input_tokens, cache_write_5m_tokens, cache_write_1h_tokens, output_tokens, reasoning_tokens, cost_usd, saved_usd, latency_ms_sum, ttft_ms_sum, ttft_count"
    cols = f"instance, deployment, alias, status, error_kind, {sums}"
    try:
        assert migrate.upgrade(engine, "0009_batch_forward") == "0009_batch_forward"
        with engine.begin() as conn:
            conn.exec_driver_sql(
                f"INSERT INTO usage_totals ({cols}) VALUES ({key}, 2, 100, 40, 0, 0, 10, 0, 0.5, 0.25, 30.0, 0, 0)"
            )
        assert migrate.upgrade(engine) == migrate.head()
        with engine.begin() as conn:
            assert conn.exec_driver_sql("SELECT task, requests FROM usage_totals").all() == [("", 2)]
            conn.exec_driver_sql(
                f"INSERT INTO usage_totals ({cols}, task) VALUES ({key}, 3, 200, 60, 0, 0, 20, 0, 1.0, 0.5, 60.0, 0, 0, 'code')"
            )
        with engine.begin() as conn:
            command.downgrade(_config(conn), "0009_batch_forward")
        with engine.connect() as conn:
            assert migrate.current(conn) == "0009_batch_forward"
            rows = conn.exec_driver_sql(
                "SELECT requests, input_tokens, cached_input_tokens, cost_usd, saved_usd FROM usage_totals"
            ).all()
        assert [tuple(r) for r in rows] == [(5, 300, 100, 1.5, 0.75)]
        assert "task" not in {c["name"] for c in inspect(engine).get_columns("usage_totals")}
        assert migrate.upgrade(engine) == migrate.head()
    finally:
        engine.dispose()


def test_background_responses_columns_upgrade_and_downgrade(db_url: str) -> None:
    """0012 gives stored responses a status (the rows so far: completed), a background flag,
    and a background run's worker and heartbeat; a downgrade drops them and keeps the rows."""
    from alembic import command

    from switchpoint.store.migrate import _config

    engine = make_engine(db_url)
    try:
        assert migrate.upgrade(engine, "0010_task_totals") == "0010_task_totals"
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO responses (id, owner, created_at, model, input_items, response)"
                " VALUES ('resp_1', 'name:m', 1.0, 'fast', '[]', '{}')"
            )
        assert migrate.upgrade(engine) == migrate.head() == "0012_responses_background"
        with engine.connect() as conn:
            row = conn.exec_driver_sql("SELECT status, background, worker, heartbeat_at FROM responses").one()
        assert (row[0], bool(row[1]), row[2], row[3]) == ("completed", False, None, None)
        assert "ix_responses_status" in {i["name"] for i in inspect(engine).get_indexes("responses")}
        with engine.begin() as conn:
            command.downgrade(_config(conn), "0010_task_totals")
        with engine.connect() as conn:
            assert migrate.current(conn) == "0010_task_totals"
            assert conn.exec_driver_sql("SELECT id FROM responses").scalar() == "resp_1"
        columns = {c["name"] for c in inspect(engine).get_columns("responses")}
        assert not {"status", "background", "worker", "heartbeat_at"} & columns
        assert migrate.upgrade(engine) == migrate.head()
    finally:
        engine.dispose()
