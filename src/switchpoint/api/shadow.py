"""Shadow traffic: a copy of a sample of a rule's answered requests, sent to a candidate alias
after the client's answer is done (the rule's ``shadow: {alias, sample}``).

The copy goes through the gateway's own chat route, as a request of its own: request id
``shadow-<id>``, tag ``shadow_of=<id>``, the ``shadow`` principal (no key: no limits or budgets
of the caller are spent on it), never streamed. It lands in the ledger like any request, so its
cost, latency and (with ``storage.store_bodies``) answer can be compared with the original's.
A copy never changes the client's answer or its timing: it starts once the answer is booked,
on a task of its own, and a failure is only logged (and booked).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import msgspec

from switchpoint.config import Config
from switchpoint.config.routing import ShadowSpec
from switchpoint.governance.principal import Principal

log = logging.getLogger("switchpoint")

PREFIX = "shadow-"
SHADOW = Principal(key_id=None, name="shadow")

#: The chat route a copy is sent through: (headers, body, caller) → its reply.
Route = Callable[[Mapping[str, str], bytes, Principal | None], Awaitable[Any]]


class _Configured(Protocol):
    config: Config


class Shadower:
    def __init__(self, gw: _Configured, rng: random.Random | None = None) -> None:
        self.gw = gw
        self.rng = rng if rng is not None else random.Random()
        self._tasks: set[asyncio.Task[None]] = set()
        self._specs: tuple[object, dict[str, ShadowSpec]] = (None, {})

    def spec(self, rule: str | None) -> ShadowSpec | None:
        routing = self.gw.config.routing
        if rule is None or routing is None:
            return None
        seen, specs = self._specs
        if seen is not routing:  # a reload brought a new policy
            rules = [*routing.rules, *([routing.default] if routing.default is not None else [])]
            specs = {r.name: r.shadow for r in rules if r.shadow is not None}
            self._specs = (routing, specs)
        return specs.get(rule)

    def after(self, route: Route, rid: str, rule: str | None, status: int, body: bytes | None) -> None:
        """Called when a request's answer is booked; copies it when its rule says so."""
        if status != 200 or body is None or rid.startswith(PREFIX):
            return
        spec = self.spec(rule)
        if spec is None or self.rng.random() >= spec.sample:
            return
        task = asyncio.get_running_loop().create_task(self._send(route, rid, spec.alias, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, route: Route, rid: str, alias: str, body: bytes) -> None:
        try:
            doc = msgspec.json.decode(body)
            doc["model"] = alias
            doc["stream"] = False
            doc.pop("stream_options", None)
            headers = {"x-request-id": f"{PREFIX}{rid}", "x-switchpoint-tags": f"shadow_of={rid}"}
            await route(headers, msgspec.json.encode(doc), SHADOW)
        except Exception:  # a copy must never fail anything else
            log.exception("shadow copy of %s to %s failed", rid, alias)

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def close(self, timeout_s: float = 10.0) -> None:
        """Let the copies in flight finish (at most ``timeout_s``), then cancel the rest."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(list(self._tasks), timeout=timeout_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
