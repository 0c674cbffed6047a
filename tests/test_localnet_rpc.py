"""perpkit localnet as a JSON-RPC server: each method against what solana-py parses, and bad requests.

The server is the session's ``perpkit localnet`` subprocess (frozen clock),
shared with the RPC runs of the end-to-end scenarios; every test uses fresh
keys so it does not depend on what ran before.
"""

from __future__ import annotations

import base64
import json
import random
import struct
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from conftest import rpc
from solana.rpc.async_api import AsyncClient
from solana.rpc.core import RPCException

try:  # solana-py >= 0.40 (the default lane)
    from solana.rpc.models import MemcmpOpts, TxOpts
except ImportError:  # solana 0.36 (the anchorpy lane)
    from solana.rpc.types import MemcmpOpts, TxOpts  # type: ignore[attr-defined,no-redef]
from solana.constants import LAMPORTS_PER_SOL
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.rpc.errors import SendTransactionPreflightFailureMessage
from solders.rpc.responses import GetTransactionResp, IsBlockhashValidResp
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.sysvar import CLOCK
from solders.transaction import Transaction, VersionedTransaction
from solders.transaction_status import InstructionErrorCustom, TransactionErrorInstructionError

from perpkit import Client, pda
from perpkit import instructions as ix
from perpkit.base58 import b58encode
from perpkit.compute_budget import set_compute_unit_limit, set_compute_unit_price
from perpkit.idl import PROGRAM_ID, perps_idl
from perpkit.runtime import programdata_address
from perpkit.testing import create_mint, create_token_account, mint_to, setup_market


@pytest_asyncio.fixture
async def solana(perps_rpc_url: str) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(perps_rpc_url) as client:
        yield client


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


RENT0 = 890_880
"""Rent-exempt minimum of an empty account: the mainnet feature set refuses a transfer that
leaves a new account with less (InsufficientFundsForRent)."""


async def funded(solana: AsyncClient, lamports: int = 10 * LAMPORTS_PER_SOL) -> Keypair:
    key = Keypair()
    sig = (await solana.request_airdrop(key.pubkey(), lamports)).value
    await solana.confirm_transaction(sig)
    return key


def transfer_tx(payer: Keypair, to: Pubkey, lamports: int, blockhash: Hash, *extra: Any) -> Transaction:
    ixs = [*extra, transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=to, lamports=lamports))]
    return Transaction([payer], Message(ixs, payer.pubkey()), blockhash)


# -- the methods, parsed by solana-py --------------------------------------------------


async def test_health_version_slot_height_epoch(
    solana: AsyncClient, http: httpx.AsyncClient, perps_rpc_url: str
) -> None:
    assert (await rpc(http, perps_rpc_url, "getHealth"))["result"] == "ok"
    assert (await http.get(f"{perps_rpc_url}/health")).text == "ok"
    assert (await solana.get_version()).value.solana_core == "2.2.0"
    slot = (await solana.get_slot()).value
    height = (await solana.get_block_height()).value
    info = (await solana.get_epoch_info()).value
    assert info.absolute_slot == slot and info.block_height == height
    assert info.slot_index < info.slots_in_epoch
    assert (await solana.get_genesis_hash()).value == Hash.from_string(
        (await rpc(http, perps_rpc_url, "getGenesisHash"))["result"]
    )


async def test_airdrop_balance_and_signature_status(solana: AsyncClient) -> None:
    key = Keypair()
    sig = (await solana.request_airdrop(key.pubkey(), 3 * LAMPORTS_PER_SOL)).value
    status = (await solana.get_signature_statuses([sig])).value[0]
    assert status is not None and status.err is None and str(status.confirmation_status).endswith("Finalized")
    assert (await solana.get_balance(key.pubkey())).value == 3 * LAMPORTS_PER_SOL
    assert (await solana.get_signature_statuses([Signature.default()])).value == [None]


async def test_blockhashes(solana: AsyncClient, http: httpx.AsyncClient, perps_rpc_url: str) -> None:
    latest = (await solana.get_latest_blockhash()).value
    height = (await solana.get_block_height()).value
    assert latest.last_valid_block_height == height + 150
    valid = await rpc(http, perps_rpc_url, "isBlockhashValid", [str(latest.blockhash), {"commitment": "processed"}])
    assert IsBlockhashValidResp.from_json(json.dumps(valid)).value is True
    bogus = await rpc(http, perps_rpc_url, "isBlockhashValid", [str(Hash.new_unique())])
    assert bogus["result"]["value"] is False


