"""Replay: logged requests re-routed through a candidate policy, without calling models."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import insert
from typer.testing import CliRunner

from switchpoint import config as config_mod
from switchpoint.api.app import create_app
from switchpoint.cli import cli
from switchpoint.evals.replay import replay
from switchpoint.simulator import create_app as create_simulator
from switchpoint.store import migrate
from switchpoint.store.engine import make_engine
from switchpoint.store.evals import logged_requests
from switchpoint.store.tables import requests
from test_evals_run import TOOLS, gateway_doc

from servers import serve_in_thread


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    with serve_in_thread(create_simulator()) as url:
        yield url


def _policy(sim: str, tmp_path: Path, bot: list[str]) -> Path:
    """The candidate policy: ``bot`` served by these deployments, in priority order."""
    doc = gateway_doc(sim)
    doc["models"]["bot"] = bot
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def logged(sim: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A ledger with six requests logged with their bodies (three with tools), all on d-good."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    monkeypatch.setenv("SWITCHPOINT_DATABASE_URL", url)
    doc = gateway_doc(sim)
    doc["models"]["bot"] = ["d-good"]
    doc["storage"] = {"store_bodies": True, "flush_interval_ms": 10}
    cfg = config_mod.parse(doc)

    async def traffic() -> None:
        app = create_app(cfg)
        async with (
            app.router.lifespan_context(app),  # type: ignore[attr-defined]
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client,
        ):
            for i in range(6):
                body: dict[str, Any] = {"model": "bot", "messages": [{"role": "user", "content": f"q {i}"}]}
                if i % 2:
                    body["tools"] = TOOLS
                assert (await client.post("/v1/chat/completions", json=body)).status_code == 200

    asyncio.run(traffic())  # the gateway's shutdown flushes its ledger
    return url


def test_requests_logged_with_their_bodies_are_replayed_on_them(
    logged: str, sim: str, tmp_path: Path
) -> None:
    url = logged
    engine = make_engine(url)
    try:
        rows = logged_requests(engine, since=0)
    finally:
        engine.dispose()
    assert len(rows) == 6 and all(r.request_body for r in rows)
    # d-base first, but it cannot call tools: only the requests without tools move to it
    rep = replay(rows, config_mod.load(_policy(sim, tmp_path, ["d-base", "d-good"])))
    assert rep.from_bodies == 6 and rep.unroutable == 0
    moves = {(t.logged, t.replayed): t.requests for t in rep.transitions}
    assert moves == {("d-good", "d-good"): 3, ("d-good", "d-base"): 3}
    assert rep.changed == 3
    assert rep.logged_usd == pytest.approx(sum(r.cost_usd or 0 for r in rows))
    assert rep.replayed_usd > rep.logged_usd  # d-base costs 10 times d-good


def _row(i: int, now: float) -> dict[str, Any]:
    return {
        "request_id": uuid.uuid4().hex,
        "started_at": now - 3600 + i,
        "instance": "test",
        "dialect": "openai",
        "endpoint": "chat.completions",
        "alias": "bot",
        "deployment": "d-base",
        "status": 200,
        "stream": False,
        "input_tokens": 1000,
        "output_tokens": 100,
        "cost_usd": 1000 * 1.0 / 1e6 + 100 * 4.0 / 1e6,
    }


def test_a_thousand_logged_requests_replayed_from_the_command_line(sim: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    now = time.time()
    try:
        with engine.begin() as conn:
            conn.execute(insert(requests), [_row(i, now) for i in range(1000)])
            old = {**_row(0, now), "started_at": now - 30 * 86400}  # outside --since
            conn.execute(insert(requests), [old])
    finally:
        engine.dispose()
    out = tmp_path / "replay.json"
    args = [
        "replay",
        "--since",
        "7d",
        "--policy",
        str(_policy(sim, tmp_path, ["d-bad"])),
        "--db",
        url,
        "--json",
        str(out),
    ]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    rep = json.loads(out.read_text())
    assert rep["requests"] == 1000 and rep["from_bodies"] == 0
    assert rep["changed"] == 1000
    assert rep["logged_usd"] == pytest.approx(1000 * 0.0014)
    assert rep["replayed_usd"] == pytest.approx(1000 * (1000 * 10.0 + 100 * 40.0) / 1e6)
    text = " ".join(res.output.split())
    assert "1000 would go elsewhere (100.0%)" in text and "(+12.600000 USD)" in text


def _count(url: str) -> int:
    engine = make_engine(url)
    try:
        return len(logged_requests(engine, since=0))
    finally:
        engine.dispose()


def test_execute_sends_the_stored_bodies_through_the_candidate_and_gates_it(
    logged: str, sim: str, tmp_path: Path
) -> None:
    suite = tmp_path / "gate.yaml"
    gate = {"win": "1 of [cost_per_session]"}
    suite.write_text(yaml.safe_dump({"name": "g", "cases": [{"id": "x", "messages": [{}]}], "gate": gate}))
    policy = _policy(sim, tmp_path, ["d-base", "d-good"])
    args = ["replay", "--execute", "--policy", str(policy), "--db", logged, "--gate", str(suite)]
    res = CliRunner().invoke(cli, [*args, "--state-dir", str(tmp_path / "state")])
    text = " ".join(res.output.split())
    # the three requests without tools now go to d-base, ten times d-good's price: no cost win
    assert res.exit_code == 1, res.output
    assert "executed 6 request(s) with a stored Chat Completions body (0 without)" in text
    assert "replayed fails against logged (0 wins of 1 needed)" in text
    assert _count(logged) == 6  # the replayed requests are not logged as traffic
