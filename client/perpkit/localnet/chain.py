"""The chain behind ``perpkit localnet``: LiteSVM plus what a validator keeps around it.

LiteSVM executes transactions; this class adds the validator's bookkeeping
that the JSON-RPC API exposes: slots and block heights, a window of recent
blockhashes, the clock (following wall time, or frozen, and moved by time
travel), a transaction history with balances and logs, an index of known
accounts (for ``getProgramAccounts``), prioritization fees and a faucet.

Blocks are produced on demand, one per executed transaction (as anvil does
with automine): the transaction is final as soon as ``sendTransaction``
returns, a new blockhash is issued, and the last 150 stay valid.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from solders.account import Account
from solders.clock import Clock
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction, VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata, InnerInstruction, TransactionMetadata
from solders.transaction_status import TransactionErrorFieldless

from perpkit.backends.base import ReturnData
from perpkit.backends.litesvm import metadata_return_data
from perpkit.compute_budget import compute_budget_of, prioritization_fee
from perpkit.runtime import Features, install_program, litesvm_charges_priority_fee, new_litesvm, programdata_address

LAMPORTS_PER_SIGNATURE = 5_000
BLOCKHASH_VALIDITY = 150
"""Block heights a blockhash stays valid, as on a cluster."""
SLOT_MS = 400
FAUCET_LAMPORTS = 500_000_000 * 1_000_000_000


class TransactionRejected(Exception):
    """The transaction was not executed (no block, no fee): bad blockhash, duplicate, no fee payer..."""

    def __init__(self, err: object) -> None:
        self.err = err
        super().__init__(str(err))


@dataclass
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
        """The slot wall time has reached (400 ms a slot) when the clock runs."""
        if self.frozen:
            return self.slot_base
        return self.slot_base + int((time.monotonic() - self.mono_base) * 1000) // SLOT_MS


class TimeTravelError(Exception):
    """Time travel to the past."""


class LocalChain:
    """LiteSVM with a validator's bookkeeping; single-threaded (the server serialises calls)."""

    def __init__(
        self, *, start_time: int | None = None, frozen_clock: bool = False, features: Features = "mainnet"
    ) -> None:
        self.features: Features = features
        self.svm = new_litesvm(features)
        # Blockhashes are checked here against a window of recent ones; LiteSVM
        # alone accepts only its latest.
        self.svm.with_blockhash_check(False)
        self.svm.with_transaction_history(100_000)
        now = int(time.time()) if start_time is None else start_time
        self.clock = ClockState(frozen=frozen_clock, unix_base=now, mono_base=time.monotonic(), slot_base=0)
        self.slot = 0
        self.block_height = 0
        self.transaction_count = 0
        self.genesis_hash = self.svm.latest_blockhash()
        self.blockhashes: dict[Hash, int] = {self.genesis_hash: BLOCKHASH_VALIDITY}
        self._blockhash_order: deque[Hash] = deque([self.genesis_hash])
        self.history: dict[Signature, TxRecord] = {}
        self.known: set[Pubkey] = set()
        self.prioritization_fees: deque[tuple[int, int, frozenset[Pubkey]]] = deque(maxlen=150)
        self.faucet = Keypair()
        self.set_account(self.faucet.pubkey(), Account(FAUCET_LAMPORTS, b"", SYSTEM_PROGRAM_ID, False, 0))
        self.sync_clock()

    # -- programs and accounts ----------------------------------------------
    def load_program(self, program_id: Pubkey, path: Path | str) -> None:
        """Install a program under the upgradeable loader (``--upgradeable-program ID FILE none``)."""
        install_program(self.svm, program_id, path)
        self.known.update((program_id, programdata_address(program_id)))

    def get_account(self, address: Pubkey) -> Account | None:
        account = self.svm.get_account(address)
        return account if account is not None and account.lamports > 0 else None

    def set_account(self, address: Pubkey, account: Account) -> None:
        self.svm.set_account(address, account)
        self.known.add(address)

    def accounts_owned_by(self, owner: Pubkey) -> Iterator[tuple[Pubkey, Account]]:
        for address in sorted(self.known, key=bytes):
            account = self.get_account(address)
            if account is not None and account.owner == owner:
                yield address, account

    def balance(self, address: Pubkey) -> int:
        account = self.get_account(address)
        return 0 if account is None else account.lamports

    # -- clock --------------------------------------------------------------
    def sync_clock(self) -> Clock:
        """Bring the slot and the Clock sysvar up to wall time (when the clock runs)."""
        self.slot = max(self.slot, self.clock.slot_floor())
        unix = self.clock.unix_now()
        schedule = self.svm.get_epoch_schedule()
        epoch = schedule.get_epoch(self.slot)
        clock = Clock(self.slot, self.clock.unix_base, epoch, epoch + 1, unix)
        self.svm.set_clock(clock)
        return clock

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
        """Move the clock forward to a unix time (ms), a slot or an epoch (surfnet_timeTravel)."""
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
        latest = self._blockhash_order[-1]
        return latest, self.blockhashes[latest]

    def blockhash_valid(self, blockhash: Hash) -> bool:
        last_valid = self.blockhashes.get(blockhash)
        return last_valid is not None and self.block_height <= last_valid

    def _new_block(self) -> None:
        self.slot += 1
        self.block_height += 1
        self.svm.expire_blockhash()
        latest = self.svm.latest_blockhash()
        self.blockhashes[latest] = self.block_height + BLOCKHASH_VALIDITY
        self._blockhash_order.append(latest)
        while len(self._blockhash_order) > 2 * BLOCKHASH_VALIDITY:
            del self.blockhashes[self._blockhash_order.popleft()]
        self.sync_clock()

    # -- transactions ---------------------------------------------------------
    @staticmethod
    def message_of(tx: VersionedTransaction) -> Message | MessageV0:
        """The legacy or v0 message of ``tx``; a v1 message (solders >= 0.29 parses them) is refused."""
        message = tx.message
        if isinstance(message, Message | MessageV0):
            return message
        raise TransactionRejected(TransactionErrorFieldless.UnsupportedVersion)

    def fee(self, message: Message | MessageV0) -> int:
        signatures: int = message.header.num_required_signatures
        return signatures * LAMPORTS_PER_SIGNATURE + prioritization_fee(message)

    def simulate(self, tx: VersionedTransaction, *, sig_verify: bool, replace_blockhash: bool) -> Simulation:
        self.sync_clock()
        if not replace_blockhash and not self.blockhash_valid(tx.message.recent_blockhash):
            return Simulation(TransactionErrorFieldless.BlockhashNotFound, [], 0)
        if not sig_verify:
            self.svm.with_sigverify(False)
        try:
            outcome = self.svm.simulate_transaction(tx)
        finally:
            self.svm.with_sigverify(True)
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
            dict(outcome.post_accounts()),
            list(meta.inner_instructions()),
            metadata_return_data(meta),
        )

    def execute(self, tx: VersionedTransaction) -> TxRecord:
        """Run ``tx`` in a new block; TransactionRejected if it could not even be executed."""
        self.sync_clock()
        signature = tx.signatures[0]
        if signature in self.history:
            raise TransactionRejected(TransactionErrorFieldless.AlreadyProcessed)
        if not self.blockhash_valid(tx.message.recent_blockhash):
            raise TransactionRejected(TransactionErrorFieldless.BlockhashNotFound)
        message = self.message_of(tx)
        keys = list(message.account_keys)
        payer = keys[0]
        pre = [self.balance(k) for k in keys]
        # solders 0.26's LiteSVM charges the signature fee but not the priority
        # fee; a validator takes both before executing, so take it here first.
        priority = 0 if litesvm_charges_priority_fee() else prioritization_fee(message)
        if priority and pre[0] < self.fee(message):
            raise TransactionRejected(TransactionErrorFieldless.InsufficientFundsForFee)
        if priority:
            self._adjust_lamports(payer, -priority)
        outcome = self.svm.send_transaction(tx)
        meta: TransactionMetadata
        if isinstance(outcome, FailedTransactionMetadata):
            meta, err = outcome.meta(), outcome.err()
            # Nothing committed (not even the fee): the transaction never ran.
            if self.balance(payer) == pre[0] - priority:
                if priority:
                    self._adjust_lamports(payer, priority)
                raise TransactionRejected(err)
        else:
            meta, err = outcome, None
        clock = self.svm.get_clock()
        record = TxRecord(
            signature=signature,
            slot=self.slot,
            block_time=clock.unix_timestamp,
            transaction=tx,
            err=err,
            logs=list(meta.logs()),
            compute_units=meta.compute_units_consumed(),
            fee=self.fee(message),
            pre_balances=pre,
            post_balances=[self.balance(k) for k in keys],
            inner_instructions=list(meta.inner_instructions()),
            return_data=metadata_return_data(meta),
        )
        self.history[signature] = record
        self.known.update(keys)
        self.prioritization_fees.append((self.slot, compute_budget_of(message)[1], writable_keys(message)))
        self.transaction_count += 1
        self._new_block()
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
        latest, _ = self.latest_blockhash
        payment = transfer(TransferParams(from_pubkey=self.faucet.pubkey(), to_pubkey=address, lamports=lamports))
        message = Message([payment], self.faucet.pubkey())
        tx = VersionedTransaction.from_legacy(Transaction([self.faucet], message, latest))
        return self.execute(tx)


def writable_keys(message: Message | MessageV0) -> frozenset[Pubkey]:
    """The static account keys a message may write, from its header."""
    header = message.header
    keys = list(message.account_keys)
    signed = header.num_required_signatures
    writable_signed = signed - header.num_readonly_signed_accounts
    writable_unsigned_end = len(keys) - header.num_readonly_unsigned_accounts
    return frozenset(k for i, k in enumerate(keys) if i < writable_signed or signed <= i < writable_unsigned_end)
