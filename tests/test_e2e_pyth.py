"""Pyth-priced markets end to end (SPEC 3, issue 12), on both backends.

A market's oracle is a ``PriceUpdateV2`` account owned by the configured
receiver, written by :class:`perpkit.testing.PythFeed` (``set_account`` on the
embedded runtime, ``surfnet_setAccount`` on the localnet).  Every refusal is a
named program error naming the oracle account, and changes nothing.  The whole
liquidation scenario (batch, payout, insurance, socialised loss) runs on both
oracle kinds in ``tests/test_e2e_liquidation.py``; here: creation, every
check of the read, the rescaling, an update replaced in place, funding and the
band, and the attacks on the account.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from conftest import ROOT
from solders.account import Account
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from perpkit import Client, MarketParams, program_errors
from perpkit.errors import InvalidInput, ProgramError, PythPriceError
from perpkit.localnet.process import LocalnetProcess
from perpkit.oracles import OracleKind, OracleSource
from perpkit.positions import Side
from perpkit.pyth import (
    FEED_IDS,
    FIXTURE_PUBLISH_TIME,
    PUSH_ORACLE_PROGRAM_ID_PRO,
    RECEIVER_PROGRAM_ID,
    RECEIVER_PROGRAM_ID_PRO,
    Partial,
    PriceUpdateV2,
    price_feed_address,
    rescale,
)
from perpkit.testing import (
    ConservationChecker,
    PythFeed,
    TradingSetup,
    changed_accounts,
    create_mint,
    create_oracle,
    setup_trading,
    snapshot,
)

UNIT = 10**6
PRICE = 100 * UNIT
SOL = FEED_IDS["SOL/USD"]
BTC = FEED_IDS["BTC/USD"]


async def start(c: Client, **kwargs: Any) -> TradingSetup:
    setup = await setup_trading(c, price=PRICE, oracle_kind=OracleKind.PYTH, **kwargs)
    ConservationChecker(c, setup.market).attach()
    return setup


def feed_of(setup: TradingSetup) -> PythFeed:
    assert setup.feed is not None
    return setup.feed


async def refused_and_unchanged(
    c: Client,
    setup: TradingSetup,
    error: type[ProgramError],
    action: Callable[[], Awaitable[object]],
    account: str = "oracle",
) -> ProgramError:
    """``action`` fails with ``error`` naming ``account``, and no account of the market changes."""
    market = await c.fetch_market(setup.market)
    watched = [setup.market, market.book, market.vault, setup.oracle]
    watched += [c.user_address(setup.market, t.pubkey()) for t in setup.traders]
    before = await snapshot(c, watched)
    with pytest.raises(error) as caught:
        await action()
    assert caught.value.account == account, caught.value
    assert changed_accounts(before, await snapshot(c, watched)) == []
    return caught.value


async def test_a_pyth_market_stores_its_feed_and_reads_the_update(perps_client: Client) -> None:
    c = perps_client
    setup = await start(c)
    market = await c.fetch_market(setup.market)
    assert market.oracle == setup.oracle == feed_of(setup).address
    assert market.oracle_source == OracleSource(OracleKind.PYTH, RECEIVER_PROGRAM_ID, SOL)
    assert market.oracle_source == OracleSource.pyth("SOL/USD") == OracleSource.pyth("0x" + SOL.hex())
    # the update is SOL/USD at exponent -8: 100 USD is 10,000,000,000 there and 100,000,000 to the market
    update = await feed_of(setup).read()
    assert (update.price, update.exponent, update.ui_price) == (100 * 10**8, -8, 100)
    read = await c.oracle_price(setup.market)
    assert (read.price, read.publish_time) == (PRICE, update.publish_time)
    position = await c.open_position(setup.market, Side.LONG, 2 * UNIT, 50 * UNIT, owner=setup.traders[0])
    assert position.entry_price >= PRICE and (await c.fetch_market(setup.market)).last_index_price == PRICE


@pytest.mark.parametrize(
    ("price", "conf", "exponent"),
    [
        (123_456_789_012_345, 10**6, -12),  # 123.456789012345 -> 123.456789, conf 1e-6 exactly
        (123_456_789_012_999, 1, -12),  # toward zero; conf 1e-12 rounds up to 1e-6
        (12_345_678_901, 999, -8),
        (123_456_789, 2, -6),
        (1_234_567, 3, -4),
        (123, 0, 0),
        (2, 0, 2),  # 200
    ],
)
async def test_each_exponent_is_rescaled_to_six_decimals(
    perps_client: Client, price: int, conf: int, exponent: int
) -> None:
    c = perps_client
    setup = await start(c, params=MarketParams(price_band_bps=10_000, max_conf_bps=10_000))
    feed = feed_of(setup)
    await feed.publish(price, conf, exponent, await c.now())
    await c.update_funding(setup.market)
    market = await c.fetch_market(setup.market)
    want = await c.oracle_price(setup.market)
    assert (want.price, want.conf) == rescale(price, conf, exponent)
    assert market.last_index_price == want.price


async def test_an_update_replaced_in_place_is_read_at_once(perps_client: Client) -> None:
    c = perps_client
    setup = await start(c)
    feed = feed_of(setup)
    for price in (101, 99, 100):
        await feed.set_price(price * UNIT)
        await c.update_funding(setup.market)
        assert (await c.fetch_market(setup.market)).last_index_price == price * UNIT
    # a Partial update over a Full one and back (byte 133 keeps a stale byte from the Partial layout)
    now = await c.now()
    await feed.publish(100 * 10**8, 0, -8, now, verification=Partial(13))
    await refused_and_unchanged(c, setup, program_errors.OracleNotFullyVerified, lambda: c.update_funding(setup.market))
    with pytest.raises(PythPriceError) as caught:  # the SDK's read names the same refusal, before any transaction
        await c.oracle_price(setup.market)
    assert caught.value.error_name == "OracleNotFullyVerified"
    full = await feed.publish(102 * 10**8, 0, -8, now)
    account = await c.account(feed.address)
    assert account is not None  # the receiver rewrites 133 bytes and leaves the Partial layout's last one
    stale = full.encode()[:133] + bytes([0x5A])
    await c.set_account(feed.address, Account(account.lamports, stale, RECEIVER_PROGRAM_ID, False, 0))
    await c.update_funding(setup.market)
    assert (await c.fetch_market(setup.market)).last_index_price == 102 * UNIT


# every check of the read, each on an open (a fill) and on a liquidation: named, nothing changed
REFUSALS: list[tuple[str, type[ProgramError], dict[str, Any]]] = [
    ("partial", program_errors.OracleNotFullyVerified, {"verification": Partial(13)}),
    ("another feed", program_errors.OracleFeedMismatch, {"feed_id": BTC}),
    ("exponent 13", program_errors.OracleExponentUnsupported, {"exponent": 13, "price": 1}),
    ("exponent -25", program_errors.OracleExponentUnsupported, {"exponent": -25}),
    ("price 0", program_errors.OraclePriceNotPositive, {"price": 0}),
    ("price negative", program_errors.OraclePriceNotPositive, {"price": -100 * 10**8}),
    ("rounds to zero", program_errors.OraclePriceNotPositive, {"price": 999_999, "exponent": -12}),
    ("too big at 6 decimals", program_errors.OraclePriceOutOfRange, {"price": 10**13, "exponent": 0}),
    ("stale", program_errors.OracleStale, {"age": 61}),
    ("from the future", program_errors.OraclePublishedInFuture, {"age": -100}),
    ("confidence too wide", program_errors.OracleConfidenceTooWide, {"conf": 3 * 10**8}),
]


def update_bytes(base: PriceUpdateV2, now: int, change: dict[str, Any]) -> bytes:
    fields = dict(base.__dict__)
    age = change.pop("age", 0)
    fields.update(change)
    fields["publish_time"] = now - age
    return PriceUpdateV2(**fields).encode()


@pytest.mark.parametrize(("case", "error", "change"), REFUSALS, ids=[r[0] for r in REFUSALS])
async def test_every_check_of_the_read_is_a_named_refusal(
    perps_client: Client, case: str, error: type[ProgramError], change: dict[str, Any]
) -> None:
    c = perps_client
    setup = await start(c, params=MarketParams(price_band_bps=10_000))
    feed = feed_of(setup)
    trader = setup.traders[0]
    await c.open_position(setup.market, Side.LONG, 2 * UNIT, 50 * UNIT, owner=trader)
    base = await feed.read()
    account = await c.account(feed.address)
    assert account is not None
    data = update_bytes(base, await c.now(), dict(change))
    await c.set_account(feed.address, Account(account.lamports, data, RECEIVER_PROGRAM_ID, False, 0))
    await refused_and_unchanged(
        c, setup, error, lambda: c.open_position(setup.market, Side.SHORT, UNIT, 50 * UNIT, owner=trader)
    )
    handle = await c.market(setup.market)
    await refused_and_unchanged(c, setup, error, lambda: handle.liquidate(simulate_first=False))
    # a good update and everything works again
    await feed.set_price(PRICE)
    await c.open_position(setup.market, Side.SHORT, 2 * UNIT, 50 * UNIT, owner=trader)


async def test_the_same_bytes_owned_by_another_program_are_refused(perps_client: Client) -> None:
    """A copy of a real update, under an owner the attacker controls, at the market's address or any other."""
    c = perps_client
    setup = await start(c)
    account = await c.account(setup.oracle)
    assert account is not None
    forged = Account(account.lamports, bytes(account.data), Keypair().pubkey(), False, 0)
    await c.set_account(setup.oracle, forged)
    await refused_and_unchanged(c, setup, program_errors.InvalidAccountOwner, lambda: c.update_funding(setup.market))


