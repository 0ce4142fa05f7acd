"""What the console is given by the api layer (it never imports the api): the current config,
the ledger's engine and read threads, the live breaker registry, who a key is, and the keys."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Engine

from switchpoint.config import Config
from switchpoint.governance.alerts import Alerter
from switchpoint.governance.keys import KeyRing
from switchpoint.governance.principal import Principal
from switchpoint.health import HealthRegistry

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class ConsoleDeps:
    #: The config in force (a reload replaces it).
    config: Callable[[], Config]
    #: The ledger's read engine (raises ``NotFound`` when the ledger is off).
    engine: Callable[[], Engine]
    #: ``run(fn, *args)``: ``fn`` on the ledger reads' threads.
    run: Callable[..., Awaitable[Any]]
    #: Live breaker state of this process's deployments.
    health: HealthRegistry
    #: The caller named by request headers (raises ``AuthenticationFailed``).
    principal: Callable[[Mapping[str, str]], Awaitable[Principal]]
    #: The virtual keys (None: no database for them).
    ring: Callable[[], KeyRing | None]
    #: Budget alerts fired by this process (None: none configured).
    alerter: Callable[[], Alerter | None]
