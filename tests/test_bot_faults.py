"""The liquidation bot (perpkit.bot) against a real ``perpkit localnet`` behind a fault-injecting proxy
(perpkit.localnet.faults): dropped connections, lost answers, HTTP 429/503, stalls, stale blockhashes; a
SIGKILL and restart; and a bounded soak of a few hundred price updates."""

from __future__ import annotations

import asyncio
import random
import re
import signal
from pathlib import Path

import httpx
import pytest
from solders.keypair import Keypair
from test_bot import PARAMS, PRICE, UNIT, BotProcess, cranker, open_longs, reward_balance, summary_numbers

from perpkit import instructions as ix
from perpkit import program_errors
from perpkit.client import Client
from perpkit.crank import decode_batches
from perpkit.errors import PerpkitError
from perpkit.localnet.faults import FaultProxy, Faults
from perpkit.localnet.process import LocalnetProcess
from perpkit.risk import Side
from perpkit.spl_token import associated_token_address
from perpkit.testing import TradingSetup, conservation, setup_trading

LEVERAGES = [10, 10, 12, 15, 18, 3]
MOVES = (99 * UNIT, 98 * UNIT, 96 * UNIT, 94 * UNIT)  # each move cuts the next leverage just past; 3x stays
FAULTS = Faults(drop=0.04, lose=0.04, http_429=0.04, http_503=0.04, stall=0.04, stall_seconds=0.7,
                stale_blockhash=0.3)  # fmt: skip
LOSSY = Faults(lose=0.6, methods=["sendTransaction", "getSignatureStatuses", "getTransaction"])
_LIQUIDATED = re.compile(r" liquidated .*positions=(\d+) .*reward=([0-9.]+) .*signature=(\w+)")


async def wait_for(bot: BotProcess, word: str, timeout: float = 20.0) -> str:
    """BotProcess.wait_for off the event loop (the proxy serving the bot runs on it)."""
    return (await asyncio.to_thread(bot.wait_for, word, timeout))[1]


async def terminate(bot: BotProcess) -> tuple[int, str]:
    bot.process.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(bot.process.wait, 60)
    assert bot.process.stderr is not None
    err = await asyncio.to_thread(bot.process.stderr.read)
    await asyncio.sleep(0.2)
    bot.drain()
    return code, err


async def live_positions(client: Client, setup: TradingSetup) -> int:
    m = await client.fetch_market(setup.market)
    counts = (await client.fetch_book_header(m.book)).counts
    return int(counts[Side.LONG]) + int(counts[Side.SHORT])


async def wait_live(client: Client, setup: TradingSetup, wanted: int, timeout: float = 20.0) -> int:
    live = -1
    for _ in range(int(timeout / 0.1)):
        live = await live_positions(client, setup)
        if live == wanted:
            break
        await asyncio.sleep(0.1)
    return live


def liquidated_lines(lines: list[str]) -> dict[str, tuple[int, int]]:
    """signature: (positions, reward atoms) of each ``liquidated`` line; a signature twice fails."""
    found: dict[str, tuple[int, int]] = {}
    for line in lines:
        match = _LIQUIDATED.search(line)
        if match:
            positions, reward, signature = match.groups()
            assert signature not in found, f"{signature} counted twice: {lines}"
            found[signature] = (int(positions), round(float(reward) * UNIT))
    return found


async def chain_liquidations(client: Client, keypair: Keypair) -> dict[str, tuple[int, int]]:
    """signature: (positions, cranker reward) of every landed liquidate the cranker signed, from the chain."""
    answer = await client.backend.raw_request(  # type: ignore[attr-defined]
        "getSignaturesForAddress", [str(keypair.pubkey()), {"limit": 1000}]
    )
    found: dict[str, tuple[int, int]] = {}
    for entry in answer["result"]:
        if entry["err"] is not None:
            continue
        outcome = await client.transaction_outcome(entry["signature"])
        assert outcome is not None
        for batch in decode_batches(outcome.logs):
            found[entry["signature"]] = (batch.count, batch.cranker_reward)
    return found


async def assert_nothing_to_liquidate(client: Client, setup: TradingSetup) -> None:
    m = await client.fetch_market(setup.market)
    liquidate = ix.liquidate(cranker=client.payer.pubkey(), market=setup.market, book=m.book, oracle=m.oracle,
                             vault=m.vault, cranker_token=associated_token_address(client.payer.pubkey(), setup.quote_mint),
                             program_id=client.program_id)  # fmt: skip
    with pytest.raises(program_errors.NothingToLiquidate):
        await client.simulate([liquidate], compute_unit_limit=1_400_000)


