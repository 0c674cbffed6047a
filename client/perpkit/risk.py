"""The reference model of the risk engine: the program's numbers, bit for bit, in Python integers.

Every function here is the Python twin of one in ``program/src/risk.c`` and
follows ``docs/risk-engine.md``. Where the program fails with an error code,
the model raises :class:`RiskError` with the IDL name of that error.  The
native tests compare the two on random inputs; the end-to-end tests compare
the model with what the program wrote on chain.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from perpkit.errors import RiskError as RiskError  # defined in perpkit.errors, re-exported here
from perpkit.idl import perps_idl

# The program's constants, from the IDL (the C program reads the same ones from perps_idl.h).
B = perps_idl().constant("BASE_UNIT")
"""Base atoms per whole base unit."""
BPS = perps_idl().constant("BPS")
FS = perps_idl().constant("FUNDING_SCALE")
"""Funding index units per quote atom per base unit."""
DAY = perps_idl().constant("SECONDS_PER_DAY")


class Side(enum.IntEnum):
    """A position's side, as the program encodes it (IDL constants ``SIDE_LONG``/``SIDE_SHORT``)."""

    LONG = perps_idl().constant("SIDE_LONG")
    SHORT = perps_idl().constant("SIDE_SHORT")


LONG, SHORT = Side.LONG, Side.SHORT
"""Aliases of ``Side.LONG``/``Side.SHORT`` (the same objects), kept for compatibility."""

U64_MAX = 2**64 - 1
I128_MAX = 2**127 - 1
I128_MIN = -(2**127)


