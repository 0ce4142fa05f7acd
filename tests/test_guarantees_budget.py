"""Output-token budgets with early stop: a rule's per-request, per-session and per-task budgets
end streams with each dialect's length finish, refuse a spent session or task in the client's
dialect, and leave the early stop in the ledger."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from resilience_harness import GATEWAY_KEY, Server, document, gateway, provider
from switchpoint.config import parse
from switchpoint.config.storage import ENV_URL
from switchpoint.simulator import Behavior, SimConfig
from switchpoint.simulator import create_app as create_sim
from switchpoint.store.engine import make_engine
from switchpoint.tokens import count_text

from store_db import rows

LONG = 60  # the simulator's answers: 60 pieces unless max_tokens cuts them


@pytest.fixture(autouse=True)
def configured_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_URL, raising=False)


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    with Server(create_sim(SimConfig(default=Behavior(output_tokens=LONG)))) as server:
        yield server.url


def _doc(sim: str, db: str, budget: dict[str, Any]) -> dict[str, Any]:
    guarantees = {"output_budget": budget}
    return document(
        {"p": provider(sim, "openai"), "q": provider(sim, "anthropic")},
        {
            "d-gpt": {"provider": "p", "model": "sim-gpt"},
            "d-claude": {"provider": "q", "model": "sim-claude"},
        },
        {"gpt": "d-gpt", "claude": "d-claude"},
        routing={
            "rules": [
                {
                    "name": "claude-agents",
                    "match": {"model": "claude"},
                    "candidates": ["d-claude"],
                    "guarantees": guarantees,
                },
                {
                    "name": "agents",
                    "match": {"model": "gpt"},
                    "candidates": ["d-gpt"],
                    "guarantees": guarantees,
                },
            ]
        },
        storage={"url": db, "flush_interval_ms": 20},
    )


def _requests(db: str) -> list[dict[str, Any]]:
    engine = make_engine(db)
    try:
        return rows(engine, "SELECT * FROM requests ORDER BY started_at")
    finally:
        engine.dispose()


def test_streams_end_at_the_request_budget_with_each_dialects_length_finish(sim: str, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'request.db'}"
    budget = 12
    with (
        gateway(_doc(sim, db, {"request": budget})) as (url, _, _),
        openai.OpenAI(base_url=f"{url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client,
        anthropic.Anthropic(base_url=url, api_key=GATEWAY_KEY, max_retries=0) as claude,
    ):
        chunks = list(
            client.chat.completions.create(
                model="gpt",
                messages=[{"role": "user", "content": "tell me a long story"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        assert finishes == ["length"]
        assert text and count_text(text) <= budget + 8  # cut near the budget, not at LONG pieces
        usage = [c.usage for c in chunks if c.usage is not None]
        assert usage and 0 < usage[-1].completion_tokens <= budget + 8

        with claude.messages.stream(
            model="claude", max_tokens=1000, messages=[{"role": "user", "content": "a long story please"}]
        ) as stream:
            final = stream.get_final_message()
        assert final.stop_reason == "max_tokens"
        assert final.content and final.content[0].type == "text" and final.content[0].text

        events = list(
            client.responses.create(model="gpt", input="one more long story", stream=True)  # type: ignore[call-overload]
        )
        assert events[-1].type == "response.incomplete"
        done = events[-1].response
        assert done.status == "incomplete" and done.incomplete_details.reason == "max_output_tokens"
        assert done.output_text

        plain = client.chat.completions.create(
            model="gpt", messages=[{"role": "user", "content": "and a non-streamed one"}]
        )
        assert plain.choices[0].finish_reason == "length"
        assert plain.usage is not None and plain.usage.completion_tokens == budget
        roomy = client.chat.completions.create(
            model="gpt", max_tokens=5, messages=[{"role": "user", "content": "a short one"}]
        )
        assert roomy.choices[0].finish_reason == "length"  # the client's own limit, not the budget
    got = _requests(db)
    assert [(r["endpoint"], r["status"], r["error_kind"]) for r in got] == [
        ("chat.completions", 200, "output_budget"),
        ("messages", 200, "output_budget"),
        ("responses", 200, "output_budget"),
        ("chat.completions", 200, "output_budget"),
        ("chat.completions", 200, None),
    ]
    assert all(0 < r["output_tokens"] <= budget + 8 for r in got)


def test_a_session_budget_is_spent_across_requests_then_refused_in_the_dialect(
    sim: str, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'session.db'}"
    session = {"x-switchpoint-session": "agent-run-1"}
    with (
        gateway(_doc(sim, db, {"session": 100})) as (url, _, _),
        openai.OpenAI(base_url=f"{url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client,
        anthropic.Anthropic(base_url=url, api_key=GATEWAY_KEY, max_retries=0) as claude,
    ):
        first = client.chat.completions.create(
            model="gpt", messages=[{"role": "user", "content": "step one"}], extra_headers=session
        )
        assert first.choices[0].finish_reason == "stop" and first.usage is not None
        assert first.usage.completion_tokens == LONG
        second = client.chat.completions.create(
            model="gpt",
            messages=[{"role": "user", "content": "step two"}],
            extra_headers=session,
            stream=True,
        )
        finishes = [c.choices[0].finish_reason for c in second if c.choices and c.choices[0].finish_reason]
        assert finishes == ["length"]
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(
                model="gpt", messages=[{"role": "user", "content": "step three"}], extra_headers=session
            )
        assert refused.value.code == "output_budget" or "output budget" in str(refused.value)
        with pytest.raises(anthropic.RateLimitError) as refused_too:
            claude.messages.create(
                model="gpt",  # the same rule, so the same session budget, from the Messages API
                max_tokens=50,
                messages=[{"role": "user", "content": "step four"}],
                extra_headers=session,
            )
        assert "output budget" in str(refused_too.value)
        other = client.chat.completions.create(
            model="gpt",
            messages=[{"role": "user", "content": "another agent"}],
            extra_headers={"x-switchpoint-session": "agent-run-2"},
        )
        assert other.choices[0].finish_reason == "stop"  # each session has its own budget
    got = _requests(db)
    assert [(r["status"], r["error_kind"]) for r in got] == [
        (200, None),
        (200, "output_budget"),
        (429, "output_budget"),
        (429, "output_budget"),
        (200, None),
    ]
    assert got[0]["output_tokens"] + got[1]["output_tokens"] <= 100 + 8


def test_a_task_budget_counts_the_tasks_requests(sim: str, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'task.db'}"
    task = {"x-switchpoint-task": "nightly-refactor"}
    with (
        gateway(_doc(sim, db, {"task": LONG + 10})) as (url, _, _),
        openai.OpenAI(base_url=f"{url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client,
    ):
        one = client.chat.completions.create(
            model="gpt", messages=[{"role": "user", "content": "part one"}], extra_headers=task
        )
        two = client.chat.completions.create(
            model="gpt", messages=[{"role": "user", "content": "part two"}], extra_headers=task
        )
        assert one.choices[0].finish_reason == "stop"
        assert two.choices[0].finish_reason == "length"
        assert two.usage is not None and two.usage.completion_tokens == 10
    assert [r["error_kind"] for r in _requests(db)] == [None, "output_budget"]


def test_budgets_are_checked_up_front() -> None:
    doc = _doc("http://127.0.0.1:9", "sqlite://", {"request": 0})
    with pytest.raises(Exception, match=r"guarantees\.output_budget\.request: must be positive"):
        parse(doc, env={"RES_UPSTREAM_KEY": "k", "RES_GATEWAY_KEY": "g"})
    with pytest.raises(Exception, match=r"give at least one of request, session and task"):
        parse(
            _doc("http://127.0.0.1:9", "sqlite://", {}), env={"RES_UPSTREAM_KEY": "k", "RES_GATEWAY_KEY": "g"}
        )
