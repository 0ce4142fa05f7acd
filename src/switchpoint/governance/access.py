"""Who is calling, for every route: the master key, a virtual key, or (no master key configured)
an open gateway. The answer is a :class:`Principal`.

On an open gateway anything goes as ``anonymous``, except a virtual key's secret (``sk-sp-…``):
a client that presents one is governed by it, and refused when it is wrong, revoked or expired.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from switchpoint.auth import presented_key
from switchpoint.config import Secret
from switchpoint.errors import AuthenticationFailed, PermissionDenied
from switchpoint.governance.keys import KeyRing, looks_like_key
from switchpoint.governance.principal import ANONYMOUS, MASTER, Principal

_MISSING = "Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'"


class Access:
    __slots__ = ("_master", "ring")

    def __init__(self, master_key: Secret | None, ring: KeyRing | None = None) -> None:
        self._master = master_key.reveal().encode() if master_key is not None else None
        #: The virtual keys (None: the ledger is off, so only the master key exists).
        self.ring = ring

    @property
    def open(self) -> bool:
        return self._master is None

    def with_master(self, master_key: Secret | None) -> Access:
        """The same keys under a reloaded config's master key."""
        return Access(master_key, self.ring)

    def resolve(self, headers: Mapping[str, str]) -> Principal | None:
        """The caller, when known without a database read (None: load the virtual key first,
        :meth:`principal`). Raises :class:`AuthenticationFailed`."""
        key = presented_key(headers)
        master = self._master
        if master is None:
            if key is None or self.ring is None or not looks_like_key(key):
                return ANONYMOUS
            return self.ring.resolve(key)
        if key is None:
            raise AuthenticationFailed(_MISSING)
        if hmac.compare_digest(key.encode(), master):
            return MASTER
        if self.ring is not None and looks_like_key(key):
            return self.ring.resolve(key)
        raise AuthenticationFailed("Invalid API key", code="invalid_api_key")

    async def principal(self, headers: Mapping[str, str]) -> Principal:
        """The caller; a virtual key's first use reads it once, in a thread."""
        p = self.resolve(headers)
        if p is not None:
            return p
        assert self.ring is not None
        key = presented_key(headers)
        assert key is not None
        return await self.ring.principal(key)

    async def admin(self, headers: Mapping[str, str], what: str = "This endpoint") -> Principal:
        """The caller, who must be the master key or a key with the ``admin`` role."""
        p = await self.principal(headers)
        if not p.is_admin:
            raise PermissionDenied(f"{what} needs the master key or a key with the admin role")
        return p


def check_alias(principal: Principal, model: str) -> None:
    """Refuse a model the key may not use (its ``allowed_aliases`` globs): a 403."""
    if principal.allowed_aliases and not principal.may_use(model):
        raise PermissionDenied(
            f"This key may not use the model '{model}'", param="model", code="model_not_allowed"
        )
