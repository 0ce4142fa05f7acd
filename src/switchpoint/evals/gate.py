"""The gate: a challenger must beat the baseline on K of the named metrics and lose no more than
``max_loss`` allows on any metric it names.

A win is strictly better than the baseline (a tie is no win); a metric without data on either
side is neither a win nor a loss. A loss is relative: (challenger - baseline) / baseline for a
metric where less is better, (baseline - challenger) / baseline for one where more is better.
"""

from __future__ import annotations

import re

import msgspec

from switchpoint.evals.metrics import LOWER_IS_BETTER, CandidateMetrics
from switchpoint.evals.suite import Gate, SuiteError

_WIN = re.compile(r"^\s*(\d+)\s+of\s+\[(.*)\]\s*$")


class Rule(msgspec.Struct, frozen=True, kw_only=True):
    count: int
    of: tuple[str, ...]
    max_loss: dict[str, float]


class MetricVerdict(msgspec.Struct, kw_only=True):
    metric: str
    baseline: float | None
    challenger: float | None
    won: bool
    loss: float | None
    """Relative loss (positive: worse than the baseline)."""
    max_loss: float | None = None
    within: bool = True


class Verdict(msgspec.Struct, kw_only=True):
    candidate: str
    baseline: str
    passed: bool
    wins: int
    needed: int
    metrics: list[MetricVerdict]
    reasons: list[str]


def _fraction(value: str | float, metric: str) -> float:
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            raise SuiteError(f"gate.max_loss.{metric}: not a fraction or a percentage: {value!r}") from None
    return float(value)


def rule(gate: Gate) -> Rule:
    if isinstance(gate.win, str):
        m = _WIN.match(gate.win)
        if m is None:
            raise SuiteError(f"gate.win: expected 'K of [metric, ...]', got {gate.win!r}")
        count, of = int(m.group(1)), tuple(x.strip() for x in m.group(2).split(",") if x.strip())
    else:
        count, of = int(gate.win.get("count", 0)), tuple(gate.win.get("of") or ())
    if not of or not 0 < count <= len(of):
        raise SuiteError("gate.win: K must be between 1 and the number of metrics")
    return Rule(count=count, of=of, max_loss={k: _fraction(v, k) for k, v in gate.max_loss.items()})


def _loss(metric: str, base: float, chal: float) -> float:
    diff = chal - base if metric in LOWER_IS_BETTER else base - chal
    if base == 0:
        return 0.0 if diff == 0 else (float("inf") if diff > 0 else float("-inf"))
    return diff / abs(base)


def judge(r: Rule, baseline: CandidateMetrics, challenger: CandidateMetrics) -> Verdict:
    verdicts: list[MetricVerdict] = []
    reasons: list[str] = []
    for metric in dict.fromkeys([*r.of, *r.max_loss]):
        b = baseline.metrics.get(metric)
        c = challenger.metrics.get(metric)
        if b is None or c is None:
            raise SuiteError(f"gate: unknown metric {metric!r}")
        bound = r.max_loss.get(metric)
        if b.value is None or c.value is None:
            verdicts.append(
                MetricVerdict(metric=metric, baseline=b.value, challenger=c.value, won=False, loss=None)
            )
            continue
        loss = _loss(metric, b.value, c.value)
        within = bound is None or loss <= bound
        if not within:
            reasons.append(f"{metric}: lost {loss:.1%}, more than the {bound:.1%} allowed")
        won = metric in r.of and loss < 0
        verdicts.append(
            MetricVerdict(
                metric=metric,
                baseline=b.value,
                challenger=c.value,
                won=won,
                loss=loss,
                max_loss=bound,
                within=within,
            )
        )
    wins = sum(v.won for v in verdicts)
    if wins < r.count:
        reasons.append(f"won {wins} of {len(r.of)}, {r.count} needed")
    return Verdict(
        candidate=challenger.candidate,
        baseline=baseline.candidate,
        passed=not reasons,
        wins=wins,
        needed=r.count,
        metrics=verdicts,
        reasons=reasons,
    )


def evaluate(gate: Gate, metrics: list[CandidateMetrics]) -> list[Verdict]:
    """One verdict per challenger (every candidate but the baseline)."""
    r = rule(gate)
    names = [m.candidate for m in metrics]
    base_name = gate.baseline or names[0]
    if base_name not in names:
        raise SuiteError(f"gate.baseline: {base_name!r} is not one of the candidates")
    base = metrics[names.index(base_name)]
    return [judge(r, base, m) for m in metrics if m.candidate != base_name]
