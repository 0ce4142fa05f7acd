"""Cost of a request from its usage and the deployment's price (USD per million tokens)."""

from __future__ import annotations

from switchpoint.canonical import Usage
from switchpoint.config import Price


def cost_usd(usage: Usage, price: Price | None) -> float:
    """Cached reads, cache writes and reasoning are priced at their own rates.

    ``usage.input_tokens`` includes cached reads and cache writes (see canonical.py), so only
    the remainder is charged at the plain input rate; the same holds for reasoning inside
    ``output_tokens``.
    """
    if price is None:
        return 0.0
    plain_in = max(usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens, 0)
    plain_out = max(usage.output_tokens - usage.reasoning_tokens, 0)
    total = (
        plain_in * price.input
        + usage.cached_input_tokens * price.cached_input
        + usage.cache_write_tokens * price.cache_write
        + plain_out * price.output
        + usage.reasoning_tokens * price.reasoning
    )
    return total / 1_000_000
