"""Summaries of raw benchmark records and the markdown tables printed at the end of a run."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from measure import median

PEERS = ("litellm", "portkey")
#: Acceptance bound: translated requests may cost at most this many times a passthrough one.
TRANSLATE_MAX_RATIO = 1.5
TRANSLATE_PREFIX = "translate "


@dataclass(frozen=True)
class Row:
    scenario: str
    target: str
    rounds: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    added_p50_ms: float
    added_p99_ms: float
    cpu_ms_per_req: float
    rss_idle_mb: float
    rss_peak_mb: float
    errors: int
    ttfb_p50_ms: float = math.nan
    ttfb_p99_ms: float = math.nan
    ttlb_p50_ms: float = math.nan
    #: Totals over all rounds (CPU ms/req is their quotient), for ratios pooled over scenarios.
    requests: int = 0
    cpu_ms: float = 0.0


def _med(records: list[dict[str, Any]], key: str) -> float:
    return median([float(r[key]) for r in records])


def summarize(
    records: list[dict[str, Any]],
    ttfb: list[dict[str, Any]],
    idle_rss_kb: dict[str, int],
    order: list[str],
    scenarios: list[str],
    baselines: dict[str, str] | None = None,
) -> list[Row]:
    """One row per scenario x target: medians over rounds; CPU per request over all rounds.

    Added latency is measured against ``direct`` in the same scenario, or in
    ``baselines[scenario]`` when given (a translate scenario has no ``direct`` run of its own:
    the upstream serves its Anthropic bodies exactly as it serves the OpenAI ones).
    """
    rows: list[Row] = []
    for scenario in scenarios:
        base = (baselines or {}).get(scenario, scenario)
        direct = [r for r in records if r["scenario"] == base and r["target"] == "direct"]
        d50 = _med(direct, "p50_ms") if direct else math.nan
        d99 = _med(direct, "p99_ms") if direct else math.nan
        for target in order:
            mine = [r for r in records if r["scenario"] == scenario and r["target"] == target]
            if not mine:
                continue
            requests = sum(int(r["requests"]) for r in mine)
            cpu = sum(float(r["cpu_ms"]) for r in mine)
            p50, p99 = _med(mine, "p50_ms"), _med(mine, "p99_ms")
            extra: dict[str, float] = {}
            tt = [t for t in ttfb if t["scenario"] == scenario and t["target"] == target]
            if tt:
                extra = {
                    "ttfb_p50_ms": _med(tt, "ttfb_p50_ms"),
                    "ttfb_p99_ms": _med(tt, "ttfb_p99_ms"),
                    "ttlb_p50_ms": _med(tt, "ttlb_p50_ms"),
                }
            rows.append(
                Row(
                    scenario=scenario,
                    target=target,
                    rounds=len(mine),
                    rps=_med(mine, "rps"),
                    p50_ms=p50,
                    p90_ms=_med(mine, "p90_ms"),
                    p99_ms=p99,
                    added_p50_ms=p50 - d50 if target != "direct" else math.nan,
                    added_p99_ms=p99 - d99 if target != "direct" else math.nan,
                    cpu_ms_per_req=cpu / requests if requests else math.nan,
                    rss_idle_mb=idle_rss_kb.get(target, 0) / 1024,
                    rss_peak_mb=max(int(r["rss_peak_kb"]) for r in mine) / 1024,
                    errors=sum(sum(int(v) for v in r["errors"].values()) for r in mine)
                    + sum(int(t["errors"]) for t in tt),
                    **extra,
                    requests=requests,
                    cpu_ms=cpu,
                )
            )
    return rows


def fmt(value: float, digits: int = 2) -> str:
    if math.isnan(value):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.{digits}f}"


def _signed(value: float) -> str:
    return "-" if math.isnan(value) else ("+" if value >= 0 else "") + fmt(value)


def _table(header: list[str], body: list[list[str]], left: int = 2) -> str:
    """A markdown table: the first ``left`` columns aligned left, the rest right."""
    align = ["---"] * left + ["---:"] * (len(header) - left)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines)


def render_main(rows: list[Row]) -> str:
    header = [
        "scenario",
        "target",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "added p50 ms",
        "added p99 ms",
        "TTFB p50 ms",
        "TTFB p99 ms",
        "CPU ms/req",
        "RSS idle MB",
        "RSS peak MB",
        "errors",
    ]
    body = [
        [
            r.scenario,
            r.target,
            fmt(r.rps, 1),
            fmt(r.p50_ms),
            fmt(r.p90_ms),
            fmt(r.p99_ms),
            _signed(r.added_p50_ms),
            _signed(r.added_p99_ms),
            fmt(r.ttfb_p50_ms),
            fmt(r.ttfb_p99_ms),
            fmt(r.cpu_ms_per_req, 3),
            fmt(r.rss_idle_mb, 1),
            fmt(r.rss_peak_mb, 1),
            str(r.errors),
        ]
        for r in rows
    ]
    return _table(header, body)


def ratios(rows: list[Row], subject: str = "switchpoint") -> list[list[str]]:
    """Per scenario and peer: subject's CPU per request and req/s divided by the peer's."""
    by = {(r.scenario, r.target): r for r in rows}
    out: list[list[str]] = []
    for scenario in dict.fromkeys(r.scenario for r in rows):
        me = by.get((scenario, subject))
        if me is None:
            continue
        for peer in PEERS:
            other = by.get((scenario, peer))
            if other is None:
                continue
            cpu = me.cpu_ms_per_req / other.cpu_ms_per_req if other.cpu_ms_per_req else math.nan
            rps = me.rps / other.rps if other.rps else math.nan
            out.append([scenario, f"{subject} / {peer}", fmt(cpu, 3), fmt(rps, 3)])
    return out


def render_ratios(rows: list[Row], subject: str = "switchpoint") -> str:
    body = ratios(rows, subject)
    if not body:
        return ""
    return _table(["scenario", "ratio", "CPU ms/req", "req/s"], body)


@dataclass(frozen=True)
class Check:
    """One acceptance figure: ``measured`` / ``baseline`` against a bound."""

    name: str
    scenarios: str
    unit: str
    measured: float
    baseline: float
    ratio: float
    target: str
    #: None when the ratio could not be computed.
    met: bool | None


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan


def _pooled_cpu(rows: list[Row]) -> float:
    requests = sum(r.requests for r in rows)
    return sum(r.cpu_ms for r in rows) / requests if requests else math.nan


def translation_checks(rows: list[Row], subject: str = "switchpoint") -> list[Check]:
    """Per mode (plain, stream): CPU per request of the translate scenarios over the passthrough
    ones with the same loads, both pooled over their connection counts."""
    by = {(r.scenario, r.target): r for r in rows}
    out: list[Check] = []
    for mode in ("plain", "stream"):
        pairs = [
            (r, by[(r.scenario.removeprefix(TRANSLATE_PREFIX), subject)])
            for r in rows
            if r.target == subject
            and r.scenario.startswith(f"{TRANSLATE_PREFIX}{mode} ")
            and (r.scenario.removeprefix(TRANSLATE_PREFIX), subject) in by
        ]
        if pairs:
            out.append(
                _cpu_check(f"translation cost, {mode}: translate / passthrough", pairs, TRANSLATE_MAX_RATIO)
            )
    return out


def _cpu_check(name: str, pairs: list[tuple[Row, Row]], bound: float | None) -> Check:
    """The measured rows' CPU per request over their baselines' (``pairs``), each side pooled,
    against ``bound`` (None: reported, no bound)."""
    measured = _pooled_cpu([t for t, _ in pairs])
    baseline = _pooled_cpu([p for _, p in pairs])
    ratio = _ratio(measured, baseline)
    return Check(
        name=name,
        scenarios=", ".join(p.scenario for _, p in pairs),
        unit="CPU ms/req",
        measured=measured,
        baseline=baseline,
        ratio=ratio,
        target="reported" if bound is None else f"≤ {bound:g}",
        met=None if bound is None or math.isnan(ratio) else ratio <= bound,
    )


def workers_checks(
    rows: list[Row], workers_target: str, subject: str = "switchpoint", saturation: int | None = None
) -> list[Check]:
    """Per scenario the multi-worker target ran (at ``saturation`` connections, when given):
    its req/s over the one-worker target's."""
    by = {(r.scenario, r.target): r for r in rows}
    out: list[Check] = []
    for r in rows:
        one = by.get((r.scenario, subject))
        if r.target != workers_target or one is None:
            continue
        if saturation is not None and not r.scenario.endswith(f" c{saturation}"):
            continue
        ratio = _ratio(r.rps, one.rps)
        out.append(
            Check(
                name=f"workers scaling: {workers_target} / {subject}",
                scenarios=r.scenario,
                unit="req/s",
                measured=r.rps,
                baseline=one.rps,
                ratio=ratio,
                target="> 1",
                met=None if math.isnan(ratio) else ratio > 1,
            )
        )
    return out