@pytest.mark.parametrize(
    ("case", "data", "error"),
    [
        ("short", lambda good: good[:100], program_errors.InvalidAccountData),
        ("discriminator", lambda good: b"\x00" + good[1:], program_errors.InvalidDiscriminator),
        ("verification tag 2", lambda good: good[:40] + b"\x02" + good[41:], program_errors.InvalidAccountData),
    ],
    ids=["short", "discriminator", "tag"],
)
async def test_malformed_accounts_of_the_receiver_are_refused(
    perps_client: Client, case: str, data: Callable[[bytes], bytes], error: type[ProgramError]
) -> None:
    c = perps_client
    setup = await start(c)
    account = await c.account(setup.oracle)
    assert account is not None
    bad = Account(account.lamports, data(bytes(account.data)), RECEIVER_PROGRAM_ID, False, 0)
    await c.set_account(setup.oracle, bad)
    await refused_and_unchanged(c, setup, error, lambda: c.update_funding(setup.market))


async def test_creation_checks_the_account_against_the_source(perps_client: Client) -> None:
    c = perps_client
    mint = await create_mint(c)
    sol = PythFeed(c, SOL)
    await sol.set_price(PRICE)
    btc = PythFeed(c, BTC)
    await btc.set_price(PRICE)
    test_oracle = await create_oracle(c, price=PRICE, oracle_id=9)
    partial = PythFeed(c, SOL)
    await partial.publish(PRICE * 100, 0, -8, await c.now(), verification=Partial(5))
    cases: list[tuple[Pubkey, OracleSource, type[ProgramError]]] = [
        (btc.address, OracleSource.pyth(SOL), program_errors.OracleFeedMismatch),
        (partial.address, OracleSource.pyth(SOL), program_errors.OracleNotFullyVerified),
        (test_oracle, OracleSource.pyth(SOL), program_errors.InvalidAccountOwner),  # the program owns it
        (sol.address, OracleSource.test(), program_errors.InvalidAccountOwner),  # the receiver owns it
        (sol.address, OracleSource.pyth(SOL, receiver=Keypair().pubkey()), program_errors.InvalidAccountOwner),
        (test_oracle, OracleSource(OracleKind.TEST, pyth_feed_id=SOL), program_errors.InvalidOracleKind),
        (sol.address, OracleSource(OracleKind.PYTH, Pubkey.default(), SOL), program_errors.InvalidOracleKind),
        (sol.address, OracleSource(7, RECEIVER_PROGRAM_ID, SOL), program_errors.InvalidOracleKind),  # type: ignore[arg-type]
    ]
    for market_id, (oracle, source, error) in enumerate(cases, start=1):
        with pytest.raises(error):
            await c.create_market(quote_mint=mint, oracle=oracle, market_id=market_id, oracle_source=source)
        assert await c.account(c.market_address(market_id)) is None, (oracle, source)
    # the right pairs work, and a market may be created before the feed is fresh (reads check freshness)
    await c.advance_time(3_600)
    fine = await c.create_market(
        quote_mint=mint, oracle=sol.address, market_id=20, oracle_source=OracleSource.pyth(SOL)
    )
    await c.create_market(quote_mint=mint, oracle=test_oracle, market_id=21)
    with pytest.raises(program_errors.OracleStale):
        await c.update_funding(fine)


