"""Batch liquidation, insurance, garbage collection and clearing (SPEC 6-7), end to end.

Every test attaches a ConservationChecker (SPEC 7 after every transaction).
Expected batches come from the model (``perpkit.crank.expected_batch``: the
positions the reference model finds liquidatable, and the payout) evaluated
on the decoded chain state just before the liquidation.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from solders.keypair import Keypair

from perpkit import Client, MarketParams, pda, program_errors
from perpkit import instructions as ix
from perpkit.accounts import BookHeader, PositionRef
from perpkit.backends.base import TxResult
from perpkit.book import Book, SlotStatus
from perpkit.crank import (
    CLEAR_COMPUTE_PER_USER,
    BatchForecast,
    Liquidation,
    clear_liquidated,
    collect_garbage,
    collect_garbage_by_header,
    expected_batch,
    find_liquidatable,
    liquidate,
)
from perpkit.errors import AccountNotFound, InvalidInput
from perpkit.oracles import OracleKind
from perpkit.positions import HEALTH_BY_CODE, Health, Position, Side, project_funding
from perpkit.spl_token import associated_token_address
from perpkit.testing import (
    ConservationChecker,
    TradingSetup,
    changed_accounts,
    setup_trading,
    snapshot,
    with_account,
)

UNIT = 10**6
PRICE = 100 * UNIT


@pytest.fixture(params=[OracleKind.TEST, OracleKind.PYTH], ids=["test-oracle", "pyth"])
def oracle_kind(request: pytest.FixtureRequest) -> OracleKind:
    """The scenarios that run on both oracle kinds: the program's test oracle and a Pyth PriceUpdateV2 feed."""
    kind: OracleKind = request.param
    return kind


async def start(c: Client, **kwargs: Any) -> TradingSetup:
    setup = await setup_trading(c, price=PRICE, **kwargs)
    ConservationChecker(c, setup.market).attach()
    return setup


async def liquidate_as_modelled(c: Client, setup: TradingSetup, price: int) -> tuple[Liquidation | None, BatchForecast]:
    """Publish ``price``, predict the batch from the chain state, liquidate, and check the prediction."""
    await setup.set_price(c, price)
    market = await c.fetch_market(setup.market)
    book = await c.fetch_book(setup.market)
    model = expected_batch(book, market, price, await c.now())
    cranker_token = associated_token_address(c.payer.pubkey(), setup.quote_mint)
    reward_before = await c.token_balance(cranker_token)
    done = await liquidate(c, setup.market)
    cut = model.slots
    if not cut:
        assert done is None
        return None, model
    assert done is not None
    batch, payout = done.batch, model.payout
    assert (batch.long_count, batch.short_count) == (len(model.cut[Side.LONG]), len(model.cut[Side.SHORT]))
    assert (batch.equity, batch.collateral, batch.index_price) == (model.equity, model.collateral, price)
    assert (batch.cranker_reward, batch.insurance_credit, batch.insurance_paid, batch.socialized_loss,
            batch.pool_credit) == (payout.reward, payout.insurance_credit, payout.insurance_paid,
                                   payout.socialized_loss, payout.pool_credit)  # fmt: skip
    after = await c.fetch_market(setup.market)
    assert await c.token_balance(cranker_token) - reward_before == payout.reward
    assert after.insurance_balance == market.insurance_balance + payout.insurance_credit - payout.insurance_paid
    assert after.pool_balance == market.pool_balance + payout.pool_credit
    book_after = await c.fetch_book(setup.market)
    assert_live_is_walked(book)
    assert_live_is_walked(book_after)
    live = book_after.live_mask()
    for slot in range(book.header.slots_used):
        if book.slots[slot]["status"] == SlotStatus.OPEN and book.live_mask()[slot]:
            assert bool(live[slot]) == (slot not in cut), f"slot {slot}"
            if slot not in cut:  # healthy positions are untouched
                assert book_after.slots[slot].tobytes() == book.slots[slot].tobytes()
    return done, model


