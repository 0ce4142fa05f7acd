"""examples/evals/: the suite run against its three simulated candidates ranks them as scripted,
and the gate passes one challenger and fails the other."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import yaml
from typer.testing import CliRunner

from switchpoint.cli import cli
from switchpoint.simulator import create_app as create_simulator
from switchpoint.simulator.behavior import SimConfig

from servers import serve_in_thread

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "evals"


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    cfg = msgspec.convert(yaml.safe_load((EXAMPLES / "sim.yaml").read_text()), SimConfig)
    with serve_in_thread(create_simulator(cfg)) as url:
        yield url


def test_the_example_suite_ranks_the_candidates_and_gates_them(sim: str, tmp_path: Path) -> None:
    doc = yaml.safe_load((EXAMPLES / "gateway.yaml").read_text())
    doc["providers"]["sim"]["base_url"] = f"{sim}/openai/v1"
    gateway = tmp_path / "gateway.yaml"
    gateway.write_text(yaml.safe_dump(doc))
    db = f"sqlite:///{tmp_path / 'evals.db'}"
    suite = str(EXAMPLES / "suite.yaml")
    runner = CliRunner()
    assert runner.invoke(cli, ["eval", "register", suite, "--db", db]).exit_code == 0
    out = tmp_path / "report.json"
    args = ["eval", suite, "--candidates", "base,good,bad", "--config", str(gateway), "--db", db]
    res = runner.invoke(cli, [*args, "--state-dir", str(tmp_path), "--json", str(out), "--no-progress"])
    assert res.exit_code == 1, res.output  # one challenger fails: the run fails the gate
    report = json.loads(out.read_text())
    assert report["registration"] == "registered"
    m = {c["candidate"]: c["metrics"] for c in report["candidates"]}
    # quality as scripted: the baseline's deployment cannot call tools
    assert m["base"]["tool_arg_accuracy"]["value"] == 0.0
    assert m["good"]["tool_arg_accuracy"]["value"] == m["bad"]["tool_arg_accuracy"]["value"] == 1.0
    assert m["good"]["refusal_on_missing"]["value"] == 1.0
    # price as scripted
    cost = {name: v["cost_per_session"]["value"] for name, v in m.items()}
    assert cost["good"] < cost["base"] < cost["bad"]
    verdicts = {v["candidate"]: v for v in report["gate"]}
    assert verdicts["good"]["passed"] is True
    assert verdicts["bad"]["passed"] is False
    assert "bad fails against base" in res.output and "good passes against base" in res.output
