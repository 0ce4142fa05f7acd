"""How the console writes numbers: every one with its unit (Jinja filters)."""

from __future__ import annotations

from datetime import UTC, datetime

from switchpoint.config.accounting import DisplayCurrency

DASH = "—"


def count(n: float | None) -> str:
    if n is None:
        return DASH
    return f"{int(n):,}"


def usd(v: float | None) -> str:
    """US dollars: cents for amounts over $1, more digits below (a request costs fractions of a cent)."""
    if v is None:
        return DASH
    a = abs(v)
    if a >= 100:
        return f"${v:,.0f}" if a >= 10_000 else f"${v:,.2f}"
    if a >= 1 or a == 0:
        return f"${v:,.2f}"
    if a >= 0.01:
        return f"${v:.4f}"
    return f"${v:.6f}"


def money(v: float | None, currency: DisplayCurrency) -> str:
    """An amount in the display currency (``1.23 EUR``)."""
    if v is None:
        return DASH
    x = currency.convert(v)
    a = abs(x)
    digits = 2 if a >= 1 or a == 0 else (4 if a >= 0.01 else 6)
    return f"{x:,.{digits}f} {currency.code}"


def ms(v: float | None) -> str:
    if v is None:
        return DASH
    if v >= 10_000:
        return f"{v / 1000:,.1f} s"
    return f"{v:,.0f} ms"


def pct(v: float | None, digits: int = 1) -> str:
    if v is None:
        return DASH
    return f"{100 * v:.{digits}f} %"


def when(ts: float | None) -> str:
    if ts is None:
        return DASH
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def when_short(ts: float | None) -> str:
    if ts is None:
        return DASH
    return datetime.fromtimestamp(ts, UTC).strftime("%m-%d %H:%M")


def iso_input(ts: float | None) -> str:
    """For ``<input type=datetime-local>`` (UTC)."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M")


def tokens(n: float | None) -> str:
    if n is None:
        return DASH
    n = int(n)
    if n >= 10_000_000:
        return f"{n / 1_000_000:,.1f} M tokens"
    if n >= 10_000:
        return f"{n / 1000:,.1f} k tokens"
    return f"{n:,} tokens"
