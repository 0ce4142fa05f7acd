import math
from dataclasses import replace
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


def _extra_rows() -> list[report.Row]:
    """switchpoint passthrough and translate at c64 and c4, and a 2-worker switchpoint."""
    records = [
        _rec("direct", "plain c64", 1, 50000, 1.0, 2.0, 100, 500000),
        _rec("direct", "plain c4", 1, 40000, 0.1, 0.3, 100, 400000),
        _rec("direct", "stream c64", 1, 50000, 1.5, 2.5, 100, 500000),
        _rec("switchpoint", "plain c64", 1, 3000, 20.0, 40.0, 9000, 30000),
        _rec("switchpoint", "plain c4", 1, 2500, 1.5, 3.0, 5000, 20000),
        _rec("switchpoint", "stream c64", 1, 1800, 33.0, 60.0, 9000, 18000),
        _rec("switchpoint-w2", "plain c64", 1, 4800, 12.0, 30.0, 15000, 48000),
        _rec("switchpoint-w2", "stream c64", 1, 1700, 35.0, 70.0, 9500, 17000),
        _rec("switchpoint-w2", "plain c4", 1, 3500, 0.9, 2.0, 6000, 28000),
        # translate plain: 0.33 and 0.275 ms/req against 0.3 and 0.25
        _rec("switchpoint", "translate plain c64", 1, 2800, 22.0, 45.0, 9900, 30000),
        _rec("switchpoint", "translate plain c4", 1, 2300, 1.7, 3.5, 5500, 20000),
        # translate stream: 0.9 ms/req against 0.5
        _rec("switchpoint", "translate stream c64", 1, 1000, 60.0, 90.0, 9000, 10000),
    ]
    ttfb = [
        {
            "target": "switchpoint",
            "scenario": "translate stream c64",
            "ttfb_p50_ms": 9.0,
            "ttfb_p99_ms": 11.0,
            "ttlb_p50_ms": 12.0,
            "errors": 0,
        }
    ]
    scenarios = ["plain c64", "plain c4", "stream c64", "translate plain c64", "translate plain c4"]
    scenarios.append("translate stream c64")
    baselines = {s: s.removeprefix("translate ") for s in scenarios if s.startswith("translate ")}
    idle = {"direct": 1024, "switchpoint": 60 * 1024, "switchpoint-w2": 170 * 1024}
    order = ["direct", "switchpoint", "switchpoint-w2"]
    return report.summarize(records, ttfb, idle, order, scenarios, baselines)


def test_translate_rows_take_added_latency_from_their_passthrough_scenarios_direct() -> None:
    rows = {(r.scenario, r.target): r for r in _extra_rows()}
    tr = rows[("translate plain c4", "switchpoint")]
    assert tr.added_p50_ms == pytest.approx(1.6)  # 1.7 - direct's 0.1 in plain c4
    assert tr.added_p99_ms == pytest.approx(3.2)
    assert (tr.requests, tr.cpu_ms) == (20000, 5500)
    assert tr.cpu_ms_per_req == pytest.approx(0.275)
    assert ("translate plain c4", "direct") not in rows
    w2 = rows[("plain c64", "switchpoint-w2")]
    assert (w2.added_p50_ms, w2.rss_idle_mb) == (11.0, 170.0)
    assert rows[("plain c4", "switchpoint-w2")].added_p50_ms == pytest.approx(0.8)  # 0.9 - 0.1
    assert rows[("translate stream c64", "switchpoint")].ttfb_p50_ms == 9.0
    assert math.isnan(rows[("stream c64", "switchpoint")].ttfb_p50_ms)


def test_translation_checks_pool_cpu_over_connection_counts_per_mode() -> None:
    plain, stream = report.translation_checks(_extra_rows())
    assert plain.scenarios == "plain c64, plain c4"
    assert plain.unit == "CPU ms/req"
    assert plain.measured == pytest.approx(15400 / 50000)
    assert plain.baseline == pytest.approx(14000 / 50000)
    assert plain.ratio == pytest.approx(1.1)
    assert (plain.target, plain.met) == ("≤ 1.5", True)
    assert stream.scenarios == "stream c64"
    assert stream.ratio == pytest.approx(0.9 / 0.5)
    assert stream.met is False
    assert report.translation_checks(_extra_rows(), subject="portkey") == []
    assert report.translation_checks(_rows()) == []


def test_workers_checks_divide_req_s_by_the_one_worker_figure_of_the_same_scenario() -> None:
    plain, stream = report.workers_checks(_extra_rows(), "switchpoint-w2", saturation=64)
    assert (plain.scenarios, plain.unit, plain.measured, plain.baseline) == ("plain c64", "req/s", 4800, 3000)
    assert plain.ratio == pytest.approx(1.6)
    assert (plain.target, plain.met) == ("> 1", True)
    assert stream.ratio == pytest.approx(1700 / 1800)
    assert stream.met is False
    assert report.workers_checks(_extra_rows(), "switchpoint-w4") == []


