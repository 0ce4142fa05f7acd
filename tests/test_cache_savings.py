"""Provider prompt caching, automatic, end to end: a 20-turn agent conversation with a long system
prompt and tools through the gateway to the simulated Anthropic and OpenAI families. The ledger's
cache-read ratio and savings (per deployment, key, session and task, in ``/admin/usage`` and
``/metrics``) match a hand computation from the simulator's published rules; off and on are
printed side by side."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from governance_harness import bearer, make_key
from resilience_harness import AUTH, Server, document, gateway, provider
from switchpoint.config.storage import ENV_URL
from switchpoint.simulator import SimConfig
from switchpoint.simulator import create_app as create_sim
from switchpoint.store.engine import make_engine
from switchpoint.store.queries import usage

from store_db import rows

TURNS = 20
SYSTEM = "You are a careful coding agent working in a large repository. Follow every rule. " * 70
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": f"tool_{i}",
            "description": "Reads, searches or edits files in the working tree. " * 6,
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
        },
    }
    for i in range(6)
]
# Prices per million tokens, given in the config so the hand computation needs no catalog.
CLAUDE = {"input": 3.0, "cached_input": 0.3, "cache_write": 3.75, "output": 15.0}
GPT = {"input": 2.5, "cached_input": 1.25, "output": 10.0}
GEMINI = {"input": 0.3, "cached_input": 0.03, "output": 2.5}
PRICES = {"anthropic": CLAUDE, "openai": GPT, "gemini": GEMINI}
#: (alias, deployment, family) of the three conversations.
FAMILIES = (("claude", "d-claude", "anthropic"), ("gpt", "d-gpt", "openai"), ("gem", "d-gemini", "gemini"))


@pytest.fixture(autouse=True)
def configured_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_URL, raising=False)


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    with Server(create_sim(SimConfig())) as server:
        yield server.url


def _doc(sim: str, db: str, cache: dict[str, Any] | None) -> dict[str, Any]:
    # the task the conversation names is one the config knows: /metrics shows it by name
    extra: dict[str, Any] = {
        "storage": {"url": db, "flush_interval_ms": 20},
        "routing": {"classifier": {"default_task": "agent"}},
    }
    if cache is not None:
        extra["cache"] = cache
    return document(
        {
            "p": provider(sim, "openai", simulated=True),
            "q": provider(sim, "anthropic"),
            "g": provider(sim, "gemini"),
        },
        {
            "d-gpt": {"provider": "p", "model": "gpt-4o", "price": GPT},
            "d-claude": {"provider": "q", "model": "claude-sonnet-4-5", "price": CLAUDE},
            "d-gemini": {"provider": "g", "model": "gemini-2.5-flash", "price": GEMINI},
        },
        {"gpt": "d-gpt", "claude": "d-claude", "gem": "d-gemini"},
        **extra,
    )


def _conversation(url: str, model: str, session: str, auth: dict[str, str]) -> list[dict[str, Any]]:
    """Twenty turns of an agent loop; the usage each answer reported, in order."""
    # Gemini caches without a key: each run's prompt its own (one simulator serves both runs)
    system = f"({session}) {SYSTEM}" if model == "gem" else SYSTEM
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
    usages = []
    headers = {**auth, "x-switchpoint-session": session, "x-switchpoint-task": "agent"}
    with httpx.Client(base_url=url, timeout=30) as c:
        for turn in range(TURNS):
            messages.append({"role": "user", "content": f"Step {turn}: run the next check and report."})
            body = {
                "model": model,
                "messages": messages,
                "tools": TOOLS,
                "max_tokens": 40,
                "tool_choice": "none",
            }
            r = c.post("/v1/chat/completions", json=body, headers=headers)
            assert r.status_code == 200, r.text
            doc = r.json()
            usages.append(doc["usage"])
            messages.append({"role": "assistant", "content": doc["choices"][0]["message"]["content"]})
    return usages


def _expected(usages: list[dict[str, Any]], family: str, on: bool) -> dict[str, float]:
    """The hand computation, from the prompt sizes alone and the providers' rules: Anthropic
    (the gateway's breakpoint on the last message) writes the whole prompt on the first turn and
    from then on reads the previous turn's whole prompt and writes the rest; OpenAI reads the
    previous prompt rounded down to 1024 + a multiple of 128; Gemini (implicit caching, 1024
    tokens on Flash) reads the previous prompt as is."""
    price = PRICES[family]
    cost = saved = 0.0
    inp = cached = 0
    previous = 0
    for u in usages:
        prompt, out = u["prompt_tokens"], u["completion_tokens"]
        read = write = 0
        if on and family == "anthropic":
            read = previous
            write = prompt - read
        elif family == "openai" and previous >= 1024:  # OpenAI caches by itself, on or off
            read = 1024 + (previous - 1024) // 128 * 128
        elif family == "gemini" and previous >= 1024:  # Gemini too, implicitly
            read = previous
        plain = prompt - read - write
        rate_write = price.get("cache_write", price["input"])
        cost += (
            plain * price["input"] + read * price["cached_input"] + write * rate_write + out * price["output"]
        ) / 1e6
        saved += (
            read * (price["input"] - price["cached_input"]) + write * (price["input"] - rate_write)
        ) / 1e6
        inp += prompt
        cached += read
        previous = prompt
    return {"cost": cost, "saved": saved, "ratio": cached / inp, "cached": cached, "input": inp}


def _run(sim: str, tmp_path: Path, name: str, cache: dict[str, Any] | None) -> dict[str, Any]:
    db = f"sqlite:///{tmp_path / (name + '.db')}"
    out: dict[str, Any] = {}
    with gateway(_doc(sim, db, cache)) as (url, _gw, _):
        secret, key = make_key(url)  # a virtual key: the figures per key too
        out["key_id"] = key["id"]
        for model, _dep, _family in FAMILIES:
            out[model] = _conversation(url, model, f"{name}-{model}", bearer(secret))
        # the ledger writes every flush window: read once every request is in it
        deadline = time.monotonic() + 20
        while True:
            admin = httpx.get(
                f"{url}/admin/usage", params={"group_by": "deployment"}, headers=AUTH, timeout=10
            )
            assert admin.status_code == 200, admin.text
            if sum(g["requests"] for g in admin.json()["data"]) == len(FAMILIES) * TURNS:
                break
            assert time.monotonic() < deadline, admin.json()
            time.sleep(0.05)
        for group in ("deployment", "session", "task,deployment", "key"):
            admin = httpx.get(f"{url}/admin/usage", params={"group_by": group}, headers=AUTH, timeout=10)
            assert admin.status_code == 200, admin.text
            out[f"admin {group}"] = admin.json()["data"]
        out["metrics"] = httpx.get(f"{url}/metrics", headers=AUTH, timeout=10).text
    engine = make_engine(db)
    try:
        out["by_deployment"] = {r.group["deployment"]: r for r in usage(engine, ["deployment"])}
        out["by_session"] = {r.group["session"]: r for r in usage(engine, ["session"])}
        out["by_task"] = usage(engine, ["task", "deployment"])
        out["by_key"] = {r.group["key"]: r for r in usage(engine, ["key"])}
        out["rows"] = rows(engine, "SELECT deployment, cached_input_tokens, saved_usd FROM requests")
    finally:
        engine.dispose()
    return out


def test_prompt_caching_off_and_on_match_a_hand_computation(sim: str, tmp_path: Path) -> None:
    off = _run(sim, tmp_path, "off", {"prompt": {"enabled": False}})
    on = _run(sim, tmp_path, "on", None)  # automatic: no cache section at all
    lines = [f"{'':18}{'off':>34}{'on':>34}"]
    for model, dep, family in FAMILIES:
        for label, run, enabled in (("off", off, False), ("on", on, True)):
            want = _expected(run[model], family, enabled)
            got = run["by_deployment"][dep]
            assert got.requests == TURNS
            assert got.input_tokens == want["input"] and got.cached_input_tokens == want["cached"]
            assert got.cost_usd == pytest.approx(want["cost"], rel=1e-9)
            assert got.saved_usd == pytest.approx(want["saved"], rel=1e-9, abs=1e-12)
            assert got.cache_read_ratio == pytest.approx(want["ratio"])
            # The same figures per session and per task.
            session = run["by_session"][f"{label}-{model}"]
            assert session.saved_usd == pytest.approx(want["saved"], abs=1e-12)
            assert session.cache_read_ratio == pytest.approx(want["ratio"])
            task = next(r for r in run["by_task"] if r.group["deployment"] == dep)
            assert task.group["task"] == "agent" and task.saved_usd == pytest.approx(want["saved"], abs=1e-12)
            # /admin/usage: per deployment, session and task
            admin = next(r for r in run["admin deployment"] if r["deployment"] == dep)
            assert admin["saved_usd"] == pytest.approx(want["saved"], abs=1e-9)
            assert admin["cache_read_ratio"] == pytest.approx(want["ratio"])
            admin = next(r for r in run["admin session"] if r["session"] == f"{label}-{model}")
            assert admin["saved_usd"] == pytest.approx(want["saved"], abs=1e-9)
            assert admin["cache_read_ratio"] == pytest.approx(want["ratio"])
            admin = next(r for r in run["admin task,deployment"] if r["deployment"] == dep)
            assert admin["task"] == "agent" and admin["saved_usd"] == pytest.approx(want["saved"], abs=1e-9)
        for run, enabled in ((off, False), (on, True)):
            want_all = [_expected(run[m], f, enabled) for m, _d, f in FAMILIES]
            by_key = run["by_key"][run["key_id"]]
            assert by_key.requests == len(FAMILIES) * TURNS
            assert by_key.saved_usd == pytest.approx(sum(w["saved"] for w in want_all), rel=1e-9, abs=1e-12)
            admin = next(r for r in run["admin key"] if r["key"] == run["key_id"])
            assert admin["saved_usd"] == pytest.approx(by_key.saved_usd, abs=1e-9)
            assert admin["cache_read_ratio"] == pytest.approx(by_key.cache_read_ratio)
        a, b = off["by_deployment"][dep], on["by_deployment"][dep]
        lines += [
            f"{dep:<18}{'cache-read ratio':>20}{a.cache_read_ratio:>14.3f}{'':>20}{b.cache_read_ratio:>14.3f}",
            f"{'':<18}{'cost USD':>20}{a.cost_usd:>14.6f}{'':>20}{b.cost_usd:>14.6f}",
            f"{'':<18}{'saved USD':>20}{a.saved_usd:>14.6f}{'':>20}{b.saved_usd:>14.6f}",
        ]
    print("\n" + "\n".join(lines))
    claude_off, claude_on = off["by_deployment"]["d-claude"], on["by_deployment"]["d-claude"]
    assert claude_off.cached_input_tokens == 0 and claude_on.cache_read_ratio > 0.9
    assert claude_on.cost_usd < 0.5 * claude_off.cost_usd
    # OpenAI caches by itself; the gateway adds the session's prompt_cache_key (same reads here).
    assert (
        on["by_deployment"]["d-gpt"].cached_input_tokens == off["by_deployment"]["d-gpt"].cached_input_tokens
    )
    saved_line = next(
        line
        for line in on["metrics"].splitlines()
        if line.startswith("switchpoint_cache_saved_usd_total{") and 'deployment="d-claude"' in line
    )
    assert float(saved_line.rsplit(" ", 1)[1]) == pytest.approx(claude_on.saved_usd, rel=1e-6)
    # per task too (a bounded label: the tasks the config names), with the cache-read ratio's parts
    samples = _samples(on["metrics"])
    deps = on["by_deployment"].values()
    by_task = [v for k, v in samples.items() if k[0] == "switchpoint_cache_saved_usd_total"]
    assert all(dict(k[1])["task"] == "agent" for k in samples if k[0] == "switchpoint_cache_saved_usd_total")
    assert sum(by_task) == pytest.approx(sum(d.saved_usd for d in deps), rel=1e-6)
    inputs = {
        dict(k[1])["class"]: v
        for k, v in samples.items()
        if k[0] == "switchpoint_task_input_tokens_total" and dict(k[1])["task"] == "agent"
    }
    assert inputs["cached_input"] == sum(d.cached_input_tokens for d in deps) > 0
    assert sum(inputs.values()) == sum(d.input_tokens for d in deps)
    ratio = inputs["cached_input"] / sum(inputs.values())
    assert ratio == pytest.approx(
        sum(d.cached_input_tokens for d in deps) / sum(d.input_tokens for d in deps)
    )


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples of a Prometheus text exposition, by (name, sorted labels)."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_an_anthropic_clients_conversation_is_cached_in_passthrough(sim: str, tmp_path: Path) -> None:
    """The same 20 turns spoken in the Anthropic dialect (passthrough: the client's own body,
    the gateway's breakpoints added): every turn after the first reads the previous prompt."""
    db = f"sqlite:///{tmp_path / 'anthropic.db'}"
    tools = [
        {
            "name": t["function"]["name"],
            "description": t["function"]["description"],
            "input_schema": t["function"]["parameters"],
        }
        for t in TOOLS
    ]
    headers = {"x-api-key": AUTH["authorization"].split()[1], "anthropic-version": "2023-06-01"}
    messages: list[dict[str, Any]] = []
    usages = []
    with gateway(_doc(sim, db, None)) as (url, _gw, _), httpx.Client(base_url=url, timeout=30) as c:
        for turn in range(TURNS):
            messages.append({"role": "user", "content": f"Step {turn}: run the next check and report."})
            body = {
                "model": "claude",
                "max_tokens": 40,
                "system": "Anthropic client. " + SYSTEM,  # not the other test's prefix (one simulator)
                "tools": tools,
                "tool_choice": {"type": "none"},
                "messages": messages,
            }
            r = c.post("/v1/messages", json=body, headers={**headers, "x-switchpoint-session": "ant"})
            assert r.status_code == 200, r.text
            doc = r.json()
            usages.append(doc["usage"])
            messages.append({"role": "assistant", "content": doc["content"]})
    previous = 0
    for u in usages:
        prompt = u["input_tokens"] + u["cache_read_input_tokens"] + u["cache_creation_input_tokens"]
        assert u["cache_read_input_tokens"] == previous
        assert u["cache_creation_input_tokens"] == prompt - previous and u["input_tokens"] == 0
        previous = prompt
    engine = make_engine(db)
    try:
        (row,) = usage(engine, ["deployment"])
    finally:
        engine.dispose()
    reads = sum(u["cache_read_input_tokens"] for u in usages)
    writes = sum(u["cache_creation_input_tokens"] for u in usages)
    want = (
        reads * (CLAUDE["input"] - CLAUDE["cached_input"])
        + writes * (CLAUDE["input"] - CLAUDE["cache_write"])
    ) / 1e6
    assert row.cached_input_tokens == reads and row.saved_usd == pytest.approx(want, rel=1e-9)
    assert row.cache_read_ratio > 0.9
