"""The gateway the outside suites talk to: the simulator behind it, every upstream answer watched.

Two ways to run it: in this process on a loopback port (:func:`gateway_in_thread`, the SDK
suites and the fuzzer), or as ``switchpoint serve`` in a child process on embedded defaults
(:func:`gateway_process`, the Node.js client).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from switchpoint import defaults
from switchpoint.api.app import create_app
from switchpoint.api.responses_state import owner_of
from switchpoint.config import parse
from switchpoint.executor import H1Transport
from switchpoint.providers.base import UpstreamRequest, UpstreamResponse

from gateway_harness import closed_port
from servers import serve_in_thread

# The model names the SDKs' own tests send, each an alias of a simulated deployment of the
# same wire family, so the gateway passes those requests through as it would in production.
SDK_MODELS = {
    "gpt-6-astra": "sim-gpt",  # openai tests/api_resources/chat, models (up to 3.57), responses compact
    "gpt-6.2-astra": "sim-gpt",  # the same tests from openai 3.60 on, and responses create
    "text-embedding-3-small": "sim-embed",  # openai tests/api_resources/test_embeddings.py
    "claude-opus-5-5": "sim-claude",  # anthropic tests/api_resources/test_messages.py
    "model_id": "sim-claude",  # anthropic tests/api_resources/test_models.py (models.retrieve)
}

# Lines for the closing summary of the pytest run (counts per suite, per fuzzed operation).
SUMMARY: list[str] = []

# Environment variables that would change which providers embedded defaults pick, or lock the gateway,
_DROPPED_ENV = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "DEEPSEEK_API_KEY",
    "OLLAMA_HOST",
    "SWITCHPOINT_MASTER_KEY",
    "SWITCHPOINT_SIM_BASE",
    "SWITCHPOINT_CONFIG",
    # and options of the pytest run that started this one, which a child pytest would inherit
    "PYTEST_ADDOPTS",
    "PYTEST_PLUGINS",
)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without provider keys or gateway settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    env.update(extra)
    return env


@dataclass
class UpstreamWatch:
    """The gateway's real upstream client, noting every upstream answer with status >= 500.

    A 5xx the client gets is the gateway's own unless an upstream answered one for it.
    """

    inner: H1Transport = field(default_factory=lambda: H1Transport(pool_size=64))
    calls: int = 0
    server_errors: list[tuple[str, int]] = field(default_factory=list)

    def _note(self, request: UpstreamRequest, status: int) -> None:
        self.calls += 1
        if status >= 500:
            self.server_errors.append((request.url, status))

    async def send(self, request: UpstreamRequest, **kw: Any) -> UpstreamResponse:
        response = await self.inner.send(request, **kw)
        self._note(request, response.status)
        return response

    async def open_stream(self, request: UpstreamRequest, **kw: Any) -> Any:
        stream = await self.inner.open_stream(request, **kw)
        self._note(request, stream.status)
        return stream

    async def close(self) -> None:
        await self.inner.close()


# The deployment of the other wire family for each simulated one, so the gateway translates.
CROSSED = {"sim-gpt": "sim-claude", "sim-claude": "sim-gpt", "sim-embed": "sim-gemini-embed"}


def outside_document(sim: str, aliases: dict[str, str]) -> dict[str, Any]:
    """Embedded defaults' simulated providers, plus ``aliases`` (client model name -> deployment)
    and an embedding deployment on the Gemini wire."""
    doc = defaults.simulated_document(sim)
    doc["deployments"]["sim-gemini-embed"] = {
        "provider": "sim-gemini",
        "model": "sim-embed",
        "kind": "embedding",
    }
    doc["models"].update(aliases)
    return doc


@dataclass
class RunningGateway:
    url: str
    watch: UpstreamWatch
    #: Where its ledger lives (the database its files, batches and stored responses are read from).
    database_url: str
    #: Who a caller is to it, by the request's headers (the owner its stores key objects by).
    owner: Callable[[Mapping[str, str]], str]


@contextlib.contextmanager
def gateway_in_thread(sim: str, aliases: dict[str, str]) -> Iterator[RunningGateway]:
    """An open gateway (no master key: the suites send keys of their own) on a loopback port."""
    cfg = parse(outside_document(sim, aliases), source="<outside suites>", env={})
    watch = UpstreamWatch()
    app = create_app(cfg, transport=watch)
    gw = app.state.gateway
    assert gw.ledger is not None, "the outside gateway keeps its ledger (files, batches, responses)"
    database = gw.ledger.engine.url.render_as_string(hide_password=False)

    def owner(headers: Mapping[str, str]) -> str:
        principal = gw.auth.resolve(headers)
        assert principal is not None, "an open gateway knows every caller without a database read"
        return owner_of(principal)

    with serve_in_thread(app) as url:
        yield RunningGateway(url, watch, database, owner)


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"switchpoint serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"switchpoint serve did not answer /health at {url} within {timeout_s} s")


@dataclass
class GatewayProcess:
    url: str
    log: Path  # the process's stdout and stderr

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def gateway_process(log_dir: Path, timeout_s: float = 30.0) -> Iterator[GatewayProcess]:
    """``python -m switchpoint.cli serve`` on embedded defaults (no provider key: the simulator)."""
    port = closed_port()
    running = GatewayProcess(f"http://127.0.0.1:{port}", log_dir / "switchpoint-serve.log")
    cmd = [sys.executable, "-m", "switchpoint.cli", "serve", "--port", str(port), "--shutdown-timeout", "2"]
    with running.log.open("wb") as log:
        proc = subprocess.Popen(cmd, env=clean_env(), stdout=log, stderr=subprocess.STDOUT)
        try:
            try:
                _wait_healthy(running.url, proc, timeout_s)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}\n{running.output()}") from None
            yield running
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
