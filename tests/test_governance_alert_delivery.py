"""Budget alerts' delivery: a webhook that fails is tried again with backoff, the alert arrives
once, signed; one that never answers is given up after the configured attempts and counted;
the log line names the budget and the threshold either way."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from switchpoint.config import Secret
from switchpoint.config.governance import Alerts
from switchpoint.governance.alerts import Alerter
from switchpoint.governance.budgets import Budget
from switchpoint.governance.state import MemoryState


class _Flaky:
    """A webhook that answers 503 to its first ``failures`` POSTs, then 204; keeps them all."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.posts: list[tuple[float, dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                outer.posts.append((time.monotonic(), {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(503 if len(outer.posts) <= outer.failures else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _budget() -> Budget:
    return Budget("key", "key-1", "ci", "daily", 10.0, time.time())


async def test_a_failing_webhook_is_tried_again_and_the_alert_arrives_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hook = _Flaky(failures=2)
    try:
        settings = Alerts(
            webhook_url=hook.url,
            secret=Secret("s3cret-value", "env:ALERT_SECRET"),
            thresholds=(0.5,),
            attempts=3,
        )
        alerter = Alerter(settings, MemoryState())
        with caplog.at_level(logging.WARNING, logger="switchpoint"):
            alerter.observe(_budget(), 6.0)
            await alerter.drain()
        assert len(hook.posts) == 3  # two 503s, then delivered
        assert alerter.delivery_failures == 0
        bodies = {body for _, _, body in hook.posts}
        assert len(bodies) == 1  # the same alert each time
        body = bodies.pop()
        assert json.loads(body)["threshold"] == 0.5 and json.loads(body)["budget"] == "key 'ci' daily"
        want = "sha256=" + hmac.new(b"s3cret-value", body, hashlib.sha256).hexdigest()
        assert all(h["x-switchpoint-signature"] == want for _, h, _ in hook.posts)
        gaps = [b[0] - a[0] for a, b in zip(hook.posts, hook.posts[1:], strict=False)]
        assert gaps[0] >= 0.2 and gaps[1] >= 0.45  # backoff: 0.25 s, then 0.5 s
        assert alerter.fired == {("key", "daily", 0.5): 1}
        lines = [r.getMessage() for r in caplog.records if "budget alert" in r.getMessage()]
        assert lines == ["budget alert: key 'ci' daily at 60% of $10.00 (threshold 50%)"]
        # the same threshold in the same period: not again
        alerter.observe(_budget(), 7.0)
        await alerter.drain()
        assert len(hook.posts) == 3
    finally:
        hook.close()


async def test_a_webhook_that_keeps_failing_is_given_up_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    hook = _Flaky(failures=100)
    try:
        settings = Alerts(webhook_url=hook.url, thresholds=(0.5,), attempts=2)
        alerter = Alerter(settings, MemoryState())
        with caplog.at_level(logging.WARNING, logger="switchpoint"):
            alerter.observe(_budget(), 5.0)
            await asyncio.wait_for(alerter.drain(), 10)
        assert len(hook.posts) == 2
        assert alerter.delivery_failures == 1
        assert any("webhook delivery failed" in r.getMessage() for r in caplog.records)
    finally:
        hook.close()
