"""Embedded defaults: a working configuration with no config file.

Providers are detected from the usual environment variables. When none is set, the gateway
serves the built-in simulated providers (answers are labelled ``[simulated …]``) so a new
user sees it work at once.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from switchpoint.config import Config, parse
from switchpoint.config.loader import load as config_load
from switchpoint.config.loader import read

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

_LONG_CONTEXT = ["gemini-3-pro", "gemini-3-flash", "gpt-5.5", "claude-opus-4-7"]


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
    long_context = [d for d in _LONG_CONTEXT if d in deployments]
    rules: list[dict[str, Any]] = []
    if long_context:
        rules.append(
            {"name": "long-context", "match": {"prompt_tokens": {"min": 100_000}}, "candidates": long_context}
        )
    rules.append({"name": "tools", "match": {"tools": True}, "candidates": aliases["smart"]})
    return {
        "providers": providers,
        "deployments": deployments,
        "models": {k: v for k, v in aliases.items() if v},
        # ``auto``: long prompts to a long window, tools to a strong model, the rest cheap.
        "routing": {"rules": rules, "default": {"name": "default", "candidates": aliases["cheap"]}},
    }


#: Where each wire family lives on the simulator (``switchpoint simulate`` prints the same).
SIM_PATHS = {"openai": "/openai/v1", "anthropic": "/anthropic", "gemini": "/gemini/v1beta"}
#: The simulator's paths for the cloud families (``--simulate`` points their providers there;
#: the embedded defaults have no such providers).
SIM_CLOUD_PATHS = {"bedrock": "/bedrock", "vertex": "/vertex"}

#: ``auto`` on the simulated deployments: a small real policy, so the route header shows rules
#: at work (docs/routing.md). Content first; otherwise the cheapest model that can answer.
SIMULATED_ROUTING: dict[str, Any] = {
    "rules": [
        {
            "name": "long-context",
            "match": {"prompt_tokens": {"min": 100_000}},
            "candidates": ["sim-gemini", "sim-gpt"],
        },
        {"name": "vision", "match": {"images": True}, "candidates": ["sim-gemini", "sim-gpt", "sim-claude"]},
        {"name": "tools", "match": {"tools": True}, "candidates": ["sim-claude", "sim-gpt"]},
        {"name": "json-schema", "match": {"json_schema": True}, "candidates": ["sim-gpt", "sim-gemini"]},
        {
            "name": "speed-mode",
            "match": {"priority": "speed"},
            "candidates": ["sim-mini", "sim-gemini", "sim-gpt"],
            "strategy": "lowest_latency",
        },
    ],
    "default": {
        "name": "default",
        "candidates": ["sim-mini", "sim-gemini", "sim-gpt"],
        "strategy": "lowest_cost",
    },
}


def simulated_document(sim_base: str) -> dict[str, Any]:
    """Simulated providers of all three wire families behind ``sim_base`` (``http://host:port``),
    with aliases and a routing policy for ``auto``."""
    return {
        "providers": {
            f"sim-{family}": {"family": family, "base_url": sim_base + path, "simulated": True}
            for family, path in SIM_PATHS.items()
        },
        "deployments": {
            "sim-gpt": {
                "provider": "sim-openai",
                "model": "sim-gpt",
                "context_window": 400_000,
                "max_output_tokens": 16_384,
                "price": {"input": 1.25, "cached_input": 0.125, "output": 10.0},
            },
            "sim-mini": {  # the cheap one: text only, no tools
                "provider": "sim-openai",
                "model": "sim-mini",
                "context_window": 128_000,
                "max_output_tokens": 16_384,
                "capabilities": ["streaming", "json_schema"],
                "price": {"input": 0.1, "cached_input": 0.01, "output": 0.4},
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
        "routing": SIMULATED_ROUTING,
    }


def simulate_config(doc: Any, sim_base: str, env: Mapping[str, str]) -> Any:
    """A copy of a config document with every provider pointed at the simulator.

    Each provider keeps its name and wire family and gets the simulator's base URL for that
    family; keys and header secrets are dropped (a simulated provider needs none), and so is
    Azure's URL layout. A master key whose variable is unset is dropped too: the gateway then
    serves only simulated answers, open, and says so at start-up. Everything else (deployments,
    aliases, routing, resilience) is the file's own, so its policy runs as written.
    """
    if not isinstance(doc, dict):
        return doc  # parse() reports the shape
    doc = copy.deepcopy(doc)
    providers = doc.get("providers")
    if isinstance(providers, dict):
        for row in providers.values():
            if not isinstance(row, dict):
                continue
            family = row.get("family")
            name = family if isinstance(family, str) else ""
            row["base_url"] = sim_base + (SIM_PATHS.get(name) or SIM_CLOUD_PATHS.get(name, ""))
            row["simulated"] = True
            row.pop("api_key", None)
            row.pop("azure_api_version", None)
            row.pop("proxy", None)  # the simulator is local: no proxy, no CA bundle
            row.pop("ca_file", None)
            headers = row.get("headers")
            if isinstance(headers, dict):
                row["headers"] = {
                    k: v for k, v in headers.items() if not (isinstance(v, str) and v.startswith("env:"))
                }
    server = doc.get("server")
    if isinstance(server, dict):
        ref = server.get("master_key")
        if isinstance(ref, str) and ref.startswith("env:") and not env.get(ref[4:]):
            server.pop("master_key")
    return doc


def load_simulated(path: str | Path, sim_base: str, env: Mapping[str, str] | None = None) -> Config:
    """Read a config file and run it against the simulator (``serve --simulate``)."""
    env = os.environ if env is None else env
    data = read(path)
    return parse(simulate_config(data, sim_base, env), source=f"{path} (simulated providers)", env=env)


def embedded(sim_base: str | None, env: Mapping[str, str] | None = None, *, simulate: bool = False) -> Config:
    """The configuration used when no file is given. ``sim_base`` is where the simulator
    listens; it is only needed when no provider key is set (see :func:`needs_simulator`) or
    ``simulate`` asks for the simulated providers whatever keys are set."""
    env = os.environ if env is None else env
    doc = None if simulate else detected_document(env)
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


def from_environment(env: Mapping[str, str] | None = None) -> Config:
    """The config a worker process rebuilds from what ``serve`` left in the environment:
    ``SWITCHPOINT_CONFIG`` (a file; with ``SWITCHPOINT_SIMULATE=1`` pointed at the simulator),
    else the embedded defaults; ``SWITCHPOINT_SIM_BASE`` is the simulator the parent started."""
    env = os.environ if env is None else env
    path = env.get("SWITCHPOINT_CONFIG")
    sim_base = env.get("SWITCHPOINT_SIM_BASE")
    simulate = env.get("SWITCHPOINT_SIMULATE") == "1" and sim_base is not None
    if path and simulate:
        assert sim_base is not None
        return load_simulated(path, sim_base, env)
    if path:
        return config_load(path, env=env)
    return embedded(sim_base, env, simulate=simulate)
