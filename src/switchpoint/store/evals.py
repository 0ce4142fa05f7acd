"""Eval registrations and eval runs: the tables and their typed queries.

A registration is a suite's hashes (cases, rubric, gate) stored before any run ("rubric
first"); a run is the report of one ``switchpoint eval``, stored with the registration status it
had. Migration ``0007_evals`` creates both tables. A replay reads logged chat requests
(:func:`logged_requests`).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import msgspec
from sqlalchemy import Column, Engine, Index, MetaData, Table, Text, insert, select

from switchpoint.store.tables import Double
from switchpoint.store.tables import requests as requests_table

#: The endpoints of the chat requests a replay reads (as the ledger names them).
CHAT_ENDPOINTS = ("chat.completions", "messages", "responses")

#: Apart from the ledger's (``tables.metadata``): migration ``0007_evals`` creates these.
metadata = MetaData()

eval_registrations = Table(
    "eval_registrations",
    metadata,
    Column("id", Text, primary_key=True),
    Column("suite", Text, nullable=False),
    Column("cases_hash", Text, nullable=False),
    Column("rubric_hash", Text, nullable=False),
    Column("gate_hash", Text, nullable=False),
    Column("registered_at", Double, nullable=False),
    Index("ix_eval_registrations_suite", "suite", "registered_at"),
)

eval_runs = Table(
    "eval_runs",
    metadata,
    Column("id", Text, primary_key=True),
    Column("suite", Text, nullable=False),
    Column("suite_hash", Text, nullable=False),
    Column("registration", Text, nullable=False),
    Column("started_at", Double, nullable=False),
    Column("report", Text, nullable=False),  # the JSON report
    Column("html", Text),
    Index("ix_eval_runs_suite", "suite", "started_at"),
)


class Registration(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    suite: str
    cases_hash: str
    rubric_hash: str
    gate_hash: str
    registered_at: float


def register(engine: Engine, suite: str, cases_hash: str, rubric_hash: str, gate_hash: str) -> Registration:
    row = Registration(
        id=uuid.uuid4().hex,
        suite=suite,
        cases_hash=cases_hash,
        rubric_hash=rubric_hash,
        gate_hash=gate_hash,
        registered_at=time.time(),
    )
    with engine.begin() as conn:
        conn.execute(insert(eval_registrations).values(**msgspec.structs.asdict(row)))
    return row


def latest_registration(engine: Engine, suite: str) -> Registration | None:
    t = eval_registrations
    query = select(t).where(t.c.suite == suite).order_by(t.c.registered_at.desc()).limit(1)
    with engine.connect() as conn:
        row = conn.execute(query).mappings().first()
    return Registration(**row) if row is not None else None


def save_run(
    engine: Engine, *, suite: str, suite_hash: str, registration: str, report: str, html: str | None
) -> str:
    run_id = uuid.uuid4().hex
    values = {
        "id": run_id,
        "suite": suite,
        "suite_hash": suite_hash,
        "registration": registration,
        "started_at": time.time(),
        "report": report,
        "html": html,
    }
    with engine.begin() as conn:
        conn.execute(insert(eval_runs).values(**values))
    return run_id


def runs(engine: Engine, suite: str, limit: int = 20) -> list[dict[str, str | float]]:
    t = eval_runs
    query = (
        select(t.c.id, t.c.suite_hash, t.c.registration, t.c.started_at)
        .where(t.c.suite == suite)
        .order_by(t.c.started_at.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


class LoggedRequest(msgspec.Struct, frozen=True, kw_only=True):
    """What a replay reads of a logged chat request."""

    request_id: str
    started_at: float
    dialect: str
    endpoint: str
    alias: str
    deployment: str | None
    task: str | None
    team: str | None
    stream: bool | None
    status: int
    latency_ms: float | None
    ttft_ms: float | None
    input_tokens: int
    cached_input_tokens: int
    cache_write_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cost_usd: float | None
    route: Any
    request_body: str | None


def logged_requests(
    engine: Engine, since: float, until: float | None = None, limit: int | None = None
) -> list[LoggedRequest]:
    """Chat requests logged from ``since`` (oldest first); bodies only where they were stored."""
    t = requests_table
    query = select(
        t.c.request_id,
        t.c.started_at,
        t.c.dialect,
        t.c.endpoint,
        t.c.alias,
        t.c.deployment,
        t.c.task,
        t.c.team,
        t.c.stream,
        t.c.status,
        t.c.latency_ms,
        t.c.ttft_ms,
        t.c.input_tokens,
        t.c.cached_input_tokens,
        t.c.cache_write_5m_tokens,
        t.c.cache_write_1h_tokens,
        t.c.output_tokens,
        t.c.reasoning_tokens,
        t.c.cost_usd,
        t.c.route,
        t.c.request_body,
    ).where(t.c.started_at >= since, t.c.endpoint.in_(CHAT_ENDPOINTS))
    if until is not None:
        query = query.where(t.c.started_at < until)
    query = query.order_by(t.c.started_at).limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [
        LoggedRequest(
            request_id=r["request_id"],
            started_at=r["started_at"],
            dialect=r["dialect"],
            endpoint=r["endpoint"],
            alias=r["alias"],
            deployment=r["deployment"],
            task=r["task"],
            team=r["team"],
            stream=r["stream"],
            status=r["status"],
            latency_ms=r["latency_ms"],
            ttft_ms=r["ttft_ms"],
            input_tokens=r["input_tokens"] or 0,
            cached_input_tokens=r["cached_input_tokens"] or 0,
            cache_write_tokens=(r["cache_write_5m_tokens"] or 0) + (r["cache_write_1h_tokens"] or 0),
            output_tokens=r["output_tokens"] or 0,
            reasoning_tokens=r["reasoning_tokens"] or 0,
            cost_usd=r["cost_usd"],
            route=r["route"],
            request_body=r["request_body"],
        )
        for r in rows
    ]
