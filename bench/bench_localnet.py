"""perpkit localnet: start-up time and sendTransaction+confirm throughput with the SDK over loopback.

Run: python bench/bench_localnet.py [--starts 5] [--transactions 300] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import httpx
from solana.constants import LAMPORTS_PER_SOL
from solders.pubkey import Pubkey

from perpkit import Client
from perpkit import instructions as ix
from perpkit.localnet.process import LocalnetProcess
from perpkit.testing import setup_market


def start_server() -> tuple[LocalnetProcess, float]:
    """The server, and seconds from spawning it to its first getHealth answer."""
    t0 = time.perf_counter()
    server = LocalnetProcess()
    while True:
        try:
            if httpx.post(server.url, json={"jsonrpc": "2.0", "id": 1, "method": "getHealth"}).json()["result"] == "ok":
                return server, time.perf_counter() - t0
        except httpx.HTTPError:
            time.sleep(0.005)


async def ready_client(url: str) -> tuple[Client, Pubkey]:
    """A funded client with its own market and oracle."""
    client = await Client.connect(url, airdrop_lamports=100 * LAMPORTS_PER_SOL)
    setup = await setup_market(client, book_capacity=4)
    return client, setup.oracle


async def send_many(client: Client, oracle: Pubkey, transactions: int) -> None:
    """``transactions`` set_oracle_price transactions, one after another, each sent and confirmed."""
    payer = client.payer.pubkey()
    for i in range(transactions):
        await client.send([ix.set_oracle_price(authority=payer, oracle=oracle, price=i + 1, conf=0, publish_time=i)])


async def throughput(url: str, transactions: int, concurrency: int) -> None:
    client, oracle = await ready_client(url)
    t0 = time.perf_counter()
    await send_many(client, oracle, transactions)
    seconds = time.perf_counter() - t0
    await client.close()
    print(f"  sequential  {transactions} tx in {seconds:.2f} s: {transactions / seconds:,.0f} tx/s "
          f"({seconds / transactions * 1e3:.2f} ms per send+confirm)")  # fmt: skip
    clients = [await ready_client(url) for _ in range(concurrency)]
    per = transactions // concurrency
    t0 = time.perf_counter()
    await asyncio.gather(*(send_many(c, o, per) for c, o in clients))
    wall = time.perf_counter() - t0
    for c, _ in clients:
        await c.close()
    print(f"  concurrent  {concurrency} clients x {per} tx in {wall:.2f} s: {concurrency * per / wall:,.0f} tx/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--transactions", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    readies, healths = [], []
    for _ in range(args.starts):
        server, health = start_server()
        server.stop()
        readies.append(server.ready_seconds)
        healths.append(health)
    print(f"start-up over {args.starts} runs (process spawn, Python imports included):")
    print(f"  to the ready line      median {statistics.median(readies) * 1e3:.0f} ms, max {max(readies) * 1e3:.0f} ms")
    print(f"  to a getHealth answer  median {statistics.median(healths) * 1e3:.0f} ms, max {max(healths) * 1e3:.0f} ms")

    with LocalnetProcess() as server:
        print(f"throughput with the SDK over loopback ({server.url}), set_oracle_price transactions:")
        asyncio.run(throughput(server.url, args.transactions, args.concurrency))


if __name__ == "__main__":
    main()
