"""Config: closed schema, every problem with its path, secrets as references, never printed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from switchpoint.config import Secret, load, parse
from switchpoint.errors import ConfigError

ENV = {"OPENAI_API_KEY": "sk-real-secret-value", "ANTHROPIC_API_KEY": "sk-ant-secret"}


def good() -> dict[str, Any]:
    return {
        "server": {"port": 4100, "master_key": "env:OPENAI_API_KEY"},
        "providers": {
            "openai": {
                "family": "openai",
                "base_url": "https://api.openai.com/v1/",
                "api_key": "env:OPENAI_API_KEY",
            },
            "anthropic": {
                "family": "anthropic",
                "base_url": "https://api.anthropic.com",
                "api_key": "env:ANTHROPIC_API_KEY",
            },
            "local": {"family": "openai", "base_url": "http://127.0.0.1:11434/v1"},
        },
        "deployments": {
            "gpt": {
                "provider": "openai",
                "model": "gpt-5.5",
                "context_window": 400000,
                "capabilities": ["tools", "vision", "streaming"],
                "price": {"input": 1.25, "output": 10},
            },
            "claude": {"provider": "anthropic", "model": "claude-opus-4-7"},
            "llama": {"provider": "local", "model": "llama3.2"},
        },
        "models": {"smart": ["claude", "gpt"], "local": "llama"},
    }


def test_good_config_resolves() -> None:
    cfg = parse(good(), env=ENV)
    assert cfg.port == 4100
    assert cfg.providers["openai"].base_url == "https://api.openai.com/v1"
    assert cfg.providers["local"].api_key is None
    assert [d.name for d in cfg.candidates("smart") or ()] == ["claude", "gpt"]
    assert [d.name for d in cfg.candidates("gpt") or ()] == ["gpt"]
    assert cfg.candidates("nope") is None
    gpt = cfg.deployments["gpt"]
    assert gpt.capabilities == {"tools", "vision", "streaming"}
    assert gpt.price is not None and gpt.price.cached_input == 1.25  # defaults to the input price
    assert cfg.deployments["claude"].family == "anthropic"


def test_secrets_never_print() -> None:
    cfg = parse(good(), env=ENV)
    key = cfg.providers["openai"].api_key
    assert isinstance(key, Secret) and key.reveal() == "sk-real-secret-value"
    assert "sk-real" not in repr(cfg) and "sk-real" not in str(cfg.providers["openai"])


def test_every_problem_is_reported_with_its_path() -> None:
    doc = good()
    doc["surprise"] = 1
    doc["server"]["port"] = "eighty"
    doc["providers"]["openai"]["colour"] = "blue"
    doc["providers"]["anthropic"]["api_key"] = "sk-literal-secret"
    doc["providers"]["local"]["base_url"] = "ftp://x"
    doc["deployments"]["gpt"]["capabilities"] = ["tools", "telepathy"]
    doc["deployments"]["llama"]["provider"] = "nowhere"
    doc["models"]["smart"] = ["claude", "ghost"]
    with pytest.raises(ConfigError) as exc:
        parse(doc, env={})
    problems = exc.value.problems
    text = "\n".join(problems)
    for needle in [
        "$.surprise: unknown key",
        "$.server.port",
        "$.providers.openai",  # unknown field colour
        "colour",
        "$.providers.anthropic.api_key: secrets must be references",
        "$.providers.local.base_url",
        "$.deployments.gpt.capabilities",
        "$.deployments.llama.provider: no provider named 'nowhere'",
        "$.models.smart[1]: alias points to unknown deployment 'ghost'",
    ]:
        assert needle in text, f"missing {needle!r} in:\n{text}"
    assert "sk-literal-secret" not in text


def test_missing_environment_secret() -> None:
    with pytest.raises(ConfigError) as exc:
        parse(good(), env={"OPENAI_API_KEY": "x"})
    assert any(
        "ANTHROPIC_API_KEY is not set" in p and "$.providers.anthropic.api_key" in p
        for p in exc.value.problems
    )


def test_master_key_from_environment() -> None:
    doc = good()
    del doc["server"]["master_key"]
    cfg = parse(doc, env={**ENV, "SWITCHPOINT_MASTER_KEY": "mk"})
    assert cfg.master_key is not None and cfg.master_key.reveal() == "mk"
    assert parse(doc, env=ENV).master_key is None


def test_load_reports_yaml_position(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("providers:\n  a: [unclosed\n")
    with pytest.raises(ConfigError) as exc:
        load(p)
    assert "line" in exc.value.problems[0]
    with pytest.raises(ConfigError):
        load(tmp_path / "missing.yaml")
