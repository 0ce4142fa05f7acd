"""Routing through the running gateway: presets reach the upstream (passthrough and translated),
every answer explains its route, dry runs call no model, the policy reloads safely."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from switchpoint.api.app import create_app
from switchpoint.config import load, parse
from switchpoint.routing import Decision

from gateway_harness import ENV, GATEWAY_KEY, RecordingTransport, e2e_document, validate_sent
from servers import serve_in_thread

OAI = {"authorization": f"Bearer {GATEWAY_KEY}"}
ANT = {"x-api-key": GATEWAY_KEY, "anthropic-version": "2023-06-01"}
SAMPLING = {"temperature": 0.3, "top_p": 0.9, "max_tokens": 77, "stop": ["END"]}


def routing_document(sim: str) -> dict[str, Any]:
    doc = e2e_document(sim)
    doc["routing"] = {
        "rules": [
            {
                "name": "to-openai",
                "match": {"task": "t-openai"},
                "candidates": ["d-openai"],
                "params": SAMPLING,
            },
            {
                "name": "to-anthropic",
                "match": {"task": "t-anthropic"},
                "candidates": ["d-anthropic"],
                "params": SAMPLING,
            },
            {
                "name": "to-gemini",
                "match": {"task": "t-gemini"},
                "candidates": ["d-gemini"],
                "params": SAMPLING,
            },
            {
                "name": "think-anthropic",
                "match": {"task": "t-think"},
                "candidates": ["d-anthropic"],
                "params": {"thinking_budget": 2048, "temperature": 0.2},
            },
            {
                "name": "effort-openai",
                "match": {"task": "t-effort"},
                "candidates": ["d-openai"],
                "params": {"reasoning_effort": "low"},
            },
            {
                "name": "sticky",
                "match": {"task": "t-sticky"},
                "candidates": ["d-openai", "d-gemini", "d-anthropic"],
                "strategy": "weighted",
            },
        ],
        "default": {"candidates": ["d-openai", "d-anthropic"], "strategy": "lowest_cost"},
        "direct_access": ["master"],
    }
    return doc


@pytest.fixture(scope="module")
def routed(simulator_url: str) -> Iterator[Any]:
    transport = RecordingTransport()
    app = create_app(parse(routing_document(simulator_url), env=ENV), transport=transport)

    class Running:
        url: str
        sent = transport.sent
        gw = app.state.gateway

    with serve_in_thread(app) as url:
        Running.url = url
        yield Running


def _post(g: Any, path: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    g.sent.clear()
    with httpx.Client(base_url=g.url, timeout=30) as c:
        return c.post(path, json=body, headers=headers)


def _upstream(g: Any) -> dict[str, Any]:
    assert len(g.sent) == 1, g.sent
    validate_sent(g.sent)
    return dict(json.loads(g.sent[0].body))


def _openai_body(**kw: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": "hi"}], **kw}


def _anthropic_body(**kw: Any) -> dict[str, Any]:
    return {"model": "auto", "max_tokens": 200, "messages": [{"role": "user", "content": "hi"}], **kw}


# --- presets reach the upstream ----------------------------------------------------------------


def test_openai_client_to_openai_upstream_passthrough_gets_presets(routed: Any) -> None:
    r = _post(
        routed,
        "/v1/chat/completions",
        _openai_body(x_vendor_field=1),
        {**OAI, "x-switchpoint-task": "t-openai"},
    )
    assert r.status_code == 200, r.text
    sent = _upstream(routed)
    assert (sent["temperature"], sent["top_p"], sent["max_completion_tokens"], sent["stop"]) == (
        0.3,
        0.9,
        77,
        ["END"],
    )
    assert sent["x_vendor_field"] == 1  # still the client's own body
    route = r.headers["x-switchpoint-route"]
    assert "rule=to-openai" in route and "task=t-openai(declared)" in route and "presets=" in route


def test_openai_client_to_anthropic_upstream_translated_gets_presets(routed: Any) -> None:
    r = _post(routed, "/v1/chat/completions", _openai_body(), {**OAI, "x-switchpoint-task": "t-anthropic"})
    assert r.status_code == 200, r.text
    sent = _upstream(routed)
    assert (sent["temperature"], sent["top_p"], sent["max_tokens"], sent["stop_sequences"]) == (
        0.3,
        0.9,
        77,
        ["END"],
    )


def test_openai_client_to_gemini_upstream_translated_gets_presets(routed: Any) -> None:
    r = _post(routed, "/v1/chat/completions", _openai_body(), {**OAI, "x-switchpoint-task": "t-gemini"})
    assert r.status_code == 200, r.text
    gen = _upstream(routed)["generationConfig"]
    assert (gen["temperature"], gen["topP"], gen["maxOutputTokens"], gen["stopSequences"]) == (
        0.3,
        0.9,
        77,
        ["END"],
    )


def test_anthropic_client_to_anthropic_upstream_passthrough_gets_presets(routed: Any) -> None:
    body = _anthropic_body(metadata={"task": "t-anthropic", "user_id": "u-1"})
    r = _post(routed, "/v1/messages", body, ANT)
    assert r.status_code == 200, r.text
    sent = _upstream(routed)
    assert (sent["temperature"], sent["top_p"], sent["stop_sequences"]) == (0.3, 0.9, ["END"])
    assert sent["max_tokens"] == 200  # the client set it: the preset does not apply
    assert sent["metadata"] == {"user_id": "u-1"}  # routing keys never reach the upstream


def test_anthropic_client_to_openai_upstream_translated_gets_presets(routed: Any) -> None:
    r = _post(routed, "/v1/messages", _anthropic_body(), {**ANT, "x-switchpoint-task": "t-openai"})
    assert r.status_code == 200, r.text
    sent = _upstream(routed)
    assert (sent["temperature"], sent["top_p"], sent["stop"], sent["max_completion_tokens"]) == (
        0.3,
        0.9,
        ["END"],
        200,
    )


def test_thinking_preset_in_anthropic_passthrough(routed: Any) -> None:
    r = _post(
        routed, "/v1/messages", _anthropic_body(max_tokens=4000), {**ANT, "x-switchpoint-task": "t-think"}
    )
    assert r.status_code == 200, r.text
    sent = _upstream(routed)
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert "temperature" not in sent  # the Messages API refuses sampling presets with thinking on


def test_reasoning_effort_preset_in_openai_passthrough(routed: Any) -> None:
    r = _post(routed, "/v1/chat/completions", _openai_body(), {**OAI, "x-switchpoint-task": "t-effort"})
    assert r.status_code == 200, r.text
    assert _upstream(routed)["reasoning_effort"] == "low"


def test_client_parameters_win_over_presets(routed: Any) -> None:
    body = _openai_body(temperature=1.1, max_tokens=5, metadata={"task": "t-openai", "team": "ml"})
    r = _post(routed, "/v1/chat/completions", body, OAI)
    assert r.status_code == 200, r.text
    sent = _upstream(routed)
    assert sent["temperature"] == 1.1 and sent["max_tokens"] == 5 and "max_completion_tokens" not in sent
    assert sent["top_p"] == 0.9  # the client left it unset
    assert sent["metadata"] == {"team": "ml"}


# --- explanations, dry runs, errors ------------------------------------------------------------


def test_route_trace_is_in_the_request_record(routed: Any) -> None:
    r = _post(routed, "/v1/chat/completions", _openai_body(), {**OAI, "x-request-id": "trace-me-1"})
    assert r.status_code == 200, r.text
    assert "rule=default" in r.headers["x-switchpoint-route"]

    with httpx.Client(base_url=routed.url) as c:
        assert c.get("/admin/stats", headers=OAI).status_code == 200  # drains the accounting queue
    record = next(rec for rec, _ in routed.gw.accounting.recent if rec.request_id == "trace-me-1")
    assert record.route is not None and record.route["rule"] == "default"
    assert record.route["candidates"][0]["deployment"] == r.headers["x-switchpoint-deployment"]


def test_the_record_keeps_the_decision_but_not_the_prompt_it_executed(routed: Any) -> None:
    body = _openai_body(metadata={"task": "t-openai"})  # a rule with presets: a new request
    r = _post(routed, "/v1/chat/completions", body, {**OAI, "x-request-id": "trace-me-2"})
    assert r.status_code == 200, r.text
    assert "presets=" in r.headers["x-switchpoint-route"]
    with httpx.Client(base_url=routed.url) as c:
        assert c.get("/admin/stats", headers=OAI).status_code == 200  # drains the accounting queue
    record = next(rec for rec, _ in routed.gw.accounting.recent if rec.request_id == "trace-me-2")
    decision = record.decision
    assert isinstance(decision, Decision) and decision.request is None
    assert record.route is not None and "top_p" in record.route["presets"]


@pytest.mark.parametrize(
    ("body", "query", "headers", "dialect"),
    [
        (_openai_body(), "", {}, "openai"),
        ({**_anthropic_body(), "system": "be brief"}, "", {}, "anthropic"),
        (_anthropic_body(), "?dialect=anthropic", {}, "anthropic"),
        (_anthropic_body(), "", {"anthropic-version": "2023-06-01"}, "anthropic"),
    ],
)
def test_dry_run_explains_without_calling_a_model(
    routed: Any, body: dict[str, Any], query: str, headers: dict[str, str], dialect: str
) -> None:
    r = _post(routed, f"/v1/route{query}", body, {**OAI, **headers, "x-switchpoint-task": "t-anthropic"})
    assert r.status_code == 200, r.text
    assert routed.sent == []  # no upstream call
    doc = r.json()
    assert doc["dialect"] == dialect
    assert (
        doc["route"]["rule"] == "to-anthropic"
        and doc["route"]["candidates"][0]["deployment"] == "d-anthropic"
    )
    assert doc["header"].startswith("model=auto; rule=to-anthropic")


def test_dry_run_needs_a_key_and_reports_bad_requests(routed: Any) -> None:
    assert _post(routed, "/v1/route", _openai_body(), {}).status_code == 401
    bad = _post(routed, "/v1/route", _openai_body(model="nope"), OAI)
    assert bad.status_code == 404 and bad.json()["error"]["code"] == "model_not_found"
    assert _post(routed, "/v1/route?dialect=cobol", _openai_body(), OAI).status_code == 400


def test_budget_refusal_is_a_402_in_each_dialect(routed: Any) -> None:
    h = {"x-switchpoint-max-cost-usd": "0.0000001"}
    r = _post(routed, "/v1/chat/completions", _openai_body(max_tokens=1000), {**OAI, **h})
    assert r.status_code == 402 and "budget" in r.json()["error"]["message"]
    a = _post(routed, "/v1/messages", _anthropic_body(max_tokens=1000), {**ANT, **h})
    assert a.status_code == 402 and a.json()["type"] == "error"
    assert routed.sent == []


def test_bad_routing_header_is_a_400(routed: Any) -> None:
    r = _post(routed, "/v1/chat/completions", _openai_body(), {**OAI, "x-switchpoint-latency-ms": "soon"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "x-switchpoint-latency-ms"


def test_session_affinity_keeps_a_conversation_on_one_deployment(routed: Any) -> None:
    h = {**OAI, "x-switchpoint-task": "t-sticky", "x-switchpoint-session": "conv-42"}
    first = _post(routed, "/v1/chat/completions", _openai_body(), h)
    assert first.status_code == 200, first.text
    served = first.headers["x-switchpoint-deployment"]
    for _ in range(4):
        again = _post(routed, "/v1/chat/completions", _openai_body(), h)
        assert again.headers["x-switchpoint-deployment"] == served
        assert "affinity=kept" in again.headers["x-switchpoint-route"]


def test_models_list_offers_auto(routed: Any) -> None:
    with httpx.Client(base_url=routed.url) as c:
        ids = [m["id"] for m in c.get("/v1/models", headers=OAI).json()["data"]]
    assert ids[0] == "auto" and "up-openai" in ids


# --- reload ------------------------------------------------------------------------------------


def _write(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(doc))


@pytest.fixture
def reloadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, simulator_url: str
) -> Iterator[tuple[Any, Path]]:
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    path = tmp_path / "gw.yaml"
    doc = routing_document(simulator_url)
    _write(path, doc)
    app = create_app(load(path), transport=RecordingTransport())
    yield app, path


async def test_admin_reload_swaps_the_policy_and_rejects_a_bad_one(reloadable: tuple[Any, Path]) -> None:
    app, path = reloadable
    gw = app.state.gateway
    doc = yaml.safe_load(path.read_text())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
        before = await c.post("/v1/route", json=_openai_body(), headers=OAI)
        assert before.json()["route"]["rule"] == "default"
        doc["routing"]["rules"].insert(0, {"name": "new-rule", "candidates": ["d-gemini"]})
        _write(path, doc)
        ok = await c.post("/admin/reload", headers=OAI)
        assert ok.status_code == 200 and ok.json()["rules"] == 7
        # the executor and accounting follow the new config too
        assert gw.executor.resilience is gw.config.resilience
        assert gw.accounting._deployments is gw.config.deployments
        after = await c.post("/v1/route", json=_openai_body(), headers=OAI)
        assert after.json()["route"]["rule"] == "new-rule"

        doc["routing"]["rules"][0]["candidates"] = ["d-nowhere"]
        doc["routing"]["rules"][1]["strategy"] = "fastest"
        _write(path, doc)
        bad = await c.post("/admin/reload", headers=OAI)
        assert bad.status_code == 400
        problems = bad.json()["problems"]
        assert any("$.routing.rules[0].candidates[0]" in p and "d-nowhere" in p for p in problems)
        assert any("$.routing.rules[1]" in p for p in problems)
        still = await c.post("/v1/route", json=_openai_body(), headers=OAI)
        assert still.json()["route"]["rule"] == "new-rule"  # the old policy keeps serving
        assert (await c.post("/admin/reload")).status_code == 401
    assert gw.config.routing is not None


async def test_sighup_reloads_the_config(reloadable: tuple[Any, Path]) -> None:
    app, path = reloadable
    gw = app.state.gateway
    doc = yaml.safe_load(path.read_text())
    doc["routing"]["rules"].insert(0, {"name": "after-hup", "candidates": ["d-gemini"]})
    _write(path, doc)
    async with app.router.lifespan_context(app):
        os.kill(os.getpid(), signal.SIGHUP)
        for _ in range(100):
            if gw.router.policy.rules[0].name == "after-hup":
                break
            await asyncio.sleep(0.05)
        assert gw.router.policy.rules[0].name == "after-hup"
