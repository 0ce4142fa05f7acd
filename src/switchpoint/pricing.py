"""Cost of a request from its usage and the deployment's price (USD per million tokens)."""

from __future__ import annotations

import msgspec

from switchpoint.canonical import Usage
from switchpoint.config import Price


class Cost(msgspec.Struct, frozen=True, kw_only=True):
    """What one usage report cost, in USD, by token class (the classes add up to ``total``)."""

    input: float = 0.0
    cached_input: float = 0.0
    cache_write_5m: float = 0.0
    cache_write_1h: float = 0.0
    output: float = 0.0
    reasoning: float = 0.0

    @property
    def total(self) -> float:
        return (
            self.input
            + self.cached_input
            + self.cache_write_5m
            + self.cache_write_1h
            + self.output
            + self.reasoning
        )


ZERO = Cost()


def cost_breakdown(usage: Usage, price: Price | None, *, batch: bool = False) -> Cost:
    """Cached reads, cache writes and reasoning are priced at their own rates.

    ``usage.input_tokens`` includes cached reads and cache writes (see canonical.py), so only
    the remainder is charged at the plain input rate; the same holds for reasoning inside
    ``output_tokens``.
    """
    if price is None:
        return ZERO
    plain_in = max(usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens, 0)
    plain_out = max(usage.output_tokens - usage.reasoning_tokens, 0)
    write_1h = min(usage.cache_write_1h_tokens, usage.cache_write_tokens)
    write_5m = usage.cache_write_tokens - write_1h
    scale = (1.0 - price.batch_discount) / 1_000_000 if batch else 1 / 1_000_000
    return Cost(
        input=plain_in * price.input * scale,
        cached_input=usage.cached_input_tokens * price.cached_input * scale,
        cache_write_5m=write_5m * price.cache_write * scale,
        cache_write_1h=write_1h * price.cache_write * scale,
        output=plain_out * price.output * scale,
        reasoning=usage.reasoning_tokens * price.reasoning * scale,
    )


def cost_usd(usage: Usage, price: Price | None, *, batch: bool = False) -> float:
    """The total of :func:`cost_breakdown`."""
    return cost_breakdown(usage, price, batch=batch).total
