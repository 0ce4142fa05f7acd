"""The routing decision as the ledger stores it, and its trace rebuilt when read.

The writer stores a compact JSON array (``accounting.route_form.compact``: the decision's
fields in a fixed order, about a tenth of the work of building ``Decision.trace()`` and its
JSON); :func:`expand` turns it back into exactly the trace ``Decision.trace()`` gives (same
keys, same values). A stored trace (a JSON object, rows written before the compact form) is
returned as it is.

The array, form 1::

    [1, model, rule, task, task_source, task_score, strategy, prompt_tokens, prompt_tokens_exact,
     output_tokens, currency, units_per_usd,
     [[deployment, provider, upstream_model, reason, est_cost_usd, healthy], ...],
     [[deployment, reason], ...] (skipped), [preset, ...], trimmed, session, affinity,
     execution (the rule's execution options, or null)]
"""

from __future__ import annotations

import json
from typing import Any

#: The first element of a stored decision: which layout the rest follows.
FORM = 1


def expand(stored: Any) -> dict[str, Any] | None:
    """The routing trace of a stored ``route`` value (text or already decoded); None when there is
    none or it cannot be read."""
    if isinstance(stored, str | bytes):
        try:
            stored = json.loads(stored)
        except ValueError:
            return None
    if isinstance(stored, dict):
        return stored
    if not isinstance(stored, list) or not stored or stored[0] != FORM or len(stored) != 19:
        return None
    (
        _,
        model,
        rule,
        task,
        task_source,
        task_score,
        strategy,
        prompt_tokens,
        exact,
        output_tokens,
        currency,
        rate,
        candidates,
        skipped,
        presets,
        trimmed,
        session,
        affinity,
        execution,
    ) = stored
    out: dict[str, Any] = {
        "model": model,
        "rule": rule,
        "task": task,
        "task_source": task_source,
        "strategy": strategy,
        "prompt_tokens": prompt_tokens,
        "prompt_tokens_exact": exact,
        "output_tokens": output_tokens,
        "currency": currency,
        "candidates": [
            {
                "deployment": name,
                "provider": provider,
                "upstream_model": upstream,
                "reason": reason,
                "est_cost": None if cost is None else round(cost * rate, 8),
                "healthy": healthy,
            }
            for name, provider, upstream, reason, cost, healthy in candidates
        ],
        "skipped": [{"deployment": name, "reason": reason} for name, reason in skipped],
        "presets": list(presets),
    }
    if task_score is not None:
        out["task_score"] = task_score
    if trimmed is not None:
        out["trimmed"] = trimmed
    if session is not None:
        out["session"] = session
        out["affinity"] = affinity
    if execution is not None:
        out["execution"] = execution
    return out