async def test_send_transaction_base58_and_base64(
    solana: AsyncClient, http: httpx.AsyncClient, perps_rpc_url: str
) -> None:
    payer = await funded(solana)
    for encoding, encode in (("base58", b58encode), ("base64", lambda b: base64.b64encode(b).decode())):
        to = Keypair().pubkey()
        blockhash = (await solana.get_latest_blockhash()).value.blockhash
        tx = transfer_tx(payer, to, RENT0 + 12_345, blockhash)
        answer = await rpc(http, perps_rpc_url, "sendTransaction", [encode(bytes(tx)), {"encoding": encoding}])
        assert answer["result"] == str(tx.signatures[0])
        assert (await solana.get_balance(to)).value == RENT0 + 12_345
    # base58 is the default encoding, as on the real RPC
    to = Keypair().pubkey()
    tx = transfer_tx(payer, to, RENT0 + 1, (await solana.get_latest_blockhash()).value.blockhash)
    assert (await rpc(http, perps_rpc_url, "sendTransaction", [b58encode(bytes(tx))]))["result"] == str(
        tx.signatures[0]
    )


async def test_a_copy_of_a_landed_transaction_is_already_processed(
    solana: AsyncClient, http: httpx.AsyncClient, perps_rpc_url: str
) -> None:
    """As agave's preflight: the status cache first, so a resent copy is AlreadyProcessed (not run again);
    without preflight it is accepted and dropped, and the balance moved once."""
    payer = await funded(solana)
    to = Keypair().pubkey()
    tx = transfer_tx(payer, to, RENT0 + 7, (await solana.get_latest_blockhash()).value.blockhash)
    raw = b58encode(bytes(tx))
    assert (await rpc(http, perps_rpc_url, "sendTransaction", [raw]))["result"] == str(tx.signatures[0])
    again = await rpc(http, perps_rpc_url, "sendTransaction", [raw])
    assert again["error"]["code"] == -32002
    assert again["error"]["message"] == "Transaction simulation failed: This transaction has already been processed"
    assert again["error"]["data"]["err"] == "AlreadyProcessed"
    skipped = await rpc(http, perps_rpc_url, "sendTransaction", [raw, {"skipPreflight": True}])
    assert skipped["result"] == str(tx.signatures[0])
    assert (await solana.get_balance(to)).value == RENT0 + 7


async def test_get_transaction_with_logs_fee_and_inner_instructions(solana: AsyncClient) -> None:
    payer = await funded(solana)
    blockhash = (await solana.get_latest_blockhash()).value.blockhash
    create = ix.initialize_oracle(
        authority=payer.pubkey(), oracle_id=7, price=5, conf=0
    )  # CPIs into the system program
    tx = Transaction([payer], Message([create], payer.pubkey()), blockhash)
    sig = (await solana.send_raw_transaction(bytes(tx))).value
    before = (await solana.get_balance(payer.pubkey())).value
    got = await solana.get_transaction(sig, encoding="json", max_supported_transaction_version=0)
    assert isinstance(got, GetTransactionResp) and got.value is not None
    meta = got.value.transaction.meta
    assert meta is not None and meta.err is None
    assert meta.fee == 5000 and meta.pre_balances[0] - meta.post_balances[0] == meta.fee + meta.post_balances[1]
    assert meta.post_balances[0] == before
    assert any("invoke [2]" in line for line in meta.log_messages or [])
    assert meta.compute_units_consumed and meta.compute_units_consumed > 0
    inner = meta.inner_instructions
    assert inner is not None and inner[0].index == 0 and inner[0].instructions
    raw = await solana.get_transaction(sig, encoding="base64", max_supported_transaction_version=0)
    assert raw.value is not None and raw.value.transaction.transaction.signatures[0] == sig  # type: ignore[union-attr]


