"""The embedded backend: the in-process chain (:class:`perpkit.chain.Chain`) behind the Backend API.

The chain is the one ``perpkit localnet`` serves over JSON-RPC, so fees
(priority fee included), the blockhash window, the transaction history, the
clock and airdrops behave here as they do there.  Its clock is frozen: it
moves only with :meth:`LiteSvmBackend.set_clock`.  Every transaction is signed
with the latest blockhash, and each executed one makes a new block, so
sending the same instructions twice is two transactions.

The async methods run synchronously underneath; they are async so that code
written against :class:`~perpkit.backends.base.Backend` runs unchanged over
JSON-RPC.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from solders.account import Account
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from perpkit.backends.base import (
    ChainClock,
    DataSlice,
    TxResult,
    account_matches,
    slice_account,
)
from perpkit.backends.errors import tx_error_from_solders
from perpkit.chain import Chain, TimeTravelError, TransactionRejected, TxRecord, metadata_return_data
from perpkit.checks import require_lamports, require_pubkey, signed_message, signed_transaction
from perpkit.errors import AirdropFailed, PerpkitError
from perpkit.runtime import Features, embedded_runtime

__all__ = ["LiteSvmBackend", "metadata_return_data"]

EMBEDDED_HISTORY_LIMIT = 10_000
"""Transactions the embedded chain's history keeps (a test may send hundreds of thousands)."""


class LiteSvmBackend:
    """In-process LiteSVM with the standard builtins, SPL programs and sysvars."""

    name = "litesvm"
    supports_clock_control = True

    def __init__(
        self,
        *,
        start_time: int | None = None,
        features: Features = "mainnet",
        activate: Sequence[Pubkey] = (),
        deactivate: Sequence[Pubkey] = (),
    ) -> None:
        """``start_time`` (unix seconds) defaults to now.  ``features`` is the
        feature set (:mod:`perpkit.runtime`: the mainnet one, or all), and
        ``activate``/``deactivate`` change single features on top of it."""
        self.runtime = embedded_runtime()
        self.features: Features = features
        self.chain = Chain(
            start_time=start_time,
            frozen_clock=True,
            features=features,
            activate=activate,
            deactivate=deactivate,
            history_limit=EMBEDDED_HISTORY_LIMIT,
        )

    @property
    def svm(self) -> LiteSVM:
        """The chain's LiteSVM (to write state no instruction can reach)."""
        return self.chain.svm

    def load_program(self, program_id: Pubkey, program: Path | str | bytes) -> None:
        """Install an SBF program at ``program_id`` under the upgradeable loader.

        A bad file raises InvalidProgramFile naming it and the reason."""
        self.chain.load_program(program_id, program)

    # -- Backend -----------------------------------------------------------
    async def get_account(self, address: Pubkey, *, data_slice: DataSlice | None = None) -> Account | None:
        account = self.chain.get_account(address)
        return None if account is None else slice_account(account, data_slice)

    async def get_multiple_accounts(
        self, addresses: Sequence[Pubkey], *, data_slice: DataSlice | None = None
    ) -> list[Account | None]:
        return [await self.get_account(a, data_slice=data_slice) for a in addresses]

    async def get_program_accounts(
        self,
        program_id: Pubkey,
        *,
        data_size: int | None = None,
        memcmp: Sequence[tuple[int, bytes]] = (),
        data_slice: DataSlice | None = None,
    ) -> list[tuple[Pubkey, Account]]:
        return [
            (address, slice_account(account, data_slice))
            for address, account in self.chain.accounts_owned_by(program_id)
            if account_matches(account, data_size, memcmp)
        ]

    def _transaction(self, instructions: Sequence[Instruction], signers: Sequence[Keypair]) -> VersionedTransaction:
        # InvalidInput unless signers are the ones the message needs
        message = signed_message(instructions, signers, self.chain.latest_hash)
        return signed_transaction(message, signers)

    async def send_transaction(self, instructions: Sequence[Instruction], signers: Sequence[Keypair]) -> TxResult:
        tx = self._transaction(instructions, signers)
        try:
            # The chain need not verify the signatures this backend has just made.
            record = self.chain.execute(tx, sig_verify=False)
        except TransactionRejected as rejected:
            return TxResult(
                str(tx.signatures[0]), rejected.logs, rejected.compute_units, tx_error_from_solders(rejected.err)
            )
        return _result(record)

    async def simulate_transaction(self, instructions: Sequence[Instruction], signers: Sequence[Keypair]) -> TxResult:
        tx = self._transaction(instructions, signers)
        sim = self.chain.simulate(tx, sig_verify=False, replace_blockhash=False)
        return TxResult(
            signature=str(tx.signatures[0]),
            logs=sim.logs,
            compute_units=sim.compute_units,
            error=None if sim.err is None else tx_error_from_solders(sim.err),
            return_data=sim.return_data,
        )

    async def set_account(self, address: Pubkey, account: Account) -> None:
        self.chain.set_account(address, account)

    async def minimum_balance_for_rent_exemption(self, size: int) -> int:
        return self.chain.minimum_balance_for_rent_exemption(size)

    async def request_airdrop(self, address: Pubkey, lamports: int) -> None:
        address = require_pubkey(address, "airdrop address")
        lamports = require_lamports(lamports)
        try:
            record = self.chain.airdrop(address, lamports)
        except TransactionRejected as rejected:
            raise AirdropFailed(address, lamports, tx_error_from_solders(rejected.err).message) from None
        if record.err is not None:
            raise AirdropFailed(address, lamports, tx_error_from_solders(record.err).message, str(record.signature))

    async def get_clock(self) -> ChainClock:
        clock = self.chain.sync_clock()
        return ChainClock(slot=clock.slot, unix_timestamp=clock.unix_timestamp)

    async def set_clock(self, unix_timestamp: int, slot: int | None = None) -> None:
        """Time travel, as the localnet's ``surfnet_timeTravel``: to ``slot`` if given (the unix time
        follows at ``SLOT_MS`` a slot), else to ``unix_timestamp`` (the slot follows likewise)."""
        try:
            if slot is not None:
                self.chain.time_travel(slot=slot)
            else:
                self.chain.time_travel(timestamp_ms=unix_timestamp * 1000)
        except TimeTravelError as exc:
            raise PerpkitError(f"time travel refused: {exc}") from None

    async def recent_prioritization_fees(self, writable: Sequence[Pubkey]) -> list[int]:
        return [price for _, price in self.chain.recent_prioritization_fees(frozenset(writable))]

    async def transaction_outcome(self, signature: str) -> TxResult | None:
        record = self.chain.history.get(Signature.from_string(signature))
        return None if record is None else _result(record)

    async def signatures_for_address(
        self, address: Pubkey, *, until: str | None = None, limit: int = 1000
    ) -> list[tuple[str, bool]]:
        found: list[tuple[str, bool]] = []
        for record in reversed(list(self.chain.history.values())):  # newest first
            if str(record.signature) == until or len(found) >= limit:
                break
            if address in Chain.message_of(record.transaction).account_keys:
                found.append((str(record.signature), record.err is not None))
        return found

    async def close(self) -> None:
        return None


def _result(record: TxRecord) -> TxResult:
    return TxResult(
        signature=str(record.signature),
        logs=record.logs,
        compute_units=record.compute_units,
        error=None if record.err is None else tx_error_from_solders(record.err),
        return_data=record.return_data,
    )
