"""The command line: check-config and serve refuse bad configs; embedded defaults work."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from switchpoint import defaults
from switchpoint.cli import cli

runner = CliRunner()

BAD = """
providers:
  openai: {family: openai, base_url: "https://api.openai.com/v1", api_key: "sk-literal-oops"}
deployments:
  gpt: {provider: openai, model: gpt-5.5, colour: red}
models:
  smart: [gpt, nothing]
"""

GOOD = """
providers:
  openai: {family: openai, base_url: "https://api.openai.com/v1", api_key: env:TEST_OPENAI_KEY}
deployments:
  gpt: {provider: openai, model: gpt-5.5}
models:
  smart: gpt
"""


def test_check_config_lists_every_problem(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(BAD)
    result = runner.invoke(cli, ["check-config", str(p)])
    assert result.exit_code == 1
    out = result.output
    assert "$.providers.openai.api_key" in out
    assert "$.deployments.gpt" in out and "colour" in out
    assert "$.models.smart" in out and "nothing" in out
    assert "sk-literal-oops" not in out


def test_check_config_ok(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "good.yaml"
    p.write_text(GOOD)
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-x")
    result = runner.invoke(cli, ["check-config", str(p)])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output


def test_serve_refuses_bad_config(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(BAD)
    result = runner.invoke(cli, ["serve", "--config", str(p)])
    assert result.exit_code == 2
    assert "$.models.smart" in result.output


def test_defaults_detect_providers_from_environment() -> None:
    doc = defaults.detected_document({"OPENAI_API_KEY": "a", "OLLAMA_HOST": "localhost:11434"})
    assert doc is not None
    assert set(doc["providers"]) == {"openai", "ollama"}
    assert doc["providers"]["ollama"]["base_url"] == "http://localhost:11434/v1"
    assert doc["models"]["smart"][0] == "gpt-5.5"
    assert defaults.detected_document({}) is None
    cfg = defaults.embedded("http://127.0.0.1:9", env={})
    assert cfg.simulated and set(cfg.aliases) >= {"smart", "fast", "cheap"}


def test_serve_on_embedded_defaults_answers(tmp_path: Path) -> None:
    """`switchpoint serve` with no config and no keys serves the simulated providers."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_API_KEY") and k not in ("OLLAMA_HOST", "SWITCHPOINT_MASTER_KEY")
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "switchpoint.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "gateway did not become ready"
            time.sleep(0.2)
        r = httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            json={"model": "smart", "messages": [{"role": "user", "content": "hello"}]},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"].startswith("[simulated")
        assert httpx.get(f"http://127.0.0.1:{port}/ready").json()["simulated"] is True
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0]
    assert "SIMULATED" in output
    assert "OPEN" in output


def test_simulate_rejects_a_bad_behaviour_file(tmp_path: Path) -> None:
    p = tmp_path / "sim.yaml"
    p.write_text("default: {latency_ms: -5}\n")
    result = runner.invoke(cli, ["simulate", "--config", str(p)])
    assert result.exit_code == 2
    assert "latency_ms" in result.output
