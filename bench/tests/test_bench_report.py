import math
from typing import Any

import pytest
import report


def _rec(
    target: str, scenario: str, rnd: int, rps: float, p50: float, p99: float, cpu_ms: float, requests: int
) -> dict[str, Any]:
    return {
        "round": rnd,
        "target": target,
        "scenario": scenario,
        "requests": requests,
        "rps": rps,
        "p50_ms": p50,
        "p90_ms": p50 * 1.5,
        "p99_ms": p99,
        "cpu_ms": cpu_ms,
        "rss_peak_kb": 1024 * (10 + rnd),
        "errors": {"connect": 0, "read": 0, "write": 0, "status": rnd - 1, "timeout": 0},
    }


RECORDS = [
    _rec("direct", "plain c64", 1, 50000, 1.0, 2.0, 100, 500000),
    _rec("direct", "plain c64", 2, 60000, 3.0, 4.0, 100, 500000),
    _rec("switchpoint", "plain c64", 1, 2000, 11.0, 40.0, 6000, 20000),
    _rec("switchpoint", "plain c64", 2, 3000, 13.0, 44.0, 6000, 30000),
    _rec("portkey", "plain c64", 1, 900, 60.0, 900.0, 20000, 18000),
    _rec("portkey", "plain c64", 2, 1100, 70.0, 1000.0, 24000, 22000),
]
TTFB = [
    {
        "target": "switchpoint",
        "scenario": "plain c64",
        "ttfb_p50_ms": 2.0,
        "ttfb_p99_ms": 5.0,
        "ttlb_p50_ms": 3.0,
        "errors": 1,
    },
]


def _rows() -> list[report.Row]:
    idle = {"direct": 10 * 1024, "switchpoint": 60 * 1024, "portkey": 130 * 1024}
    return report.summarize(RECORDS, TTFB, idle, ["direct", "switchpoint", "portkey"], ["plain c64"])


def test_summary_uses_medians_and_cpu_over_all_requests() -> None:
    rows = {r.target: r for r in _rows()}
    sp = rows["switchpoint"]
    assert sp.rounds == 2
    assert sp.rps == 2500
    assert sp.p50_ms == 12.0
    assert sp.added_p50_ms == pytest.approx(10.0)  # 12 - median(1, 3)
    assert sp.added_p99_ms == pytest.approx(39.0)  # 42 - 3
    assert sp.cpu_ms_per_req == pytest.approx(12000 / 50000)
    assert sp.rss_idle_mb == 60.0
    assert sp.rss_peak_mb == 12.0
    assert sp.errors == 1 + 1  # one status error in round 2, one TTFB error
    assert sp.ttfb_p50_ms == 2.0
    assert math.isnan(rows["direct"].added_p50_ms)
    assert math.isnan(rows["portkey"].ttfb_p50_ms)


def test_ratios_divide_switchpoint_by_each_peer_present() -> None:
    body = report.ratios(_rows())
    assert body == [["plain c64", "switchpoint / portkey", "0.218", "2.500"]]
    assert report.ratios(_rows(), subject="litellm") == []


def test_main_table_is_markdown_with_one_row_per_target() -> None:
    text = report.render_main(_rows())
    lines = text.splitlines()
    assert lines[0].startswith("| scenario | target | req/s |")
    assert lines[1].startswith("|---|---|---:|")
    assert len(lines) == 2 + 3
    assert all(line.count("|") == lines[0].count("|") for line in lines)
    sp = lines[3].split(" | ")
    assert sp[1] == "switchpoint"
    assert "+10.00" in sp
    assert lines[2].split(" | ")[6] == "-"  # direct has no added latency


def test_fmt_scales_digits() -> None:
    assert report.fmt(math.nan) == "-"
    assert report.fmt(12345.6) == "12,346"
    assert report.fmt(123.4) == "123"
    assert report.fmt(1.23456, 3) == "1.235"


def test_soak_growth_and_rendering() -> None:
    samples = [(10.0, 100 * 1024), (20.0, 105 * 1024), (30.0, 110 * 1024)]
    assert report.growth_pct(samples) == pytest.approx(10.0)
    assert math.isnan(report.growth_pct(samples[:1]))
    text = report.render_soak(samples, after_kb=108 * 1024)
    assert "| 30 | 110.0 |" in text
    assert "growth: +10.0 %" in text
    assert "RSS after load ended: 108.0 MB" in text
