"""The in-process chain: LiteSVM plus what a validator keeps around it.

Both the embedded backend (:class:`~perpkit.backends.litesvm.LiteSvmBackend`)
and the ``perpkit localnet`` JSON-RPC server run on this class, so a scenario
behaves the same in process and over RPC.  LiteSVM executes transactions;
:class:`Chain` adds the validator's bookkeeping:

* slots and block heights: blocks are produced on demand, one per executed
  transaction (as anvil does with automine), so a transaction is final when
  :meth:`Chain.execute` returns, and a new blockhash is issued;
* a window of recent blockhashes: a transaction signed with any of the last
  150 is accepted (LiteSVM alone accepts only its latest);
* the clock: following wall time, or frozen (the embedded backend's default),
  and moved by time travel;
* fees as a validator takes them, the priority fee included (solders 0.26's
  LiteSVM takes only the signature fee: :func:`~perpkit.runtime.litesvm_charges_priority_fee`);
* a transaction history with balances, logs and return data, and the
  prioritization fees of recent blocks;
* program-account queries (LiteSVM's own on solders >= 0.28, an index of the
  accounts transactions touched before that);
* a faucet: airdrops are transfers executed like any transaction.

Signatures are verified where a transaction comes from outside
(``execute(tx, sig_verify=True)``, the default); the embedded backend, which
has just signed the transaction itself with the signers' keypairs, skips
verifying its own signatures again.  Single-threaded: the localnet server
serialises calls.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, cast

from solana.constants import LAMPORTS_PER_SOL
from solders.account import Account
from solders.clock import Clock
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata, InnerInstruction, TransactionMetadata
from solders.transaction_status import TransactionErrorFieldless, TransactionReturnData

from perpkit.backends.base import ReturnData, return_data_from_solders
from perpkit.checks import pubkey_of, signed_transaction
from perpkit.compute_budget import COMPUTE_BUDGET_PROGRAM_ID, compute_budget_of
from perpkit.runtime import (
    SLOT_MS,
    Features,
    embedded_runtime,
    install_program,
    litesvm_charges_priority_fee,
    new_litesvm,
    programdata_address,
)

LAMPORTS_PER_SIGNATURE = 5_000
BLOCKHASH_VALIDITY = 150
"""Block heights a blockhash stays valid, as on a cluster."""
FAUCET_LAMPORTS = 500_000_000 * LAMPORTS_PER_SOL
HISTORY_LIMIT = 100_000
"""Transactions the history keeps (the oldest are dropped first)."""


class TransactionRejected(Exception):
    """The transaction was not executed (no block, no fee): bad blockhash, duplicate, no fee payer...

    ``logs`` and ``compute_units`` are what LiteSVM reported, if it got that far."""

    def __init__(self, err: object, logs: Sequence[str] = (), compute_units: int = 0) -> None:
        self.err = err
        self.logs = list(logs)
        self.compute_units = compute_units
        super().__init__(str(err))


class TimeTravelError(Exception):
    """Time travel to the past."""


class _HasReturnData(Protocol):
    def return_data(self) -> TransactionReturnData: ...


class _HasFee(Protocol):
    def fee(self) -> int: ...


def metadata_return_data(meta: TransactionMetadata) -> ReturnData | None:
    """The return data LiteSVM recorded for a transaction, sent or simulated, ok or failed.

    solders 0.26's type stub calls the method ``transaction_return_data()``;
    the extension module has ``return_data()``.  When no program set any, it
    gives the last invoked program with empty data: that is None here.
    """
    return return_data_from_solders(cast(_HasReturnData, meta).return_data())


@dataclass(slots=True)
class TxRecord:
    """An executed transaction, as getTransaction and getSignatureStatuses report it."""

    signature: Signature
    slot: int
    block_time: int
    transaction: VersionedTransaction
    err: object | None
    logs: list[str]
    compute_units: int
    fee: int
    pre_balances: list[int]
    post_balances: list[int]
    inner_instructions: list[list[InnerInstruction]]
    return_data: ReturnData | None = None
    """What the runtime recorded (``meta.returnData``); None when no program left any."""
    block: tuple[int, Hash, Hash] | None = None
    """(block height, blockhash, previous blockhash) of the block the transaction made."""


@dataclass
class Simulation:
    err: object | None
    logs: list[str]
    compute_units: int
    post_accounts: dict[Pubkey, Account] = field(default_factory=dict)
    inner_instructions: list[list[InnerInstruction]] = field(default_factory=list)
    return_data: ReturnData | None = None


@dataclass
class ClockState:
    """The cluster clock: wall-time driven unless frozen; time travel moves it."""

    frozen: bool
    unix_base: int
    mono_base: float
    slot_base: int

    def unix_now(self) -> int:
        if self.frozen:
            return self.unix_base
        return self.unix_base + int(time.monotonic() - self.mono_base)

    def slot_floor(self) -> int:
        """The slot wall time has reached (``SLOT_MS`` a slot) when the clock runs."""
        if self.frozen:
            return self.slot_base
        return self.slot_base + int((time.monotonic() - self.mono_base) * 1000) // SLOT_MS


def message_fees(message: Message | MessageV0, keys: Sequence[Pubkey] | None = None) -> tuple[int, int, int]:
    """(signature fee, priority fee, compute-unit price) of a message: 5,000 lamports a
    signature, and ceil(compute-unit limit x price / 1e6) lamports of priority fee."""
    signature_fee = message.header.num_required_signatures * LAMPORTS_PER_SIGNATURE
    if COMPUTE_BUDGET_PROGRAM_ID not in (message.account_keys if keys is None else keys):
        return signature_fee, 0, 0  # no compute-unit price: no priority fee
    limit, price = compute_budget_of(message)
    return signature_fee, -(-limit * price // 1_000_000), price


def writable_keys(message: Message | MessageV0) -> frozenset[Pubkey]:
    """The static account keys a message may write, from its header."""
    header = message.header
    keys = list(message.account_keys)
    signed = header.num_required_signatures
    writable_signed = signed - header.num_readonly_signed_accounts
    writable_unsigned_end = len(keys) - header.num_readonly_unsigned_accounts
    return frozenset(k for i, k in enumerate(keys) if i < writable_signed or signed <= i < writable_unsigned_end)


class Chain:
    """LiteSVM with a validator's bookkeeping (see the module docstring)."""

    def __init__(
        self,
        *,
        start_time: int | None = None,
        frozen_clock: bool = False,
        features: Features = "mainnet",
        activate: Sequence[Pubkey] = (),
        deactivate: Sequence[Pubkey] = (),
        history_limit: int = HISTORY_LIMIT,
    ) -> None:
        """``start_time`` (unix seconds) defaults to now; ``frozen_clock`` stops the clock from
        following wall time.  ``features``/``activate``/``deactivate`` choose the feature set
        (:func:`perpkit.runtime.new_litesvm`).  The history keeps the last ``history_limit``
        transactions (at least the blockhash window's, to refuse duplicates)."""
        self.features: Features = features
        self.svm = new_litesvm(features, activate=activate, deactivate=deactivate)
        # Blockhashes, duplicates and signatures are checked here (see execute).
        self.svm.with_blockhash_check(False)
        self.svm.with_sigverify(False)
        self.svm.with_transaction_history(0)
        self._takes_priority_fee = litesvm_charges_priority_fee()
        self._native_program_accounts = embedded_runtime().feature_set_api  # LiteSVM.get_program_accounts
        self._meta_fee = self._takes_priority_fee and hasattr(TransactionMetadata, "fee")
        now = int(time.time()) if start_time is None else start_time
        self.clock = ClockState(frozen=frozen_clock, unix_base=now, mono_base=time.monotonic(), slot_base=0)
        self.slot = 0
        self.block_height = 0
        self.transaction_count = 0
        self.genesis_hash = self.svm.latest_blockhash()
        self.latest_hash = self.genesis_hash
        """The blockhash of the latest block: what a new transaction is signed with."""
        self.blockhashes: dict[Hash, int] = {self.genesis_hash: BLOCKHASH_VALIDITY}
        self._blockhash_order: deque[Hash] = deque([self.genesis_hash])
        self.history: dict[Signature, TxRecord] = {}
        self.history_limit = max(history_limit, 2 * BLOCKHASH_VALIDITY)
        self.known: set[Pubkey] = set()
        """Accounts transactions touched: what program-account queries scan where LiteSVM has no own."""
        self.loaded_at_start: dict[Pubkey, Account] = {}
        """Accounts loaded at start (fixtures, the program): what ``surfnet_resetAccount`` restores."""
        self._priority_fees: deque[tuple[int, int, Message | MessageV0]] = deque(maxlen=150)
        self._synced: tuple[int, int] | None = None
        self.observers: list[Callable[[str, object], None]] = []
        """Called with ("transaction", TxRecord), ("account", Pubkey) or ("slot", int) as they happen."""
        self._schedule = self.svm.get_epoch_schedule()
        self.faucet = Keypair()
        self.faucet_address = pubkey_of(self.faucet)
        self.set_account(self.faucet_address, Account(FAUCET_LAMPORTS, b"", SYSTEM_PROGRAM_ID, False, 0))
        self.sync_clock()

    # -- programs and accounts ----------------------------------------------
    def load_program(self, program_id: Pubkey, program: Path | str | bytes) -> None:
        """Install a program under the upgradeable loader (``--upgradeable-program ID FILE none``).

        A bad file raises InvalidProgramFile naming it and the reason."""
        install_program(self.svm, program_id, program)
        self.known.update((program_id, programdata_address(program_id)))

    def get_account(self, address: Pubkey) -> Account | None:
        account = self.svm.get_account(address)
        # A cluster purges accounts left with no lamports; LiteSVM keeps them.
        return account if account is not None and account.lamports > 0 else None

    def set_account(self, address: Pubkey, account: Account) -> None:
        self.svm.set_account(address, account)
        self.known.add(address)
        if self.observers:
            self._emit("account", address)

    def _emit(self, kind: str, payload: object) -> None:
        for observer in self.observers:
            observer(kind, payload)

    def accounts_owned_by(self, owner: Pubkey) -> Iterator[tuple[Pubkey, Account]]:
        """The accounts ``owner`` owns, by address."""
        if self._native_program_accounts:
            found = self.svm.get_program_accounts(owner)  # type: ignore[attr-defined,unused-ignore]
            for address, account in sorted(found, key=lambda pair: bytes(pair[0])):
                if account.lamports > 0:
                    yield address, account
            return
        for address in sorted(self.known, key=bytes):
            known = self.get_account(address)
            if known is not None and known.owner == owner:
                yield address, known

    def balance(self, address: Pubkey) -> int:
        return self.svm.get_balance(address) or 0

    def minimum_balance_for_rent_exemption(self, size: int) -> int:
        return self.svm.minimum_balance_for_rent_exemption(size)

    # -- clock --------------------------------------------------------------
    def sync_clock(self) -> Clock:
        """Bring the slot and the Clock sysvar up to wall time (when the clock runs)."""
        self._sync()
        return self.svm.get_clock()

    def _sync(self) -> int:
        """:meth:`sync_clock`, giving the unix time."""
        clock = self.clock
        if clock.frozen:
            unix = clock.unix_base
            self.slot = max(self.slot, clock.slot_base)
        else:
            unix = clock.unix_now()
            self.slot = max(self.slot, clock.slot_floor())
        synced = (self.slot, unix)
        if self._synced != synced:
            if self.observers and (self._synced is None or self._synced[0] != self.slot):
                self._emit("slot", self.slot)
            epoch = self._schedule.get_epoch(self.slot)
            self.svm.set_clock(Clock(self.slot, clock.unix_base, epoch, epoch + 1, unix))
            self._synced = synced
        return unix

    def epoch_info(self) -> dict[str, int]:
        self.sync_clock()
        schedule = self.svm.get_epoch_schedule()
        epoch, index = schedule.get_epoch_and_slot_index(self.slot)
        return {
            "absoluteSlot": self.slot,
            "blockHeight": self.block_height,
            "epoch": epoch,
            "slotIndex": index,
            "slotsInEpoch": schedule.get_slots_in_epoch(epoch),
            "transactionCount": self.transaction_count,
        }

    def time_travel(
        self, *, timestamp_ms: int | None = None, slot: int | None = None, epoch: int | None = None
    ) -> dict[str, int]:
        """Move the clock forward to a unix time (ms), a slot or an epoch (surfnet_timeTravel).

        A unix time moves the slot by one per ``SLOT_MS`` elapsed, a slot moves the
        unix time likewise; the past raises TimeTravelError."""
        current = self.sync_clock()
        if epoch is not None:
            slot = self.svm.get_epoch_schedule().get_first_slot_in_epoch(epoch)
        if slot is not None:
            if slot < self.slot:
                raise TimeTravelError(f"Cannot travel to past slot: target={slot}, current={self.slot}")
            unix = current.unix_timestamp + (slot - self.slot) * SLOT_MS // 1000
        else:
            assert timestamp_ms is not None
            unix = timestamp_ms // 1000
            if timestamp_ms < current.unix_timestamp * 1000:
                raise TimeTravelError(
                    f"Cannot travel to past timestamp: target={timestamp_ms}, current={current.unix_timestamp * 1000}"
                )
            slot = self.slot + (unix - current.unix_timestamp) * 1000 // SLOT_MS
        self.slot = slot
        self.clock = ClockState(self.clock.frozen, unix, time.monotonic(), slot)
        return self.epoch_info()

    def pause_clock(self) -> dict[str, int]:
        self.sync_clock()
        self.clock = ClockState(True, self.clock.unix_now(), time.monotonic(), self.slot)
        return self.epoch_info()

    def resume_clock(self) -> dict[str, int]:
        self.sync_clock()
        self.clock = ClockState(False, self.clock.unix_now(), time.monotonic(), self.slot)
        return self.epoch_info()

    # -- blockhashes ---------------------------------------------------------
    @property
    def latest_blockhash(self) -> tuple[Hash, int]:
        """The latest blockhash and the last block height it is valid at."""
        return self.latest_hash, self.blockhashes[self.latest_hash]

    def blockhash_valid(self, blockhash: Hash) -> bool:
        last_valid = self.blockhashes.get(blockhash)
        return last_valid is not None and self.block_height <= last_valid

    def _new_block(self) -> None:
        self.slot += 1
        self.block_height += 1
        self.svm.expire_blockhash()
        latest = self.latest_hash = self.svm.latest_blockhash()
        self.blockhashes[latest] = self.block_height + BLOCKHASH_VALIDITY
        self._blockhash_order.append(latest)
        while len(self._blockhash_order) > 2 * BLOCKHASH_VALIDITY:
            del self.blockhashes[self._blockhash_order.popleft()]
        self._sync()

    # -- fees ------------------------------------------------------------------
    def fee(self, message: Message | MessageV0) -> int:
        """What a validator charges for ``message``: signatures and the priority fee."""
        signatures, priority, _ = message_fees(message)
        return signatures + priority

    def recent_prioritization_fees(
        self, addresses: set[Pubkey] | frozenset[Pubkey] = frozenset()
    ) -> list[tuple[int, int]]:
        """(slot, compute-unit price) of the last 150 blocks; 0 where none of ``addresses`` is written."""
        return [
            (slot, price if not addresses or addresses & writable_keys(message) else 0)
            for slot, price, message in self._priority_fees
        ]

    # -- transactions ---------------------------------------------------------
    @staticmethod
    def message_of(tx: VersionedTransaction) -> Message | MessageV0:
        """The legacy or v0 message of ``tx``; a v1 message (solders >= 0.29 parses them) is refused."""
        message = tx.message
        if isinstance(message, Message | MessageV0):
            return message
        raise TransactionRejected(TransactionErrorFieldless.UnsupportedVersion)

    def _verify(self, tx: VersionedTransaction) -> bool:
        return all(tx.verify_with_results())

    def simulate(
        self,
        tx: VersionedTransaction,
        *,
        sig_verify: bool,
        replace_blockhash: bool,
        post_accounts: bool = False,
    ) -> Simulation:
        """Run ``tx`` without committing anything; ``post_accounts`` keeps the accounts it left."""
        self.sync_clock()
        if not replace_blockhash and not self.blockhash_valid(tx.message.recent_blockhash):
            return Simulation(TransactionErrorFieldless.BlockhashNotFound, [], 0)
        if sig_verify and not self._verify(tx):
            return Simulation(TransactionErrorFieldless.SignatureFailure, [], 0)
        outcome = self.svm.simulate_transaction(tx)
        if isinstance(outcome, FailedTransactionMetadata):
            meta = outcome.meta()
            return Simulation(
                outcome.err(),
                list(meta.logs()),
                meta.compute_units_consumed(),
                return_data=metadata_return_data(meta),
            )
        meta = outcome.meta()
        return Simulation(
            None,
            list(meta.logs()),
            meta.compute_units_consumed(),
            dict(outcome.post_accounts()) if post_accounts else {},
            list(meta.inner_instructions()),
            metadata_return_data(meta),
        )

    def execute(self, tx: VersionedTransaction, *, sig_verify: bool = True) -> TxRecord:
        """Run ``tx`` in a new block; TransactionRejected if it could not even be executed.

        ``sig_verify=False`` when the caller has verified the signatures, or made them."""
        block_time = self._sync()
        signature = tx.signatures[0]
        message = self.message_of(tx)
        # A validator checks the blockhash's age before its status cache.
        if not self.blockhash_valid(message.recent_blockhash):
            raise TransactionRejected(TransactionErrorFieldless.BlockhashNotFound)
        if signature in self.history:
            raise TransactionRejected(TransactionErrorFieldless.AlreadyProcessed)
        if sig_verify and not self._verify(tx):
            raise TransactionRejected(TransactionErrorFieldless.SignatureFailure)
        keys = list(message.account_keys)
        payer = keys[0]
        balance = self.svm.get_balance
        pre = [balance(k) or 0 for k in keys]
        signature_fee, priority_fee, price = message_fees(message, keys)
        fee = signature_fee + priority_fee
        # solders 0.26's LiteSVM charges the signature fee but not the priority
        # fee; a validator takes both before executing, so take it here first.
        priority = 0 if self._takes_priority_fee else priority_fee
        if priority and pre[0] < fee:
            raise TransactionRejected(TransactionErrorFieldless.InsufficientFundsForFee)
        if priority:
            self._adjust_lamports(payer, -priority)
        outcome = self.svm.send_transaction(tx)
        meta: TransactionMetadata
        if isinstance(outcome, FailedTransactionMetadata):
            meta, err = outcome.meta(), outcome.err()
            # Nothing committed (not even the fee): the transaction never ran.
            if (balance(payer) or 0) == pre[0] - priority:
                if priority:
                    self._adjust_lamports(payer, priority)
                raise TransactionRejected(err, meta.logs(), meta.compute_units_consumed())
        else:
            meta, err = outcome, None
        record = TxRecord(
            signature=signature,
            slot=self.slot,
            block_time=block_time,
            transaction=tx,
            err=err,
            logs=list(meta.logs()),
            compute_units=meta.compute_units_consumed(),
            # What LiteSVM took where it says so (solders >= 0.28: its default compute-unit
            # limit reserves 3,000 CU, not 200,000, for a builtin instruction).
            fee=cast(_HasFee, meta).fee() if self._meta_fee else fee,
            pre_balances=pre,
            post_balances=[balance(k) or 0 for k in keys],
            inner_instructions=list(meta.inner_instructions()),
            return_data=metadata_return_data(meta),
        )
        history = self.history
        history[signature] = record
        if len(history) > self.history_limit:
            del history[next(iter(history))]
        if not self._native_program_accounts:
            self.known.update(keys)
        self._priority_fees.append((self.slot, price, message))
        self.transaction_count += 1
        previous_hash = self.latest_hash
        self._new_block()
        record.block = (self.block_height, self.latest_hash, previous_hash)
        if self.observers:
            self._emit("transaction", record)
        return record

    def _adjust_lamports(self, address: Pubkey, delta: int) -> None:
        account = self.svm.get_account(address)
        assert account is not None
        self.svm.set_account(
            address,
            Account(account.lamports + delta, account.data, account.owner, account.executable, account.rent_epoch),
        )

    def airdrop(self, address: Pubkey, lamports: int) -> TxRecord:
        """A faucet transfer, executed like any transaction (it shows up in the history)."""
        payment = transfer(TransferParams(from_pubkey=self.faucet_address, to_pubkey=address, lamports=lamports))
        message = Message.new_with_blockhash([payment], self.faucet_address, self.latest_hash)
        return self.execute(signed_transaction(message, [self.faucet]), sig_verify=False)
