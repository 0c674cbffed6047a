"""Building big books with real transactions, for the benchmarks.

``fill_book`` opens ``n`` positions through ``open_position`` itself. It
uses 2,048-odd traders (each holds at most 32), batches up to 16 opens per
transaction, alternates longs and shorts (by default) to keep the skew near zero, and
spreads sizes and leverage so the keys are varied and the trees are
realistic.
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from perpkit import Client, MarketParams, spl_token
from perpkit import instructions as ix
from perpkit.risk import U64_MAX, Side
from perpkit.testing import MarketSetup, create_token_account, mint_to, setup_market

UNIT = 10**6
PER_USER = 32
PER_TX = 16


@dataclass
class FilledBook:
    setup: MarketSetup
    book: Pubkey
    traders: list[Keypair]
    opened: int


def progress(label: str, done: int, total: int, started: float) -> None:
    rate = done / max(time.perf_counter() - started, 1e-9)
    sys.stderr.write(f"\r  {label}: {done:,}/{total:,} ({rate:,.0f}/s)   ")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


async def fill_book(
    c: Client,
    n: int,
    *,
    capacity: int,
    price: int = 100 * UNIT,
    leverage: tuple[float, float] = (2.0, 9.0),
    seed: int = 7,
    market_id: int = 0,
    sides: tuple[Side, ...] = (Side.LONG, Side.SHORT),
    per_user: int = PER_USER,
) -> FilledBook:
    """A market on a book of ``capacity`` holding ``n`` positions opened by real transactions.

    Sides are taken in turn from ``sides``: ``(Side.LONG, Side.SHORT)`` alternates
    longs and shorts, ``(Side.LONG,)`` makes a long-only book.  Each trader holds ``per_user``
    positions (at most 32), so there are ``ceil(n / per_user)`` traders.
    """
    rng = random.Random(seed)
    params = MarketParams(skew_scale=10**9 * UNIT, price_band_bps=10_000, max_staleness_s=86_400)
    setup = await setup_market(c, price=price, params=params, book_capacity=capacity, market_id=market_id)
    admin_token = await create_token_account(c, setup.quote_mint, c.payer.pubkey())
    await mint_to(c, setup.quote_mint, admin_token, 10**15)
    await c.fund_pool(setup.market, 10**15)
    market = await c.fetch_market(setup.market)
    users = -(-n // per_user)
    traders: list[Keypair] = []
    started = time.perf_counter()
    for i in range(users):
        trader = Keypair()
        await c.airdrop(trader.pubkey(), 10**9)
        ata = spl_token.associated_token_address(trader.pubkey(), setup.quote_mint)
        deposit = 10**12
        await c.send(
            [
                spl_token.create_associated_account_instruction(
                    payer=c.payer.pubkey(), owner=trader.pubkey(), mint=setup.quote_mint
                ),
                spl_token.mint_to_instruction(
                    mint=setup.quote_mint, destination=ata, authority=c.payer.pubkey(), amount=deposit
                ),
                ix.create_user(owner=trader.pubkey(), market=setup.market, program_id=c.program_id),
                ix.deposit(
                    owner=trader.pubkey(),
                    market=setup.market,
                    owner_token=ata,
                    vault=market.vault,
                    amount=deposit,
                    program_id=c.program_id,
                ),
            ],
            [trader],
        )
        traders.append(trader)
        if (i + 1) % 64 == 0 or i + 1 == users:
            progress("traders", i + 1, users, started)
    opened = 0
    started = time.perf_counter()
    while opened < n:
        trader = traders[opened // per_user]
        batch = []
        for _ in range(min(PER_TX, n - opened, per_user - opened % per_user)):
            side = sides[opened % len(sides)]
            size = rng.randint(1, 50) * UNIT + rng.randint(0, UNIT)
            notional = size * price // UNIT
            collateral = int(notional / rng.uniform(*leverage)) + 1
            batch.append(
                ix.open_position(
                    owner=trader.pubkey(),
                    market=setup.market,
                    book=market.book,
                    oracle=setup.oracle,
                    side=side,
                    size=size,
                    collateral=collateral,
                    worst_price=U64_MAX if side == Side.LONG else 0,
                    program_id=c.program_id,
                )
            )
            opened += 1
        await c.send(batch, [trader], compute_unit_limit=1_400_000)
        if opened % 1024 == 0 or opened == n:
            progress("positions", opened, n, started)
    return FilledBook(setup, market.book, traders, opened)
