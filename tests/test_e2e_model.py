"""Differential test: random trading sequences on chain against the reference model, number for number.

Before each transaction the model (perpkit.engine) predicts, from the decoded
on-chain state, either the exact outcome (fill, fee, key, payout and every
field of the market afterwards) or the named error.  After it, the chain must
match exactly: the whole Market account, the new position's slot, the user's
free collateral.  SPEC 7 conservation is checked after every transaction too.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from perpkit import Client, MarketParams, ProgramError
from perpkit.engine import Engine, OracleReading
from perpkit.risk import U64_MAX, RiskError, Side
from perpkit.testing import ConservationChecker, setup_trading

UNIT = 10**6
market_ids = itertools.count(1000)

operations = st.lists(
    st.one_of(
        st.tuples(st.just("open"), st.integers(0, 2), st.sampled_from([0, 1]), st.integers(1, 40 * UNIT),
                  st.integers(1, 12)),  # trader, side, size (base atoms), leverage
        st.tuples(st.just("close"), st.integers(0, 10**6)),
        st.tuples(st.just("time"), st.integers(1, 4 * 3600)),
        st.tuples(st.just("price"), st.integers(-9, 9)),  # percent
    ),
    min_size=4,
    max_size=22,
)  # fmt: skip


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
async def test_program_matches_the_model(perps_client: Client, ops: list[tuple[Any, ...]]) -> None:
    c = perps_client
    params = MarketParams(skew_scale=2_000 * UNIT, max_funding_rate_bps_per_day=500)
    setup = await setup_trading(c, price=100 * UNIT, params=params, traders=3, market_id=next(market_ids))
    ConservationChecker(c, setup.market).attach()
    open_slots: list[tuple[int, int]] = []  # (trader, slot)
    price = 100 * UNIT
    try:
        for op in ops:
            kind = op[0]
            if kind == "time":
                await c.advance_time(op[1])
                continue
            if kind == "price":
                price = max(1, price * (100 + op[1]) // 100)
                await c.set_oracle_price(setup.oracle, price=price)
                continue
            market = await c.fetch_market(setup.market)
            o = await c.fetch_oracle(setup.oracle)
            reading = OracleReading(o.price, o.conf, o.publish_time)
            engine = Engine(market)
            now = await c.now()
            if kind == "open":
                _, who, side, size, leverage = op
                trader = setup.traders[who]
                free = (await c.fetch_user(setup.market, trader.pubkey())).free_collateral
                collateral = max(1, size * price // UNIT // leverage)
                worst = U64_MAX if side == Side.LONG else 0
                try:
                    want: Any = engine.open(now=now, oracle=reading, side=side, size=size, collateral=collateral,
                                            worst_price=worst, free=free)  # fmt: skip
                except RiskError as exc:
                    want = exc
                try:
                    position = await c.open_position(setup.market, side, size, collateral, owner=trader)
                except ProgramError as exc:
                    assert isinstance(want, RiskError), f"model: {want}, program: {exc}"
                    assert exc.error_name == want.error_name
                    event(f"open refused: {exc.error_name}")
                    assert await c.fetch_market(setup.market) == market
                    continue
                assert not isinstance(want, RiskError), f"model said {want.error_name}, the program opened"
                event("open filled")
                assert (position.entry_price, position.key, position.funding_at_open) == (
                    want.entry_price, want.key, want.funding_at_open,
                )  # fmt: skip
                assert await c.fetch_market(setup.market) == want.market
                user = await c.fetch_user(setup.market, trader.pubkey())
                assert user.free_collateral == free - collateral - want.fee
                open_slots.append((who, position.slot))
            elif kind == "close" and open_slots:
                who, slot = open_slots[op[1] % len(open_slots)]
                trader = setup.traders[who]
                position = await c.fetch_position(setup.market, slot)
                free = (await c.fetch_user(setup.market, trader.pubkey())).free_collateral
                worst = 0 if position.side == Side.LONG else U64_MAX
                try:
                    closed: Any = engine.close(now=now, oracle=reading, terms=position.terms, worst_price=worst)
                except RiskError as exc:
                    closed = exc
                try:
                    await c.close_position(setup.market, position, owner=trader)
                except ProgramError as exc:
                    assert isinstance(closed, RiskError), f"model: {closed}, program: {exc}"
                    assert exc.error_name == closed.error_name
                    event(f"close refused: {exc.error_name}")
                    continue
                assert not isinstance(closed, RiskError), f"model said {closed.error_name}, the program closed"
                event("close settled")
                assert await c.fetch_market(setup.market) == closed.market
                user = await c.fetch_user(setup.market, trader.pubkey())
                assert user.free_collateral == free + closed.payout
                open_slots.remove((who, slot))
    finally:
        c.after_send.clear()


@pytest.mark.litesvm_only
def test_model_covers_the_errors_it_claims() -> None:
    """The model's error names are IDL errors (so the comparison above is meaningful)."""
    from perpkit import program_errors

    for name in ("InitialMarginNotMet", "PriceBandBreached", "OracleStale", "InsufficientFreeCollateral",
                 "SlippageExceeded", "SkewLimitExceeded", "WouldBeLiquidatable", "InsufficientPoolBalance"):  # fmt: skip
        assert hasattr(program_errors, name)
