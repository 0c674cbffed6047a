"""The liquidation bot's reaction time on localnet: oracle update sent to liquidation confirmed, p50 and p99.

Run: python bench/bench_bot_latency.py [--trials 100] [--poll-interval 2.0] [--ws-url none]

Starts a ``perpkit localnet`` and ``python -m perpkit.bot`` against it (WebSocket wake-ups unless
``--ws-url none``; polling every ``--poll-interval`` seconds as the fallback).  Each trial puts the price
back at 100, opens one 10x long (traders take turns), waits for the bot to go idle, then starts the clock
just before sending the oracle update to 94 (just past that long's liquidation price) and stops it when
the bot prints its ``liquidated`` line, which it does once the transaction is confirmed; the trial checks
that the book has no live long left.  Target: p99 at most 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from solders.keypair import Keypair

from perpkit.accounts import MarketParams
from perpkit.bot_process import BotProcess
from perpkit.client import Client
from perpkit.localnet.process import LocalnetProcess
from perpkit.risk import Side
from perpkit.testing import create_token_account, setup_trading

UNIT = 10**6
PARAMS = MarketParams(initial_margin_bps=501, maintenance_margin_bps=500)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


async def run(args: argparse.Namespace) -> None:
    with LocalnetProcess() as net, tempfile.TemporaryDirectory() as tmp:
        async with await Client.connect(net.url, airdrop_lamports=100 * 10**9) as client:
            setup = await setup_trading(client, price=100 * UNIT, params=PARAMS, traders=4,
                                        deposit=args.trials * 100 * UNIT)  # fmt: skip
            cranker = Keypair()
            await client.airdrop(cranker.pubkey(), 10 * 10**9)
            await create_token_account(client, setup.quote_mint, cranker.pubkey())
            key_file = Path(tmp) / "cranker.json"
            key_file.write_text(json.dumps(list(bytes(cranker))))
            ws_url = args.ws_url or net.ws_url or "none"
            bot = BotProcess("--url", net.url, "--ws-url", ws_url, "--market", str(setup.market),
                             "--keypair", str(key_file), "--poll-interval", str(args.poll_interval))  # fmt: skip
            try:
                bot.wait_for("watching" if ws_url != "none" else "started")
                latencies: list[float] = []
                market = await client.fetch_market(setup.market)
                for trial in range(args.trials):
                    await setup.set_price(client, 100 * UNIT)
                    trader = setup.traders[trial % len(setup.traders)]
                    await client.open_position(setup.market, Side.LONG, 10 * UNIT, 100 * UNIT, owner=trader)
                    await asyncio.sleep(args.settle)  # the bot's rounds on those two changes are over
                    bot.drain()
                    sent = time.perf_counter()
                    await setup.set_price(client, 94 * UNIT)
                    at, line = await asyncio.to_thread(bot.wait_for, " liquidated ", 10.0)
                    latencies.append(at - sent)
                    header = await client.fetch_book_header(market.book)
                    assert int(header.counts[Side.LONG]) == 0, f"trial {trial}: a long is still live ({line})"
            finally:
                _, err = bot.terminate()
                summary = err.strip().splitlines()[-1] if err.strip() else ""
    ms = [x * 1000 for x in latencies]
    print(f"bot latency, oracle update sent -> liquidation confirmed (bot's line), {len(ms)} trials, "
          f"wake-ups: {'WebSocket' if ws_url != 'none' else f'polling every {args.poll_interval} s'}")  # fmt: skip
    print(f"  p50 {percentile(ms, 50):.0f} ms   p90 {percentile(ms, 90):.0f} ms   p99 {percentile(ms, 99):.0f} ms   "
          f"max {max(ms):.0f} ms   mean {statistics.fmean(ms):.0f} ms   min {min(ms):.0f} ms")  # fmt: skip
    print(f"  target p99 <= 1000 ms: {'met' if percentile(ms, 99) <= 1000 else 'MISSED'}")
    print(f"  {summary}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--poll-interval", type=float, default=2.0)
    parser.add_argument("--settle", type=float, default=0.3, help="seconds between opening and the price move")
    parser.add_argument("--ws-url", default=None, help="'none': the bot polls (default: the localnet's WebSocket)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