#: The ledger on SQLite may cost at most this much CPU per request over the ledger off.
LEDGER_MAX_RATIO = 1.10
#: Ledger targets and their bound (None: reported, no bound).
LEDGER_BOUNDS = {"switchpoint-ledger": LEDGER_MAX_RATIO, "switchpoint-ledger-pg": None}


#: A limited virtual key (RPM, TPM, a budget; memory state) may cost at most this much CPU per
#: request over the master key, the ledger on for both.
GOVERNANCE_MAX_RATIO = 1.15
#: Governed targets and their bound (None: reported), over ``GOVERNANCE_BASELINE``.
GOVERNANCE_BOUNDS = {"switchpoint-governed": GOVERNANCE_MAX_RATIO, "switchpoint-governed-redis": None}
GOVERNANCE_BASELINE = "switchpoint-ledger"


def ledger_checks(rows: list[Row], subject: str = "switchpoint") -> list[Check]:
    """Per mode (plain, stream) and ledger target: its CPU per request over ``subject``'s (the
    ledger off) in the same passthrough scenarios, pooled over their connection counts."""
    return _cost_checks(rows, "ledger cost", LEDGER_BOUNDS, subject)


def governance_checks(rows: list[Row], baseline: str = GOVERNANCE_BASELINE) -> list[Check]:
    """Per mode and governed target: its CPU per request (a limited virtual key) over
    ``baseline``'s (the master key, the same ledger) in the same scenarios, pooled."""
    return _cost_checks(rows, "governance cost", GOVERNANCE_BOUNDS, baseline)


