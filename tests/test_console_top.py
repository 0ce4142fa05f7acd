"""Proof: ``switchpoint top --once`` shows the same totals as ``GET /admin/usage`` and the live
breaker states of ``GET /admin/breakers``, over HTTP; with ``--database`` it reads the ledger
directly; a wrong key is a clear error, not a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

import console_harness as h
from switchpoint.cli import cli
from switchpoint.console import format, top
from switchpoint.store import migrate


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    db = f"sqlite:///{tmp_path_factory.mktemp('top') / 'ledger.db'}"
    migrate.upgrade(db)
    with h.console_gateway(db) as (url, _gw):
        ids = h.seed(url)
        yield {"url": url, "db": db, "ids": ids}


def _frame(source: Any) -> str:
    console = Console(width=160, record=True, color_system=None)
    top.run(source, "1h", once=True, console=console)
    return console.export_text()


def test_top_over_http_shows_usage_and_breakers(site: dict[str, Any]) -> None:
    text = _frame(top.HttpSource(site["url"], h.MASTER))
    usage = h.admin(site["url"], "/admin/usage", since="1h")
    totals = usage["totals"]
    assert f"requests {format.count(totals['requests'])}" in text
    assert format.usd(totals["cost_usd"]) in text and "EUR" in text
    breakers = h.admin(site["url"], "/admin/breakers")["deployments"]
    per = h.admin(site["url"], "/admin/usage", since="1h", group_by="deployment")["data"]
    for d in per:
        if d["deployment"] is None:
            continue
        line = next(ln for ln in text.splitlines() if f" {d['deployment']} " in ln)
        assert breakers[d["deployment"]]["state"] in line
        assert format.count(d["requests"]) in line


def test_top_from_the_database(site: dict[str, Any]) -> None:
    text = _frame(top.DatabaseSource(site["db"], h.parse_currency()))
    assert f"requests {format.count(len(site['ids']))}" in text
    assert "breakers: only over HTTP" in text


def test_top_cli_once_and_a_wrong_key(site: dict[str, Any]) -> None:
    runner = CliRunner(env={"COLUMNS": "160"})
    ok = runner.invoke(cli, ["top", "--url", site["url"], "--key", h.MASTER, "--once", "--since", "1h"])
    assert ok.exit_code == 0, ok.output
    assert "sim-gpt" in ok.output
    bad = runner.invoke(cli, ["top", "--url", site["url"], "--key", "sk-wrong", "--once"])
    assert bad.exit_code == 1
    assert "HTTP 401" in bad.output and "Traceback" not in bad.output


def test_top_live_redraws(site: dict[str, Any], tmp_path: Path) -> None:
    console = Console(width=160, record=True, color_system=None, force_terminal=False)
    naps: list[float] = []
    top.run(
        top.HttpSource(site["url"], h.MASTER),
        "1h",
        interval_s=0.5,
        console=console,
        frames=3,
        sleep=naps.append,
    )
    assert naps == [0.5, 0.5]
    assert "switchpoint top" in console.export_text()


def test_since_forms() -> None:
    assert top.since_of("2h", now=10_000.0) == 10_000.0 - 7200
    assert top.since_of("1733100000") == 1733100000.0
    with pytest.raises(ValueError):
        top.since_of("yesterday-ish")
