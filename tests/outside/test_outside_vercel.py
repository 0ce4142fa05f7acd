"""The Vercel AI SDK (``@ai-sdk/anthropic`` ``generateText``, non-streamed) against the gateway.

The gateway runs as ``switchpoint serve`` on embedded defaults (no config, no provider key: the
simulated providers). The Node.js packages are pinned by ``vercel/package-lock.json`` and
installed with ``npm ci`` into a cache folder on first use (never into the repository).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

from outside_harness import SUMMARY, gateway_process
from sdk_suites import HERE, cache_root, locked

PROJECT = HERE / "vercel"
FILES = ("package.json", "package-lock.json", "generate.mjs")
# One passed through (Anthropic wire upstream), one the gateway translates (OpenAI wire upstream).
MODELS = ("sim-claude", "sim-gpt")


def _tool(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is needed for the Vercel AI SDK test (Node.js 18+ and npm)"
    return found


def install() -> Path:
    """The folder with ``node_modules`` for the locked packages (``npm ci`` once per lockfile)."""
    lock = (PROJECT / "package-lock.json").read_bytes()
    key = hashlib.sha256((PROJECT / "package.json").read_bytes() + lock).hexdigest()[:16]
    root = cache_root() / f"vercel-ai-{key}"
    done = root / ".switchpoint-installed"
    with locked(cache_root() / ".vercel-ai.lock"):
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


def test_ai_sdk_anthropic_generate_text_on_embedded_defaults(tmp_path: Path) -> None:
    root = install()
    node = _tool("node")
    with gateway_process(tmp_path) as gateway:
        run = subprocess.run(
            [node, "generate.mjs", *MODELS],
            cwd=root,
            env={"PATH": str(Path(node).parent), "GATEWAY_URL": gateway.url},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    SUMMARY.append(
        "vercel @ai-sdk/anthropic generateText: "
        + ", ".join(f"{r['model']} {'failed' if 'error' in r else 'ok'}" for r in lines)
    )
    assert run.returncode == 0, f"@ai-sdk/anthropic against the gateway:\n{run.stdout}{run.stderr}"
    assert [r["model"] for r in lines] == list(MODELS)
    for result in lines:
        assert result["text"].startswith("[simulated "), result
        assert result["finishReason"] in ("stop", "length"), result
        assert result["usage"]["inputTokens"] > 0 and result["usage"]["outputTokens"] > 0, result