def _cost_checks(rows: list[Row], what: str, bounds: dict[str, float | None], subject: str) -> list[Check]:
    by = {(r.scenario, r.target): r for r in rows}
    out: list[Check] = []
    for target, bound in bounds.items():
        for mode in ("plain", "stream"):
            pairs = [
                (r, by[(r.scenario, subject)])
                for r in rows
                if r.target == target and r.scenario.startswith(f"{mode} ") and (r.scenario, subject) in by
            ]
            if pairs:
                out.append(_cpu_check(f"{what}, {mode}: {target} / {subject}", pairs, bound))
    return out


def checks(
    rows: list[Row],
    workers_target: str | None = None,
    subject: str = "switchpoint",
    saturation: int | None = None,
) -> list[Check]:
    out = translation_checks(rows, subject) + ledger_checks(rows, subject) + governance_checks(rows)
    if workers_target:
        out += workers_checks(rows, workers_target, subject, saturation)
    return out


def render_checks(items: list[Check]) -> str:
    body = [
        [
            c.name,
            c.scenarios,
            c.unit,
            fmt(c.measured, 3 if c.unit.startswith("CPU") else 1),
            fmt(c.baseline, 3 if c.unit.startswith("CPU") else 1),
            fmt(c.ratio, 3),
            c.target,
            "-" if c.met is None else ("yes" if c.met else "**no**"),
        ]
        for c in items
    ]
    header = ["check", "scenarios", "unit", "measured", "baseline", "ratio", "target", "met"]
    return _table(header, body, left=3)


def render_soak(samples: list[tuple[float, int]], after_kb: int) -> str:
    """RSS series as a markdown table, the growth from the first sample to the last, and after-load RSS."""
    lines = ["| t s | RSS MB |", "|---:|---:|"]
    lines += [f"| {t:.0f} | {kb / 1024:.1f} |" for t, kb in samples]
    lines.append("")
    lines.append(f"growth: {growth_pct(samples):+.1f} % (first sample to last)")
    lines.append(f"RSS after load ended: {after_kb / 1024:.1f} MB")
    return "\n".join(lines)


def growth_pct(samples: list[tuple[float, int]]) -> float:
    if len(samples) < 2 or samples[0][1] == 0:
        return math.nan
    return (samples[-1][1] - samples[0][1]) * 100.0 / samples[0][1]
