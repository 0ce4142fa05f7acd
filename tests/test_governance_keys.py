"""Virtual keys and teams through the admin API, on SQLite and PostgreSQL: create, list, show,
patch, rotate, revoke; the official openai SDK with a virtual key (its ledger row names key and
team, routing matches its team); revoked, expired and rotated-out secrets refused (401 in the
client's dialect); allowed_aliases globs (403); admin access; /v1/me/usage sees only its own
rows; the key cache reads the database once per key; no secret in any log line or column."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import event, inspect, text

from resilience_harness import AUTH, GATEWAY_KEY, UPSTREAM_KEY, Server, chat, document, gateway, provider
from switchpoint.config.storage import ENV_URL
from switchpoint.simulator import SimConfig
from switchpoint.simulator import create_app as create_sim
from switchpoint.store import migrate
from switchpoint.store.engine import make_engine
from switchpoint.store.governance_tables import metadata as governance_metadata

from store_db import db_url, rows

__all__ = ["db_url"]

ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01"}


@pytest.fixture(autouse=True)
def configured_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_URL, raising=False)


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    with Server(create_sim(SimConfig())) as server:
        yield server.url


def _doc(sim: str, url: str, *, master: bool = True) -> dict[str, Any]:
    doc = document(
        {"p": provider(sim, "openai"), "q": provider(sim, "anthropic")},
        {
            "d-gpt": {"provider": "p", "model": "gpt-4o-mini"},
            "d-claude": {"provider": "q", "model": "claude-haiku-4-5"},
        },
        {"fast": "d-gpt", "fast-2": "d-gpt", "claude": "d-claude"},
        storage={"url": url, "flush_interval_ms": 20},
        routing={
            "rules": [
                {"name": "ml-team", "match": {"model": "auto", "team": "ml"}, "candidates": ["d-claude"]},
            ],
            "default": {"name": "everyone-else", "candidates": ["d-gpt"]},
        },
    )
    if not master:
        del doc["server"]
    return doc


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


def _wait_rows(url: str, sql: str, n: int, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    engine = make_engine(url)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            found = rows(engine, sql)
            if len(found) >= n or time.monotonic() > deadline:
                return found
            time.sleep(0.05)
    finally:
        engine.dispose()


def _dump(url: str) -> str:
    """Every value of every table, as text."""
    engine = make_engine(url)
    out: list[str] = []
    try:
        with engine.connect() as conn:
            for table in inspect(engine).get_table_names():
                for row in conn.execute(text(f"SELECT * FROM {table}")):
                    out += [str(v) for v in row]
    finally:
        engine.dispose()
    return "\n".join(out)


def test_the_migration_creates_the_declared_governance_tables(db_url: str) -> None:
    assert migrate.upgrade(db_url) == migrate.head()  # 0003_governance and the revisions after it
    engine = make_engine(db_url)
    try:
        insp = inspect(engine)
        for table in governance_metadata.sorted_tables:
            columns = {c["name"] for c in insp.get_columns(table.name)}
            assert columns == {c.name for c in table.columns}, table.name
        assert {i["name"] for i in insp.get_indexes("api_keys")} >= {
            "ix_api_keys_team_id",
            "ix_api_keys_version",
        }
        assert rows(engine, "SELECT id, version FROM governance_version") == [{"id": 1, "version": 0}]
    finally:
        engine.dispose()


def test_keys_and_teams_lifecycle_through_the_admin_api(sim: str, db_url: str) -> None:
    with gateway(_doc(sim, db_url)) as (url, gw, _), httpx.Client(base_url=url, timeout=30) as c:
        r = c.post(
            "/admin/teams",
            json={"name": "ml", "limits": {"rpm": 600}, "budgets": {"monthly": 50}},
            headers=AUTH,
        )
        assert r.status_code == 201, r.text
        team = r.json()
        assert team["limits"]["rpm"] == 600 and team["budgets"]["monthly"] == 50.0

        body = {
            "name": "svc-a",
            "team": "ml",
            "allowed_aliases": ["fast*", "auto"],
            "limits": {"rpm": 60, "tpm": 10000, "max_parallel": 4},
            "budgets": {"daily": 1.5, "total": 20},
            "priority": "high",
            "tags": ["batch"],
            "metadata": {"owner": "alice"},
            "expires_in": "30d",
        }
        r = c.post("/admin/keys", json=body, headers=AUTH)
        assert r.status_code == 201, r.text
        key = r.json()
        secret = key["secret"]
        assert secret.startswith("sk-sp-") and secret.startswith(key["prefix"] + "-")
        assert key["team"] == {"id": team["id"], "name": "ml"} and key["status"] == "active"
        assert key["limits"] == {"rpm": 60, "tpm": 10000, "max_parallel": 4}
        assert key["budgets"] == {"daily": 1.5, "weekly": None, "monthly": None, "total": 20.0}
        assert abs(key["expires_at"] - (time.time() + 30 * 86400)) < 60

        # listed and shown, never with the secret
        listed = c.get("/admin/keys", headers=AUTH).json()["data"]
        assert [k["id"] for k in listed] == [key["id"]] and "secret" not in listed[0]
        shown = c.get(f"/admin/keys/{key['id']}", headers=AUTH).json()
        assert shown["name"] == "svc-a" and "secret" not in shown and secret not in str(shown)
        assert c.get("/admin/keys", params={"team": "ml"}, headers=AUTH).json()["data"][0]["id"] == key["id"]

        # the key works, and its principal carries everything the gate needs
        r = c.post("/v1/chat/completions", json=chat("hi", "fast"), headers=bearer(secret))
        assert r.status_code == 200, r.text
        assert gw.auth.ring is not None
        p = gw.auth.ring.resolve(secret)
        assert p is not None and p.key_id == key["id"] and p.team is not None and p.team.name == "ml"
        assert p.limits.rpm == 60 and p.budgets.daily == 1.5 and p.team.limits.rpm == 600
        assert p.priority == "high" and p.tags == ("batch",) and p.metadata == {"owner": "alice"}

        # patch: only what is given changes; null clears
        r = c.patch(f"/admin/keys/{key['id']}", json={"limits": {"rpm": 120}, "tags": []}, headers=AUTH)
        assert r.status_code == 200, r.text
        assert r.json()["limits"] == {"rpm": 120, "tpm": None, "max_parallel": None}
        assert r.json()["name"] == "svc-a" and r.json()["tags"] == []
        p = gw.auth.ring.resolve(secret)
        assert p is not None and p.limits.rpm == 120  # applied to this process's cache at once
        r = c.patch(f"/admin/teams/{team['id']}", json={"limits": {"rpm": 300}}, headers=AUTH)
        assert r.status_code == 200 and r.json()["limits"]["rpm"] == 300
        p = gw.auth.ring.resolve(secret)
        assert p is not None and p.team is not None and p.team.limits.rpm == 300
        # out of the team and back
        assert c.patch(f"/admin/keys/{key['id']}", json={"team": None}, headers=AUTH).json()["team"] is None
        p = gw.auth.ring.resolve(secret)
        assert p is not None and p.team is None and p.team_name is None
        assert (
            c.patch(f"/admin/keys/{key['id']}", json={"team": "ml"}, headers=AUTH).json()["team"]["name"]
            == "ml"
        )
        p = gw.auth.ring.resolve(secret)
        assert p is not None and p.team_name == "ml"

        # rotation: the new secret works, the old one during its grace period only
        r = c.post(f"/admin/keys/{key['id']}/rotate", json={"grace_period_s": 60}, headers=AUTH)
        assert r.status_code == 200, r.text
        rotated = r.json()
        new_secret = rotated["secret"]
        assert new_secret != secret and rotated["previous_prefix"] == key["prefix"]
        for s in (new_secret, secret):
            assert (
                c.post("/v1/chat/completions", json=chat("hi", "fast"), headers=bearer(s)).status_code == 200
            )
        r = c.post(f"/admin/keys/{key['id']}/rotate", json={"grace_period_s": 0}, headers=AUTH)
        newest = r.json()["secret"]
        for s in (secret, new_secret):
            r = c.post("/v1/chat/completions", json=chat("hi", "fast"), headers=bearer(s))
            assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
        assert (
            c.post("/v1/chat/completions", json=chat("hi", "fast"), headers=bearer(newest)).status_code == 200
        )

        # revoke: refused at once, in the client's dialect
        r = c.delete(f"/admin/keys/{key['id']}", headers=AUTH)
        assert r.status_code == 200 and r.json()["status"] == "revoked"
        r = c.post("/v1/chat/completions", json=chat("hi", "fast"), headers=bearer(newest))
        assert r.status_code == 401
        assert r.json()["error"] == {
            "message": "This API key has been revoked",
            "type": "authentication_error",
            "param": None,
            "code": "key_revoked",
        }
        r = c.post(
            "/v1/messages",
            json={**chat("hi", "claude"), "max_tokens": 16},
            headers={"x-api-key": newest, **ANTHROPIC_HEADERS},
        )
        assert r.status_code == 401
        assert r.json()["type"] == "error" and r.json()["error"]["type"] == "authentication_error"
        assert c.get("/admin/keys", headers=AUTH).json()["data"] == []
        assert (
            c.get("/admin/keys?include_revoked=true", headers=AUTH).json()["data"][0]["status"] == "revoked"
        )
        assert c.post(f"/admin/keys/{key['id']}/rotate", headers=AUTH).status_code == 400

        # teams: listed, shown by name, not deleted while a live key is in them
        assert [t["name"] for t in c.get("/admin/teams", headers=AUTH).json()["data"]] == ["ml"]
        assert c.get("/admin/teams/ml", headers=AUTH).json()["id"] == team["id"]
        live = c.post("/admin/keys", json={"name": "svc-b", "team": team["id"]}, headers=AUTH).json()
        r = c.delete(f"/admin/teams/{team['id']}", headers=AUTH)
        assert r.status_code == 400 and r.json()["error"]["code"] == "team_in_use"
        c.delete(f"/admin/keys/{live['id']}", headers=AUTH)
        r = c.delete("/admin/teams/ml", headers=AUTH)
        assert r.status_code == 200 and r.json()["deleted"] is True
        assert c.get("/admin/teams/ml", headers=AUTH).status_code == 404


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/admin/keys", {}, "name"),
        ("/admin/keys", {"name": "x", "colour": "red"}, "colour"),
        ("/admin/keys", {"name": "x", "priority": "urgent"}, "priority"),
        ("/admin/keys", {"name": "x", "limits": {"rpm": 0}}, "limits.rpm"),
        ("/admin/keys", {"name": "x", "limits": {"rpm": "many"}}, "limits.rpm"),
        ("/admin/keys", {"name": "x", "budgets": {"daily": -1}}, "budgets.daily"),
        ("/admin/keys", {"name": "x", "team": "nope"}, "team"),
        ("/admin/keys", {"name": "x", "roles": ["root"]}, "roles"),
        ("/admin/keys", {"name": "x", "expires_at": "tomorrow"}, "expires_at"),
        ("/admin/keys", {"name": "x", "expires_at": 1000}, "expires_at"),
        ("/admin/keys", {"name": "x", "expires_in": "-5d"}, "expires_in"),
        ("/admin/keys", {"name": ""}, "name"),
        ("/admin/teams", {}, "name"),
        ("/admin/teams", {"name": "t", "limits": {"tpm": -3}}, "limits.tpm"),
    ],
)
def test_bad_admin_bodies_are_400s_naming_the_field(
    sim: str, tmp_path: Any, path: str, body: dict[str, Any], param: str
) -> None:
    with gateway(_doc(sim, f"sqlite:///{tmp_path / 'g.db'}")) as (url, _, _), httpx.Client(base_url=url) as c:
        r = c.post(path, json=body, headers=AUTH)
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["type"] == "invalid_request_error" and err["param"] == param, err


def test_admin_access_and_malformed_requests(sim: str, tmp_path: Any) -> None:
    with gateway(_doc(sim, f"sqlite:///{tmp_path / 'g.db'}")) as (url, _, _), httpx.Client(base_url=url) as c:
        plain = c.post("/admin/keys", json={"name": "plain"}, headers=AUTH).json()["secret"]
        admin = c.post("/admin/keys", json={"name": "ops", "roles": ["admin"]}, headers=AUTH).json()["secret"]
        assert c.get("/admin/keys").status_code == 401
        r = c.get("/admin/keys", headers=bearer(plain))
        assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error"
        assert c.get("/admin/usage", headers=bearer(plain)).status_code == 403
        # an admin-role key manages keys and reads the ledger's admin views
        r = c.post("/admin/keys", json={"name": "made-by-ops"}, headers=bearer(admin))
        assert r.status_code == 201
        assert c.get("/admin/usage", headers=bearer(admin)).status_code == 200
        assert c.get("/admin/keys/key_nope", headers=AUTH).json()["error"]["code"] == "key_not_found"
        r = c.post("/admin/keys", content=b"{not json", headers=AUTH)
        assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
        r = c.post("/admin/keys", content=b"x" * (70 * 1024), headers=AUTH)
        assert r.status_code == 400
        # a wrong secret with a real key's prefix, and a junk sk-sp- string
        r = c.post("/v1/chat/completions", json=chat("hi", "fast"), headers=bearer(plain[:-4] + "AAAA"))
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        r = c.post("/v1/chat/completions", json=chat("hi", "fast"), headers=bearer("sk-sp-short"))
        assert r.status_code == 401


def test_the_openai_sdk_with_a_virtual_key_books_key_and_team_and_routes_by_team(
    sim: str, db_url: str
) -> None:
    with gateway(_doc(sim, db_url)) as (url, _, _), httpx.Client(base_url=url, timeout=30) as c:
        c.post("/admin/teams", json={"name": "ml"}, headers=AUTH)
        ml = c.post("/admin/keys", json={"name": "svc-ml", "team": "ml"}, headers=AUTH).json()
        solo = c.post("/admin/keys", json={"name": "svc-solo"}, headers=AUTH).json()
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=ml["secret"], max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": "hello"}]
        )
        assert "rule=ml-team" in raw.headers["x-switchpoint-route"]
        assert raw.headers["x-switchpoint-deployment"] == "d-claude"
        assert raw.parse().choices[0].message.content
        solo_client = openai.OpenAI(base_url=f"{url}/v1", api_key=solo["secret"], max_retries=0)
        raw = solo_client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": "hello"}]
        )
        assert "rule=everyone-else" in raw.headers["x-switchpoint-route"]
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key="sk-sp-bogus", max_retries=0).models.list()
        got = _wait_rows(db_url, "SELECT key_id, team, status FROM requests ORDER BY started_at", 2)
        assert got == [
            {"key_id": ml["id"], "team": "ml", "status": 200},
            {"key_id": solo["id"], "team": None, "status": 200},
        ]


def test_allowed_aliases_globs_are_enforced_in_the_clients_dialect(sim: str, tmp_path: Any) -> None:
    with gateway(_doc(sim, f"sqlite:///{tmp_path / 'g.db'}")) as (url, _, _), httpx.Client(base_url=url) as c:
        secret = c.post("/admin/keys", json={"name": "n", "allowed_aliases": ["fast*"]}, headers=AUTH).json()[
            "secret"
        ]
        for model in ("fast", "fast-2"):
            assert (
                c.post("/v1/chat/completions", json=chat("hi", model), headers=bearer(secret)).status_code
                == 200
            )
        for model in ("claude", "d-gpt", "auto"):
            r = c.post("/v1/chat/completions", json=chat("hi", model), headers=bearer(secret))
            assert r.status_code == 403, model
            assert (
                r.json()["error"]["type"] == "permission_error"
                and r.json()["error"]["code"] == "model_not_allowed"
            )
        r = c.post(
            "/v1/messages",
            json={**chat("hi", "claude"), "max_tokens": 16},
            headers={"x-api-key": secret, **ANTHROPIC_HEADERS},
        )
        assert r.status_code == 403
        assert r.json()["type"] == "error" and r.json()["error"]["type"] == "permission_error"


def test_an_expired_key_is_refused(sim: str, tmp_path: Any) -> None:
    with gateway(_doc(sim, f"sqlite:///{tmp_path / 'g.db'}")) as (url, _, _), httpx.Client(base_url=url) as c:
        short = c.post("/admin/keys", json={"name": "short", "expires_in": 1.5}, headers=AUTH).json()
        assert (
            c.post(
                "/v1/chat/completions", json=chat("hi", "fast"), headers=bearer(short["secret"])
            ).status_code
            == 200
        )
        time.sleep(max(0.0, short["expires_at"] - time.time()) + 0.05)
        r = c.post("/v1/chat/completions", json=chat("hi", "fast"), headers=bearer(short["secret"]))
        assert r.status_code == 401 and r.json()["error"]["code"] == "key_expired"
        assert c.get(f"/admin/keys/{short['id']}", headers=AUTH).json()["status"] == "expired"
        # expiry set in the past by a patch: refused too
        other = c.post("/admin/keys", json={"name": "other"}, headers=AUTH).json()
        assert (
            c.post(
                "/v1/chat/completions", json=chat("hi", "fast"), headers=bearer(other["secret"])
            ).status_code
            == 200
        )
        c.patch(f"/admin/keys/{other['id']}", json={"expires_at": time.time() - 1}, headers=AUTH)
        r = c.post("/v1/chat/completions", json=chat("hi", "fast"), headers=bearer(other["secret"]))
        assert r.status_code == 401 and r.json()["error"]["code"] == "key_expired"


def test_me_usage_shows_only_the_callers_own_rows(sim: str, db_url: str) -> None:
    with gateway(_doc(sim, db_url)) as (url, _, _), httpx.Client(base_url=url, timeout=30) as c:
        a = c.post("/admin/keys", json={"name": "a"}, headers=AUTH).json()
        b = c.post("/admin/keys", json={"name": "b"}, headers=AUTH).json()
        for secret, n in ((a["secret"], 3), (b["secret"], 1)):
            for _ in range(n):
                assert (
                    c.post(
                        "/v1/chat/completions", json=chat("hi", "fast"), headers=bearer(secret)
                    ).status_code
                    == 200
                )
        c.post("/v1/chat/completions", json=chat("hi", "fast"), headers=AUTH)
        _wait_rows(db_url, "SELECT request_id FROM requests", 5)
        doc = c.get("/v1/me/usage", params={"group_by": "key"}, headers=bearer(a["secret"])).json()
        assert doc["key"] == {"id": a["id"], "name": "a", "team": None}
        assert doc["totals"]["requests"] == 3 and [d["key"] for d in doc["data"]] == [a["id"]]
        assert c.get("/v1/me/usage", headers=bearer(b["secret"])).json()["totals"]["requests"] == 1
        assert c.get("/v1/me/usage", headers=AUTH).json()["totals"]["requests"] == 1  # the master key's own
        r = c.get("/v1/me/usage", params={"key": b["id"]}, headers=bearer(a["secret"]))
        assert r.status_code == 400 and r.json()["error"]["param"] == "key"
        assert c.get("/v1/me/usage").status_code == 401


def test_a_key_is_read_from_the_database_once_then_served_from_the_cache(sim: str, tmp_path: Any) -> None:
    with (
        gateway(_doc(sim, f"sqlite:///{tmp_path / 'g.db'}")) as (url, gw, _),
        httpx.Client(base_url=url) as c,
    ):
        secret = c.post("/admin/keys", json={"name": "hot"}, headers=AUTH).json()["secret"]
        ring = gw.auth.ring
        assert ring is not None
        lookups: list[str] = []

        def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if "api_keys" in statement:
                lookups.append(statement)

        event.listen(ring.engine, "before_cursor_execute", count)
        try:
            for _ in range(20):
                assert (
                    c.post(
                        "/v1/chat/completions", json=chat("hi", "fast"), headers=bearer(secret)
                    ).status_code
                    == 200
                )
        finally:
            event.remove(ring.engine, "before_cursor_execute", count)
        assert ring.loads == 1 and len(lookups) == 1, lookups  # the first use only
        # the cached secret is still compared: a wrong one with the same prefix is refused
        wrong = secret[:-4] + ("BBBB" if secret.endswith("AAAA") else "AAAA")
        r = c.post("/v1/chat/completions", json=chat("hi", "fast"), headers=bearer(wrong))
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert (
            c.post("/v1/chat/completions", json=chat("hi", "fast"), headers=bearer(secret)).status_code == 200
        )
        # junk with an unknown prefix is read once too, then refused from memory
        junk = "sk-sp-0000000000-" + "A" * 43
        for _ in range(5):
            assert (
                c.post("/v1/chat/completions", json=chat("hi", "fast"), headers=bearer(junk)).status_code
                == 401
            )
        assert ring.loads == 2


def test_a_change_on_one_gateway_reaches_another_on_the_same_database_within_a_second(
    sim: str, db_url: str
) -> None:
    doc = _doc(sim, db_url)
    with (
        gateway(doc) as (url1, _, _),
        gateway(doc) as (url2, _, _),
        httpx.Client(base_url=url1) as c1,
        httpx.Client(base_url=url2) as c2,
    ):
        key = c1.post("/admin/keys", json={"name": "shared"}, headers=AUTH).json()
        assert (
            c2.post(
                "/v1/chat/completions", json=chat("hi", "fast"), headers=bearer(key["secret"])
            ).status_code
            == 200
        )
        c1.delete(f"/admin/keys/{key['id']}", headers=AUTH)
        revoked_at = time.monotonic()
        while True:
            r = c2.post("/v1/chat/completions", json=chat("hi", "fast"), headers=bearer(key["secret"]))
            if r.status_code == 401:
                break
            assert time.monotonic() - revoked_at < 1.0, "still accepted a second after revocation"
            time.sleep(0.02)
        assert r.json()["error"]["code"] == "key_revoked"


def test_an_open_gateway_stays_open_but_honours_virtual_keys(sim: str, tmp_path: Any) -> None:
    with gateway(_doc(sim, f"sqlite:///{tmp_path / 'g.db'}", master=False)) as (url, gw, _):
        assert gw.auth.open
        with httpx.Client(base_url=url) as c:
            assert c.post("/v1/chat/completions", json=chat("hi", "fast")).status_code == 200
            assert (
                c.post(
                    "/v1/chat/completions", json=chat("hi", "fast"), headers=bearer("anything")
                ).status_code
                == 200
            )
            key = c.post("/admin/keys", json={"name": "k", "allowed_aliases": ["claude"]}).json()
            r = c.post("/v1/chat/completions", json=chat("hi", "fast"), headers=bearer(key["secret"]))
            assert r.status_code == 403  # the key's own rules apply
            c.delete(f"/admin/keys/{key['id']}")
            r = c.post("/v1/chat/completions", json=chat("hi", "claude"), headers=bearer(key["secret"]))
            assert r.status_code == 401


def test_no_secret_in_any_log_line_or_database_column(
    sim: str, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets: list[str] = [GATEWAY_KEY, UPSTREAM_KEY]
    with gateway(_doc(sim, db_url)) as (url, _, _), httpx.Client(base_url=url, timeout=30) as c:
        c.post("/admin/teams", json={"name": "ml"}, headers=AUTH)
        key = c.post("/admin/keys", json={"name": "s", "team": "ml"}, headers=AUTH).json()
        secrets.append(key["secret"])
        rotated = c.post(f"/admin/keys/{key['id']}/rotate", headers=AUTH).json()
        secrets.append(rotated["secret"])
        for s in secrets[2:]:
            assert (
                c.post("/v1/chat/completions", json=chat("hi", "fast"), headers=bearer(s)).status_code == 200
            )
            c.post("/v1/chat/completions", json=chat("hi", "nope"), headers=bearer(s))
        c.post("/v1/chat/completions", json=chat("hi", "fast"), headers=bearer(secrets[2][:-2] + "zz"))
        c.delete(f"/admin/keys/{key['id']}", headers=AUTH)
        c.post("/v1/chat/completions", json=chat("hi", "fast"), headers=bearer(secrets[3]))
        _wait_rows(db_url, "SELECT request_id FROM requests", 5)
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records)
    assert caplog.records, "nothing was logged at DEBUG: the check would be empty"
    dumped = _dump(db_url)
    assert key["id"] in dumped and key["prefix"].removeprefix("sk-sp-") in dumped
    for s in secrets:
        assert s not in logged
        assert s not in dumped
        if s.startswith("sk-sp-"):  # nor the part after a virtual key's public prefix
            assert s[len("sk-sp-0123456789-") :] not in dumped


def test_concurrent_first_uses_share_one_read_and_a_key_store_down_is_a_503(sim: str, tmp_path: Any) -> None:
    import asyncio

    from sqlalchemy import create_engine

    with (
        gateway(_doc(sim, f"sqlite:///{tmp_path / 'g.db'}")) as (url, gw, _),
        httpx.Client(base_url=url) as c,
    ):
        ring = gw.auth.ring
        assert ring is not None
        secret = c.post("/admin/keys", json={"name": "burst"}, headers=AUTH).json()["secret"]

        async def burst() -> list[int]:
            async with httpx.AsyncClient(base_url=url, timeout=30) as ac:
                calls = [
                    ac.post("/v1/chat/completions", json=chat("hi", "fast"), headers=bearer(secret))
                    for _ in range(20)
                ]
                return [r.status_code for r in await asyncio.gather(*calls)]

        assert asyncio.run(burst()) == [200] * 20
        assert ring.loads == 1

        other = c.post("/admin/keys", json={"name": "unlucky"}, headers=AUTH).json()["secret"]
        good, ring.engine = ring.engine, create_engine("sqlite:////proc/no-such-dir/keys.db")
        try:
            r = c.post("/v1/chat/completions", json=chat("hi", "fast"), headers=bearer(other))
            assert r.status_code == 503, r.text
            assert r.json()["error"]["type"] == "service_unavailable_error"
            assert r.json()["error"]["code"] == "key_store_unavailable" and r.headers["retry-after"] == "1"
            # a key already in the cache is served without the database
            assert (
                c.post("/v1/chat/completions", json=chat("hi", "fast"), headers=bearer(secret)).status_code
                == 200
            )
        finally:
            ring.engine.dispose()
            ring.engine = good
        assert (
            c.post("/v1/chat/completions", json=chat("hi", "fast"), headers=bearer(other)).status_code == 200
        )
