"""Prices right to the cent: a table of costs computed by hand, per family and token class.

Every expected figure below is a literal, worked out by hand from the bundled catalog's list
prices (USD per million tokens) with the arithmetic in the comment beside it; the same table is
in docs/accounting.md. The rates come from resolving real deployments against the catalog, so
the catalog, the config's resolution and ``cost_breakdown`` are all under test.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from switchpoint import catalog
from switchpoint.accounting import Accounting, Booked
from switchpoint.canonical import Usage
from switchpoint.config import Config, Price, parse
from switchpoint.pricing import Cost, cost_breakdown, cost_usd, rates_for
from switchpoint.records import Attempt, RequestRecord

VERSION = catalog.bundled().version


def _config(deployments: dict[str, Any]) -> Config:
    return parse(
        {
            "providers": {
                "o": {"family": "openai", "base_url": "http://127.0.0.1:1/v1"},
                "a": {"family": "anthropic", "base_url": "http://127.0.0.1:1"},
                "g": {"family": "gemini", "base_url": "http://127.0.0.1:1/v1beta"},
            },
            "deployments": deployments,
        }
    )


CONFIG = _config(
    {
        "gpt": {"provider": "o", "model": "gpt-5.4"},
        "claude": {"provider": "a", "model": "claude-sonnet-4-5-20250929"},
        "gemini": {"provider": "g", "model": "gemini-2.5-pro"},
        "haiku": {"provider": "a", "model": "claude-haiku-4-5"},
    }
)


def _price(name: str) -> Price:
    price = CONFIG.deployments[name].price
    assert price is not None
    return price


# (deployment, case, usage, batch, expected cost by class, expected total)
TABLE: list[tuple[str, str, Usage, bool, Cost, float]] = [
    # --- OpenAI gpt-5.4: input 2.50, cached 0.25, output 15.00 (reasoning = output);
    #     past 272K prompt tokens: input 5.00, cached 0.50, output 22.50; batch -50 %.
    (
        "gpt",
        "plain",
        Usage(input_tokens=10_000, output_tokens=2_000),
        False,
        # 10,000 x 2.50 / 1M = 0.025; 2,000 x 15 / 1M = 0.03
        Cost(input=0.025, output=0.03),
        0.055,
    ),
    (
        "gpt",
        "cached read",
        Usage(input_tokens=10_000, cached_input_tokens=8_000, output_tokens=2_000),
        False,
        # (10,000 - 8,000) x 2.50 / 1M = 0.005; 8,000 x 0.25 / 1M = 0.002; 2,000 x 15 / 1M = 0.03
        Cost(input=0.005, cached_input=0.002, output=0.03),
        0.037,
    ),
    (
        "gpt",
        "reasoning",
        Usage(input_tokens=10_000, output_tokens=2_000, reasoning_tokens=1_500),
        False,
        # 10,000 x 2.50 = 0.025; (2,000 - 1,500) x 15 = 0.0075; 1,500 x 15 = 0.0225 (per 1M)
        Cost(input=0.025, output=0.0075, reasoning=0.0225),
        0.055,
    ),
    (
        "gpt",
        "prompt at the threshold (272,000): base rates",
        Usage(input_tokens=272_000, output_tokens=1_000),
        False,
        # 272,000 x 2.50 / 1M = 0.68; 1,000 x 15 / 1M = 0.015
        Cost(input=0.68, output=0.015),
        0.695,
    ),
    (
        "gpt",
        "long context (300,000 > 272,000)",
        Usage(input_tokens=300_000, cached_input_tokens=100_000, output_tokens=2_000),
        False,
        # 200,000 x 5.00 / 1M = 1.0; 100,000 x 0.50 / 1M = 0.05; 2,000 x 22.50 / 1M = 0.045
        Cost(input=1.0, cached_input=0.05, output=0.045),
        1.095,
    ),
    (
        "gpt",
        "batch",
        Usage(input_tokens=10_000, cached_input_tokens=8_000, output_tokens=2_000),
        True,
        # the cached-read row x 0.5: 0.005 / 2 = 0.0025; 0.002 / 2 = 0.001; 0.03 / 2 = 0.015
        Cost(input=0.0025, cached_input=0.001, output=0.015),
        0.0185,
    ),
    # --- Anthropic claude-sonnet-4-5: input 3.00, cache read 0.30, 5-minute write 3.75
    #     (1.25x), 1-hour write 6.00 (2x), output 15.00 (thinking = output); past 200K prompt
    #     tokens: 6.00, 0.60, 7.50, 12.00, 22.50; batch -50 %.
    (
        "claude",
        "plain",
        Usage(input_tokens=10_000, output_tokens=1_000),
        False,
        # 10,000 x 3 / 1M = 0.03; 1,000 x 15 / 1M = 0.015
        Cost(input=0.03, output=0.015),
        0.045,
    ),
    (
        "claude",
        "cached read",
        Usage(input_tokens=10_000, cached_input_tokens=9_000, output_tokens=1_000),
        False,
        # 1,000 x 3 = 0.003; 9,000 x 0.30 = 0.0027; 1,000 x 15 = 0.015 (per 1M)
        Cost(input=0.003, cached_input=0.0027, output=0.015),
        0.0207,
    ),
    (
        "claude",
        "cache write 5m",
        Usage(input_tokens=10_000, cache_write_tokens=8_000, output_tokens=1_000),
        False,
        # 2,000 x 3 = 0.006; 8,000 x 3.75 = 0.03; 1,000 x 15 = 0.015 (per 1M)
        Cost(input=0.006, cache_write_5m=0.03, output=0.015),
        0.051,
    ),
    (
        "claude",
        "cache write 1h",
        Usage(
            input_tokens=10_000, cache_write_tokens=8_000, cache_write_1h_tokens=8_000, output_tokens=1_000
        ),
        False,
        # 2,000 x 3 = 0.006; 8,000 x 6 = 0.048; 1,000 x 15 = 0.015 (per 1M)
        Cost(input=0.006, cache_write_1h=0.048, output=0.015),
        0.069,
    ),
    (
        "claude",
        "cache writes 5m and 1h, and a read",
        Usage(
            input_tokens=10_000,
            cached_input_tokens=1_000,
            cache_write_tokens=8_000,
            cache_write_1h_tokens=3_000,
            output_tokens=1_000,
        ),
        False,
        # 1,000 x 3 = 0.003; 1,000 x 0.30 = 0.0003; 5,000 x 3.75 = 0.01875; 3,000 x 6 = 0.018;
        # 1,000 x 15 = 0.015 (per 1M)
        Cost(input=0.003, cached_input=0.0003, cache_write_5m=0.01875, cache_write_1h=0.018, output=0.015),
        0.05505,
    ),
    (
        "claude",
        "reasoning (extended thinking)",
        Usage(input_tokens=10_000, output_tokens=1_000, reasoning_tokens=600),
        False,
        # 10,000 x 3 = 0.03; 400 x 15 = 0.006; 600 x 15 = 0.009 (per 1M)
        Cost(input=0.03, output=0.006, reasoning=0.009),
        0.045,
    ),
    (
        "claude",
        "long context (250,000 > 200,000)",
        Usage(
            input_tokens=250_000,
            cached_input_tokens=50_000,
            cache_write_tokens=100_000,
            cache_write_1h_tokens=40_000,
            output_tokens=2_000,
        ),
        False,
        # 100,000 x 6 = 0.6; 50,000 x 0.60 = 0.03; 60,000 x 7.50 = 0.45; 40,000 x 12 = 0.48;
        # 2,000 x 22.50 = 0.045 (per 1M)
        Cost(input=0.6, cached_input=0.03, cache_write_5m=0.45, cache_write_1h=0.48, output=0.045),
        1.605,
    ),
    (
        "claude",
        "batch",
        Usage(input_tokens=10_000, cache_write_tokens=8_000, output_tokens=1_000),
        True,
        # the 5m-write row x 0.5: 0.006 / 2 = 0.003; 0.03 / 2 = 0.015; 0.015 / 2 = 0.0075
        Cost(input=0.003, cache_write_5m=0.015, output=0.0075),
        0.0255,
    ),
    (
        "claude",
        "batch and long context together",
        Usage(input_tokens=250_000, cached_input_tokens=50_000, output_tokens=2_000),
        True,
        # 200,000 x 6 x 0.5 = 0.6; 50,000 x 0.60 x 0.5 = 0.015; 2,000 x 22.50 x 0.5 = 0.0225 (per 1M)
        Cost(input=0.6, cached_input=0.015, output=0.0225),
        0.6375,
    ),
    (
        "haiku",
        "cache write 1h, no long-context tier in the catalog",
        Usage(
            input_tokens=300_000,
            cache_write_tokens=100_000,
            cache_write_1h_tokens=100_000,
            output_tokens=1_000,
        ),
        False,
        # haiku-4-5: input 1, 1-hour write 2, output 5: 200,000 x 1 = 0.2; 100,000 x 2 = 0.2;
        # 1,000 x 5 = 0.005 (per 1M)
        Cost(input=0.2, cache_write_1h=0.2, output=0.005),
        0.405,
    ),
    # --- Gemini gemini-2.5-pro: input 1.25, cached content 0.125, output 10.00 (thinking =
    #     output); past 200K prompt tokens: 2.50, 0.25, 15.00; batch -50 %.
    (
        "gemini",
        "plain",
        Usage(input_tokens=10_000, output_tokens=1_000),
        False,
        # 10,000 x 1.25 / 1M = 0.0125; 1,000 x 10 / 1M = 0.01
        Cost(input=0.0125, output=0.01),
        0.0225,
    ),
    (
        "gemini",
        "cached content",
        Usage(input_tokens=10_000, cached_input_tokens=6_000, output_tokens=1_000),
        False,
        # 4,000 x 1.25 = 0.005; 6,000 x 0.125 = 0.00075; 1,000 x 10 = 0.01 (per 1M)
        Cost(input=0.005, cached_input=0.00075, output=0.01),
        0.01575,
    ),
    (
        "gemini",
        "thinking (thoughtsTokenCount 2,000 beside candidatesTokenCount 1,000)",
        Usage(input_tokens=10_000, output_tokens=3_000, reasoning_tokens=2_000),
        False,
        # 10,000 x 1.25 = 0.0125; 1,000 x 10 = 0.01; 2,000 x 10 = 0.02 (per 1M)
        Cost(input=0.0125, output=0.01, reasoning=0.02),
        0.0425,
    ),
    (
        "gemini",
        "long context (250,000 > 200,000)",
        Usage(input_tokens=250_000, cached_input_tokens=50_000, output_tokens=1_000, reasoning_tokens=500),
        False,
        # 200,000 x 2.50 = 0.5; 50,000 x 0.25 = 0.0125; 500 x 15 = 0.0075; 500 x 15 = 0.0075 (per 1M)
        Cost(input=0.5, cached_input=0.0125, output=0.0075, reasoning=0.0075),
        0.5275,
    ),
    (
        "gemini",
        "batch",
        Usage(input_tokens=10_000, output_tokens=1_000),
        True,
        # the plain row x 0.5: 0.0125 / 2 = 0.00625; 0.01 / 2 = 0.005
        Cost(input=0.00625, output=0.005),
        0.01125,
    ),
]

CLASSES = ("input", "cached_input", "cache_write_5m", "cache_write_1h", "output", "reasoning")


@pytest.mark.parametrize(
    ("deployment", "case", "usage", "batch", "expected", "total"),
    TABLE,
    ids=[f"{row[0]}-{row[1]}" for row in TABLE],
)
def test_hand_computed_costs(
    deployment: str, case: str, usage: Usage, batch: bool, expected: Cost, total: float
) -> None:
    cost = cost_breakdown(usage, _price(deployment), batch=batch)
    for name in CLASSES:
        assert getattr(cost, name) == pytest.approx(getattr(expected, name), abs=1e-12), name
    assert cost.total == pytest.approx(total, abs=1e-12)
    assert cost_usd(usage, _price(deployment), batch=batch) == pytest.approx(total, abs=1e-12)
    # to the cent and below: the classes add up to the total to a millionth of a cent
    assert round(cost.total, 8) == round(total, 8)


def test_the_table_covers_every_family_and_class() -> None:
    families = {CONFIG.deployments[row[0]].family for row in TABLE}
    assert families == {"openai", "anthropic", "gemini"}
    for name in CLASSES:
        assert any(getattr(row[4], name) > 0 for row in TABLE), name
    assert any(row[3] for row in TABLE) and any(row[5] > 1 for row in TABLE)


def test_catalog_rates_behind_the_table() -> None:
    claude = _price("claude")
    assert (claude.input, claude.cached_input, claude.cache_write, claude.cache_write_1h) == (
        3.0,
        0.3,
        3.75,
        6.0,
    )
    assert claude.long_context_above == 200_000 and claude.long_context is not None
    assert claude.long_context.cache_write_1h == 12.0 and claude.batch_discount == 0.5
    # Anthropic's multipliers hold for every Claude entry: 5-minute write 1.25x, 1-hour 2x, read 0.1x
    for key, entry in catalog.bundled().models.items():
        if entry.provider != "anthropic":
            continue
        for rates in (entry, entry.long_context):
            if rates is None:
                continue
            assert rates.cache_write == pytest.approx(rates.input * 1.25), key
            assert rates.cache_write_1h == pytest.approx(rates.input * 2), key
            assert rates.cached_input == pytest.approx(rates.input * 0.1), key
    gemini = _price("gemini")
    assert gemini.cache_write_1h is None  # Gemini has no cache-write fee: writes would bill as input
    assert rates_for(Usage(input_tokens=200_001), gemini) is gemini.long_context
    assert rates_for(Usage(input_tokens=200_000), gemini) is gemini


def test_a_1h_rate_defaults_to_the_5m_rate_and_config_overrides_it() -> None:
    cfg = _config(
        {
            "own": {
                "provider": "a",
                "model": "x",
                "price": {"input": 1.0, "output": 2.0, "cache_write": 1.5},
            },
            "over": {"provider": "a", "model": "claude-haiku-4-5", "price": {"cache_write_1h": 2.5}},
        }
    )
    own, over = cfg.deployments["own"].price, cfg.deployments["over"].price
    assert own is not None and over is not None
    writes = Usage(input_tokens=2_000, cache_write_tokens=2_000, cache_write_1h_tokens=1_000)
    # own: 1,000 x 1.5 (5m) + 1,000 x 1.5 (1h, no rate of its own) = 3,000 → 0.003 per 1M
    assert cost_breakdown(writes, own).total == pytest.approx(0.003, abs=1e-12)
    # over: haiku 5m 1.25 and the configured 1h 2.5: 1,000 x 1.25 + 1,000 x 2.5 = 3,750 → 0.00375
    assert cost_breakdown(writes, over).total == pytest.approx(0.00375, abs=1e-12)
    assert (own.version, over.version) == ("config", f"config+{VERSION}")


def test_a_1h_part_larger_than_the_writes_is_capped() -> None:
    # a confused report (1h part above all writes) never bills more tokens than were written:
    # 1,000 written, all counted as 1h: 1,000 x 6 = 0.006 per 1M, nothing at the 5m rate
    usage = Usage(input_tokens=1_000, cache_write_tokens=1_000, cache_write_1h_tokens=5_000)
    cost = cost_breakdown(usage, _price("claude"))
    assert cost.cache_write_1h == pytest.approx(0.006) and cost.cache_write_5m == 0.0 and cost.input == 0.0


def _record(rid: str, deployment: str, usage: Usage, *, batch: bool = False) -> RequestRecord:
    attempt = Attempt(deployment=deployment, provider="p", family="anthropic", status=200, usage=usage)
    return RequestRecord(
        request_id=rid,
        started_at=0.0,
        dialect="anthropic",
        endpoint="chat",
        model="m",
        status=200,
        attempts=(attempt,),
        batch=batch,
    )


class _Collect:
    def __init__(self) -> None:
        self.rows: list[Booked] = []

    def write(self, batch: Any) -> None:
        self.rows.extend(batch)

    async def close(self) -> None:
        return None


def test_each_row_carries_the_version_of_the_price_it_was_costed_at() -> None:
    cfg = _config(
        {
            "cat": {"provider": "a", "model": "claude-sonnet-4-5"},
            "own": {"provider": "a", "model": "local-thing", "price": {"input": 1.0, "output": 1.0}},
            "mixed": {"provider": "a", "model": "claude-sonnet-4-5", "price": {"batch_discount": 0.25}},
            "free": {"provider": "a", "model": "local-free"},
        }
    )
    sink = _Collect()

    async def run() -> None:
        acc = Accounting(cfg.deployments, sinks=[sink])
        acc.start()
        usage = Usage(input_tokens=10_000, cache_write_tokens=8_000, output_tokens=1_000)
        for name in ("cat", "own", "mixed", "free"):
            acc.submit(_record(name, name, usage, batch=name == "mixed"))
        await acc.stop()

    asyncio.run(run())
    versions = {b.record.request_id: b.price_version for b in sink.rows}
    assert versions == {"cat": VERSION, "own": "config", "mixed": f"config+{VERSION}", "free": "unpriced"}
    costs = {b.record.request_id: b.cost.total for b in sink.rows}
    # cat: the sonnet 5m-write row of the table, 0.051; own: 10,000 x 1 + 1,000 x 1 → 0.011;
    # mixed: 0.051 x (1 - 0.25) = 0.03825 (the configured discount); free: nothing
    assert costs == pytest.approx({"cat": 0.051, "own": 0.011, "mixed": 0.03825, "free": 0.0}, abs=1e-12)


def test_docs_show_the_same_table() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "accounting.md").read_text()
    shown = {float(m) for m in re.findall(r"\*\*([0-9.]+)\*\*", doc)}
    missing = [f"{row[0]}-{row[1]}: {row[5]}" for row in TABLE if row[5] not in shown]
    assert not missing, f"docs/accounting.md lacks these totals: {missing}"
