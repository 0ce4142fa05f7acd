"""Asking the ledger over HTTP: ``GET /admin/usage``, ``GET /admin/requests``,
``GET /admin/requests/{id}`` (master key) and ``POST /v1/feedback`` (any valid key).

Every database read runs in a thread (a small pool of the reads' own), on the reads' own engine (its
own connections: a slow report never holds up the ledger's writer). Errors are OpenAI-dialect
JSON: 400 for bad parameters, 404 for an unknown request id. Spend is shown in USD and in the
configured display currency (``accounting.display_currency``).
"""

from __future__ import annotations

import asyncio
import csv
import functools
import io
import math
import re
import time
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from switchpoint.api.chat import JSON, error_reply, internal_error, request_id
from switchpoint.api.openai import OpenAIDialect
from switchpoint.config.accounting import DisplayCurrency
from switchpoint.errors import BadRequest, NotFound, PayloadTooLarge, SwitchpointError
from switchpoint.store import queries
from switchpoint.store.engine import database_url, make_engine

if TYPE_CHECKING:
    from switchpoint.api.app import Gateway

_OPENAI = OpenAIDialect()
T = TypeVar("T")
#: Threads the ledger's reads run on (per worker).
READ_THREADS = 2
Handler = Callable[[Request], Coroutine[Any, Any, Response]]

