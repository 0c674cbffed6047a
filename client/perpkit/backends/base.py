"""The backend interface: one async API over every kind of chain.

The :class:`~perpkit.client.Client` speaks only this protocol, so the same
scenario runs on the embedded LiteSVM runtime, on the localnet server, on
``solana-test-validator`` and on devnet.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from solders.account import Account
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.transaction_status import TransactionReturnData

from perpkit.errors import InvalidInput


@dataclass(frozen=True)
class TxError:
    """Why the chain refused a transaction."""

    message: str
    """The runtime's error, as text."""
    instruction_index: int | None = None
    """Index of the failing instruction, for an instruction error."""
    custom_code: int | None = None
    """``Custom(n)`` code of an instruction error, if it was one."""


@dataclass(frozen=True)
class ReturnData:
    """Return data of a transaction (``sol_set_return_data``), as the runtime reports it."""

    program_id: Pubkey
    """The program that set it."""
    data: bytes
    """What it set (never empty: the runtime reports empty return data as none)."""


def return_data_from_solders(value: TransactionReturnData | None) -> ReturnData | None:
    """solders' ``TransactionReturnData`` as a ReturnData; None when absent or empty.

    Agave resets the return data to (program, empty) each time a program is
    invoked and records it only when it is not empty, so "no data" is None.
    """
    if value is None:
        return None
    data = bytes(value.data)
    return ReturnData(value.program_id, data) if data else None


@dataclass(frozen=True)
class TxResult:
    """Outcome of a sent or simulated transaction."""

    signature: str
    logs: list[str]
    compute_units: int
    error: TxError | None = None
    return_data: ReturnData | None = None
    """The transaction's return data: what the last invoked program set, as agave reports it
    (a program invoked later that sets nothing clears it); None when there is none."""

    @property
    def ok(self) -> bool:
        return self.error is None


DataSlice = tuple[int, int]
"""(offset, length) of the bytes to read from an account's data, as the RPC's ``dataSlice``."""


def slice_account(account: Account, data_slice: DataSlice | None) -> Account:
    """``account`` with only ``data_slice`` of its data (past the end: fewer bytes, as the RPC does)."""
    if data_slice is None:
        return account
    offset, length = data_slice
    if offset < 0 or length < 0:
        raise InvalidInput(f"data_slice needs a non-negative offset and length, got {data_slice}")
    data = bytes(account.data[offset : offset + length])
    return Account(account.lamports, data, account.owner, account.executable, account.rent_epoch)


def account_matches(account: Account, data_size: int | None, memcmp: Sequence[tuple[int, bytes]]) -> bool:
    """The getProgramAccounts filters: data size and bytes at offsets."""
    data = bytes(account.data)
    if data_size is not None and len(data) != data_size:
        return False
    return all(data[offset : offset + len(wanted)] == wanted for offset, wanted in memcmp)


@dataclass(frozen=True)
class ChainClock:
    """The cluster's Clock sysvar, as far as perpkit uses it."""

    slot: int
    unix_timestamp: int


def clock_from_sysvar(data: bytes) -> ChainClock:
    """The Clock sysvar's slot and unix time from its 40 bytes (slot, epoch start, epoch, leader epoch, unix)."""
    slot, _, _, _, unix = struct.unpack_from("<QqQQq", data)
    return ChainClock(slot=slot, unix_timestamp=unix)


class Backend(Protocol):
    """A chain that perpkit can read and send transactions to."""

    name: str
    supports_clock_control: bool

    async def get_account(self, address: Pubkey, *, data_slice: DataSlice | None = None) -> Account | None:
        """The account, or None; with ``data_slice`` (offset, length) only those bytes of its data are read."""
        ...

    async def get_multiple_accounts(
        self, addresses: Sequence[Pubkey], *, data_slice: DataSlice | None = None
    ) -> list[Account | None]: ...

    async def send_transaction(self, instructions: Sequence[Instruction], signers: Sequence[Keypair]) -> TxResult:
        """Sign with ``signers`` (the first pays the fee) and execute; failures are returned, not raised."""
        ...

    async def simulate_transaction(
        self, instructions: Sequence[Instruction], signers: Sequence[Keypair]
    ) -> TxResult: ...

    async def get_program_accounts(
        self,
        program_id: Pubkey,
        *,
        data_size: int | None = None,
        memcmp: Sequence[tuple[int, bytes]] = (),
        data_slice: DataSlice | None = None,
    ) -> list[tuple[Pubkey, Account]]:
        """Accounts owned by ``program_id`` with that data size and bytes at those offsets."""
        ...

    async def minimum_balance_for_rent_exemption(self, size: int) -> int: ...

    async def set_account(self, address: Pubkey, account: Account) -> None:
        """Write an account directly (the embedded runtime; surfpool's ``surfnet_setAccount`` over RPC).

        Raises StateControlUnsupported on an endpoint that cannot."""
        ...

    async def request_airdrop(self, address: Pubkey, lamports: int) -> None: ...

    async def get_clock(self) -> ChainClock: ...

    async def recent_prioritization_fees(self, writable: Sequence[Pubkey]) -> list[int]:
        """Compute-unit prices (micro-lamports) of recent blocks' transactions that write any of ``writable``
        (``getRecentPrioritizationFees``), one per block, oldest first."""
        ...

    async def transaction_outcome(self, signature: str) -> TxResult | None:
        """A transaction the chain executed (logs, compute units, error), or None if it has not seen it."""
        ...

    async def signatures_for_address(
        self, address: Pubkey, *, until: str | None = None, limit: int = 1000
    ) -> list[tuple[str, bool]]:
        """(signature, failed) of the transactions naming ``address``, newest first, down to (not including)
        ``until`` (``getSignaturesForAddress``)."""
        ...

    async def set_clock(self, unix_timestamp: int, slot: int | None = None) -> None:
        """Move the cluster clock; raises ClockControlUnsupported where that is impossible."""
        ...

    async def close(self) -> None: ...
