"""The embedded SDK's cost per transaction: ``Client.send`` against raw LiteSVM on pre-signed bytes.

Both run the same instruction (``set_oracle_price``, a new price each time so
every transaction is a new one) on LiteSVM runtimes set up alike.  The raw
side deserialises pre-signed transaction bytes and calls LiteSVM's
``send_transaction``; the SDK side builds, signs, sends and maps the outcome
through ``Client.send`` (the instruction itself is built beforehand on both
sides).  Printed, not asserted: the issue's target is within 1.5x.

Run: python bench/bench_send.py [--count N] [--rounds R] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import time

from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.transaction import Transaction, VersionedTransaction

from perpkit import Client, pda
from perpkit import instructions as ix
from perpkit.idl import PROGRAM_ID
from perpkit.runtime import embedded_runtime, install_program, new_litesvm

START_TIME = 1_700_000_000


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2_000, help="transactions per round (default 2,000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each side, interleaved (default 5)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the SDK side")
    return parser.parse_args()


def price_updates(payer: Keypair, count: int, first: int) -> list[Instruction]:
    oracle = pda.oracle_address(payer.pubkey(), 0)
    return [
        ix.set_oracle_price(authority=payer.pubkey(), oracle=oracle, price=first + i, conf=0, publish_time=START_TIME)
        for i in range(count)
    ]


def raw_round(count: int, first: int) -> float:
    """Median seconds per ``LiteSVM.send_transaction`` of pre-signed bytes."""
    payer = Keypair()
    svm = new_litesvm()
    install_program(svm, PROGRAM_ID, embedded_runtime().program_path())
    svm.airdrop(payer.pubkey(), 10**12)
    blockhash = svm.latest_blockhash()
    init = ix.initialize_oracle(authority=payer.pubkey(), oracle_id=0, price=1, conf=0)
    svm.send_transaction(Transaction([payer], Message([init], payer.pubkey()), blockhash))
    signed = [
        bytes(VersionedTransaction.from_legacy(Transaction([payer], Message([i], payer.pubkey()), blockhash)))
        for i in price_updates(payer, count, first)
    ]
    times = []
    for raw in signed:
        t0 = time.perf_counter()
        outcome = svm.send_transaction(VersionedTransaction.from_bytes(raw))
        times.append(time.perf_counter() - t0)
        assert not hasattr(outcome, "err"), outcome
    return statistics.median(times)


async def sdk_client() -> Client:
    client = await Client.embedded(start_time=START_TIME)
    await client.send([ix.initialize_oracle(authority=client.payer.pubkey(), oracle_id=0, price=1, conf=0)])
    return client


async def sdk_round(client: Client, instructions: list[Instruction]) -> float:
    """Median seconds per ``Client.send`` of one instruction."""
    times = []
    for instruction in instructions:
        t0 = time.perf_counter()
        await client.send([instruction])
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


async def main() -> None:
    args = options()
    print(embedded_runtime().describe())
    raw: list[float] = []
    sdk: list[float] = []
    for r in range(args.rounds):
        raw.append(raw_round(args.count, 1_000 + r * args.count))
        client = await sdk_client()
        sdk.append(await sdk_round(client, price_updates(client.payer, args.count, 1_000 + r * args.count)))
        await client.close()
    raw_us, sdk_us = statistics.median(raw) * 1e6, statistics.median(sdk) * 1e6
    print(f"set_oracle_price, {args.rounds} rounds x {args.count} transactions, median per transaction:")
    print(f"  raw LiteSVM send_transaction (pre-signed bytes): {raw_us:8.1f} us")
    print(f"  embedded Client.send:                            {sdk_us:8.1f} us")
    print(f"  overhead: {sdk_us - raw_us:.1f} us, ratio {sdk_us / raw_us:.2f}x (target <= 1.5x)")
    if args.profile:
        client = await sdk_client()
        instructions = price_updates(client.payer, args.count, 10**9)
        profiler = cProfile.Profile()
        profiler.enable()
        await sdk_round(client, instructions)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    asyncio.run(main())
