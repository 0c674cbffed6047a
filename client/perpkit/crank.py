"""The liquidation crank's parts, as library calls: find, liquidate, collect garbage, clear.

``perpkit crank --once`` runs one round with them; a long-running bot is a
loop around :func:`crank_once`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import NDArray
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from perpkit import instructions as ix
from perpkit import program_errors, risk
from perpkit.accounts import Market, PositionRef, decode_users
from perpkit.backends.base import TxResult
from perpkit.book import Book
from perpkit.client import Client
from perpkit.errors import AccountNotFound, InvalidInput
from perpkit.idl import perps_idl
from perpkit.positions import project_funding
from perpkit.risk import Side
from perpkit.spl_token import associated_token_address

DEFAULT_GC_BATCH = 2_048
"""Items (tree nodes and position slots) freed per collect_garbage transaction.

bench/bench_liquidation.py measures about 47 CU per item, so a full batch
costs about 100,000 CU: inside the compute limit :func:`collect_garbage` asks for.
"""
GC_COMPUTE_LIMIT = 400_000


@dataclass(frozen=True)
class LiquidationBatch:
    """The ``LiquidationBatch`` event of one liquidate instruction."""

    market: Pubkey
    cranker: Pubkey
    slot: int
    unix_timestamp: int
    index_price: int
    """The index price: it decided which positions were liquidatable."""
    exit_price: int
    """The batch's exit price (the fill of its net size, SPEC 6): what the cut positions were valued at."""
    long_count: int
    short_count: int
    long_size: int
    short_size: int
    collateral: int
    equity: int
    cranker_reward: int
    insurance_credit: int
    insurance_paid: int
    socialized_loss: int
    pool_credit: int

    @property
    def count(self) -> int:
        return self.long_count + self.short_count


def decode_batches(logs: list[str]) -> list[LiquidationBatch]:
    """``LiquidationBatch`` events in a transaction's logs (the IDL's event coder)."""
    return [
        LiquidationBatch(**{f.name: event.data[f.name] for f in fields(LiquidationBatch)})
        for event in perps_idl().event_coder.parse_logs(logs)
        if event.name == "LiquidationBatch"
    ]


def find_liquidatable(
    book: Book, market: Market, index_price: int, live: dict[int, NDArray[np.uint32]] | None = None
) -> dict[int, NDArray[np.uint32]]:
    """Live positions per side (``Side.LONG``/``Side.SHORT``) that ``liquidate`` would cut at ``index_price``.

    Vectorised over the whole book: the funding-free keys are compared with
    each side's threshold as two 64-bit words.  ``market`` should have its
    funding brought forward (``project_funding``) to when the liquidation runs.
    ``live`` may give each side's live slots (``book.live_slots``) when the caller has them already.
    """
    found: dict[int, NDArray[np.uint32]] = {}
    for side in Side:
        slots = book.live_slots(side) if live is None else live[side]
        threshold = risk.threshold(side, index_price, market.funding_index(side), market.params.maintenance_margin_bps)
        found[side] = slots[book.liquidatable(side, slots, threshold)]
    return found


@dataclass(frozen=True)
class Liquidation:
    """What a liquidate transaction did."""

    result: TxResult
    batch: LiquidationBatch


async def liquidate(
    client: Client,
    market: Pubkey,
    *,
    cranker: Keypair | None = None,
    cranker_token: Pubkey | None = None,
    simulate_first: bool = True,
) -> Liquidation | None:
    """Liquidate everything past its liquidation price in one instruction; None when there is nothing.

    The reward goes to ``cranker_token`` (default: the cranker's associated
    token account for the market's quote mint, which must exist).
    """
    signer = cranker or client.payer
    m = await client.fetch_market(market)
    target = cranker_token or associated_token_address(signer.pubkey(), m.quote_mint)
    if await client.account(target, data_slice=(0, 0)) is None:
        raise AccountNotFound(target, "the cranker's token account for the reward (create it, or name another)")
    instruction = ix.liquidate(cranker=signer.pubkey(), market=market, book=m.book, oracle=m.oracle, vault=m.vault,
                               cranker_token=target, program_id=client.program_id)  # fmt: skip
    try:
        if simulate_first:
            await client.simulate([instruction], [signer], compute_unit_limit=1_400_000)
        result = await client.send([instruction], [signer], compute_unit_limit=1_400_000)
    except program_errors.NothingToLiquidate:
        return None
    (batch,) = decode_batches(result.logs)
    return Liquidation(result, batch)


