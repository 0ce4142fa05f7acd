"""What the batch tests share: the master key, JSONL input files, waiting for a batch."""

from __future__ import annotations

import json
import time
from typing import Any

from resilience_harness import AUTH

MASTER = AUTH["authorization"].removeprefix("Bearer ")


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def chat_line(
    i: int, model: str = "fast", prefix: str = "req-", max_tokens: int | None = None
) -> dict[str, Any]:
    """One ``/v1/chat/completions`` line of an input file."""
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": f"say {i}"}]}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return {"custom_id": f"{prefix}{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}


def chat_lines(n: int, model: str = "fast", prefix: str = "line-") -> bytes:
    """An input file of ``n`` chat lines (custom ids ``{prefix}0`` …)."""
    return jsonl([chat_line(i, model, prefix) for i in range(n)])


def wait(get: Any, until: Any, timeout_s: float = 120.0) -> Any:
    """Poll ``get()`` until ``until(value)``; the deadline is a hang guard, not a measurement."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = get()
        if until(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.02)