async def test_funding_and_the_band_run_on_the_pyth_price(perps_client: Client) -> None:
    c = perps_client
    setup = await start(c, params=MarketParams(skew_scale=1_000 * UNIT, price_band_bps=1_000))
    feed = feed_of(setup)
    alice, bob = setup.traders
    await c.open_position(setup.market, Side.LONG, 20 * UNIT, 500 * UNIT, owner=alice)
    await c.open_position(setup.market, Side.SHORT, 5 * UNIT, 200 * UNIT, owner=bob)
    before = await c.fetch_market(setup.market)
    await c.advance_time(3_600)
    await feed.set_price(PRICE)
    await c.update_funding(setup.market)
    after = await c.fetch_market(setup.market)
    # longs are heavier: their index rises, the shorts' falls by the same amount per unit (SPEC 5)
    rise = after.funding_index_long - before.funding_index_long
    assert rise > 0 and after.funding_index_short - before.funding_index_short == -rise
    # a 15% jump of the feed is past the 10% band from the EWMA: fills that widen it are refused
    await feed.set_price(115 * UNIT)
    with pytest.raises(program_errors.PriceBandBreached):
        await c.open_position(setup.market, Side.LONG, UNIT, 50 * UNIT, owner=alice)
    # and a Pyth update with a wide confidence interval stops them too, by name
    await feed.set_price(PRICE, conf=3 * UNIT)
    with pytest.raises(program_errors.OracleConfidenceTooWide):
        await c.open_position(setup.market, Side.LONG, UNIT, 50 * UNIT, owner=alice)