def assert_live_is_walked(book: Book) -> None:
    """The live slots (read from the open slots when nothing awaits collection) are the trees' leaves."""
    for side in Side:
        assert sorted(book.live_slots(side).tolist()) == sorted(book.walked_slots(side).tolist())
        assert sorted(book.live_by_side()[side].tolist()) == sorted(book.walked_slots(side).tolist())


async def open_many(c: Client, setup: TradingSetup, orders: list[tuple[int, int, int, int]]) -> list[Position]:
    """(trader, side, size units, collateral units) each."""
    return [
        await c.open_position(setup.market, side, size * UNIT, collateral * UNIT, owner=setup.traders[who])
        for who, side, size, collateral in orders
    ]


async def test_a_20x_long_goes_one_tick_past_its_liquidation_price_and_not_before(
    perps_client: Client, oracle_kind: OracleKind
) -> None:
    c = perps_client
    setup = await start(
        c,
        oracle_kind=oracle_kind,
        params=MarketParams(initial_margin_bps=501, maintenance_margin_bps=500),
        insurance=UNIT,
    )
    long_ = (await open_many(c, setup, [(0, Side.LONG, 10, 51)]))[0]
    lp = long_.liquidation_price()
    assert 0 < long_.entry_price - lp < PRICE // 100  # about 20x: within 1% of the entry
    done, _ = await liquidate_as_modelled(c, setup, lp)
    assert done is None  # at the liquidation price: not yet
    done, _ = await liquidate_as_modelled(c, setup, lp - 1)
    assert done is not None and done.batch.long_count == 1


async def test_a_20x_short_goes_one_tick_past_its_liquidation_price_and_not_before(perps_client: Client) -> None:
    c = perps_client
    setup = await start(c, params=MarketParams(initial_margin_bps=501, maintenance_margin_bps=500), insurance=UNIT)
    short = (await open_many(c, setup, [(0, Side.SHORT, 10, 51)]))[0]
    lp = short.liquidation_price()
    assert 0 < lp - short.entry_price < PRICE // 100
    assert (await liquidate_as_modelled(c, setup, lp))[0] is None
    done, _ = await liquidate_as_modelled(c, setup, lp + 1)
    assert done is not None and done.batch.short_count == 1


async def test_liquidation_uses_the_index_not_the_mark(perps_client: Client) -> None:
    c = perps_client
    params = MarketParams(initial_margin_bps=600, maintenance_margin_bps=500, skew_scale=400 * UNIT)
    setup = await start(c, params=params, traders=2)
    long_ = (await open_many(c, setup, [(0, Side.LONG, 4, 30)]))[0]
    await open_many(c, setup, [(1, Side.SHORT, 10, 200)])  # skew -6 units: the mark is 1.5% below the index
    lp = long_.liquidation_price()
    mark = lp * (400 - 6) // 400
    assert mark < lp  # at the mark the long would be liquidatable; at the index (lp) it is not
    assert (await liquidate_as_modelled(c, setup, lp))[0] is None


