"""CU of open_position and close_position on an empty book and on a full book of 65,536 positions.

Run: python bench/bench_trading.py [--capacity 65536]
The full book is built with real transactions (see books.py); it takes a
minute or two and prints progress.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from books import UNIT, fill_book
from solders.keypair import Keypair

from perpkit import Client
from perpkit import instructions as ix
from perpkit.accounts import PositionRef
from perpkit.resources import program_path
from perpkit.risk import U64_MAX, Side
from perpkit.runtime import FEATURE_CHOICES, embedded_runtime
from perpkit.spl_token import associated_token_address
from perpkit.testing import create_token_account, mint_to

TARGET = 40_000


async def open_close(c: Client, market_id: int, n: int, capacity: int) -> tuple[int, int, int]:
    """(CU of one more open, CU of its close, tree depth) on a book holding ``n`` positions."""
    filled = await fill_book(c, n, capacity=capacity, market_id=market_id)
    m = await c.fetch_market(filled.setup.market)
    trader = Keypair()
    await c.airdrop(trader.pubkey(), 10**9)
    await create_token_account(c, filled.setup.quote_mint, trader.pubkey())
    await mint_to(c, filled.setup.quote_mint, associated_token_address(trader.pubkey(), filled.setup.quote_mint),
                    1_000 * UNIT)  # fmt: skip
    await c.create_user(filled.setup.market, owner=trader)
    await c.deposit(filled.setup.market, 1_000 * UNIT, owner=trader)
    opened = await c.send(
        [
            ix.open_position(
                owner=trader.pubkey(),
                market=filled.setup.market,
                book=m.book,
                oracle=m.oracle,
                side=Side.LONG,
                size=3 * UNIT,
                collateral=100 * UNIT,
                worst_price=U64_MAX,
                program_id=c.program_id,
            )
        ],
        [trader],
    )
    book = await c.fetch_book(filled.setup.market)
    assert book.header.counts[0] + book.header.counts[1] == n + 1
    depth = max_depth(book)
    assert opened.return_data is not None
    ref = PositionRef.decode(opened.return_data.data)  # open_position returns (slot, generation)
    closed = await c.send(
        [
            ix.close_position(
                owner=trader.pubkey(),
                market=filled.setup.market,
                book=m.book,
                oracle=m.oracle,
                position=ref,
                worst_price=0,
                program_id=c.program_id,
            )
        ],
        [trader],
    )
    return opened.compute_units, closed.compute_units, depth


def max_depth(book: object) -> int:
    from perpkit.book import LEAF, Book

    assert isinstance(book, Book)
    deepest = 0
    for side in Side:
        frontier = [(book.header.roots[side], 0)]
        while frontier:
            ref, d = frontier.pop()
            if ref == 0:
                continue
            if ref & LEAF:
                deepest = max(deepest, d)
                continue
            node = book.nodes[ref - 1]
            frontier += [(int(node["children"][0]), d + 1), (int(node["children"][1]), d + 1)]
    return deepest


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capacity", type=int, default=65_536)
    parser.add_argument("--build", choices=["v3", "v0"], default=None, help="program build (default: the runtime's)")
    parser.add_argument("--features", choices=FEATURE_CHOICES, default="mainnet")
    args = parser.parse_args()
    build = program_path(3 if args.build == "v3" else 0) if args.build else embedded_runtime().program_path()
    print(f"runtime: {embedded_runtime().describe(args.features).split('; perps build')[0]}; program {build.name}")
    c = await Client.embedded(start_time=1_700_000_000, program=build, features=args.features)
    rows = []
    for label, n in (("empty book", 0), (f"book of {args.capacity - 1:,} -> {args.capacity:,}", args.capacity - 1)):
        t0 = time.perf_counter()
        open_cu, close_cu, depth = await open_close(c, len(rows) + 1, n, args.capacity)
        rows.append((label, open_cu, close_cu, depth, time.perf_counter() - t0))
    print(f"\n{'book':<34} {'open CU':>9} {'close CU':>9} {'depth':>6}   (SPEC 9 target: <= {TARGET:,} CU)")
    for label, open_cu, close_cu, depth, _ in rows:
        print(f"{label:<34} {open_cu:>9,} {close_cu:>9,} {depth:>6}")
    worst = max(max(r[1], r[2]) for r in rows)
    print(f"\nworst: {worst:,} CU ({'meets' if worst <= TARGET else 'MISSES'} the target); "
          f"built the full book in {rows[-1][4]:.0f} s")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
