"""Proof, over plain HTTP: the console without a ledger says so on every page (and how to turn it
on); an unknown console page is an HTML 404; answers carry the strict security headers; sign-in
only ever sends the browser on to a console page."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from switchpoint import defaults
from switchpoint.api.app import create_app
from switchpoint.config import parse

from servers import serve_in_thread

MASTER = "sk-console-http-test"


@pytest.fixture(scope="module")
def no_ledger() -> Iterator[str]:
    doc = defaults.simulated_document("http://127.0.0.1:9")  # never called
    doc["storage"] = {"enabled": False}
    cfg = parse(doc, source="t", env={"SWITCHPOINT_MASTER_KEY": MASTER})
    with serve_in_thread(create_app(cfg)) as url:
        yield url


def _signed_in(url: str, nxt: str = "") -> tuple[httpx.Client, httpx.Response]:
    c = httpx.Client(base_url=url, timeout=30)
    form = c.get("/ui/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token is not None
    r = c.post("/ui/login", data={"csrf": token.group(1), "key": MASTER, "next": nxt}, follow_redirects=False)
    assert r.status_code == 303
    return c, r


def test_without_a_ledger_every_page_says_how_to_turn_it_on(no_ledger: str) -> None:
    c, _ = _signed_in(no_ledger)
    try:
        for page in ("overview", "models", "tasks", "routing", "requests", "keys"):
            r = c.get(f"/ui/{page}")
            assert r.status_code == 200, (page, r.text[:300])
            assert "The ledger is off" in r.text and "storage.enabled: true" in r.text, page
        assert c.get("/ui/alerts").status_code == 200
    finally:
        c.close()


def test_an_unknown_page_is_an_html_404(no_ledger: str) -> None:
    c, _ = _signed_in(no_ledger)
    try:
        r = c.get("/ui/nothing-here")
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
        assert "No such page" in r.text
    finally:
        c.close()
    anonymous = httpx.get(f"{no_ledger}/ui/nothing-here", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/ui/login"


def test_security_headers(no_ledger: str) -> None:
    for path in ("/ui/login", "/ui/overview"):
        r = httpx.get(f"{no_ledger}{path}", follow_redirects=False)
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("nxt", "goes"),
    [
        ("/ui/tasks?range=7d", "/ui/tasks?range=7d"),
        ("https://elsewhere.example/ui/x", "/ui/overview"),
        ("//elsewhere.example/ui/x", "/ui/overview"),
        ("/admin/usage", "/ui/overview"),
        ("", "/ui/overview"),
    ],
)
def test_sign_in_goes_on_to_console_pages_only(no_ledger: str, nxt: str, goes: str) -> None:
    c, r = _signed_in(no_ledger, nxt)
    c.close()
    assert r.headers["location"] == goes


def test_an_oversized_form_is_a_413(no_ledger: str) -> None:
    r = httpx.post(
        f"{no_ledger}/ui/login",
        content=b"key=" + b"x" * 70_000,
        follow_redirects=False,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 413


UPLOT = "1.6.32"


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("uPlot.iife.min.js", "text/javascript"),
        ("uPlot.min.css", "text/css"),
        ("LICENSE", "application/octet-stream"),  # no extension: served as it is, to download
    ],
)
def test_the_vendored_uplot_is_served_with_its_type(no_ledger: str, name: str, kind: str) -> None:
    r = httpx.get(f"{no_ledger}/ui/static/vendor/uplot/{name}")
    assert r.status_code == 200 and r.headers["content-type"].split(";")[0] == kind, r.headers
    if name.endswith(".js"):
        assert r.text.startswith(f"/*! https://github.com/leeoniya/uPlot (v{UPLOT}) */")
    if name == "LICENSE":
        assert "The MIT License (MIT)" in r.text and "Leon Sorokin" in r.text


def test_the_vendored_uplot_and_its_licence_are_in_the_package() -> None:
    import tomllib
    from importlib.resources import files
    from pathlib import Path

    vendor = files("switchpoint.console").joinpath("static", "vendor", "uplot")
    for name in ("uPlot.iife.min.js", "uPlot.min.css", "LICENSE", "README.md"):
        assert vendor.joinpath(name).is_file(), name
    assert "MIT License" in vendor.joinpath("LICENSE").read_text()
    assert f"uPlot {UPLOT}" in vendor.joinpath("README.md").read_text()
    # A wheel carries them too: the package data names the folder (``static/*`` alone does not recurse).
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    data = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]["switchpoint"]
    assert "console/static/vendor/uplot/*" in data


def test_a_revalidated_static_file_is_a_bodiless_304(no_ledger: str) -> None:
    """Chromium revalidates the console's static files; a 304 carries no body (no chunked
    terminator the next answer on the connection would be read from)."""
    with httpx.Client(base_url=no_ledger, timeout=30) as c:
        first = c.get("/ui/static/vendor/uplot/uPlot.min.css")
        again = c.get(
            "/ui/static/vendor/uplot/uPlot.min.css", headers={"if-none-match": first.headers["etag"]}
        )
        assert again.status_code == 304 and again.content == b""
        assert "transfer-encoding" not in again.headers
        # The same connection answers the next request.
        assert c.get("/ui/static/console.js").status_code == 200
