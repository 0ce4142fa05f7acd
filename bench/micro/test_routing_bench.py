"""Routing decision overhead, measured.

    python bench/micro/test_routing_bench.py            # prints µs per decision
    pytest bench/micro -s                               # the same with pytest-benchmark

Target: under 50 µs per decision for a 20-rule policy with classification by rules. The
semantic classifier (a local embedding model) is measured separately: it only runs when a
request declares no task and no feature rule decides.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from switchpoint.canonical import ChatRequest, ImagePart, Message, TextPart, Tool
from switchpoint.config import Config, load, parse
from switchpoint.health import HealthRegistry
from switchpoint.routing import Router

ROOT = Path(__file__).resolve().parents[2]
TARGET_US = 50.0
TASKS = [f"task{i}" for i in range(14)]


def policy_document(n_rules: int = 20) -> dict[str, Any]:
    """A 20-rule policy over 8 deployments of 3 families, with every kind of match."""
    fams = {"openai": "/v1", "anthropic": "", "gemini": "/v1beta"}
    providers = {
        f"p-{f}": {"family": f, "base_url": f"http://127.0.0.1:9{suffix}"} for f, suffix in fams.items()
    }
    models = [
        "gpt-5.5",
        "gpt-5-mini",
        "claude-opus-4-7",
        "claude-sonnet-4-6",
        "claude-haiku-4-5",
        "gemini-3.1-pro-preview",
        "gemini-3-flash-preview",
        "gpt-4.1",
    ]
    deployments = {
        f"d{i}": {
            "provider": "p-openai"
            if m.startswith("gpt")
            else "p-anthropic"
            if m.startswith("claude")
            else "p-gemini",
            "model": m,
            "context_window": 200_000 + 100_000 * i,
            "usable_fraction": 0.7,
        }
        for i, m in enumerate(models)
    }
    names = list(deployments)
    strategies = [
        "priority",
        "lowest_cost",
        "lowest_latency",
        "least_busy",
        "cost_under_constraint",
        "weighted",
    ]
    rules: list[dict[str, Any]] = [
        {
            "name": "budget",
            "match": {"priority": "budget"},
            "candidates": names[4:],
            "strategy": "lowest_cost",
        },
        {
            "name": "speed",
            "match": {"priority": "speed"},
            "candidates": names[3:7],
            "strategy": "lowest_latency",
        },
        {"name": "huge", "match": {"prompt_tokens": {"min": 300_000}}, "candidates": names[5:]},
        {"name": "team", "match": {"team": ["research", "ml"]}, "candidates": names[:3]},
        {"name": "tier", "match": {"tags": {"tier": "gold"}}, "candidates": names[:2]},
        {"name": "long-out", "match": {"output_tokens": {"min": 32_000}}, "candidates": names[:3]},
    ]
    for i in range(n_rules - len(rules)):
        rules.append(
            {
                "name": f"rule-{i}",
                "match": {"task": TASKS[i % len(TASKS)], **({"stream": True} if i % 3 == 0 else {})},
                "candidates": random.Random(i).sample(names, 4),
                "strategy": strategies[i % len(strategies)],
                "max_latency_ms": 4000,
                "params": {"temperature": 0.2, "max_tokens": 2048},
            }
        )
    return {
        "providers": providers,
        "deployments": deployments,
        "models": {"smart": names[:3]},
        "routing": {
            "rules": rules[:n_rules],
            "default": {"candidates": names[:4]},
            "classifier": {
                "default_task": "task13",
                "rules": [
                    {"task": "task0", "when": {"images": True}},
                    {"task": "task1", "when": {"tools": True}},
                    {"task": "task2", "when": {"json_schema": True}},
                    {"task": "task3", "when": {"prompt_tokens": {"min": 100_000}}},
                ],
            },
        },
    }


def requests() -> list[tuple[ChatRequest, dict[str, str]]]:
    """A mix: small chats, tools, images, a multi-turn agent loop; no task declared."""
    system = Message(role="system", parts=[TextPart(text="You are a careful assistant. " * 20)])
    out: list[tuple[ChatRequest, dict[str, str]]] = []
    for i in range(16):
        msgs = [system]
        for t in range(1 + i % 4):
            msgs.append(Message(role="user", parts=[TextPart(text=f"question {t} about the code " * 12)]))
            msgs.append(Message(role="assistant", parts=[TextPart(text="an answer " * 30)]))
        msgs.append(Message(role="user", parts=[TextPart(text="and now?")]))
        if i % 5 == 0:
            msgs[-1].parts.append(ImagePart(url="https://example.com/x.png"))
        req = ChatRequest(
            model="auto",
            messages=msgs,
            tools=[Tool(name="grep"), Tool(name="edit")] if i % 4 == 1 else None,
            stream=i % 2 == 0,
        )
        headers = {"x-switchpoint-session": f"s{i}"} if i % 3 == 0 else {}
        out.append((req, headers))
    return out


def health(config: Config) -> HealthRegistry:
    reg = HealthRegistry()
    for i, name in enumerate(config.deployments):
        reg.on_first_token(name, 200.0 + 50 * i)
        reg.on_success(name, 1500.0 + 300 * i)
    return reg


def rules_router() -> tuple[Router, HealthRegistry]:
    cfg = parse(policy_document(20), env={})
    return Router(cfg, rng=random.Random(1)), health(cfg)


def one_pass(router: Router, reg: HealthRegistry, batch: list[tuple[ChatRequest, dict[str, str]]]) -> None:
    for req, headers in batch:
        router.route(req, headers=headers, principal="master", health=reg)


def per_decision_us(fn: Callable[[], None], n_per_call: int, repeat: int = 7, number: int = 200) -> float:
    """Median µs per decision over ``repeat`` timings of ``number`` calls."""
    fn()
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        runs.append((time.perf_counter() - t0) / (number * n_per_call) * 1e6)
    return statistics.median(runs)


def example_router() -> tuple[Router, Any]:
    env = {
        k: "x"
        for k in (
            "SWITCHPOINT_MASTER_KEY",
            "OPENAI_API_KEY",
            "ANTHROPIC_API_KEY",
            "GEMINI_API_KEY",
            "DEEPSEEK_API_KEY",
        )
    }
    cfg = load(ROOT / "examples" / "router_config.yaml", env=env)
    router = Router(cfg, rng=random.Random(1))
    return router, router.classifier.semantic if router.classifier is not None else None


# --- pytest-benchmark ----------------------------------------------------------------------------


def test_decision_20_rules_classified_by_rules(benchmark: Any) -> None:
    router, reg = rules_router()
    batch = requests()
    benchmark(one_pass, router, reg, batch)
    if benchmark.stats is None:  # --benchmark-disable: the pass ran once, nothing was timed
        return
    us = benchmark.stats.stats.median / len(batch) * 1e6
    print(f"\n20-rule policy, classification by rules: {us:.1f} µs per decision (target < {TARGET_US:.0f})")
    assert us < TARGET_US * 4  # a loose guard against regressions on slow CI machines


def test_semantic_classifier_cost(benchmark: Any) -> None:
    _, semantic = example_router()
    if semantic is None:
        return
    benchmark(
        semantic.classify, "Please look over this patch and point out anything risky before I merge it."
    )
    if benchmark.stats is None:
        return
    print(f"\nsemantic classifier: {benchmark.stats.stats.median * 1e3:.2f} ms per prompt")


# --- plain run ----------------------------------------------------------------------------------


def main() -> int:
    router, reg = rules_router()
    batch = requests()
    rules_us = per_decision_us(lambda: one_pass(router, reg, batch), len(batch))
    declared = [(r, {**h, "x-switchpoint-task": f"task{i % 14}"}) for i, (r, h) in enumerate(batch)]
    declared_us = per_decision_us(lambda: one_pass(router, reg, declared), len(declared))
    ex_router, semantic = example_router()
    ex_batch = [
        (r, {**h, "x-switchpoint-task": t})
        for (r, h), t in zip(
            batch, ["code_review", "summarize", "classify", "terminal_agent"] * 4, strict=True
        )
    ]
    ex_us = per_decision_us(lambda: one_pass(ex_router, reg, ex_batch), len(ex_batch))
    print(
        f"20-rule policy, tasks classified by rules:     {rules_us:6.1f} µs per decision (target < {TARGET_US:.0f})"
    )
    print(f"20-rule policy, tasks declared by the client:  {declared_us:6.1f} µs per decision")
    print(f"examples/router_config.yaml, tasks declared:   {ex_us:6.1f} µs per decision")
    if semantic is not None:
        text = "Please look over this patch and point out anything risky before I merge it."
        sem_us = per_decision_us(lambda: semantic.classify(text), 1, repeat=5, number=40)
        print(
            f"semantic classifier (MiniLM int8, 1 thread):  {sem_us / 1000:6.2f} ms per prompt (added when it runs)"
        )
    return 0 if rules_us < TARGET_US else 1


if __name__ == "__main__":
    sys.exit(main())
