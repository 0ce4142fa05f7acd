"""Suites run through an in-process gateway in front of a scripted simulator: the gate's exit
codes, resuming, the registration check and the reports."""

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
from switchpoint.cli import cli
from switchpoint.evals import runner
from switchpoint.evals.checks import VERDICT_SCHEMA, judge_prompt, verdict_of
from switchpoint.evals.client import Outcome
from switchpoint.evals.suite import load
from switchpoint.simulator import create_app as create_simulator
from switchpoint.simulator.behavior import Behavior, SimConfig
from switchpoint.store import evals as store_evals
from switchpoint.store.engine import make_engine

from servers import serve_in_thread

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_order",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}},
                "required": ["order_id"],
            },
        },
    }
]

SUITE: dict[str, Any] = {
    "name": "support",
    "repetitions": 2,
    "concurrency": 3,
    "gate": {"win": "3 of [tool_arg_accuracy, refusal_on_missing, cost_per_session]", "baseline": "base"},
    "cases": [
        {
            "id": "hello",
            "messages": [{"role": "user", "content": "Say hello to the customer"}],
            "checks": [{"contains": "simulated"}, {"regex": r"^\[simulated"}],
        },
        {
            "id": "missing-order",
            "session": "s1",
            "messages": [{"role": "user", "content": "Where is order   a-17 ??"}],
            "tools": TOOLS,
            "tool_results": {"get_order": {"error": "order not found"}},
            "checks": [
                {"tool_call": {"name": "get_order", "match": "schema", "schema": {"required": ["order_id"]}}},
                {"refusal": True},
            ],
        },
        {
            "id": "json",
            "session": "s1",
            "messages": [{"role": "user", "content": "Give the order status"}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "status",
                    "schema": {"type": "object", "properties": {"status": {"enum": ["open", "shipped"]}}},
                },
            },
            "checks": [{"json_schema": {"type": "object", "required": ["status"]}}],
        },
    ],
}


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    cfg = SimConfig(models={"slow-model": Behavior(ttft_ms=30)})
    with serve_in_thread(create_simulator(cfg)) as url:
        yield url


def gateway_doc(sim: str) -> dict[str, Any]:
    def price(x: float) -> dict[str, float]:
        return {"input": x, "output": 4 * x}

    return {
        "providers": {"p": {"family": "openai", "base_url": f"{sim}/openai/v1", "simulated": True}},
        "deployments": {
            "d-base": {
                "provider": "p",
                "model": "base-model",
                "price": price(1.0),
                "capabilities": ["streaming"],
            },
            "d-good": {"provider": "p", "model": "good-model", "price": price(0.1)},
            "d-bad": {"provider": "p", "model": "slow-model", "price": price(10.0)},
        },
        "models": {"base": "d-base", "good": "d-good", "bad": "d-bad"},
    }


@pytest.fixture
def files(sim: str, tmp_path: Path) -> dict[str, Path]:
    gw = tmp_path / "gateway.yaml"
    gw.write_text(yaml.safe_dump(gateway_doc(sim)))
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(SUITE))
    return {"gateway": gw, "suite": suite, "db": tmp_path / "evals.db", "state": tmp_path / "state"}


def _eval(files: dict[str, Path], candidates: str, *extra: str) -> Any:
    args = ["eval", str(files["suite"]), "--candidates", candidates, "--config", str(files["gateway"])]
    args += ["--db", f"sqlite:///{files['db']}", "--state-dir", str(files["state"]), "--no-progress", *extra]
    return CliRunner().invoke(cli, args)


def test_the_gate_passes_a_better_candidate_and_fails_a_worse_one(
    files: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "good.json"
    good = _eval(files, "base,good", "--json", str(out), "--html", str(tmp_path / "r.html"))
    assert good.exit_code == 0, good.output
    report = json.loads(out.read_text())
    base, cand = (c["metrics"] for c in report["candidates"])
    # the baseline's deployment has no tools: the tool case fails there, and only there
    assert base["tool_arg_accuracy"]["value"] == 0.0 and cand["tool_arg_accuracy"]["value"] == 1.0
    assert cand["refusal_on_missing"]["value"] == 1.0 and cand["pass_rate"]["value"] == 1.0
    assert cand["cost_per_session"]["value"] < base["cost_per_session"]["value"]
    assert report["passed"] is True and report["gate"][0]["wins"] == 3
    assert report["candidates"][1]["deployments"] == {"d-good": 6}
    assert cand["p95_ttft"]["value"] is not None and cand["p95_ttft"]["n"] == 6
    html = (tmp_path / "r.html").read_text()
    assert html.count("<svg") == 4 and "unregistered" in html

    bad = _eval(files, "base,bad", "--json", str(out))
    assert bad.exit_code == 1, bad.output
    report = json.loads(out.read_text())
    assert report["passed"] is False and report["gate"][0]["wins"] == 2
    assert "won 2 of 3, 3 needed" in bad.output


def test_a_registration_mismatch_is_flagged_in_every_report(files: dict[str, Path], tmp_path: Path) -> None:
    reg = CliRunner().invoke(
        cli, ["eval", "register", str(files["suite"]), "--db", f"sqlite:///{files['db']}"]
    )
    assert reg.exit_code == 0, reg.output
    out = tmp_path / "r.json"
    first = _eval(files, "base,good", "--json", str(out))
    assert json.loads(out.read_text())["registration"] == "registered"
    assert "changed since registration" not in first.output

    changed = dict(SUITE, gate={**SUITE["gate"], "max_loss": {"p95_ttft": "10%"}})
    files["suite"].write_text(yaml.safe_dump(changed))
    second = _eval(files, "base,good", "--json", str(out), "--html", str(tmp_path / "r.html"))
    assert json.loads(out.read_text())["registration"] == "changed since registration: gate"
    assert "suite changed since registration: gate" in second.output
    assert "changed since registration: gate" in (tmp_path / "r.html").read_text()

    engine = make_engine(f"sqlite:///{files['db']}")
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(store_evals.eval_runs.c.registration).order_by("started_at")).all()
    finally:
        engine.dispose()
    assert [r[0] for r in rows] == ["registered", "changed since registration: gate"]