#: Query parameters that are not filters.
USAGE_PARAMS = frozenset({"group_by", "since", "until", "format"})
LIST_PARAMS = frozenset({"since", "until", "cursor", "limit", "format"})
#: Longest ``request_id`` / ``task_id`` feedback accepts, and the largest body.
MAX_ID = 256
MAX_FEEDBACK_BYTES = 64 * 1024

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_time(value: str, param: str, *, now: float | None = None) -> float:
    """Epoch seconds from ``1733100000``, ``2026-12-02``, ``2026-12-02T13:00:00Z`` (UTC when no
    zone is given) or a time ago: ``30m``, ``24h``, ``7d``, ``2w``."""
    v = value.strip()
    m = _RELATIVE.match(v)
    if m:
        return (time.time() if now is None else now) - float(m.group(1)) * _UNITS[m.group(2)]
    try:
        n = float(v)
    except ValueError:
        pass
    else:
        if math.isfinite(n) and n >= 0:
            return n
        raise BadRequest(f"{param} must be a time (epoch seconds, ISO 8601, or like 7d)", param=param)
    try:
        dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(
            f"{param} must be a time: epoch seconds, ISO 8601 (2026-12-02T13:00:00Z), or ago (30m, 24h, 7d)",
            param=param,
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def time_window(params: Mapping[str, str]) -> tuple[float | None, float | None]:
    """``since`` and ``until`` (either may be absent), until after since."""
    since = parse_time(params["since"], "since") if params.get("since") else None
    until = parse_time(params["until"], "until") if params.get("until") else None
    if since is not None and until is not None and until <= since:
        raise BadRequest("until must be after since", param="until")
    return since, until


def _filters(params: Mapping[str, str], reserved: frozenset[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in params.items():
        if name in reserved:
            continue
        if name not in queries.FILTERS and name not in queries.SPECIAL_FILTERS:
            known = ", ".join(sorted({*reserved, *queries.FILTERS, *queries.SPECIAL_FILTERS}))
            raise BadRequest(f"unknown parameter '{name}' (one of: {known})", param=name)
        out[name] = value
    return out


def _stamp(group: str, value: Any) -> Any:
    """A day or hour bucket as ISO 8601 (UTC)."""
    if value is None:
        return None
    dt = datetime.fromtimestamp(int(value), UTC)
    return dt.strftime("%Y-%m-%d") if group == "day" else dt.strftime("%Y-%m-%dT%H:00:00Z")


def _money(usd: float) -> float:
    return round(usd, 10)


def usage_document(
    rows: list[queries.UsageRow],
    group_by: list[str],
    since: float | None,
    until: float | None,
    currency: DisplayCurrency,
) -> dict[str, Any]:
    """``/admin/usage`` as JSON: one entry per group, then the totals over all of them."""
    code = currency.code.lower()
    data: list[dict[str, Any]] = []
    totals: dict[str, Any] = {"requests": 0, "errors": 0, **dict.fromkeys(queries.TOKEN_COLUMNS, 0)}
    cost = saved = 0.0
    for row in rows:
        entry: dict[str, Any] = {
            g: _stamp(g, row.group[g]) if g in ("day", "hour") else row.group[g] for g in group_by
        }
        doc = msgspec.to_builtins(row)
        del doc["group"]
        entry.update(doc)
        entry["cost_usd"] = _money(row.cost_usd)
        entry["saved_usd"] = _money(row.saved_usd)
        if currency.shown:
            entry[f"cost_{code}"] = _money(currency.convert(row.cost_usd))
        data.append(entry)
        totals["requests"] += row.requests
        totals["errors"] += row.errors
        for c in queries.TOKEN_COLUMNS:
            totals[c] += getattr(row, c)
        cost += row.cost_usd
        saved += row.saved_usd
    totals["cost_usd"] = _money(cost)
    totals["saved_usd"] = _money(saved)
    if currency.shown:
        totals[f"cost_{code}"] = _money(currency.convert(cost))
    totals["cache_read_ratio"] = (
        totals["cached_input_tokens"] / totals["input_tokens"] if totals["input_tokens"] else None
    )
    return {
        "object": "usage",
        "group_by": group_by,
        "since": since,
        "until": until,
        "currency": {"code": currency.code, "per_usd": currency.rate},
        "data": data,
        "totals": totals,
    }


def usage_csv(document: dict[str, Any]) -> str:
    """The same document as CSV: a header row, one row per group (no totals row)."""
    data = document["data"]
    buf = io.StringIO()
    if data:
        writer = csv.DictWriter(buf, fieldnames=list(data[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(data)
    else:
        buf.write(",".join([*document["group_by"], "requests", "cost_usd"]) + "\n")
    return buf.getvalue()


def requests_csv(items: list[dict[str, Any]], currency: DisplayCurrency) -> str:
    """Request rows as CSV (tags as ``k=v;k2=v2``), a header row first."""
    fields = list(queries.LIST_COLUMNS)
    if currency.shown:
        fields.append(f"cost_{currency.code.lower()}")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for item in items:
        tags = item.get("tags")
        writer.writerow({**item, "tags": ";".join(tags) if isinstance(tags, list) else tags})
    return buf.getvalue()


class LedgerReads:
    """The reads' engine, made on first use from ``storage.url`` (``SWITCHPOINT_DATABASE_URL``),
    and the threads they run on: a pool of their own (:data:`READ_THREADS`), so a burst of slow
    reports never takes the default executor the request path uses (the semantic classifier)."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self._engine: Engine | None = None
        self._url: str | None = None
        self._pool: ThreadPoolExecutor | None = None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the reads' threads."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="switchpoint-ledger-read")
        return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(fn, *args))

    def engine(self) -> Engine:
        storage = self.gw.config.storage
        if not storage.enabled:
            raise NotFound("The ledger is off (storage.enabled: false)", code="ledger_disabled")
        url = database_url(storage.url)
        if self._engine is None or url != self._url:  # a reload may have moved the database
            if self._engine is not None:
                self._engine.dispose()
            self._engine, self._url = make_engine(url), url
        return self._engine

    async def close(self) -> None:
        if self._pool is not None:
            await asyncio.to_thread(self._pool.shutdown)
            self._pool = None
        if self._engine is not None:
            await asyncio.to_thread(self._engine.dispose)
            self._engine = None


def _error(err: SwitchpointError, headers: dict[str, str]) -> Response:
    reply = error_reply(_OPENAI, err, headers)
    return Response(reply.body, status_code=reply.status, headers=reply.headers, media_type=JSON)


def _guarded(
    gw: Gateway, handle: Callable[[Request, dict[str, str]], Coroutine[Any, Any, Response]]
) -> Handler:
    """Master key required; any failure answered as OpenAI error JSON."""

    async def admin_only(request: Request, headers: dict[str, str]) -> Response:
        await gw.auth.admin(request.headers, "The ledger's admin views")
        return await handle(request, headers)

    return answered(admin_only)


def answered(handle: Callable[[Request, dict[str, str]], Coroutine[Any, Any, Response]]) -> Handler:
    """``handle`` with its request id header, any failure answered as OpenAI error JSON."""

    async def answered(request: Request) -> Response:
        headers = {"x-request-id": request_id(request.headers)}
        try:
            return await handle(request, headers)
        except queries.QueryError as exc:
            return _error(BadRequest(str(exc), param=exc.param), headers)
        except Exception as exc:
            err = exc if isinstance(exc, SwitchpointError) else internal_error(exc, headers["x-request-id"])
            return _error(err, headers)

    return answered


def _usage_handler(gw: Gateway, reads: LedgerReads) -> Handler:
    async def handle(request: Request, headers: dict[str, str]) -> Response:
        params = request.query_params
        raw = params.get("group_by") or ""
        group_by = queries.check_groups([g.strip() for g in raw.split(",") if g.strip()])
        since, until = time_window(params)
        filters = _filters(params, USAGE_PARAMS)
        fmt = params.get("format") or "json"
        if fmt not in ("json", "csv"):
            raise BadRequest("format must be json or csv", param="format")
        engine = reads.engine()
        rows = await reads.run(queries.usage, engine, group_by, since, until, filters)
        doc = usage_document(rows, group_by, since, until, gw.config.currency)
        if fmt == "csv":
            headers["content-disposition"] = 'attachment; filename="usage.csv"'
            return Response(usage_csv(doc), headers=headers, media_type="text/csv; charset=utf-8")
        return Response(msgspec.json.encode(doc), headers=headers, media_type=JSON)

    return _guarded(gw, handle)


def _with_currency(item: dict[str, Any], currency: DisplayCurrency) -> dict[str, Any]:
    if currency.shown and item.get("cost_usd") is not None:
        item[f"cost_{currency.code.lower()}"] = _money(currency.convert(item["cost_usd"]))
    return item


def _requests_handler(gw: Gateway, reads: LedgerReads) -> Handler:
    async def handle(request: Request, headers: dict[str, str]) -> Response:
        params = request.query_params
        since, until = time_window(params)
        filters = _filters(params, LIST_PARAMS)
        raw_limit = params.get("limit") or "100"
        fmt = params.get("format") or "json"
        if fmt not in ("json", "csv"):
            raise BadRequest("format must be json or csv", param="format")
        if not raw_limit.isdigit():
            raise BadRequest(f"limit must be a whole number 1-{queries.MAX_PAGE}", param="limit")
        engine = reads.engine()
        page = await reads.run(
            lambda: queries.list_requests(
                engine, filters, since=since, until=until, cursor=params.get("cursor"), limit=int(raw_limit)
            )
        )
        currency = gw.config.currency
        items = [_with_currency(item, currency) for item in page.items]
        if fmt == "csv":  # the page's rows; the next page's cursor in a header
            if page.next_cursor is not None:
                headers["x-next-cursor"] = page.next_cursor
            headers["content-disposition"] = 'attachment; filename="requests.csv"'
            return Response(
                requests_csv(items, currency), headers=headers, media_type="text/csv; charset=utf-8"
            )
        doc = {
            "object": "list",
            "data": items,
            "next_cursor": page.next_cursor,
            "has_more": page.next_cursor is not None,
        }
        return Response(msgspec.json.encode(doc), headers=headers, media_type=JSON)

    return _guarded(gw, handle)


def _request_handler(gw: Gateway, reads: LedgerReads) -> Handler:
    async def handle(request: Request, headers: dict[str, str]) -> Response:
        rid = request.path_params["request_id"]
        engine = reads.engine()
        found = await reads.run(queries.request, engine, rid)
        if found is None:
            raise NotFound(f"No request '{rid}' in the ledger", param="request_id", code="request_not_found")
        currency = gw.config.currency
        tries = [_with_currency(a, currency) for a in found.pop("attempt_list")]
        notes = found.pop("feedback")
        route = found.pop("route", None)
        doc = {
            "object": "request",
            "request": _with_currency(found, currency),
            "attempts": tries,
            "route": route,
            "feedback": notes,
        }
        return Response(msgspec.json.encode(doc), headers=headers, media_type=JSON)

    return _guarded(gw, handle)


class FeedbackBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    outcome: str
    request_id: str | None = None
    task_id: str | None = None
    score: float | None = None


def read_feedback(body: bytes) -> FeedbackBody:
    """The feedback body, validated (a :class:`BadRequest` naming the parameter otherwise)."""
    try:
        fb = msgspec.json.decode(body, type=FeedbackBody)
    except msgspec.ValidationError as exc:
        text = str(exc)
        param = None
        m = re.search(r"at `\$\.(\w+)`", text) or re.search(r"field `(\w+)`", text)
        if m:
            param = m.group(1)
        raise BadRequest(f"Invalid feedback: {text}", param=param) from None
    except msgspec.DecodeError:
        raise BadRequest("The body must be a JSON object", param=None) from None
    if (fb.request_id is None) == (fb.task_id is None):
        raise BadRequest("Give exactly one of request_id and task_id", param="request_id")
    for name in ("request_id", "task_id"):
        value = getattr(fb, name)
        if value is not None and not (1 <= len(value) <= MAX_ID and value.isprintable()):
            raise BadRequest(f"{name} must be 1-{MAX_ID} printable characters", param=name)
    if fb.outcome not in queries.OUTCOMES:
        raise BadRequest(f"outcome must be one of: {', '.join(queries.OUTCOMES)}", param="outcome")
    if fb.score is not None and not math.isfinite(fb.score):
        raise BadRequest("score must be a finite number", param="score")
    return fb


def _known_here(gw: Gateway, rid: str) -> bool:
    """Whether this process booked the request (it may not be in the database yet)."""
    return any(record.request_id == rid for record, _ in reversed(gw.accounting.recent))


def _feedback_handler(gw: Gateway, reads: LedgerReads) -> Handler:
    async def handle(request: Request, headers: dict[str, str]) -> Response:
        principal = await gw.auth.principal(request.headers)
        fb = read_feedback(await _small_body(request))
        engine = reads.engine()
        if fb.request_id is not None and not _known_here(gw, fb.request_id):
            # Another worker may have served it: its row lands within one flush window.
            wait_s = gw.config.storage.flush_interval_ms / 1000.0 * 2 + 0.5
            if not await reads.run(_appears, engine, fb.request_id, wait_s):
                raise NotFound(
                    f"No request '{fb.request_id}' in the ledger",
                    param="request_id",
                    code="request_not_found",
                )
        fid = await reads.run(
            lambda: queries.insert_feedback(
                engine,
                outcome=fb.outcome,
                request_id=fb.request_id,
                task_id=fb.task_id,
                score=fb.score,
                key_id=principal.key_id,
            )
        )
        doc = {
            "object": "feedback",
            "id": fid,
            "request_id": fb.request_id,
            "task_id": fb.task_id,
            "outcome": fb.outcome,
            "score": fb.score,
        }
        return Response(msgspec.json.encode(doc), headers=headers, media_type=JSON)

    return answered(handle)


async def _small_body(request: Request) -> bytes:
    """The body, refused (413) past :data:`MAX_FEEDBACK_BYTES` without reading the rest."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_FEEDBACK_BYTES:
        raise PayloadTooLarge(f"A feedback body is at most {MAX_FEEDBACK_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FEEDBACK_BYTES:
            raise PayloadTooLarge(f"A feedback body is at most {MAX_FEEDBACK_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _appears(engine: Engine, rid: str, wait_s: float) -> bool:
    deadline = time.monotonic() + wait_s
    while True:
        if queries.request_exists(engine, rid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def tasks_document(engine: Engine, group_by: list[str], currency: DisplayCurrency) -> dict[str, Any]:
    """``/admin/tasks``: per group, cost per completed task (tasks with feedback), token
    efficiency (every request) and model switch frequency (sessions' turns); a group missing
    from one of them has NULLs there."""
    costs = {tuple(r.group.values()): r for r in queries.task_costs(engine, group_by)}
    eff = {tuple(r.group.values()): r for r in queries.token_efficiency(engine, group_by)}
    sw = {tuple(r.group.values()): r for r in queries.switch_frequency(engine, group_by)}
    code = currency.code.lower()
    data: list[dict[str, Any]] = []
    for key in sorted({*costs, *eff, *sw}, key=lambda k: tuple((v is None, str(v)) for v in k)):
        c, e, w = costs.get(key), eff.get(key), sw.get(key)
        entry: dict[str, Any] = dict(zip(group_by, key, strict=True))
        entry.update(
            requests=e.requests if e else 0,
            tasks=c.tasks if c else 0,
            completed=c.completed if c else 0,
            task_cost_usd=_money(c.cost_usd) if c else 0.0,
            cost_per_completed_task_usd=(
                _money(c.cost_per_completed_task) if c and c.cost_per_completed_task is not None else None
            ),
            useful_output_tokens=e.useful_output_tokens if e else 0,
            billed_tokens=e.billed_tokens if e else 0,
            token_efficiency=e.token_efficiency if e else None,
            session_turns=w.turns if w else 0,
            model_switches=w.switches if w else 0,
            switch_rate=w.switch_rate if w else None,
        )
        if currency.shown:
            per = entry["cost_per_completed_task_usd"]
            entry[f"task_cost_{code}"] = _money(currency.convert(entry["task_cost_usd"]))
            entry[f"cost_per_completed_task_{code}"] = None if per is None else _money(currency.convert(per))
        data.append(entry)
    return {
        "object": "tasks",
        "group_by": group_by,
        "currency": {"code": currency.code, "per_usd": currency.rate},
        "data": data,
    }


def _tasks_handler(gw: Gateway, reads: LedgerReads) -> Handler:
    async def handle(request: Request, headers: dict[str, str]) -> Response:
        params = request.query_params
        for name in params:
            if name != "group_by":
                raise BadRequest(f"unknown parameter '{name}' (only group_by)", param=name)
        raw = params.get("group_by") or "task"
        group_by = queries.check_task_groups(g.strip() for g in raw.split(","))
        engine = reads.engine()
        doc = await reads.run(tasks_document, engine, group_by, gw.config.currency)
        return Response(msgspec.json.encode(doc), headers=headers, media_type=JSON)

    return _guarded(gw, handle)


def routes(gw: Gateway, reads: LedgerReads) -> list[Route]:
    return [
        Route("/admin/usage", _usage_handler(gw, reads), methods=["GET"]),
        Route("/admin/tasks", _tasks_handler(gw, reads), methods=["GET"]),
        Route("/admin/requests", _requests_handler(gw, reads), methods=["GET"]),
        Route("/admin/requests/{request_id:path}", _request_handler(gw, reads), methods=["GET"]),
        Route("/v1/feedback", _feedback_handler(gw, reads), methods=["POST"]),
    ]
