"""Routing endpoints: the dry run (``POST /v1/route``) and policy reload (``POST /admin/reload``,
``SIGHUP``).

A reload reads the config file again, validates it completely (config and policy, semantic
classifier included) off the event loop, and only then swaps the router in; a bad file is
rejected with every problem and the running policy keeps serving. Session pins survive.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import msgspec

from switchpoint import config as config_mod
from switchpoint.accounting import Accounting
from switchpoint.api.anthropic import AnthropicDialect
from switchpoint.api.dialect import Dialect
from switchpoint.api.openai import OpenAIDialect
from switchpoint.cache import Caches
from switchpoint.config import Config
from switchpoint.errors import BadRequest, ConfigError
from switchpoint.executor import Executor
from switchpoint.governance.access import Access
from switchpoint.governance.gate import Gate
from switchpoint.governance.principal import Principal
from switchpoint.health import HealthRegistry
from switchpoint.routing import Router

log = logging.getLogger("switchpoint")

OPENAI = OpenAIDialect()
ANTHROPIC = AnthropicDialect()
#: Content block types only the Anthropic Messages API has.
_ANTHROPIC_BLOCKS = frozenset({"tool_use", "tool_result", "thinking", "redacted_thinking", "document"})


class RoutedGateway(Protocol):
    config: Config
    router: Router
    auth: Access
    gate: Gate
    health: HealthRegistry
    executor: Executor
    accounting: Accounting
    caches: Caches

    def relabel(self, config: Config) -> None: ...


# --- dry run ---------------------------------------------------------------------------------


def _looks_anthropic(doc: Any) -> bool:
    if not isinstance(doc, dict):
        return False
    if any(k in doc for k in ("system", "stop_sequences", "thinking")):
        return True
    for m in doc.get("messages") or ():
        content = m.get("content") if isinstance(m, dict) else None
        for block in content if isinstance(content, list) else ():
            if isinstance(block, dict) and (
                block.get("type") in _ANTHROPIC_BLOCKS or (block.get("type") == "image" and "source" in block)
            ):
                return True
    return False


def dialect_for(body: bytes, headers: Mapping[str, str], asked: str | None) -> Dialect:
    """The wire a dry-run body is in: ``?dialect=``, else ``anthropic-version``, else its shape."""
    if asked is not None:
        if asked not in ("openai", "anthropic"):
            raise BadRequest("dialect must be 'openai' or 'anthropic'", param="dialect")
        return OPENAI if asked == "openai" else ANTHROPIC
    if "anthropic-version" in headers:
        return ANTHROPIC
    try:
        return ANTHROPIC if _looks_anthropic(msgspec.json.decode(body)) else OPENAI
    except Exception:  # any shape at all: the dialect's decode boundary reports the problem
        return OPENAI


def dry_run(
    gw: RoutedGateway, body: bytes, headers: Mapping[str, str], principal: Principal, dialect: Dialect
) -> bytes:
    """The decision for a request, as JSON, without calling any model."""
    creq = dialect.decode_chat(body, headers)
    decision = gw.router.route(
        creq, headers=headers, principal=principal.name, team=principal.team_name, health=gw.health
    )
    return msgspec.json.encode(
        {
            "dialect": dialect.name,
            "header": decision.header(),
            "route": decision.trace(),
        }
    )


# --- reload ----------------------------------------------------------------------------------

#: An eval gate for a reload: (suite file, the new config, the running one) → (passed, summary).
#: Given by the layer that has evals (``switchpoint.evals.reload_gate``).
ReloadGate = Callable[[str, Config, Config], Awaitable[tuple[bool, dict[str, Any]]]]


class GateFailed(Exception):
    """The new config failed the reload's eval gate; the running one keeps serving."""

    def __init__(self, summary: dict[str, Any]) -> None:
        super().__init__("the new config failed the eval gate")
        self.summary = summary


class Reloader:
    """Reloads the gateway's config file; one reload at a time; tasks are tracked."""

    def __init__(self, gw: RoutedGateway, gate: ReloadGate | None = None) -> None:
        self.gw = gw
        self.gate = gate
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._signal_loop: asyncio.AbstractEventLoop | None = None

    async def reload(self, gate: str | None = None) -> dict[str, Any]:
        """Swap in the config file's current content. Raises :class:`ConfigError` when invalid,
        :class:`GateFailed` when ``gate`` (an eval suite) is given and the new config fails it."""
        gw = self.gw
        source = gw.config.source
        if source.startswith("<"):
            raise BadRequest("The gateway runs on its embedded defaults: there is no config file to reload")
        if gate is not None and self.gate is None:
            raise BadRequest("This gateway process cannot run eval gates", param="gate")
        async with self._lock:
            old = gw.router
            cfg = await asyncio.to_thread(config_mod.load, source)
            verdict: dict[str, Any] | None = None
            if gate is not None and self.gate is not None:
                try:
                    passed, verdict = await self.gate(gate, cfg, gw.config)
                except ValueError as exc:  # a suite that cannot run: the caller's to fix
                    raise BadRequest(f"The eval gate could not run: {exc}", param="gate") from None
                if not passed:
                    raise GateFailed(verdict)
            router = await asyncio.to_thread(Router, cfg, rng=old.rng, affinity=old.affinity)
            gw.config, gw.router, gw.auth = cfg, router, gw.auth.with_master(cfg.master_key)
            gw.gate = gw.gate.configure(cfg)
            gw.executor.configure(cfg.resilience)
            gw.caches = gw.caches.configure(cfg)
            gw.accounting.use_deployments(cfg.deployments)
            gw.relabel(cfg)
        rules = len(cfg.routing.rules) if cfg.routing is not None else 0
        log.warning(
            "config reloaded from %s: %d deployment(s), %d routing rule(s)",
            source,
            len(cfg.deployments),
            rules,
        )
        out = {"status": "reloaded", "source": source, "deployments": len(cfg.deployments), "rules": rules}
        return out if verdict is None else {**out, "gate": verdict}

    async def _reload_logged(self) -> None:
        try:
            await self.reload()
        except ConfigError as exc:
            log.error("config reload rejected, the running policy keeps serving:\n%s", exc.message)
        except Exception:
            log.exception("config reload failed, the running policy keeps serving")

    def _on_sighup(self) -> None:
        task = asyncio.get_running_loop().create_task(self._reload_logged(), name="switchpoint-reload")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def install_sighup(self) -> None:
        """Reload on SIGHUP (main thread, POSIX only; elsewhere use ``POST /admin/reload``)."""
        if not hasattr(signal, "SIGHUP") or threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        except (NotImplementedError, RuntimeError, ValueError):
            return
        self._signal_loop = loop

    async def close(self) -> None:
        if self._signal_loop is not None:
            self._signal_loop.remove_signal_handler(signal.SIGHUP)
            self._signal_loop = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def gate_failed(exc: GateFailed) -> bytes:
    """The body answering a reload whose new config failed its eval gate (409)."""
    return msgspec.json.encode(
        {
            "error": {
                "message": "The new config failed the eval gate; the running one keeps serving",
                "type": "invalid_request_error",
                "param": "gate",
                "code": "gate_failed",
            },
            "gate": exc.summary,
        }
    )


def rejected(exc: ConfigError) -> bytes:
    """The body answering a rejected reload: an OpenAI-style error plus every problem."""
    return msgspec.json.encode(
        {
            "error": {
                "message": "The new config is invalid; the running one keeps serving",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_config",
            },
            "problems": exc.problems,
        }
    )
