"""A market as the client works with it: ``await client.market(address)``.

The handle knows the accounts the market is bound to for life (book, oracle,
vault, quote mint), read once, so building an instruction never reads the
chain.  Every sending method has an instruction-builder twin beside it
(``open_position`` / ``open_position_ix``), as driftpy does, for callers who
batch, simulate or sign elsewhere.  Reads are sized to the need: a position
is one ``dataSlice`` of the book, the whole book only when asked for.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from perpkit import instructions as ix
from perpkit import pda, program_errors, spl_token
from perpkit.accounts import Market, MarketParams, PositionRef, User, decode_market, decode_user
from perpkit.backends.base import TxResult, clock_from_sysvar
from perpkit.book import Book, decode_slot, join_i128, slot_slice
from perpkit.errors import AccountNotFound, InvalidInput, TransactionFailed
from perpkit.positions import Position, Side, project_funding
from perpkit.risk import U64_MAX, params_problems

if TYPE_CHECKING:
    from perpkit.client import Client
    from perpkit.crank import Liquidation

PositionLike = Position | PositionRef


def position_ref(position: PositionLike) -> PositionRef:
    """The (slot, generation) reference of a position or a reference."""
    if isinstance(position, Position):
        return PositionRef(position.slot, position.generation)
    if isinstance(position, PositionRef):
        return position
    raise InvalidInput(f"a position is named by a Position or a PositionRef (slot and generation), got {position!r}")


@contextlib.contextmanager
def explain_params(params: MarketParams, oi_long: int = 0, oi_short: int = 0) -> Iterator[None]:
    """Add the reasons (``risk.params_problems``) to the program's ``InvalidMarketParams``."""
    try:
        yield
    except program_errors.InvalidMarketParams as exc:
        for problem in params_problems(params.to_idl(), oi_long, oi_short):
            exc.add_note(problem)
        raise


@dataclass(frozen=True)
class MarketAccounts:
    """The accounts a market is bound to: all for life but a Pyth market's oracle (``set_market_oracle``)."""

    book: Pubkey
    oracle: Pubkey
    vault: Pubkey
    quote_mint: Pubkey