async def test_preflight_failure_carries_the_program_error(solana: AsyncClient) -> None:
    owner = await funded(solana)
    mallory = await funded(solana)
    created = ix.initialize_oracle(authority=owner.pubkey(), oracle_id=1, price=5, conf=0)
    blockhash = (await solana.get_latest_blockhash()).value.blockhash
    await solana.send_raw_transaction(bytes(Transaction([owner], Message([created], owner.pubkey()), blockhash)))
    oracle = pda.oracle_address(owner.pubkey(), 1)
    bad = ix.set_oracle_price(authority=mallory.pubkey(), oracle=oracle, price=1, conf=0, publish_time=0)
    tx = Transaction([mallory], Message([bad], mallory.pubkey()), blockhash)
    with pytest.raises(RPCException) as caught:
        await solana.send_raw_transaction(bytes(tx))
    failure = caught.value.args[0]
    assert isinstance(failure, SendTransactionPreflightFailureMessage)
    assert (
        failure.message == "Transaction simulation failed: Error processing Instruction 0: custom program error: 0x177f"
    )
    assert failure.data.err == TransactionErrorInstructionError(0, InstructionErrorCustom(6015))
    assert any("Error Code: Unauthorized" in line for line in failure.data.logs or [])
    # with preflight skipped it lands, fails on chain, and pays its fee
    sig = (await solana.send_raw_transaction(bytes(tx), TxOpts(skip_preflight=True))).value
    status = (await solana.get_signature_statuses([sig])).value[0]
    assert status is not None and status.err == TransactionErrorInstructionError(0, InstructionErrorCustom(6015))


async def test_simulate_transaction(solana: AsyncClient, http: httpx.AsyncClient, perps_rpc_url: str) -> None:
    payer = await funded(solana)
    to = Keypair().pubkey()
    tx = transfer_tx(payer, to, RENT0 + 777, (await solana.get_latest_blockhash()).value.blockhash)
    sim = (await solana.simulate_transaction(VersionedTransaction.from_legacy(tx))).value
    assert sim.err is None and sim.units_consumed == 150 and sim.logs
    assert (await solana.get_balance(to)).value == 0  # nothing changed
    unsigned = Transaction.new_unsigned(tx.message)
    answer = await rpc(
        http,
        perps_rpc_url,
        "simulateTransaction",
        [
            base64.b64encode(bytes(unsigned)).decode(),
            {
                "encoding": "base64",
                "replaceRecentBlockhash": True,
                "accounts": {"addresses": [str(to)], "encoding": "base64"},
            },
        ],
    )
    value = answer["result"]["value"]
    assert value["err"] is None and value["replacementBlockhash"]["blockhash"]
    assert value["accounts"][0]["lamports"] == RENT0 + 777


async def test_accounts_encodings_and_slices(solana: AsyncClient, http: httpx.AsyncClient, perps_rpc_url: str) -> None:
    info = (await solana.get_account_info(CLOCK, encoding="base64")).value
    assert info is not None and len(info.data) == 40
    b58 = await rpc(http, perps_rpc_url, "getAccountInfo", [str(CLOCK), {"encoding": "base58"}])
    assert b58["result"]["value"]["data"][1] == "base58"
    sliced = await rpc(
        http,
        perps_rpc_url,
        "getAccountInfo",
        [str(CLOCK), {"encoding": "base64", "dataSlice": {"offset": 32, "length": 8}}],
    )
    unix = struct.unpack("<q", base64.b64decode(sliced["result"]["value"]["data"][0]))[0]
    assert unix == struct.unpack_from("<q", bytes(info.data), 32)[0]
    # the program's ELF is in its program-data account (upgradeable loader): too big for base58
    elf = programdata_address(PROGRAM_ID)
    program = await rpc(http, perps_rpc_url, "getAccountInfo", [str(elf), {"encoding": "base58"}])
    assert program["error"]["code"] == -32600 and "base 58" in program["error"]["message"]
    missing = (await solana.get_account_info(Keypair().pubkey())).value
    assert missing is None
    many = (await solana.get_multiple_accounts([CLOCK, Keypair().pubkey(), PROGRAM_ID])).value
    assert many[0] is not None and many[1] is None and many[2] is not None and many[2].executable


async def test_program_accounts_with_filters(perps_rpc_url: str, solana: AsyncClient) -> None:
    client = await Client.connect(perps_rpc_url, airdrop_lamports=10 * LAMPORTS_PER_SOL)
    try:
        setup = await setup_market(client, book_capacity=4)
    finally:
        await client.close()
    oracle_disc = b58encode(perps_idl().account_discriminator("Oracle"))
    mine = b58encode(bytes(client.payer.pubkey()))
    found = (
        await solana.get_program_accounts(
            PROGRAM_ID,
            encoding="base64",
            filters=[MemcmpOpts(offset=0, bytes=oracle_disc), MemcmpOpts(offset=8, bytes=mine)],
        )
    ).value
    assert [a.pubkey for a in found] == [setup.oracle]
    market_account = (await solana.get_account_info(setup.market)).value
    assert market_account is not None
    filters = [len(market_account.data), MemcmpOpts(offset=8, bytes=mine)]
    sized = (await solana.get_program_accounts(PROGRAM_ID, encoding="base64", filters=filters)).value
    assert [a.pubkey for a in sized] == [setup.market]