async def test_exactly_the_positions_past_their_price_go_both_sides_one_instruction(
    perps_client: Client, oracle_kind: OracleKind
) -> None:
    c = perps_client
    setup = await start(
        c,
        oracle_kind=oracle_kind,
        params=MarketParams(price_band_bps=3000, initial_margin_bps=600),
        traders=3,
        insurance=100 * UNIT,
    )
    # longs opened at 100 and shorts opened at 100, leverage from 2x to 16x: liquidation prices on many levels
    orders = [(i % 3, Side.LONG, 5 + i, (5 + i) * 100 // lev) for i, lev in enumerate((2, 4, 6, 8, 10, 12, 14, 16))]
    orders += [(i % 3, Side.SHORT, 4 + i, (4 + i) * 100 // lev) for i, lev in enumerate((3, 5, 7, 9, 11, 13, 15, 16))]
    positions = await open_many(c, setup, orders)
    market = project_funding(await c.fetch_market(setup.market), await c.now())
    book = await c.fetch_book(setup.market)
    # the vectorised finder agrees with the per-position model at every price level
    for price in range(90 * UNIT, 111 * UNIT, UNIT):
        found = find_liquidatable(book, market, price)
        by_model = {p.slot for p in positions if p.is_liquidatable(price)}
        assert {int(s) for slots in found.values() for s in slots} == by_model
    # the vectorised liquidation prices are the model's, position by position
    by_slot = {p.slot: p.liquidation_price() for p in positions}
    for side in Side:
        slots = book.live_slots(side)
        prices = book.liquidation_prices(side, slots, market.funding_index(side), market.params.maintenance_margin_bps)
        assert {int(s): int(p) for s, p in zip(slots, prices, strict=True)} == {
            p.slot: by_slot[p.slot] for p in positions if p.side == side
        }
    # and so is the health of every position (Book.health_codes), at every price level
    for price in range(90 * UNIT, 111 * UNIT, UNIT):
        health = {p.slot: dataclasses.replace(p, market=market).health(price) for p in positions}
        for side in Side:
            slots = book.live_slots(side)
            mm = market.params.maintenance_margin_bps
            codes = book.health_codes(side, slots, price, market.funding_index(side), mm)
            assert [HEALTH_BY_CODE[code] for code in codes.tolist()] == [health[int(s)] for s in slots]
    # a move down takes the high-leverage longs only
    done, _ = await liquidate_as_modelled(c, setup, 96 * UNIT)
    assert done is not None and done.batch.long_count > 0 and done.batch.short_count == 0
    # A long opened at 110 near max leverage liquidates below ~108; shorts opened at 100 at 11x-16x
    # liquidate above ~101-105: at 105 both sides go in the same instruction.
    await setup.set_price(c, 110 * UNIT)
    await c.advance_time(300)
    await setup.set_price(c, 110 * UNIT)
    more = await open_many(c, setup, [(0, Side.LONG, 3, 21), (1, Side.LONG, 2, 40)])
    assert more[0].liquidation_price() > 105 * UNIT > more[1].liquidation_price()
    done, _model = await liquidate_as_modelled(c, setup, 105 * UNIT)
    assert done is not None and done.batch.short_count >= 1 and done.batch.long_count >= 1


async def test_payout_split_gap_insurance_and_socialised_loss(perps_client: Client, oracle_kind: OracleKind) -> None:
    c = perps_client
    setup = await start(
        c,
        oracle_kind=oracle_kind,
        params=MarketParams(price_band_bps=5000),
        traders=3,
        insurance=5 * UNIT,
    )
    alice, _bob, _carol = setup.traders
    a = (await open_many(c, setup, [(0, Side.LONG, 10, 120)]))[0]
    free_before = (await c.fetch_user(setup.market, alice.pubkey())).free_collateral
    # just past the liquidation price: positive residual equity; 10% to the cranker, the rest to insurance
    done, _ = await liquidate_as_modelled(c, setup, a.liquidation_price() - 1)
    assert done is not None and done.batch.equity > 0 and done.batch.cranker_reward > 0
    assert done.batch.cranker_reward == done.batch.equity * 1000 // 10_000
    # the trader gets nothing back and owes nothing: free collateral is exactly what it was after the open
    assert (await c.fetch_user(setup.market, alice.pubkey())).free_collateral == free_before
    # a gap through the liquidation price: negative equity, and the insurance fund pays all of it
    await recentre(c, setup)
    b = (await open_many(c, setup, [(1, Side.LONG, 20, 250)]))[0]
    done, _ = await liquidate_as_modelled(c, setup, b.liquidation_price() - 6 * UNIT)
    assert done is not None and done.batch.equity < 0 and done.batch.cranker_reward == 0
    assert done.batch.insurance_paid == -done.batch.equity and done.batch.socialized_loss == 0
    # a deeper gap than the fund holds: the fund pays what it has and the rest is socialised
    await recentre(c, setup)
    fund = (await c.fetch_market(setup.market)).insurance_balance
    k = (await open_many(c, setup, [(2, Side.LONG, 30, 400)]))[0]
    done, _ = await liquidate_as_modelled(c, setup, k.liquidation_price() - 15 * UNIT)
    assert done is not None and -done.batch.equity > fund > 0
    assert done.batch.insurance_paid == fund and done.batch.socialized_loss == -done.batch.equity - fund
    first_loss = done.batch.socialized_loss
    # with the fund empty, the whole shortfall is recorded as socialised loss
    await recentre(c, setup)
    assert (await c.fetch_market(setup.market)).insurance_balance == 0
    z = (await open_many(c, setup, [(0, Side.LONG, 10, 150)]))[0]
    done, _model = await liquidate_as_modelled(c, setup, z.liquidation_price() - 10 * UNIT)
    assert done is not None and done.batch.insurance_paid == 0 and done.batch.socialized_loss == -done.batch.equity > 0
    m = await c.fetch_market(setup.market)
    assert m.insurance_balance == 0 and m.socialized_loss == first_loss + done.batch.socialized_loss
    assert m.pool_balance >= 0 and m.liquidation_batches == 4 and m.positions_liquidated == 4


async def recentre(c: Client, setup: TradingSetup) -> None:
    """Back to the start price, with the EWMA caught up, so new positions can open."""
    await setup.set_price(c, PRICE)
    await c.advance_time(300)
    await setup.set_price(c, PRICE)


async def test_liquidated_stays_liquidated_until_cleared_and_slots_are_reused_safely(perps_client: Client) -> None:
    c = perps_client
    setup = await start(c, traders=3)
    alice, _bob, carol = setup.traders
    pos = (await open_many(c, setup, [(0, Side.LONG, 10, 150)]))[0]
    await open_many(c, setup, [(1, Side.SHORT, 2, 50)])
    await liquidate_as_modelled(c, setup, pos.liquidation_price() - 1)
    await setup.set_price(c, PRICE * 2)  # the price comes back, and more
    (mine,) = await c.positions(setup.market, alice.pubkey())
    assert mine.liquidated and mine.health(PRICE * 2) is Health.LIQUIDATABLE
    for attempt in (
        c.close_position(setup.market, pos, owner=alice),
        c.add_margin(setup.market, pos, UNIT, owner=alice),
        c.remove_margin(setup.market, pos, UNIT, owner=alice),
    ):
        with pytest.raises(program_errors.PositionLiquidated):
            await attempt
    # garbage collection frees the slot; a new position reuses it with a new generation
    assert len(await collect_garbage(c, setup.market)) >= 1
    header = await c.fetch_book_header((await c.fetch_market(setup.market)).book)
    assert header.garbage == 0 and header.garbage_count == 0
    await setup.set_price(c, PRICE)
    newcomer = (await open_many(c, setup, [(2, Side.LONG, 1, 30)]))[0]
    assert newcomer.slot == pos.slot and newcomer.generation == pos.generation + 1
    # alice's old reference is still the liquidated position, never carol's new one
    (mine,) = await c.positions(setup.market, alice.pubkey())
    assert mine.liquidated
    with pytest.raises(program_errors.PositionLiquidated):
        await c.close_position(setup.market, pos, owner=alice)
    with pytest.raises(program_errors.PositionNotLiquidated):  # carol's is live: it cannot be cleared
        await c.clear_position(setup.market, carol.pubkey(), newcomer)
    # anyone can clear alice's reference
    stranger = Client(c.backend, Keypair(), program_id=c.program_id)
    await c.backend.request_airdrop(stranger.payer.pubkey(), 10**9)
    await stranger.clear_position(setup.market, alice.pubkey(), pos)
    assert await c.positions(setup.market, alice.pubkey()) == []
    assert [p.slot for p in await c.positions(setup.market, carol.pubkey())] == [newcomer.slot]


async def test_stale_oracle_stops_liquidation_band_does_not(perps_client: Client) -> None:
    c = perps_client
    setup = await start(c, traders=1)
    pos = (await open_many(c, setup, [(0, Side.LONG, 10, 150)]))[0]
    await c.advance_time(61)
    with pytest.raises(program_errors.OracleStale):
        await liquidate(c, setup.market)
    # a 14% drop: the band is breached (a short, away from the EWMA, is refused) but liquidation works
    await setup.set_price(c, 86 * UNIT)
    with pytest.raises(program_errors.PriceBandBreached):
        await c.open_position(setup.market, Side.SHORT, UNIT, 50 * UNIT, owner=setup.traders[0])
    assert pos.liquidation_price() > 86 * UNIT
    done, _ = await liquidate_as_modelled(c, setup, 86 * UNIT)
    assert done is not None and done.batch.count == 1


async def test_crank_round_clears_everything(perps_client: Client) -> None:
    c = perps_client
    setup = await start(c, traders=3, params=MarketParams(price_band_bps=5000))
    await open_many(c, setup, [(0, Side.LONG, 10, 150), (1, Side.LONG, 8, 100), (2, Side.SHORT, 3, 100)])
    assert await liquidate(c, setup.market) is None  # nothing yet: simulation said so, nothing sent
    await liquidate_as_modelled(c, setup, 80 * UNIT)
    cleared = await clear_liquidated(c, setup.market)
    assert len(cleared) == 2
    assert len(await collect_garbage(c, setup.market)) >= 1
    assert len(await c.positions(setup.market)) == 1


MARKET_IDS = itertools.count(2000)  # every hypothesis example gets a market of its own
price_paths = st.lists(st.integers(-12, 12), min_size=1, max_size=5)
books = st.lists(st.tuples(st.integers(0, 2), st.sampled_from([0, 1]), st.integers(1, 30), st.integers(11, 50)),
                 min_size=1, max_size=14)  # fmt: skip


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(orders=books, path=price_paths, gap=st.integers(0, 300))
async def test_batches_match_the_model_on_random_books(perps_client: Client, orders: list[tuple[int, int, int, int]],
                                                        path: list[int], gap: int) -> None:  # fmt: skip
    c = perps_client
    params = MarketParams(price_band_bps=10_000, max_funding_rate_bps_per_day=1000, skew_scale=10**5 * UNIT)
    setup = await setup_trading(c, price=PRICE, params=params, traders=3, insurance=20 * UNIT,
                                market_id=next(MARKET_IDS))  # fmt: skip
    checker = ConservationChecker(c, setup.market).attach()
    try:
        for who, side, size, lev_tenths in orders:  # leverage 1.1x to 5x
            await c.open_position(
                setup.market, side, size * UNIT, size * PRICE * 10 // lev_tenths, owner=setup.traders[who]
            )
        await c.advance_time(gap)
        price = PRICE
        for move in path:
            price = max(UNIT, price * (100 + move * 4) // 100)
            await liquidate_as_modelled(c, setup, price)
        assert checker.checks > 0
    finally:
        c.after_send.clear()


async def test_nothing_to_liquidate_is_refused_and_the_crank_sends_nothing(perps_client: Client) -> None:
    c = perps_client
    setup = await start(c, traders=1)
    await open_many(c, setup, [(0, Side.LONG, 10, 150)])
    m = await c.fetch_market(setup.market)
    cranker_token = associated_token_address(c.payer.pubkey(), setup.quote_mint)
    watched = [setup.market, m.book, m.vault, cranker_token, c.payer.pubkey()]
    before = await snapshot(c, watched)
    assert await liquidate(c, setup.market) is None  # simulated, refused, nothing sent: not even a fee paid
    assert await snapshot(c, watched) == before
    raw = ix.liquidate(cranker=c.payer.pubkey(), market=setup.market, book=m.book, oracle=m.oracle, vault=m.vault,
                       cranker_token=cranker_token, program_id=c.program_id)  # fmt: skip
    with pytest.raises(program_errors.NothingToLiquidate):
        await c.send([raw])
    after = await snapshot(c, watched)
    # the program changed nothing (the payer may have paid a fee: LiteSVM runs it, an RPC node's preflight refuses it)
    assert set(changed_accounts(before, after)) <= {c.payer.pubkey()}


@pytest.mark.rpc_only
async def test_cli_crank_once_liquidates_then_finds_nothing(
    perps_client: Client, perps_rpc_url: str, tmp_path: Path
) -> None:
    c = perps_client
    setup = await start(c, traders=2, params=MarketParams(price_band_bps=5000))
    await open_many(c, setup, [(0, Side.LONG, 10, 150), (1, Side.SHORT, 2, 100)])
    await setup.set_price(c, 80 * UNIT)
    keypair = tmp_path / "cranker.json"
    keypair.write_text(json.dumps(list(bytes(c.payer))))
    command = [sys.executable, "-m", "perpkit.cli", "crank", "--once", "--url", perps_rpc_url,
               "--market", str(setup.market), "--keypair", str(keypair)]  # fmt: skip
    first = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "liquidated 1 positions (1 long, 0 short) at index 80.000000" in first.stdout
    assert "cleared 1 reference(s)" in first.stdout
    m = await c.fetch_market(setup.market)
    assert m.positions_liquidated == 1 and m.last_liquidation_price == 80 * UNIT
    second = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "nothing to liquidate" in second.stdout
    assert (await c.fetch_market(setup.market)).liquidation_batches == 1
    # a market that does not exist: one clear line, exit status 1
    nowhere = Keypair().pubkey()
    command[command.index(str(setup.market))] = str(nowhere)
    third = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=120)
    assert third.returncode == 1
    assert third.stderr.strip().splitlines()[-1] == f"perpkit: error: market {nowhere} does not exist"


async def test_collect_garbage_is_bounded_per_call(perps_client: Client) -> None:
    c = perps_client
    setup = await start(c, traders=2, params=MarketParams(price_band_bps=5000))
    await open_many(c, setup, [(0, Side.LONG, 10, 150), (1, Side.LONG, 8, 100), (0, Side.LONG, 5, 60)])
    await liquidate_as_modelled(c, setup, 70 * UNIT)
    book = await c.fetch_book(setup.market)
    assert book.header.garbage_count == 3 and len(book.cut_slots()) == 3
    with pytest.raises(InvalidInput):
        await collect_garbage(c, setup.market, max_nodes=0)
    # one item (a tree node or a position slot) a call
    items = book.garbage_items()
    assert items >= 3
    assert len(await collect_garbage(c, setup.market, max_nodes=1)) == items
    book = await c.fetch_book(setup.market)
    assert book.header.garbage == 0 and book.header.garbage_count == 0 and len(book.cut_slots()) == 0
    assert_live_is_walked(book)
    # the three went, and were collected
    assert len(book.walked_slots(Side.LONG)) == len(book.live_slots(Side.LONG)) == 0


async def test_collect_garbage_by_header_as_the_bot_runs_it(perps_client: Client) -> None:
    """The bot's options: a dry run that sends nothing, a bound per call, a callback per transaction, timed calls."""
    c = perps_client
    setup = await start(c, traders=2, params=MarketParams(price_band_bps=5000))
    await open_many(c, setup, [(0, Side.LONG, 10, 150), (1, Side.LONG, 8, 100), (0, Side.LONG, 5, 60)])
    await liquidate_as_modelled(c, setup, 70 * UNIT)
    m = await c.fetch_market(setup.market)
    items = (await c.fetch_book(setup.market)).garbage_items()
    assert items >= 3
    headers: list[BookHeader] = []
    calls: list[str] = []

    @contextlib.asynccontextmanager
    async def timed(method: str) -> AsyncIterator[None]:
        calls.append(method)
        yield

    def dry_run(header: BookHeader) -> bool:
        headers.append(header)
        return False

    assert await collect_garbage_by_header(c, m.address, book=m.book, max_nodes=1, on_garbage=dry_run,
                                           rpc_context=timed) == []  # fmt: skip
    assert [h.garbage_count for h in headers] == [3] and calls == ["getAccountInfo"]
    with pytest.raises(InvalidInput):
        await collect_garbage_by_header(c, m.address, max_nodes=1)  # an address needs its book
    landed: list[TxResult] = []
    calls.clear()
    sent = await collect_garbage_by_header(c, m.address, book=m.book, max_nodes=1, max_transactions=2,
                                           on_sent=landed.append, rpc_context=timed)  # fmt: skip
    assert len(sent) == 2 and landed == sent
    assert calls == ["getAccountInfo", "sendTransaction"] * 2  # the bound reached: no third header read
    rest = await collect_garbage_by_header(c, m, max_nodes=1, on_sent=landed.append)
    assert len(rest) == items - 2 and landed == sent + rest
    assert (await c.fetch_book_header(m.book)).garbage == 0
    assert await collect_garbage_by_header(c, m, max_nodes=1) == []


async def test_liquidate_without_a_reward_account_says_so(perps_client: Client) -> None:
    c = perps_client
    setup = await start(c, traders=1)
    stranger = Keypair()  # has no token account for the quote mint
    await c.backend.request_airdrop(stranger.pubkey(), 10**9)
    with pytest.raises(AccountNotFound, match="the cranker's token account for the reward"):
        await liquidate(c, setup.market, cranker=stranger)


async def test_liquidate_gc_and_clear_validate_every_account(perps_client: Client) -> None:
    """Each wrong account is refused with its named error and changes nothing; then the right ones work."""
    c = perps_client
    setup = await start(c, traders=2, params=MarketParams(price_band_bps=5000))
    other = await setup_trading(c, price=PRICE, traders=1, market_id=77)
    await open_many(c, setup, [(0, Side.LONG, 10, 150), (1, Side.SHORT, 2, 100)])
    await setup.set_price(c, 80 * UNIT)  # the long is liquidatable
    m = await c.fetch_market(setup.market)
    o = await c.fetch_market(other.market)
    mine = associated_token_address(c.payer.pubkey(), setup.quote_mint)
    theirs = associated_token_address(c.payer.pubkey(), other.quote_mint)  # right owner, wrong mint
    good = ix.liquidate(cranker=c.payer.pubkey(), market=setup.market, book=m.book, oracle=m.oracle, vault=m.vault,
                        cranker_token=mine, program_id=c.program_id)  # fmt: skip
    bad = [
        (with_account(good, "cranker", Keypair().pubkey(), signer=False), program_errors.MissingSigner),
        (with_account(good, "market", other.market), program_errors.InvalidAccountAddress),
        (with_account(good, "market", setup.oracle), program_errors.InvalidDiscriminator),
        (with_account(good, "book", o.book), program_errors.InvalidAccountAddress),
        (with_account(good, "book", writable=False), program_errors.AccountNotWritable),
        (with_account(good, "oracle", other.oracle), program_errors.InvalidAccountAddress),
        (with_account(good, "vault", o.vault), program_errors.InvalidAccountAddress),
        (with_account(good, "cranker_token", theirs), program_errors.InvalidMint),
        (with_account(good, "cranker_token", m.vault), program_errors.InvalidAccountAddress),
        (with_account(good, "cranker_token", setup.oracle), program_errors.InvalidAccountOwner),
        (with_account(good, "market_authority", Keypair().pubkey()), program_errors.InvalidPda),
        (with_account(good, "token_program", c.program_id), program_errors.InvalidAccountAddress),
    ]
    gc = ix.collect_garbage(market=setup.market, book=m.book, max_nodes=10, program_id=c.program_id)
    bad += [
        (with_account(gc, "book", o.book), program_errors.InvalidAccountAddress),
        (with_account(gc, "book", writable=False), program_errors.AccountNotWritable),
    ]
    alice = setup.traders[0].pubkey()
    clear = ix.clear_position(market=setup.market, user=pda.user_address(setup.market, alice, program_id=c.program_id),
                              book=m.book, position=PositionRef(0, 0), program_id=c.program_id)  # fmt: skip
    bad += [
        (with_account(clear, "user", pda.user_address(other.market, other.traders[0].pubkey(),
                                                      program_id=c.program_id)), program_errors.WrongMarket),
        (with_account(clear, "book", o.book), program_errors.InvalidAccountAddress),
    ]  # fmt: skip
    watched = [setup.market, m.book, m.vault, mine, theirs, other.market, o.book]
    before = await snapshot(c, watched)
    for case, (instruction, error) in enumerate(bad):
        try:
            with pytest.raises(error):
                await c.send([instruction])
        except BaseException as exc:
            exc.add_note(f"bad account case {case}")
            raise
        assert set(changed_accounts(before, await snapshot(c, watched))) <= {c.payer.pubkey()}
    with pytest.raises(program_errors.PositionNotLiquidated):  # not yet liquidated: nothing to clear
        await c.send([clear])
    done = await liquidate(c, setup.market)
    assert done is not None and done.batch.long_count == 1
    await c.send([clear])
    assert await c.positions(setup.market, alice) == []


async def test_clear_user_drops_every_stale_reference_at_once_and_keeps_the_live(perps_client: Client) -> None:
    c = perps_client
    setup = await start(c, traders=2, params=MarketParams(price_band_bps=5000))
    alice, bob = setup.traders
    doomed = await open_many(c, setup, [(0, Side.LONG, 10, 120), (0, Side.LONG, 10, 115), (0, Side.LONG, 10, 110)])
    safe = (await open_many(c, setup, [(0, Side.SHORT, 2, 100)]))[0]
    await liquidate_as_modelled(c, setup, 85 * UNIT)
    user = await c.fetch_user(setup.market, alice.pubkey())
    assert user.position_count == 4
    # the payer (not alice) clears for her: the three liquidated references go in one instruction, the short stays
    book = (await c.fetch_market(setup.market)).book
    result = await c.send([ix.clear_user(market=setup.market, user=user.address, book=book, program_id=c.program_id)])
    after = await c.fetch_user(setup.market, alice.pubkey())
    assert after.position_count == 1
    assert [r for r in after.positions if not r.empty] == [PositionRef(safe.slot, safe.generation)]
    assert all(PositionRef(p.slot, p.generation) not in after.positions for p in doomed)
    # again, and on a user with nothing stale: no error, nothing changes (a racing cranker is normal)
    before = await snapshot(c, [user.address])
    await c.clear_user(setup.market, alice.pubkey())
    await c.clear_user(setup.market, bob.pubkey())
    assert changed_accounts(before, await snapshot(c, [user.address])) == []
    assert result.compute_units < CLEAR_COMPUTE_PER_USER


async def test_a_user_whose_references_are_full_of_stale_ones_can_still_open(perps_client: Client) -> None:
    """Nobody has to clear for a user to keep trading: open_position drops stale references when all 32 are taken."""
    c = perps_client
    setup = await start(c, traders=1, deposit=100_000 * UNIT, params=MarketParams(price_band_bps=5000))
    trader = setup.traders[0]
    await open_many(c, setup, [(0, Side.LONG, 10, 110)] * 31 + [(0, Side.SHORT, 2, 100)])
    with pytest.raises(program_errors.TooManyPositions):  # 32 live references: full
        await c.open_position(setup.market, Side.SHORT, 2 * UNIT, 100 * UNIT, owner=trader)
    await liquidate_as_modelled(c, setup, 85 * UNIT)  # the 31 longs go
    assert (await c.fetch_user(setup.market, trader.pubkey())).position_count == 32  # nobody cleared
    await setup.set_price(c, 85 * UNIT)
    await c.advance_time(300)
    await setup.set_price(c, 85 * UNIT)
    await c.open_position(setup.market, Side.SHORT, 2 * UNIT, 100 * UNIT, owner=trader)
    assert (await c.fetch_user(setup.market, trader.pubkey())).position_count == 2


async def test_clear_liquidated_packs_users_into_few_transactions(perps_client: Client) -> None:
    c = perps_client
    setup = await start(
        c, traders=45, deposit=1_000 * UNIT, params=MarketParams(price_band_bps=5000), book_capacity=256
    )
    await open_many(
        c, setup, [(i, Side.LONG, 10, 110) for i in range(45)] + [(i, Side.LONG, 10, 120) for i in range(45)]
    )
    await liquidate_as_modelled(c, setup, 85 * UNIT)
    sent: list[int] = []

    def count_clears(result: TxResult) -> None:
        sent.append(result.logs.count(f"Program {c.program_id} invoke [1]"))  # one clear_user an invocation

    c.on_sent.append(count_clears)
    try:
        cleared = await clear_liquidated(c, setup.market)
    finally:
        c.on_sent.remove(count_clears)
    assert len(cleared) == 90 and len({user for user, _ in cleared}) == 45
    assert len(sent) == 3 and sum(sent) == 45, sent  # about 20 users a transaction
    assert [(await c.fetch_user(setup.market, t.pubkey())).position_count for t in setup.traders] == [0] * 45
