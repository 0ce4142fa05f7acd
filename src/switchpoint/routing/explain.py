"""A routing decision and its explanation.

Every decision says which rule matched, which candidates were considered, in what order and
why, and what was left out. ``header()`` is the short form sent to the client in
``x-switchpoint-route``; ``trace()`` is the full form kept in the request record and returned
by ``POST /v1/route``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from switchpoint.canonical import ChatRequest
from switchpoint.config import Deployment, ExecutionOptions, GuaranteesSpec


class Candidate(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    deployment: Deployment
    reason: str
    #: Estimated cost of this request on the deployment, USD (None: unpriced).
    cost_usd: float | None = None
    healthy: bool = True


class Decision(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    model: str
    candidates: tuple[Candidate, ...]
    #: Candidates left out, with why (capabilities, context window, budget, access).
    skipped: tuple[tuple[str, str], ...] = ()
    #: How to execute the candidates (from the matched rule); None = deployment defaults.
    options: ExecutionOptions | None = None
    #: The matched rule's output guarantees (None: none, the executor's plain path).
    guarantees: GuaranteesSpec | None = None
    #: The rule that matched (``alias:<name>`` for an alias no rule names, None when direct).
    rule: str | None = None
    task: str | None = None
    #: declared | rules | semantic | default
    task_source: str | None = None
    task_score: float | None = None
    strategy: str = "priority"
    #: The request to execute (presets applied, context trimmed); None = the client's, unchanged.
    request: ChatRequest | None = None
    #: Parameters set by the rule's presets.
    presets: tuple[str, ...] = ()
    trimmed: str | None = None
    prompt_tokens: int = 0
    tokens_exact: bool = False
    output_tokens: int = 0
    session: str | None = None
    #: What session affinity did (kept on X, re-pinned …), when the request has a session.
    affinity: str | None = None
    #: Display currency for costs in the trace: (code, units per USD).
    currency: tuple[str, float] = ("USD", 1.0)
    #: The caller's tags (``x-switchpoint-tags``, string metadata) as ``key=value``, for the ledger.
    tags: tuple[str, ...] = ()

    def header(self) -> str:
        """Short form for the ``x-switchpoint-route`` response header (ASCII, one line)."""
        parts = [f"model={self.model}"]
        if self.rule is not None:
            parts.append(f"rule={self.rule}")
        if self.task is not None:
            parts.append(f"task={self.task}({self.task_source})")
        parts.append(f"strategy={self.strategy}")
        parts.append("candidates=" + ",".join(c.deployment.name for c in self.candidates))
        if self.skipped:
            parts.append("skipped=" + ",".join(n for n, _ in self.skipped))
        if self.affinity is not None:
            parts.append(f"affinity={self.affinity.split(' ', 1)[0]}")
        if self.trimmed is not None:
            parts.append("trimmed")
        if self.presets:
            parts.append("presets=" + ",".join(self.presets))
        out = "; ".join(parts)
        if out.isascii() and out.isprintable():
            return out
        return "".join(c if " " <= c <= "~" else "?" for c in out)  # names from the config

    def _money(self, usd: float | None) -> float | None:
        return None if usd is None else round(usd * self.currency[1], 8)

    def trace(self) -> dict[str, Any]:
        """The full explanation (JSON-ready)."""
        out: dict[str, Any] = {
            "model": self.model,
            "rule": self.rule,
            "task": self.task,
            "task_source": self.task_source,
            "strategy": self.strategy,
            "prompt_tokens": self.prompt_tokens,
            "prompt_tokens_exact": self.tokens_exact,
            "output_tokens": self.output_tokens,
            "currency": self.currency[0],
            "candidates": [
                {
                    "deployment": c.deployment.name,
                    "provider": c.deployment.provider.name,
                    "upstream_model": c.deployment.model,
                    "reason": c.reason,
                    "est_cost": self._money(c.cost_usd),
                    "healthy": c.healthy,
                }
                for c in self.candidates
            ],
            "skipped": [{"deployment": n, "reason": r} for n, r in self.skipped],
            "presets": list(self.presets),
        }
        if self.task_score is not None:
            out["task_score"] = self.task_score
        if self.trimmed is not None:
            out["trimmed"] = self.trimmed
        if self.session is not None:
            out["session"] = self.session
            out["affinity"] = self.affinity
        if self.options is not None:
            out["execution"] = msgspec.to_builtins(self.options)
        return out
