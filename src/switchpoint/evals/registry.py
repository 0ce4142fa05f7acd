"""Rubric first: a suite's hashes are registered before it runs; every report says whether the
suite it ran still matches the registration."""

from __future__ import annotations

from sqlalchemy import Engine

from switchpoint.evals.suite import Hashes
from switchpoint.store import evals as store_evals
from switchpoint.store import migrate

REGISTERED = "registered"
UNREGISTERED = "unregistered"


def prepare(engine: Engine) -> None:
    """The database at the newest schema (the eval tables included)."""
    migrate.upgrade(engine)


def register(engine: Engine, name: str, h: Hashes) -> store_evals.Registration:
    return store_evals.register(engine, name, h.cases, h.rubric, h.gate)


def status(engine: Engine, name: str, h: Hashes) -> str:
    """``registered``, ``unregistered``, or ``changed since registration: <parts>``."""
    reg = store_evals.latest_registration(engine, name)
    if reg is None:
        return UNREGISTERED
    changed = [
        part
        for part, now, then in (
            ("cases", h.cases, reg.cases_hash),
            ("rubric", h.rubric, reg.rubric_hash),
            ("gate", h.gate, reg.gate_hash),
        )
        if now != then
    ]
    return REGISTERED if not changed else "changed since registration: " + ", ".join(changed)
