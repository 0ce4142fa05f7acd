"""A deployment goes down and comes back: the breaker opens after the configured number of
failures, traffic moves to the backup, and after the cooldown a half-open probe restores it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from resilience_harness import AUTH, Server, chat, document, gateway, provider, records
from switchpoint.simulator import SimConfig, create_app

COOLDOWN_S = 0.6
THRESHOLD = 3


@pytest.fixture
def sims() -> Iterator[tuple[Server, Server]]:
    with Server(create_app(SimConfig())) as primary, Server(create_app(SimConfig())) as backup:
        yield primary, backup


def _doc(primary: str, backup: str) -> dict[str, Any]:
    return document(
        {"p-primary": provider(primary, "openai"), "p-backup": provider(backup, "anthropic")},
        {
            "d-primary": {
                "provider": "p-primary",
                "model": "sim-main",
                "breaker": {"consecutive_failures": THRESHOLD, "cooldown_s": COOLDOWN_S},
            },
            "d-backup": {"provider": "p-backup", "model": "sim-backup"},
        },
        {"svc": ["d-primary", "d-backup"]},
    )


def _ask(c: httpx.Client, i: int) -> httpx.Response:
    r = c.post("/v1/chat/completions", json=chat(f"request {i}", "svc"), headers=AUTH)
    assert r.status_code == 200, r.text
    return r


def _state(c: httpx.Client) -> dict[str, Any]:
    body = c.get("/admin/breakers", headers=AUTH).json()
    return dict(body["deployments"]["d-primary"])


def _metric(c: httpx.Client, name: str) -> str:
    text = c.get("/metrics").text
    line = next(ln for ln in text.splitlines() if ln.startswith(f'{name}{{deployment="d-primary"}}'))
    return line.rsplit(" ", 1)[1]


def test_breaker_opens_moves_traffic_and_a_probe_restores_it(sims: tuple[Server, Server]) -> None:
    primary, backup = sims
    opened_at = 0.0
    with gateway(_doc(primary.url, backup.url)) as (url, gw, _), httpx.Client(base_url=url, timeout=30) as c:
        for i in range(3):
            assert _ask(c, i).headers["x-switchpoint-deployment"] == "d-primary"
        assert _state(c)["state"] == "closed"
        assert c.get("/admin/breakers").status_code == 401, "the admin view needs the master key"

        primary.stop()  # down: connection refused from now on
        opened_after = None
        for i in range(3, 3 + THRESHOLD + 4):
            r = _ask(c, i)  # the client never notices
            assert r.headers["x-switchpoint-deployment"] == "d-backup"
            if opened_after is None and _state(c)["state"] == "open":
                opened_after = i - 2
                opened_at = time.monotonic()
        assert opened_after == THRESHOLD, "the breaker opens on the configured failure count"
        assert gw.health.snapshot("d-primary").healthy is False
        assert _metric(c, "switchpoint_breaker_state") == "1"
        assert _metric(c, "switchpoint_breaker_opens_total") == "1"

        recs = records(url, gw)[-(THRESHOLD + 4) :]
        tried_primary = [any(a.deployment == "d-primary" for a in r.attempts) for r in recs]
        assert tried_primary == [True] * THRESHOLD + [False] * 4, "after opening, traffic moved"
        for r in recs[:THRESHOLD]:
            first = r.attempts[0]
            assert (first.deployment, first.error) == ("d-primary", "connection")
            assert r.attempts[-1].deployment == "d-backup" and r.attempts[-1].error is None

        primary.start()  # back on the same port
        time.sleep(max(0.0, opened_at + COOLDOWN_S + 0.05 - time.monotonic()))
        assert _state(c)["state"] == "half_open", "cooldown over: the next attempt is a probe"
        assert gw.health.snapshot("d-primary").healthy is True

        r = _ask(c, 100)
        assert r.headers["x-switchpoint-deployment"] == "d-primary", "the probe went to the primary"
        assert _state(c)["state"] == "closed"
        assert _metric(c, "switchpoint_breaker_state") == "0"
        assert _ask(c, 101).headers["x-switchpoint-deployment"] == "d-primary"
