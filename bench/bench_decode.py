"""Vectorised reads (issue 10): user decode per account, liquidation prices, and a full book's risk read.

Run: python bench/bench_decode.py [--positions 65536] [--runs 9]

The book is real: ``books.py`` fills a market with ``--positions`` positions
(half long, half short; 32 per trader, so 65,536 positions make 2,048 user
accounts) by ``open_position`` transactions on the embedded chain, which
takes about 80 s at 65,536.  The timings then start from the accounts'
bytes, read once: the user accounts from ``getProgramAccounts`` and the book
account.  Each row is the median of ``--runs`` runs; nothing is asserted.

- users: ``decode_user`` (the IDL's construct coder) on each account, against
  ``decode_users`` (one numpy pass over all of them);
- liquidation prices of every live position: the object-array path on Python
  integers (``liquidation_prices_reference``, what ``Book.liquidation_prices``
  was) against the exact word-arithmetic one;
- the full book: decode, both sides' live slots, every liquidation price and
  the liquidatable set at an index price (as ``bench_liquidation.py`` times it),
  old against new.  With an empty garbage list the live slots are the open
  slots (no tree walk); the row "awaiting collection" walks the trees, as
  after a liquidation before ``collect_garbage``.  Then the health of every
  position (``Book.health_codes``).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from books import fill_book

from perpkit import Client
from perpkit.accounts import account_size, decode_user, decode_users
from perpkit.book import Book, liquidation_prices_reference
from perpkit.crank import find_liquidatable
from perpkit.positions import project_funding
from perpkit.risk import Side

USER_TARGET_US = 20.0
BOOK_TARGET_MS = 10.0


def median_ms(fn: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--positions", type=int, default=65_536, help="positions in the book (32 per user)")
    parser.add_argument("--runs", type=int, default=9, help="runs per measurement (the median is printed)")
    args = parser.parse_args()
    n, runs = args.positions, args.runs

    c = await Client.embedded(start_time=1_700_000_000)
    started = time.perf_counter()
    filled = await fill_book(c, n, capacity=n)
    fill_s = time.perf_counter() - started
    market_address = filled.setup.market
    m = project_funding(await c.fetch_market(market_address), await c.now())
    mm = m.params.maintenance_margin_bps
    found = await c.program_accounts(account_type="User", memcmp=[(8, bytes(market_address))])
    users = [(address, bytes(account.data)) for address, account in found]
    book_data = await c.account_data(filled.book, "book")
    book = Book.decode(filled.book, book_data)
    live = book.live_by_side()
    assert book.header.garbage == 0
    count = sum(len(s) for s in live.values())
    # an index price that liquidates the 100 most exposed longs (as bench_liquidation.py picks it)
    long_prices = np.sort(book.liquidation_prices(Side.LONG, live[Side.LONG], m.funding_index(Side.LONG), mm))
    index_price = int(long_prices[-min(100, len(long_prices))]) - 1

    print(f"book: real, {count:,} positions opened by open_position transactions (bench/books.py, "
          f"{fill_s:.0f} s to fill), {len(users):,} user accounts; medians of {runs} runs")  # fmt: skip

    # -- users -------------------------------------------------------------------------------------
    old_users = median_ms(lambda: [decode_user(a, d) for a, d in users], max(3, runs // 3))
    new_users = median_ms(lambda: decode_users(users), runs)
    new_refs = median_ms(lambda: decode_users(users).open_refs(), runs)
    assert decode_users(users).users() == [decode_user(a, d) for a, d in users]
    per = 1e3 / len(users)
    print(f"\nuser decode, {len(users):,} accounts of {account_size('User')} bytes (target <= {USER_TARGET_US:.0f} us)")
    print(f"  decode_user, one by one (construct)   {old_users * per:9.2f} us/account  {old_users:8.2f} ms")
    print(f"  decode_users, one numpy pass          {new_users * per:9.2f} us/account  {new_users:8.2f} ms")
    print(f"  ... and every open position ref       {new_refs * per:9.2f} us/account  {new_refs:8.2f} ms")

    # -- liquidation prices ----------------------------------------------------------------------------
    def prices_old() -> None:
        for side, slots in live.items():
            s = book.slots[slots]
            liquidation_prices_reference(side, s["key_lo"], s["key_hi"], m.funding_index(side), mm)

    def prices_new() -> None:
        for side, slots in live.items():
            book.liquidation_prices(side, slots, m.funding_index(side), mm)

    for side, slots in live.items():
        s = book.slots[slots]
        old = liquidation_prices_reference(side, s["key_lo"], s["key_hi"], m.funding_index(side), mm)
        assert (old == book.liquidation_prices(side, slots, m.funding_index(side), mm)).all()
    old_prices, new_prices = median_ms(prices_old, runs), median_ms(prices_new, runs)
    print(f"\nliquidation_prices, {count:,} positions (both sides)")
    print(f"  object arrays of Python integers      {old_prices:8.2f} ms")
    print(f"  exact 64-bit word arithmetic          {new_prices:8.2f} ms   ({old_prices / new_prices:.0f}x)")

    # -- the full book -----------------------------------------------------------------------------------
    def full_old() -> None:  # as before issue 10: two tree walks a side, prices on Python integers
        b = Book.decode(filled.book, book_data)
        for side in Side:
            s = b.slots[b.walked_slots(side)]
            liquidation_prices_reference(side, s["key_lo"], s["key_hi"], m.funding_index(side), mm)
        find_liquidatable(b, m, index_price, live={side: b.walked_slots(side) for side in Side})

    def full_new(walk: bool) -> Callable[[], None]:
        def run() -> None:
            b = Book.decode(filled.book, book_data)
            # walk: as when liquidated positions await collection and the trees must be walked
            slots = {side: b.walked_slots(side) for side in Side} if walk else b.live_by_side()
            for side, live_slots in slots.items():
                b.liquidation_prices(side, live_slots, m.funding_index(side), mm)
            find_liquidatable(b, m, index_price, live=slots)

        return run

    def health() -> None:
        for side, slots in live.items():
            book.health_codes(side, slots, index_price, m.funding_index(side), mm)

    def find() -> None:
        find_liquidatable(book, m, index_price, live=live)

    cut = find_liquidatable(book, m, index_price, live=live)
    old_full, new_full = median_ms(full_old, runs), median_ms(full_new(False), runs)
    walked_full, health_ms = median_ms(full_new(True), runs), median_ms(health, runs)
    parts = [("decode", lambda: Book.decode(filled.book, book_data)), ("live slots (open slots)", book.live_by_side),
             ("live slots (tree walk)", lambda: [book.walked_slots(side) for side in live]),
             ("liquidation prices", prices_new), ("liquidatable set", find)]  # fmt: skip
    print(f"\nfull book: decode + live slots + liquidation prices + liquidatable set, {count:,} positions "
          f"({sum(len(v) for v in cut.values())} liquidatable at {index_price / 1e6:.6f}; "
          f"target <= {BOOK_TARGET_MS:.0f} ms)")  # fmt: skip
    print(f"  before (tree walks, object-array prices)           {old_full:8.2f} ms")
    print(f"  after (garbage list empty: live = open slots)      {new_full:8.2f} ms")
    print(f"  after, liquidated positions awaiting collection    {walked_full:8.2f} ms  (trees walked)")
    for label, fn in parts:
        print(f"    {label:<24} {median_ms(fn, runs):8.2f} ms")
    print(f"  health of every position (Book.health_codes)       {health_ms:8.2f} ms")
    print(f"\n(filling took {fill_s:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
