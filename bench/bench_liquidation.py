"""Liquidation at scale: CU of one ``liquidate`` as 1 / 100 / 10,000 / all positions go, GC cost, Python decode time.

Run: python bench/bench_liquidation.py [--sizes 1000 10000 65536] [--mixed 65536]

For each size a long-only book is filled with real ``open_position``
transactions (books.py; leverage 2x-9x, so liquidation prices spread from
about 55 to 94 around an entry of 100); long-only so that "all" is
reachable at one index price.  ``--mixed`` adds a book of half longs, half
shorts (the short tree is then walked too, and stays untouched).

For every scenario the market, book, vault, oracle and cranker accounts are
restored to the filled state, the index is set just below the k-th highest
long liquidation price (so exactly k go, checked against the vectorised
finder), and one ``liquidate`` transaction is sent and measured.  The
garbage it leaves is then collected ``--gc-batch`` items (tree nodes and
position slots) per transaction, and the CU per freed item reported.

The Python row times, from the book account's bytes: zero-copy decode,
both sides' live positions, every position's exact liquidation price, and
the liquidatable set at an index price (median of 5 runs).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np
from books import fill_book
from solders.pubkey import Pubkey

from perpkit import Client
from perpkit.book import Book
from perpkit.crank import DEFAULT_GC_BATCH, collect_garbage, find_liquidatable, liquidate
from perpkit.resources import program_path
from perpkit.risk import Side
from perpkit.runtime import FEATURE_CHOICES, embedded_runtime
from perpkit.spl_token import associated_token_address

LIQUIDATE_TARGET = 60_000
GC_TARGET = 1_000
DECODE_TARGET_MS = 100.0


@dataclass
class Row:
    book: str
    wanted: int
    cut: int
    liquidate_cu: int
    rewarded: bool
    gc_items: int
    gc_txs: int
    gc_cu: int
    gc_max_tx_cu: int


def price_cutting(long_prices: np.ndarray, k: int) -> int:
    """An index price just below the k-th highest long liquidation price."""
    ordered = np.sort(long_prices)[::-1]
    return int(ordered[min(k, len(ordered)) - 1]) - 1


async def decode_time(c: Client, market: Pubkey, book_address: Pubkey, index_price: int) -> tuple[float, int]:
    """Median ms to decode the book from bytes and list every position, its liquidation price, and who goes."""
    m = await c.fetch_market(market)
    data = await c.account_data(book_address, "book")
    times, listed = [], 0
    for _ in range(5):
        t0 = time.perf_counter()
        book = Book.decode(book_address, data)
        listed = 0
        live = {side: book.live_slots(side) for side in Side}
        for side, slots in live.items():
            prices = book.liquidation_prices(side, slots, m.funding_index(side), m.params.maintenance_margin_bps)
            listed += len(prices)
        find_liquidatable(book, m, index_price, live=live)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), listed


async def scenarios(c: Client, label: str, n: int, sides: tuple[Side, ...], market_id: int, gc_batch: int,
                    decode_rows: list[tuple[str, int, float]]) -> list[Row]:  # fmt: skip
    print(f"\n{label}: filling with {n:,} positions by real transactions", file=sys.stderr)
    filled = await fill_book(c, n, capacity=n, market_id=market_id, sides=sides)
    market = filled.setup.market
    m = await c.fetch_market(market)
    cranker_token = associated_token_address(c.payer.pubkey(), m.quote_mint)
    keys = [market, m.book, m.vault, m.oracle, cranker_token]
    saved = dict(zip(keys, await c.accounts(keys), strict=True))
    book = await c.fetch_book(market)
    longs = book.live_slots(Side.LONG)
    long_prices = book.liquidation_prices(Side.LONG, longs, m.funding_index(Side.LONG),
                                          m.params.maintenance_margin_bps)  # fmt: skip
    ms, listed = await decode_time(c, market, m.book, price_cutting(long_prices, 100))
    decode_rows.append((label, listed, ms))
    rows = []
    for wanted in dict.fromkeys(k for k in (1, 100, 10_000, len(longs)) if k <= len(longs)):
        for key, account in saved.items():
            assert account is not None
            await c.set_account(key, account)
        price = price_cutting(long_prices, wanted)
        await c.set_oracle_price(m.oracle, price=price)
        expect = find_liquidatable(book, await c.fetch_market(market), price)
        done = await liquidate(c, market, simulate_first=False)
        assert done is not None
        assert done.batch.long_count == len(expect[Side.LONG]) and done.batch.short_count == len(expect[Side.SHORT])
        after = await c.fetch_book(market)
        items = after.garbage_items()
        sent = await collect_garbage(c, market, max_nodes=gc_batch, book=after)
        cus = [r.compute_units for r in sent]
        txs, gc_cu, gc_max = len(sent), sum(cus), max(cus)
        header = await c.fetch_book_header(m.book)
        assert header.garbage_count == 0 and header.counts[0] == len(longs) - done.batch.long_count
        rewarded = done.batch.cranker_reward > 0  # a token transfer CPI in the transaction
        cu = done.result.compute_units
        rows.append(Row(label, wanted, done.batch.count, cu, rewarded, items, txs, gc_cu, gc_max))
        print(f"  {wanted:>6,} wanted: {done.batch.count:,} liquidated in {done.result.compute_units:,} CU; "
              f"GC {items:,} items in {txs} tx", file=sys.stderr)  # fmt: skip
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 65_536], help="long-only book sizes")
    parser.add_argument("--mixed", type=int, nargs="*", default=[65_536], help="half-long, half-short book sizes")
    parser.add_argument("--gc-batch", type=int, default=DEFAULT_GC_BATCH, help="max_nodes per collect_garbage")
    parser.add_argument("--build", choices=["v3", "v0"], default=None, help="program build (default: the runtime's)")
    parser.add_argument("--features", choices=FEATURE_CHOICES, default="mainnet")
    args = parser.parse_args()
    build = program_path(3 if args.build == "v3" else 0) if args.build else embedded_runtime().program_path()
    print(f"runtime: {embedded_runtime().describe(args.features).split('; perps build')[0]}; program {build.name}")
    c = await Client.embedded(start_time=1_700_000_000, program=build, features=args.features)
    started = time.perf_counter()
    rows: list[Row] = []
    decode_rows: list[tuple[str, int, float]] = []
    books = [(f"{n:,} long", n, (Side.LONG,)) for n in args.sizes]
    books += [(f"{n:,} mixed", n, (Side.LONG, Side.SHORT)) for n in args.mixed]
    for i, (label, n, sides) in enumerate(books):
        rows += await scenarios(c, label, n, sides, 100 + i, args.gc_batch, decode_rows)

    print(f"\nliquidate: one transaction each (SPEC 9: <= {LIQUIDATE_TARGET:,} CU whatever the number liquidated)")
    head = ("book", "liquidated", "CU", "reward tx", "GC items", "GC txs", "CU/item", "max CU/tx")
    line = "{:<16} {:>10} {:>8} {:>9}   {:>9} {:>6} {:>8} {:>10}"
    print(line.format(*head))
    for r in rows:
        cells = (f"{r.cut:,}", f"{r.liquidate_cu:,}", "yes" if r.rewarded else "no", f"{r.gc_items:,}", r.gc_txs,
                 f"{r.gc_cu / r.gc_items:,.0f}", f"{r.gc_max_tx_cu:,}")  # fmt: skip
        print(line.format(r.book, *cells))
    worst = max(r.liquidate_cu for r in rows)
    most = max(rows, key=lambda r: r.cut)
    print(f"\nworst liquidate: {worst:,} CU ({'meets' if worst <= LIQUIDATE_TARGET else 'MISSES'} the target); "
          f"most in one transaction: {most.cut:,} positions ({most.liquidate_cu:,} CU)")  # fmt: skip
    for label in dict.fromkeys(r.book for r in rows):
        by = {r.wanted: r for r in rows if r.book == label}
        if 100 in by and 10_000 in by and by[10_000].cut < max(r.cut for r in by.values()):
            a, b = by[100], by[10_000]
            print(f"{label}: 100 -> 10,000 liquidated: {a.liquidate_cu:,} -> {b.liquidate_cu:,} CU "
                  f"({(b.liquidate_cu - a.liquidate_cu) / a.liquidate_cu:+.1%})")  # fmt: skip
    big = [r for r in rows if r.gc_items >= 10 * args.gc_batch]
    if big:
        per_item = max(r.gc_cu / r.gc_items for r in big)
        print(f"collect_garbage: worst {per_item:,.0f} CU per freed item over batches of {args.gc_batch} "
              f"(SPEC 9: <= {GC_TARGET:,}; {'meets' if per_item <= GC_TARGET else 'MISSES'})")  # fmt: skip
    print(f"\nPython, from the book's bytes: decode + list every position with its liquidation price + "
          f"find the liquidatable (SPEC 9: <= {DECODE_TARGET_MS:.0f} ms)")  # fmt: skip
    for label, listed, ms in decode_rows:
        print(f"  {label:<16} {listed:>7,} positions {ms:>7.1f} ms")
    print(f"\nbench took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    asyncio.run(main())
