"""One in-process chain: the same scenario, embedded and over the localnet's JSON-RPC, observed alike.

The embedded backend and ``perpkit localnet`` run on the same
:class:`perpkit.chain.Chain`; each test here runs one scenario on both (the
session's localnet, frozen clock) and compares what each side observes: fees
with a priority fee, old blockhashes inside and outside the window, a
transaction's history entry, and the clock after time travel.  Absolute
balances, slots and times differ between the two (the localnet is shared with
other tests), so the observations are differences.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import pytest
import pytest_asyncio
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import Transaction, VersionedTransaction

from perpkit import Client, pda
from perpkit import instructions as ix
from perpkit.backends.errors import tx_error_from_solders
from perpkit.backends.litesvm import LiteSvmBackend
from perpkit.chain import BLOCKHASH_VALIDITY, Chain, TransactionRejected
from perpkit.checks import pubkey_of, signed_message, signed_transaction
from perpkit.errors import PerpkitError
from perpkit.pytest_plugin import START_TIME
from perpkit.runtime import SLOT_MS
from perpkit.testing import create_oracle

SOL = 1_000_000_000


@dataclass(frozen=True)
class Entry:
    """What a history entry says, minus what differs between two chains (slot, time, absolute balances)."""

    ok: bool
    fee: int
    balance_changes: list[int]
    logs: list[str]
    compute_units: int
    return_data: bytes | None


class Side(Protocol):
    client: Client

    async def latest_blockhash(self) -> Hash: ...

    async def send_raw(self, tx: VersionedTransaction) -> str | None:
        """None if the chain executed it, else the reason it refused it (the runtime's error name)."""
        ...

    async def entry(self, signature: str) -> Entry: ...


class Embedded:
    def __init__(self, client: Client) -> None:
        assert isinstance(client.backend, LiteSvmBackend)
        self.client = client
        self.chain: Chain = client.backend.chain

    async def latest_blockhash(self) -> Hash:
        return self.chain.latest_blockhash[0]

    async def send_raw(self, tx: VersionedTransaction) -> str | None:
        try:
            self.chain.execute(tx)
        except TransactionRejected as rejected:
            return tx_error_from_solders(rejected.err).message
        return None

    async def entry(self, signature: str) -> Entry:
        record = self.chain.history[Signature.from_string(signature)]
        return Entry(
            ok=record.err is None,
            fee=record.fee,
            balance_changes=[post - pre for pre, post in zip(record.pre_balances, record.post_balances, strict=True)],
            logs=record.logs,
            compute_units=record.compute_units,
            return_data=None if record.return_data is None else record.return_data.data,
        )


class OverRpc:
    def __init__(self, client: Client, url: str, http: httpx.AsyncClient) -> None:
        self.client = client
        self.url = url
        self.http = http

    async def call(self, method: str, params: list[Any]) -> dict[str, Any]:
        response = await self.http.post(self.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        answer: dict[str, Any] = response.json()
        return answer

    async def latest_blockhash(self) -> Hash:
        answer = await self.call("getLatestBlockhash", [])
        return Hash.from_string(answer["result"]["value"]["blockhash"])

    async def send_raw(self, tx: VersionedTransaction) -> str | None:
        answer = await self.call("sendTransaction", [base64.b64encode(bytes(tx)).decode(), {"encoding": "base64"}])
        if "error" in answer:
            err = answer["error"]["data"]["err"]
            return err if isinstance(err, str) else str(err)
        assert answer["result"] == str(tx.signatures[0])
        return None

    async def entry(self, signature: str) -> Entry:
        answer = await self.call(
            "getTransaction", [signature, {"encoding": "json", "maxSupportedTransactionVersion": 0}]
        )
        meta = answer["result"]["meta"]
        return_data = meta.get("returnData")
        return Entry(
            ok=meta["err"] is None,
            fee=meta["fee"],
            balance_changes=[post - pre for pre, post in zip(meta["preBalances"], meta["postBalances"], strict=True)],
            logs=meta["logMessages"],
            compute_units=meta["computeUnitsConsumed"],
            return_data=None if return_data is None else base64.b64decode(return_data["data"][0]),
        )


@pytest_asyncio.fixture
async def sides(perps_rpc_url: str) -> AsyncIterator[tuple[Side, Side]]:
    """The same scenario's two sides: an embedded client, and a client of the session's localnet."""
    embedded = await Client.embedded(start_time=START_TIME)
    remote = await Client.connect(perps_rpc_url, airdrop_lamports=100 * SOL)
    async with httpx.AsyncClient(timeout=10) as http:
        try:
            yield Embedded(embedded), OverRpc(remote, perps_rpc_url, http)
        finally:
            await embedded.close()
            await remote.close()


def price_update(client: Client, price: int) -> Instruction:
    payer = client.payer.pubkey()
    return ix.set_oracle_price(
        authority=payer, oracle=pda.oracle_address(payer, 0), price=price, conf=0, publish_time=START_TIME
    )


def signed_with(client: Client, blockhash: Hash, instruction: Instruction) -> VersionedTransaction:
    payer = client.payer
    return VersionedTransaction.from_legacy(Transaction([payer], Message([instruction], payer.pubkey()), blockhash))


async def balance(client: Client) -> int:
    account = await client.backend.get_account(client.payer.pubkey())
    assert account is not None
    return account.lamports


async def test_fees_with_a_priority_fee_are_the_same(sides: tuple[Side, Side]) -> None:
    observed = []
    for side in sides:
        c = side.client
        await create_oracle(c, price=100_000_000)
        before = await balance(c)
        result = await c.send([price_update(c, 101_000_000)], compute_unit_limit=10_000, compute_unit_price=2_500_000)
        # the priority fee is ceil(10,000 CU x 2.5 lamports) = 25,000 lamports, on both LiteSVM generations
        observed.append((before - await balance(c), (await side.entry(result.signature)).fee))
    assert observed[0] == observed[1] == (5_000 + 25_000, 5_000 + 25_000)


async def test_an_old_blockhash_is_accepted_within_the_window_only(sides: tuple[Side, Side]) -> None:
    observed = []
    for side in sides:
        c = side.client
        await create_oracle(c, price=100_000_000)
        old = await side.latest_blockhash()  # valid for the next BLOCKHASH_VALIDITY blocks (lastValidBlockHeight)
        inside = signed_with(c, old, price_update(c, 1))
        outside = signed_with(c, old, price_update(c, 2))
        for n in range(BLOCKHASH_VALIDITY - 1):
            await c.send([price_update(c, 1_000 + n)])
        assert await side.latest_blockhash() != old
        accepted = await side.send_raw(inside)  # the 150th block after the old blockhash's
        duplicate = await side.send_raw(inside)
        await c.send([price_update(c, 3)])
        observed.append((accepted, duplicate, await side.send_raw(outside)))
    assert observed[0] == observed[1] == (None, "AlreadyProcessed", "BlockhashNotFound")


async def test_a_transactions_history_entry_is_the_same(sides: tuple[Side, Side]) -> None:
    entries = []
    for side in sides:
        c = side.client
        await create_oracle(c, price=100_000_000)
        result = await c.send([price_update(c, 99_000_000)], compute_unit_price=1_000)
        entries.append(await side.entry(result.signature))
    assert entries[0] == entries[1]
    assert entries[0].ok and entries[0].fee > 5_000  # about 200,000 CU x 0.001 lamports of priority fee
    assert entries[0].balance_changes[0] == -entries[0].fee
    assert entries[0].logs[-1].endswith("success")


async def test_the_clock_after_set_clock_is_the_same(sides: tuple[Side, Side]) -> None:
    observed = []
    for side in sides:
        c = side.client
        await create_oracle(c, price=100_000_000)
        before = await c.clock()
        await c.set_time(before.unix_timestamp + 3_600)
        after = await c.clock()
        await c.send([price_update(c, 7)])
        after_a_block = await c.clock()
        observed.append(
            (
                after.unix_timestamp - before.unix_timestamp,
                after.slot - before.slot,
                after_a_block.unix_timestamp - after.unix_timestamp,
                after_a_block.slot - after.slot,
            )
        )
    assert observed[0] == observed[1] == (3_600, 3_600 * 1_000 // SLOT_MS, 0, 1)


async def test_embedded_sends_of_the_same_instructions_are_two_transactions() -> None:
    c = await Client.embedded(start_time=START_TIME)
    await create_oracle(c, price=100_000_000)
    update = price_update(c, 5)
    first, second = await c.send([update]), await c.send([update])
    assert first.signature != second.signature
    assert first.ok and second.ok


async def test_embedded_time_travel_to_the_past_is_refused_as_over_rpc() -> None:
    c = await Client.embedded(start_time=START_TIME)
    with pytest.raises(PerpkitError, match="time travel refused: Cannot travel to past timestamp"):
        await c.set_time(START_TIME - 1)


def test_signed_transaction_gives_the_signatures_solders_gives() -> None:
    payer, other = Keypair(), Keypair()
    instruction = Instruction(
        Pubkey.new_unique(), b"\x01", [AccountMeta(other.pubkey(), is_signer=True, is_writable=False)]
    )
    blockhash = Hash.new_unique()
    message = signed_message([instruction], [payer, other], blockhash)
    ours = signed_transaction(message, [other, payer])  # the order of the signers does not matter
    theirs = Transaction([payer, other], Message([instruction], payer.pubkey()), blockhash)
    assert bytes(ours) == bytes(VersionedTransaction.from_legacy(theirs))
    assert all(ours.verify_with_results())
    assert pubkey_of(payer) == payer.pubkey()
