"""Open/close pairs through the SDK over JSON-RPC, with a 65,536-slot book: bytes, calls and pairs per second.

Against ``perpkit localnet`` (started here, or ``--url`` for one already
running). The server counts the calls and the bytes it answers with
(``perpkit_getStats``), so the figures are what the client downloaded,
whatever client code runs. The book has the full 65,536-slot capacity (an
8.5 MiB account); it holds only the positions of this run, which does not
change what a read of the whole account would cost.

Run: python bench/bench_rpc_pairs.py [--pairs 100] [--capacity 65536] [--url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import httpx
from solana.constants import LAMPORTS_PER_SOL

from perpkit import Client
from perpkit.localnet.process import LocalnetProcess
from perpkit.risk import Side
from perpkit.testing import setup_trading

UNIT = 10**6


def stats(url: str) -> dict[str, Any]:
    answer = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "perpkit_getStats"}).json()
    result: dict[str, Any] = answer["result"]
    return result


async def pairs(url: str, n: int, capacity: int) -> None:
    client = await Client.connect(url, airdrop_lamports=100 * LAMPORTS_PER_SOL)
    setup = await setup_trading(client, price=100 * UNIT, traders=1, book_capacity=capacity)
    trader = setup.traders[0]
    # one pair first, so one-off reads (the market's accounts) are not counted per pair
    first = await client.open_position(setup.market, Side.LONG, UNIT, 50 * UNIT, owner=trader)
    await client.close_position(setup.market, first, owner=trader)
    before = stats(url)
    t0 = time.perf_counter()
    for i in range(n):
        side = Side.LONG if i % 2 == 0 else Side.SHORT
        position = await client.open_position(setup.market, side, UNIT, 50 * UNIT, owner=trader)
        await client.close_position(setup.market, position, owner=trader)
    seconds = time.perf_counter() - t0
    after = stats(url)
    await client.close()
    calls = after["requests"] - before["requests"] - 1  # the stats call itself
    downloaded = after["responseBytes"] - before["responseBytes"]
    methods = {m: after["calls"][m] - before["calls"].get(m, 0) for m in after["calls"]}
    methods.pop("perpkit_getStats", None)
    print(f"{n} open/close pairs, book capacity {capacity:,}:")
    print(f"  downloaded     {downloaded / n:,.0f} bytes per pair ({downloaded / n / 1024:,.1f} KiB)")
    print(f"  JSON-RPC calls {calls / n:.1f} per pair: " + ", ".join(
        f"{m} {c / n:.1f}" for m, c in sorted(methods.items(), key=lambda kv: -kv[1]) if c))  # fmt: skip
    print(f"  {n / seconds:,.1f} pairs/s ({seconds / n * 1e3:.1f} ms per pair)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--capacity", type=int, default=65_536)
    parser.add_argument("--url", default=None, help="a running perpkit localnet (default: start one)")
    args = parser.parse_args()
    if args.url:
        asyncio.run(pairs(args.url, args.pairs, args.capacity))
        return
    with LocalnetProcess() as server:
        asyncio.run(pairs(server.url, args.pairs, args.capacity))


if __name__ == "__main__":
    main()
