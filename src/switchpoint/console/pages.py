"""The console's pages: each reads what it shows (on the ledger reads' threads) and names a
template; the keys page's forms change keys and teams through the governance admin functions."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from switchpoint.console import charts, format, views
from switchpoint.console.session import PATH, Session
from switchpoint.errors import BadRequest, NotFound
from switchpoint.governance import manage
from switchpoint.governance.budgets import PERIODS, period_bounds
from switchpoint.governance.keys import KeyRing
from switchpoint.store import console_queries as cq
from switchpoint.store import queries

if TYPE_CHECKING:
    from switchpoint.console.app import Console

#: Filters the request log offers (query parameter → ledger filter).
LOG_FILTERS = ("deployment", "alias", "task", "key", "team", "status", "session")
PAGE_SIZE = 50


def _params(request: Request) -> dict[str, str]:
    return dict(request.query_params.items())


class Pages:
    def __init__(self, console: Console) -> None:
        self.c = console
        self.deps = console.deps

    # --- overview ---------------------------------------------------------------------------------

    async def overview(self, request: Request, s: Session) -> tuple[str, dict[str, Any]]:
        w = views.window(_params(request))
        engine = self.deps.engine()
        data = await self.deps.run(views.overview, engine, self.deps.config(), w)
        return "overview.html", {"o": data, "w": w, "charts": overview_charts(data)}

    # --- models -----------------------------------------------------------------------------------

    async def models(self, request: Request, s: Session) -> tuple[str, dict[str, Any]]:
        w = views.window(_params(request))
        engine = self.deps.engine()
        rows = await self.deps.run(views.models, engine, self.deps.config(), w, self.deps.health.breakers())
        return "models.html", {"rows": rows, "w": w}

    # --- tasks ------------------------------------------------------------------------------------

    async def tasks(self, request: Request, s: Session) -> tuple[str, dict[str, Any]]:
        w = views.window(_params(request))
        engine = self.deps.engine()
        data = await self.deps.run(views.tasks, engine, w)
        return "tasks.html", {"t": data, "w": w}

    # --- routing ----------------------------------------------------------------------------------

    async def routing(self, request: Request, s: Session) -> tuple[str, dict[str, Any]]:
        w = views.window(_params(request))
        engine = self.deps.engine()
        data = await self.deps.run(views.routing, engine, w)
        return "routing.html", {"r": data, "w": w, "max_routes": cq.MAX_ROUTES}

    # --- requests ---------------------------------------------------------------------------------

    async def requests(self, request: Request, s: Session) -> tuple[str, dict[str, Any]]:
        params = _params(request)
        filters = {k: params[k] for k in LOG_FILTERS if params.get(k)}
        outcome = params.get("outcome") or ""
        if outcome == "errors":
            filters["errors"] = "true"
        elif outcome == "ok":
            filters["errors"] = "false"
        since = views.parse_when(params["since"], "since") if params.get("since") else None
        until = views.parse_when(params["until"], "until") if params.get("until") else None
        engine = self.deps.engine()
        cursor = params.get("cursor") or None
        try:
            page = await self.deps.run(
                lambda: queries.list_requests(
                    engine, filters, since=since, until=until, cursor=cursor, limit=PAGE_SIZE
                )
            )
        except queries.QueryError as exc:
            raise views.RangeError(str(exc)) from None
        keep = {k: v for k, v in params.items() if k != "cursor" and v}
        return "requests.html", {
            "page": page,
            "params": params,
            "filters": LOG_FILTERS,
            "keep": keep,
            "outcome": outcome,
            "filtered": bool(filters or since or until),
        }

    async def request(self, request: Request, s: Session) -> tuple[str, dict[str, Any]]:
        rid = request.path_params["request_id"]
        engine = self.deps.engine()
        found = await self.deps.run(queries.request, engine, rid)
        if found is None:
            raise NotFound(f"No request '{rid}' in the ledger (rows land within a second of the answer).")
        tries = found.pop("attempt_list")
        span = max(
            [float(found.get("latency_ms") or 0.0)]
            + [float(a.get("offset_ms") or 0.0) + float(a.get("latency_ms") or 0.0) for a in tries]
        )
        return "request.html", {
            "r": found,
            "attempts": tries,
            "route": found.get("route"),
            "feedback": found.get("feedback", []),
            "span_ms": span or 1.0,
        }

    # --- keys and teams ---------------------------------------------------------------------------

    def _ring(self) -> KeyRing:
        ring = self.deps.ring()
        if ring is None:
            raise NotFound(
                "Virtual keys need the ledger's database (storage.enabled: true)", code="ledger_disabled"
            )
        return ring

    async def keys(self, request: Request, s: Session) -> tuple[str, dict[str, Any]]:
        ring = self._ring()
        engine = self.deps.engine()
        show_revoked = request.query_params.get("revoked") == "1"
        since = min(_starts(time.time()).values())

        def read() -> tuple[Any, Any, Any, Any]:
            keys = manage.list_keys(ring.engine, include_revoked=show_revoked)
            teams = manage.list_teams(ring.engine)
            return (keys, teams, *_spend(engine, keys, teams))

        keys, teams, key_spend, team_spend = await self.deps.run(read)
        return "keys.html", {
            "since": since,
            "keys": keys,
            "teams": teams,
            "key_spend": key_spend,
            "team_spend": team_spend,
            "periods": PERIODS,
            "show_revoked": show_revoked,
            "created": None,
            "done": request.query_params.get("done"),
        }

    async def _changed(self, ring: KeyRing) -> None:
        await ring.changed()

    async def create_key(self, request: Request, s: Session, form: dict[str, str]) -> Response:
        ring = self._ring()
        spec = manage.KeyIn(**_key_fields(form, creating=True))
        doc, secret = await self.deps.run(manage.create_key, ring.engine, spec)
        await self._changed(ring)
        template, ctx = await self.keys(request, s)
        ctx["created"] = {"doc": doc, "secret": secret}
        return self.c.render(template, 201, session=s, csrf=self.c.signer().csrf(s.sid), active="keys", **ctx)

    async def edit_key(self, request: Request, s: Session, form: dict[str, str]) -> Response:
        ring = self._ring()
        key_id = request.path_params["key_id"]
        spec = manage.KeyIn(**_key_fields(form, creating=False))
        await self.deps.run(manage.update_key, ring.engine, key_id, spec)
        await self._changed(ring)
        return RedirectResponse(f"{PATH}/keys?done=updated+{key_id}", 303)

    async def revoke_key(self, request: Request, s: Session, form: dict[str, str]) -> Response:
        ring = self._ring()
        key_id = request.path_params["key_id"]
        await self.deps.run(manage.revoke_key, ring.engine, key_id)
        await self._changed(ring)
        return RedirectResponse(f"{PATH}/keys?done=revoked+{key_id}", 303)

    async def create_team(self, request: Request, s: Session, form: dict[str, str]) -> Response:
        ring = self._ring()
        spec = manage.TeamIn(**_team_fields(form, creating=True))
        doc = await self.deps.run(manage.create_team, ring.engine, spec)
        await self._changed(ring)
        return RedirectResponse(f"{PATH}/keys?done=created+team+{doc['name']}", 303)

    async def edit_team(self, request: Request, s: Session, form: dict[str, str]) -> Response:
        ring = self._ring()
        team_id = request.path_params["team_id"]
        spec = manage.TeamIn(**_team_fields(form, creating=False))
        await self.deps.run(manage.update_team, ring.engine, team_id, spec)
        await self._changed(ring)
        return RedirectResponse(f"{PATH}/keys?done=updated+team+{team_id}", 303)

    # --- alerts -----------------------------------------------------------------------------------

    async def alerts(self, request: Request, s: Session) -> tuple[str, dict[str, Any]]:
        alerter = self.deps.alerter()
        config = self.deps.config()
        fired = sorted(alerter.fired.items()) if alerter is not None else []
        settings = alerter.settings if alerter is not None else None
        crossings: list[dict[str, Any]] = []
        ring = self.deps.ring()
        if ring is not None and settings is not None:
            engine = self.deps.engine()
            crossings = await self.deps.run(_crossings, ring.engine, engine, tuple(settings.thresholds))
        return "alerts.html", {
            "fired": fired,
            "settings": settings,
            "crossings": crossings,
            "failures": alerter.delivery_failures if alerter is not None else 0,
            "webhook": bool(settings and settings.webhook_url),
            "config_master": config.master_key is not None,
        }


def overview_charts(o: views.Overview) -> list[Any]:
    w = o.window
    labels = [views.bucket_label(b, w.step) for b, _ in o.series]
    xs = [b for b, _ in o.series]
    rows = [r for _, r in o.series]
    per = "hour" if w.step == "hour" else "day"
    ok = [(r.requests - r.errors) if r else 0 for r in rows]
    bad = [r.errors if r else 0 for r in rows]
    return [
        charts.bars(
            f"Requests per {per}",
            labels,
            [charts.Series("answered", ok, "s-ok"), charts.Series("failed", bad, "s-bad")],
            unit="requests",
            fmt=lambda v: f"{v:,.0f}",
            test_id="chart-requests",
            at=xs,
            value_format="count",
        ),
        charts.bars(
            f"Spend per {per}",
            labels,
            [charts.Series("spend", [r.cost_usd if r else 0.0 for r in rows], "s-cost")],
            unit="USD",
            fmt=format.usd,
            test_id="chart-spend",
            at=xs,
            value_format="usd",
        ),
        charts.lines(
            f"Latency per {per}",
            labels,
            [
                charts.Series("p50 latency", [r.latency_p50_ms if r else None for r in rows], "s-p50"),
                charts.Series("p95 latency", [r.latency_p95_ms if r else None for r in rows], "s-p95"),
                charts.Series(
                    "p95 time to first token", [r.ttft_p95_ms if r else None for r in rows], "s-ttft"
                ),
            ],
            unit="ms",
            fmt=lambda v: f"{v:,.0f}",
            test_id="chart-latency",
            at=xs,
            value_format="count",
        ),
    ]


def _starts(now: float) -> dict[str, float]:
    """The start of each budget period holding ``now`` (UTC day, week, month)."""
    return {p: period_bounds(p, now)[0] for p in PERIODS if p != "total"}


def _spend(
    engine: Any, keys: list[dict[str, Any]], teams: list[dict[str, Any]], *, last_use: bool = True
) -> tuple[dict[str, cq.HolderSpend], dict[str, cq.HolderSpend]]:
    """Keys' (by id) and teams' (by name) spend in the current periods; the whole history only
    for those with a total budget; the last request of each (``last_use``)."""
    starts = _starts(time.time())

    def total(docs: list[dict[str, Any]], field: str) -> list[str]:
        return [d[field] for d in docs if (d.get("budgets") or {}).get("total")]

    key_ids, team_names = [k["id"] for k in keys], [t["name"] for t in teams]
    return (
        cq.holder_spend(engine, "key", starts, key_ids if last_use else (), all_time=total(keys, "id")),
        cq.holder_spend(
            engine, "team", starts, team_names if last_use else (), all_time=total(teams, "name")
        ),
    )


def _crossings(key_engine: Any, engine: Any, thresholds: tuple[float, ...]) -> list[dict[str, Any]]:
    """Each budget's current period: its spend, and the thresholds it has passed (what the
    alerts fire on), fullest first."""
    now = time.time()
    starts = {**_starts(now), "total": 0.0}
    keys, teams = manage.list_keys(key_engine), manage.list_teams(key_engine)
    key_spend, team_spend = _spend(engine, keys, teams, last_use=False)
    out: list[dict[str, Any]] = []
    holders: list[tuple[str, str, str, dict[str, Any], cq.HolderSpend | None]] = []
    for k in keys:
        holders.append(("key", k["id"], k["name"], k.get("budgets") or {}, key_spend.get(k["id"])))
    for t in teams:
        holders.append(("team", t["id"], t["name"], t.get("budgets") or {}, team_spend.get(t["name"])))
    for scope, hid, name, budgets, spend in holders:
        for period in PERIODS:
            limit = budgets.get(period)
            if not limit:
                continue
            spent = spend.spent.get(period, 0.0) if spend is not None else 0.0
            passed = [t for t in thresholds if spent / limit + 1e-12 >= t]
            column, holder = ("key", hid) if scope == "key" else ("team", name)
            start = starts[period]
            when = cq.crossings(engine, column, holder, start, [t * limit for t in passed]) if passed else []
            out.append(
                {
                    "scope": scope,
                    "id": hid,
                    "name": name,
                    "period": period,
                    "limit": float(limit),
                    "spent": spent,
                    "ratio": spent / limit,
                    "passed": list(zip(passed, when, strict=True)),
                    "resets": period_bounds(period, now)[1] or None,
                }
            )
    out.sort(key=lambda d: -float(d["ratio"]))
    return out


def _num(form: dict[str, str], name: str, kind: type[float] | type[int]) -> float | int | None:
    raw = (form.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = kind(raw)
    except ValueError:
        raise BadRequest(f"{name.replace('_', ' ')} must be a number (got {raw!r})", param=name) from None
    if value < 0:
        raise BadRequest(f"{name.replace('_', ' ')} cannot be negative", param=name)
    return value


def _limits(form: dict[str, str]) -> manage.LimitsIn:
    return manage.LimitsIn(
        rpm=_int(form, "rpm"), tpm=_int(form, "tpm"), max_parallel=_int(form, "max_parallel")
    )


def _int(form: dict[str, str], name: str) -> int | None:
    v = _num(form, name, int)
    return None if v is None else int(v)


def _budgets(form: dict[str, str]) -> manage.BudgetsIn:
    vals = {p: _num(form, f"budget_{p}", float) for p in PERIODS}
    return manage.BudgetsIn(**{k: (None if v is None else float(v)) for k, v in vals.items()})


def _key_fields(form: dict[str, str], *, creating: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"limits": _limits(form), "budgets": _budgets(form)}
    name = (form.get("name") or "").strip()
    if name or creating:
        out["name"] = name
    team = (form.get("team") or "").strip()
    out["team"] = team or None
    out["roles"] = ["admin"] if form.get("admin") == "on" else []
    aliases = [a.strip() for a in (form.get("allowed_aliases") or "").split(",") if a.strip()]
    out["allowed_aliases"] = aliases
    if creating and (form.get("expires_in") or "").strip():
        out["expires_in"] = form["expires_in"].strip()
    return out


def _team_fields(form: dict[str, str], *, creating: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"limits": _limits(form), "budgets": _budgets(form)}
    name = (form.get("name") or "").strip()
    if name or creating:
        out["name"] = name
    return out
