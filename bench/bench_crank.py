"""The crank at scale over JSON-RPC, against issue 13's targets.

For each scenario a 65,536-slot book is filled on the embedded runtime by real
``open_position`` transactions (long-only, so one price takes every position),
its accounts are written as ``--account-dir`` files and a ``perpkit localnet``
starts on them. Then one ``perpkit.crank.crank_round`` runs over JSON-RPC after
a crash: it liquidates, collects the garbage and clears the users'
references. The bench prints transactions, compute units and wall time for
each part, then measures an idle round (nothing to do): calls and bytes the
server answered (``perpkit_getStats``).

Run: python bench/bench_crank.py [--positions 65536] [--single-position-users]
(``--quick``: 4,096 positions, to try it out)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from perpkit import Client
from perpkit.backends.base import TxResult
from perpkit.crank import Cranking, crank_round
from perpkit.idl import PROGRAM_ID
from perpkit.localnet.accounts import write_account_file
from perpkit.localnet.process import LocalnetProcess
from perpkit.risk import Side
from perpkit.spl_token import TOKEN_PROGRAM_ID

sys.path.insert(0, str(Path(__file__).resolve().parent))
from books import UNIT, fill_book

CAPACITY = 65_536


def stats(url: str) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": "perpkit_getStats"}
    result: dict[str, Any] = httpx.post(url, json=body, timeout=30).json()["result"]
    return result


async def scenario(positions: int, per_user: int) -> None:
    users = -(-positions // per_user)
    print(f"\n{positions:,} positions held by {users:,} users ({per_user} each), book of {CAPACITY:,} slots")
    t0 = time.perf_counter()
    async with await Client.embedded() as source:
        filled = await fill_book(source, positions, capacity=CAPACITY, sides=(Side.LONG,), per_user=per_user)
        now = await source.now()
        payer = source.payer
        directory = Path(tempfile.mkdtemp(prefix="bench-crank-"))
        for owner in (PROGRAM_ID, TOKEN_PROGRAM_ID):  # market, book, oracle, users; mint, vault, token accounts
            for address, account in await source.program_accounts(owner=owner):
                write_account_file(directory / f"{address}.json", address, account)
    fill_s = time.perf_counter() - t0
    keyfile = directory.with_name(directory.name + "-payer.json")  # outside the --account-dir
    keyfile.write_text(json.dumps(list(bytes(payer))))
    print(f"  filled and dumped in {fill_s:.0f} s")
    t0 = time.perf_counter()
    args = ["--account-dir", str(directory), "--payer", str(keyfile), "--frozen-clock", "--start-time", str(now)]
    with LocalnetProcess(*args, timeout=600) as net:
        print(f"  localnet up with the files in {time.perf_counter() - t0:.1f} s")
        client = await Client.connect(net.url, payer=payer)
        try:
            await client.set_oracle_price(filled.setup.oracle, price=30 * UNIT)  # below every long's price
            state = Cranking(await client.fetch_market(filled.setup.market))
            sent: list[TxResult] = []  # every transaction the client sends from here on
            client.on_sent.append(sent.append)
            before = stats(net.url)
            t0 = time.perf_counter()
            done = await crank_round(client, state)
            wall = time.perf_counter() - t0
            after = stats(net.url)
            assert done.liquidation is not None
            liquidated = done.liquidation.batch.count
            landed = [r for r in sent if r.ok]
            txs, cu = len(landed), sum(r.compute_units for r in landed)
            gc_cu = sum(r.compute_units for r in done.garbage_collection)
            clear_txs = txs - 1 - len(done.garbage_collection)
            print(f"  liquidate: 1 transaction, {liquidated:,} positions, {done.liquidation.result.compute_units:,} CU")
            print(f"  collect_garbage: {len(done.garbage_collection)} transactions, {gc_cu:,} CU")
            clear_cu = cu - gc_cu - done.liquidation.result.compute_units
            print(f"  clear_user: {clear_txs} transactions for {len({u for u, _ in done.cleared}):,} users "
                  f"({len(done.cleared):,} references), {clear_cu:,} CU")  # fmt: skip
            calls = after["requests"] - before["requests"] - 1
            mb = (after["responseBytes"] - before["responseBytes"]) / 1e6
            print(f"  the round: {txs} transactions, {cu:,} CU, {wall:.1f} s wall; {calls:,} RPC calls, {mb:.1f} MB")
            # an idle round: nothing to liquidate, no garbage, nothing to clear
            before = stats(net.url)
            t0 = time.perf_counter()
            idle = await crank_round(client, state)
            idle_ms = (time.perf_counter() - t0) * 1e3
            after = stats(net.url)
            assert idle.liquidation is None and not idle.garbage_collection and not idle.cleared
            calls = after["requests"] - before["requests"] - 1  # the stats call itself
            kb = (after["responseBytes"] - before["responseBytes"]) / 1e3
            methods = {m: n - before["calls"].get(m, 0) for m, n in after["calls"].items()}
            methods = {m: n for m, n in methods.items() if n and m != "perpkit_getStats"}
            print(f"  idle round: {calls} RPC calls ({methods}), {kb:.1f} KB, {idle_ms:.0f} ms")
        finally:
            await client.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--positions", type=int, default=CAPACITY)
    parser.add_argument("--quick", action="store_true", help="4,096 positions")
    parser.add_argument("--single-position-users", action="store_true", help="also: one position per user")
    args = parser.parse_args()
    positions = 4_096 if args.quick else args.positions
    started = time.perf_counter()
    await scenario(positions, 32)
    if args.single_position_users:
        await scenario(positions, 1)
    print(f"\nbench took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    asyncio.run(main())
