"""``Client``: the async API of perpkit over any backend.

>>> async with await Client.embedded() as client:      # in-process LiteSVM
...     oracle = await client.create_oracle(price=100_000_000)
...     market = await client.create_market(quote_mint=await client.create_mint(), oracle=oracle)
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account
from solders.sysvar import CLOCK

from perpkit import instructions as ix
from perpkit import pda, program_errors, spl_token
from perpkit.accounts import (
    BookHeader,
    Market,
    MarketParams,
    Oracle,
    PositionRef,
    User,
    book_account_size,
    decode_book_header,
    decode_market,
    decode_oracle,
    decode_user,
)
from perpkit.backends.base import Backend, ChainClock, TxResult, clock_from_sysvar
from perpkit.backends.litesvm import LiteSvmBackend
from perpkit.book import Book, decode_slot, join_i128, slot_slice
from perpkit.checks import require_pubkey
from perpkit.compute_budget import set_compute_unit_limit, set_compute_unit_price
from perpkit.errors import AccountNotFound, InvalidInput, TransactionFailed
from perpkit.idl import PROGRAM_ID
from perpkit.positions import Position, Side, project_funding
from perpkit.program_errors import program_error
from perpkit.risk import params_problems
from perpkit.runtime import Features

LAMPORTS_PER_SOL = 1_000_000_000
U64_MAX = 2**64 - 1
DEFAULT_BOOK_CAPACITY = 1024

PositionLike = Position | PositionRef
"""What names a position: a :class:`Position` or a user's :class:`PositionRef` (slot and generation)."""


@contextlib.contextmanager
def _explain_params(params: MarketParams, oi_long: int = 0, oi_short: int = 0) -> Iterator[None]:
    """Add the reasons (``risk.params_problems``) to the program's ``InvalidMarketParams``."""
    try:
        yield
    except program_errors.InvalidMarketParams as exc:
        for problem in params_problems(params.to_idl(), oi_long, oi_short):
            exc.add_note(problem)
        raise


def _ref(position: PositionLike) -> PositionRef:
    if isinstance(position, Position):
        return PositionRef(position.slot, position.generation)
    if isinstance(position, PositionRef):
        return position
    raise InvalidInput(f"a position is named by a Position or a PositionRef (slot and generation), got {position!r}")


