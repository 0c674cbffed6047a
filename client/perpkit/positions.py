"""``Position``: a position with its risk numbers at a given index price, from the reference model.

Numbers come from :mod:`perpkit.risk`, so they are the program's numbers.
Funding is taken at the market's funding index brought forward to a chosen
time (``project_funding``). On chain it is applied lazily, so the stored
index can lag.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from fractions import Fraction

from solders.pubkey import Pubkey

from perpkit import risk
from perpkit.accounts import Market
from perpkit.risk import Side as Side  # defined in perpkit.risk, re-exported here

WARNING_FRACTION = Fraction(4, 5)
"""Warning once the index has covered this fraction of the way from entry to the liquidation price (exact)."""


class Health(enum.Enum):
    HEALTHY = "healthy"
    WARNING = "warning"
    LIQUIDATABLE = "liquidatable"


HEALTH_BY_CODE = (Health.HEALTHY, Health.WARNING, Health.LIQUIDATABLE)
"""``Health`` of each code of ``Book.health_codes`` (the vectorised health of a whole book)."""


def project_funding(market: Market, now: int) -> Market:
    """The market with its funding indices brought up to ``now``, as the next instruction would."""
    dt = now - market.funding_updated_at
    if dt <= 0:
        return market
    long_index, short_index = risk.accrue_funding(
        market.oi_long,
        market.oi_short,
        market.last_index_price,
        dt,
        market.params.max_funding_rate_bps_per_day,
        market.funding_index_long,
        market.funding_index_short,
    )
    return replace(market, funding_index_long=long_index, funding_index_short=short_index, funding_updated_at=now)


@dataclass(frozen=True)
class Position:
    """A position of a market; ``liquidated`` when it has been cut from the book."""

    market: Market
    slot: int
    generation: int
    side: int
    size: int
    collateral: int
    entry_price: int
    funding_at_open: int
    key: int
    liquidated: bool = False
    owner: Pubkey | None = None

    @property
    def terms(self) -> risk.Terms:
        return risk.Terms(self.side, self.size, self.collateral, self.entry_price, self.funding_at_open)

    @property
    def funding_index(self) -> int:
        return self.market.funding_index(self.side)

    def funding_owed(self) -> int:
        """Quote atoms the position owes in funding (negative: it is owed)."""
        return risk.funding_owed(self.size, self.funding_index, self.funding_at_open)

    def notional(self, price: int) -> int:
        return risk.notional(self.size, price)

    def pnl(self, price: int) -> int:
        return risk.pnl(self.terms, price)

    def equity(self, price: int) -> int:
        """Collateral + PnL - funding owed at ``price`` (quote atoms)."""
        return risk.equity(self.terms, price, self.funding_index)

    def maintenance_requirement(self, price: int) -> int:
        return risk.requirement(self.size, price, self.market.params.maintenance_margin_bps)

    def margin_ratio(self, price: int) -> float:
        """Equity / maintenance requirement: below 1 the position is liquidatable."""
        return self.equity(price) / self.maintenance_requirement(price)

    def ltv(self, price: int) -> float:
        """Loan to value: the borrowed share of what the position holds."""
        notional = self.size * price / risk.B
        equity = self.equity(price)
        if self.side == Side.LONG:
            return (notional - equity) / notional
        return notional / (notional + equity) if notional + equity > 0 else float("inf")

    def liquidation_price(self) -> int:
        """A long is liquidatable below this price, a short above it (exact, in price atoms)."""
        return risk.liquidation_price(self.terms, self.funding_index, self.market.params.maintenance_margin_bps)

    def is_liquidatable(self, price: int) -> bool:
        return risk.is_liquidatable(self.terms, price, self.funding_index, self.market.params.maintenance_margin_bps)

    def health(self, price: int) -> Health:
        """Liquidatable, warning (80% of the way from entry to the liquidation price), or healthy.

        Exact (no float); ``Book.health_codes`` gives the same for every position of a book at once."""
        if self.liquidated or self.is_liquidatable(price):
            return Health.LIQUIDATABLE
        lp = self.liquidation_price()
        distance = self.entry_price - lp if self.side == Side.LONG else lp - self.entry_price
        travelled = self.entry_price - price if self.side == Side.LONG else price - self.entry_price
        if distance > 0 and travelled >= WARNING_FRACTION * distance:
            return Health.WARNING
        return Health.HEALTHY