async def test_rent_fees_priority_fees_and_token_balance(
    solana: AsyncClient, http: httpx.AsyncClient, perps_rpc_url: str
) -> None:
    assert (await solana.get_minimum_balance_for_rent_exemption(0)).value == 890_880
    payer = await funded(solana)
    blockhash = (await solana.get_latest_blockhash()).value.blockhash
    tx = transfer_tx(
        payer, Keypair().pubkey(), RENT0, blockhash, set_compute_unit_limit(10_000), set_compute_unit_price(2_000)
    )
    assert (await solana.get_fee_for_message(tx.message)).value == 5000 + 20  # ceil(10_000 x 2_000 / 1e6)
    before = (await solana.get_balance(payer.pubkey())).value
    await solana.send_raw_transaction(bytes(tx))
    assert before - (await solana.get_balance(payer.pubkey())).value == RENT0 + 5020
    fees = (await rpc(http, perps_rpc_url, "getRecentPrioritizationFees", [[str(payer.pubkey())]]))["result"]
    assert {"slot", "prioritizationFee"} <= set(fees[-1]) and 2_000 in [f["prioritizationFee"] for f in fees]

    client = await Client.connect(perps_rpc_url, payer=payer)
    try:
        mint = await create_mint(client, decimals=6)
        account = await create_token_account(client, mint, payer.pubkey())
        await mint_to(client, mint, account, 1_234_500)
    finally:
        await client.close()
    balance = (await solana.get_token_account_balance(account)).value
    assert (balance.amount, balance.decimals, balance.ui_amount_string) == ("1234500", 6, "1.2345")
    not_token = await rpc(http, perps_rpc_url, "getTokenAccountBalance", [str(payer.pubkey())])
    assert not_token["error"]["code"] == -32602


async def test_time_travel_and_set_account(solana: AsyncClient, http: httpx.AsyncClient, perps_rpc_url: str) -> None:
    def clock_unix(data: bytes) -> int:
        return int(struct.unpack_from("<q", data, 32)[0])

    info = (await solana.get_account_info(CLOCK)).value
    assert info is not None
    now = clock_unix(bytes(info.data))
    travelled = await rpc(http, perps_rpc_url, "surfnet_timeTravel", [{"absoluteTimestamp": (now + 3600) * 1000}])
    assert {"epoch", "slotIndex", "slotsInEpoch", "absoluteSlot", "blockHeight"} <= set(travelled["result"])
    info = (await solana.get_account_info(CLOCK)).value
    assert info is not None and clock_unix(bytes(info.data)) == now + 3600
    past = await rpc(http, perps_rpc_url, "surfnet_timeTravel", [{"absoluteTimestamp": now * 1000}])
    assert past["error"]["code"] == -32603 and "Cannot travel to past timestamp" in past["error"]["data"]
    slot = (await solana.get_slot()).value
    assert (await rpc(http, perps_rpc_url, "surfnet_timeTravel", [{"absoluteSlot": slot + 10}]))["result"][
        "absoluteSlot"
    ] == slot + 10

    target = Keypair().pubkey()
    owner = Keypair().pubkey()
    set_it = await rpc(
        http,
        perps_rpc_url,
        "surfnet_setAccount",
        [str(target), {"lamports": 42_000, "data": "deadbeef", "owner": str(owner)}],
    )
    assert set_it["result"]["value"] is None and "slot" in set_it["result"]["context"]
    account = (await solana.get_account_info(target)).value
    assert account is not None and (account.lamports, bytes(account.data), account.owner) == (
        42_000,
        b"\xde\xad\xbe\xef",
        owner,
    )
    assert (await rpc(http, perps_rpc_url, "surfnet_setAccount", [str(target), {"data": "xyz"}]))["error"][
        "code"
    ] == -32602


