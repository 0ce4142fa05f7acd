"""The console's routes under ``/ui``: sign-in, sign-out and the pages.

Every page needs a signed-in session (else a redirect to the sign-in page); every POST needs the
session's CSRF token (else 403). Answers carry a strict Content-Security-Policy (scripts, styles
and images from the console's own static files only) and ``Cache-Control: no-store``.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from switchpoint.console import charts, format
from switchpoint.console.deps import ConsoleDeps
from switchpoint.console.session import (
    COOKIE,
    LIFETIME_S,
    LOGIN_COOKIE,
    LOGIN_FORM_S,
    PATH,
    Session,
    Signer,
    secret_for,
)
from switchpoint.console.views import RANGES, RangeError
from switchpoint.errors import NotFound, SwitchpointError
from switchpoint.store import keys as key_store

log = logging.getLogger("switchpoint.console")
HERE = Path(__file__).parent
MAX_FORM = 64 * 1024

HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
    "x-frame-options": "DENY",
}

NAV = (
    ("overview", "Overview"),
    ("models", "Models"),
    ("tasks", "Tasks"),
    ("routing", "Routing"),
    ("requests", "Requests"),
    ("keys", "Keys & teams"),
    ("alerts", "Alerts"),
)


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        count=format.count,
        usd=format.usd,
        ms=format.ms,
        pct=format.pct,
        when=format.when,
        when_short=format.when_short,
        iso_input=format.iso_input,
        tokens=format.tokens,
    )
    env.globals.update(charts=charts, ranges=list(RANGES), nav=NAV)
    return env


class Page(Exception):
    """Answer with this page now (a redirect, a refusal, an empty state)."""

    def __init__(self, response: Response) -> None:
        self.response = response


PageFn = Callable[[Request, Session], Awaitable[tuple[str, dict[str, Any]]]]
ActionFn = Callable[[Request, Session, dict[str, str]], Awaitable[Response]]


class Console:
    def __init__(self, deps: ConsoleDeps) -> None:
        self.deps = deps
        self.env = environment()

    # --- plumbing ------------------------------------------------------------------------------

    def signer(self) -> Signer:
        return Signer(secret_for(self.deps.config()))

    def render(self, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        config = self.deps.config()
        body = self.env.get_template(template).render(currency=config.currency, money=format.money, **ctx)
        return HTMLResponse(body, status_code=status, headers=HEADERS)

    def refuse(self, status: int, title: str, message: str, session: Session | None = None) -> HTMLResponse:
        csrf = self.signer().csrf(session.sid) if session is not None else ""
        return self.render(
            "message.html", status, title=title, message=message, session=session, csrf=csrf, active=""
        )

    async def session(self, request: Request) -> Session | None:
        s = self.signer().read(request.cookies.get(COOKIE))
        if s is None or s.key_id is None:
            return s
        ring = self.deps.ring()
        if ring is None:
            return None
        row = await self.deps.run(key_store.get_key, ring.engine, s.key_id)
        now = time.time()
        if (
            row is None
            or row.revoked_at is not None
            or (row.expires_at is not None and row.expires_at <= now)
            or "admin" not in row.roles
        ):
            return None  # revoked, expired or no longer an admin: signed out
        return s

    def page(self, name: str, fn: PageFn) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            try:
                s = await self.session(request)
                if s is None:
                    target = urllib.parse.quote(
                        request.url.path + ("?" + request.url.query if request.url.query else "")
                    )
                    return RedirectResponse(f"{PATH}/login?next={target}", 303, headers=HEADERS)
                try:
                    template, ctx = await fn(request, s)
                except RangeError as exc:
                    return self.refuse(400, "That range cannot be shown", str(exc), s)
                except NotFound as exc:
                    if getattr(exc, "code", None) == "ledger_disabled":
                        return self.render(
                            "disabled.html", session=s, csrf=self.signer().csrf(s.sid), active=name
                        )
                    return self.refuse(404, "Not found", str(exc), s)
                return self.render(template, session=s, csrf=self.signer().csrf(s.sid), active=name, **ctx)
            except Page as p:
                return p.response
            except Exception:
                log.exception("console: the page %s failed", request.url.path)
                return self.refuse(500, "This page failed", "The error is in the gateway's log.")

        return handle

    def action(self, fn: ActionFn) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            s = await self.session(request)
            if s is None:
                return self.refuse(403, "Signed out", "Your session has ended: sign in again, then retry.")
            try:
                form = await read_form(request)
            except Page as p:
                return p.response
            if not self.signer().csrf_ok(s.sid, form.get("csrf")):
                return self.refuse(
                    403,
                    "Refused: the form's security token is missing or wrong",
                    "The change was not made. Reload the page and submit the form again.",
                    s,
                )
            try:
                return await fn(request, s, form)
            except Page as p:
                return p.response
            except SwitchpointError as exc:
                return self.refuse(exc.status, "The change was refused", str(exc), s)
            except Exception:
                log.exception("console: the action %s failed", request.url.path)
                return self.refuse(500, "The change failed", "The error is in the gateway's log.", s)

        return handle

    async def missing(self, request: Request) -> Response:
        s = await self.session(request)
        if s is None:
            return RedirectResponse(f"{PATH}/login", 303, headers=HEADERS)
        return self.refuse(404, "No such page", f"The console has no page at {request.url.path}.", s)

    # --- sign-in --------------------------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        if await self.session(request) is not None:
            return RedirectResponse(_next(request.query_params.get("next")), 303, headers=HEADERS)
        return self._login_page(request.query_params.get("next") or "", None, 200)

    def _login_page(self, nxt: str, error: str | None, status: int) -> Response:
        signer = self.signer()
        nonce = signer.login_nonce()
        resp = self.render(
            "login.html",
            status,
            session=None,
            csrf=signer.csrf(nonce),
            next=nxt,
            error=error,
            active="",
            open_gateway=self.deps.config().master_key is None,
        )
        resp.set_cookie(
            LOGIN_COOKIE,
            nonce,
            max_age=LOGIN_FORM_S,
            path=PATH,
            httponly=True,
            samesite="strict",
            secure=False,
        )
        return resp

    async def login(self, request: Request) -> Response:
        try:
            form = await read_form(request)
        except Page as p:
            return p.response
        nxt = form.get("next") or ""
        signer = self.signer()
        if not signer.login_ok(request.cookies.get(LOGIN_COOKIE), form.get("csrf")):
            return self._login_page(
                nxt, "The sign-in form expired or did not come from this console. Try again.", 403
            )
        key = (form.get("key") or "").strip()
        try:
            principal = await self.deps.principal({"authorization": f"Bearer {key}"} if key else {})
        except SwitchpointError:
            return self._login_page(nxt, "That key is not valid.", 401)
        if not principal.is_admin:
            return self._login_page(
                nxt,
                "That key is valid but has no admin role: the console needs the master key or an admin key.",
                403,
            )
        cookie, _ = signer.issue(principal.name, principal.key_id)
        resp = RedirectResponse(_next(nxt), 303, headers=HEADERS)
        resp.set_cookie(
            COOKIE,
            cookie,
            max_age=LIFETIME_S,
            path=PATH,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        resp.delete_cookie(LOGIN_COOKIE, path=PATH)
        return resp

    async def logout(self, request: Request, s: Session, form: dict[str, str]) -> Response:
        resp = RedirectResponse(f"{PATH}/login", 303, headers=HEADERS)
        resp.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="strict")
        return resp


def _next(value: str | None) -> str:
    """Where to go after signing in: a console path only (never another site)."""
    v = urllib.parse.unquote(value or "")
    if v.startswith(PATH + "/") and not v.startswith("//") and "\\" not in v and "://" not in v:
        return v
    return f"{PATH}/overview"


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form (the only kind the console posts), at most 64 KiB."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM:
            raise Page(HTMLResponse("The form is too large", status_code=413, headers=HEADERS))
        chunks.append(chunk)
    try:
        pairs = urllib.parse.parse_qsl(b"".join(chunks).decode(), keep_blank_values=True)
    except UnicodeDecodeError:
        return {}
    return dict(pairs)


def routes(deps: ConsoleDeps) -> list[BaseRoute]:
    """The console, to mount at ``/ui``."""
    from switchpoint.console import pages

    c = Console(deps)
    p = pages.Pages(c)

    async def root(request: Request) -> Response:
        return RedirectResponse(f"{PATH}/overview", 303, headers=HEADERS)

    async def breakers(request: Request) -> Response:
        if await c.session(request) is None:
            return JSONResponse({"error": "signed out"}, 401, headers=HEADERS)
        return JSONResponse({"deployments": deps.health.breakers(), "at": time.time()}, headers=HEADERS)

    return [
        Route("/", root, methods=["GET"]),
        Route("/login", c.login_form, methods=["GET"]),
        Route("/login", c.login, methods=["POST"]),
        Route("/logout", c.action(c.logout), methods=["POST"]),
        Route("/overview", c.page("overview", p.overview), methods=["GET"]),
        Route("/models", c.page("models", p.models), methods=["GET"]),
        Route("/models/breakers.json", breakers, methods=["GET"]),
        Route("/tasks", c.page("tasks", p.tasks), methods=["GET"]),
        Route("/routing", c.page("routing", p.routing), methods=["GET"]),
        Route("/requests", c.page("requests", p.requests), methods=["GET"]),
        Route("/requests/{request_id:path}", c.page("requests", p.request), methods=["GET"]),
        Route("/keys", c.page("keys", p.keys), methods=["GET"]),
        Route("/keys", c.action(p.create_key), methods=["POST"]),
        Route("/keys/{key_id}/edit", c.action(p.edit_key), methods=["POST"]),
        Route("/keys/{key_id}/revoke", c.action(p.revoke_key), methods=["POST"]),
        Route("/teams", c.action(p.create_team), methods=["POST"]),
        Route("/teams/{team_id}/edit", c.action(p.edit_team), methods=["POST"]),
        Route("/alerts", c.page("alerts", p.alerts), methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="console-static"),
        Route("/{rest:path}", c.missing, methods=["GET"]),
    ]


__all__ = ["Console", "routes"]