def test_a_resumed_run_does_only_the_cases_not_finished(files: dict[str, Path]) -> None:
    suite = load(files["suite"])
    cfg = config_mod.load(files["gateway"])
    cands = runner.parse_candidates("base,good", suite)
    path = runner.state_path_for(suite, files["state"])

    async def go() -> tuple[int, int]:
        ran: list[str] = []
        async with runner.in_process(cfg) as target:
            targets = {c.name: target for c in cands}
            results = await runner.run(suite, cands, targets, path, on_result=lambda r: ran.append(r.key))
        return len(results), len(ran)

    assert asyncio.run(go()) == (12, 12)
    lines = path.read_bytes().splitlines()
    # an interruption: the last three results never made it, and the one in flight is torn
    path.write_bytes(b"\n".join(lines[:9]) + b"\n" + lines[9][:20])
    assert asyncio.run(go()) == (12, 3)
    assert asyncio.run(go()) == (12, 0)
    kept = path.read_bytes().splitlines()
    assert kept[:9] == lines[:9] and len(kept) == 13  # the torn line stays, ignored


def test_a_policy_file_is_a_candidate_of_its_own(files: dict[str, Path], sim: str, tmp_path: Path) -> None:
    doc = gateway_doc(sim)
    doc["routing"] = {"default": {"name": "everything", "candidates": ["d-good"]}}
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(doc))
    out = tmp_path / "r.json"
    res = _eval(files, f"base,{policy}", "--json", str(out))
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert report["candidates"][1]["candidate"] == str(policy)
    assert report["candidates"][1]["deployments"] == {"d-good": 6}


def test_a_gateway_over_http_and_a_judge_through_it(gateway: Any, tmp_path: Path) -> None:
    """--url: the gateway served on loopback (master key); the judge's verdict on each case is
    what the judge alias answers for that case's prompt."""
    from gateway_harness import GATEWAY_KEY

    cases = [{"id": f"c{i}", "messages": [{"role": "user", "content": f"hello {i}"}]} for i in range(3)]
    doc = {
        "name": "http",
        "judge": "up-anthropic",
        "rubric": "The answer greets the user.",
        "cases": [{**c, "checks": [{"judge": "rubric"}]} for c in cases],
    }
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(doc))
    state, out = tmp_path / "state", tmp_path / "r.json"
    args = ["eval", str(suite), "--candidates", "up-openai,up-gemini", "--url", gateway.url]
    args += ["--api-key", GATEWAY_KEY, "--db", f"sqlite:///{tmp_path / 'e.db'}", "--state-dir", str(state)]
    res = CliRunner().invoke(cli, [*args, "--json", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert [c["deployments"] for c in report["candidates"]] == [{"d-openai": 3}, {"d-gemini": 3}]
    assert all(c["metrics"]["cost_per_case"]["value"] is None for c in report["candidates"])  # no --config

    parsed = load(suite)
    results = [json.loads(line) for line in next(state.iterdir()).read_text().splitlines()]
    assert len(results) == 6
    schema = {"name": "verdict", "schema": VERDICT_SCHEMA, "strict": True}
    with httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {GATEWAY_KEY}"}) as client:
        for r in results:
            case = next(c for c in parsed.cases if c.id == r["case"])
            messages = judge_prompt(parsed.rubric or "", case, Outcome(text=r["outcome"]["text"]))
            body = {
                "model": "up-anthropic",
                "messages": messages,
                "temperature": 0,
                "response_format": {"type": "json_schema", "json_schema": schema},
            }
            answer = client.post("/v1/chat/completions", json=body).json()["choices"][0]["message"]["content"]
            assert r["checks"][0]["passed"] is (verdict_of(answer) is True)
