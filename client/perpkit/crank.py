"""The liquidation crank's parts, as library calls: find, liquidate, collect garbage, clear.

``perpkit crank --once`` runs one round with them; a long-running bot is a
loop around :func:`crank_once`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import NDArray
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from perpkit import instructions as ix
from perpkit import program_errors, risk
from perpkit.accounts import BookHeader, Market, PositionRef, decode_users
from perpkit.backends.base import TxResult
from perpkit.book import Book
from perpkit.client import Client
from perpkit.errors import AccountNotFound, InvalidInput
from perpkit.idl import perps_idl
from perpkit.packing import pack
from perpkit.positions import project_funding
from perpkit.risk import Side
from perpkit.spl_token import associated_token_address

DEFAULT_GC_BATCH = 2_048
"""Items (tree nodes and position slots) freed per collect_garbage transaction.

bench/bench_liquidation.py measures about 47 CU per item, so a full batch
costs about 100,000 CU: inside the compute limit :func:`collect_garbage` asks for.
"""
GC_COMPUTE_LIMIT = 400_000
LIQUIDATE_COMPUTE_LIMIT = 1_400_000
"""What a liquidation may use before it is simulated: the most a transaction may ask for."""


def compute_limit(simulated_units: int) -> int:
    """The compute limit to ask for after a simulation: 20% and 10,000 CU of headroom (the book may move
    in between), so a priority fee pays for no more than that."""
    return min(LIQUIDATE_COMPUTE_LIMIT, simulated_units * 6 // 5 + 10_000)


CLEAR_COMPUTE_PER_USER = 12_000
"""Compute units a transaction asks per ``clear_user`` in it: a user's 32 references, each checked
against the book's tree (measured in tests/test_e2e_liquidation.py)."""


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
    market: Pubkey | Market,
    *,
    cranker: Keypair | None = None,
    cranker_token: Pubkey | None = None,
    simulate_first: bool = True,
    check_token: bool = True,
    compute_unit_price: int | None = None,
) -> Liquidation | None:
    """Liquidate everything past its liquidation price in one instruction; None when there is nothing.

    The reward goes to ``cranker_token`` (default: the cranker's associated
    token account for the market's quote mint, which must exist; ``check_token=False`` skips
    checking that on every round).  Given a ``Market`` (as read before) rather than its address, no
    account is read: an idle round is one simulation.  After a simulation the transaction asks for
    the compute units the simulation used plus a margin, so a priority fee pays for no more.
    """
    signer = cranker or client.payer
    m = market if isinstance(market, Market) else await client.fetch_market(market)
    target = cranker_token or associated_token_address(signer.pubkey(), m.quote_mint)
    if check_token and await client.account(target, data_slice=(0, 0)) is None:
        raise AccountNotFound(target, "the cranker's token account for the reward (create it, or name another)")
    instruction = ix.liquidate(cranker=signer.pubkey(), market=m.address, book=m.book, oracle=m.oracle, vault=m.vault,
                               cranker_token=target, program_id=client.program_id)  # fmt: skip
    limit = LIQUIDATE_COMPUTE_LIMIT
    try:
        if simulate_first:
            simulated = await client.simulate([instruction], [signer], compute_unit_limit=limit)
            limit = compute_limit(simulated.compute_units)
        result = await client.send([instruction], [signer], compute_unit_limit=limit,
                                   compute_unit_price=compute_unit_price)  # fmt: skip
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
    client: Client,
    market: Pubkey,
    *,
    book: Book | None = None,
    between: Callable[[], Awaitable[object]] | None = None,
) -> list[tuple[Pubkey, PositionRef]]:
    """Clear every user's references to positions no longer live; the (user, reference) pairs cleared.

    One ``clear_user`` per user holding a stale reference, packed as many to a transaction as fit
    (about 20: the market and the book are named once, each user adds its key and a 14-byte
    instruction), so a book of 65,536 liquidated positions held by 2,048 users clears in about 100
    transactions.  A reference names its position by slot and generation, so a user holding a stale
    reference and a live one to the same reused slot keeps the live one.  ``book`` may be read before
    or after garbage collection: a collected slot and a cut one are both no longer live.  A user
    somebody else cleared first (another cranker) is not an error: ``clear_user`` leaves it as it is.
    ``between`` runs before each clearing transaction: a crank checks for liquidations there, so
    clearing never delays one by more than a transaction.
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
    stale: dict[Pubkey, list[PositionRef]] = {}
    for i in np.flatnonzero(~live_ref).tolist():
        address = table.addresses[int(owners[i])]
        stale.setdefault(address, []).append(PositionRef(int(ref_slots[i]), int(ref_generations[i])))
    clears = [ix.clear_user(market=market, user=address, book=book_address, program_id=client.program_id)
              for address in stale]  # fmt: skip
    cleared: list[tuple[Pubkey, PositionRef]] = []
    for group in pack(clears, client.payer.pubkey()):
        if between is not None:
            await between()
        await client.send(group, compute_unit_limit=CLEAR_COMPUTE_PER_USER * len(group))
        for instruction in group:
            user = instruction.accounts[1].pubkey
            cleared.extend((user, ref) for ref in stale[user])
    return cleared


@dataclass(frozen=True)
class CrankRound:
    liquidation: Liquidation | None
    """The round's first liquidation (``crank_round`` may make more while clearing: see its docstring)."""
    garbage_collection: list[TxResult]
    cleared: list[tuple[Pubkey, PositionRef]]


