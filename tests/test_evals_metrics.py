"""Metrics, intervals and the gate on known inputs."""

from __future__ import annotations

import pytest

from switchpoint.evals import gate as gate_mod
from switchpoint.evals.checks import CheckResult
from switchpoint.evals.client import Outcome
from switchpoint.evals.metrics import (
    MIN_BOOTSTRAP,
    CandidateMetrics,
    Stat,
    bootstrap,
    for_candidate,
    percentile,
    wilson,
)
from switchpoint.evals.state import Result
from switchpoint.evals.suite import Gate, SuiteError


def test_wilson_interval_matches_the_textbook_values() -> None:
    s = wilson(8, 10)
    assert s.value == 0.8 and s.n == 10
    assert s.low == pytest.approx(0.4902, abs=1e-4) and s.high == pytest.approx(0.9433, abs=1e-4)
    edge = wilson(0, 5)
    assert edge.value == 0.0 and edge.low == 0.0 and edge.high == pytest.approx(0.4345, abs=1e-4)
    assert wilson(0, 0).value is None


def test_percentiles_interpolate_between_ranks() -> None:
    xs = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    assert percentile(xs, 0.5) == 5.5
    assert percentile(xs, 0.95) == pytest.approx(9.55)
    assert percentile([3.0], 0.95) == 3.0


def test_bootstrap_gives_an_interval_only_from_enough_samples() -> None:
    few = bootstrap([1.0, 2.0], lambda xs: percentile(xs, 0.5))
    assert few.value == 1.5 and few.low is None and few.high is None
    xs = [float(i) for i in range(1, 41)]
    s = bootstrap(xs, lambda v: percentile(v, 0.5))
    assert len(xs) >= MIN_BOOTSTRAP
    assert s.low is not None and s.high is not None
    assert s.low < 20.5 < s.high and s.low > 10 and s.high < 31
    assert bootstrap(xs, lambda v: percentile(v, 0.5)) == s  # seeded: the same report twice


def _result(
    case: str, rep: int, *, ttft: float, cost: float, tool: bool, refusal: bool, session: str
) -> Result:
    return Result(
        suite_hash="h",
        candidate="c",
        case=case,
        rep=rep,
        session=session,
        outcome=Outcome(ttft_s=ttft, latency_s=ttft * 2, cost_usd=cost, deployment="d"),
        checks=[
            CheckResult(label="args", kind="tool_call", passed=tool),
            CheckResult(label="refuses", kind="refusal", passed=refusal),
        ],
    )


def test_candidate_metrics_on_known_results() -> None:
    results = [
        _result("a", 0, ttft=0.1, cost=0.01, tool=True, refusal=True, session="s#0"),
        _result("b", 0, ttft=0.2, cost=0.02, tool=True, refusal=False, session="s#0"),
        _result("a", 1, ttft=0.3, cost=0.03, tool=False, refusal=True, session="s#1"),
        _result("b", 1, ttft=0.4, cost=0.04, tool=True, refusal=True, session="s#1"),
    ]
    m = for_candidate("c", results)
    assert m.metrics["tool_arg_accuracy"].value == 0.75
    assert m.metrics["refusal_on_missing"].value == 0.75
    assert m.metrics["pass_rate"].value == 0.5
    assert m.metrics["p50_ttft"].value == pytest.approx(0.25)
    assert m.metrics["p95_ttft"].value == pytest.approx(0.385)
    assert m.metrics["p95_latency"].value == pytest.approx(0.77)
    assert m.metrics["cost_per_case"].value == pytest.approx(0.025)
    assert m.metrics["cost_per_session"].value == pytest.approx(0.05)  # (0.03 + 0.07) / 2
    assert m.checks["args"].value == 0.75 and m.deployments == {"d": 4}


def _metrics(name: str, **values: float) -> CandidateMetrics:
    return CandidateMetrics(
        candidate=name,
        cases=1,
        errors=0,
        metrics={k: Stat(value=v) for k, v in values.items()},
        checks={},
        deployments={},
    )


GATE = Gate(
    win="3 of [p95_ttft, tool_arg_accuracy, refusal_on_missing, cost_per_session]",
    max_loss={"p95_ttft": "10%"},
)


def test_the_gate_needs_three_wins_and_no_bad_loss() -> None:
    base = _metrics("base", p95_ttft=1.0, tool_arg_accuracy=0.8, refusal_on_missing=0.5, cost_per_session=0.1)
    wins_all = _metrics(
        "a", p95_ttft=0.9, tool_arg_accuracy=0.9, refusal_on_missing=0.6, cost_per_session=0.05
    )
    small_loss = _metrics(
        "b", p95_ttft=1.05, tool_arg_accuracy=0.9, refusal_on_missing=0.6, cost_per_session=0.05
    )
    big_loss = _metrics(
        "c", p95_ttft=1.2, tool_arg_accuracy=0.9, refusal_on_missing=0.6, cost_per_session=0.05
    )
    ties = _metrics("d", p95_ttft=0.9, tool_arg_accuracy=0.8, refusal_on_missing=0.5, cost_per_session=0.05)
    a, b, c, d = gate_mod.evaluate(GATE, [base, wins_all, small_loss, big_loss, ties])
    assert (a.passed, a.wins) == (True, 4)
    assert (b.passed, b.wins) == (True, 3)  # 5% slower is within the 10% allowed
    assert (c.passed, c.wins) == (False, 3)
    assert c.reasons == ["p95_ttft: lost 20.0%, more than the 10.0% allowed"]
    assert (d.passed, d.wins) == (False, 2)  # a tie is no win
    assert d.reasons == ["won 2 of 4, 3 needed"]


def test_gate_rules_are_parsed_or_refused() -> None:
    r = gate_mod.rule(Gate(win={"count": 1, "of": ["cost_per_session"]}, max_loss={"p95_ttft": 0.2}))
    assert r.count == 1 and r.of == ("cost_per_session",) and r.max_loss == {"p95_ttft": 0.2}
    with pytest.raises(SuiteError, match="K of"):
        gate_mod.rule(Gate(win="three of them"))
    with pytest.raises(SuiteError, match="between 1"):
        gate_mod.rule(Gate(win="5 of [p95_ttft]"))
    with pytest.raises(SuiteError, match="unknown metric"):
        gate_mod.evaluate(Gate(win="1 of [speed]"), [_metrics("x", p95_ttft=1), _metrics("y", p95_ttft=1)])


def test_failed_cases_make_no_candidate_cheaper() -> None:
    ok = _result("a", 0, ttft=0.1, cost=0.02, tool=True, refusal=True, session="s#0")
    served = _result("a", 1, ttft=0.1, cost=0.02, tool=True, refusal=True, session="s#1")
    failed = _result("b", 1, ttft=0.1, cost=0.0, tool=False, refusal=False, session="s#1")
    failed.outcome.error, failed.outcome.cost_usd = "400: no tools", None
    m = for_candidate("c", [ok, served, failed])
    assert m.metrics["cost_per_case"].value == pytest.approx(0.02)  # the answered cases only
    assert m.metrics["cost_per_session"].value == pytest.approx(0.02)  # s#1 had a failure: left out
    assert m.metrics["error_rate"].value == pytest.approx(1 / 3) and m.errors == 1
