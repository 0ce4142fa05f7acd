"""``GET /admin/tasks``: cost per completed task, token efficiency and model switch frequency per
task type (alias, deployment), from the ledger's views, with feedback given over HTTP."""

from __future__ import annotations

import httpx
import msgspec
import pytest

from switchpoint import defaults
from switchpoint.api.app import create_app
from switchpoint.config.accounting import DisplayCurrency
from switchpoint.store.engine import make_engine
from switchpoint.store.writer import Writer
from test_ledger_api_queries import T0, req

from servers import serve_in_thread


def _rows() -> list[tuple[object, ...]]:
    # Session s1: turns on d1, d2, d2 (one switch in two turns); s2: d1, d1; r9 alone.
    return [
        req("r1", T0 + 1, session="s1", task="code", deployment="d1", input_tokens=100,
            output_tokens=50, reasoning_tokens=10, cost_usd=0.5),
        req("r2", T0 + 2, session="s1", task="code", deployment="d2", input_tokens=200,
            output_tokens=100, cost_usd=1.0),
        req("r3", T0 + 3, session="s1", task="code", deployment="d2", input_tokens=100,
            status=500, error_kind="upstream_error"),
        req("r4", T0 + 4, session="s2", task="code", deployment="d1", input_tokens=50,
            output_tokens=50, cost_usd=0.25),
        req("r5", T0 + 5, session="s2", task="code", deployment="d1", input_tokens=50,
            output_tokens=50, cost_usd=0.25),
        req("r9", T0 + 9, task="chat", deployment="d1", input_tokens=10, output_tokens=10, cost_usd=0.1),
    ]  # fmt: skip


def test_tasks_report(simulator_url: str, ledger_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHPOINT_DATABASE_URL", ledger_url)
    monkeypatch.delenv("SWITCHPOINT_MASTER_KEY", raising=False)
    engine = make_engine(ledger_url)
    Writer(engine).write(_rows(), [])
    engine.dispose()
    cfg = msgspec.structs.replace(
        defaults.embedded(simulator_url), currency=DisplayCurrency(code="CNY", rate=7.0)
    )
    with serve_in_thread(create_app(cfg)) as url:
        for body in (
            {"task_id": "s1", "outcome": "failed"},
            {"task_id": "s1", "outcome": "completed", "score": 1},  # the latest outcome counts
            {"task_id": "s2", "outcome": "abandoned"},
            {"request_id": "r9", "outcome": "completed"},
        ):
            assert httpx.post(f"{url}/v1/feedback", json=body).status_code == 200
        doc = httpx.get(f"{url}/admin/tasks").json()
        by = httpx.get(f"{url}/admin/tasks?group_by=task,deployment").json()
        bad = httpx.get(f"{url}/admin/tasks?group_by=colour")
        extra = httpx.get(f"{url}/admin/tasks?since=7d")
    rows = {r["task"]: r for r in doc["data"]}
    code = rows["code"]
    assert (code["tasks"], code["completed"]) == (2, 1)
    # all spend on s1 (1.5) and s2 (0.5) over the one that completed
    assert code["cost_per_completed_task_usd"] == pytest.approx(2.0)
    assert code["cost_per_completed_task_cny"] == pytest.approx(14.0)
    # useful: r1 40 + r2 100 + r4 50 + r5 50 (r3 failed); billed 150 + 300 + 100 + 100 + 100
    assert (code["useful_output_tokens"], code["billed_tokens"]) == (240, 750)
    assert code["token_efficiency"] == pytest.approx(240 / 750)
    assert (code["session_turns"], code["model_switches"]) == (3, 1)
    assert code["switch_rate"] == pytest.approx(1 / 3)
    chat = rows["chat"]
    assert (chat["tasks"], chat["completed"], chat["cost_per_completed_task_usd"]) == (1, 1, 0.1)
    assert chat["session_turns"] == 0 and chat["switch_rate"] is None
    pairs = {(r["task"], r["deployment"]): r for r in by["data"]}
    assert pairs[("code", "d2")]["cost_per_completed_task_usd"] == pytest.approx(1.0)  # r2 + r3 of s1
    assert pairs[("code", "d2")]["model_switches"] == 1  # the turn that switched landed on d2
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "group_by"
    assert extra.status_code == 400 and extra.json()["error"]["param"] == "since"
