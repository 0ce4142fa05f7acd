"""Embedded defaults: a working configuration with no config file.

Providers are detected from the usual environment variables. When none is set, the gateway
serves the built-in simulated providers (answers are labelled ``[simulated …]``) so a new
user sees it work at once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from switchpoint.config import Config, parse

#: (env var, provider name, family, base URL, [(deployment, upstream model, window, max out)])
_DETECTED: tuple[tuple[str, str, str, str, list[tuple[str, str, int, int]]], ...] = (
    (
        "OPENAI_API_KEY",
        "openai",
        "openai",
        "https://api.openai.com/v1",
        [("gpt-5.5", "gpt-5.5", 400_000, 128_000), ("gpt-5.5-mini", "gpt-5.5-mini", 400_000, 128_000)],
    ),
    (
        "ANTHROPIC_API_KEY",
        "anthropic",
        "anthropic",
        "https://api.anthropic.com",
        [
            ("claude-opus-4-7", "claude-opus-4-7", 200_000, 32_000),
            ("claude-haiku-4-5", "claude-haiku-4-5", 200_000, 64_000),
        ],
    ),
    (
        "GEMINI_API_KEY",
        "gemini",
        "gemini",
        "https://generativelanguage.googleapis.com/v1beta",
        [
            ("gemini-3-pro", "gemini-3-pro-preview", 1_048_576, 65_536),
            ("gemini-3-flash", "gemini-3-flash-preview", 1_048_576, 65_536),
        ],
    ),
    (
        "DEEPSEEK_API_KEY",
        "deepseek",
        "openai",
        "https://api.deepseek.com/v1",
        [("deepseek-chat", "deepseek-chat", 128_000, 8_192)],
    ),
)

_ALIASES = {
    "smart": ["claude-opus-4-7", "gpt-5.5", "gemini-3-pro", "deepseek-chat", "ollama"],
    "fast": ["gemini-3-flash", "gpt-5.5-mini", "claude-haiku-4-5", "deepseek-chat", "ollama"],
    "cheap": ["deepseek-chat", "gemini-3-flash", "gpt-5.5-mini", "claude-haiku-4-5", "ollama"],
}


def detected_document(env: Mapping[str, str]) -> dict[str, Any] | None:
    """A config document for the providers whose keys are set, or None when there are none."""
    providers: dict[str, Any] = {}
    deployments: dict[str, Any] = {}
    for var, name, family, base_url, models in _DETECTED:
        if not env.get(var):
            continue
        providers[name] = {"family": family, "base_url": base_url, "api_key": f"env:{var}"}
        for dep, model, window, max_out in models:
            deployments[dep] = {
                "provider": name,
                "model": model,
                "context_window": window,
                "max_output_tokens": max_out,
            }
    if env.get("OLLAMA_HOST"):
        host = env["OLLAMA_HOST"]
        if not host.startswith(("http://", "https://")):
            host = "http://" + host
        providers["ollama"] = {"family": "openai", "base_url": host.rstrip("/") + "/v1"}
        deployments["ollama"] = {
            "provider": "ollama",
            "model": env.get("OLLAMA_MODEL", "llama3.2"),
            "context_window": 32_768,
            "max_output_tokens": 4_096,
            "capabilities": ["tools", "streaming", "json_schema"],
        }
    if not providers:
        return None
    aliases = {alias: [d for d in order if d in deployments] for alias, order in _ALIASES.items()}
    return {
        "providers": providers,
        "deployments": deployments,
        "models": {k: v for k, v in aliases.items() if v},
    }


def simulated_document(sim_base: str) -> dict[str, Any]:
    """Simulated providers of all three wire families behind ``sim_base`` (``http://host:port``)."""
    return {
        "providers": {
            "sim-openai": {
                "family": "openai",
                "base_url": f"{sim_base}/openai/v1",
                "simulated": True,
                "headers": {"authorization": "Bearer simulated"},
            },
            "sim-anthropic": {
                "family": "anthropic",
                "base_url": f"{sim_base}/anthropic",
                "simulated": True,
                "headers": {"x-api-key": "simulated"},
            },
            "sim-gemini": {
                "family": "gemini",
                "base_url": f"{sim_base}/gemini/v1beta",
                "simulated": True,
                "headers": {"x-goog-api-key": "simulated"},
            },
        },
        "deployments": {
            "sim-gpt": {
                "provider": "sim-openai",
                "model": "sim-gpt",
                "context_window": 400_000,
                "max_output_tokens": 16_384,
                "price": {"input": 1.25, "cached_input": 0.125, "output": 10.0},
            },
            "sim-claude": {
                "provider": "sim-anthropic",
                "model": "sim-claude",
                "context_window": 200_000,
                "max_output_tokens": 16_384,
                "price": {"input": 5.0, "cached_input": 0.5, "cache_write": 6.25, "output": 25.0},
            },
            "sim-gemini": {
                "provider": "sim-gemini",
                "model": "sim-gemini",
                "context_window": 1_048_576,
                "max_output_tokens": 16_384,
                "price": {"input": 0.3, "cached_input": 0.03, "output": 2.5},
            },
            "sim-embed": {
                "provider": "sim-openai",
                "model": "sim-embed",
                "kind": "embedding",
                "price": {"input": 0.02, "output": 0.0},
            },
        },
        "models": {
            "smart": ["sim-claude", "sim-gpt"],
            "fast": ["sim-gpt", "sim-gemini"],
            "cheap": ["sim-gemini", "sim-gpt"],
            "embed": "sim-embed",
        },
    }


def embedded(sim_base: str | None, env: Mapping[str, str] | None = None) -> Config:
    """The configuration used when no file is given. ``sim_base`` is where the simulator
    listens; it is only needed when no provider key is set (see :func:`needs_simulator`)."""
    env = os.environ if env is None else env
    doc = detected_document(env)
    if doc is None:
        if sim_base is None:
            raise ValueError("no provider keys are set: the simulator's address is needed")
        doc = simulated_document(sim_base)
        source = "<embedded defaults: simulated providers>"
    else:
        source = "<embedded defaults: providers from environment>"
    return parse(doc, source=source, env=env)


def needs_simulator(env: Mapping[str, str] | None = None) -> bool:
    return detected_document(os.environ if env is None else env) is None