async def test_a_market_on_the_fixture_feed_liquidates_on_the_localnet() -> None:
    """The Done-when of issue 12: SOL/USD preloaded from ``fixtures/accounts/pyth`` at its sponsored address,
    a market on it, a 20x long, then the receiver's in-place updates move the price past its liquidation price."""
    from test_e2e_liquidation import liquidate_as_modelled

    fixtures = ROOT / "fixtures" / "accounts" / "pyth"
    with LocalnetProcess(
        "--account-dir", str(fixtures), "--frozen-clock", "--start-time", str(FIXTURE_PUBLISH_TIME)
    ) as net:
        c = await Client.connect(net.url, airdrop_lamports=100 * 10**9)
        try:
            feed = PythFeed(c, SOL, address=price_feed_address(SOL))
            preloaded = await feed.read()
            assert (preloaded.publish_time, preloaded.ui_price) == (FIXTURE_PUBLISH_TIME, 150)
            params = MarketParams(initial_margin_bps=501, maintenance_margin_bps=500)
            setup = await setup_trading(c, feed=feed, params=params, insurance=UNIT, traders=1)
            ConservationChecker(c, setup.market).attach()
            assert (await c.fetch_market(setup.market)).oracle == price_feed_address(SOL)
            long_ = await c.open_position(setup.market, Side.LONG, 10 * UNIT, 76 * UNIT, owner=setup.traders[0])
            assert long_.entry_price >= 150 * UNIT
            lp = long_.liquidation_price()
            done, _ = await liquidate_as_modelled(c, setup, lp)
            assert done is None  # at the liquidation price: not yet
            done, _ = await liquidate_as_modelled(c, setup, lp - 1)
            assert done is not None and done.batch.long_count == 1 and done.batch.index_price == lp - 1
        finally:
            await c.close()


async def test_oracle_price_reads_the_test_oracle_too(perps_client: Client) -> None:
    c = perps_client
    setup = await setup_trading(c, price=PRICE)
    await setup.set_price(c, 123 * UNIT, conf=UNIT)
    read = await c.oracle_price(setup.market)
    assert (read.price, read.conf, read.publish_time) == (123 * UNIT, UNIT, await c.now())


async def test_a_dead_feed_is_replaced_by_the_admin_and_positions_close(perps_client: Client) -> None:
    """The feed behind a market stops (Pyth retires a receiver, delists the feed, an account is closed): every
    read is stale and no position could ever close.  The admin re-points the market to a live account of the
    same feed; nothing else about the market can change that way."""
    c = perps_client
    setup = await start(c, traders=1)
    trader = setup.traders[0]
    position = await c.open_position(setup.market, Side.LONG, 2 * UNIT, 50 * UNIT, owner=trader)
    await c.advance_time(86_401)  # a day and a second: past any max_staleness_s the parameters allow
    with pytest.raises(program_errors.OracleStale):
        await c.close_position(setup.market, position, owner=trader)
    live = PythFeed(c, SOL)
    await live.set_price(101 * UNIT)
    before = await c.fetch_market(setup.market)
    await c.set_market_oracle(setup.market, live.address)
    after = await c.fetch_market(setup.market)
    assert (after.oracle, after.oracle_source) == (live.address, before.oracle_source)
    assert after.last_index_price == 101 * UNIT and after.oracle_publish_time == await c.now()
    assert after.funding_updated_at == await c.now()  # funding accrued up to the change, at the last price
    handle = await c.market(setup.market)
    assert handle.accounts.oracle == live.address  # the handle rebinds
    await c.close_position(setup.market, position, owner=trader)


