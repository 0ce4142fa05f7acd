"""Shared fixtures: a network guard, and real servers on loopback ports."""

from __future__ import annotations

import atexit
import ipaddress
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

# Every gateway the suite starts (in process or as a subprocess, which inherits the variable)
# keeps its ledger in one throw-away SQLite file, never ./switchpoint.db in the checkout. A run
# may point the suite at another database (PostgreSQL in CI) by setting the variable itself.
_LEDGER_DIR = tempfile.mkdtemp(prefix="switchpoint-tests-")
os.environ.setdefault("SWITCHPOINT_DATABASE_URL", f"sqlite:///{_LEDGER_DIR}/ledger.db")
atexit.register(shutil.rmtree, _LEDGER_DIR, True)

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _loopback_only(address: Any) -> None:
    if isinstance(address, tuple) and address:
        host = address[0]
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            if host == "localhost":
                return
            raise RuntimeError(f"test tried to reach a non-loopback host: {host!r}") from None
        if not ip.is_loopback:
            raise RuntimeError(f"test tried to reach a non-loopback address: {host}")


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _loopback_only(address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _loopback_only(address)
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True, scope="session")
def network_guard() -> Iterator[None]:
    """Fail any test that tries to leave the machine (providers are never called for real)."""
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    try:
        yield
    finally:
        socket.socket.connect = _real_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def simulator_url() -> Iterator[str]:
    """The simulated provider, served over real HTTP on a loopback port."""
    from switchpoint.simulator import create_app

    from servers import serve_in_thread

    with serve_in_thread(create_app()) as url:
        yield url


@pytest.fixture(scope="session")
def gateway(simulator_url: str) -> Iterator[Any]:
    """The gateway over real HTTP on loopback, in front of the simulator (all three families)."""
    from switchpoint.api.app import create_app
    from switchpoint.config import parse

    from gateway_harness import ENV, RecordingTransport, e2e_document
    from servers import serve_in_thread

    transport = RecordingTransport()
    cfg = parse(e2e_document(simulator_url), env=ENV)
    app = create_app(cfg, transport=transport)

    class Running:
        url: str
        sent = transport.sent
        gw = app.state.gateway

    with serve_in_thread(app) as url:
        Running.url = url
        yield Running


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """A ledger database migrated to head: a SQLite file, then a PostgreSQL schema of its own
    (``ledger_db.PgSchema``: dropped after; skipped, with the reason, when PostgreSQL does not
    answer)."""
    from ledger_db import PgSchema
    from switchpoint.store import migrate

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
        migrate.upgrade(url)
        yield url
        return
    schema = PgSchema()
    try:
        migrate.upgrade(schema.url)
        yield schema.url
    finally:
        schema.drop()
