"""Shadow traffic: a rule's `shadow:` copies its answered requests to a candidate alias, after the
answer, without changing it; the copies land in the ledger."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import select
from typer.testing import CliRunner

from switchpoint import config as config_mod
from switchpoint.api.app import create_app
from switchpoint.cli import cli
from switchpoint.errors import ConfigError
from switchpoint.simulator import create_app as create_simulator
from switchpoint.store.engine import make_engine
from switchpoint.store.tables import requests
from test_evals_run import gateway_doc

from servers import serve_in_thread


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    with serve_in_thread(create_simulator()) as url:
        yield url


def _doc(sim: str, sample: float) -> dict[str, Any]:
    doc = gateway_doc(sim)
    doc["models"]["cand"] = "d-bad"
    doc["routing"] = {
        "default": {"name": "main", "candidates": ["d-good"], "shadow": {"alias": "cand", "sample": sample}}
    }
    doc["storage"] = {"store_bodies": True, "flush_interval_ms": 10}
    return doc


def _run(doc: dict[str, Any]) -> list[httpx.Response]:
    async def go() -> list[httpx.Response]:
        app = create_app(config_mod.parse(doc))
        out = []
        async with (
            app.router.lifespan_context(app),  # type: ignore[attr-defined]
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client,
        ):
            for i in range(4):
                body = {
                    "model": "auto",
                    "messages": [{"role": "user", "content": f"question {i}"}],
                    "stream": i % 2 == 1,
                }
                out.append(await client.post("/v1/chat/completions", json=body))
            failed = {"model": "auto", "messages": [{"role": "user", "content": "x [[sim status=400]]"}]}
            out.append(await client.post("/v1/chat/completions", json=failed))
        return out  # the lifespan's end waited for the copies and flushed the ledger

    return asyncio.run(go())


def _rows(url: str) -> list[Any]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            t = requests
            query = select(t.c.request_id, t.c.alias, t.c.deployment, t.c.tags, t.c.stream, t.c.status)
            return list(conn.execute(query.order_by(t.c.started_at)).all())
    finally:
        engine.dispose()


def test_every_answered_request_is_copied_to_the_candidate_after_its_answer(
    sim: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    monkeypatch.setenv("SWITCHPOINT_DATABASE_URL", url)
    replies = _run(_doc(sim, 1.0))
    assert [r.status_code for r in replies] == [200, 200, 200, 200, 400]
    assert all(r.headers["x-switchpoint-deployment"] == "d-good" for r in replies[:4])
    assert "[simulated good-model]" in replies[0].text and "[simulated good-model]" in replies[1].text
    rows = _rows(url)
    originals = {r.request_id: r for r in rows if not r.request_id.startswith("shadow-")}
    shadows = [r for r in rows if r.request_id.startswith("shadow-")]
    assert len(originals) == 5 and len(shadows) == 4  # the failed request is not copied
    for s in shadows:
        original = originals[s.request_id.removeprefix("shadow-")]
        assert original.status == 200 and original.deployment == "d-good"
        assert (s.alias, s.deployment, s.status, bool(s.stream)) == ("cand", "d-bad", 200, False)
        assert "shadow_of" in (s.tags or "") and original.request_id in s.tags

    # judged like an eval: the copies (d-bad, 100 times d-good's price) fail a cost gate
    gate = tmp_path / "gate.yaml"
    gate.write_text(
        yaml.safe_dump(
            {
                "name": "g",
                "cases": [{"id": "x", "messages": [{}]}],
                "gate": {"win": "1 of [cost_per_session]"},
            }
        )
    )
    out = tmp_path / "shadow.json"
    res = CliRunner().invoke(cli, ["eval", "shadow", "--db", url, "--gate", str(gate), "--json", str(out)])
    assert res.exit_code == 1, res.output
    assert "4 live request(s) with a shadow copy" in res.output
    report = json.loads(out.read_text())
    live, copy = report["candidates"]
    assert (live["candidate"], live["deployments"]) == ("live", {"d-good": 4})
    assert (copy["candidate"], copy["deployments"]) == ("shadow", {"d-bad": 4})
    assert copy["metrics"]["cost_per_session"]["value"] > live["metrics"]["cost_per_session"]["value"]
    assert report["gate"][0]["passed"] is False


def test_a_zero_sample_copies_nothing_and_a_bad_shadow_is_refused(
    sim: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    monkeypatch.setenv("SWITCHPOINT_DATABASE_URL", url)
    _run(_doc(sim, 0.0))
    assert len(_rows(url)) == 5 and not any(r.request_id.startswith("shadow-") for r in _rows(url))
    bad = _doc(sim, 1.5)
    bad["routing"]["default"]["shadow"]["alias"] = "nope"
    with pytest.raises(ConfigError) as err:
        config_mod.parse(bad)
    assert "shadow.alias: 'nope' is not an alias" in err.value.message
    assert "shadow.sample: must be between 0 and 1" in err.value.message
