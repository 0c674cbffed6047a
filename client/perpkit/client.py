"""``Client``: the async API of perpkit over any backend.

>>> async with await Client.embedded() as client:      # in-process LiteSVM
...     oracle = await testing.create_oracle(client, price=100_000_000)
...     market = await client.create_market(quote_mint=await testing.create_mint(client), oracle=oracle)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from solana.constants import LAMPORTS_PER_SOL
from solders.account import Account
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account

from perpkit import instructions as ix
from perpkit import pda, spl_token
from perpkit.accounts import (
    BookHeader,
    Market,
    MarketParams,
    Oracle,
    User,
    account_size,
    book_account_size,
    decode_book_header,
    decode_market,
    decode_oracle,
    decode_user,
)
from perpkit.backends.base import Backend, ChainClock, DataSlice, TxResult
from perpkit.backends.litesvm import LiteSvmBackend
from perpkit.book import Book, SlotStatus
from perpkit.checks import pubkey_of, require_pubkey
from perpkit.compute_budget import set_compute_unit_limit, set_compute_unit_price
from perpkit.errors import AccountNotFound, InvalidInput, PythPriceError, TransactionFailed
from perpkit.idl import PROGRAM_ID, perps_idl
from perpkit.market_handle import MarketAccounts, MarketHandle, PositionLike, explain_params, slot_position
from perpkit.oracles import OracleKind, OracleSource
from perpkit.positions import Position, project_funding
from perpkit.program_errors import program_error
from perpkit.pyth import OraclePrice, read_price
from perpkit.runtime import Features

DEFAULT_BOOK_CAPACITY = 1024


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
        self._markets: dict[Pubkey, MarketHandle] = {}
        self.after_send: list[Callable[[], Awaitable[None]]] = []
        """Called after every transaction this client sends, whether it succeeded or failed
        (the tests check SPEC 7 conservation this way)."""
        self.on_sent: list[Callable[[TxResult], None]] = []
        """Called with the outcome of every transaction :meth:`send` sends, landed or refused (``result.ok``
        tells), before :meth:`send` returns or raises: to record signatures, count transactions or compute
        units.  Not called when no outcome came back (the endpoint failed, or rejected the request itself)."""

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

    def for_program(self, program_id: Pubkey) -> Client:
        """A client of another deployment of the program (``program_id``) over the same backend and payer,
        with the same defaults and :attr:`on_sent` listeners (the list itself: a listener added to either
        hears both).  Closing either closes the shared backend."""
        other = Client(self.backend, self.payer, program_id=program_id, compute_unit_limit=self.compute_unit_limit,
                       compute_unit_price=self.compute_unit_price)  # fmt: skip
        other.runtime_description = self.runtime_description
        other.on_sent = self.on_sent
        return other

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
        by_key = {pubkey_of(s): s for s in [self.payer, *signers]}
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

    def _outcome(
        self,
        instructions: Sequence[Instruction],
        sent: int,
        result: TxResult,
        listeners: Sequence[Callable[[TxResult], None]] = (),
    ) -> TxResult:
        """Map error indices back to the caller's list; tell ``listeners``; raise the typed error on failure."""
        error = result.error
        index = None
        if error is not None and error.instruction_index is not None:
            index = error.instruction_index - (sent - len(instructions))
            if index >= 0:
                error = replace(error, instruction_index=index)
                result = replace(result, error=error)
        for listener in listeners:
            listener(result)
        if error is None:
            return result
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

        Every transaction perpkit sends (airdrops aside) goes through here; :attr:`on_sent` sees each outcome.

        ``compute_unit_limit``/``compute_unit_price`` override the client's
        defaults for this transaction (compute-budget instructions go first;
        error indices still refer to ``instructions``).
        """
        full = self._with_budget(instructions, compute_unit_limit, compute_unit_price)
        try:
            result = await self.backend.send_transaction(full, self._signers(signers))
            return self._outcome(instructions, len(full), result, self.on_sent)
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
    async def account(self, address: Pubkey, *, data_slice: DataSlice | None = None) -> Account | None:
        """The account at ``address``, or None; ``data_slice`` (offset, length) reads only those bytes."""
        return await self.backend.get_account(require_pubkey(address, "address"), data_slice=data_slice)

    async def accounts(
        self, addresses: Sequence[Pubkey], *, data_slice: DataSlice | None = None
    ) -> list[Account | None]:
        """Several accounts in one call (getMultipleAccounts), None where one does not exist."""
        keys = [require_pubkey(a, "address") for a in addresses]
        return await self.backend.get_multiple_accounts(keys, data_slice=data_slice)

    async def account_data(self, address: Pubkey, what: str, *, data_slice: DataSlice | None = None) -> bytes:
        """The data of the account at ``address``; AccountNotFound names it as ``what`` when it is missing."""
        account = await self.backend.get_account(require_pubkey(address, f"{what} address"), data_slice=data_slice)
        if account is None:
            raise AccountNotFound(address, what)
        return bytes(account.data)

    async def program_accounts(
        self,
        *,
        account_type: str | None = None,
        memcmp: Sequence[tuple[int, bytes]] = (),
        data_slice: DataSlice | None = None,
        owner: Pubkey | None = None,
    ) -> list[tuple[Pubkey, Account]]:
        """Accounts of the program (getProgramAccounts); ``account_type`` (an IDL account name) filters
        by its size and discriminator, ``memcmp`` by bytes at offsets after that.  ``owner``: the accounts
        of another program instead (SPL Token's, say), with ``memcmp`` as given."""
        filters = list(memcmp)
        size = None
        if account_type is not None:
            size = account_size(account_type)
            filters.insert(0, (0, perps_idl().account_discriminator(account_type)))
        return await self.backend.get_program_accounts(
            owner or self.program_id, data_size=size, memcmp=filters, data_slice=data_slice
        )

    async def set_account(self, address: Pubkey, account: Account) -> None:
        """Write an account directly: test set-up, restoring a snapshot (embedded runtime, perpkit localnet,
        surfpool); StateControlUnsupported elsewhere."""
        await self.backend.set_account(require_pubkey(address, "address"), account)

    async def recent_prioritization_fees(self, writable: Sequence[Pubkey]) -> list[int]:
        """Compute-unit prices (micro-lamports) of recent blocks' transactions writing any of ``writable``."""
        return await self.backend.recent_prioritization_fees([require_pubkey(a, "address") for a in writable])

    async def transaction_outcome(self, signature: str) -> TxResult | None:
        """What became of a sent transaction (logs, compute units, error); None if the chain has not seen it."""
        return await self.backend.transaction_outcome(signature)

    async def signatures_for_address(
        self, address: Pubkey, *, until: str | None = None, limit: int = 1000
    ) -> list[tuple[str, bool]]:
        """(signature, failed) of recent transactions naming ``address``, newest first, down to ``until``."""
        return await self.backend.signatures_for_address(require_pubkey(address, "address"), until=until, limit=limit)

    async def airdrop(self, address: Pubkey, lamports: int) -> None:
        """Lamports from the faucet (embedded runtime, localnet, devnet); AirdropFailed when refused."""
        await self.backend.request_airdrop(address, lamports)

    async def fetch_market(self, address: Pubkey) -> Market:
        return decode_market(address, await self.account_data(address, "market"))

    async def fetch_oracle(self, address: Pubkey) -> Oracle:
        return decode_oracle(address, await self.account_data(address, "oracle"))

    async def oracle_price(self, market: Pubkey | Market) -> OraclePrice:
        """The market's oracle as its instructions read it, whichever the kind: price and conf at 6 decimals
        and the publish time (a Pyth update decoded and rescaled by the program's rules, or a PythPriceError
        named as the program's refusal).  Freshness is not checked here: compare ``publish_time`` with
        :meth:`now`."""
        m = market if isinstance(market, Market) else await self.fetch_market(market)
        if m.oracle_kind == OracleKind.PYTH:
            account = await self.account(m.oracle)
            if account is None or account.owner != m.pyth_receiver:  # a closed account too, as the program sees it
                owner = "nobody (it does not exist)" if account is None else str(account.owner)
                raise PythPriceError("InvalidAccountOwner", f"{m.oracle} is owned by {owner}, not {m.pyth_receiver}")
            return read_price(bytes(account.data), m.pyth_feed_id)
        oracle = await self.fetch_oracle(m.oracle)
        return OraclePrice(oracle.price, oracle.conf, oracle.publish_time)

    async def fetch_book_header(self, address: Pubkey) -> BookHeader:
        """The book's header alone: a ``dataSlice`` of its first bytes, not the 8.5 MiB account."""
        size = perps_idl().constant("BOOK_HEADER_SIZE")
        return decode_book_header(address, await self.account_data(address, "book", data_slice=(0, size)))

    async def token_balance(self, token_account: Pubkey) -> int:
        return spl_token.token_amount(await self.account_data(token_account, "token account"))

    async def rent_exempt_minimum(self, size: int) -> int:
        """The lamports an account of ``size`` bytes must hold to be rent-exempt."""
        return await self.backend.minimum_balance_for_rent_exemption(size)

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

    # -- oracle ---------------------------------------------------------------
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
        oracle_source: OracleSource | None = None,
    ) -> Pubkey:
        """Allocate a book and initialise a market on it, in one transaction.

        ``oracle_source``: how ``oracle`` is read, the test oracle (default) or
        ``OracleSource.pyth(feed_id)`` for a Pyth ``PriceUpdateV2`` account.
        """
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
            oracle_source=oracle_source,
            program_id=self.program_id,
        )
        with explain_params(params or MarketParams()):
            await self.send([allocate, init], [signer, book])
        return pda.market_address(signer.pubkey(), market_id, self.program_id)

    # -- users and collateral -----------------------------------------------------
    def user_address(self, market: Pubkey, owner: Pubkey | None = None) -> Pubkey:
        return pda.user_address(market, owner or self.payer.pubkey(), self.program_id)

    # -- admin ----------------------------------------------------------------------
    # -- trading --------------------------------------------------------------------
    # -- a market's calls: the handle does the work (perpkit.market_handle) ------------------
    async def market(self, address: Pubkey) -> MarketHandle:
        """The market at ``address``: its bound accounts read once, trading and admin calls with ``_ix`` twins."""
        handle = self._markets.get(address)
        if handle is None:
            handle = MarketHandle(self, address, await self.fetch_market(address))
            self._markets[address] = handle
        return handle

    async def market_accounts(self, market: Pubkey) -> MarketAccounts:
        """The accounts a market is bound to at creation (book, oracle, vault, mint): read once, then cached."""
        return (await self.market(market)).accounts

    async def create_user(self, market: Pubkey, owner: Keypair | None = None) -> Pubkey:
        """The owner's user account in ``market`` (created; the owner pays rent)."""
        return await (await self.market(market)).create_user(owner)

    async def fetch_user(self, market: Pubkey, owner: Pubkey | None = None) -> User:
        address = self.user_address(market, owner)
        return decode_user(address, await self.account_data(address, "user account"))

    async def deposit(
        self, market: Pubkey, amount: int, *, owner: Keypair | None = None, token_account: Pubkey | None = None
    ) -> TxResult:
        """Move ``amount`` quote atoms from the owner's token account (default: its ATA) to free collateral."""
        return await (await self.market(market)).deposit(amount, owner=owner, token_account=token_account)

    async def withdraw(
        self, market: Pubkey, amount: int, *, owner: Keypair | None = None, token_account: Pubkey | None = None
    ) -> TxResult:
        """Move ``amount`` of free collateral back to the owner's token account (default: its ATA)."""
        return await (await self.market(market)).withdraw(amount, owner=owner, token_account=token_account)

    async def fund_pool(
        self, market: Pubkey, amount: int, *, admin: Keypair | None = None, token_account: Pubkey | None = None
    ) -> TxResult:
        """Admin: add ``amount`` quote atoms to the pool (the counterparty of every trade)."""
        return await (await self.market(market)).fund_pool(amount, admin=admin, token_account=token_account)

    async def fund_insurance(
        self, market: Pubkey, amount: int, *, admin: Keypair | None = None, token_account: Pubkey | None = None
    ) -> TxResult:
        """Admin: add ``amount`` quote atoms to the insurance fund."""
        return await (await self.market(market)).fund_insurance(amount, admin=admin, token_account=token_account)

    async def update_market_params(
        self, market: Pubkey, params: MarketParams, *, admin: Keypair | None = None
    ) -> TxResult:
        """Admin: new risk parameters (see :meth:`MarketHandle.update_params`)."""
        return await (await self.market(market)).update_params(params, admin=admin)

    async def set_paused(self, market: Pubkey, paused: bool, *, admin: Keypair | None = None) -> TxResult:
        return await (await self.market(market)).set_paused(paused, admin=admin)

    async def set_market_oracle(
        self, market: Pubkey, oracle: Pubkey, *, pyth_receiver: Pubkey | None = None, admin: Keypair | None = None
    ) -> TxResult:
        """Admin: re-point a Pyth market to another account of its feed (``MarketHandle.set_market_oracle``)."""
        return await (await self.market(market)).set_market_oracle(oracle, pyth_receiver=pyth_receiver, admin=admin)

    async def update_funding(self, market: Pubkey) -> TxResult:
        """Permissionless: read the oracle and bring funding up to date."""
        return await (await self.market(market)).update_funding()

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
        """Open a position and return it (see :meth:`MarketHandle.open_position`)."""
        handle = await self.market(market)
        return await handle.open_position(side, size, collateral, worst_price=worst_price, owner=owner)

    async def close_position(
        self, market: Pubkey, position: PositionLike, *, worst_price: int | None = None, owner: Keypair | None = None
    ) -> TxResult:
        """Close ``position``; PnL, funding and fee settle into free collateral."""
        return await (await self.market(market)).close_position(position, worst_price=worst_price, owner=owner)

    async def add_margin(
        self, market: Pubkey, position: PositionLike, amount: int, *, owner: Keypair | None = None
    ) -> TxResult:
        return await (await self.market(market)).add_margin(position, amount, owner=owner)

    async def remove_margin(
        self, market: Pubkey, position: PositionLike, amount: int, *, owner: Keypair | None = None
    ) -> TxResult:
        return await (await self.market(market)).remove_margin(position, amount, owner=owner)

    async def clear_position(self, market: Pubkey, owner: Pubkey, position: PositionLike) -> TxResult:
        """Remove ``owner``'s reference to its liquidated ``position`` (anyone may send it)."""
        return await (await self.market(market)).clear_position(owner, position)

    async def clear_user(self, market: Pubkey, owner: Pubkey) -> TxResult:
        """Drop every reference of ``owner`` to a position no longer live, in one instruction (anyone may send it)."""
        return await (await self.market(market)).clear_user(owner)

    # -- reading the book --------------------------------------------------------------
    async def fetch_book(self, market: Pubkey) -> Book:
        m = await self.fetch_market(market)
        return Book.decode(m.book, await self.account_data(m.book, "book"))

    async def fetch_position(self, market: Pubkey, slot: int, *, owner: Pubkey | None = None) -> Position:
        """The position in ``slot``, with funding brought up to the cluster's now."""
        m = project_funding(await self.fetch_market(market), await self.now())
        book = Book.decode(m.book, await self.account_data(m.book, "book"))
        return _position(m, book, slot, book.live_mask(), owner)

    async def positions(self, market: Pubkey, owner: Pubkey | None = None) -> list[Position]:
        """Every open or liquidated-but-uncleared position of the market, or of one owner."""
        m = project_funding(await self.fetch_market(market), await self.now())
        book = Book.decode(m.book, await self.account_data(m.book, "book"))
        live = book.live_mask()
        if owner is None:
            used = book.header.slots_used
            slots = [int(s) for s in np.nonzero(book.slots["status"][:used] == SlotStatus.OPEN)[0]]
            return [_position(m, book, s, live, None) for s in slots]
        user = await self.fetch_user(market, owner)
        found = []
        for ref in user.open_refs:
            position = _position(m, book, ref.slot, live, owner)
            if position.generation != ref.generation:  # the slot was collected and reused
                position = replace(position, generation=ref.generation, liquidated=True)
            found.append(position)
        return found


def _position(market: Market, book: Book, slot: int, live: Any, owner: Pubkey | None) -> Position:
    return slot_position(market, slot, book.slots[slot], liquidated=not bool(live[slot]), owner=owner)
