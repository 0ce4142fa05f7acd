"""The routing decision in the ledger's compact form (``store.route_form`` documents the layout
and rebuilds the full trace when the row is read).

Built by the ledger's writer thread for every request, so it only gathers the decision's fields
into tuples that msgspec encodes natively: no dicts, no rounding, no ``to_builtins`` here.
"""

from __future__ import annotations

from typing import Any

from switchpoint.routing.explain import Decision
from switchpoint.store.route_form import FORM


def compact(d: Decision) -> tuple[Any, ...]:
    """``d`` as the ledger stores it (encode with msgspec; ``store.route_form.expand`` of the
    decoded value equals ``d.trace()``)."""
    currency, rate = d.currency
    return (
        FORM,
        d.model,
        d.rule,
        d.task,
        d.task_source,
        d.task_score,
        d.strategy,
        d.prompt_tokens,
        d.tokens_exact,
        d.output_tokens,
        currency,
        rate,
        [
            (
                c.deployment.name,
                c.deployment.provider.name,
                c.deployment.model,
                c.reason,
                c.cost_usd,
                c.healthy,
            )
            for c in d.candidates
        ],
        d.skipped,
        d.presets,
        d.trimmed,
        d.session,
        d.affinity,
        d.options,
    )
