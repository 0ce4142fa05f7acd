"""Summaries of raw benchmark records and the markdown tables printed at the end of a run."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from measure import median

PEERS = ("litellm", "portkey")


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


def _med(records: list[dict[str, Any]], key: str) -> float:
    return median([float(r[key]) for r in records])


def summarize(
    records: list[dict[str, Any]],
    ttfb: list[dict[str, Any]],
    idle_rss_kb: dict[str, int],
    order: list[str],
    scenarios: list[str],
) -> list[Row]:
    """One row per scenario x target: medians over rounds; CPU per request over all rounds."""
    rows: list[Row] = []
    for scenario in scenarios:
        direct = [r for r in records if r["scenario"] == scenario and r["target"] == "direct"]
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
