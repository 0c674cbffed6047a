"""Figures for the foundation: runtime start-up and the CU of each instruction, and of each oracle kind's read.

CU include the PDA bump searches, which depend on the addresses: the payer is
fixed so the figures reproduce.

Run: python bench/bench_foundation.py [--build v0|v3] [--features mainnet|all]
(default: the build the installed runtime runs, on the mainnet feature set)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from perpkit import Client, MarketParams, book_account_size, pda
from perpkit import instructions as ix
from perpkit.idl import perps_idl
from perpkit.oracles import OracleSource
from perpkit.pyth import FEED_IDS
from perpkit.resources import program_path
from perpkit.runtime import FEATURE_CHOICES, embedded_runtime
from perpkit.testing import PythFeed, create_mint


def options() -> argparse.Namespace:
    """The bench's options: which build of the program, which feature set."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", choices=["v3", "v0"], default=None, help="program build (default: the runtime's)")
    parser.add_argument("--features", choices=FEATURE_CHOICES, default="mainnet")
    return parser.parse_args()


async def main() -> None:
    args = options()
    build = program_path(3 if args.build == "v3" else 0) if args.build else embedded_runtime().program_path()
    print(f"runtime: {embedded_runtime().describe(args.features).split('; perps build')[0]}; program {build.name}")
    starts = []
    for _ in range(5):
        t0 = time.perf_counter()
        client = await Client.embedded(start_time=1_700_000_000, program=build, features=args.features)
        starts.append(time.perf_counter() - t0)
        await client.close()
    print(f"embedded runtime + program load: median {statistics.median(starts) * 1e3:.1f} ms over {len(starts)}")

    # A fixed payer: PDA bump searches (1,500 CU a try) depend on the addresses.
    c = await Client.embedded(
        start_time=1_700_000_000, payer=Keypair.from_seed(bytes(range(32))), program=build, features=args.features
    )
    rows: list[tuple[str, int]] = []
    payer = c.payer.pubkey()
    r = await c.send([ix.initialize_oracle(authority=payer, oracle_id=0, price=100_000_000, conf=0)])
    rows.append(("initialize_oracle", r.compute_units))
    oracle = pda.oracle_address(payer, 0)
    r = await c.send([ix.set_oracle_price(authority=payer, oracle=oracle, price=1, conf=0, publish_time=0)])
    rows.append(("set_oracle_price", r.compute_units))
    mint = await create_mint(c)
    for capacity in (1024, 65_536):
        book = Keypair()
        size = book_account_size(capacity)
        await c.send([await c.create_account_instruction(book.pubkey(), size, c.program_id)], [book])
        r = await c.send(
            [
                ix.initialize_market(
                    admin=payer, quote_mint=mint, oracle=oracle, book=book.pubkey(), market_id=capacity,
                    book_capacity=capacity, params=MarketParams(),
                )
            ]
        )  # fmt: skip
        rows.append((f"initialize_market (book {capacity:,}: {size / 2**20:.2f} MiB)", r.compute_units))

    # The same market on a Pyth PriceUpdateV2 feed (at a fixed address), and the oracle read of each kind:
    # update_funding is a market touch plus one oracle read, so the two rows differ by the read alone.
    feed = PythFeed(c, FEED_IDS["SOL/USD"], address=Keypair.from_seed(bytes([7] * 32)).pubkey())
    await feed.set_price(100_000_000)
    book = Keypair()
    await c.send([await c.create_account_instruction(book.pubkey(), book_account_size(1024), c.program_id)], [book])
    r = await c.send(
        [
            ix.initialize_market(
                admin=payer, quote_mint=mint, oracle=feed.address, book=book.pubkey(), market_id=1, book_capacity=1024,
                params=MarketParams(), oracle_source=OracleSource.pyth(feed.feed_id),
            )
        ]
    )  # fmt: skip
    rows.append(("initialize_market (book 1,024), Pyth feed", r.compute_units))
    now = await c.now()
    await c.send([ix.set_oracle_price(authority=payer, oracle=oracle, price=100_000_000, conf=0, publish_time=now)])
    for name, market in (("test oracle", c.market_address(1024)), ("Pyth PriceUpdateV2", c.market_address(1))):
        r = await c.send([ix.update_funding(market=market, oracle=await _oracle_of(c, market))])
        rows.append((f"update_funding, {name}", r.compute_units))
    print(f"\n{'instruction':<48} {'CU':>8}")
    for name, cu in rows:
        print(f"{name:<48} {cu:>8,}")
    print(f"\nprogram id {perps_idl().program_id}")
    await c.close()


async def _oracle_of(c: Client, market: Pubkey) -> Pubkey:
    return (await c.fetch_market(market)).oracle


if __name__ == "__main__":
    asyncio.run(main())
