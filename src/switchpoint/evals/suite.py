"""The suite file (YAML): cases, their checks, the judge's rubric and the gate; and its hashes.

A suite's identity is three hashes: of its cases (messages, tools, tool results, checks), of its
rubric (the rubric text and the judge alias) and of its gate. ``switchpoint eval register``
stores them before any run; a run compares them with the registration (see ``registry``).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

#: Answers that count as a refusal when the suite names no patterns of its own.
DEFAULT_REFUSAL_PATTERNS = (
    r"\bnot found\b",
    r"\bno (such )?(record|order|account|entry)\b",
    r"\bdoes(n't| not) exist\b",
    r"\b(can(no|')t|could(n't| not)|unable to) (find|locate)\b",
    r"\bI (can(no|')t|won't|am unable to)\b",
)


class SuiteError(ValueError):
    """A suite file that cannot be run, with every problem found."""


class ToolCallCheck(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The answer calls ``name``; its arguments equal ``arguments`` (``exact``), contain them
    (``subset``), or are valid against ``schema`` (``schema``)."""

    name: str
    arguments: dict[str, Any] | None = None
    match: Literal["exact", "subset", "schema"] = "subset"
    schema: dict[str, Any] | None = None


class Check(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """One check on a case's final answer; exactly one kind is set."""

    name: str | None = None
    exact: str | None = None
    contains: str | None = None
    regex: str | None = None
    json_schema: dict[str, Any] | None = None
    tool_call: ToolCallCheck | None = None
    refusal: bool | None = None
    judge: str | None = None
    """The rubric for this case; ``rubric`` (or empty) means the suite's rubric."""

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, k) is not None)

    @property
    def label(self) -> str:
        return self.name or self.kind


KINDS = ("exact", "contains", "regex", "json_schema", "tool_call", "refusal", "judge")


class Case(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    id: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    tool_results: dict[str, Any] | None = None
    """Tool name → its result; a call to one of these tools is answered with it and the
    conversation goes on (up to ``max_turns``); checks then apply to the last answer."""
    response_format: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    """More request fields (``max_tokens``, ``temperature`` …) for this case."""
    model: str | None = None
    """The model a routing-policy candidate is asked for in this case (default: the suite's)."""
    session: str | None = None
    """Cases of one session add up to the session's cost (default: each case is a session)."""
    metadata: dict[str, Any] | None = None
    checks: list[Check] = msgspec.field(default_factory=list)


class Gate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    win: str | dict[str, Any]
    """``"3 of [p95_ttft, tool_arg_accuracy, refusal_on_missing, cost_per_session]"``, or
    ``{count: 3, of: [...]}``."""
    max_loss: dict[str, str | float] = msgspec.field(default_factory=dict)
    """Metric → the most a challenger may lose on it (``10%`` or ``0.1``, relative)."""
    baseline: str | None = None
    """The candidate the others are compared with (default: the first one)."""


class Suite(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    cases: list[Case]
    model: str = "auto"
    """The model a routing-policy candidate is asked for."""
    judge: str | None = None
    """The alias that runs LLM-judge checks (through the gateway)."""
    rubric: str | None = None
    refusal_patterns: list[str] | None = None
    repetitions: int = 1
    concurrency: int = 4
    max_turns: int = 4
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    gate: Gate | None = None

    def refusal_regexes(self) -> list[re.Pattern[str]]:
        return [re.compile(p, re.I) for p in self.refusal_patterns or DEFAULT_REFUSAL_PATTERNS]


class Hashes(msgspec.Struct, frozen=True, kw_only=True):
    cases: str
    rubric: str
    gate: str

    @property
    def suite(self) -> str:
        """The state file's key: what the results depend on (cases and rubric)."""
        return _digest([self.cases, self.rubric])


def _digest(value: Any) -> str:
    return hashlib.sha256(msgspec.json.encode(value, order="sorted")).hexdigest()


def hashes(suite: Suite) -> Hashes:
    return Hashes(
        cases=_digest(msgspec.to_builtins(suite.cases)),
        rubric=_digest([suite.rubric, suite.judge]),
        gate=_digest(msgspec.to_builtins(suite.gate)),
    )


def _problems(suite: Suite) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    if suite.repetitions < 1 or suite.concurrency < 1 or suite.max_turns < 1:
        out.append("repetitions, concurrency and max_turns must be at least 1")
    for i, case in enumerate(suite.cases):
        at = f"cases[{i}] ({case.id})"
        if case.id in seen:
            out.append(f"{at}: the id is used twice")
        seen.add(case.id)
        if not case.messages:
            out.append(f"{at}: no messages")
        for j, check in enumerate(case.checks):
            kinds = [k for k in KINDS if getattr(check, k) is not None]
            if len(kinds) != 1:
                out.append(f"{at}.checks[{j}]: exactly one of {', '.join(KINDS)} must be set")
            if check.regex is not None:
                try:
                    re.compile(check.regex)
                except re.error as exc:
                    out.append(f"{at}.checks[{j}].regex: {exc}")
            tc = check.tool_call
            if tc is not None and tc.match == "schema" and tc.schema is None:
                out.append(f"{at}.checks[{j}].tool_call: match 'schema' needs a schema")
            if check.judge is not None and suite.judge is None:
                out.append(f"{at}.checks[{j}]: a judge check needs the suite's `judge` alias")
            if check.judge in ("", "rubric") and not suite.rubric:
                out.append(f"{at}.checks[{j}]: the judge check uses the suite's rubric, and there is none")
    return out


def parse(doc: Any, source: str = "<suite>") -> Suite:
    try:
        suite = msgspec.convert(doc, Suite)
    except msgspec.ValidationError as exc:
        raise SuiteError(f"{source}: {exc}") from None
    problems = _problems(suite)
    if problems:
        raise SuiteError(f"{source}:\n  " + "\n  ".join(problems))
    return suite


def load(path: str | Path) -> Suite:
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SuiteError(f"{path}: {exc}") from None
    return parse(doc, str(path))
