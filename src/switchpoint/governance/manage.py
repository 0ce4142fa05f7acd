"""Creating, changing, rotating and revoking keys and teams: what the admin API and the CLI share.

Blocking (database) calls; the API runs them in a thread. Bodies are validated here into the same
shapes the admin API documents (docs/governance.md): ``limits: {rpm, tpm, max_parallel}``,
``budgets: {daily, weekly, monthly, total}`` in USD, ``expires_at`` (epoch seconds or ISO 8601) or
``expires_in`` (seconds, or ``30d`` / ``12h`` / ``15m``). A bad field is a :class:`BadRequest`
naming it. The secret exists only in the answer to a create or a rotate.
"""

from __future__ import annotations

import math
import re
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import Engine

from switchpoint.errors import BadRequest, NotFound
from switchpoint.governance.keys import SECRET_PREFIX, digest, new_secret
from switchpoint.governance.principal import PRIORITIES
from switchpoint.store import keys as store
from switchpoint.store.keys import KeyRow, StoreConflict, TeamRow

ROLES = ("admin",)
MAX_NAME = 128
MAX_ITEMS = 64
MAX_TEXT = 256
#: A rotated-out secret stays valid this long unless the rotation says otherwise.
DEFAULT_GRACE_S = 3600.0
MAX_GRACE_S = 30 * 86400.0

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class LimitsIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None


class BudgetsIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    daily: float | None = None
    weekly: float | None = None
    monthly: float | None = None
    total: float | None = None


Unset = msgspec.UnsetType
UNSET = msgspec.UNSET


class KeyIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A key's fields as a create (``name`` required) or a patch (only what is given changes;
    ``null`` clears)."""

    name: str | Unset = UNSET
    team: str | Unset | None = UNSET
    roles: list[str] | Unset = UNSET
    allowed_aliases: list[str] | Unset = UNSET
    limits: LimitsIn | Unset = UNSET
    budgets: BudgetsIn | Unset = UNSET
    priority: str | Unset = UNSET
    tags: list[str] | Unset = UNSET
    metadata: dict[str, str] | Unset = UNSET
    expires_at: float | str | Unset | None = UNSET
    expires_in: float | str | Unset = UNSET


class TeamIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str | Unset = UNSET
    limits: LimitsIn | Unset = UNSET
    budgets: BudgetsIn | Unset = UNSET
    metadata: dict[str, str] | Unset = UNSET


class RotateIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: How long the old secret keeps working (seconds; 0: not at all).
    grace_period_s: float = DEFAULT_GRACE_S


def decode(body: bytes, kind: type[Any], what: str) -> Any:
    """A JSON body into ``kind``; a :class:`BadRequest` naming the field otherwise."""
    if not body.strip():
        body = b"{}"
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        text = str(exc)
        m = re.search(r"at `\$\.([\w.]+)", text) or re.search(r"field `(\w+)`", text)
        raise BadRequest(f"Invalid {what}: {text}", param=m.group(1) if m else None) from None
    except msgspec.DecodeError:
        raise BadRequest(f"The {what} must be a JSON object") from None


# --- validation -------------------------------------------------------------------------------


def _name(value: str, param: str) -> str:
    v = value.strip()
    if not (1 <= len(v) <= MAX_NAME) or not v.isprintable():
        raise BadRequest(f"{param} must be 1-{MAX_NAME} printable characters", param=param)
    return v


def _texts(values: list[str], param: str) -> tuple[str, ...]:
    if len(values) > MAX_ITEMS:
        raise BadRequest(f"{param} takes at most {MAX_ITEMS} entries", param=param)
    out: list[str] = []
    for v in values:
        if not (1 <= len(v) <= MAX_TEXT) or not v.isprintable():
            raise BadRequest(f"each of {param} must be 1-{MAX_TEXT} printable characters", param=param)
        if v not in out:
            out.append(v)
    return tuple(out)


def _metadata(values: dict[str, str]) -> dict[str, str]:
    if len(values) > MAX_ITEMS:
        raise BadRequest(f"metadata takes at most {MAX_ITEMS} entries", param="metadata")
    for k, v in values.items():
        if not (1 <= len(k) <= MAX_TEXT) or len(v) > 4 * MAX_TEXT:
            raise BadRequest(
                f"metadata keys are 1-{MAX_TEXT} characters, values at most {4 * MAX_TEXT}", param="metadata"
            )
    return dict(values)


def _limits(limits: LimitsIn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("rpm", "tpm", "max_parallel"):
        v = getattr(limits, name)
        if v is not None and v <= 0:
            raise BadRequest(
                f"limits.{name} must be a positive whole number (or null: no limit)", param=f"limits.{name}"
            )
        out[name] = v
    return out


def _budgets(budgets: BudgetsIn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("daily", "weekly", "monthly", "total"):
        v = getattr(budgets, name)
        if v is not None and (not math.isfinite(v) or v < 0):
            raise BadRequest(
                f"budgets.{name} must be a non-negative number of USD (or null)", param=f"budgets.{name}"
            )
        out[f"budget_{name}"] = v
    return out


def parse_when(value: float | str, param: str) -> float:
    """Epoch seconds from a number or ISO 8601 (UTC when no zone is given)."""
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise BadRequest(f"{param} must be a time (epoch seconds or ISO 8601)", param=param)
        return float(value)
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(
            f"{param} must be a time: epoch seconds or ISO 8601 (2027-01-01T00:00:00Z)", param=param
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def parse_duration(value: float | str, param: str) -> float:
    """Seconds from a number or ``90s`` / ``15m`` / ``12h`` / ``30d`` / ``2w``."""
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _DURATION.match(value.strip())
        if m is None:
            raise BadRequest(f"{param} must be a duration: seconds, or like 15m, 12h, 30d", param=param)
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if not math.isfinite(seconds) or seconds <= 0:
        raise BadRequest(f"{param} must be a positive duration", param=param)
    return seconds


def _team_id(engine: Engine, team: str | None) -> str | None:
    if team is None:
        return None
    found = store.get_team(engine, team)
    if found is None:
        raise BadRequest(f"No team '{team}' (create it first, or give a team id)", param="team")
    return found.id


def _key_values(engine: Engine, spec: KeyIn, *, now: float) -> dict[str, Any]:
    v: dict[str, Any] = {}
    if not isinstance(spec.name, Unset):
        v["name"] = _name(spec.name, "name")
    if not isinstance(spec.team, Unset):
        v["team_id"] = _team_id(engine, spec.team)
    if not isinstance(spec.roles, Unset):
        roles = _texts(spec.roles, "roles")
        unknown = [r for r in roles if r not in ROLES]
        if unknown:
            raise BadRequest(f"unknown role {unknown[0]!r} (roles: {', '.join(ROLES)})", param="roles")
        v["roles"] = roles
    if not isinstance(spec.allowed_aliases, Unset):
        v["allowed_aliases"] = _texts(spec.allowed_aliases, "allowed_aliases")
    if not isinstance(spec.limits, Unset):
        v.update(_limits(spec.limits))
    if not isinstance(spec.budgets, Unset):
        v.update(_budgets(spec.budgets))
    if not isinstance(spec.priority, Unset):
        if spec.priority not in PRIORITIES:
            raise BadRequest(f"priority must be one of {', '.join(PRIORITIES)}", param="priority")
        v["priority"] = spec.priority
    if not isinstance(spec.tags, Unset):
        v["tags"] = _texts(spec.tags, "tags")
    if not isinstance(spec.metadata, Unset):
        v["metadata"] = _metadata(spec.metadata)
    if not isinstance(spec.expires_at, Unset) and not isinstance(spec.expires_in, Unset):
        raise BadRequest("give expires_at or expires_in, not both", param="expires_in")
    if not isinstance(spec.expires_at, Unset):
        v["expires_at"] = None if spec.expires_at is None else parse_when(spec.expires_at, "expires_at")
    if not isinstance(spec.expires_in, Unset):
        v["expires_at"] = now + parse_duration(spec.expires_in, "expires_in")
    return v


def _team_values(spec: TeamIn) -> dict[str, Any]:
    v: dict[str, Any] = {}
    if not isinstance(spec.name, Unset):
        v["name"] = _name(spec.name, "name")
    if not isinstance(spec.limits, Unset):
        v.update(_limits(spec.limits))
    if not isinstance(spec.budgets, Unset):
        v.update(_budgets(spec.budgets))
    if not isinstance(spec.metadata, Unset):
        v["metadata"] = _metadata(spec.metadata)
    return v


# --- documents (what the API answers and the CLI prints; never a secret or a hash) ------------


def team_document(row: TeamRow) -> dict[str, Any]:
    return {
        "object": "team",
        "id": row.id,
        "name": row.name,
        "limits": {"rpm": row.rpm, "tpm": row.tpm, "max_parallel": row.max_parallel},
        "budgets": {
            "daily": row.budget_daily,
            "weekly": row.budget_weekly,
            "monthly": row.budget_monthly,
            "total": row.budget_total,
        },
        "metadata": row.metadata,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def key_status(row: KeyRow, now: float | None = None) -> str:
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and (time.time() if now is None else now) >= row.expires_at:
        return "expired"
    return "active"


def key_document(row: KeyRow, team: TeamRow | None = None) -> dict[str, Any]:
    return {
        "object": "api_key",
        "id": row.id,
        "name": row.name,
        "prefix": f"{SECRET_PREFIX}{row.prefix}",
        "status": key_status(row),
        "team": {"id": team.id, "name": team.name} if team is not None else None,
        "roles": list(row.roles),
        "allowed_aliases": list(row.allowed_aliases),
        "limits": {"rpm": row.rpm, "tpm": row.tpm, "max_parallel": row.max_parallel},
        "budgets": {
            "daily": row.budget_daily,
            "weekly": row.budget_weekly,
            "monthly": row.budget_monthly,
            "total": row.budget_total,
        },
        "priority": row.priority,
        "tags": list(row.tags),
        "metadata": row.metadata,
        "expires_at": row.expires_at,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "revoked_at": row.revoked_at,
        "previous_prefix": f"{SECRET_PREFIX}{row.previous_prefix}" if row.previous_prefix else None,
        "previous_valid_until": row.previous_valid_until,
    }


def _with_team(engine: Engine, row: KeyRow) -> dict[str, Any]:
    team = store.get_team(engine, row.team_id) if row.team_id else None
    return key_document(row, team)


# --- operations -------------------------------------------------------------------------------


def create_key(engine: Engine, spec: KeyIn) -> tuple[dict[str, Any], str]:
    """A new key: its document and its secret (shown this once)."""
    if isinstance(spec.name, Unset):
        raise BadRequest("name is required", param="name")
    now = time.time()
    values = {"priority": "normal", **_key_values(engine, spec, now=now)}
    if values.get("expires_at") is not None and values["expires_at"] <= now:
        raise BadRequest("expires_at is in the past", param="expires_at")
    for _ in range(5):  # a prefix collision (40 random bits) is retried with a new secret
        secret, prefix = new_secret()
        try:
            row = store.insert_key(
                engine,
                {
                    **values,
                    "id": "key_" + secrets.token_hex(8),
                    "prefix": prefix,
                    "secret_hash": digest(secret),
                },
            )
        except StoreConflict:
            continue
        return _with_team(engine, row), secret
    raise BadRequest("could not allocate a unique key prefix; try again")


def get_key(engine: Engine, key_id: str) -> dict[str, Any]:
    row = store.get_key(engine, key_id)
    if row is None:
        raise NotFound(f"No key '{key_id}'", param="id", code="key_not_found")
    return _with_team(engine, row)


def list_keys(
    engine: Engine, *, team: str | None = None, include_revoked: bool = False
) -> list[dict[str, Any]]:
    team_id = _team_id(engine, team) if team is not None else None
    rows = store.list_keys(engine, team_id=team_id, include_revoked=include_revoked)
    teams = {t.id: t for t in store.list_teams(engine)}
    return [key_document(r, teams.get(r.team_id) if r.team_id else None) for r in rows]


def update_key(engine: Engine, key_id: str, spec: KeyIn) -> dict[str, Any]:
    values = _key_values(engine, spec, now=time.time())
    if not values:
        return get_key(engine, key_id)
    try:
        row = store.update_key(engine, key_id, values)
    except StoreConflict as exc:
        raise BadRequest(str(exc)) from None
    if row is None:
        raise NotFound(f"No key '{key_id}'", param="id", code="key_not_found")
    return _with_team(engine, row)


def revoke_key(engine: Engine, key_id: str) -> dict[str, Any]:
    """Revoke a key (its row stays: the ledger's rows still name it). Revoking twice is a no-op."""
    row = store.get_key(engine, key_id)
    if row is None:
        raise NotFound(f"No key '{key_id}'", param="id", code="key_not_found")
    if row.revoked_at is None:
        row = store.update_key(engine, key_id, {"revoked_at": time.time()}) or row
    return _with_team(engine, row)


def rotate_key(
    engine: Engine, key_id: str, grace_period_s: float = DEFAULT_GRACE_S
) -> tuple[dict[str, Any], str]:
    """A new secret for the key; the old one keeps working for ``grace_period_s``."""
    if not math.isfinite(grace_period_s) or not 0 <= grace_period_s <= MAX_GRACE_S:
        raise BadRequest(f"grace_period_s must be 0-{int(MAX_GRACE_S)} seconds", param="grace_period_s")
    row = store.get_key(engine, key_id)
    if row is None:
        raise NotFound(f"No key '{key_id}'", param="id", code="key_not_found")
    if row.revoked_at is not None:
        raise BadRequest("A revoked key cannot be rotated; create a new one", param="id")
    now = time.time()
    for _ in range(5):
        secret, prefix = new_secret()
        changes: dict[str, Any] = {"prefix": prefix, "secret_hash": digest(secret)}
        if grace_period_s > 0:
            changes |= {
                "previous_prefix": row.prefix,
                "previous_hash": row.secret_hash,
                "previous_valid_until": now + grace_period_s,
            }
        else:
            changes |= {"previous_prefix": None, "previous_hash": None, "previous_valid_until": None}
        try:
            new = store.update_key(engine, key_id, changes)
        except StoreConflict:
            continue
        if new is None:
            raise NotFound(f"No key '{key_id}'", param="id", code="key_not_found")
        return _with_team(engine, new), secret
    raise BadRequest("could not allocate a unique key prefix; try again")


def create_team(engine: Engine, spec: TeamIn) -> dict[str, Any]:
    if isinstance(spec.name, Unset):
        raise BadRequest("name is required", param="name")
    try:
        row = store.insert_team(engine, {**_team_values(spec), "id": "team_" + secrets.token_hex(8)})
    except StoreConflict as exc:
        raise BadRequest(str(exc), param="name", code="team_exists") from None
    return team_document(row)


def get_team(engine: Engine, team: str) -> dict[str, Any]:
    row = store.get_team(engine, team)
    if row is None:
        raise NotFound(f"No team '{team}'", param="id", code="team_not_found")
    return team_document(row)


def list_teams(engine: Engine) -> list[dict[str, Any]]:
    return [team_document(t) for t in store.list_teams(engine)]


def update_team(engine: Engine, team: str, spec: TeamIn) -> dict[str, Any]:
    found = store.get_team(engine, team)
    if found is None:
        raise NotFound(f"No team '{team}'", param="id", code="team_not_found")
    values = _team_values(spec)
    if not values:
        return team_document(found)
    try:
        row = store.update_team(engine, found.id, values)
    except StoreConflict as exc:
        raise BadRequest(str(exc), param="name", code="team_exists") from None
    if row is None:
        raise NotFound(f"No team '{team}'", param="id", code="team_not_found")
    return team_document(row)


def delete_team(engine: Engine, team: str) -> dict[str, Any]:
    found = store.get_team(engine, team)
    if found is None:
        raise NotFound(f"No team '{team}'", param="id", code="team_not_found")
    done = store.delete_team(engine, found.id)
    if done is None:
        raise NotFound(f"No team '{team}'", param="id", code="team_not_found")
    if not done:
        raise BadRequest(
            f"The team '{found.name}' still has active keys; revoke them or move them first",
            param="id",
            code="team_in_use",
        )
    return {"object": "team", "id": found.id, "deleted": True}