async def collect_garbage(
    client: Client, market: Pubkey, *, max_nodes: int = DEFAULT_GC_BATCH, book: Book | None = None
) -> list[TxResult]:
    """Free the garbage of past liquidations, ``max_nodes`` items a transaction; the transactions sent.

    The items are counted once, from ``book`` (fetched when not given), so
    the book account is read once however many transactions it takes.
    """
    if not 1 <= max_nodes < 2**32:
        raise InvalidInput(f"max_nodes must be between 1 and 2**32 - 1, got {max_nodes}")
    book = book or await client.fetch_book(market)
    gc = ix.collect_garbage(market=market, book=book.header.address, max_nodes=max_nodes, program_id=client.program_id)
    transactions = -(-book.garbage_items() // max_nodes)
    return [await client.send([gc], compute_unit_limit=GC_COMPUTE_LIMIT) for _ in range(transactions)]


async def clear_liquidated(
    client: Client, market: Pubkey, *, book: Book | None = None
) -> list[tuple[Pubkey, PositionRef]]:
    """Clear every user's references to liquidated positions; the (user, reference) pairs cleared.

    A reference names its position by slot and generation, so a user holding a stale reference and a
    live one to the same reused slot is cleared of the stale one only.  ``book`` may be read before or
    after garbage collection: a collected slot and a cut one are both no longer live.  A reference that
    somebody else cleared first (another cranker) is not an error.
    """
    book = book or await client.fetch_book(market)
    live = book.live_mask()
    book_address = book.header.address
    users = await client.program_accounts(account_type="User", memcmp=[(8, bytes(market))])
    table = decode_users([(address, account.data) for address, account in users])
    owners, ref_slots, ref_generations = table.open_refs()
    in_book = np.flatnonzero(ref_slots < book.header.capacity)
    live_ref = np.zeros(len(ref_slots), dtype=bool)
    held = ref_slots[in_book]
    live_ref[in_book] = (book.slots["generation"][held] == ref_generations[in_book]) & live[held]
    cleared = []
    for i in np.flatnonzero(~live_ref).tolist():
        address = table.addresses[int(owners[i])]
        ref = PositionRef(int(ref_slots[i]), int(ref_generations[i]))
        clear = ix.clear_position(market=market, user=address, book=book_address, position=ref,
                                  program_id=client.program_id)  # fmt: skip
        try:
            await client.send([clear])
        except program_errors.PositionNotFound:
            continue  # cleared by somebody else since the read
        cleared.append((address, ref))
    return cleared


@dataclass(frozen=True)
class CrankRound:
    liquidation: Liquidation | None
    garbage_collection: list[TxResult]
    cleared: list[tuple[Pubkey, PositionRef]]


async def crank_once(client: Client, market: Pubkey, *, cranker_token: Pubkey | None = None) -> CrankRound:
    """One round: liquidate (simulated first; skipped when nothing is liquidatable), collect, clear."""
    liquidation = await liquidate(client, market, cranker_token=cranker_token)
    book = await client.fetch_book(market)  # one read of the book serves both
    gc = await collect_garbage(client, market, book=book)
    cleared = await clear_liquidated(client, market, book=book)
    return CrankRound(liquidation, gc, cleared)


@dataclass(frozen=True)
class BatchForecast:
    """The model's prediction of one ``liquidate``: the slots cut per side and where the value goes."""

    cut: dict[int, NDArray[np.uint32]]
    exit_price: int
    """Where the batch leaves (SPEC 6): the fill of its net size (the mark when nothing is cut)."""
    equity: int
    collateral: int
    payout: risk.Payout
    market: Market

    @property
    def slots(self) -> set[int]:
        return {int(s) for slots in self.cut.values() for s in slots}


def expected_batch(book: Book, market: Market, index_price: int, now: int) -> BatchForecast:
    """What a liquidate at ``now`` and ``index_price`` would do, by the reference model (SPEC 6)."""
    m = project_funding(market, now)
    cut = find_liquidatable(book, m, index_price)
    sums = {side: risk.Sums.of([book.terms(int(s)) for s in slots]) for side, slots in cut.items()}
    exit_price = risk.batch_exit_price(index_price, m.skew, sums[Side.LONG].size, sums[Side.SHORT].size,
                                       m.params.skew_scale)  # fmt: skip
    equity = 0
    collateral = 0
    for side, side_sums in sums.items():
        collateral += side_sums.collateral
        if side_sums.count:
            equity += risk.batch_equity(side, side_sums, exit_price, m.funding_index(side))
    payout = risk.batch_payout(equity, collateral, m.pool_balance, m.insurance_balance,
                               m.params.liquidation_reward_bps)  # fmt: skip
    return BatchForecast(cut, exit_price, equity, collateral, payout, m)