# -- bad requests ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", -32700),
        (b"", -32700),
        (b"[]", -32600),
        (b"42", -32600),
        (b'{"jsonrpc": "1.0", "id": 1, "method": "getSlot"}', -32600),
        (b'{"jsonrpc": "2.0", "id": 1}', -32600),
        (b'{"jsonrpc": "2.0", "id": [1], "method": "getSlot"}', -32600),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "getSlotz"}', -32601),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "getBalance", "params": {"pubkey": 1}}', -32602),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "getBalance", "params": ["not-a-key"]}', -32602),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "getBalance"}', -32602),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "getSlot", "params": [{"commitment": "eventually"}]}', -32602),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "sendTransaction", "params": ["!!!"]}', -32602),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "sendTransaction", "params": ["AAAA", {"encoding": "base64"}]}', -32602),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "getAccountInfo", "params": ["11111111111111111111111111111111", {"encoding": "yaml"}]}', -32602),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "getMultipleAccounts", "params": [' + json.dumps(["11111111111111111111111111111111"] * 101).encode() + b"]}", -32602),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "requestAirdrop", "params": ["11111111111111111111111111111111", -5]}', -32602),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "getProgramAccounts", "params": ["11111111111111111111111111111111", {"filters": [{"nope": 1}]}]}', -32602),
    ],
)  # fmt: skip
async def test_malformed_requests_get_json_rpc_errors(
    http: httpx.AsyncClient, perps_rpc_url: str, body: bytes, code: int
) -> None:
    response = await http.post(perps_rpc_url, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    answer = response.json()
    assert answer["jsonrpc"] == "2.0" and answer["error"]["code"] == code, answer
    assert isinstance(answer["error"]["message"], str) and answer["error"]["message"]


async def test_batches_and_notifications(http: httpx.AsyncClient, perps_rpc_url: str) -> None:
    batch = [
        {"jsonrpc": "2.0", "id": "a", "method": "getHealth"},
        {"jsonrpc": "2.0", "method": "getSlot"},  # a notification: no answer
        {"jsonrpc": "2.0", "id": 7, "method": "nope"},
        5,
    ]
    answers = (await http.post(perps_rpc_url, json=batch)).json()
    assert [a.get("id") for a in answers] == ["a", 7, None]
    assert (
        answers[0]["result"] == "ok" and answers[1]["error"]["code"] == -32601 and answers[2]["error"]["code"] == -32600
    )
    only_notification = await http.post(perps_rpc_url, json={"jsonrpc": "2.0", "method": "getSlot"})
    assert only_notification.status_code == 204
    assert (await http.get(perps_rpc_url)).status_code == 405


async def test_server_survives_a_thousand_garbage_requests(
    http: httpx.AsyncClient, perps_rpc_url: str, solana: AsyncClient
) -> None:
    rng = random.Random(1234)
    methods = ["getBalance", "getAccountInfo", "sendTransaction", "simulateTransaction", "getTransaction",
               "getProgramAccounts", "surfnet_timeTravel", "surfnet_setAccount", "getSignatureStatuses", "nope"]  # fmt: skip
    values: list[Any] = [None, 0, -1, 2**70, "", "x" * 300, [], {}, [[1]], {"encoding": "base58"}, True, 1.5]
    codes: dict[int, int] = {}
    for i in range(1000):
        kind = i % 4
        if kind == 0:
            body = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200)))
        elif kind == 1:
            body = json.dumps([rng.choice(values) for _ in range(rng.randint(0, 5))]).encode()
        elif kind == 2:
            params = [rng.choice(values) for _ in range(rng.randint(0, 3))]
            body = json.dumps({"jsonrpc": "2.0", "id": i, "method": rng.choice(methods), "params": params}).encode()
        else:
            body = json.dumps({"jsonrpc": rng.choice(["2.0", "1.0", 2]), "id": rng.choice(values), "method": rng.choice(values)}).encode()  # fmt: skip
        response = await http.post(perps_rpc_url, content=body)
        assert response.status_code in (200, 204)
        if response.status_code == 200:
            answer = response.json()
            for one in answer if isinstance(answer, list) else [answer]:
                if "error" in one:
                    codes[one["error"]["code"]] = codes.get(one["error"]["code"], 0) + 1
    assert {-32700, -32600, -32601, -32602} <= set(codes), codes
    assert codes.get(-32603, 0) == 0, "no request may hit an internal error"
    # still serving: reads and a real transaction
    assert (await rpc(http, perps_rpc_url, "getHealth"))["result"] == "ok"
    payer = await funded(solana)
    to = Keypair().pubkey()
    await solana.send_raw_transaction(
        bytes(transfer_tx(payer, to, RENT0 + 99, (await solana.get_latest_blockhash()).value.blockhash))
    )
    assert (await solana.get_balance(to)).value == RENT0 + 99