class MarketHandle:
    """Trading, admin and reads of one market, through a client.

    ``state`` is the market account as last read (``refresh()`` reads it
    again, and rebinds ``accounts``: the admin may re-point a Pyth market's
    oracle, after which instructions naming the old one fail with
    ``InvalidAccountAddress (account: oracle)`` until a refresh).
    """

    def __init__(self, client: Client, address: Pubkey, state: Market) -> None:
        self.client = client
        self.address = address
        self.state = state
        self.accounts = MarketAccounts(state.book, state.oracle, state.vault, state.quote_mint)

    def __repr__(self) -> str:
        return f"MarketHandle({self.address}, book {self.accounts.book}, oracle {self.accounts.oracle})"

    @property
    def program_id(self) -> Pubkey:
        return self.client.program_id

    def _signer(self, keypair: Keypair | None) -> Keypair:
        return keypair or self.client.payer

    def user_address(self, owner: Pubkey | None = None) -> Pubkey:
        return pda.user_address(self.address, owner or self.client.payer.pubkey(), self.program_id)

    def _token(self, owner: Pubkey, given: Pubkey | None) -> Pubkey:
        return given or spl_token.associated_token_address(owner, self.accounts.quote_mint)

    # -- reads -------------------------------------------------------------------------
    async def refresh(self) -> Market:
        """Read the market account again (``state``) and rebind ``accounts``."""
        self.state = decode_market(self.address, await self.client.account_data(self.address, "market"))
        s = self.state
        self.accounts = MarketAccounts(s.book, s.oracle, s.vault, s.quote_mint)
        return self.state

    async def book(self) -> Book:
        """The whole book (8.5 MiB at 65,536 slots): zero-copy numpy views."""
        return Book.decode(self.accounts.book, await self.client.account_data(self.accounts.book, "book"))

    async def slot(self, slot: int) -> Any:
        """One position slot of the book (a numpy record), read as a ``dataSlice``."""
        return decode_slot(await self.client.account_data(self.accounts.book, "book", data_slice=slot_slice(slot)))

    async def user(self, owner: Pubkey | None = None) -> User:
        address = self.user_address(owner)
        return decode_user(address, await self.client.account_data(address, "user account"))

    async def _state_now(self) -> Market:
        """The market with funding brought up to the cluster's now: market and clock in one read."""
        from solders.sysvar import CLOCK

        market_account, clock = await self.client.accounts([self.address, CLOCK])
        if market_account is None:
            raise AccountNotFound(self.address, "market")
        if clock is None:
            raise AccountNotFound(CLOCK, "Clock sysvar")
        self.state = decode_market(self.address, bytes(market_account.data))
        return project_funding(self.state, clock_from_sysvar(bytes(clock.data)).unix_timestamp)

    async def position(self, position: PositionLike, *, owner: Pubkey | None = None) -> Position:
        """A position from its slot alone (one ``dataSlice``), funding projected to now.

        Whether it has been liquidated needs the trees: ``positions()`` reads
        the book for that; here a slot whose generation moved on is reported
        liquidated (it was collected and reused)."""
        ref = position_ref(position)
        m = await self._state_now()
        s = await self.slot(ref.slot)
        found = slot_position(m, ref.slot, s, liquidated=False, owner=owner)
        if found.generation != ref.generation:
            found = replace(found, generation=ref.generation, liquidated=True)
        return found

    async def positions(self, owner: Pubkey | None = None) -> list[Position]:
        """Every open or liquidated-but-uncleared position, or one owner's: reads the whole book."""
        return await self.client.positions(self.address, owner)

    # -- users and collateral -------------------------------------------------------------
    def create_user_ix(self, owner: Pubkey) -> Instruction:
        return ix.create_user(owner=owner, market=self.address, program_id=self.program_id)

    async def create_user(self, owner: Keypair | None = None) -> Pubkey:
        """The owner's user account in this market (created; the owner pays rent)."""
        signer = self._signer(owner)
        await self.client.send([self.create_user_ix(signer.pubkey())], [signer])
        return self.user_address(signer.pubkey())

    def deposit_ix(self, owner: Pubkey, amount: int, token_account: Pubkey | None = None) -> Instruction:
        return ix.deposit(owner=owner, market=self.address, owner_token=self._token(owner, token_account),
                          vault=self.accounts.vault, amount=amount, program_id=self.program_id)  # fmt: skip

    async def deposit(
        self, amount: int, *, owner: Keypair | None = None, token_account: Pubkey | None = None
    ) -> TxResult:
        """Move ``amount`` quote atoms from the owner's token account (default: its ATA) to free collateral."""
        signer = self._signer(owner)
        return await self.client.send([self.deposit_ix(signer.pubkey(), amount, token_account)], [signer])

    def withdraw_ix(self, owner: Pubkey, amount: int, token_account: Pubkey | None = None) -> Instruction:
        return ix.withdraw(owner=owner, market=self.address, owner_token=self._token(owner, token_account),
                           vault=self.accounts.vault, amount=amount, program_id=self.program_id)  # fmt: skip

    async def withdraw(
        self, amount: int, *, owner: Keypair | None = None, token_account: Pubkey | None = None
    ) -> TxResult:
        """Move ``amount`` of free collateral back to the owner's token account (default: its ATA)."""
        signer = self._signer(owner)
        return await self.client.send([self.withdraw_ix(signer.pubkey(), amount, token_account)], [signer])

    # -- trading ----------------------------------------------------------------------------
    def open_position_ix(
        self, owner: Pubkey, side: int, size: int, collateral: int, *, worst_price: int | None = None
    ) -> Instruction:
        """``open_position``; ``worst_price`` defaults to no bound (U64_MAX for a long, 0 for a short)."""
        limit = worst_price if worst_price is not None else (U64_MAX if side == Side.LONG else 0)
        return ix.open_position(owner=owner, market=self.address, book=self.accounts.book,
                                oracle=self.accounts.oracle, side=int(side), size=size, collateral=collateral,
                                worst_price=limit, program_id=self.program_id)  # fmt: skip

    async def open_position(
        self,
        side: int,
        size: int,
        collateral: int,
        *,
        worst_price: int | None = None,
        owner: Keypair | None = None,
    ) -> Position:
        """Open a position and return it, read from its slot (the return data names the slot).

        ``side`` is ``Side.LONG``/``Side.SHORT``; ``size`` in base atoms,
        ``collateral`` in quote atoms; ``worst_price`` bounds the fill price."""
        signer = self._signer(owner)
        instruction = self.open_position_ix(signer.pubkey(), side, size, collateral, worst_price=worst_price)
        result = await self.client.send([instruction], [signer])
        ref = self.returned_ref(result)
        return await self.position(ref, owner=signer.pubkey())

    def returned_ref(self, result: TxResult) -> PositionRef:
        """The new position's reference, from ``open_position``'s return data."""
        returned = result.return_data
        if returned is None or returned.program_id != self.program_id:
            raise TransactionFailed("open_position succeeded but returned no position reference", result.logs,
                                    result.signature)  # fmt: skip
        return PositionRef.decode(returned.data)

    def close_position_ix(self, owner: Pubkey, position: PositionLike, *, worst_price: int) -> Instruction:
        return ix.close_position(owner=owner, market=self.address, book=self.accounts.book,
                                 oracle=self.accounts.oracle, position=position_ref(position),
                                 worst_price=worst_price, program_id=self.program_id)  # fmt: skip

    async def close_position(
        self, position: PositionLike, *, worst_price: int | None = None, owner: Keypair | None = None
    ) -> TxResult:
        """Close ``position``; PnL, funding and fee settle into free collateral.

        Without ``worst_price`` (no bound), a reference costs one slot read for its side."""
        signer = self._signer(owner)
        ref = position_ref(position)  # InvalidInput for anything but a Position or a PositionRef
        if worst_price is None:
            side = position.side if isinstance(position, Position) else int((await self.slot(ref.slot))["side"])
            worst_price = U64_MAX if side == Side.SHORT else 0
        instruction = self.close_position_ix(signer.pubkey(), position, worst_price=worst_price)
        return await self.client.send([instruction], [signer])

    def add_margin_ix(self, owner: Pubkey, position: PositionLike, amount: int) -> Instruction:
        return ix.add_margin(owner=owner, market=self.address, book=self.accounts.book,
                             position=position_ref(position), amount=amount, program_id=self.program_id)  # fmt: skip

    async def add_margin(self, position: PositionLike, amount: int, *, owner: Keypair | None = None) -> TxResult:
        signer = self._signer(owner)
        return await self.client.send([self.add_margin_ix(signer.pubkey(), position, amount)], [signer])

    def remove_margin_ix(self, owner: Pubkey, position: PositionLike, amount: int) -> Instruction:
        return ix.remove_margin(owner=owner, market=self.address, book=self.accounts.book,
                                oracle=self.accounts.oracle, position=position_ref(position), amount=amount,
                                program_id=self.program_id)  # fmt: skip

    async def remove_margin(self, position: PositionLike, amount: int, *, owner: Keypair | None = None) -> TxResult:
        signer = self._signer(owner)
        return await self.client.send([self.remove_margin_ix(signer.pubkey(), position, amount)], [signer])

    def clear_position_ix(self, owner: Pubkey, position: PositionLike) -> Instruction:
        return ix.clear_position(market=self.address, user=self.user_address(owner), book=self.accounts.book,
                                 position=position_ref(position), program_id=self.program_id)  # fmt: skip

    async def clear_position(self, owner: Pubkey, position: PositionLike) -> TxResult:
        """Remove ``owner``'s reference to its liquidated ``position`` (anyone may send it)."""
        return await self.client.send([self.clear_position_ix(owner, position)])

    def clear_user_ix(self, owner: Pubkey) -> Instruction:
        return ix.clear_user(market=self.address, user=self.user_address(owner), book=self.accounts.book,
                             program_id=self.program_id)  # fmt: skip

    async def clear_user(self, owner: Pubkey) -> TxResult:
        """Drop every reference of ``owner`` to a position no longer live, in one instruction (anyone may send it)."""
        return await self.client.send([self.clear_user_ix(owner)])

    def update_funding_ix(self) -> Instruction:
        return ix.update_funding(market=self.address, oracle=self.accounts.oracle, program_id=self.program_id)

    async def update_funding(self) -> TxResult:
        """Permissionless: read the oracle and bring funding up to date."""
        return await self.client.send([self.update_funding_ix()])

    # -- the crank's calls ---------------------------------------------------------------------
    def liquidate_ix(self, cranker: Pubkey, cranker_token: Pubkey | None = None) -> Instruction:
        """``liquidate``: the reward goes to ``cranker_token`` (default: the cranker's ATA of the quote mint)."""
        return ix.liquidate(cranker=cranker, market=self.address, book=self.accounts.book, oracle=self.accounts.oracle,
                            vault=self.accounts.vault, cranker_token=self._token(cranker, cranker_token),
                            program_id=self.program_id)  # fmt: skip

    async def liquidate(
        self, *, cranker: Keypair | None = None, cranker_token: Pubkey | None = None, simulate_first: bool = True
    ) -> Liquidation | None:
        """Liquidate everything past its liquidation price in one instruction (``perpkit.crank.liquidate``)."""
        from perpkit.crank import liquidate

        return await liquidate(
            self.client, self.address, cranker=cranker, cranker_token=cranker_token, simulate_first=simulate_first
        )

    def collect_garbage_ix(self, max_nodes: int) -> Instruction:
        return ix.collect_garbage(market=self.address, book=self.accounts.book, max_nodes=max_nodes,
                                  program_id=self.program_id)  # fmt: skip

    async def collect_garbage(self, *, max_nodes: int | None = None) -> list[TxResult]:
        """Free the garbage of past liquidations, in bounded transactions (``perpkit.crank.collect_garbage``)."""
        from perpkit.crank import DEFAULT_GC_BATCH, collect_garbage

        return await collect_garbage(self.client, self.address, max_nodes=max_nodes or DEFAULT_GC_BATCH)

    async def clear_liquidated(self) -> list[tuple[Pubkey, PositionRef]]:
        """Clear every user's references to liquidated positions, packed ``clear_user`` transactions
        (``perpkit.crank.clear_liquidated``)."""
        from perpkit.crank import clear_liquidated

        return await clear_liquidated(self.client, self.address)

    # -- admin -------------------------------------------------------------------------------
    def fund_ix(self, admin: Pubkey, amount: int, *, pool: bool, token_account: Pubkey | None = None) -> Instruction:
        build = ix.fund_pool if pool else ix.fund_insurance
        return build(admin=admin, market=self.address, admin_token=self._token(admin, token_account),
                     vault=self.accounts.vault, amount=amount, program_id=self.program_id)  # fmt: skip

    async def fund_pool(
        self, amount: int, *, admin: Keypair | None = None, token_account: Pubkey | None = None
    ) -> TxResult:
        """Admin: add ``amount`` quote atoms to the pool (the counterparty of every trade)."""
        signer = self._signer(admin)
        return await self.client.send([self.fund_ix(signer.pubkey(), amount, pool=True, token_account=token_account)],
                                      [signer])  # fmt: skip

    async def fund_insurance(
        self, amount: int, *, admin: Keypair | None = None, token_account: Pubkey | None = None
    ) -> TxResult:
        """Admin: add ``amount`` quote atoms to the insurance fund."""
        signer = self._signer(admin)
        return await self.client.send([self.fund_ix(signer.pubkey(), amount, pool=False, token_account=token_account)],
                                      [signer])  # fmt: skip

    def update_params_ix(self, admin: Pubkey, params: MarketParams) -> Instruction:
        return ix.update_market_params(admin=admin, market=self.address, book=self.accounts.book,
                                       oracle=self.accounts.oracle, params=params,
                                       program_id=self.program_id)  # fmt: skip

    async def update_params(self, params: MarketParams, *, admin: Keypair | None = None) -> TxResult:
        """Admin: new risk parameters, within the program's bounds (docs/risk-engine.md, "Parameters").

        Refused with ``ParamsWouldLiquidate`` when they would make an open position liquidatable at the
        current index, and ``InvalidMarketParams`` (with the reasons as a note) when out of bounds."""
        signer = self._signer(admin)
        m = await self.refresh()
        with explain_params(params, m.oi_long, m.oi_short):
            return await self.client.send([self.update_params_ix(signer.pubkey(), params)], [signer])

    def set_market_oracle_ix(self, admin: Pubkey, oracle: Pubkey, pyth_receiver: Pubkey) -> Instruction:
        return ix.set_market_oracle(admin=admin, market=self.address, oracle=oracle, pyth_receiver=pyth_receiver,
                                    program_id=self.program_id)  # fmt: skip

    async def set_market_oracle(
        self, oracle: Pubkey, *, pyth_receiver: Pubkey | None = None, admin: Keypair | None = None
    ) -> TxResult:
        """Admin: re-point a Pyth market to another ``PriceUpdateV2`` account of its feed (``pyth_receiver``:
        the market's by default; the other Pyth receiver is the only other one allowed), then rebind."""
        signer = self._signer(admin)
        receiver = pyth_receiver if pyth_receiver is not None else self.state.pyth_receiver
        result = await self.client.send([self.set_market_oracle_ix(signer.pubkey(), oracle, receiver)], [signer])
        await self.refresh()
        return result

    def set_paused_ix(self, admin: Pubkey, paused: bool) -> Instruction:
        return ix.set_paused(admin=admin, market=self.address, paused=paused, program_id=self.program_id)

    async def set_paused(self, paused: bool, *, admin: Keypair | None = None) -> TxResult:
        signer = self._signer(admin)
        return await self.client.send([self.set_paused_ix(signer.pubkey(), paused)], [signer])


def slot_position(market: Market, slot: int, s: Any, *, liquidated: bool, owner: Pubkey | None) -> Position:
    """A ``Position`` from one decoded book slot."""
    return Position(
        market=market,
        slot=slot,
        generation=int(s["generation"]),
        side=int(s["side"]),
        size=int(s["size"]),
        collateral=int(s["collateral"]),
        entry_price=int(s["entry_price"]),
        funding_at_open=join_i128(s["funding_at_open_lo"], s["funding_at_open_hi"]),
        key=join_i128(s["key_lo"], s["key_hi"]),
        liquidated=liquidated,
        owner=owner,
    )