async def test_re_pointing_is_refused_unless_it_is_the_same_feed_from_pyth(perps_client: Client) -> None:
    c = perps_client
    setup = await start(c, traders=1)
    now = await c.now()
    stranger = Keypair()
    await c.airdrop(stranger.pubkey(), 10**9)
    btc = PythFeed(c, BTC)
    await btc.set_price(PRICE)
    attacker = PythFeed(c, SOL, receiver=Keypair().pubkey())  # the right bytes, from a program the admin runs
    await attacker.set_price(PRICE)
    stale = PythFeed(c, SOL)
    await stale.publish(PRICE * 100, 0, -8, now - 61)
    older = PythFeed(c, SOL)  # fresh, but older than the update the market last read
    await older.publish(PRICE * 100, 0, -8, now - 1)
    good = PythFeed(c, SOL)
    await good.set_price(PRICE)
    handle = await c.market(setup.market)
    repoint = handle.set_market_oracle
    await refused_and_unchanged(c, setup, program_errors.Unauthorized, lambda: repoint(good.address, admin=stranger),
                                account="admin")  # fmt: skip
    await refused_and_unchanged(c, setup, program_errors.OracleFeedMismatch, lambda: repoint(btc.address))
    await refused_and_unchanged(c, setup, program_errors.OracleRepointRefused,
                                lambda: repoint(attacker.address, pyth_receiver=attacker.receiver))  # fmt: skip
    await refused_and_unchanged(c, setup, program_errors.InvalidAccountOwner, lambda: repoint(attacker.address))
    await refused_and_unchanged(c, setup, program_errors.OracleStale, lambda: repoint(stale.address))
    await refused_and_unchanged(c, setup, program_errors.OraclePublishTimeWentBack, lambda: repoint(older.address))
    await repoint(good.address)
    assert (await c.fetch_market(setup.market)).oracle == good.address
    # a test-oracle market has nothing to re-point: its authority can always publish
    plain = await setup_trading(c, price=PRICE, market_id=5)
    with pytest.raises(program_errors.InvalidOracleKind):
        await c.set_market_oracle(plain.market, good.address)


async def test_pyths_receiver_upgrade_moves_a_market_to_the_new_receiver(perps_client: Client) -> None:
    """Pyth's 2026 upgrade: the same feed, published by a new receiver at a new address."""
    c = perps_client
    setup = await start(c, traders=1)
    upgraded = PythFeed(c, SOL, address=price_feed_address(SOL, push_program=PUSH_ORACLE_PROGRAM_ID_PRO),
                        receiver=RECEIVER_PROGRAM_ID_PRO)  # fmt: skip
    await upgraded.set_price(PRICE)
    await c.set_market_oracle(setup.market, upgraded.address, pyth_receiver=RECEIVER_PROGRAM_ID_PRO)
    market = await c.fetch_market(setup.market)
    assert market.oracle_source == OracleSource.pyth(SOL, receiver=RECEIVER_PROGRAM_ID_PRO)
    await upgraded.set_price(99 * UNIT)
    await c.open_position(setup.market, Side.SHORT, 2 * UNIT, 50 * UNIT, owner=setup.traders[0])


async def test_an_update_account_cannot_be_rolled_back(perps_client: Client) -> None:
    """An ordinary update account's write authority may post any signed update over it, an older one too.
    A rollback to a still-fresh older price (to liquidate at it, or to open at it) is refused by name."""
    c = perps_client
    setup = await start(c, traders=1)
    feed = feed_of(setup)
    trader = setup.traders[0]
    await c.advance_time(20)
    await feed.set_price(97 * UNIT)
    await c.update_funding(setup.market)  # the market has read the update published now
    await feed.publish(103 * 10**8, 0, -8, await c.now() - 10)  # a genuine, fresh but older update
    await refused_and_unchanged(c, setup, program_errors.OraclePublishTimeWentBack,
                                lambda: c.open_position(setup.market, Side.SHORT, UNIT, 50 * UNIT, owner=trader))  # fmt: skip
    await refused_and_unchanged(
        c, setup, program_errors.OraclePublishTimeWentBack, lambda: c.update_funding(setup.market)
    )
    # the same publish time again is no rollback; a newer one moves on
    await feed.set_price(98 * UNIT)
    await c.update_funding(setup.market)
    assert (await c.fetch_market(setup.market)).last_index_price == 98 * UNIT


def test_feed_ids_are_checked() -> None:
    assert OracleSource.pyth(bytearray(SOL)).pyth_feed_id == SOL
    for bad in ("SOL/EUR", "ef0d", 42, SOL[:31]):
        with pytest.raises(InvalidInput):
            OracleSource.pyth(bad)  # type: ignore[arg-type]