def ceil_div(n: int, d: int) -> int:
    return -((-n) // d)


def _u64(v: int) -> int:
    if not 0 <= v <= U64_MAX:
        raise RiskError("ArithmeticOverflow", f"{v} does not fit in u64")
    return v


def _i128(v: int) -> int:
    if not I128_MIN <= v <= I128_MAX:
        raise RiskError("ArithmeticOverflow", f"{v} does not fit in i128")
    return v


def _u128(v: int) -> int:
    if not 0 <= v < 2**128:
        raise RiskError("ArithmeticOverflow", f"{v} does not fit in u128")
    return v


# -- oracle and EWMA -------------------------------------------------------------------


def check_oracle(
    price: int,
    conf: int,
    publish_time: int,
    now: int,
    max_staleness_s: int,
    max_conf_bps: int,
    max_publish_ahead_s: int,
) -> None:
    if price <= 0:
        raise RiskError("OraclePriceNotPositive")
    if now > publish_time and now - publish_time > max_staleness_s:
        raise RiskError("OracleStale", f"published {now - publish_time} s ago")
    if publish_time > now and publish_time - now > max_publish_ahead_s:
        raise RiskError("OraclePublishedInFuture", f"published {publish_time - now} s ahead of the clock")
    if conf * BPS > max_conf_bps * price:
        raise RiskError("OracleConfidenceTooWide")


def update_ewma(ewma: int, updated_at: int, price: int, now: int, window: int) -> tuple[int, int]:
    """(new EWMA, new update time)."""
    if ewma == 0:
        return price, now
    w = min(max(now - updated_at, 0), window)
    if w:
        ewma += ((price - ewma) * w) // window
    return ewma, now


# -- parameters ----------------------------------------------------------------------------

MAX_FUNDING_RATE_BPS_PER_DAY = 1_000
MAX_STALENESS_S = DAY
MAX_EWMA_WINDOW_S = 7 * DAY
MAX_TAKER_FEE_BPS = 100
MAX_LIQUIDATION_REWARD_BPS = BPS // 2
MIN_POSITION_NOTIONAL_FLOOR = 1_000_000
MAX_PUBLISH_AHEAD_S = 60


def params_problems(values: Mapping[str, Any], oi_long: int = 0, oi_short: int = 0) -> list[str]:
    """Why the program would refuse these parameters (``InvalidMarketParams``); empty when it would not.

    The bounds of docs/risk-engine.md ("Parameters"), and the open-interest cap rule, which must also hold
    for the open interest the market has now.  ``values`` are the parameters by IDL field name
    (``MarketParams.to_idl()``)."""
    p = SimpleNamespace(**values)
    problems: list[str] = []

    def need(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    need(0 < p.skew_scale < 2**62, "skew_scale must be positive and below 2^62")
    need(p.max_funding_rate_bps_per_day <= MAX_FUNDING_RATE_BPS_PER_DAY,
         f"max_funding_rate_bps_per_day must be at most {MAX_FUNDING_RATE_BPS_PER_DAY}")  # fmt: skip
    need(0 < p.max_staleness_s <= MAX_STALENESS_S, f"max_staleness_s must be 1 to {MAX_STALENESS_S}")
    need(0 < p.ewma_window_s <= MAX_EWMA_WINDOW_S, f"ewma_window_s must be 1 to {MAX_EWMA_WINDOW_S}")
    need(0 < p.maintenance_margin_bps < p.initial_margin_bps <= BPS,
         "margins must satisfy 0 < maintenance_margin_bps < initial_margin_bps <= 10000")  # fmt: skip
    need(p.taker_fee_bps <= MAX_TAKER_FEE_BPS, f"taker_fee_bps must be at most {MAX_TAKER_FEE_BPS}")
    need(p.liquidation_reward_bps <= MAX_LIQUIDATION_REWARD_BPS,
         f"liquidation_reward_bps must be at most {MAX_LIQUIDATION_REWARD_BPS}")  # fmt: skip
    need(0 < p.price_band_bps <= BPS, "price_band_bps must be 1 to 10000")
    need(p.max_conf_bps <= BPS, "max_conf_bps must be at most 10000")
    need(p.max_open_interest > 0, "max_open_interest must be positive")
    need(p.min_position_notional >= MIN_POSITION_NOTIONAL_FLOOR,
         f"min_position_notional must be at least {MIN_POSITION_NOTIONAL_FLOOR} (1 USDC)")  # fmt: skip
    need(p.max_publish_ahead_s <= MAX_PUBLISH_AHEAD_S, f"max_publish_ahead_s must be at most {MAX_PUBLISH_AHEAD_S}")
    need(not any(p.padding), "padding must be zero")
    if not problems:
        largest = max(p.max_open_interest, oi_long, oi_short)
        need(largest * 2 * BPS <= p.skew_scale * p.maintenance_margin_bps,
             f"open interest cap rule: max(max_open_interest, open interest now) = {largest} needs "
             f"skew_scale * maintenance_margin_bps >= {largest * 2 * BPS}")  # fmt: skip
    return problems


def check_params(values: Mapping[str, Any], oi_long: int = 0, oi_short: int = 0) -> None:
    problems = params_problems(values, oi_long, oi_short)
    if problems:
        raise RiskError("InvalidMarketParams", "; ".join(problems))


# -- funding ---------------------------------------------------------------------------


def accrue_funding(
    oi_long: int, oi_short: int, price: int, dt: int, max_rate_bps_per_day: int, index_long: int, index_short: int
) -> tuple[int, int]:
    """Indices after ``dt`` seconds of funding at ``price`` (the program's risk_accrue_funding).

    The heavy side's index rises by ``D`` per unit and the light side's falls by the same ``D``:
    the light side receives the heavy side's rate on its own size, and the pool keeps the rest."""
    if dt == 0 or price == 0 or oi_long == oi_short:
        return index_long, index_short
    heavy_long = oi_long > oi_short
    skew = abs(oi_long - oi_short)
    total = _u64(oi_long + oi_short)
    rate_dt = _u64(max_rate_bps_per_day * dt)
    b = _u128((price * rate_dt * skew) // total)
    d = (b * FS) // (BPS * DAY)
    if d > I128_MAX:
        raise RiskError("ArithmeticOverflow")
    oi_light = oi_short if heavy_long else oi_long
    heavy = (index_long if heavy_long else index_short) + d
    light = index_short if heavy_long else index_long
    _i128(heavy)
    if oi_light:  # each unit of the light side receives what a unit of the heavy side pays (SPEC 5)
        light = _i128(light - d)
    return (heavy, light) if heavy_long else (light, heavy)


def funding_owed(size: int, funding_index: int, funding_at_open: int) -> int:
    """Funding the position owes (negative: is owed), rounded against the trader."""
    diff = _i128(funding_index - funding_at_open)
    return ceil_div(_i128(diff * size), B * FS)


# -- fills -------------------------------------------------------------------------------


def fill_price(index_price: int, skew0: int, skew1: int, skew_scale: int, buy: bool) -> int:
    factor = 2 * skew_scale + skew0 + skew1
    if factor <= 0:
        raise RiskError("SkewLimitExceeded")
    _u64(factor)
    _u64(2 * skew_scale)
    num = index_price * factor
    q = ceil_div(num, 2 * skew_scale) if buy else num // (2 * skew_scale)
    _u64(q)
    if q == 0:
        raise RiskError("SkewLimitExceeded")
    return q


def mark_distance(index_price: int, skew: int, skew_scale: int, ewma: int) -> int:
    """|I*(K + s) - ewma*K|: the mark's distance from the EWMA, times K."""
    mark = _i128((skew_scale + skew) * index_price)
    ewma_k = _i128(ewma * skew_scale)
    return abs(_i128(mark - ewma_k))


def check_band(index_price: int, skew0: int, skew1: int, skew_scale: int, ewma: int, band_bps: int) -> None:
    after = mark_distance(index_price, skew1, skew_scale, ewma)
    lhs, rhs = after * BPS, ewma * skew_scale * band_bps
    if lhs < 2**128 and rhs < 2**128 and lhs <= rhs:  # the program's 128-bit products
        return
    before = mark_distance(index_price, skew0, skew_scale, ewma)
    if after >= before:
        raise RiskError("PriceBandBreached")


def notional(size: int, price: int) -> int:
    return _u64(ceil_div(size * price, B))


def fee(notional_value: int, fee_bps: int) -> int:
    return _u64(ceil_div(notional_value * fee_bps, BPS))


def requirement(size: int, price: int, bps: int) -> int:
    """ceil(size * price * bps / (B * BPS)): an initial or maintenance margin requirement."""
    return _u64(ceil_div(size * price * bps, B * BPS))


# -- positions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Terms:
    """What the engine needs of a position."""

    side: int
    size: int
    collateral: int
    entry_price: int
    funding_at_open: int


def key(t: Terms) -> int:
    """The funding-free liquidation key."""
    if t.size == 0:
        raise RiskError("InvalidSize")
    c_over_s = (t.collateral * B * BPS * FS) // t.size
    if t.side == Side.LONG:
        return _i128(_i128(_i128(FS * t.entry_price - t.funding_at_open) * BPS) - c_over_s)
    return _i128(_i128(_i128(FS * t.entry_price + t.funding_at_open) * BPS) + c_over_s)


def threshold(side: int, price: int, funding_index: int, mm_bps: int) -> int:
    factor = BPS - mm_bps if side == Side.LONG else BPS + mm_bps
    scaled_price = FS * price * factor
    if scaled_price > I128_MAX:
        raise RiskError("ArithmeticOverflow")
    scaled_index = _i128(funding_index * BPS)
    return _i128(scaled_price - scaled_index if side == Side.LONG else scaled_price + scaled_index)


def liquidatable(side: int, key_value: int, threshold_value: int) -> bool:
    return threshold_value < key_value if side == Side.LONG else key_value < threshold_value


def liquidation_price(t: Terms, funding_index: int, mm_bps: int) -> int:
    """A long is liquidatable below this price, a short above it."""
    return key_liquidation_price(t.side, key(t), funding_index, mm_bps)


def key_liquidation_price(side: int, key_value: int, funding_index: int, mm_bps: int) -> int:
    """The liquidation price of a position of ``side`` with the key ``key_value`` (``perpkit.book`` vectorises it)."""
    scaled_index = _i128(funding_index * BPS)
    if side == Side.LONG:
        return _i128(ceil_div(_i128(key_value + scaled_index), FS * (BPS - mm_bps)))
    return _i128(_i128(key_value - scaled_index) // (FS * (BPS + mm_bps)))


def pnl(t: Terms, price: int) -> int:
    move = price - t.entry_price if t.side == Side.LONG else t.entry_price - price
    return _i128(move * t.size) // B


def equity(t: Terms, price: int, funding_index: int) -> int:
    """Collateral + PnL - funding owed, each rounded against the trader."""
    return t.collateral + pnl(t, price) - funding_owed(t.size, funding_index, t.funding_at_open)


def is_liquidatable(t: Terms, price: int, funding_index: int, mm_bps: int) -> bool:
    return liquidatable(t.side, key(t), threshold(t.side, price, funding_index, mm_bps))


# -- batch liquidation ---------------------------------------------------------------------


@dataclass(frozen=True)
class Sums:
    """Sums over a set of positions of one side, as the book's inner nodes keep them."""

    count: int = 0
    collateral: int = 0
    size: int = 0
    size_entry: int = 0
    size_funding: int = 0

    @classmethod
    def of(cls, terms: list[Terms]) -> Sums:
        return cls(
            len(terms),
            sum(t.collateral for t in terms),
            sum(t.size for t in terms),
            sum(t.size * t.entry_price for t in terms),
            sum(t.size * t.funding_at_open for t in terms),
        )


def batch_equity(side: int, sums: Sums, price: int, funding_index: int) -> int:
    """Aggregate equity of cut positions: collateral + floor(pnl) - ceil(funding owed), from their sums."""
    value = price * sums.size
    move = value - sums.size_entry if side == Side.LONG else sums.size_entry - value
    pnl = _i128(move // B)
    owed = ceil_div(_i128(_i128(funding_index * sums.size) - sums.size_funding), B * FS)
    return _i128(_i128(sums.collateral + pnl) - owed)


def batch_exit_price(index_price: int, skew0: int, long_size: int, short_size: int, skew_scale: int) -> int:
    """The price a liquidation batch leaves at: the fill of its net size (longs sell, shorts buy), SPEC 6."""
    skew1 = skew0 - long_size + short_size
    return fill_price(index_price, skew0, skew1, skew_scale, buy=short_size > long_size)


@dataclass(frozen=True)
class Payout:
    reward: int
    insurance_credit: int
    insurance_paid: int
    socialized_loss: int
    pool_credit: int


def batch_payout(equity: int, collateral: int, pool: int, insurance: int, reward_bps: int) -> Payout:
    """Where a batch's value goes: cranker, insurance fund, pool; shortfalls covered or socialised."""
    if equity >= 0:
        r, social = equity, 0
        if r > collateral + pool:
            social = _u64(r - collateral - pool)
            r = collateral + pool
        _u64(r)
        reward = r * reward_bps // BPS
        return Payout(reward, r - reward, 0, social, collateral - r)
    shortfall = -equity
    cover = min(shortfall, insurance)
    return Payout(0, 0, cover, _u64(shortfall - cover), collateral + cover)
