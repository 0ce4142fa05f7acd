"""``switchpoint usage``: the ledger as a rich table, JSON or CSV, at the config's storage url."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from switchpoint.cli import cli
from switchpoint.store.engine import make_engine
from switchpoint.store.writer import Writer
from test_ledger_api_queries import req

runner = CliRunner()


@pytest.fixture
def filled(ledger_url: str) -> str:
    now = time.time()
    rows = [
        req(
            f"r{i}",
            now - i * 3600,
            task=("code", "chat")[i % 2],
            deployment=("d1", "d2")[i % 2],
            input_tokens=100,
            cached_input_tokens=25,
            output_tokens=10,
            cost_usd=0.01,
        )
        for i in range(30)  # 30 hours back: 24 of them in the last day
    ]
    engine = make_engine(ledger_url)
    Writer(engine).write(rows, [])
    engine.dispose()
    return ledger_url


def test_usage_json_by_task_since_a_day(filled: str) -> None:
    result = runner.invoke(
        cli, ["usage", "--database", filled, "--by", "task", "--since", "1d", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    by_task = {row["task"]: row for row in doc["data"]}
    assert {t: r["requests"] for t, r in by_task.items()} == {"code": 12, "chat": 12}
    assert doc["totals"]["input_tokens"] == 2400
    assert doc["totals"]["cost_usd"] == pytest.approx(0.24)
    assert by_task["code"]["cache_read_ratio"] == pytest.approx(0.25)


def test_usage_table_in_the_display_currency_from_the_config(
    filled: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SWITCHPOINT_DATABASE_URL", raising=False)  # the config's storage.url, then
    conf = tmp_path / "sp.yaml"
    conf.write_text(
        f"storage:\n  url: '{filled}'\naccounting:\n  display_currency: CNY\n  rates: {{CNY: 7.1}}\n"
    )
    result = runner.invoke(cli, ["usage", "--config", str(conf), "--since", "7d"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "cost CNY" in result.output and "cost USD" in result.output
    assert "2.1300" in result.output  # 30 x 0.01 USD x 7.1
    assert "d1" in result.output and "d2" in result.output
    csv = runner.invoke(cli, ["usage", "--config", str(conf), "--by", "day", "--format", "csv"])
    assert csv.exit_code == 0 and csv.output.splitlines()[0].startswith("day,requests,")
    assert "cost_cny" in csv.output.splitlines()[0]


def test_usage_refuses_bad_arguments(filled: str) -> None:
    bad = runner.invoke(cli, ["usage", "--database", filled, "--by", "colour"])
    assert bad.exit_code == 2 and "cannot group by 'colour'" in bad.output
    bad = runner.invoke(cli, ["usage", "--database", filled, "--since", "last tuesday"])
    assert bad.exit_code == 2 and "--since" in bad.output
