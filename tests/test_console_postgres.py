"""Proof, in headless Chromium over a PostgreSQL ledger: the overview's numbers equal
``GET /admin/usage`` for the same range (PostgreSQL computes the percentiles itself, with
``percentile_disc``), and the request page shows the failover's attempts."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

import console_harness as h
from switchpoint.store import migrate

pytestmark = pytest.mark.postgres


def _value(page: Any, test_id: str) -> float | None:
    raw = page.locator(f"[data-testid={test_id}]").get_attribute("data-value")
    return None if raw in (None, "", "None") else float(raw)


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def test_overview_on_postgresql_equals_admin_usage() -> None:
    from ledger_db import PgSchema

    why = h.browser_missing()
    if why is not None:
        pytest.skip(why)
    schema = PgSchema("console")
    try:
        migrate.upgrade(schema.url)
        with h.console_gateway(schema.url) as (url, _gw), h.chromium() as browser:
            ids = h.seed(url)
            page = browser.new_page()
            watch = h.Watch(page)
            h.sign_in(page, url)
            now = time.time()
            since, until = now - 3600, now + 60
            page.goto(f"{url}/ui/overview?since={since}&until={until}")
            totals = h.admin(url, "/admin/usage", since=since, until=until)["totals"]
            one = h.admin(url, "/admin/usage", since=since, until=until, group_by="dialect")["data"][0]
            assert totals["requests"] == len(ids)
            assert _value(page, "stat-requests") == totals["requests"]
            assert _close(_value(page, "stat-error-rate"), totals["errors"] / totals["requests"])
            assert _close(_value(page, "stat-spend"), totals["cost_usd"])
            assert _close(_value(page, "stat-cache-ratio"), totals["cache_read_ratio"])
            assert _close(_value(page, "stat-saved-net"), totals["saved_usd"])
            for stat, field in [
                ("stat-latency-p50", "latency_p50_ms"),
                ("stat-latency-p95", "latency_p95_ms"),
                ("stat-ttft-p50", "ttft_p50_ms"),
                ("stat-ttft-p95", "ttft_p95_ms"),
            ]:
                assert one[field] is not None and _close(_value(page, stat), one[field]), stat
            page.goto(f"{url}/ui/requests/{ids[-2]}")
            assert page.locator("[data-testid=attempts-table] tbody tr").count() == 2
            for name in ("models", "tasks", "routing", "requests", "keys", "alerts"):
                page.goto(f"{url}/ui/{name}")
                assert "This page failed" not in page.content(), name
            assert watch.take() == []
            h.shot(page, "alerts-postgresql")
    finally:
        schema.drop()
