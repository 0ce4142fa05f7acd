"""Proof, in headless Chromium: every console page loads with no console error and no failed
request, at 1280x800 and at a phone's 375 px (no sideways scrolling); sign-in, sign-out and CSRF
work; the overview's numbers equal ``GET /admin/usage`` for the same range; keys are created,
edited and revoked from the keys page. Screenshots of every page go to test-artifacts/console/.
"""

from __future__ import annotations

import calendar
import itertools
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import console_harness as h
from switchpoint import defaults
from switchpoint.store import migrate

PAGES = ["overview", "models", "tasks", "routing", "requests", "keys", "alerts"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    why = h.browser_missing()
    if why is not None:
        pytest.skip(why)
    db = f"sqlite:///{tmp_path_factory.mktemp('console') / 'ledger.db'}"
    migrate.upgrade(db)
    with h.console_gateway(db) as (url, gw):
        ids = h.seed(url)
        yield {"url": url, "gw": gw, "ids": ids}


@pytest.fixture(scope="module")
def browser(site: dict[str, Any]) -> Iterator[Any]:
    with h.chromium() as ctx:
        yield ctx


@pytest.fixture
def page(browser: Any, site: dict[str, Any]) -> Iterator[Any]:
    p = browser.new_page()
    h.sign_in(p, site["url"])
    yield p
    p.close()


def _no_overflow(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    view = page.evaluate("window.innerWidth")
    assert width <= view + 1, f"{page.url}: the page is {width}px wide in a {view}px window"


@pytest.mark.parametrize("viewport", [(1280, 800), (375, 812)], ids=["desktop", "phone"])
def test_every_page_loads_cleanly(browser: Any, site: dict[str, Any], viewport: tuple[int, int]) -> None:
    page = browser.new_page()
    page.set_viewport_size({"width": viewport[0], "height": viewport[1]})
    watch = h.Watch(page)
    h.sign_in(page, site["url"])
    rid = site["ids"][-2]  # the failover
    targets = [*PAGES, f"requests/{rid}"]
    suffix = "" if viewport[0] > 400 else "-phone"
    for name in targets:
        page.goto(f"{site['url']}/ui/{name}")
        page.wait_for_load_state("networkidle")
        assert page.locator("h1").first.is_visible(), name
        assert "This page failed" not in page.content(), name
        assert watch.take() == [], name
        _no_overflow(page)
        h.shot(page, ("request" if name.startswith("requests/") else name) + suffix)
    page.close()


def test_sign_in_sign_out_and_the_cookie(browser: Any, site: dict[str, Any]) -> None:
    url = site["url"]
    browser.clear_cookies()
    page = browser.new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{url}/ui/models")
    assert page.url.startswith(f"{url}/ui/login"), "a page without a session goes to sign-in"
    page.fill("#key", "sk-wrong")
    page.click("[data-testid=sign-in]")
    assert "not valid" in page.locator("[data-testid=login-error]").inner_text()
    page.fill("#key", h.MASTER)
    page.click("[data-testid=sign-in]")
    page.wait_for_url(f"{url}/ui/models")  # back where it was going
    cookie = next(c for c in browser.cookies() if c["name"] == "sp_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
    assert page.evaluate("document.cookie") == "", "scripts cannot read the session"
    page.click("[data-testid=sign-out]")
    page.wait_for_url(f"{url}/ui/login")
    assert not [c for c in browser.cookies() if c["name"] == "sp_session"]
    page.goto(f"{url}/ui/overview")
    assert page.url.startswith(f"{url}/ui/login")
    page.close()


def test_a_forged_or_expired_cookie_is_refused(site: dict[str, Any]) -> None:
    from switchpoint.console.session import Signer, secret_for

    url = site["url"]
    signer = Signer(secret_for(site["gw"].config))
    good, _ = signer.issue("master", None)
    old, _ = signer.issue("master", None, now=time.time() - 9 * 3600)  # past its 8 hours
    forged, _ = Signer(b"another secret").issue("master", None)
    edited = good.split(".")[0][:-2] + "xx." + good.split(".")[1]
    for value, ok in [(good, True), (old, False), (forged, False), (edited, False)]:
        r = httpx.get(f"{url}/ui/overview", cookies={"sp_session": value}, follow_redirects=False)
        assert (r.status_code == 200) is ok, (value, r.status_code)
        if not ok:
            assert r.status_code == 303 and r.headers["location"].startswith("/ui/login")


def test_a_post_without_the_csrf_token_is_refused(page: Any, site: dict[str, Any]) -> None:
    url = site["url"]
    before = h.admin(url, "/admin/teams")["data"]
    # The browser's own session cookie goes with these requests: only the token is missing or wrong.
    r = page.request.post(f"{url}/ui/teams", form={"name": "sneaky"}, max_redirects=0)
    assert r.status == 403 and "security token" in r.text()
    r = page.request.post(f"{url}/ui/teams", form={"name": "sneaky", "csrf": "x" * 32}, max_redirects=0)
    assert r.status == 403
    r = page.request.post(f"{url}/ui/logout", form={}, max_redirects=0)
    assert r.status == 403
    assert h.admin(url, "/admin/teams")["data"] == before
    page.goto(f"{url}/ui/overview")
    assert page.url == f"{url}/ui/overview", "still signed in: the refused sign-out did nothing"
    # With the page's token the same sign-out works.
    page.click("[data-testid=sign-out]")
    page.wait_for_url(f"{url}/ui/login")


def test_the_sign_in_form_needs_its_token(site: dict[str, Any]) -> None:
    r = httpx.post(f"{site['url']}/ui/login", data={"key": h.MASTER}, follow_redirects=False)
    assert r.status_code == 403 and "sp_session" not in r.headers.get("set-cookie", "")


def _value(page: Any, test_id: str) -> float | None:
    raw = page.locator(f"[data-testid={test_id}]").get_attribute("data-value")
    return None if raw in (None, "", "None") else float(raw)


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def test_overview_numbers_equal_admin_usage(page: Any, site: dict[str, Any]) -> None:
    url = site["url"]
    now = time.time()
    since, until = now - 3600, now + 60
    page.goto(f"{url}/ui/overview?since={since}&until={until}")
    window = page.locator("[data-testid=window]")
    assert float(window.get_attribute("data-since")) == since
    assert float(window.get_attribute("data-until")) == until
    totals = h.admin(url, "/admin/usage", since=since, until=until)["totals"]
    by_dep = h.admin(url, "/admin/usage", since=since, until=until, group_by="deployment")["data"]
    assert totals["requests"] == len(site["ids"]) and totals["errors"] >= 1
    assert _value(page, "stat-requests") == totals["requests"]
    assert _close(_value(page, "stat-error-rate"), totals["errors"] / totals["requests"])
    assert _close(_value(page, "stat-spend"), totals["cost_usd"])
    assert _close(_value(page, "stat-cache-ratio"), totals["cache_read_ratio"])
    assert totals["cached_input_tokens"] > 0, "the seed has cache reads"
    assert _value(page, "stat-input-tokens") == totals["input_tokens"]
    assert _value(page, "stat-output-tokens") == totals["output_tokens"]
    one = h.admin(url, "/admin/usage", since=since, until=until, group_by="dialect")["data"]
    assert len(one) == 1  # every seeded request is OpenAI: its percentiles are the totals'
    for stat, field in [
        ("stat-latency-p50", "latency_p50_ms"),
        ("stat-latency-p95", "latency_p95_ms"),
        ("stat-ttft-p50", "ttft_p50_ms"),
        ("stat-ttft-p95", "ttft_p95_ms"),
    ]:
        assert one[0][field] is not None
        assert _close(_value(page, stat), one[0][field]), stat
    # Saved by cache reads: cached tokens at the deployment's plain input price, minus their cost
    # (the prices written out from defaults.py's simulated deployments).
    price_in = {"sim-gpt": 1.25, "sim-mini": 0.1, "sim-claude": 5.0, "sim-gemini": 0.3}
    saved = sum(
        d["cached_input_tokens"] * price_in[d["deployment"]] / 1e6 - d["cost_cached_input"]
        for d in by_dep
        if d["deployment"]
    )
    assert saved > 0
    assert _close(_value(page, "stat-cache-saved"), saved)
    # The ledger's own net savings (reads' discount less write surcharges), as /admin/usage sums them.
    assert _close(_value(page, "stat-saved-net"), totals["saved_usd"])
    # Spend today and this month: /admin/usage from the day's and the month's start.
    day = float(int(now // 86400) * 86400)
    today = h.admin(url, "/admin/usage", since=day)["totals"]["cost_usd"]
    assert _close(_value(page, "stat-spend-today"), today)
    # Shown in USD and in the display currency (EUR at 0.9 per USD).
    text = page.locator("[data-testid=stat-spend]").inner_text()
    assert "$" in text and "EUR" in text
    assert f"{totals['cost_usd'] * 0.9:,.4f}"[:5] in text.replace(",", "")


CHARTS = ("chart-requests", "chart-spend", "chart-latency")


def test_overview_charts_are_drawn_by_uplot_from_the_servers_numbers(page: Any, site: dict[str, Any]) -> None:
    url = site["url"]
    watch = h.Watch(page)
    page.goto(f"{url}/ui/overview?range=24h")
    page.wait_for_function("document.querySelectorAll('figure.chart[data-drawn=uplot]').length === 3")
    assert watch.take() == []
    for tid in CHARTS:
        fig = page.locator(f"[data-testid={tid}]")
        assert fig.locator(".uplot canvas").first.is_visible(), tid
        assert not fig.locator(".fallback svg").is_visible(), f"{tid}: the SVG fallback is hidden once drawn"
        assert fig.locator(".fallback svg").count() == 1, f"{tid}: the SVG stays in the page"
    got = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('figure.chart')].map(f => [
            f.dataset.testid,
            {doc: JSON.parse(f.querySelector('script.chart-data').textContent), data: f.uplot.data},
        ]))"""
    )
    w = page.locator("[data-testid=window]")
    since, until = float(w.get_attribute("data-since")), float(w.get_attribute("data-until"))
    rows = h.admin(url, "/admin/usage", since=since, until=until, group_by="hour")["data"]
    by_hour = {calendar.timegm(time.strptime(r["hour"], "%Y-%m-%dT%H:00:00Z")): r for r in rows}
    xs = got["chart-requests"]["doc"]["x"]
    assert len(xs) >= 24 and all(b - a == 3600 for a, b in itertools.pairwise(xs))
    assert set(by_hour) <= set(xs) and by_hour, "every hour with requests is a bucket of the charts"
    assert sum(r["requests"] for r in rows) == len(site["ids"])

    def want(field: str, default: Any) -> list[Any]:
        return [by_hour[x][field] if x in by_hour else default for x in xs]

    answered = [a - b for a, b in zip(want("requests", 0), want("errors", 0), strict=True)]
    failed = want("errors", 0)
    req = got["chart-requests"]
    assert [s["values"] for s in req["doc"]["series"]] == [answered, failed]
    # uPlot's data: the x buckets, then the stack drawn tallest first (answered + failed, answered).
    assert req["data"] == [xs, [a + b for a, b in zip(answered, failed, strict=True)], answered]
    spend = got["chart-spend"]
    assert spend["data"][0] == xs
    for drawn, server in zip(spend["data"][1], want("cost_usd", 0.0), strict=True):
        assert _close(drawn, server)
    lat = got["chart-latency"]
    assert lat["data"][0] == xs
    for drawn, field in zip(
        lat["data"][1:], ("latency_p50_ms", "latency_p95_ms", "ttft_p95_ms"), strict=True
    ):
        for d, s in zip(drawn, want(field, None), strict=True):
            assert _close(d, s), field
    # Units: each chart's axis and its legend's values (hovering the last bucket with requests).
    last = max(by_hour)
    for tid, unit in zip(CHARTS, ("requests", "USD", "ms"), strict=True):
        assert got[tid]["doc"]["unit"] == unit
        assert (
            page.evaluate(
                "([tid, x]) => { const f = document.querySelector(`[data-testid=${tid}]`);"
                " f.uplot.setCursor({left: f.uplot.valToPos(x, 'x'), top: 5}); return f.uplot.axes[1].label; }",
                [tid, last],
            )
            == unit
        )
        legend = page.locator(f"[data-testid={tid}] .u-legend").inner_text()
        for s in got[tid]["doc"]["series"]:
            assert s["name"] in legend, (tid, legend)
        assert ("$" if unit == "USD" else unit) in legend, (tid, legend)
    assert watch.take() == []


def test_overview_says_what_to_do_when_empty(page: Any, site: dict[str, Any]) -> None:
    page.goto(f"{site['url']}/ui/overview?since=2001-01-01T00:00&until=2001-01-02T00:00")
    empty = page.locator("[data-testid=empty]")
    assert "No requests in this range" in empty.inner_text()
    assert "/v1/chat/completions" in empty.inner_text()
    assert _value(page, "stat-requests") == 0


def test_range_picker_and_steps(page: Any, site: dict[str, Any]) -> None:
    url = site["url"]
    page.goto(f"{url}/ui/overview")
    page.click("text=last 7d")
    page.wait_for_url(f"{url}/ui/overview?range=7d")
    w = page.locator("[data-testid=window]")
    assert float(w.get_attribute("data-until")) - float(w.get_attribute("data-since")) == pytest.approx(
        7 * 86400
    )
    # by day: one bar group per day of the range
    assert page.locator("[data-testid=chart-requests] figcaption").inner_text().startswith("Requests per day")
    page.goto(f"{url}/ui/overview?range=bogus")
    assert "range must be one of" in page.content()


def test_a_request_page_shows_attempts_and_the_route(page: Any, site: dict[str, Any]) -> None:
    url = site["url"]
    rid = site["ids"][-2]  # smart: sim-claude failed, sim-gpt answered
    page.goto(f"{url}/ui/requests")
    assert page.locator("[data-testid=request-link]").count() == len(site["ids"])
    page.goto(f"{url}/ui/requests/{rid}")
    rows = page.locator("[data-testid=attempts-table] tbody tr")
    assert rows.count() == 2
    assert "sim-claude" in rows.nth(0).inner_text() and "500" in rows.nth(0).inner_text()
    assert "sim-gpt" in rows.nth(1).inner_text()
    assert page.locator("[data-testid=timeline] rect").count() == 2
    route = page.locator("[data-testid=route]").inner_text()
    assert "smart" in route
    cands = page.locator("[data-testid=candidates] tbody tr")
    assert cands.count() == 2 and "sim-claude" in cands.nth(0).inner_text()


def test_request_log_filters_and_pages(page: Any, site: dict[str, Any]) -> None:
    url = site["url"]
    page.goto(f"{url}/ui/requests?task=summarize")
    assert page.locator("[data-testid=request-link]").count() == 3
    page.goto(f"{url}/ui/requests?outcome=errors")
    assert page.locator("[data-testid=request-link]").count() >= 1
    page.goto(f"{url}/ui/requests?task=nothing-like-this")
    assert "No request matches" in page.locator("[data-testid=empty]").inner_text()


def test_paging_walks_every_request_once(browser: Any, site: dict[str, Any]) -> None:
    from switchpoint.console import pages

    # 11 seeded rows; a page of 4 needs three pages.
    old = pages.PAGE_SIZE
    pages.PAGE_SIZE = 4
    try:
        p = browser.new_page()
        h.sign_in(p, site["url"])
        p.goto(f"{site['url']}/ui/requests?until={time.time() + 60}")
        seen: list[str] = []
        pages_seen = 0
        while True:
            pages_seen += 1
            seen += [a.get_attribute("href") for a in p.locator("[data-testid=request-link]").all()]
            older = p.locator("[data-testid=older]")
            if older.count() == 0:
                break
            older.click()
            p.wait_for_load_state("load")
        p.close()
        assert pages_seen == 3
        assert len(seen) == len(site["ids"]) == len(set(seen))
    finally:
        pages.PAGE_SIZE = old


def test_models_page_shows_the_live_breaker_state(page: Any, site: dict[str, Any]) -> None:
    url = site["url"]
    page.goto(f"{url}/ui/models")
    live = h.admin(url, "/admin/breakers")["deployments"]
    assert "sim-claude" in live
    for name in ("sim-gpt", "sim-claude"):
        badge = page.locator(f"[data-breaker='{name}'] .badge")
        assert badge.get_attribute("data-breaker-state") == live[name]["state"]
    # Attempts per deployment, whoever answered: sim-claude failed every time it was tried.
    tried = [
        a
        for rid in site["ids"]
        for a in h.admin(url, f"/admin/requests/{rid}")["attempts"]
        if a["deployment"] == "sim-claude"
    ]
    assert len(tried) >= 2
    cell = page.locator("tr[data-deployment='sim-claude'] [data-testid=attempts]").inner_text()
    assert cell == f"{len(tried)} ({len(tried)} failed)"
    r = page.request.get(f"{url}/ui/models/breakers.json")
    assert r.status == 200 and r.json()["deployments"].keys() == live.keys()
    assert httpx.get(f"{url}/ui/models/breakers.json").status_code == 401  # no session, nothing


def test_tasks_and_routing_pages_count_the_seed(page: Any, site: dict[str, Any]) -> None:
    url = site["url"]
    page.goto(f"{url}/ui/tasks")
    table = page.locator("[data-testid=tasks-table]").inner_text()
    for task in ("code", "chat", "summarize"):
        assert task in table
    page.goto(f"{url}/ui/routing")
    assert _value(page, "stat-failovers") == 1
    by_rule = page.locator("[data-testid=by-rule] tbody").inner_text()
    assert "alias:smart\t1\t" in by_rule, by_rule  # the one request to smart, by its rule
    assert _value(page, "stat-fallbacks") == 1  # sim-claude first, sim-gpt answered


def test_keys_are_created_edited_and_revoked(page: Any, site: dict[str, Any]) -> None:
    url = site["url"]
    page.goto(f"{url}/ui/keys")
    page.locator("details.create summary", has_text="Create a team").click()
    form = page.locator("[data-testid=create-team]")
    form.locator("input[name=name]").fill("research")
    form.locator("input[name=budget_monthly]").fill("50")
    form.locator("button").click()
    page.wait_for_load_state("load")
    assert "created team research" in page.locator("[data-testid=flash]").inner_text()
    form = page.locator("[data-testid=create-key]")
    if not form.is_visible():
        page.locator("details.create summary", has_text="Create a key").click()
    form.locator("input[name=name]").fill("notebook")
    form.locator("input[name=team]").fill("research")
    form.locator("input[name=budget_daily]").fill("2")
    form.locator("input[name=rpm]").fill("100")
    form.locator("button").click()
    page.wait_for_load_state("load")
    secret = page.locator("[data-testid=secret]").inner_text()
    assert secret.startswith("sk-sp-")
    h.shot(page, "keys-created")
    # The new key works, and its spend shows against its budget.
    r = httpx.post(
        f"{url}/v1/chat/completions",
        headers={"authorization": f"Bearer {secret}"},
        json={"model": "sim-gpt", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    key_id = next(k["id"] for k in h.admin(url, "/admin/keys")["data"] if k["name"] == "notebook")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        page.goto(f"{url}/ui/keys")
        row = page.locator(f"tr[data-key='{key_id}']")
        if "1 requests" in row.inner_text():
            break
        time.sleep(0.2)
    text = row.inner_text()
    assert "of $2.00" in text and "100 requests/min" in text and "team research" in text
    # Edit: a new daily budget.
    row.locator("summary", has_text="Edit").click()
    row.locator("input[name=budget_daily]").fill("3")
    row.locator("button", has_text="Save key").click()
    page.wait_for_load_state("load")
    assert h.admin(url, f"/admin/keys/{key_id}")["budgets"]["daily"] == 3.0
    # Revoke (the page asks first).
    page.once("dialog", lambda d: d.accept())
    page.locator(f"tr[data-key='{key_id}'] [data-testid=revoke]").click()
    page.wait_for_load_state("load")
    assert h.admin(url, f"/admin/keys/{key_id}")["status"] == "revoked"
    deadline = time.monotonic() + 5
    status = 0
    while time.monotonic() < deadline:
        status = httpx.post(
            f"{url}/v1/chat/completions",
            headers={"authorization": f"Bearer {secret}"},
            json={"model": "sim-gpt", "messages": [{"role": "user", "content": "hi"}]},
            timeout=30,
        ).status_code
        if status == 401:
            break
        time.sleep(0.1)
    assert status == 401


def test_an_admin_key_signs_in_and_a_plain_key_does_not(browser: Any, site: dict[str, Any]) -> None:
    url = site["url"]
    hdr = {"authorization": f"Bearer {h.MASTER}"}
    made = {}
    for name, roles in (("ops", ["admin"]), ("app", [])):
        r = httpx.post(f"{url}/admin/keys", headers=hdr, json={"name": name, "roles": roles}, timeout=30)
        assert r.status_code == 201, r.text
        made[name] = r.json()
    page = browser.new_page()
    h.sign_in(page, url, made["app"]["secret"])
    assert "no admin role" in page.locator("[data-testid=login-error]").inner_text()
    h.sign_in(page, url, made["ops"]["secret"])
    assert page.url == f"{url}/ui/overview"
    assert "ops" in page.locator(".who").inner_text()
    # Revoking the admin key ends its console session at the next page.
    httpx.delete(f"{url}/admin/keys/{made['ops']['id']}", headers=hdr, timeout=30)
    page.goto(f"{url}/ui/models")
    assert page.url.startswith(f"{url}/ui/login")
    page.close()


def test_screenshot_of_the_overview_for_the_docs(page: Any, site: dict[str, Any]) -> None:
    page.goto(f"{site['url']}/ui/overview?range=24h")
    page.wait_for_load_state("networkidle")
    path = h.shot(page, "overview-docs")
    assert path.stat().st_size > 10_000
    docs = Path(__file__).resolve().parent.parent / "docs" / "img" / "console-overview.png"
    assert docs.exists(), "docs/img/console-overview.png (copied from a test run's screenshot)"


def test_embedded_defaults_price_table_matches(site: dict[str, Any]) -> None:
    """The prices written out in the overview test are the simulated deployments' own."""
    doc = defaults.simulated_document("http://x")
    for name, rate in {"sim-gpt": 1.25, "sim-mini": 0.1, "sim-claude": 5.0, "sim-gemini": 0.3}.items():
        assert doc["deployments"][name]["price"]["input"] == rate


def test_alerts_page_shows_thresholds_passed_and_when(page: Any, site: dict[str, Any]) -> None:
    url = site["url"]
    hdr = {"authorization": f"Bearer {h.MASTER}"}
    made = httpx.post(f"{url}/admin/keys", headers=hdr, json={"name": "alerty"}, timeout=30).json()
    r = httpx.post(
        f"{url}/v1/chat/completions",
        headers={"authorization": f"Bearer {made['secret']}"},
        json={"model": "sim-gpt", "messages": [{"role": "user", "content": "spend a little"}]},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    rid = r.headers["x-request-id"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        got = httpx.get(f"{url}/admin/requests/{rid}", headers=hdr, timeout=30)
        if got.status_code == 200:
            break
        time.sleep(0.1)
    row = got.json()["request"]
    # A daily budget the spend so far fills to 90 %: the 50 % and 80 % thresholds are passed
    # (by that request), 100 % is not.
    budget = row["cost_usd"] / 0.9
    p = httpx.patch(
        f"{url}/admin/keys/{made['id']}", headers=hdr, json={"budgets": {"daily": budget}}, timeout=30
    )
    assert p.status_code == 200, p.text
    page.goto(f"{url}/ui/alerts")
    line = page.locator("[data-testid=budgets] tr", has_text="key alerty")
    text = line.inner_text()
    assert "daily" in text and "90 %" in text
    assert "50 %" in text and "80 %" in text and "100 %" not in text
    stamps = line.locator("[data-testid=crossed-at]").all_inner_texts()
    from switchpoint.console.format import when

    assert stamps == [when(row["started_at"])] * 2
    h.shot(page, "alerts-budgets")


def test_breaker_state_updates_live_without_a_reload(page: Any, site: dict[str, Any]) -> None:
    """Last in the module: it opens sim-claude's breaker."""
    url = site["url"]
    page.goto(f"{url}/ui/models")
    badge = page.locator("[data-breaker='sim-claude'] .badge")
    assert badge.get_attribute("data-breaker-state") == "closed"
    watch = h.Watch(page)
    hdr = {"authorization": f"Bearer {h.MASTER}"}
    body = {"model": "sim-claude", "messages": [{"role": "user", "content": "fail"}]}
    deadline = time.monotonic() + 20
    while h.admin(url, "/admin/breakers")["deployments"]["sim-claude"]["state"] != "open":
        assert time.monotonic() < deadline, "the breaker never opened"
        httpx.post(f"{url}/v1/chat/completions", headers=hdr, json=body, timeout=30)
    # The page was not reloaded: its script polls the live state every 5 seconds.
    until = time.monotonic() + 12  # (the page's CSP forbids evaluated strings: poll from here)
    while badge.get_attribute("data-breaker-state") != "open":
        assert time.monotonic() < until, "the models page never showed the breaker open"
        page.wait_for_timeout(250)
    assert badge.inner_text() == "open"
    assert watch.take() == []
    h.shot(page, "models-breaker-open")
