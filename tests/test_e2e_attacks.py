"""The attacks of issue 8, each tried end to end as an adversary would (SPEC 7b).

Each test performs the attack and asserts that it was refused or did not
pay: the actor's value (free collateral plus token balances, after it has
closed everything) is never above where it started, the insurance fund
never pays for it, nobody's funds are locked, and no market freezes.
Every test attaches a ConservationChecker (SPEC 7 after every transaction).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from solders.account import Account
from solders.keypair import Keypair

from perpkit import Client, InvalidInput, MarketParams, ProgramError, program_errors, risk
from perpkit.accounts import PositionRef
from perpkit.crank import collect_garbage, crank_once, liquidate
from perpkit.engine import Engine, OracleReading
from perpkit.positions import Side
from perpkit.spl_token import associated_token_address
from perpkit.testing import ConservationChecker, TradingSetup, setup_trading

UNIT = 10**6
PRICE = 100 * UNIT
U32_MAX = 2**32 - 1


async def start(c: Client, **kwargs: Any) -> TradingSetup:
    setup = await setup_trading(c, price=PRICE, **kwargs)
    ConservationChecker(c, setup.market).attach()
    return setup


async def value(c: Client, setup: TradingSetup, keys: Sequence[Keypair]) -> int:
    """What the actor holds outside open positions: free collateral plus quote tokens, over its keys."""
    total = 0
    for key in keys:
        total += (await c.fetch_user(setup.market, key.pubkey())).free_collateral
        total += await c.token_balance(associated_token_address(key.pubkey(), setup.quote_mint))
    return total


def refused(exc: BaseException, *names: str) -> bool:
    return isinstance(exc, ProgramError) and exc.error_name in names


async def at_initial_margin(c: Client, setup: TradingSetup, side: int, size: int) -> int:
    """The least collateral that opens ``size`` on ``side`` now (initial margin at the fill price)."""
    m = await c.fetch_market(setup.market)
    index = (await c.fetch_oracle(setup.oracle)).price
    s0 = m.oi_long - m.oi_short
    s1 = s0 + size if side == Side.LONG else s0 - size
    fill = risk.fill_price(index, s0, s1, m.params.skew_scale, side == Side.LONG)
    return risk.requirement(size, fill, m.params.initial_margin_bps)


async def publish(c: Client, setup: TradingSetup, price: int) -> None:
    await c.set_oracle_price(setup.oracle, price=price)


# -- 1 and 2: liquidation that exits without its skew impact ------------------------------------------


async def honest_crank(c: Client, setup: TradingSetup) -> None:
    """A liquidation opportunity somebody else takes (the payer's crank), as SPEC 7b assumes between index steps."""
    await liquidate(c, setup.market)


async def pool_drain(c: Client, setup: TradingSetup, a_size: int, c_size: int, steps: Sequence[int]) -> int:
    """Attack 1 with these sizes: long A at initial margin, an equal short B, index steps (an honest crank before
    each), then a short C and the actor's own crank on A, then B and C closed.  The actor's gain (quote atoms)."""
    a_trader, b_trader, c_trader = setup.traders
    start_value = await value(c, setup, setup.traders)
    a = await c.open_position(setup.market, Side.LONG, a_size, await at_initial_margin(c, setup, Side.LONG, a_size),
                              owner=a_trader)  # fmt: skip
    b = await c.open_position(setup.market, Side.SHORT, a_size, a_size * PRICE // UNIT // 2, owner=b_trader)
    price = PRICE
    for bps in steps:  # net exposure is zero whenever the index moves
        await honest_crank(c, setup)
        price = price * (10_000 - bps) // 10_000
        await publish(c, setup, price)
        if a.is_liquidatable(price):
            break  # the actor moves before anybody else cranks
    assert a.is_liquidatable(price)
    held = [(b_trader, b)]
    if c_size:
        held.append((c_trader, await c.open_position(setup.market, Side.SHORT, c_size, c_size * PRICE // UNIT,
                                                     owner=c_trader)))  # fmt: skip
    done = await liquidate(c, setup.market, cranker=a_trader)
    assert done is not None and done.batch.long_count == 1
    for owner, position in held:
        await c.close_position(setup.market, position, owner=owner)
    return await value(c, setup, setup.traders) - start_value


async def test_attack_1_pool_drain_through_liquidation(perps_client: Client) -> None:
    """Long A at initial margin and an equal short B; a 0.6% dip; a further short C; the actor cranks A itself.

    Before issue 8, A left at the index with no skew impact, the skew jumped by A's size for free and B
    bought back far under the index: +513,362.50 USDC for the actor.  Now A's size (0.1 K) is over the
    open-interest cap, and within the cap the batch exits at the fill price of its size: the attack loses.
    """
    c = perps_client
    setup = await start(c, traders=3, deposit=5_000_000 * UNIT, pool=20_000_000 * UNIT, insurance=1_000_000 * UNIT)
    cap = (await c.fetch_market(setup.market)).params.max_open_interest
    with pytest.raises(program_errors.OpenInterestCapExceeded):
        await c.open_position(setup.market, Side.LONG, 100_000 * UNIT, 2_000_000 * UNIT, owner=setup.traders[0])
    # the strongest shapes the rules leave: half the cap each with a short C as large, or the whole cap
    gains = {}
    for market_id, (a_size, c_size) in enumerate([(cap // 2, cap // 2), (cap, 0)], start=1):
        shape = await start(c, traders=3, deposit=5_000_000 * UNIT, pool=20_000_000 * UNIT,
                            insurance=1_000_000 * UNIT, market_id=market_id)  # fmt: skip
        gains[(a_size, c_size)] = await pool_drain(c, shape, a_size, c_size, steps=[240, 240, 240])
        m = await c.fetch_market(shape.market)
        assert (m.insurance_paid, m.socialized_loss) == (0, 0)
        assert m.last_liquidation_exit_price < m.last_liquidation_price  # A sold: below the index
    assert all(gain <= 0 for gain in gains.values()), f"the actor made {gains}"


async def test_attack_2_liquidation_cannot_freeze_the_market(perps_client: Client) -> None:
    """Open interest built on both sides, then every long liquidated: the skew jumped past -K, the mark went
    negative, and every close failed with SkewLimitExceeded.  Now neither side exceeds the cap, so the skew
    stays within half the maintenance margin of K (in mark terms), whatever liquidations do."""
    c = perps_client
    setup = await start(c, traders=2, params=MarketParams(skew_scale=100 * UNIT), deposit=100_000 * UNIT)
    longs, shorts = setup.traders
    cap = (await c.fetch_market(setup.market)).params.max_open_interest
    assert cap == 100 * UNIT * 500 // 20_000  # 2.5 units: the largest the rule allows
    # the old attack's first order (10 units of shorts) is over the cap
    with pytest.raises(program_errors.OpenInterestCapExceeded):
        await c.open_position(setup.market, Side.SHORT, 10 * UNIT, 1_000 * UNIT, owner=shorts)
    # both sides filled to the cap, the longs at initial margin
    held = []
    for _ in range(2):
        held.append(await c.open_position(setup.market, Side.LONG, cap // 2,
                                          await at_initial_margin(c, setup, Side.LONG, cap // 2), owner=longs))  # fmt: skip
        held.append(await c.open_position(setup.market, Side.SHORT, cap // 2, 1_000 * UNIT, owner=shorts))
    with pytest.raises(program_errors.OpenInterestCapExceeded):
        await c.open_position(setup.market, Side.SHORT, UNIT, 1_000 * UNIT, owner=shorts)
    await publish(c, setup, 90 * UNIT)
    done = await liquidate(c, setup.market)
    assert done is not None and done.batch.long_count == 2
    m = await c.fetch_market(setup.market)
    assert m.skew == -cap and m.skew * 2 * 10_000 >= -m.params.skew_scale * m.params.maintenance_margin_bps
    for position in held:
        if position.side == Side.SHORT:
            await c.close_position(setup.market, position, owner=shorts)  # every ordinary close is accepted
    assert await c.positions(setup.market, shorts.pubkey()) == []


# -- 3 and 4: dust ------------------------------------------------------------------------------------


async def test_attack_3_dust_positions_cannot_fill_the_book(perps_client: Client) -> None:
    c = perps_client
    setup = await start(c, traders=1)
    (dust,) = setup.traders
    free = (await c.fetch_user(setup.market, dust.pubkey())).free_collateral
    try:
        await c.open_position(setup.market, Side.LONG, 1, 20, owner=dust)
    except ProgramError as exc:
        assert exc.error_name == "PositionTooSmall"
    else:
        cost = free - (await c.fetch_user(setup.market, dust.pubkey())).free_collateral
        pytest.fail(f"a position of one base atom was accepted for {cost} quote atoms: "
                    f"65,536 of them fill a book for {cost * 65_536 / UNIT:.2f} USDC")  # fmt: skip


async def test_the_open_interest_cap_is_exact(perps_client: Client) -> None:
    """A side may be filled to the cap exactly, and not one base atom beyond it."""
    c = perps_client
    setup = await start(c, traders=1, params=MarketParams(skew_scale=100 * UNIT), deposit=100_000 * UNIT)
    (trader,) = setup.traders
    cap = (await c.fetch_market(setup.market)).params.max_open_interest
    with pytest.raises(program_errors.OpenInterestCapExceeded):
        await c.open_position(setup.market, Side.LONG, cap + 1, 1_000 * UNIT, owner=trader)
    await c.open_position(setup.market, Side.LONG, cap, 1_000 * UNIT, owner=trader)
    assert (await c.fetch_market(setup.market)).oi_long == cap


async def test_the_minimum_position_is_exact(perps_client: Client) -> None:
    c = perps_client
    setup = await start(c, traders=1)
    (trader,) = setup.traders
    minimum = MarketParams().min_position_notional  # 10 USDC at the fill price
    size = minimum * UNIT // PRICE  # on an empty book a long of this size fills a hair above the index
    with pytest.raises(program_errors.PositionTooSmall):
        await c.open_position(setup.market, Side.SHORT, size - 1, 2 * UNIT, owner=trader)  # sells under 10 USDC
    position = await c.open_position(setup.market, Side.LONG, size, 2 * UNIT, owner=trader)
    assert position.notional(position.entry_price) >= minimum


async def test_attack_4_dust_cannot_capture_the_funding(perps_client: Client) -> None:
    """A 1-atom short was the whole lighter side and received all the funding a $100k long paid (SPEC 5)."""
    c = perps_client
    setup = await start(c, traders=2, deposit=100_000 * UNIT)
    whale, dust = setup.traders
    long_ = await c.open_position(setup.market, Side.LONG, 1_000 * UNIT, 20_000 * UNIT, owner=whale)
    with pytest.raises(program_errors.PositionTooSmall):
        await c.open_position(setup.market, Side.SHORT, 1, 20, owner=dust)
    short = await c.open_position(setup.market, Side.SHORT, UNIT // 10, 5 * UNIT, owner=dust)  # the least: 10 USDC
    await c.advance_time(86_400)
    await publish(c, setup, PRICE)
    await c.update_funding(setup.market)
    paid = (await c.fetch_position(setup.market, long_.slot)).funding_owed()
    received = -(await c.fetch_position(setup.market, short.slot)).funding_owed()
    rate = MarketParams().max_funding_rate_bps_per_day
    own_share = short.size * PRICE // risk.B * rate // risk.BPS  # the top rate on its own notional, for a day
    assert 0 < received <= own_share, f"the dust short received {received / UNIT:,.6f} USDC of funding"
    assert paid > 900 * UNIT and paid - received > 0.999 * paid  # the pool, the other counterparty, keeps the rest
    # both settle: the pool gains what the whale paid beyond what the dust received (and the fees)
    pool = (await c.fetch_market(setup.market)).pool_balance
    await c.close_position(setup.market, long_, owner=whale)
    await c.close_position(setup.market, short, owner=dust)
    assert (await c.fetch_market(setup.market)).pool_balance > pool


# -- 5: the admin key -----------------------------------------------------------------------------


async def test_attack_5_admin_cannot_confiscate_healthy_positions(perps_client: Client) -> None:
    """Raise maintenance margin to 99.99% and the reward to 100%, crank, collect a healthy position's equity."""
    c = perps_client
    setup = await start(c, traders=1)
    (trader,) = setup.traders
    position = await c.open_position(setup.market, Side.LONG, 10 * UNIT, 200 * UNIT, owner=trader)  # 5x
    greedy = MarketParams(maintenance_margin_bps=9_999, initial_margin_bps=10_000, liquidation_reward_bps=10_000)
    try:
        await c.update_market_params(setup.market, greedy)
    except ProgramError as exc:
        assert exc.error_name in ("InvalidMarketParams", "ParamsWouldLiquidate")
    admin_token = associated_token_address(c.payer.pubkey(), setup.quote_mint)
    before = await c.token_balance(admin_token)
    done = await liquidate(c, setup.market)
    taken = await c.token_balance(admin_token) - before
    assert done is None, f"the admin liquidated a healthy 5x position and took {taken / UNIT:,.2f} USDC"
    (live,) = await c.positions(setup.market, trader.pubkey())
    assert not live.liquidated and live.slot == position.slot


async def test_a_parameter_change_that_would_liquidate_is_refused(perps_client: Client) -> None:
    """Within the bounds, a maintenance margin that makes a healthy position liquidatable is refused; one that
    does not is accepted.  One walk down each side's tree finds the most exposed position."""
    c = perps_client
    setup = await start(c, traders=2)
    alice, bob = setup.traders
    await c.open_position(setup.market, Side.LONG, 10 * UNIT, 200 * UNIT, owner=alice)  # 5x
    await c.open_position(setup.market, Side.LONG, 10 * UNIT, 400 * UNIT, owner=bob)  # 2.5x
    await c.open_position(setup.market, Side.SHORT, 10 * UNIT, 300 * UNIT, owner=bob)  # 3.3x
    before = await c.fetch_market(setup.market)
    for mm in (2_001, 2_500, 4_000):  # alice's 5x long (equity 199.95 on 1,000) is liquidatable above 19.995%
        with pytest.raises(program_errors.ParamsWouldLiquidate):
            await c.update_market_params(setup.market, MarketParams(maintenance_margin_bps=mm, initial_margin_bps=5_000,
                                                                    liquidation_reward_bps=5_000))  # fmt: skip
    assert (await c.fetch_market(setup.market)).params == before.params
    safer = MarketParams(maintenance_margin_bps=1_500, initial_margin_bps=2_000, liquidation_reward_bps=5_000)
    await c.update_market_params(setup.market, safer)
    assert (await c.fetch_market(setup.market)).params == safer
    assert await liquidate(c, setup.market) is None


async def test_parameter_changes_match_the_model(perps_client: Client) -> None:
    """update_market_params against perpkit.engine, change by change: the same refusal or the same market."""
    c = perps_client
    setup = await start(c, traders=2)
    alice, bob = setup.traders
    for who, side, lev in ((alice, Side.LONG, 3), (alice, Side.LONG, 7), (bob, Side.SHORT, 4), (bob, Side.SHORT, 9)):
        await c.open_position(setup.market, side, 10 * UNIT, 10 * PRICE // lev, owner=who)
    outcomes = set()
    for mm in (600, 900, 1_100, 1_300, 1_500, 2_000, 2_600, 3_000, 500):
        params = MarketParams(maintenance_margin_bps=mm, initial_margin_bps=mm + 100)
        await c.advance_time(7)
        await publish(c, setup, PRICE)
        market = await c.fetch_market(setup.market)
        oracle = await c.fetch_oracle(setup.oracle)
        book = await c.fetch_book(setup.market)
        engine = Engine(market)
        try:
            want: Any = engine.update_params(now=await c.now(), params=params, book=book,
                                             oracle=OracleReading(oracle.price, oracle.conf, oracle.publish_time))  # fmt: skip
        except risk.RiskError as exc:
            want = exc.error_name
        try:
            await c.update_market_params(setup.market, params)
            got: Any = await c.fetch_market(setup.market)
        except ProgramError as exc:
            got = exc.error_name
        assert got == want, f"mm {mm}"
        outcomes.add(got if isinstance(got, str) else "accepted")
    assert outcomes == {"accepted", "ParamsWouldLiquidate"}


async def test_parameters_out_of_bounds_are_refused_and_say_why(perps_client: Client) -> None:
    c = perps_client
    setup = await start(c, traders=1)
    m = await c.fetch_market(setup.market)
    cases = [
        MarketParams(liquidation_reward_bps=5_001),
        MarketParams(taker_fee_bps=101),
        MarketParams(max_funding_rate_bps_per_day=1_001),
        MarketParams(min_position_notional=999_999),
        MarketParams(max_publish_ahead_s=61),
        MarketParams(max_staleness_s=86_401),
        MarketParams(max_open_interest=MarketParams().max_open_interest + 1),  # the cap rule
    ]
    for params in cases:
        with pytest.raises(program_errors.InvalidMarketParams) as caught:
            await c.update_market_params(setup.market, params)
        assert caught.value.__notes__, params  # the SDK adds the reason
    assert (await c.fetch_market(setup.market)).params == m.params


# -- 6 and 7: references ------------------------------------------------------------------------------


async def test_attack_6_stale_and_live_references_to_one_slot(perps_client: Client) -> None:
    """A stale (liquidated, collected) and a live reference to the same reused slot: each is its own position."""
    c = perps_client
    setup = await start(c, traders=2, params=MarketParams(price_band_bps=5000))
    alice, bob = setup.traders
    old = await c.open_position(setup.market, Side.LONG, 10 * UNIT, 150 * UNIT, owner=alice)
    bobs = await c.open_position(setup.market, Side.LONG, 10 * UNIT, 150 * UNIT, owner=bob)
    await publish(c, setup, 85 * UNIT)
    assert (done := await liquidate(c, setup.market)) is not None and done.batch.long_count == 2
    await collect_garbage(c, setup.market)
    await publish(c, setup, PRICE)
    await c.advance_time(300)
    await publish(c, setup, PRICE)
    new = await c.open_position(setup.market, Side.LONG, 10 * UNIT, 150 * UNIT, owner=alice)
    assert (new.slot, new.generation) in ((old.slot, old.generation + 1), (bobs.slot, bobs.generation + 1))
    mine = await c.positions(setup.market, alice.pubkey())
    assert sorted((p.slot, p.generation, p.liquidated) for p in mine) == sorted(
        [(old.slot, old.generation, True), (new.slot, new.generation, False)]
    )
    # the crank clears the stale references of everybody, alice's included, and leaves the live one
    round_ = await crank_once(c, setup.market)
    assert len(round_.cleared) == 2
    (left,) = await c.positions(setup.market, alice.pubkey())
    assert (left.slot, left.generation, left.liquidated) == (new.slot, new.generation, False)
    with pytest.raises(InvalidInput, match="slot and generation"):  # a bare slot is ambiguous: the SDK says so
        await c.close_position(setup.market, new.slot, owner=alice)  # type: ignore[arg-type]
    with pytest.raises(program_errors.PositionNotFound):  # the right slot with the stale generation is not it
        await c.close_position(setup.market, PositionRef(new.slot, new.generation - 1), owner=alice)
    await c.close_position(setup.market, new, owner=alice)
    assert await c.positions(setup.market, alice.pubkey()) == []


async def test_a_stale_reference_cannot_close_the_next_position_in_its_slot(perps_client: Client) -> None:
    """Alice's liquidated position's slot goes to Bob: her stale reference names the slot, never Bob's position.

    With references matched by slot alone, alice closed bob's position and took its value."""
    c = perps_client
    setup = await start(c, traders=2, params=MarketParams(price_band_bps=5000))
    alice, bob = setup.traders
    old = await c.open_position(setup.market, Side.LONG, 10 * UNIT, 150 * UNIT, owner=alice)
    await publish(c, setup, 85 * UNIT)
    assert (done := await liquidate(c, setup.market)) is not None and done.batch.long_count == 1
    await collect_garbage(c, setup.market)  # alice's reference stays: nobody cleared it
    await c.advance_time(300)
    await publish(c, setup, PRICE)
    bobs = await c.open_position(setup.market, Side.LONG, 10 * UNIT, 150 * UNIT, owner=bob)
    assert (bobs.slot, bobs.generation) == (old.slot, old.generation + 1)
    before = await value(c, setup, [alice])
    with pytest.raises(program_errors.PositionNotFound):
        await c.close_position(setup.market, PositionRef(bobs.slot, bobs.generation), owner=alice)
    with pytest.raises(program_errors.PositionLiquidated):  # her own reference is the liquidated position
        await c.close_position(setup.market, old, owner=alice)
    assert await value(c, setup, [alice]) == before
    (live,) = await c.positions(setup.market, bob.pubkey())
    assert (live.slot, live.generation, live.liquidated) == (bobs.slot, bobs.generation, False)


@pytest.mark.litesvm_only
async def test_the_position_count_cannot_wrap(perps_client: Client) -> None:
    """A user account whose count says no position while a reference is listed (damaged data) is refused:
    clearing that reference must not wrap the count to 255 and lock the user out of trading."""
    c = perps_client
    setup = await start(c, traders=1, params=MarketParams(price_band_bps=5000))
    (alice,) = setup.traders
    position = await c.open_position(setup.market, Side.LONG, 10 * UNIT, 150 * UNIT, owner=alice)
    await publish(c, setup, 85 * UNIT)
    assert await liquidate(c, setup.market) is not None
    svm = c.backend.svm  # type: ignore[attr-defined]  # no instruction can reach this state: write it directly
    address = c.user_address(setup.market, alice.pubkey())
    account = svm.get_account(address)
    data = bytearray(account.data)
    count_at = 8 + 32 + 32 + 8 + 1  # discriminator, market, owner, free_collateral, bump: then position_count
    assert data[count_at] == 1
    data[count_at] = 0
    svm.set_account(address, Account(account.lamports, bytes(data), account.owner, account.executable, 0))
    assert (await c.fetch_user(setup.market, alice.pubkey())).position_count == 0
    with pytest.raises(program_errors.InvalidAccountData):
        await c.clear_position(setup.market, alice.pubkey(), position)
    assert (await c.fetch_user(setup.market, alice.pubkey())).position_count == 0


async def test_attack_7_an_empty_reference_is_never_a_position(perps_client: Client) -> None:
    c = perps_client
    setup = await start(c, traders=1)
    (alice,) = setup.traders
    stranger = Client(c.backend, Keypair(), program_id=c.program_id)
    await c.backend.request_airdrop(stranger.payer.pubkey(), 10**9)
    with pytest.raises(program_errors.PositionNotFound):
        await stranger.clear_position(setup.market, alice.pubkey(), PositionRef(U32_MAX, 0))
    user = await c.fetch_user(setup.market, alice.pubkey())
    assert user.position_count == 0


# -- 8 and 9: the vault and the clock ---------------------------------------------------------------


async def test_attack_8_withdraw_into_the_vault_is_refused(perps_client: Client) -> None:
    c = perps_client
    setup = await start(c, traders=1)
    (alice,) = setup.traders
    vault = (await c.fetch_market(setup.market)).vault
    with pytest.raises(program_errors.InvalidAccountAddress) as caught:
        await c.withdraw(setup.market, 100 * UNIT, owner=alice, token_account=vault)
    assert caught.value.account == "owner_token"


async def test_attack_9_a_publish_time_in_the_future_is_refused(perps_client: Client) -> None:
    c = perps_client
    setup = await start(c, traders=1)
    (alice,) = setup.traders
    await c.set_oracle_price(setup.oracle, price=PRICE, publish_time=await c.now() + 86_400)
    await c.advance_time(3_600)  # an hour later the price would still be "fresh" for another 23 hours
    with pytest.raises(ProgramError) as caught:
        await c.open_position(setup.market, Side.LONG, 10 * UNIT, 150 * UNIT, owner=alice)
    assert caught.value.error_name == "OraclePublishedInFuture"
