"""``switchpoint explain``: a dry run from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from switchpoint.cli import cli

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "router_config.yaml"
runner = CliRunner()


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in (
        "SWITCHPOINT_MASTER_KEY",
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "GEMINI_API_KEY",
        "DEEPSEEK_API_KEY",
    ):
        monkeypatch.setenv(k, "sk-test")


def _body(tmp_path: Path, doc: dict[str, object]) -> Path:
    p = tmp_path / "request.json"
    p.write_text(json.dumps(doc))
    return p


def test_explain_prints_the_decision(tmp_path: Path) -> None:
    body = _body(tmp_path, {"model": "auto", "messages": [{"role": "user", "content": "review this diff"}]})
    result = runner.invoke(
        cli,
        [
            "explain",
            str(body),
            "--config",
            str(EXAMPLE),
            "-H",
            "x-switchpoint-task: code_review",
            "--header",
            "x-switchpoint-max-cost-usd:0.013",
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "rule code-review" in out and "task code_review (declared)" in out
    assert "gemini-pro" in out and "skipped sonnet" in out and "skipped gpt" in out
    assert "x-switchpoint-route: model=auto; rule=code-review" in out
    assert "presets applied: temperature" in out


def test_explain_json_for_an_anthropic_body(tmp_path: Path) -> None:
    body = _body(
        tmp_path,
        {
            "model": "smart",
            "max_tokens": 100,
            "system": "be brief",
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    result = runner.invoke(cli, ["explain", str(body), "-c", str(EXAMPLE), "--json"])
    assert result.exit_code == 0, result.output
    trace = json.loads(result.output)
    assert trace["rule"] == "alias:smart"
    assert [c["deployment"] for c in trace["candidates"]] == ["opus", "gpt", "gemini-pro"]
    assert trace["currency"] == "EUR" and trace["output_tokens"] == 100


def test_explain_reports_refusals_and_bad_input(tmp_path: Path) -> None:
    body = _body(tmp_path, {"model": "nope", "messages": [{"role": "user", "content": "hi"}]})
    refused = runner.invoke(cli, ["explain", str(body), "-c", str(EXAMPLE)])
    assert refused.exit_code == 1 and "404 model_not_found" in refused.output
    bad_header = runner.invoke(cli, ["explain", str(body), "-c", str(EXAMPLE), "-H", "no-colon"])
    assert bad_header.exit_code == 2
    missing = runner.invoke(cli, ["explain", str(tmp_path / "none.json"), "-c", str(EXAMPLE)])
    assert missing.exit_code == 2 and "cannot read" in missing.output
    bad_cfg = tmp_path / "bad.yaml"
    bad_cfg.write_text("routing: {rules: [{name: r, candidates: [ghost]}]}\n")
    broken = runner.invoke(cli, ["explain", str(body), "-c", str(bad_cfg)])
    assert broken.exit_code == 2 and "$.routing.rules[0].candidates[0]" in broken.output


def test_check_config_accepts_the_example() -> None:
    result = runner.invoke(cli, ["check-config", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
