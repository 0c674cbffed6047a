"""The program's market instructions, modelled in Python on decoded state.

``Engine`` takes a decoded :class:`~perpkit.accounts.Market` and says what
``open_position`` / ``close_position`` would do at a given time and oracle
price: the fill, fee, key, payout and the market afterwards, or the
:class:`~perpkit.risk.RiskError` the program would return.  It follows
``program/src/ix_trade.c`` step by step and uses :mod:`perpkit.risk` for
every number, so the tests can hold the program to it, and traders can
quote a trade before sending it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from perpkit import risk
from perpkit.accounts import Market, MarketParams
from perpkit.book import Book
from perpkit.errors import RiskError
from perpkit.oracles import OracleKind
from perpkit.risk import Side, Terms


@dataclass(frozen=True)
class Opened:
    market: Market
    entry_price: int
    fee: int
    notional: int
    key: int
    funding_at_open: int


@dataclass(frozen=True)
class Closed:
    market: Market
    exit_price: int
    fee: int
    notional: int
    pnl: int
    funding_owed: int
    payout: int


@dataclass(frozen=True)
class OracleReading:
    price: int
    conf: int
    publish_time: int


class Engine:
    """The market's state transitions (funding, oracle read, fills), as the program makes them."""

    def __init__(self, market: Market) -> None:
        self.market = market

    def touch(self, now: int) -> Market:
        """Funding brought up to ``now`` at the last index price (every market instruction)."""
        m = self.market
        if now <= m.funding_updated_at:
            return m
        long_index, short_index = risk.accrue_funding(
            m.oi_long, m.oi_short, m.last_index_price, now - m.funding_updated_at,
            m.params.max_funding_rate_bps_per_day, m.funding_index_long, m.funding_index_short,
        )  # fmt: skip
        return replace(m, funding_index_long=long_index, funding_index_short=short_index, funding_updated_at=now)

    @staticmethod
    def read_oracle(m: Market, oracle: OracleReading, now: int) -> Market:
        p = m.params
        risk.check_oracle(oracle.price, oracle.conf, oracle.publish_time, now, p.max_staleness_s, p.max_conf_bps,
                          p.max_publish_ahead_s)  # fmt: skip
        if m.oracle_kind == OracleKind.PYTH and oracle.publish_time < m.oracle_publish_time:
            raise RiskError("OraclePublishTimeWentBack")  # a Pyth update account is never read backwards
        ewma, updated = risk.update_ewma(m.ewma_price, m.ewma_updated_at, oracle.price, now, p.ewma_window_s)
        return replace(m, ewma_price=ewma, ewma_updated_at=updated, last_index_price=oracle.price,
                       oracle_publish_time=oracle.publish_time)  # fmt: skip

    @staticmethod
    def fill(m: Market, index_price: int, size: int, buy: bool, worst_price: int) -> int:
        if m.paused:
            raise RiskError("MarketPaused")
        s0 = m.oi_long - m.oi_short
        s1 = s0 + size if buy else s0 - size
        price = risk.fill_price(index_price, s0, s1, m.params.skew_scale, buy)
        if (price > worst_price) if buy else (price < worst_price):
            raise RiskError("SlippageExceeded")
        risk.check_band(index_price, s0, s1, m.params.skew_scale, m.ewma_price, m.params.price_band_bps)
        return price

    def open(
        self, *, now: int, oracle: OracleReading, side: int, size: int, collateral: int, worst_price: int, free: int
    ) -> Opened:
        """``open_position``: what the program does, or the RiskError it returns."""
        if side not in (Side.LONG, Side.SHORT):
            raise RiskError("InvalidSide")
        if size == 0:
            raise RiskError("InvalidSize")
        if collateral == 0:
            raise RiskError("InvalidAmount")
        m = self.read_oracle(self.touch(now), oracle, now)
        price = self.fill(m, oracle.price, size, side == Side.LONG, worst_price)
        side_oi = m.oi_long if side == Side.LONG else m.oi_short
        if side_oi + size > m.params.open_interest_cap:
            raise RiskError("OpenInterestCapExceeded")
        notional = risk.notional(size, price)
        if notional < m.params.min_position_notional:
            raise RiskError("PositionTooSmall")
        fee = risk.fee(notional, m.params.taker_fee_bps)
        if collateral < risk.requirement(size, price, m.params.initial_margin_bps):
            raise RiskError("InitialMarginNotMet")
        if collateral + fee > free:
            raise RiskError("InsufficientFreeCollateral")
        index = m.funding_index(side)
        terms = Terms(side, size, collateral, price, index)
        key = risk.key(terms)
        threshold = risk.threshold(side, oracle.price, index, m.params.maintenance_margin_bps)
        if risk.liquidatable(side, key, threshold):
            raise RiskError("WouldBeLiquidatable")
        m = replace(
            m,
            oi_long=m.oi_long + (size if side == Side.LONG else 0),
            oi_short=m.oi_short + (size if side != Side.LONG else 0),
            pool_balance=m.pool_balance + fee,
            total_free_collateral=m.total_free_collateral - collateral - fee,
            total_position_collateral=m.total_position_collateral + collateral,
            fees_collected=m.fees_collected + fee,
            volume=m.volume + notional,
            positions_opened=m.positions_opened + 1,
        )
        return Opened(m, price, fee, notional, key, index)

    def update_params(self, *, now: int, oracle: OracleReading, params: MarketParams, book: Book) -> Market:
        """``update_market_params``: the market under the new parameters, or the RiskError the program returns.

        Bounds first (``InvalidMarketParams``), then funding under the old parameters, the oracle read under
        the new ones, and ``ParamsWouldLiquidate`` if the most exposed position of a side would go."""
        m = self.market
        risk.check_params(params.to_idl(), m.oi_long, m.oi_short)
        m = replace(self.touch(now), params=params)
        m = self.read_oracle(m, oracle, now)
        for side in Side:
            slot = book.most_exposed(side)
            if slot is None:
                continue
            threshold = risk.threshold(side, oracle.price, m.funding_index(side), params.maintenance_margin_bps)
            if risk.liquidatable(side, book.key(slot), threshold):
                raise RiskError("ParamsWouldLiquidate", f"slot {slot} would be liquidatable at {oracle.price}")
        return m

    def close(self, *, now: int, oracle: OracleReading, terms: Terms, worst_price: int) -> Closed:
        """``close_position``: the payout to free collateral and the pool's share."""
        m = self.read_oracle(self.touch(now), oracle, now)
        price = self.fill(m, oracle.price, terms.size, terms.side != Side.LONG, worst_price)
        notional = risk.notional(terms.size, price)
        fee = risk.fee(notional, m.params.taker_fee_bps)
        pnl = risk.pnl(terms, price)
        owed = risk.funding_owed(terms.size, m.funding_index(terms.side), terms.funding_at_open)
        payout = max(0, terms.collateral + pnl - owed - fee)
        pool = m.pool_balance + terms.collateral - payout
        if pool < 0:
            raise RiskError("InsufficientPoolBalance")
        m = replace(
            m,
            oi_long=m.oi_long - (terms.size if terms.side == Side.LONG else 0),
            oi_short=m.oi_short - (terms.size if terms.side != Side.LONG else 0),
            pool_balance=pool,
            total_free_collateral=m.total_free_collateral + payout,
            total_position_collateral=m.total_position_collateral - terms.collateral,
            fees_collected=m.fees_collected + fee,
            volume=m.volume + notional,
            positions_closed=m.positions_closed + 1,
        )
        return Closed(m, price, fee, notional, pnl, owed, payout)