class Client:
    """Drives the perps program through a :class:`Backend`.

    ``payer`` pays fees and rent and is the default authority/admin of what it
    creates.  ``program_id`` defaults to the IDL's localnet id; pass the
    address of another deployment (devnet) to use that one.
    """

    def __init__(
        self,
        backend: Backend,
        payer: Keypair,
        *,
        program_id: Pubkey = PROGRAM_ID,
        compute_unit_limit: int | None = None,
        compute_unit_price: int | None = None,
    ) -> None:
        self.backend = backend
        self.payer = payer
        self.program_id = program_id
        self.compute_unit_limit = compute_unit_limit
        """Default compute-unit limit of every transaction (None: the runtime's default)."""
        self.compute_unit_price = compute_unit_price
        """Default priority fee in micro-lamports per compute unit (None: no priority fee)."""
        self.runtime_description = f"{backend.name} backend"
        """What runs the program: for the embedded runtime, the LiteSVM, its
        feature set and the perps build loaded (:mod:`perpkit.runtime`)."""
        self._market_accounts: dict[Pubkey, MarketAccounts] = {}
        self.after_send: list[Callable[[], Awaitable[None]]] = []
        """Called after every transaction this client sends, whether it succeeded or failed
        (the tests check SPEC 7 conservation this way)."""

    @classmethod
    async def embedded(
        cls,
        *,
        program: Path | str | bytes | None = None,
        program_id: Pubkey = PROGRAM_ID,
        payer: Keypair | None = None,
        start_time: int | None = None,
        payer_lamports: int = 1_000 * LAMPORTS_PER_SOL,
        features: Features = "mainnet",
        activate: Sequence[Pubkey] = (),
    ) -> Client:
        """A client on a fresh in-process LiteSVM with the perps program installed.

        ``program`` (a file or its bytes) defaults to the build the installed
        LiteSVM runs: ``fixtures/perps.so`` (SBPFv3) on solders >= 0.28,
        ``fixtures/perps-v0.so`` on solders 0.26; ``client.runtime_description``
        says which.  ``features`` is the feature set (``"mainnet"`` or
        ``"all"``), ``activate`` turns single features on top of it (e.g.
        :data:`perpkit.runtime.SIMD_0500`).  ``start_time`` (unix seconds)
        defaults to now.
        """
        backend = LiteSvmBackend(start_time=start_time, features=features, activate=activate)
        backend.load_program(program_id, program if program is not None else backend.runtime.program_path())
        payer = payer or Keypair()
        await backend.request_airdrop(payer.pubkey(), payer_lamports)
        client = cls(backend, payer, program_id=program_id)
        client.runtime_description = backend.runtime.describe(features)
        if program is not None:
            client.runtime_description = client.runtime_description.split("; perps build")[0] + "; program given"
        return client

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        payer: Keypair | None = None,
        program_id: Pubkey = PROGRAM_ID,
        commitment: str = "confirmed",
        airdrop_lamports: int = 0,
        compute_unit_limit: int | None = None,
        compute_unit_price: int | None = None,
    ) -> Client:
        """A client on any JSON-RPC endpoint (perpkit localnet, solana-test-validator, devnet).

        ``payer`` defaults to a new keypair; ``airdrop_lamports`` asks the
        endpoint's faucet for that much first (localnet, devnet).
        """
        from perpkit.backends.rpc import RpcBackend

        backend = await RpcBackend.connect(url, commitment=commitment)
        payer = payer or Keypair()
        if airdrop_lamports:
            await backend.request_airdrop(payer.pubkey(), airdrop_lamports)
        return cls(
            backend,
            payer,
            program_id=program_id,
            compute_unit_limit=compute_unit_limit,
            compute_unit_price=compute_unit_price,
        )

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self.backend.close()

    # -- transactions -------------------------------------------------------
    def _signers(self, signers: Sequence[Keypair]) -> list[Keypair]:
        """The payer first (it pays the fee), then each other signer once."""
        by_key = {s.pubkey(): s for s in [self.payer, *signers]}
        return list(by_key.values())

    def _with_budget(
        self, instructions: Sequence[Instruction], limit: int | None, price: int | None
    ) -> list[Instruction]:
        """Compute-budget instructions first (when asked for), then the caller's."""
        limit = self.compute_unit_limit if limit is None else limit
        price = self.compute_unit_price if price is None else price
        prefix = []
        if limit is not None:
            prefix.append(set_compute_unit_limit(limit))
        if price is not None:
            prefix.append(set_compute_unit_price(price))
        return [*prefix, *instructions]

    def _outcome(self, instructions: Sequence[Instruction], sent: int, result: TxResult) -> TxResult:
        """Map error indices back to the caller's list; raise the program's typed error on failure."""
        error = result.error
        if error is None:
            return result
        offset = sent - len(instructions)
        index = None if error.instruction_index is None else error.instruction_index - offset
        if index is not None and index >= 0:
            error = replace(error, instruction_index=index)
            result = replace(result, error=error)
        ours = (
            index is not None and 0 <= index < len(instructions) and instructions[index].program_id == self.program_id
        )
        if ours and error.custom_code is not None:
            raise program_error(error.custom_code, result.logs, result.signature, index)
        raise TransactionFailed(error.message, result.logs, result.signature)

    async def send(
        self,
        instructions: Sequence[Instruction],
        signers: Sequence[Keypair] = (),
        *,
        compute_unit_limit: int | None = None,
        compute_unit_price: int | None = None,
    ) -> TxResult:
        """Send one transaction paid by ``payer``; raise the program's typed error if it fails.

        ``compute_unit_limit``/``compute_unit_price`` override the client's
        defaults for this transaction (compute-budget instructions go first;
        error indices still refer to ``instructions``).
        """
        full = self._with_budget(instructions, compute_unit_limit, compute_unit_price)
        try:
            result = await self.backend.send_transaction(full, self._signers(signers))
            return self._outcome(instructions, len(full), result)
        finally:
            for hook in self.after_send:
                await hook()

    async def simulate(
        self,
        instructions: Sequence[Instruction],
        signers: Sequence[Keypair] = (),
        *,
        compute_unit_limit: int | None = None,
        compute_unit_price: int | None = None,
    ) -> TxResult:
        """Simulate without changing state; raise like :meth:`send` if it would fail."""
        full = self._with_budget(instructions, compute_unit_limit, compute_unit_price)
        result = await self.backend.simulate_transaction(full, self._signers(signers))
        return self._outcome(instructions, len(full), result)

    # -- time ---------------------------------------------------------------
    async def clock(self) -> ChainClock:
        return await self.backend.get_clock()

    async def now(self) -> int:
        """The cluster's unix time (Clock sysvar)."""
        return (await self.backend.get_clock()).unix_timestamp

    async def set_time(self, unix_timestamp: int) -> None:
        """Move the cluster clock to ``unix_timestamp`` (embedded runtime and localnet only).

        Raises ClockControlUnsupported, saying why, where the backend cannot.
        """
        await self.backend.set_clock(unix_timestamp)

    async def advance_time(self, seconds: int) -> int:
        """Move the clock forward by ``seconds``; return the new unix time."""
        if seconds < 0:
            raise InvalidInput(f"cannot advance time by a negative amount ({seconds} s)")
        target = await self.now() + seconds
        await self.set_time(target)
        return target

    # -- accounts -----------------------------------------------------------
    async def _data(self, address: Pubkey, what: str) -> bytes:
        account = await self.backend.get_account(require_pubkey(address, f"{what} address"))
        if account is None:
            raise AccountNotFound(address, what)
        return bytes(account.data)

    async def fetch_market(self, address: Pubkey) -> Market:
        market = decode_market(address, await self._data(address, "market"))
        self._market_accounts[address] = MarketAccounts(market.book, market.oracle, market.vault, market.quote_mint)
        return market

    async def market_accounts(self, market: Pubkey) -> MarketAccounts:
        """The accounts a market is bound to at creation (book, oracle, vault, mint): read once, then cached.

        They never change after ``initialize_market``, so trading calls need
        no read of the market to build their instructions."""
        cached = self._market_accounts.get(market)
        if cached is None:
            await self.fetch_market(market)
            cached = self._market_accounts[market]
        return cached

    async def _read_slot(self, book: Pubkey, slot: int) -> Any:
        account = await self.backend.get_account(book, data_slice=slot_slice(slot))
        if account is None:
            raise AccountNotFound(book, "book")
        return decode_slot(bytes(account.data))

    async def fetch_oracle(self, address: Pubkey) -> Oracle:
        return decode_oracle(address, await self._data(address, "oracle"))

    async def fetch_book_header(self, address: Pubkey) -> BookHeader:
        return decode_book_header(address, await self._data(address, "book"))

    async def token_balance(self, token_account: Pubkey) -> int:
        return spl_token.token_amount(await self._data(token_account, "token account"))

    async def create_account_instruction(
        self, new_account: Pubkey, space: int, owner: Pubkey, payer: Pubkey | None = None
    ) -> Instruction:
        """SystemProgram.createAccount of a rent-exempt ``space``-byte account owned by ``owner``."""
        return create_account(
            CreateAccountParams(
                from_pubkey=payer or self.payer.pubkey(),
                to_pubkey=new_account,
                lamports=await self.backend.minimum_balance_for_rent_exemption(space),
                space=space,
                owner=owner,
            )
        )

    # -- SPL token ------------------------------------------------------------
    async def create_mint(self, *, decimals: int = 6, authority: Keypair | None = None) -> Pubkey:
        """A new SPL mint (default: 6 decimals, the payer as mint authority)."""
        mint = Keypair()
        authority_key = (authority or self.payer).pubkey()
        await self.send(
            [
                await self.create_account_instruction(mint.pubkey(), spl_token.MINT_SIZE, spl_token.TOKEN_PROGRAM_ID),
                spl_token.initialize_mint_instruction(mint=mint.pubkey(), authority=authority_key, decimals=decimals),
            ],
            [mint],
        )
        return mint.pubkey()

    async def create_token_account(self, mint: Pubkey, owner: Pubkey) -> Pubkey:
        """The associated token account of ``owner`` for ``mint`` (created)."""
        await self.send(
            [spl_token.create_associated_account_instruction(payer=self.payer.pubkey(), owner=owner, mint=mint)]
        )
        return spl_token.associated_token_address(owner, mint)

    async def mint_to(self, mint: Pubkey, destination: Pubkey, amount: int, authority: Keypair | None = None) -> None:
        if amount < 0:
            raise InvalidInput(f"amount must not be negative, got {amount}")
        signer = authority or self.payer
        await self.send(
            [
                spl_token.mint_to_instruction(
                    mint=mint, destination=destination, authority=signer.pubkey(), amount=amount
                )
            ],
            [signer],
        )

    # -- oracle ---------------------------------------------------------------
    async def create_oracle(
        self, *, price: int, conf: int = 0, oracle_id: int = 0, authority: Keypair | None = None
    ) -> Pubkey:
        """A program-owned test oracle at ``price`` (6 decimals), published now."""
        signer = authority or self.payer
        await self.send(
            [
                ix.initialize_oracle(
                    authority=signer.pubkey(), oracle_id=oracle_id, price=price, conf=conf, program_id=self.program_id
                )
            ],
            [signer],
        )
        return pda.oracle_address(signer.pubkey(), oracle_id, self.program_id)

    async def set_oracle_price(
        self,
        oracle: Pubkey,
        *,
        price: int,
        conf: int = 0,
        publish_time: int | None = None,
        authority: Keypair | None = None,
    ) -> None:
        """Publish ``price`` on a test oracle (``publish_time`` defaults to the cluster's now)."""
        signer = authority or self.payer
        when = await self.now() if publish_time is None else publish_time
        await self.send(
            [
                ix.set_oracle_price(
                    authority=signer.pubkey(),
                    oracle=oracle,
                    price=price,
                    conf=conf,
                    publish_time=when,
                    program_id=self.program_id,
                )
            ],
            [signer],
        )

    # -- market ---------------------------------------------------------------
    def market_address(self, market_id: int, admin: Pubkey | None = None) -> Pubkey:
        return pda.market_address(admin or self.payer.pubkey(), market_id, self.program_id)

    async def create_market(
        self,
        *,
        quote_mint: Pubkey,
        oracle: Pubkey,
        market_id: int = 0,
        params: MarketParams | None = None,
        book_capacity: int = DEFAULT_BOOK_CAPACITY,
        admin: Keypair | None = None,
    ) -> Pubkey:
        """Allocate a book and initialise a market on it, in one transaction."""
        signer = admin or self.payer
        if book_capacity <= 0:
            raise InvalidInput(f"book_capacity must be positive, got {book_capacity}")
        book = Keypair()
        allocate = await self.create_account_instruction(
            book.pubkey(), book_account_size(book_capacity), self.program_id, payer=signer.pubkey()
        )
        init = ix.initialize_market(
            admin=signer.pubkey(),
            quote_mint=quote_mint,
            oracle=oracle,
            book=book.pubkey(),
            market_id=market_id,
            book_capacity=book_capacity,
            params=params or MarketParams(),
            program_id=self.program_id,
        )
        with _explain_params(params or MarketParams()):
            await self.send([allocate, init], [signer, book])
        return pda.market_address(signer.pubkey(), market_id, self.program_id)

    # -- users and collateral -----------------------------------------------------
    def user_address(self, market: Pubkey, owner: Pubkey | None = None) -> Pubkey:
        return pda.user_address(market, owner or self.payer.pubkey(), self.program_id)

    async def create_user(self, market: Pubkey, owner: Keypair | None = None) -> Pubkey:
        """The owner's user account in ``market`` (created; the owner pays rent)."""
        signer = owner or self.payer
        await self.send([ix.create_user(owner=signer.pubkey(), market=market, program_id=self.program_id)], [signer])
        return self.user_address(market, signer.pubkey())

    async def fetch_user(self, market: Pubkey, owner: Pubkey | None = None) -> User:
        address = self.user_address(market, owner)
        return decode_user(address, await self._data(address, "user account"))

    async def _token_account(self, market: Market | MarketAccounts, owner: Pubkey, given: Pubkey | None) -> Pubkey:
        return given or spl_token.associated_token_address(owner, market.quote_mint)

    async def deposit(
        self, market: Pubkey, amount: int, *, owner: Keypair | None = None, token_account: Pubkey | None = None
    ) -> TxResult:
        """Move ``amount`` quote atoms from the owner's token account (default: its ATA) to free collateral."""
        signer = owner or self.payer
        m = await self.market_accounts(market)
        source = await self._token_account(m, signer.pubkey(), token_account)
        instruction = ix.deposit(owner=signer.pubkey(), market=market, owner_token=source, vault=m.vault,
                                 amount=amount, program_id=self.program_id)  # fmt: skip
        return await self.send([instruction], [signer])

    async def withdraw(
        self, market: Pubkey, amount: int, *, owner: Keypair | None = None, token_account: Pubkey | None = None
    ) -> TxResult:
        """Move ``amount`` of free collateral back to the owner's token account (default: its ATA)."""
        signer = owner or self.payer
        m = await self.market_accounts(market)
        target = await self._token_account(m, signer.pubkey(), token_account)
        instruction = ix.withdraw(owner=signer.pubkey(), market=market, owner_token=target, vault=m.vault,
                                  amount=amount, program_id=self.program_id)  # fmt: skip
        return await self.send([instruction], [signer])

    # -- admin ----------------------------------------------------------------------
    async def _fund(
        self, market: Pubkey, amount: int, admin: Keypair | None, token_account: Pubkey | None, pool: bool
    ) -> TxResult:
        signer = admin or self.payer
        m = await self.market_accounts(market)
        source = await self._token_account(m, signer.pubkey(), token_account)
        build = ix.fund_pool if pool else ix.fund_insurance
        instruction = build(admin=signer.pubkey(), market=market, admin_token=source, vault=m.vault,
                            amount=amount, program_id=self.program_id)  # fmt: skip
        return await self.send([instruction], [signer])

    async def fund_pool(
        self, market: Pubkey, amount: int, *, admin: Keypair | None = None, token_account: Pubkey | None = None
    ) -> TxResult:
        """Admin: add ``amount`` quote atoms to the pool (the counterparty of every trade)."""
        return await self._fund(market, amount, admin, token_account, pool=True)

    async def fund_insurance(
        self, market: Pubkey, amount: int, *, admin: Keypair | None = None, token_account: Pubkey | None = None
    ) -> TxResult:
        """Admin: add ``amount`` quote atoms to the insurance fund."""
        return await self._fund(market, amount, admin, token_account, pool=False)

    async def update_market_params(
        self, market: Pubkey, params: MarketParams, *, admin: Keypair | None = None
    ) -> TxResult:
        """Admin: new risk parameters, within the program's bounds (docs/risk-engine.md, "Parameters").

        Refused with ``ParamsWouldLiquidate`` when they would make an open position liquidatable at the
        current index, and ``InvalidMarketParams`` (with the reasons as a note) when out of bounds."""
        signer = admin or self.payer
        m = await self.fetch_market(market)
        instruction = ix.update_market_params(admin=signer.pubkey(), market=market, book=m.book, oracle=m.oracle,
                                              params=params, program_id=self.program_id)  # fmt: skip
        with _explain_params(params, m.oi_long, m.oi_short):
            return await self.send([instruction], [signer])

    async def set_paused(self, market: Pubkey, paused: bool, *, admin: Keypair | None = None) -> TxResult:
        signer = admin or self.payer
        instruction = ix.set_paused(admin=signer.pubkey(), market=market, paused=paused, program_id=self.program_id)
        return await self.send([instruction], [signer])

    async def update_funding(self, market: Pubkey) -> TxResult:
        """Permissionless: read the oracle and bring funding up to date."""
        m = await self.market_accounts(market)
        return await self.send([ix.update_funding(market=market, oracle=m.oracle, program_id=self.program_id)])

    # -- trading --------------------------------------------------------------------
    async def open_position(
        self,
        market: Pubkey,
        side: int,
        size: int,
        collateral: int,
        *,
        worst_price: int | None = None,
        owner: Keypair | None = None,
    ) -> Position:
        """Open a position and return it.

        ``side`` is ``Side.LONG``/``Side.SHORT``; ``size`` in base atoms,
        ``collateral`` in quote atoms. ``worst_price`` bounds the fill price
        (default: none).
        """
        signer = owner or self.payer
        links = await self.market_accounts(market)
        limit = worst_price if worst_price is not None else (U64_MAX if side == Side.LONG else 0)
        instruction = ix.open_position(owner=signer.pubkey(), market=market, book=links.book, oracle=links.oracle,
                                       side=int(side), size=size, collateral=collateral, worst_price=limit,
                                       program_id=self.program_id)  # fmt: skip
        result = await self.send([instruction], [signer])
        ref = self._returned_ref(result)
        # The new position from its slot alone (one dataSlice of the book, never the whole
        # book), and the market and clock in one getMultipleAccounts to project funding.
        market_account, clock = await self.backend.get_multiple_accounts([market, CLOCK])
        if market_account is None or clock is None:
            raise AccountNotFound(market, "market")
        decoded = decode_market(market, bytes(market_account.data))
        m = project_funding(decoded, clock_from_sysvar(bytes(clock.data)).unix_timestamp)
        slot = await self._read_slot(links.book, ref.slot)
        return _slot_position(m, ref.slot, slot, liquidated=False, owner=signer.pubkey())

    def _returned_ref(self, result: TxResult) -> PositionRef:
        """The new position's reference, from ``open_position``'s return data."""
        returned = result.return_data
        if returned is None or returned.program_id != self.program_id:
            raise TransactionFailed("open_position succeeded but returned no position reference", result.logs,
                                    result.signature)  # fmt: skip
        return PositionRef.decode(returned.data)

    async def close_position(
        self, market: Pubkey, position: PositionLike, *, worst_price: int | None = None, owner: Keypair | None = None
    ) -> TxResult:
        """Close ``position``; PnL, funding and fee settle into free collateral."""
        signer = owner or self.payer
        ref = _ref(position)
        m = await self.market_accounts(market)
        if worst_price is None:
            if isinstance(position, Position):
                side = position.side
            else:  # one slot of the book, not the book
                side = int((await self._read_slot(m.book, ref.slot))["side"])
            worst_price = U64_MAX if side == Side.SHORT else 0
        instruction = ix.close_position(owner=signer.pubkey(), market=market, book=m.book, oracle=m.oracle,
                                        position=ref, worst_price=worst_price, program_id=self.program_id)  # fmt: skip
        return await self.send([instruction], [signer])

    async def add_margin(
        self, market: Pubkey, position: PositionLike, amount: int, *, owner: Keypair | None = None
    ) -> TxResult:
        signer = owner or self.payer
        ref = _ref(position)
        m = await self.market_accounts(market)
        instruction = ix.add_margin(owner=signer.pubkey(), market=market, book=m.book, position=ref, amount=amount,
                                    program_id=self.program_id)  # fmt: skip
        return await self.send([instruction], [signer])

    async def remove_margin(
        self, market: Pubkey, position: PositionLike, amount: int, *, owner: Keypair | None = None
    ) -> TxResult:
        signer = owner or self.payer
        ref = _ref(position)
        m = await self.market_accounts(market)
        instruction = ix.remove_margin(owner=signer.pubkey(), market=market, book=m.book, oracle=m.oracle,
                                       position=ref, amount=amount, program_id=self.program_id)  # fmt: skip
        return await self.send([instruction], [signer])

    async def clear_position(self, market: Pubkey, owner: Pubkey, position: PositionLike) -> TxResult:
        """Remove ``owner``'s reference to its liquidated ``position`` (anyone may send it)."""
        ref = _ref(position)
        m = await self.market_accounts(market)
        instruction = ix.clear_position(market=market, user=self.user_address(market, owner), book=m.book,
                                        position=ref, program_id=self.program_id)  # fmt: skip
        return await self.send([instruction])

    # -- reading the book --------------------------------------------------------------
    async def fetch_book(self, market: Pubkey) -> Book:
        m = await self.fetch_market(market)
        return Book.decode(m.book, await self._data(m.book, "book"))

    async def fetch_position(self, market: Pubkey, slot: int, *, owner: Pubkey | None = None) -> Position:
        """The position in ``slot``, with funding brought up to the cluster's now."""
        m = project_funding(await self.fetch_market(market), await self.now())
        book = Book.decode(m.book, await self._data(m.book, "book"))
        return _position(m, book, slot, book.live_mask(), owner)

    async def positions(self, market: Pubkey, owner: Pubkey | None = None) -> list[Position]:
        """Every open or liquidated-but-uncleared position of the market, or of one owner."""
        m = project_funding(await self.fetch_market(market), await self.now())
        book = Book.decode(m.book, await self._data(m.book, "book"))
        live = book.live_mask()
        if owner is None:
            used = book.header.slots_used
            slots = [int(s) for s in np.nonzero(book.slots["status"][:used] == 1)[0]]
            return [_position(m, book, s, live, None) for s in slots]
        user = await self.fetch_user(market, owner)
        found = []
        for ref in user.open_refs:
            position = _position(m, book, ref.slot, live, owner)
            if position.generation != ref.generation:  # the slot was collected and reused
                position = replace(position, generation=ref.generation, liquidated=True)
            found.append(position)
        return found


@dataclass(frozen=True)
class MarketAccounts:
    """The accounts a market is bound to for life."""

    book: Pubkey
    oracle: Pubkey
    vault: Pubkey
    quote_mint: Pubkey


def _slot_position(market: Market, slot: int, s: Any, *, liquidated: bool, owner: Pubkey | None) -> Position:
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


def _position(market: Market, book: Book, slot: int, live: Any, owner: Pubkey | None) -> Position:
    s = book.slots[slot]
    return Position(
        market=market,
        slot=slot,
        generation=int(s["generation"]),
        side=int(s["side"]),
        size=int(s["size"]),
        collateral=int(s["collateral"]),
        entry_price=int(s["entry_price"]),
        funding_at_open=book.funding_at_open(slot),
        key=book.key(slot),
        liquidated=not bool(live[slot]),
        owner=owner,
    )
