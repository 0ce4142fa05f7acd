"""Eval registrations and eval runs: the tables and their typed queries.

A registration is a suite's hashes (cases, rubric, gate) stored before any run ("rubric
first"); a run is the report of one ``switchpoint eval``, stored with the registration status it
had. Migration ``0007_evals`` creates both tables.
"""

from __future__ import annotations

import time
import uuid

import msgspec
from sqlalchemy import Column, Engine, Index, MetaData, Table, Text, insert, select

from switchpoint.store.tables import Double

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
