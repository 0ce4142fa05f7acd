"""``switchpoint keys create|list|show|revoke|rotate`` and ``switchpoint teams create|list|show``
on the database itself (SQLite and PostgreSQL): a key made by the CLI works against a running
gateway on that database, and the CLI's revocation reaches that gateway within a second."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from resilience_harness import AUTH, Server, chat, document, gateway, provider
from switchpoint.cli import cli
from switchpoint.config.storage import ENV_URL
from switchpoint.simulator import SimConfig
from switchpoint.simulator import create_app as create_sim

from store_db import db_url

__all__ = ["db_url"]

runner = CliRunner()


@pytest.fixture(autouse=True)
def configured_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_URL, raising=False)


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    with Server(create_sim(SimConfig())) as server:
        yield server.url


def run(*args: str) -> Any:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result


def run_json(*args: str) -> Any:
    return json.loads(run(*args, "--json").stdout)


def test_the_cli_manages_keys_and_teams_a_gateway_honours(sim: str, db_url: str) -> None:
    db = ("--database", db_url)
    team = run_json("teams", "create", "ml", "--rpm", "100", "--budget-monthly", "25", *db)
    assert team["name"] == "ml" and team["limits"]["rpm"] == 100 and team["budgets"]["monthly"] == 25.0
    key = run_json(
        "keys", "create", "svc", "--team", "ml", "--alias", "fast*", "--alias", "auto",
        "--rpm", "30", "--budget-daily", "2", "--priority", "low", "--tag", "etl",
        "--expires-in", "7d", *db,
    )  # fmt: skip
    secret = key["secret"]
    assert secret.startswith(key["prefix"] + "-") and key["team"]["name"] == "ml"
    assert key["limits"]["rpm"] == 30 and key["budgets"]["daily"] == 2.0 and key["priority"] == "low"
    assert key["allowed_aliases"] == ["fast*", "auto"] and key["tags"] == ["etl"]

    listed = run("keys", "list", *db).stdout
    assert key["id"][:8] in listed and secret not in listed
    shown = run_json("keys", "show", key["id"], *db)
    assert shown["id"] == key["id"] and "secret" not in shown
    assert [t["name"] for t in run_json("teams", "list", *db)["data"]] == ["ml"]
    assert run_json("teams", "show", "ml", *db)["id"] == team["id"]
    assert "ml" in run("teams", "list", *db).stdout

    doc = document(
        {"p": provider(sim, "openai")},
        {"d-gpt": {"provider": "p", "model": "gpt-4o-mini"}},
        {"fast": "d-gpt"},
        storage={"url": db_url, "flush_interval_ms": 20},
    )
    with gateway(doc) as (url, _, _), httpx.Client(base_url=url) as c:
        bearer = {"authorization": f"Bearer {secret}"}
        assert c.post("/v1/chat/completions", json=chat("hi", "fast"), headers=bearer).status_code == 200
        assert c.get(f"/admin/keys/{key['id']}", headers=AUTH).json()["name"] == "svc"

        rotated = run_json("keys", "rotate", key["id"], "--grace", "30", *db)
        new_bearer = {"authorization": f"Bearer {rotated['secret']}"}
        assert rotated["secret"] != secret and rotated["previous_prefix"] == key["prefix"]
        for h in (new_bearer, bearer):
            assert c.post("/v1/chat/completions", json=chat("hi", "fast"), headers=h).status_code == 200

        revoked = run_json("keys", "revoke", key["id"], *db)
        assert revoked["status"] == "revoked"
        start = time.monotonic()
        while c.post("/v1/chat/completions", json=chat("hi", "fast"), headers=new_bearer).status_code != 401:
            assert time.monotonic() - start < 1.0, "the gateway still accepts a key the CLI revoked"
            time.sleep(0.02)
        assert run("keys", "list", "--revoked", *db).stdout.count("revoked") == 1


def test_cli_errors_exit_non_zero_with_the_reason(db_url: str) -> None:
    db = ("--database", db_url)
    result = runner.invoke(cli, ["keys", "show", "key_nope", *db])
    assert result.exit_code == 1 and "No key 'key_nope'" in result.output
    result = runner.invoke(cli, ["keys", "create", "x", "--priority", "urgent", *db])
    assert result.exit_code == 1 and "priority must be one of high, normal, low" in result.output
    result = runner.invoke(cli, ["keys", "create", "x", "--team", "ghost", *db])
    assert result.exit_code == 1 and "No team 'ghost'" in result.output
    run("teams", "create", "dup", *db)
    result = runner.invoke(cli, ["teams", "create", "dup", *db])
    assert result.exit_code == 1 and "exists already" in result.output


@pytest.mark.redis
def test_a_cli_revocation_is_announced_over_redis(
    sim: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uuid

    import yaml

    from resilience_harness import ENV
    from test_governance_keys_replicas import redis_problem, wait_subscribed

    problem = redis_problem()
    if problem is not None:
        pytest.skip(problem)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    db = f"sqlite:///{tmp_path / 'keys.db'}"
    prefix = f"sp-test-{uuid.uuid4().hex[:10]}:"
    doc = document(
        {"p": provider(sim, "openai")},
        {"d-gpt": {"provider": "p", "model": "gpt-4o-mini"}},
        {"fast": "d-gpt"},
        storage={"url": db, "flush_interval_ms": 20},
        state={"redis_url": "redis://127.0.0.1:6379/0", "prefix": prefix},
    )
    cfg = tmp_path / "switchpoint.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    key = run_json("keys", "create", "svc", "--config", str(cfg))
    bearer = {"authorization": f"Bearer {key['secret']}"}
    with gateway(doc) as (url, gw, _), httpx.Client(base_url=url) as c:
        assert gw.auth.ring is not None and gw.auth.ring.poll_s == 5.0  # with Redis the poll is slow
        assert c.post("/v1/chat/completions", json=chat("hi", "fast"), headers=bearer).status_code == 200
        wait_subscribed(f"{prefix}governance:changes", 1)
        run_json("keys", "revoke", key["id"], "--config", str(cfg))
        start = time.monotonic()
        while c.post("/v1/chat/completions", json=chat("hi", "fast"), headers=bearer).status_code != 401:
            assert time.monotonic() - start < 1.0, "the CLI's revocation did not arrive over Redis"
            time.sleep(0.02)
        assert gw.auth.ring.notices >= 1
