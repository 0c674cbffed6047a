"""The embedded backend: a LiteSVM runtime in this process (``solders.litesvm``).

The async methods run synchronously underneath; they are async so that code
written against :class:`~perpkit.backends.base.Backend` runs unchanged over
JSON-RPC.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, cast

from solders.account import Account
from solders.clock import Clock
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.transaction import Transaction
from solders.transaction_metadata import FailedTransactionMetadata, TransactionMetadata
from solders.transaction_status import TransactionReturnData

from perpkit.backends.base import (
    ChainClock,
    DataSlice,
    ReturnData,
    TxError,
    TxResult,
    account_matches,
    return_data_from_solders,
    slice_account,
)
from perpkit.backends.errors import tx_error_from_solders
from perpkit.checks import require_lamports, require_pubkey, signed_message
from perpkit.errors import AirdropFailed
from perpkit.runtime import Features, embedded_runtime, install_program, new_litesvm, programdata_address

SLOT_MS = 400


class _HasReturnData(Protocol):
    def return_data(self) -> TransactionReturnData: ...


def metadata_return_data(meta: TransactionMetadata) -> ReturnData | None:
    """The return data LiteSVM recorded for a transaction, sent or simulated, ok or failed.

    solders 0.26's type stub calls the method ``transaction_return_data()``;
    the extension module has ``return_data()``.  When no program set any, it
    gives the last invoked program with empty data: that is None here.
    """
    return return_data_from_solders(cast(_HasReturnData, meta).return_data())


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
        self.svm = new_litesvm(features, activate=activate, deactivate=deactivate)
        self.known: set[Pubkey] = set()
        """Every account a transaction or airdrop touched: what get_program_accounts scans."""
        now = int(time.time()) if start_time is None else start_time
        clock = self.svm.get_clock()
        self.svm.set_clock(Clock(clock.slot, now, clock.epoch, clock.leader_schedule_epoch, now))

    def load_program(self, program_id: Pubkey, program: Path | str | bytes) -> None:
        """Install an SBF program at ``program_id`` under the upgradeable loader.

        A bad file raises InvalidProgramFile naming it and the reason."""
        install_program(self.svm, program_id, program)
        self.known.update((program_id, programdata_address(program_id)))

    # -- Backend -----------------------------------------------------------
    def _account(self, address: Pubkey) -> Account | None:
        account = self.svm.get_account(address)
        # A cluster purges accounts left with no lamports; LiteSVM keeps them.
        return account if account is not None and account.lamports > 0 else None

    async def get_account(self, address: Pubkey, *, data_slice: DataSlice | None = None) -> Account | None:
        account = self._account(address)
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
        found = []
        for address in sorted(self.known, key=bytes):
            account = self._account(address)
            if account is not None and account.owner == program_id and account_matches(account, data_size, memcmp):
                found.append((address, slice_account(account, data_slice)))
        return found

    def _transaction(self, instructions: Sequence[Instruction], signers: Sequence[Keypair]) -> Transaction:
        message = signed_message(instructions, signers)  # InvalidInput unless signers are the ones it needs
        return Transaction(list(signers), message, self.svm.latest_blockhash())

    async def send_transaction(self, instructions: Sequence[Instruction], signers: Sequence[Keypair]) -> TxResult:
        tx = self._transaction(instructions, signers)
        outcome = self.svm.send_transaction(tx)
        self.known.update(tx.message.account_keys)
        # A new blockhash per transaction: sending the same instructions twice
        # is then two transactions, as it would be on a cluster a moment later.
        self.svm.expire_blockhash()
        return _result(outcome, str(tx.signatures[0]))

    async def simulate_transaction(self, instructions: Sequence[Instruction], signers: Sequence[Keypair]) -> TxResult:
        tx = self._transaction(instructions, signers)
        outcome = self.svm.simulate_transaction(tx)
        if isinstance(outcome, FailedTransactionMetadata):
            return _result(outcome, str(tx.signatures[0]))
        return _result(outcome.meta(), str(tx.signatures[0]))

    async def minimum_balance_for_rent_exemption(self, size: int) -> int:
        return self.svm.minimum_balance_for_rent_exemption(size)

    async def request_airdrop(self, address: Pubkey, lamports: int) -> None:
        outcome = self.svm.airdrop(require_pubkey(address, "airdrop address"), require_lamports(lamports))
        self.known.add(address)
        if isinstance(outcome, FailedTransactionMetadata):
            raise AirdropFailed(address, lamports, tx_error_from_solders(outcome.err()).message)

    async def get_clock(self) -> ChainClock:
        clock = self.svm.get_clock()
        return ChainClock(slot=clock.slot, unix_timestamp=clock.unix_timestamp)

    async def set_clock(self, unix_timestamp: int, slot: int | None = None) -> None:
        clock = self.svm.get_clock()
        if slot is None:
            elapsed_ms = max(0, unix_timestamp - clock.unix_timestamp) * 1000
            slot = clock.slot + max(1, elapsed_ms // SLOT_MS)
        self.svm.set_clock(
            Clock(slot, clock.epoch_start_timestamp, clock.epoch, clock.leader_schedule_epoch, unix_timestamp)
        )
        self.svm.expire_blockhash()

    async def close(self) -> None:
        return None


def _result(outcome: TransactionMetadata | FailedTransactionMetadata, signature: str) -> TxResult:
    if isinstance(outcome, FailedTransactionMetadata):
        meta = outcome.meta()
        error: TxError | None = tx_error_from_solders(outcome.err())
    else:
        meta = outcome
        error = None
    return TxResult(
        signature=signature,
        logs=list(meta.logs()),
        compute_units=meta.compute_units_consumed(),
        error=error,
        return_data=metadata_return_data(meta),
    )