_INJECTED = ("BlockhashNotFound", "AlreadyProcessed", "still failing after", "did not land", "not confirmed within")
"""What the errors the proxy's faults cause say: a stale blockhash past its validity; a resend of a transaction
whose answer was lost; the retries used up on drops, 429/503 and stalls."""


def error_lines(lines: list[str]) -> list[str]:
    return [x for x in lines if " error " in x]


def unexplained_errors(lines: list[str]) -> list[str]:
    """Error lines that no injected fault explains."""
    return [x for x in error_lines(lines) if not any(cause in x for cause in _INJECTED)]


async def test_bot_through_faults_liquidates_each_position_once_and_counts_rewards_exactly(
    client: Client, localnet: LocalnetProcess, tmp_path: Path
) -> None:
    async with FaultProxy(localnet.url, seed=13) as proxy:
        stale = await proxy.remember_blockhash()  # served later, when the setup below has made it old
        setup = await setup_trading(client, price=PRICE, params=PARAMS, traders=len(LEVERAGES))
        await open_longs(client, setup, LEVERAGES)
        keypair, key_file = await cranker(client, setup, tmp_path)
        before_market = await client.fetch_market(setup.market)
        before = await reward_balance(client, setup, keypair)
        proxy.faults = FAULTS
        bot = BotProcess("--url", proxy.url, "--ws-url", "none", "--market", str(setup.market),
                         "--keypair", str(key_file), "--poll-interval", "0.3")  # fmt: skip
        try:
            await wait_for(bot, "started")
            # the HTTP control endpoint works as the in-process API does
            async with httpx.AsyncClient() as http:
                current = (await http.get(f"{proxy.url}/_faults")).json()
                assert current["faults"]["stale_blockhash"] == 0.3
            for n, price in enumerate(MOVES):
                if n == 2:  # then answers lost after the cluster took the transaction, often past the retries
                    proxy.faults = LOSSY
                await setup.set_price(client, price)
                await asyncio.sleep(1.0)
            live = await wait_live(client, setup, 1)
            assert live == 1, bot.drain()[-30:]
            # the network heals: what was lost must now be counted from the chain, exactly (on a loaded CI
            # machine 60% lost answers can outlast the shutdown's settling, which the summary then shows)
            proxy.faults = Faults()
            await asyncio.sleep(2.0)
            code, err = await terminate(bot)
        finally:
            bot.kill()
        tally = dict(proxy.tally)
    assert code == 0, err
    numbers = summary_numbers(err)
    reward = await reward_balance(client, setup, keypair) - before
    m = await client.fetch_market(setup.market)
    resolved = [x for x in bot.seen if " liquidated " in x and "resolved=True" in x]
    print(f"\n{len(resolved)} liquidations counted after their outcome was lost; errors: {error_lines(bot.seen)}")
    print(f"faults: {numbers}; proxy tally {tally}; stale blockhash {stale['blockhash']}")
    assert m.positions_liquidated - before_market.positions_liquidated == 5, bot.seen
    assert numbers["positions"] == 5, bot.seen  # each position counted once
    assert round(numbers["rewards"] * UNIT) == reward  # the summary's rewards are the balance change, exactly
    logged = liquidated_lines(bot.seen)
    assert sum(p for p, _ in logged.values()) == 5 and sum(r for _, r in logged.values()) == reward
    assert logged == await chain_liquidations(client, keypair)
    assert not unexplained_errors(bot.seen), unexplained_errors(bot.seen)
    assert sum(v for k, v in tally.items() if k.startswith("fault:")) > 10  # the faults did happen
    await conservation(client, setup.market)
    await assert_nothing_to_liquidate(client, setup)


