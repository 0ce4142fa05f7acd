"""The checks of a case on its outcome: each passes or fails (a failed request fails them all).

The LLM judge is asked through the gateway, by the suite's judge alias, for a JSON verdict
(``{"pass": bool, "reason": str}``, requested with a JSON schema) on the rubric.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import msgspec

from switchpoint.evals.client import Outcome, ToolCall
from switchpoint.evals.suite import Case, Check, Suite, ToolCallCheck

#: Asks the judge; returns its verdict (or None when it gave none).
Judge = Callable[[str, Case, Outcome], Awaitable[bool | None]]

VERDICT_SCHEMA = {
    "type": "object",
    "properties": {"pass": {"type": "boolean"}, "reason": {"type": "string"}},
    "required": ["pass", "reason"],
    "additionalProperties": False,
}


class CheckResult(msgspec.Struct, kw_only=True):
    label: str
    kind: str
    passed: bool


def _valid(instance: Any, schema: dict[str, Any]) -> bool:
    try:
        jsonschema.validate(instance, schema)
    except jsonschema.ValidationError:
        return False
    return True


def _subset(want: Any, got: Any) -> bool:
    if isinstance(want, dict):
        return isinstance(got, dict) and all(k in got and _subset(v, got[k]) for k, v in want.items())
    return bool(want == got)


def tool_call_matches(check: ToolCallCheck, calls: list[ToolCall]) -> bool:
    """Some call of the answer names the tool and has the right arguments."""
    for call in calls:
        if call.name != check.name:
            continue
        if check.match == "schema":
            assert check.schema is not None
            ok = isinstance(call.arguments, dict) and _valid(call.arguments, check.schema)
        elif check.arguments is None:
            ok = True
        elif check.match == "exact":
            ok = call.arguments == check.arguments
        else:
            ok = _subset(check.arguments, call.arguments)
        if ok:
            return True
    return False


def is_refusal(text: str, patterns: list[re.Pattern[str]]) -> bool:
    return any(p.search(text) for p in patterns)


def _json_valid(text: str, schema: dict[str, Any]) -> bool:
    try:
        doc = json.loads(text)
    except ValueError:
        return False
    return _valid(doc, schema)


def plain(check: Check, out: Outcome, suite: Suite) -> bool:
    """Every check but the judge's."""
    if check.exact is not None:
        return out.text.strip() == check.exact.strip()
    if check.contains is not None:
        return check.contains.lower() in out.text.lower()
    if check.regex is not None:
        return re.search(check.regex, out.text) is not None
    if check.json_schema is not None:
        return _json_valid(out.text, check.json_schema)
    if check.tool_call is not None:
        return tool_call_matches(check.tool_call, out.tool_calls)
    if check.refusal is not None:
        return is_refusal(out.text, suite.refusal_regexes()) == check.refusal
    raise ValueError(f"not a plain check: {check.kind}")


async def run_checks(case: Case, out: Outcome, suite: Suite, judge: Judge | None) -> list[CheckResult]:
    results = []
    for check in case.checks:
        if out.error is not None:
            passed = False
        elif check.judge is not None:
            rubric = (suite.rubric or "") if check.judge in ("", "rubric") else check.judge
            passed = bool(judge is not None and await judge(rubric, case, out))
        else:
            passed = plain(check, out, suite)
        results.append(CheckResult(label=check.label, kind=check.kind, passed=passed))
    return results


def judge_prompt(rubric: str, case: Case, out: Outcome) -> list[dict[str, Any]]:
    transcript = json.dumps(case.messages, ensure_ascii=False)
    calls = json.dumps([msgspec.to_builtins(c) for c in out.tool_calls], ensure_ascii=False)
    return [
        {
            "role": "system",
            "content": "You grade an assistant's answer against a rubric. Reply with a single valid "
            'JSON object: {"pass": true|false, "reason": "<one sentence>"}.',
        },
        {
            "role": "user",
            "content": f"Rubric:\n{rubric}\n\nConversation:\n{transcript}\n\n"
            f"Answer:\n{out.text}\n\nTool calls:\n{calls}",
        },
    ]


def verdict_of(text: str) -> bool | None:
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    value = doc.get("pass") if isinstance(doc, dict) else None
    return value if isinstance(value, bool) else None
