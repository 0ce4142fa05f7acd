"""Who is calling: the frozen value every request carries from authentication to the ledger.

A :class:`Principal` is built once per key (when the key ring loads it) and then shared by every
request made with that key, so nothing here is computed per request.
"""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase

import msgspec

PRIORITIES = ("high", "normal", "low")


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """Rate and concurrency limits; ``None`` means no limit."""

    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None


class Budgets(msgspec.Struct, frozen=True, kw_only=True):
    """Spend caps in USD per calendar day / week / month (UTC) and in total; ``None`` means none."""

    daily: float | None = None
    weekly: float | None = None
    monthly: float | None = None
    total: float | None = None


class Team(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    limits: Limits = Limits()
    budgets: Budgets = Budgets()


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    key_id: str | None  # None for the master key / open gateway
    name: str  # 'master', 'anonymous', or the key's name
    team: Team | None = None
    roles: frozenset[str] = frozenset()  # {'admin'} for admin keys; the master key is admin
    allowed_aliases: tuple[str, ...] = ()  # globs; () = any
    limits: Limits = Limits()
    budgets: Budgets = Budgets()
    priority: str = "normal"  # 'high' | 'normal' | 'low'
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, str] = {}
    expires_at: float | None = None

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    @property
    def team_name(self) -> str | None:
        """The team's name as the ledger and routing rules see it."""
        return self.team.name if self.team is not None else None

    def may_use(self, alias: str) -> bool:
        """Whether this principal may call the model ``alias`` (its ``allowed_aliases`` globs)."""
        if not self.allowed_aliases:
            return True
        return any(fnmatchcase(alias, pattern) for pattern in self.allowed_aliases)


MASTER = Principal(key_id=None, name="master", roles=frozenset({"admin"}))
ANONYMOUS = Principal(key_id=None, name="anonymous", roles=frozenset({"admin"}))  # open gateway
