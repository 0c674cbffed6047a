"""The trading rules of SPEC 3-5, end to end: margins, fills, bands, funding, oracle checks.

Every test attaches a ConservationChecker: SPEC 7 is checked, over the
accounts themselves, after every transaction (refused ones included).
Expected numbers come from the reference model (perpkit.engine / perpkit.risk)
evaluated on the decoded on-chain state just before each transaction.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from solders.keypair import Keypair

from perpkit import Client, MarketParams, program_errors, risk
from perpkit.engine import Engine, Opened, OracleReading
from perpkit.positions import Health, Side
from perpkit.risk import BPS, FS, U64_MAX, B, Terms
from perpkit.spl_token import associated_token_address
from perpkit.testing import ConservationChecker, TradingSetup, mint_to, setup_trading

UNIT = 10**6  # one base unit, one quote unit, 1.00 in price atoms
PRICE = 100 * UNIT


async def start(c: Client, **kwargs: object) -> tuple[TradingSetup, ConservationChecker]:
    setup = await setup_trading(c, price=PRICE, **kwargs)  # type: ignore[arg-type]
    return setup, ConservationChecker(c, setup.market).attach()


async def reading(c: Client, setup: TradingSetup) -> OracleReading:
    o = await c.fetch_oracle(setup.oracle)
    return OracleReading(o.price, o.conf, o.publish_time)


async def quote_open(c: Client, setup: TradingSetup, trader: Keypair, side: int, size: int, collateral: int,
                     worst: int | None = None) -> Opened:  # fmt: skip
    market = await c.fetch_market(setup.market)
    user = await c.fetch_user(setup.market, trader.pubkey())
    limit = worst if worst is not None else (U64_MAX if side == Side.LONG else 0)
    return Engine(market).open(now=await c.now(), oracle=await reading(c, setup), side=side, size=size,
                               collateral=collateral, worst_price=limit, free=user.free_collateral)  # fmt: skip


async def test_initial_margin_limit_is_exact(perps_client: Client) -> None:
    c = perps_client
    setup, checker = await start(c)
    trader = setup.traders[0]
    size = 10 * UNIT
    quote = await quote_open(c, setup, trader, Side.LONG, size, 1_000 * UNIT)
    required = risk.requirement(size, quote.entry_price, MarketParams().initial_margin_bps)
    with pytest.raises(program_errors.InitialMarginNotMet):
        await c.open_position(setup.market, Side.LONG, size, required - 1, owner=trader)
    position = await c.open_position(setup.market, Side.LONG, size, required, owner=trader)
    assert (position.collateral, position.entry_price) == (required, quote.entry_price)
    assert required * BPS >= position.notional(position.entry_price) * 1000  # 10x, rounded toward solvency
    assert checker.checks >= 2


async def test_fill_price_follows_skew_fees_go_to_the_pool_and_worst_price_protects(perps_client: Client) -> None:
    c = perps_client
    params = MarketParams(skew_scale=1_000 * UNIT, price_band_bps=5_000)
    setup, _ = await start(c, params=params)
    alice, bob = setup.traders
    # a long of 10 on an empty book: s 0 -> 10, price I * (1 + 10/(2*1000)), rounded up for the buyer
    quote = await quote_open(c, setup, alice, Side.LONG, 10 * UNIT, 500 * UNIT)
    assert quote.entry_price == -(-PRICE * (2 * 1000 + 10) // (2 * 1000)) == 100_500_000
    with pytest.raises(program_errors.SlippageExceeded):
        await c.open_position(setup.market, Side.LONG, 10 * UNIT, 500 * UNIT, worst_price=100_499_999, owner=alice)
    pool = (await c.fetch_market(setup.market)).pool_balance
    opened = await c.open_position(setup.market, Side.LONG, 10 * UNIT, 500 * UNIT, worst_price=100_500_000, owner=alice)
    market = await c.fetch_market(setup.market)
    assert opened.entry_price == 100_500_000
    assert market.pool_balance - pool == quote.fee == -(-quote.notional * params.taker_fee_bps // BPS)
    # a short of 20: s 10 -> -10, the symmetric fill executes at the index exactly
    quote = await quote_open(c, setup, bob, Side.SHORT, 20 * UNIT, 500 * UNIT)
    assert quote.entry_price == PRICE
    with pytest.raises(program_errors.SlippageExceeded):
        await c.open_position(setup.market, Side.SHORT, 20 * UNIT, 500 * UNIT, worst_price=PRICE + 1, owner=bob)
    short = await c.open_position(setup.market, Side.SHORT, 20 * UNIT, 500 * UNIT, worst_price=PRICE, owner=bob)
    assert short.entry_price == PRICE
    market = await c.fetch_market(setup.market)
    assert (market.oi_long, market.oi_short, market.skew) == (10 * UNIT, 20 * UNIT, -10 * UNIT)


async def test_price_band_from_an_oracle_jump(perps_client: Client) -> None:
    c = perps_client
    setup, _ = await start(c)
    alice, bob = setup.traders
    await c.update_funding(setup.market)  # first oracle read: the EWMA starts at 100
    position = await c.open_position(setup.market, Side.LONG, 5 * UNIT, 100 * UNIT, owner=alice)
    await c.set_oracle_price(setup.oracle, price=112 * UNIT)  # +12% from the EWMA
    with pytest.raises(program_errors.PriceBandBreached):
        await c.open_position(setup.market, Side.LONG, 1 * UNIT, 100 * UNIT, owner=bob)
    # a fill that moves the mark toward the EWMA is allowed: a short lowers the mark
    await c.open_position(setup.market, Side.SHORT, 1 * UNIT, 100 * UNIT, owner=bob)
    # collateral moves keep working while the band is breached
    await mint_to(c, setup.quote_mint, associated_token_address(alice.pubkey(), setup.quote_mint), 5 * UNIT)
    await c.deposit(setup.market, 5 * UNIT, owner=alice)
    await c.add_margin(setup.market, position, 10 * UNIT, owner=alice)
    await c.withdraw(setup.market, 1 * UNIT, owner=alice)
    # once the EWMA has caught up (a full window), fills resume
    await c.advance_time(300)
    await c.set_oracle_price(setup.oracle, price=112 * UNIT)
    await c.open_position(setup.market, Side.LONG, 1 * UNIT, 100 * UNIT, owner=bob)
    assert (await c.fetch_market(setup.market)).ewma_price == 112 * UNIT


async def test_price_band_from_skew_alone(perps_client: Client) -> None:
    # the cap rule keeps the skew's premium within half the maintenance margin (2.5% here), so a band
    # narrower than that shows the band acting on skew alone: K = 100 units, a 2% band
    c = perps_client
    setup, _ = await start(c, params=MarketParams(skew_scale=100 * UNIT, price_band_bps=200))
    alice, bob = setup.traders
    await c.update_funding(setup.market)
    with pytest.raises(program_errors.PriceBandBreached):  # mark after: +2.2%
        await c.open_position(setup.market, Side.LONG, 2_200_000, 100 * UNIT, owner=alice)
    with pytest.raises(program_errors.PriceBandBreached):  # -2.2%
        await c.open_position(setup.market, Side.SHORT, 2_200_000, 100 * UNIT, owner=bob)
    await c.open_position(setup.market, Side.LONG, 1_800_000, 100 * UNIT, owner=alice)  # +1.8%: inside
    with pytest.raises(program_errors.PriceBandBreached):  # +1.8% -> +2.2%
        await c.open_position(setup.market, Side.LONG, 400_000, 100 * UNIT, owner=bob)
    await c.open_position(setup.market, Side.SHORT, 400_000, 100 * UNIT, owner=bob)  # back toward the EWMA


async def test_funding_heavier_longs_pay_shorts(perps_client: Client) -> None:
    c = perps_client
    params = MarketParams(max_funding_rate_bps_per_day=100)
    setup, _ = await start(c, params=params)
    alice, bob = setup.traders
    long_ = await c.open_position(setup.market, Side.LONG, 10 * UNIT, 200 * UNIT, owner=alice)
    short = await c.open_position(setup.market, Side.SHORT, 4 * UNIT, 200 * UNIT, owner=bob)
    before = await c.fetch_market(setup.market)
    long_equity = long_.equity(PRICE)
    short_equity = short.equity(PRICE)

    await c.advance_time(86_400)
    await c.set_oracle_price(setup.oracle, price=PRICE)
    await c.update_funding(setup.market)
    after = await c.fetch_market(setup.market)
    expected = risk.accrue_funding(before.oi_long, before.oi_short, before.last_index_price, 86_400, 100,
                                   before.funding_index_long, before.funding_index_short)  # fmt: skip
    assert (after.funding_index_long, after.funding_index_short) == expected
    # one day at 100 bps x |skew| 6 / OI 14 on the longs' notional at 100: about 4.2857 quote units
    paid = risk.funding_owed(10 * UNIT, after.funding_index_long, long_.funding_at_open)
    received = -risk.funding_owed(4 * UNIT, after.funding_index_short, short.funding_at_open)
    assert paid == -(-(10 * UNIT) * (after.funding_index_long - long_.funding_at_open) // (B * FS))
    assert abs(paid - 4_285_714) <= 1 and 0 < received <= paid
    long_now = await c.fetch_position(setup.market, long_.slot)
    short_now = await c.fetch_position(setup.market, short.slot)
    assert long_now.equity(PRICE) == long_equity - paid
    assert short_now.equity(PRICE) == short_equity + received

    # closing settles funding into free collateral, exactly as the model says
    m = await c.fetch_market(setup.market)
    closed = Engine(m).close(now=await c.now(), oracle=await reading(c, setup), terms=long_now.terms, worst_price=0)
    free_before = (await c.fetch_user(setup.market, alice.pubkey())).free_collateral
    await c.close_position(setup.market, long_, owner=alice)
    assert (await c.fetch_user(setup.market, alice.pubkey())).free_collateral - free_before == closed.payout
    assert closed.funding_owed == paid


async def test_funding_without_a_lighter_side_goes_to_the_pool(perps_client: Client) -> None:
    c = perps_client
    setup, _ = await start(c, params=MarketParams(max_funding_rate_bps_per_day=200))
    alice = setup.traders[0]
    position = await c.open_position(setup.market, Side.LONG, 10 * UNIT, 200 * UNIT, owner=alice)
    await c.advance_time(43_200)
    await c.set_oracle_price(setup.oracle, price=PRICE)
    m = await c.fetch_market(setup.market)
    current = await c.fetch_position(setup.market, position.slot)
    closed = Engine(m).close(now=await c.now(), oracle=await reading(c, setup), terms=current.terms, worst_price=0)
    await c.close_position(setup.market, position, owner=alice)
    after = await c.fetch_market(setup.market)
    assert after.funding_index_short == 0 and after.funding_index_long > 0
    assert closed.funding_owed > 0  # the longs paid...
    assert after.pool_balance - m.pool_balance == closed.funding_owed + closed.fee - closed.pnl  # ...into the pool


async def test_funding_shifts_every_liquidation_price_of_a_side_alike(perps_client: Client) -> None:
    c = perps_client
    setup, _ = await start(c, params=MarketParams(max_funding_rate_bps_per_day=300), traders=3)
    longs = [
        await c.open_position(setup.market, Side.LONG, size * UNIT, collateral * UNIT, owner=trader)
        for trader, size, collateral in zip(setup.traders, (10, 7, 3), (150, 250, 120), strict=True)
    ]
    book = await c.fetch_book(setup.market)
    order = [int(s) for s in book.sorted_by_key(book.live_slots(Side.LONG))]
    keys = {p.slot: book.key(p.slot) for p in longs}
    await c.advance_time(86_400)
    await c.set_oracle_price(setup.oracle, price=PRICE)
    await c.update_funding(setup.market)
    book = await c.fetch_book(setup.market)
    assert {p.slot: book.key(p.slot) for p in longs} == keys  # funding never touches the stored keys
    assert [int(s) for s in book.sorted_by_key(book.live_slots(Side.LONG))] == order
    m = await c.fetch_market(setup.market)
    mm = m.params.maintenance_margin_bps
    shift = BPS * (m.funding_index_long - longs[0].funding_at_open)  # exact: / (FS * (BPS - mm)) for every one
    assert shift > 0
    for p in longs:
        now_p = await c.fetch_position(setup.market, p.slot)
        lp = now_p.liquidation_price()
        # the liquidation price follows from the unchanged key and the side's index, exactly
        assert lp == -(-(keys[p.slot] + BPS * m.funding_index_long) // (FS * (BPS - mm)))
        assert FS * (BPS - mm) * (lp - 1) < keys[p.slot] + BPS * m.funding_index_long <= FS * (BPS - mm) * lp
        # and it is where the position's equity (funding included) meets the maintenance requirement
        terms = now_p.terms

        def below_maintenance(price: int, t: Terms = terms) -> bool:
            equity = t.collateral * 10**16 + t.size * (price - t.entry_price) * 10**10 - t.size * (m.funding_index_long - t.funding_at_open) * 10**4  # fmt: skip
            return equity < t.size * price * mm * 10**6

        assert not below_maintenance(lp) and below_maintenance(lp - 1)


async def test_stale_or_wide_oracle_stops_trading_not_withdrawals(perps_client: Client) -> None:
    c = perps_client
    setup, _ = await start(c)
    alice = setup.traders[0]
    position = await c.open_position(setup.market, Side.LONG, 2 * UNIT, 50 * UNIT, owner=alice)
    await c.advance_time(61)  # max staleness is 60 s
    for attempt in (
        c.open_position(setup.market, Side.LONG, 1 * UNIT, 50 * UNIT, owner=alice),
        c.close_position(setup.market, position, owner=alice),
        c.remove_margin(setup.market, position, 1 * UNIT, owner=alice),
        c.update_funding(setup.market),
    ):
        with pytest.raises(program_errors.OracleStale) as caught:
            await attempt
        assert caught.value.account == "oracle"
    await c.withdraw(setup.market, 5 * UNIT, owner=alice)
    await c.add_margin(setup.market, position, 1 * UNIT, owner=alice)
    await c.set_oracle_price(setup.oracle, price=PRICE, conf=PRICE * 201 // BPS)  # 2.01% > 2%
    with pytest.raises(program_errors.OracleConfidenceTooWide):
        await c.open_position(setup.market, Side.LONG, 1 * UNIT, 50 * UNIT, owner=alice)
    await c.withdraw(setup.market, 5 * UNIT, owner=alice)
    await c.set_oracle_price(setup.oracle, price=0)
    with pytest.raises(program_errors.OraclePriceNotPositive):
        await c.close_position(setup.market, position, owner=alice)
    await c.set_oracle_price(setup.oracle, price=PRICE, conf=PRICE * 200 // BPS)  # exactly 2%: accepted
    await c.close_position(setup.market, position, owner=alice)


async def test_margin_and_withdrawal_limits(perps_client: Client) -> None:
    c = perps_client
    setup, _ = await start(c)
    alice, bob = setup.traders
    quote = await quote_open(c, setup, alice, Side.LONG, 10 * UNIT, 1_000 * UNIT)
    required = risk.requirement(10 * UNIT, quote.entry_price, 1000)
    position = await c.open_position(setup.market, Side.LONG, 10 * UNIT, required + 5 * UNIT, owner=alice)
    await c.remove_margin(setup.market, position, 1 * UNIT, owner=alice)
    with pytest.raises(program_errors.InitialMarginNotMet):
        await c.remove_margin(setup.market, position, 10 * UNIT, owner=alice)
    free = (await c.fetch_user(setup.market, bob.pubkey())).free_collateral
    with pytest.raises(program_errors.InsufficientFreeCollateral):
        await c.withdraw(setup.market, free + 1, owner=bob)
    await c.withdraw(setup.market, free, owner=bob)
    with pytest.raises(program_errors.InsufficientFreeCollateral):
        await c.open_position(setup.market, Side.SHORT, 1 * UNIT, 20 * UNIT, owner=bob)
    with pytest.raises(program_errors.PositionNotFound):
        await c.close_position(setup.market, position, owner=bob)  # not bob's


async def test_pause_stops_fills_only(perps_client: Client) -> None:
    c = perps_client
    setup, _ = await start(c)
    alice = setup.traders[0]
    position = await c.open_position(setup.market, Side.SHORT, 3 * UNIT, 60 * UNIT, owner=alice)
    await c.set_paused(setup.market, True)
    with pytest.raises(program_errors.MarketPaused):
        await c.open_position(setup.market, Side.LONG, 1 * UNIT, 20 * UNIT, owner=alice)
    with pytest.raises(program_errors.MarketPaused):
        await c.close_position(setup.market, position, owner=alice)
    await c.add_margin(setup.market, position, 1 * UNIT, owner=alice)
    await c.withdraw(setup.market, 1 * UNIT, owner=alice)
    stranger = Keypair()
    await c.backend.request_airdrop(stranger.pubkey(), 10**9)
    with pytest.raises(program_errors.Unauthorized):
        await c.set_paused(setup.market, False, admin=stranger)
    await c.set_paused(setup.market, False)
    await c.close_position(setup.market, position, owner=alice)


async def test_positions_report_health(perps_client: Client) -> None:
    c = perps_client
    setup, _ = await start(c)
    alice = setup.traders[0]
    position = await c.open_position(setup.market, Side.LONG, 10 * UNIT, 101 * UNIT, owner=alice)
    lp = position.liquidation_price()
    entry = position.entry_price
    assert position.health(entry) is Health.HEALTHY
    assert position.health(entry - (entry - lp) * 79 // 100) is Health.HEALTHY
    assert position.health(entry - (entry - lp) * 81 // 100) is Health.WARNING
    assert position.health(lp) is Health.WARNING and position.health(lp - 1) is Health.LIQUIDATABLE
    assert position.margin_ratio(lp) >= 1 > position.margin_ratio(lp - 1)
    assert 0 < position.ltv(entry) < 1
    listed = await c.positions(setup.market, alice.pubkey())
    assert [(p.slot, p.liquidated) for p in listed] == [(position.slot, False)]
    assert replace(listed[0], market=position.market) == replace(position, owner=alice.pubkey())
