"""Cost of a request from its usage and the deployment's price (USD per million tokens)."""

from __future__ import annotations

import msgspec

from switchpoint.canonical import MediaUnits, Usage
from switchpoint.config import Price


class Cost(msgspec.Struct, frozen=True, kw_only=True, gc=False):
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


def rates_for(usage: Usage, price: Price) -> Price:
    """The rates a request bills at: the long-context tier once its prompt (``input_tokens``,
    cached reads and cache writes included) passes ``long_context_above``, else the base."""
    above, tier = price.long_context_above, price.long_context
    if tier is not None and above is not None and usage.input_tokens > above:
        return tier
    return price


def cost_breakdown(usage: Usage, price: Price | None, *, batch: bool = False) -> Cost:
    """Each token class at its own rate (docs/accounting.md has the rules and a worked table).

    ``usage.input_tokens`` includes cached reads and cache writes (see canonical.py), so only
    the remainder is charged at the plain input rate; ``output_tokens`` includes reasoning, so
    only the rest is charged at the output rate. Cache writes split into the 1-hour part
    (``cache_write_1h``) and the rest (5-minute, ``cache_write``). Past the long-context
    threshold every class bills at the tier's rates; a batch (or flex) request takes the
    price's ``batch_discount`` off every class.
    """
    if price is None:
        return ZERO
    rates = rates_for(usage, price)
    plain_in = max(usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens, 0)
    plain_out = max(usage.output_tokens - usage.reasoning_tokens, 0)
    write_1h = min(usage.cache_write_1h_tokens, usage.cache_write_tokens)
    write_5m = usage.cache_write_tokens - write_1h
    rate_1h = rates.cache_write if rates.cache_write_1h is None else rates.cache_write_1h
    scale = (1.0 - price.batch_discount) / 1_000_000 if batch else 1 / 1_000_000
    return Cost(
        input=plain_in * rates.input * scale,
        cached_input=usage.cached_input_tokens * rates.cached_input * scale,
        cache_write_5m=write_5m * rates.cache_write * scale,
        cache_write_1h=write_1h * rate_1h * scale,
        output=plain_out * rates.output * scale,
        reasoning=usage.reasoning_tokens * rates.reasoning * scale,
    )


def cache_savings(usage: Usage, price: Price | None, *, batch: bool = False) -> float:
    """What provider prompt caching saved on ``usage``, in USD: what its cache reads and writes
    would have cost at the plain input rate, minus what they cost (cache writes bill above the
    input rate, so a request that only wrote saves less than nothing)."""
    if price is None or not (usage.cached_input_tokens or usage.cache_write_tokens):
        return 0.0
    rates = rates_for(usage, price)
    write_1h = min(usage.cache_write_1h_tokens, usage.cache_write_tokens)
    write_5m = usage.cache_write_tokens - write_1h
    rate_1h = rates.cache_write if rates.cache_write_1h is None else rates.cache_write_1h
    saved = (
        usage.cached_input_tokens * (rates.input - rates.cached_input)
        + write_5m * (rates.input - rates.cache_write)
        + write_1h * (rates.input - rate_1h)
    )
    scale = (1.0 - price.batch_discount) / 1_000_000 if batch else 1 / 1_000_000
    return saved * scale


def price_version(price: Price | None) -> str:
    """What a ledger row stores as its price version (``unpriced`` for a deployment without a price)."""
    return price.version if price is not None else "unpriced"


def cost_usd(usage: Usage, price: Price | None, *, batch: bool = False) -> float:
    """The total of :func:`cost_breakdown`."""
    return cost_breakdown(usage, price, batch=batch).total


def units_cost(units: MediaUnits, price: Price | None) -> Cost:
    """What an audio or image request cost by its units at the price's per-unit rate (ZERO
    without one): audio transcribed and text spoken count as input, images made as output."""
    if price is None:
        return ZERO
    rate = {"seconds": price.per_second, "characters": price.per_character, "images": price.per_image}[
        units.unit
    ]
    if rate is None:
        return ZERO
    usd = units.quantity * rate
    return Cost(output=usd) if units.unit == "images" else Cost(input=usd)
