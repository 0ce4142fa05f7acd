"""The console's browser tests: a gateway with a ledger and a master key in front of a simulator
(``sim-claude`` always fails, so ``smart`` fails over to ``sim-gpt``), seeded with known traffic,
and headless Chromium (Debian's ``chromium`` package) driven by Playwright.

Chromium is never downloaded: ``./dev test`` installs Debian's package when it is missing (as
root with apt-get); otherwise these tests skip, saying why.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from switchpoint import defaults
from switchpoint.api.app import create_app
from switchpoint.config import parse
from switchpoint.simulator import Behavior, SimConfig
from switchpoint.simulator import create_app as create_simulator

from servers import serve_in_thread

CHROMIUM = os.environ.get("SWITCHPOINT_TEST_CHROMIUM", "/usr/bin/chromium")
MASTER = "sk-console-master-test"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "console"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def browser_missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium; ./dev test installs it as root)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[test]')"
    return None


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium with a fresh profile."""
    why = browser_missing()
    if why is not None:
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="sp-chromium-")
    try:
        with sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                args=CHROMIUM_ARGS,
                headless=True,
                viewport={"width": 1280, "height": 800},
            )
            try:
                yield ctx
            finally:
                ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


class Watch:
    """Console errors, page errors and failed requests of a page, to assert there are none."""

    def __init__(self, page: Any) -> None:
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        page.on("requestfailed", lambda req: self.problems.append(f"failed: {req.url} {req.failure}"))
        page.on("response", self._response)

    def _console(self, msg: Any) -> None:
        if msg.type in ("error", "warning"):
            self.problems.append(f"console {msg.type}: {msg.text}")

    def _response(self, resp: Any) -> None:
        if resp.status >= 400:
            self.problems.append(f"HTTP {resp.status}: {resp.url}")

    def take(self) -> list[str]:
        out, self.problems = self.problems, []
        return out


def document(sim_url: str, db_url: str) -> dict[str, Any]:
    doc = defaults.simulated_document(sim_url)
    doc["storage"] = {"url": db_url, "flush_interval_ms": 50}
    doc["accounting"] = {"display_currency": "EUR", "rates": {"EUR": 0.9}}
    return doc


@contextlib.contextmanager
def console_gateway(db_url: str) -> Iterator[tuple[str, Any]]:
    """(gateway URL, Gateway) with the ledger at ``db_url`` and :data:`MASTER` as master key."""
    sim = create_simulator(SimConfig(models={"sim-claude": Behavior(status=500)}))
    # SWITCHPOINT_DATABASE_URL beats storage.url (and conftest sets it for every test): point it here.
    with pytest.MonkeyPatch.context() as mp, serve_in_thread(sim) as sim_url:
        mp.setenv("SWITCHPOINT_DATABASE_URL", db_url)
        cfg = parse(document(sim_url, db_url), source="console-test", env={"SWITCHPOINT_MASTER_KEY": MASTER})
        app = create_app(cfg)
        with serve_in_thread(app) as url:
            yield url, app.state.gateway


def admin(url: str, path: str, **params: Any) -> Any:
    r = httpx.get(f"{url}{path}", params=params, headers={"authorization": f"Bearer {MASTER}"}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def seed(url: str) -> list[str]:
    """Known traffic: answered requests on three deployments with task types and sessions,
    streams (time to first token), cache reads, a failover (smart: sim-claude fails) and a
    failed request. Returns the request ids; waits until every row is in the ledger."""
    ids: list[str] = []
    h = {"authorization": f"Bearer {MASTER}"}
    long_prompt = "The console shows what the ledger holds. " * 120  # cacheable on the second call
    with httpx.Client(base_url=url, headers=h, timeout=30) as c:

        def chat(model: str, text: str, *, stream: bool = False, extra: dict[str, str] | None = None) -> None:
            body = {"model": model, "messages": [{"role": "user", "content": text}], "stream": stream}
            r = c.post("/v1/chat/completions", json=body, headers=extra or {})
            ids.append(r.headers["x-request-id"])

        for i in range(3):
            chat("sim-gpt", long_prompt, extra={"x-switchpoint-task": "code", "x-switchpoint-session": "s-1"})
            chat("fast", f"hello {i}", stream=True, extra={"x-switchpoint-task": "chat"})
            chat(
                "sim-gemini",
                f"summarize {i}",
                extra={"x-switchpoint-task": "summarize", "x-switchpoint-session": "s-1"},
            )
        chat("smart", "fail over please", extra={"x-switchpoint-task": "code"})
        chat("sim-claude", "this one fails")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        doc = admin(url, "/admin/usage")
        if doc["totals"]["requests"] >= len(ids):
            break
        time.sleep(0.1)
    return ids


def sign_in(page: Any, url: str, key: str = MASTER) -> None:
    """A fresh sign-in (the browser's earlier session cookie is dropped first)."""
    page.set_default_timeout(10_000)
    page.context.clear_cookies()
    page.goto(f"{url}/ui/login")
    page.fill("#key", key)
    page.click("[data-testid=sign-in]")
    page.wait_for_load_state("load")


def shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def parse_currency() -> Any:
    """The display currency :func:`document` configures (EUR at 0.9 per USD)."""
    from switchpoint.config.accounting import DisplayCurrency

    return DisplayCurrency(code="EUR", rate=0.9)
