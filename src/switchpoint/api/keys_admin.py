"""The keys and teams admin API (master key or an ``admin``-role key) and ``GET /v1/me/usage``
(any key: its own usage only).

``POST/GET /admin/keys``, ``GET/PATCH/DELETE /admin/keys/{id}``, ``POST /admin/keys/{id}/rotate``;
``POST/GET /admin/teams``, ``GET/PATCH/DELETE /admin/teams/{id}`` (a team by id or name). Every
database call runs in a thread; every change is applied to this process's key cache at once and
announced to the other replicas (:meth:`KeyRing.changed`). Errors are OpenAI-dialect JSON.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from switchpoint.api.chat import JSON, error_reply, internal_error, request_id
from switchpoint.api.ledger_admin import LedgerReads, answered, time_window, usage_document
from switchpoint.api.openai import OpenAIDialect
from switchpoint.errors import BadRequest, NotFound, SwitchpointError
from switchpoint.governance import manage
from switchpoint.governance.keys import KeyRing
from switchpoint.store import queries

if TYPE_CHECKING:
    from switchpoint.api.app import Gateway

_OPENAI = OpenAIDialect()
Handler = Callable[[Request], Coroutine[Any, Any, Response]]
Action = Callable[[Request, KeyRing], Coroutine[Any, Any, tuple[int, Any]]]
MAX_BODY = 64 * 1024
ME_PARAMS = frozenset({"group_by", "since", "until"})


def _ring(gw: Gateway) -> KeyRing:
    ring = gw.auth.ring
    if ring is None:
        raise NotFound(
            "Virtual keys need the ledger's database (storage.enabled: true)", code="keys_disabled"
        )
    return ring


async def _body(request: Request) -> bytes:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise BadRequest(f"The body is over {MAX_BODY // 1024} KiB")
    return body


def _json(status: int, doc: Any, headers: dict[str, str]) -> Response:
    return Response(msgspec.json.encode(doc), status_code=status, headers=headers, media_type=JSON)


def _admin(gw: Gateway, action: Action) -> Handler:
    async def handle(request: Request) -> Response:
        headers = {"x-request-id": request_id(request.headers)}
        try:
            await gw.auth.admin(request.headers, "The keys admin API")
            status, doc = await action(request, _ring(gw))
            return _json(status, doc, headers)
        except Exception as exc:
            err = exc if isinstance(exc, SwitchpointError) else internal_error(exc, headers["x-request-id"])
            reply = error_reply(_OPENAI, err, headers)
            return Response(reply.body, status_code=reply.status, headers=reply.headers, media_type=JSON)

    return handle


async def _run(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


def _flag(request: Request, name: str) -> bool:
    value = (request.query_params.get(name) or "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise BadRequest(f"{name} must be true or false", param=name)
    return value in ("true", "1")


# --- keys -------------------------------------------------------------------------------------


async def _create_key(request: Request, ring: KeyRing) -> tuple[int, Any]:
    spec = manage.decode(await _body(request), manage.KeyIn, "key")
    doc, secret = await _run(manage.create_key, ring.engine, spec)
    await ring.changed()
    return 201, {**doc, "secret": secret}


async def _list_keys(request: Request, ring: KeyRing) -> tuple[int, Any]:
    team = request.query_params.get("team")
    revoked = _flag(request, "include_revoked")
    data = await asyncio.to_thread(lambda: manage.list_keys(ring.engine, team=team, include_revoked=revoked))
    return 200, {"object": "list", "data": data}


async def _get_key(request: Request, ring: KeyRing) -> tuple[int, Any]:
    return 200, await _run(manage.get_key, ring.engine, request.path_params["key_id"])


async def _patch_key(request: Request, ring: KeyRing) -> tuple[int, Any]:
    spec = manage.decode(await _body(request), manage.KeyIn, "key")
    doc = await _run(manage.update_key, ring.engine, request.path_params["key_id"], spec)
    await ring.changed()
    return 200, doc


async def _revoke_key(request: Request, ring: KeyRing) -> tuple[int, Any]:
    doc = await _run(manage.revoke_key, ring.engine, request.path_params["key_id"])
    await ring.changed()
    return 200, doc


async def _rotate_key(request: Request, ring: KeyRing) -> tuple[int, Any]:
    spec = manage.decode(await _body(request), manage.RotateIn, "rotation")
    doc, secret = await _run(
        manage.rotate_key, ring.engine, request.path_params["key_id"], spec.grace_period_s
    )
    await ring.changed()
    return 200, {**doc, "secret": secret}


# --- teams ------------------------------------------------------------------------------------


async def _create_team(request: Request, ring: KeyRing) -> tuple[int, Any]:
    spec = manage.decode(await _body(request), manage.TeamIn, "team")
    doc = await _run(manage.create_team, ring.engine, spec)
    await ring.changed()
    return 201, doc


async def _list_teams(request: Request, ring: KeyRing) -> tuple[int, Any]:
    return 200, {"object": "list", "data": await _run(manage.list_teams, ring.engine)}


async def _get_team(request: Request, ring: KeyRing) -> tuple[int, Any]:
    return 200, await _run(manage.get_team, ring.engine, request.path_params["team_id"])


async def _patch_team(request: Request, ring: KeyRing) -> tuple[int, Any]:
    spec = manage.decode(await _body(request), manage.TeamIn, "team")
    doc = await _run(manage.update_team, ring.engine, request.path_params["team_id"], spec)
    await ring.changed()
    return 200, doc


async def _delete_team(request: Request, ring: KeyRing) -> tuple[int, Any]:
    doc = await _run(manage.delete_team, ring.engine, request.path_params["team_id"])
    await ring.changed()
    return 200, doc


# --- /v1/me/usage -----------------------------------------------------------------------------


def _me_usage(gw: Gateway, reads: LedgerReads) -> Handler:
    """The caller's own usage: rows with its key id (the master key's: rows with none)."""

    async def handle(request: Request, headers: dict[str, str]) -> Response:
        principal = await gw.auth.principal(request.headers)
        params = request.query_params
        for name in params:
            if name not in ME_PARAMS:
                raise BadRequest(f"unknown parameter '{name}' (one of: group_by, since, until)", param=name)
        raw = params.get("group_by") or ""
        groups = queries.check_groups([g.strip() for g in raw.split(",") if g.strip()])
        since, until = time_window(params)
        engine: Engine = reads.engine()
        filters = {"key": principal.key_id}
        rows = await asyncio.to_thread(queries.usage, engine, groups, since, until, filters)
        doc = usage_document(rows, groups, since, until, gw.config.currency)
        doc["key"] = {
            "id": principal.key_id,
            "name": principal.name,
            "team": principal.team_name,
        }
        return _json(200, doc, headers)

    return answered(handle)


def routes(gw: Gateway, reads: LedgerReads) -> list[Route]:
    def a(action: Action) -> Handler:
        return _admin(gw, action)

    return [
        Route("/admin/keys", a(_create_key), methods=["POST"]),
        Route("/admin/keys", a(_list_keys), methods=["GET"]),
        Route("/admin/keys/{key_id}/rotate", a(_rotate_key), methods=["POST"]),
        Route("/admin/keys/{key_id}", a(_get_key), methods=["GET"]),
        Route("/admin/keys/{key_id}", a(_patch_key), methods=["PATCH"]),
        Route("/admin/keys/{key_id}", a(_revoke_key), methods=["DELETE"]),
        Route("/admin/teams", a(_create_team), methods=["POST"]),
        Route("/admin/teams", a(_list_teams), methods=["GET"]),
        Route("/admin/teams/{team_id}", a(_get_team), methods=["GET"]),
        Route("/admin/teams/{team_id}", a(_patch_team), methods=["PATCH"]),
        Route("/admin/teams/{team_id}", a(_delete_team), methods=["DELETE"]),
        Route("/v1/me/usage", _me_usage(gw, reads), methods=["GET"]),
    ]
