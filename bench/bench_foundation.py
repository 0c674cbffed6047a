"""Figures for the foundation: runtime start-up and the CU of each instruction.

Run: python bench/bench_foundation.py
"""

from __future__ import annotations

import asyncio
import statistics
import time

from perpkit import Client, MarketParams, book_account_size, pda
from perpkit import instructions as ix
from perpkit.idl import perps_idl
from solders.keypair import Keypair
from solders.system_program import CreateAccountParams, create_account


async def main() -> None:
    starts = []
    for _ in range(5):
        t0 = time.perf_counter()
        client = await Client.embedded(start_time=1_700_000_000)
        starts.append(time.perf_counter() - t0)
        await client.close()
    print(f"embedded runtime + program load: median {statistics.median(starts) * 1e3:.1f} ms over {len(starts)}")

    c = await Client.embedded(start_time=1_700_000_000)
    rows: list[tuple[str, int]] = []
    payer = c.payer.pubkey()
    r = await c.send([ix.initialize_oracle(authority=payer, oracle_id=0, price=100_000_000, conf=0)])
    rows.append(("initialize_oracle", r.compute_units))
    oracle = pda.oracle_address(payer, 0)
    r = await c.send([ix.set_oracle_price(authority=payer, oracle=oracle, price=1, conf=0, publish_time=0)])
    rows.append(("set_oracle_price", r.compute_units))
    mint = await c.create_mint()
    for capacity in (1024, 65_536):
        book = Keypair()
        size = book_account_size(capacity)
        alloc = create_account(
            CreateAccountParams(
                from_pubkey=payer,
                to_pubkey=book.pubkey(),
                lamports=await c.backend.minimum_balance_for_rent_exemption(size),
                space=size,
                owner=c.program_id,
            )
        )
        await c.send([alloc], [book])
        r = await c.send(
            [
                ix.initialize_market(
                    admin=payer, quote_mint=mint, oracle=oracle, book=book.pubkey(), market_id=capacity,
                    book_capacity=capacity, params=MarketParams(),
                )
            ]
        )  # fmt: skip
        rows.append((f"initialize_market (book {capacity:,}: {size / 2**20:.2f} MiB)", r.compute_units))
    print(f"\n{'instruction':<48} {'CU':>8}")
    for name, cu in rows:
        print(f"{name:<48} {cu:>8,}")
    print(f"\nprogram id {perps_idl().program_id}")
    await c.close()


if __name__ == "__main__":
    asyncio.run(main())