async def crank_once(client: Client, market: Pubkey, *, cranker_token: Pubkey | None = None) -> CrankRound:
    """One round: liquidate (simulated first; skipped when nothing is liquidatable), collect, clear."""
    liquidation = await liquidate(client, market, cranker_token=cranker_token)
    book = await client.fetch_book(market)  # one read of the book serves both
    gc = await collect_garbage(client, market, book=book)
    cleared = await clear_liquidated(client, market, book=book)
    return CrankRound(liquidation, gc, cleared)


async def collect_garbage_by_header(
    client: Client,
    market: Market | Pubkey,
    *,
    book: Pubkey | None = None,
    max_nodes: int = DEFAULT_GC_BATCH,
    max_transactions: int | None = None,
    on_garbage: Callable[[BookHeader], bool] | None = None,
    on_sent: Callable[[TxResult], None] | None = None,
    rpc_context: Callable[[str], AbstractAsyncContextManager[object]] | None = None,
) -> list[TxResult]:
    """Collect garbage while the book's header (a ``dataSlice`` of its first bytes, not the 8.5 MiB) says
    there is some: one header read when there is none.  The transactions sent.

    ``market``: the market as read, or its address with ``book`` its book's.  At most ``max_transactions``
    (None: no bound; the rest waits for the next call).  ``on_garbage`` is called with each header that
    shows garbage, before the transaction: False sends nothing more (a dry run, a stop).  ``on_sent`` is
    called after each transaction that landed.  Each call to the endpoint (``getAccountInfo`` for a
    header, ``sendTransaction``) runs inside ``rpc_context(method)`` when given: to time them.
    """
    if isinstance(market, Market):
        address, book = market.address, market.book
    elif book is None:
        raise InvalidInput("collect_garbage_by_header: give the market as read, or book= with its address")
    else:
        address = market
    within = rpc_context or (lambda _method: nullcontext())
    gc = ix.collect_garbage(market=address, book=book, max_nodes=max_nodes, program_id=client.program_id)
    sent: list[TxResult] = []
    while max_transactions is None or len(sent) < max_transactions:
        async with within("getAccountInfo"):
            header = await client.fetch_book_header(book)
        if not header.garbage or (on_garbage is not None and not on_garbage(header)):
            break
        async with within("sendTransaction"):
            result = await client.send([gc], compute_unit_limit=GC_COMPUTE_LIMIT)
        sent.append(result)
        if on_sent is not None:
            on_sent(result)
    return sent


@dataclass
class Cranking:
    """What a crank keeps about one market between rounds: the market as read, and whether references
    to liquidated positions may be waiting to be cleared (a liquidation since the last clearing)."""

    market: Market
    clear_pending: bool = True
    """True at start (a restart must not forget what a previous run left) and after each liquidation."""


async def crank_round(
    client: Client,
    state: Cranking,
    *,
    cranker: Keypair | None = None,
    cranker_token: Pubkey | None = None,
    compute_unit_price: int | None = None,
) -> CrankRound:
    """A round as a running crank makes it, cheapest when idle: a simulation and a header read.

    Liquidation first; garbage collection only when the header says there is garbage; clearing (which
    reads the book and the users) last, and only after a liquidation, by this crank or another: the
    market's ``positions_liquidated`` counter tells, read with the header's market only when the
    simulation or the header says something happened.
    """
    liquidations: list[Liquidation] = []

    async def liquidate_first() -> None:
        done = await liquidate(client, state.market, cranker=cranker, cranker_token=cranker_token,
                               check_token=False, compute_unit_price=compute_unit_price)  # fmt: skip
        if done is not None:
            liquidations.append(done)

    await liquidate_first()
    gc = await collect_garbage_by_header(client, state.market)
    if liquidations or gc:
        state.clear_pending = True  # another crank may have liquidated: its garbage tells
    cleared: list[tuple[Pubkey, PositionRef]] = []
    if state.clear_pending:
        # the lowest priority: a liquidation check before each clearing transaction
        cleared = await clear_liquidated(client, state.market.address, between=liquidate_first)
        state.clear_pending = len(liquidations) > 1  # liquidated meanwhile: their references wait for the next round
        if state.clear_pending:
            gc += await collect_garbage_by_header(client, state.market)
    liquidation = liquidations[0] if liquidations else None
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
