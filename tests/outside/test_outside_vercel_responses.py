"""The Vercel AI SDK's ``@ai-sdk/openai`` default provider — the Responses API — against the
gateway: ``generateText``, ``streamText``, a tool round trip (``stopWhen``: the SDK runs the tool
and sends its output back) and ``generateObject``, for a simulated deployment of every family.

The gateway runs as ``switchpoint serve`` on embedded defaults (no config, no provider key). The
Node.js packages are pinned by ``vercel_responses/package-lock.json`` and installed with
``npm ci`` into a cache folder on first use (never into the repository).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

from outside_harness import SUMMARY, gateway_process
from sdk_suites import HERE, cache_root, locked

PROJECT = HERE / "vercel_responses"
FILES = ("package.json", "package-lock.json", "run.mjs")
MODELS = ("sim-gpt", "sim-claude", "sim-gemini")
CASES = ("text", "stream", "tools", "object")


def _tool(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is needed for the Vercel AI SDK test (Node.js 18+ and npm)"
    return found


def install() -> Path:
    """The folder with ``node_modules`` for the locked packages (``npm ci`` once per lockfile)."""
    lock = (PROJECT / "package-lock.json").read_bytes()
    key = hashlib.sha256((PROJECT / "package.json").read_bytes() + lock).hexdigest()[:16]
    root = cache_root() / f"vercel-ai-responses-{key}"
    done = root / ".switchpoint-installed"
    with locked(cache_root() / ".vercel-ai-responses.lock"):
        root.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            shutil.copyfile(PROJECT / name, root / name)
        if not done.exists():
            cmd = [_tool("npm"), "ci", "--no-audit", "--no-fund", "--ignore-scripts"]
            run = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=600, check=False)
            assert run.returncode == 0, (
                f"npm ci failed (is the npm registry reachable?):\n{run.stdout}{run.stderr}"
            )
            done.write_text("ok\n")
    return root


def test_ai_sdk_openai_responses_on_embedded_defaults(tmp_path: Path) -> None:
    root = install()
    node = _tool("node")
    with gateway_process(tmp_path) as gateway:
        run = subprocess.run(
            [node, "run.mjs", *MODELS],
            cwd=root,
            env={"PATH": str(Path(node).parent), "GATEWAY_URL": gateway.url},
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    SUMMARY.append(
        "vercel @ai-sdk/openai (Responses): "
        + ", ".join(f"{r['model']} {r['case']} {'failed' if 'error' in r else 'ok'}" for r in lines)
    )
    assert run.returncode == 0, f"@ai-sdk/openai against the gateway:\n{run.stdout}{run.stderr}"
    got = {(r["model"], r["case"]): r for r in lines}
    assert set(got) == {(m, c) for m in MODELS for c in CASES}
    for model in MODELS:
        text, stream = got[model, "text"], got[model, "stream"]
        assert text["text"].startswith(f"[simulated {model}]") and text["api"] == "response", text
        assert text["usage"]["inputTokens"] > 0 and text["usage"]["outputTokens"] > 0, text
        assert stream["text"] == text["text"] and stream["finishReason"] == "stop", stream
        tools = got[model, "tools"]
        assert len(tools["calls"]) == 1 and tools["steps"] == 2, tools
        assert "The tool returned" in tools["text"] and "sunny in" in tools["text"], tools
        obj = got[model, "object"]["object"]
        assert isinstance(obj["name"], str) and isinstance(obj["population"], int), obj
