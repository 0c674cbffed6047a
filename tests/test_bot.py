"""``perpkit crank`` as a long-running bot (perpkit.bot), run as a subprocess against a real ``perpkit localnet``."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

import httpx
import pytest
from solders.keypair import Keypair

from perpkit import instructions as ix
from perpkit import program_errors
from perpkit.accounts import MarketParams
from perpkit.bot import compute_limit, priority_fee
from perpkit.bot_process import BotProcess
from perpkit.client import Client
from perpkit.localnet.process import LocalnetProcess
from perpkit.risk import Side
from perpkit.spl_token import associated_token_address
from perpkit.testing import TradingSetup, create_token_account, setup_trading

UNIT = 10**6
PRICE = 100 * UNIT
PARAMS = MarketParams(initial_margin_bps=501, maintenance_margin_bps=500)  # up to about 20x


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def wait_healthy(http: httpx.AsyncClient, tries: int = 50) -> httpx.Response:
    """``/healthz`` once it answers 200, or its last answer after ``tries`` tenths of a second."""
    for _ in range(tries):
        health = await http.get("/healthz")
        if health.status_code == 200:
            break
        await asyncio.sleep(0.1)
    return health


async def cranker(client: Client, setup: TradingSetup, tmp_path: Path, name: str = "cranker") -> tuple[Keypair, Path]:
    """A funded cranker with its reward account, and its keypair file."""
    keypair = Keypair()
    await client.airdrop(keypair.pubkey(), 10 * 10**9)
    await create_token_account(client, setup.quote_mint, keypair.pubkey())
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(list(bytes(keypair))))
    return keypair, path


async def open_longs(client: Client, setup: TradingSetup, leverages: list[int]) -> None:
    """One long per trader, 10 contracts at 100 with collateral for that leverage."""
    for trader, leverage in zip(setup.traders, leverages, strict=True):
        await client.open_position(setup.market, Side.LONG, 10 * UNIT, 1_000 * UNIT // leverage, owner=trader)


async def reward_balance(client: Client, setup: TradingSetup, keypair: Keypair) -> int:
    from perpkit.spl_token import associated_token_address

    return await client.token_balance(associated_token_address(keypair.pubkey(), setup.quote_mint))


async def live_longs(client: Client, setup: TradingSetup) -> int:
    m = await client.fetch_market(setup.market)
    return int((await client.fetch_book_header(m.book)).counts[Side.LONG])


def metric(text: str, name: str, market: str) -> float:
    prefix = f'{name}{{market="{market}"}} '
    return float(next(line for line in text.splitlines() if line.startswith(prefix)).removeprefix(prefix))


def summary_numbers(err: str) -> dict[str, int | float]:
    line = next(x for x in err.splitlines() if x.startswith("perpkit crank: ") and "rounds" in x)
    words = line.removeprefix("perpkit crank: ").replace(",", "").split()
    return {"rounds": int(words[0]), "liquidations": int(words[2]), "positions": int(words[4]),
            "rewards": float(words[7]), "errors": int(words[8])}  # fmt: skip


def test_fee_and_limit_rules() -> None:
    assert priority_fee([], 1000) == 0
    assert priority_fee([0, 0, 5, 10, 20, 40], 1000) == 40  # the 75th percentile of the non-zero ones
    assert priority_fee([5_000, 9_000], 1000) == 1000  # capped
    assert priority_fee([5, 10], 0) == 0
    assert compute_limit(50_000) == 70_000
    assert compute_limit(2_000_000) == 1_400_000


async def test_bot_liquidates_on_the_price_move_with_metrics_and_a_clean_exit(
    client: Client, localnet: LocalnetProcess, tmp_path: Path
) -> None:
    setup = await setup_trading(client, price=PRICE, params=PARAMS, traders=2)
    await open_longs(client, setup, [10, 10])
    keypair, key_file = await cranker(client, setup, tmp_path)
    port = free_port()
    config = tmp_path / "crank.toml"
    config.write_text(f'url = "{localnet.url}"\nmarket = ["{setup.market}"]\npoll_interval = 5.0\n')
    assert localnet.ws_url is not None
    bot = BotProcess("--config", str(config), "--keypair", str(key_file), "--ws-url", localnet.ws_url,
                     "--metrics-port", str(port), "--health-max-age", "10")  # fmt: skip
    try:
        bot.wait_for("watching")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            health = await wait_healthy(http)
            assert health.status_code == 200, health.text
            before = await reward_balance(client, setup, keypair)
            await asyncio.sleep(0.3)
            moved = time.perf_counter()  # from sending the price update (it confirms within ~50 ms)
            await setup.set_price(client, 94 * UNIT)  # 10x longs opened at 100: just past their liquidation price
            at, line = bot.wait_for("liquidated", timeout=10)
            latency = at - moved
            print(f"\nprice move to liquidation line: {latency * 1000:.0f} ms ({line})")
            assert latency < 2.0
            assert "positions=2" in line
            reward = await reward_balance(client, setup, keypair) - before
            assert reward > 0
            assert await live_longs(client, setup) == 0
            await asyncio.sleep(0.3)
            metrics = (await http.get("/metrics")).text
            market = str(setup.market)
            assert metric(metrics, "perpkit_crank_liquidations_total", market) == 1
            assert metric(metrics, "perpkit_crank_positions_liquidated_total", market) == 2
            assert metric(metrics, "perpkit_crank_rewards_atoms_total", market) == reward
            assert metric(metrics, "perpkit_crank_last_price", market) == 94 * UNIT
            assert "perpkit_crank_rpc_seconds_bucket" in metrics and "perpkit_crank_last_slot " in metrics
        code, err = bot.terminate()
        assert code == 0, err
        numbers = summary_numbers(err)
        assert numbers["liquidations"] == 1 and numbers["positions"] == 2 and numbers["errors"] == 0
        assert numbers["rewards"] == reward / UNIT
        assert not [x for x in bot.seen if " error " in x]
    finally:
        bot.kill()


async def test_healthz_turns_unhealthy_when_the_endpoint_dies(tmp_path: Path) -> None:
    net = LocalnetProcess()
    try:
        async with await Client.connect(net.url, airdrop_lamports=100 * 10**9) as c:
            setup = await setup_trading(c, price=PRICE, params=PARAMS, traders=1)
            _, key_file = await cranker(c, setup, tmp_path)
        port = free_port()
        bot = BotProcess("--url", net.url, "--keypair", str(key_file), "--metrics-port", str(port),
                         "--health-max-age", "1.5", "--poll-interval", "0.3", "--log-format", "json")  # fmt: skip
        try:
            bot.wait_for('"event":"started"')
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                health = await wait_healthy(http)
                assert health.status_code == 200 and health.text.startswith("ok"), health.text
                net.stop()
                for _ in range(100):
                    health = await http.get("/healthz")
                    if health.status_code == 503:
                        break
                    await asyncio.sleep(0.1)
                assert health.status_code == 503, health.text
                assert len(health.text.strip().splitlines()) == 1
                print(f"\nunhealthy: {health.text.strip()}")
            code, err = bot.terminate(timeout=60)
            assert code == 0, err
            assert summary_numbers(err)["errors"] >= 1
            assert all(json.loads(x)["event"] for x in bot.seen)  # every line is JSON
        finally:
            bot.kill()
    finally:
        net.stop()


async def test_dry_run_sends_nothing(client: Client, localnet: LocalnetProcess, tmp_path: Path) -> None:
    setup = await setup_trading(client, price=PRICE, params=PARAMS, traders=1)
    await open_longs(client, setup, [10])
    keypair, key_file = await cranker(client, setup, tmp_path)
    await setup.set_price(client, 85 * UNIT)
    bot = BotProcess("--url", localnet.url, "--market", str(setup.market), "--keypair", str(key_file), "--dry-run",
                     "--poll-interval", "0.3")  # fmt: skip
    try:
        _, line = bot.wait_for("would_liquidate")
        assert "positions=1" in line
        await asyncio.sleep(1.0)  # a few more rounds
        code, err = bot.terminate()
        assert code == 0, err
        assert summary_numbers(err)["liquidations"] == 0
    finally:
        bot.kill()
    assert await live_longs(client, setup) == 1  # still there
    assert await reward_balance(client, setup, keypair) == 0
    assert not [x for x in bot.seen if " liquidated " in x]


async def test_two_bots_racing_liquidate_each_position_once(
    client: Client, localnet: LocalnetProcess, tmp_path: Path
) -> None:
    leverages = [10, 10, 12, 15, 18, 3]
    setup = await setup_trading(client, price=PRICE, params=PARAMS, traders=len(leverages))
    await open_longs(client, setup, leverages)
    crankers = [await cranker(client, setup, tmp_path, f"c{i}") for i in range(2)]
    assert localnet.ws_url is not None
    bots = [BotProcess("--url", localnet.url, "--ws-url", localnet.ws_url, "--market", str(setup.market),
                       "--keypair", str(path), "--poll-interval", "0.5") for _, path in crankers]  # fmt: skip
    try:
        for bot in bots:
            bot.wait_for("watching")
        m = await client.fetch_market(setup.market)
        insurance_before = m.insurance_balance
        for price in (99 * UNIT, 98 * UNIT, 96 * UNIT, 94 * UNIT):  # each move cuts the next leverage just past
            await setup.set_price(client, price)
            await asyncio.sleep(1.2)
        assert await live_longs(client, setup) == 1  # the 3x long is left
        results = [bot.terminate() for bot in bots]
    finally:
        for bot in bots:
            bot.kill()
    numbers = []
    for (keypair, _), (code, err), bot in zip(crankers, results, bots, strict=True):
        assert code == 0, err
        n = summary_numbers(err)
        numbers.append(n)
        assert n["errors"] == 0, err
        assert not [x for x in bot.seen if " error " in x], bot.seen
        assert n["rewards"] * UNIT == pytest.approx(await reward_balance(client, setup, keypair), abs=0.5)
    print(f"\nracing bots: {numbers}")
    assert sum(int(n["positions"]) for n in numbers) == 5  # each liquidatable position cut once
    # the chain agrees: nothing left to liquidate at 94, and the cut positions' references were cleared
    liquidate = ix.liquidate(cranker=client.payer.pubkey(), market=setup.market, book=m.book, oracle=m.oracle,
                             vault=m.vault, cranker_token=associated_token_address(client.payer.pubkey(), setup.quote_mint),
                             program_id=client.program_id)  # fmt: skip
    with pytest.raises(program_errors.NothingToLiquidate):
        await client.simulate([liquidate], compute_unit_limit=1_400_000)
    m = await client.fetch_market(setup.market)
    assert m.insurance_balance >= insurance_before
