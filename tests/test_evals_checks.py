"""Checks on known answers, and suites refused with every problem named."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from switchpoint.evals.checks import run_checks, tool_call_matches, verdict_of
from switchpoint.evals.client import Outcome, ToolCall
from switchpoint.evals.suite import SuiteError, ToolCallCheck, hashes, parse


def _suite(**extra: Any) -> Any:
    doc = {"name": "s", "cases": [{"id": "a", "messages": [{"role": "user", "content": "hi"}]}], **extra}
    return parse(doc)


def _run(checks: list[dict[str, Any]], out: Outcome, **suite: Any) -> list[bool]:
    s = _suite(**suite)
    case = parse(
        {"name": "x", "cases": [{"id": "a", "messages": [{"role": "user"}], "checks": checks}]}
    ).cases[0]
    return [r.passed for r in asyncio.run(run_checks(case, out, s, None))]


def test_text_checks() -> None:
    out = Outcome(text='  {"status": "open"}  ')
    checks = [
        {"exact": '{"status": "open"}'},
        {"contains": "OPEN"},
        {"regex": r'"status":\s*"(open|shipped)"'},
        {"json_schema": {"type": "object", "required": ["status"]}},
        {"json_schema": {"type": "object", "required": ["eta"]}},
        {"regex": "^closed"},
    ]
    assert _run(checks, out) == [True, True, True, True, False, False]


def test_tool_call_matching_exact_subset_and_schema() -> None:
    calls = [ToolCall(name="get_order", arguments={"order_id": "A-17", "verbose": True})]
    assert tool_call_matches(ToolCallCheck(name="get_order", arguments={"order_id": "A-17"}), calls)
    assert not tool_call_matches(
        ToolCallCheck(name="get_order", arguments={"order_id": "A-17"}, match="exact"), calls
    )
    assert tool_call_matches(
        ToolCallCheck(name="get_order", arguments={"order_id": "A-17", "verbose": True}, match="exact"), calls
    )
    schema = {
        "type": "object",
        "properties": {"order_id": {"pattern": "^A-[0-9]+$"}},
        "required": ["order_id"],
    }
    assert tool_call_matches(ToolCallCheck(name="get_order", match="schema", schema=schema), calls)
    bad = [ToolCall(name="get_order", arguments={"order_id": "a 17"})]
    assert not tool_call_matches(ToolCallCheck(name="get_order", match="schema", schema=schema), bad)
    assert not tool_call_matches(ToolCallCheck(name="cancel_order"), calls)
    raw = [ToolCall(name="get_order", arguments="{not json", raw="{not json")]
    assert not tool_call_matches(ToolCallCheck(name="get_order", match="schema", schema=schema), raw)


def test_refusal_expected_or_not_and_a_failed_request_fails_every_check() -> None:
    refusing = Outcome(text="Sorry, order A-17 was not found.")
    inventing = Outcome(text="Order A-17 ships tomorrow.")
    assert _run([{"refusal": True}, {"refusal": False}], refusing) == [True, False]
    assert _run([{"refusal": True}], inventing) == [False]
    assert _run([{"refusal": True}], Outcome(text="NOPE"), refusal_patterns=["^nope$"]) == [True]
    failed = Outcome(text="", error="500: upstream", status=500)
    assert _run([{"refusal": False}, {"regex": ".*"}], failed) == [False, False]


def test_judge_verdicts_are_read_from_json_only() -> None:
    assert verdict_of('{"pass": true, "reason": "ok"}') is True
    assert verdict_of('{"pass": false, "reason": "no"}') is False
    assert verdict_of('{"pass": "yes"}') is None
    assert verdict_of("PASS") is None


def test_a_bad_suite_names_every_problem() -> None:
    doc = {
        "name": "s",
        "cases": [
            {"id": "a", "messages": [], "checks": [{"contains": "x", "regex": "y"}, {"regex": "("}]},
            {"id": "a", "messages": [{"role": "user"}], "checks": [{"judge": "rubric"}]},
            {
                "id": "b",
                "messages": [{"role": "user"}],
                "checks": [{"tool_call": {"name": "t", "match": "schema"}}],
            },
        ],
    }
    with pytest.raises(SuiteError) as err:
        parse(doc, "suite.yaml")
    text = str(err.value)
    for part in (
        "no messages",
        "exactly one of",
        ".regex:",
        "used twice",
        "needs the suite's `judge`",
        "needs a schema",
    ):
        assert part in text
    with pytest.raises(SuiteError, match="unknown field"):
        parse({"name": "s", "cases": [{"id": "a", "messages": [{}], "checks": [{"contain": "x"}]}]})


def test_hashes_follow_cases_rubric_and_gate_separately() -> None:
    base = hashes(_suite())
    assert hashes(_suite()) == base
    assert hashes(_suite(rubric="be kind")).cases == base.cases
    assert hashes(_suite(rubric="be kind")).rubric != base.rubric
    gated = hashes(_suite(gate={"win": "1 of [p95_ttft]"}))
    assert gated.gate != base.gate and gated.suite == base.suite
    case = {"id": "a", "messages": [{"role": "user", "content": "hi!"}]}
    assert hashes(_suite()).cases != hashes(_suite(cases=[case])).cases