def test_workers_scaling_is_read_at_saturation_only_when_told() -> None:
    every = report.workers_checks(_extra_rows(), "switchpoint-w2")
    assert [c.scenarios for c in every] == ["plain c64", "plain c4", "stream c64"]
    assert every[1].ratio == pytest.approx(3500 / 2500)
    at64 = report.workers_checks(_extra_rows(), "switchpoint-w2", saturation=64)
    assert [c.scenarios for c in at64] == ["plain c64", "stream c64"]


def test_checks_skip_what_was_not_measured_and_mark_unknown_ratios() -> None:
    rows = _extra_rows()
    assert [c.unit for c in report.checks(rows)] == ["CPU ms/req", "CPU ms/req"]
    assert len(report.checks(rows, workers_target="switchpoint-w2", saturation=64)) == 4
    zero = [replace(r, rps=0.0) if r.target == "switchpoint" else r for r in rows]
    (plain, _) = report.workers_checks(zero, "switchpoint-w2", saturation=64)
    assert math.isnan(plain.ratio)
    assert plain.met is None


def test_checks_table_is_markdown_with_verdicts() -> None:
    text = report.render_checks(report.checks(_extra_rows(), workers_target="switchpoint-w2", saturation=64))
    lines = text.splitlines()
    assert lines[0] == "| check | scenarios | unit | measured | baseline | ratio | target | met |"
    assert lines[1] == "|---|---|---|---:|---:|---:|---:|---:|"
    assert len(lines) == 2 + 4
    cells = [line.strip("| ").split(" | ") for line in lines[2:]]
    assert cells[0] == [
        "translation cost, plain: translate / passthrough",
        "plain c64, plain c4",
        "CPU ms/req",
        "0.308",
        "0.280",
        "1.100",
        "≤ 1.5",
        "yes",
    ]
    assert cells[1][-1] == "**no**"
    assert cells[2][:4] == ["workers scaling: switchpoint-w2 / switchpoint", "plain c64", "req/s", "4,800"]
    assert cells[2][4:] == ["3,000", "1.600", "> 1", "yes"]


def test_ledger_checks_divide_cpu_by_the_ledger_off_target_per_mode() -> None:
    records = [
        _rec("switchpoint", "plain c64", 1, 2000, 11.0, 40.0, 6000, 20000),
        _rec("switchpoint", "stream c64", 1, 1000, 11.0, 40.0, 6000, 10000),
        _rec("switchpoint-ledger", "plain c64", 1, 2000, 11.0, 40.0, 6300, 20000),
        _rec("switchpoint-ledger", "stream c64", 1, 1000, 11.0, 40.0, 7200, 10000),
        _rec("switchpoint-ledger-pg", "plain c64", 1, 2000, 11.0, 40.0, 7000, 20000),
    ]
    names = ["switchpoint", "switchpoint-ledger", "switchpoint-ledger-pg"]
    rows = report.summarize(records, [], {n: 0 for n in names}, names, ["plain c64", "stream c64"])
    plain, stream, pg = report.ledger_checks(rows)
    assert plain.name == "ledger cost, plain: switchpoint-ledger / switchpoint"
    assert (plain.ratio, plain.target, plain.met) == (pytest.approx(1.05), "≤ 1.1", True)
    assert (stream.ratio, stream.met) == (pytest.approx(1.2), False)
    assert (pg.ratio, pg.target, pg.met) == (pytest.approx(7000 / 6000), "reported", None)
    assert report.ledger_checks(_rows()) == []


def test_governance_checks_divide_a_limited_keys_cpu_by_the_master_keys_on_the_same_ledger() -> None:
    records = [
        _rec("switchpoint", "plain c64", 1, 2000, 11.0, 40.0, 5000, 20000),
        _rec("switchpoint-ledger", "plain c64", 1, 2000, 11.0, 40.0, 6000, 20000),
        _rec("switchpoint-ledger", "stream c64", 1, 1000, 11.0, 40.0, 6000, 10000),
        _rec("switchpoint-governed", "plain c64", 1, 2000, 11.0, 40.0, 6600, 20000),
        _rec("switchpoint-governed", "stream c64", 1, 1000, 11.0, 40.0, 7200, 10000),
        _rec("switchpoint-governed-redis", "plain c64", 1, 2000, 11.0, 40.0, 8400, 20000),
    ]
    names = ["switchpoint", "switchpoint-ledger", "switchpoint-governed", "switchpoint-governed-redis"]
    rows = report.summarize(records, [], {n: 0 for n in names}, names, ["plain c64", "stream c64"])
    plain, stream, redis = report.governance_checks(rows)
    assert plain.name == "governance cost, plain: switchpoint-governed / switchpoint-ledger"
    assert (plain.ratio, plain.target, plain.met) == (pytest.approx(1.1), "≤ 1.15", True)
    assert (stream.ratio, stream.met) == (pytest.approx(1.2), False)
    assert redis.name == "governance cost, plain: switchpoint-governed-redis / switchpoint-ledger"
    assert (redis.ratio, redis.target, redis.met) == (pytest.approx(1.4), "reported", None)
    assert [c.name for c in report.checks(rows)][-3:] == [plain.name, stream.name, redis.name]
    assert report.governance_checks(_rows()) == []
