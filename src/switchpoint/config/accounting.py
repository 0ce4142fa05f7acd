"""The ``accounting:`` section: the display currency spend is shown in next to USD.

The ledger stays in USD; every figure of spend shown (``/admin/usage`` JSON and CSV,
``switchpoint usage``) is given in USD and, when ``display_currency`` is set, in that currency
at the configured rate (units of it per USD)::

    accounting:
      display_currency: CNY
      rates: {CNY: 7.1}
"""

from __future__ import annotations

import math
import re

import msgspec

from switchpoint.config.base import _Base

_CODE = re.compile(r"^[A-Z]{3}$")


class AccountingSpec(_Base):
    #: ISO 4217 code spend is also shown in (USD alone when unset or ``USD``).
    display_currency: str | None = None
    #: Units of each currency per USD (the display currency must have one).
    rates: dict[str, float] = msgspec.field(default_factory=dict)


class DisplayCurrency(msgspec.Struct, frozen=True, kw_only=True):
    """The resolved section: ``code`` and units of it per USD (``USD``, 1.0 when none is set)."""

    code: str = "USD"
    rate: float = 1.0

    @property
    def shown(self) -> bool:
        """Whether spend is shown in a second currency."""
        return self.code != "USD"

    def convert(self, usd: float) -> float:
        return usd * self.rate


def resolve_accounting(spec: AccountingSpec | None, problems: list[str]) -> DisplayCurrency:
    if spec is None:
        return DisplayCurrency()
    for name, value in spec.rates.items():
        if not _CODE.match(name):
            problems.append(f"$.accounting.rates.{name}: currency codes are 3 capital letters (ISO 4217)")
        if not (math.isfinite(value) and value > 0):
            problems.append(f"$.accounting.rates.{name}: must be a positive number of units per USD")
    code = spec.display_currency
    if code is None or code == "USD":
        return DisplayCurrency()
    if not _CODE.match(code):
        problems.append("$.accounting.display_currency: currency codes are 3 capital letters (ISO 4217)")
        return DisplayCurrency()
    rate = spec.rates.get(code)
    if rate is None:
        problems.append(f"$.accounting.display_currency: no rate for {code} (set accounting.rates.{code})")
        return DisplayCurrency()
    return DisplayCurrency(code=code, rate=float(rate))
