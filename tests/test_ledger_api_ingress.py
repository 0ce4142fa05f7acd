"""The ledger's task column: the client's ``x-switchpoint-task``, else routing's own
classification (when a rule needed it), else nothing; and ``metadata`` tags and session."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from switchpoint.api.app import create_app
from switchpoint.config import parse

from servers import serve_in_thread


def _document(sim: str) -> dict[str, Any]:
    return {
        "providers": {"sim": {"family": "openai", "base_url": f"{sim}/openai/v1", "simulated": True}},
        "deployments": {
            "gpt": {"provider": "sim", "model": "sim-gpt", "price": {"input": 1.0, "output": 2.0}},
            "mini": {"provider": "sim", "model": "sim-mini", "price": {"input": 0.1, "output": 0.2}},
            "emb": {"provider": "sim", "model": "sim-embed", "kind": "embedding"},
        },
        "models": {"plain": "mini"},
        "routing": {
            "classifier": {
                "default_task": "chitchat",
                "rules": [{"task": "tooling", "when": {"tools": True}}],
            },
            "rules": [
                {"name": "tools", "match": {"task": "tooling"}, "candidates": ["gpt"]},
                {"name": "talk", "match": {"task": "chitchat"}, "candidates": ["mini"]},
            ],
            "default": {"name": "default", "candidates": ["mini"]},
        },
    }


TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}


def test_task_session_and_tags_in_the_ledger(
    simulator_url: str, ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWITCHPOINT_DATABASE_URL", ledger_url)
    cfg = parse(_document(simulator_url), env={})
    sent: dict[str, dict[str, Any]] = {
        "classified-default": {"json": {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}},
        "classified-rule": {
            "json": {"model": "auto", "messages": [{"role": "user", "content": "call f"}], "tools": [TOOL]}
        },
        "declared": {
            "json": {"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
            "headers": {"x-switchpoint-task": "translate"},
        },
        "none": {  # an alias no rule names: the classifier is not run for the ledger's sake
            "json": {"model": "plain", "messages": [{"role": "user", "content": "hi"}]}
        },
        "metadata": {
            "json": {
                "model": "plain",
                "messages": [{"role": "user", "content": "hi"}],
                "metadata": {"session_id": "sess-9", "task": "extract", "env": "prod"},
                "user": "carol",
            }
        },
    }
    ids: dict[str, str] = {}
    with serve_in_thread(create_app(cfg)) as url:
        for name, kw in sent.items():
            r = httpx.post(f"{url}/v1/chat/completions", timeout=30, **kw)
            assert r.status_code == 200, r.text
            ids[name] = r.headers["x-request-id"]
        r = httpx.post(
            f"{url}/v1/embeddings", json={"model": "emb", "input": "hello", "user": "dave"}, timeout=30
        )
        assert r.status_code == 200, r.text
        ids["embeddings"] = r.headers["x-request-id"]
        deadline = time.monotonic() + 15
        while True:
            got = httpx.get(f"{url}/admin/requests", params={"limit": "100"}, timeout=10).json()["data"]
            if len(got) >= len(ids) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    rows = {r["request_id"]: r for r in got}
    task = {name: rows[rid]["task"] for name, rid in ids.items()}
    assert task == {
        "classified-default": "chitchat",
        "classified-rule": "tooling",
        "declared": "translate",
        "none": None,
        "metadata": "extract",
        "embeddings": None,
    }
    meta = rows[ids["metadata"]]
    assert meta["session"] == "sess-9"  # metadata.session_id before the end user
    assert meta["end_user"] == "carol"
    assert meta["tags"] == ["env=prod"]
    assert rows[ids["none"]]["session"] is None and rows[ids["none"]]["tags"] is None  # none: NULL
    emb = rows[ids["embeddings"]]
    assert (emb["endpoint"], emb["end_user"], emb["session"]) == ("embeddings", "dave", "dave")
