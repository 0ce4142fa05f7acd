"""The newcomer's path: `auto` on embedded defaults is routed by a small real policy, and the
example config runs against the simulator (`--simulate`) with no provider key at all."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from typer.testing import CliRunner

from switchpoint import config as config_mod
from switchpoint import defaults
from switchpoint.api.app import create_app
from switchpoint.cli import cli

from servers import serve_in_thread

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "router_config.yaml"
KEY_VARS = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "DEEPSEEK_API_KEY",
    "OLLAMA_HOST",
    "SWITCHPOINT_MASTER_KEY",
)
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
HI = [{"role": "user", "content": "hello"}]


def _no_keys() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in KEY_VARS and not k.startswith("SWITCHPOINT_")}


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in KEY_VARS:
        monkeypatch.delenv(var, raising=False)


def _route(client: openai.OpenAI, **kw: Any) -> tuple[dict[str, str], Any]:
    raw = client.chat.completions.with_raw_response.create(**kw)
    return dict(raw.headers), raw.parse()


@pytest.fixture(scope="module")
def embedded_gateway(simulator_url: str) -> Iterator[openai.OpenAI]:
    cfg = defaults.embedded(simulator_url, env={})
    with serve_in_thread(create_app(cfg)) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def example_gateway(simulator_url: str) -> Iterator[openai.OpenAI]:
    cfg = defaults.load_simulated(EXAMPLE, simulator_url, env={})
    with serve_in_thread(create_app(cfg)) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


# --- embedded defaults ------------------------------------------------------------------------


def test_auto_on_embedded_defaults_goes_to_the_cheap_model(embedded_gateway: openai.OpenAI) -> None:
    headers, answer = _route(embedded_gateway, model="auto", messages=HI)
    route = headers["x-switchpoint-route"]
    assert "rule=default" in route and "strategy=lowest_cost" in route, route
    assert headers["x-switchpoint-deployment"] == "sim-mini"
    assert answer.choices[0].message.content.startswith("[simulated sim-mini]")


def test_auto_with_tools_goes_to_a_tools_model(embedded_gateway: openai.OpenAI) -> None:
    headers, answer = _route(embedded_gateway, model="auto", messages=HI, tools=[WEATHER])
    assert "rule=tools" in headers["x-switchpoint-route"]
    assert headers["x-switchpoint-deployment"] == "sim-claude"
    assert answer.choices[0].message.tool_calls[0].function.name == "get_weather"


def test_auto_with_a_long_prompt_goes_to_the_long_window(embedded_gateway: openai.OpenAI) -> None:
    long = [{"role": "user", "content": "lorem ipsum dolor sit amet " * 20_000}]  # ~135k tokens
    headers, _ = _route(embedded_gateway, model="auto", messages=long, max_tokens=16)
    assert "rule=long-context" in headers["x-switchpoint-route"]
    assert headers["x-switchpoint-deployment"] == "sim-gemini"


def test_auto_with_a_schema_and_with_speed_priority(embedded_gateway: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    headers, _ = _route(
        embedded_gateway,
        model="auto",
        messages=HI,
        response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
    )
    assert "rule=json-schema" in headers["x-switchpoint-route"]
    assert headers["x-switchpoint-deployment"] == "sim-gpt"
    headers, _ = _route(
        embedded_gateway, model="auto", messages=HI, extra_headers={"x-switchpoint-priority": "speed"}
    )
    assert "rule=speed-mode" in headers["x-switchpoint-route"]


def test_auto_with_an_image_goes_to_a_vision_model(embedded_gateway: openai.OpenAI) -> None:
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    parts = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
    ]
    headers, answer = _route(embedded_gateway, model="auto", messages=[{"role": "user", "content": parts}])
    assert "rule=vision" in headers["x-switchpoint-route"]
    assert headers["x-switchpoint-deployment"] == "sim-gemini"
    assert "I see 1 image." in (answer.choices[0].message.content or "")


def test_aliases_still_work_beside_auto(embedded_gateway: openai.OpenAI) -> None:
    headers, _ = _route(embedded_gateway, model="smart", messages=HI)
    assert headers["x-switchpoint-deployment"] == "sim-claude"
    assert "rule=alias:smart" in headers["x-switchpoint-route"]


def test_detected_providers_route_auto_too() -> None:
    cfg = defaults.embedded(None, env={"ANTHROPIC_API_KEY": "a", "GEMINI_API_KEY": "g"})
    assert cfg.routing is not None and cfg.routing.default is not None
    assert [r.name for r in cfg.routing.rules] == ["long-context", "tools"]
    assert cfg.routing.default.candidates == ["gemini-3-flash", "claude-haiku-4-5"]


# --- a simulated provider needs no key ---------------------------------------------------------


def test_a_simulated_provider_needs_no_api_key(simulator_url: str) -> None:
    doc = {
        "providers": {
            "sim": {"family": "anthropic", "base_url": f"{simulator_url}/anthropic", "simulated": True}
        },
        "deployments": {"claude": {"provider": "sim", "model": "sim-claude"}},
    }
    cfg = config_mod.parse(doc, env={})
    key = cfg.providers["sim"].api_key
    assert key is not None and key.reveal() == "simulated"
    with serve_in_thread(create_app(cfg)) as url:
        r = httpx.post(
            f"{url}/v1/messages",
            json={"model": "claude", "max_tokens": 50, "messages": HI},
            headers={"anthropic-version": "2023-06-01"},
        )
    assert r.status_code == 200, r.text
    assert r.json()["content"][0]["text"].startswith("[simulated sim-claude]")
    # A real provider still needs its key.
    doc["providers"]["sim"]["simulated"] = False
    cfg = config_mod.parse(doc, env={})
    assert cfg.providers["sim"].api_key is None


# --- the example config, simulated ---------------------------------------------------------------


def test_check_config_of_the_example_passes_in_simulate_mode(bare_env: None) -> None:
    runner = CliRunner()
    plain = runner.invoke(cli, ["check-config", str(EXAMPLE)])
    assert plain.exit_code == 1 and "OPENAI_API_KEY is not set" in plain.output
    simulated = runner.invoke(cli, ["check-config", "--simulate", str(EXAMPLE)])
    assert simulated.exit_code == 0, simulated.output
    assert "(simulated providers): OK" in simulated.output


def test_simulate_config_points_every_provider_at_the_simulator() -> None:
    doc = config_mod.loader.read(EXAMPLE)
    out = defaults.simulate_config(doc, "http://sim:1", env={})
    assert doc["providers"]["openai"]["api_key"] == "env:OPENAI_API_KEY", "the input is left alone"
    for name, row in out["providers"].items():
        assert row["simulated"] is True and "api_key" not in row, name
        assert row["base_url"] == "http://sim:1" + defaults.SIM_PATHS[row["family"]], name
    assert "master_key" not in out["server"], "an unset master key is dropped"
    kept = defaults.simulate_config(doc, "http://sim:1", env={"SWITCHPOINT_MASTER_KEY": "m"})
    assert kept["server"]["master_key"] == "env:SWITCHPOINT_MASTER_KEY", "a set one is kept"
    assert out["routing"] == doc["routing"] and out["deployments"] == doc["deployments"]
    headers = {
        "providers": {"p": {"family": "openai", "base_url": "x", "headers": {"a": "env:NOPE", "b": "lit"}}}
    }
    assert defaults.simulate_config(headers, "http://s", env={})["providers"]["p"]["headers"] == {"b": "lit"}


def test_the_example_routes_against_the_simulator(example_gateway: openai.OpenAI) -> None:
    headers, answer = _route(example_gateway, model="auto", messages=HI, tools=[WEATHER])
    assert (
        "rule=tool-heavy" in headers["x-switchpoint-route"]
        and "task=tool_heavy(rules)" in headers["x-switchpoint-route"]
    )
    assert headers["x-switchpoint-deployment"] in ("sonnet", "gpt", "gemini-pro")
    assert answer.choices[0].message.tool_calls[0].function.name == "get_weather"
    headers, answer = _route(
        example_gateway, model="auto", messages=HI, extra_headers={"x-switchpoint-task": "code_review"}
    )
    assert (
        "rule=code-review" in headers["x-switchpoint-route"]
        and "presets=temperature" in headers["x-switchpoint-route"]
    )
    headers, answer = _route(
        example_gateway, model="auto", messages=HI, extra_headers={"x-switchpoint-priority": "budget"}
    )
    assert "rule=budget-mode" in headers["x-switchpoint-route"]
    assert headers["x-switchpoint-deployment"] == "local"  # free, on the box (here: simulated)
    assert answer.choices[0].message.content.startswith("[simulated qwen3:8b]")


def test_workers_rebuild_the_simulated_config(simulator_url: str) -> None:
    env = {
        "SWITCHPOINT_CONFIG": str(EXAMPLE),
        "SWITCHPOINT_SIMULATE": "1",
        "SWITCHPOINT_SIM_BASE": simulator_url,
    }
    cfg = defaults.from_environment(env)
    assert cfg.simulated and cfg.providers["gemini"].base_url == f"{simulator_url}/gemini/v1beta"
    assert defaults.from_environment({"SWITCHPOINT_SIM_BASE": simulator_url}).simulated
    # --simulate without a file: the simulated providers even when keys are set.
    keyed = {"OPENAI_API_KEY": "sk-real", "SWITCHPOINT_SIM_BASE": simulator_url}
    assert not defaults.from_environment(keyed).simulated
    assert defaults.from_environment({**keyed, "SWITCHPOINT_SIMULATE": "1"}).simulated


def test_serve_simulate_runs_the_example_with_no_keys(tmp_path: Path) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    cmd = [sys.executable, "-m", "switchpoint.cli", "serve", "--config", str(EXAMPLE), "--simulate"]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)],
        env=_no_keys(),
        cwd=tmp_path,  # where the ledger's default file lands
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
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
            json={"model": "auto", "messages": HI, "tools": [WEATHER]},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        assert "rule=tool-heavy" in r.headers["x-switchpoint-route"]
        assert httpx.get(f"http://127.0.0.1:{port}/ready").json()["simulated"] is True
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0]
    assert "SIMULATED PROVIDERS" in output and "--simulate" in output, output