async def test_bot_killed_mid_run_and_restarted_liquidates_each_position_once(
    client: Client, localnet: LocalnetProcess, tmp_path: Path
) -> None:
    setup = await setup_trading(client, price=PRICE, params=PARAMS, traders=len(LEVERAGES))
    await open_longs(client, setup, LEVERAGES)
    keypair, key_file = await cranker(client, setup, tmp_path)
    before_market = await client.fetch_market(setup.market)
    before = await reward_balance(client, setup, keypair)
    assert localnet.ws_url is not None
    args = ("--url", localnet.url, "--ws-url", localnet.ws_url, "--market", str(setup.market),
            "--keypair", str(key_file), "--poll-interval", "0.5")  # fmt: skip
    first = BotProcess(*args)
    try:
        await wait_for(first, "watching")
        await setup.set_price(client, MOVES[0])
        await wait_for(first, "liquidated", timeout=10)
        await setup.set_price(client, MOVES[1])
        await asyncio.sleep(0.02)  # the bot is likely in the middle of its round
        first.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(first.process.wait, 10)
        await asyncio.sleep(0.2)
        first.drain()
    finally:
        first.kill()
    await setup.set_price(client, MOVES[2])  # moves while no bot runs
    second = BotProcess(*args)
    try:
        await wait_for(second, "watching")
        await setup.set_price(client, MOVES[3])
        assert await wait_live(client, setup, 1) == 1, second.drain()[-30:]
        await asyncio.sleep(0.5)
        code, err = await terminate(second)
    finally:
        second.kill()
    assert code == 0, err
    m = await client.fetch_market(setup.market)
    assert m.positions_liquidated - before_market.positions_liquidated == 5
    reward = await reward_balance(client, setup, keypair) - before
    on_chain = await chain_liquidations(client, keypair)
    assert sum(p for p, _ in on_chain.values()) == 5 and sum(r for _, r in on_chain.values()) == reward
    logged_first, logged_second = liquidated_lines(first.seen), liquidated_lines(second.seen)
    assert not set(logged_first) & set(logged_second)
    for logged in (logged_first, logged_second):
        assert all(on_chain[s] == v for s, v in logged.items())
    assert len(set(on_chain) - set(logged_first) - set(logged_second)) <= 1  # the one in flight at the kill
    numbers = summary_numbers(err)
    assert round(numbers["rewards"] * UNIT) == sum(r for _, r in logged_second.values())
    assert numbers["errors"] == 0 and not error_lines(second.seen)
    print(f"\nkilled and restarted: first {logged_first}, second {numbers}, chain {len(on_chain)} liquidates")
    await conservation(client, setup.market)
    await assert_nothing_to_liquidate(client, setup)


async def test_soak_a_random_walk_leaves_nothing_liquidatable(
    client: Client, localnet: LocalnetProcess, tmp_path: Path
) -> None:
    rng = random.Random(7)
    setup = await setup_trading(client, price=PRICE, params=PARAMS, traders=8, deposit=50_000 * UNIT)
    keypair, key_file = await cranker(client, setup, tmp_path)
    before_market = await client.fetch_market(setup.market)
    before = await reward_balance(client, setup, keypair)
    assert localnet.ws_url is not None
    async with FaultProxy(
        localnet.url, seed=7, faults=Faults(http_429=0.03, http_503=0.03, stale_blockhash=0.2)
    ) as proxy:
        bot = BotProcess("--url", proxy.url, "--ws-url", localnet.ws_url, "--market", str(setup.market),
                         "--keypair", str(key_file), "--poll-interval", "1.0")  # fmt: skip
        price, opened, refused, updates = PRICE, 0, 0, 250
        try:
            await wait_for(bot, "watching")
            for n in range(updates):
                price = min(130 * UNIT, max(70 * UNIT, round(price * (1 + rng.gauss(0, 0.006)))))
                await setup.set_price(client, price)
                if n % 10 == 0:
                    trader = rng.choice(setup.traders)
                    side, leverage = rng.choice([Side.LONG, Side.SHORT]), rng.randint(4, 19)
                    size = rng.randint(1, 10) * UNIT
                    try:
                        await client.open_position(setup.market, side, size, size * price // UNIT // leverage,
                                                   owner=trader)  # fmt: skip
                        opened += 1
                    except PerpkitError:
                        refused += 1  # e.g. the pool's skew limit: not the bot's business
            await asyncio.sleep(2.0)  # the bot's last round at the final price
            code, err = await terminate(bot)
            tally = dict(proxy.tally)
        finally:
            bot.kill()
    assert code == 0, err
    numbers = summary_numbers(err)
    m = await client.fetch_market(setup.market)
    print(f"\nsoak: {updates} updates, {opened} opened ({refused} refused), final price {price / UNIT:.2f}, "
          f"{numbers}, {m.positions_liquidated - before_market.positions_liquidated} liquidated on chain, "
          f"{await live_positions(client, setup)} live; proxy tally {tally}")  # fmt: skip
    await assert_nothing_to_liquidate(client, setup)
    assert numbers["positions"] == m.positions_liquidated - before_market.positions_liquidated > 0
    assert round(numbers["rewards"] * UNIT) == await reward_balance(client, setup, keypair) - before
    assert not unexplained_errors(bot.seen), unexplained_errors(bot.seen)
    assert numbers["errors"] == len(error_lines(bot.seen))
    await conservation(client, setup.market)
