"""Hard constraints, applied to every decision: capabilities, usable context, budget.

A candidate that breaks one is left out with the reason; when every candidate is left out the
request fails with the most useful error: 402 when only the budget stood in the way, 400 for
the context window, 400 naming the missing capabilities otherwise.
"""

from __future__ import annotations

from switchpoint.config import Deployment, Price
from switchpoint.errors import BadRequest, PaymentRequired, SwitchpointError
from switchpoint.routing.features import Features, family_factor

CAPABILITY, CONTEXT, BUDGET = "capability", "context", "budget"


def on_family(prompt_tokens: int, factor: float) -> int:
    """A prompt's size on a tokenizer ``factor`` times less dense than ``o200k_base``."""
    return prompt_tokens if factor == 1.0 else int(prompt_tokens * factor + 0.999)


def prompt_tokens_on(dep: Deployment, features: Features) -> int:
    """The prompt's size on ``dep``'s tokenizer (estimated for non-public tokenizers)."""
    return on_family(features.prompt_tokens, family_factor(dep.family))


def rates_for(price: Price, prompt_tokens: int) -> Price:
    """The tier a request of ``prompt_tokens`` is billed at."""
    above = price.long_context_above
    if above is not None and prompt_tokens > above and price.long_context is not None:
        return price.long_context
    return price


def cost_of(price: Price | None, prompt_tokens: int, output_tokens: int) -> float | None:
    """USD for ``prompt_tokens`` in and ``output_tokens`` out (None: no price)."""
    if price is None:
        return None
    rates = rates_for(price, prompt_tokens)
    return (prompt_tokens * rates.input + output_tokens * rates.output) / 1_000_000


def estimate_cost(dep: Deployment, features: Features, output_tokens: int) -> float | None:
    """USD for this request on ``dep`` (None: the deployment has no price)."""
    return cost_of(dep.price, prompt_tokens_on(dep, features), output_tokens)


def check(
    dep: Deployment,
    prompt_tokens: int,
    needs: tuple[str, ...],
    output_tokens: int,
    cost: float | None,
    reserve: int,
    budget: float | None,
) -> tuple[str, str] | None:
    """Why ``dep`` cannot take the request, as (kind, reason); None when it can.

    ``prompt_tokens``: the prompt's size on ``dep``; ``reserve``: output tokens the upstream call
    asks for (the client's or a preset's limit), which share the window with the prompt;
    ``output_tokens``: the output assumed by the cost estimate ``cost``.
    """
    for n in needs:
        if n not in dep.capabilities:
            return CAPABILITY, "lacks " + "+".join(n for n in needs if n not in dep.capabilities)
    need = prompt_tokens + reserve
    window = dep.usable_window
    if need > window:
        return CONTEXT, f"needs ~{need} tokens > usable window {window}"
    if budget is not None and cost is not None and cost > budget:
        return BUDGET, f"est ${cost:.6f} (for {output_tokens} output tokens) > budget ${budget:.6f}"
    return None


def failure(model: str, skipped: list[tuple[str, str, str]]) -> SwitchpointError:
    """The error for a request no candidate can take; ``skipped`` = (name, kind, reason)."""
    kinds = {k for _, k, _ in skipped}
    why = "; ".join(f"{n}: {r}" for n, _, r in skipped)
    if BUDGET in kinds:
        return PaymentRequired(
            f"No deployment for '{model}' fits the request's budget ({why})",
            param="x-switchpoint-max-cost-usd",
            code="budget_exceeded",
        )
    if CONTEXT in kinds:
        return BadRequest(
            f"The prompt is too long for every deployment behind '{model}' ({why})",
            param="messages",
            code="context_length_exceeded",
        )
    if not skipped:
        return BadRequest(f"No deployment behind '{model}' serves chat requests", param="model")
    return BadRequest(f"No deployment behind '{model}' supports this request ({why})", param="model")
