"""perpkit localnet's ledger and token methods, and ``jsonParsed``, in agave's shapes.

getSignaturesForAddress, getBlock (one transaction a block), getBlockTime,
getBlocks, getFirstAvailableBlock, getTokenAccountsByOwner/ByDelegate,
getTokenSupply, getSupply, getStakeMinimumDelegation, getLargestAccounts;
``encoding: "jsonParsed"`` for accounts (SPL Token, Token-2022, the upgradeable
loader's) and transactions; v0 transactions through address lookup tables
(``loadedAddresses``); ``rentEpoch`` u64::MAX for rent-exempt accounts.  Raw JSON-RPC through httpx, and solana-py where it has
the call, against the session's ``perpkit localnet``.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio
from conftest import rpc
from solana.rpc.async_api import AsyncClient

try:  # solana-py >= 0.40 (the default lane)
    from solana.rpc.models import TokenAccountOpts
except ImportError:  # solana 0.36 (the anchorpy lane)
    from solana.rpc.types import TokenAccountOpts  # type: ignore[attr-defined,no-redef]
import base64

from solana.constants import LAMPORTS_PER_SOL
from solders.address_lookup_table_account import AddressLookupTableAccount
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction, VersionedTransaction

from perpkit import Client
from perpkit.base58 import b58encode
from perpkit.compute_budget import COMPUTE_BUDGET_PROGRAM_ID, set_compute_unit_limit, set_compute_unit_price
from perpkit.spl_token import TOKEN_PROGRAM_ID
from perpkit.testing import create_mint, create_token_account, mint_to

U64_MAX = 2**64 - 1
LOOKUP_TABLE_PROGRAM_ID = Pubkey.from_string("AddressLookupTab1e1111111111111111111111111")
LOADER_V3 = Pubkey.from_string("BPFLoaderUpgradeab1e11111111111111111111111")
TOKEN_2022_PROGRAM_ID = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")


@pytest_asyncio.fixture
async def solana(perps_rpc_url: str) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(perps_rpc_url) as client:
        yield client


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def result(http: httpx.AsyncClient, url: str, method: str, params: Any = None) -> Any:
    answer = await rpc(http, url, method, params)
    assert "error" not in answer, answer
    return answer["result"]


async def funded(solana: AsyncClient, lamports: int = 10 * LAMPORTS_PER_SOL) -> Keypair:
    key = Keypair()
    sig = (await solana.request_airdrop(key.pubkey(), lamports)).value
    await solana.confirm_transaction(sig)
    return key


async def send_transfers(
    solana: AsyncClient, payer: Keypair, to: Pubkey, count: int, budget: bool = False
) -> list[str]:
    signatures = []
    for i in range(count):
        blockhash = (await solana.get_latest_blockhash()).value.blockhash
        instructions = [transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=to, lamports=1_000_000 + i))]
        if budget:
            instructions = [set_compute_unit_limit(10_000), set_compute_unit_price(5), *instructions]
        tx = Transaction([payer], Message(instructions, payer.pubkey()), blockhash)
        signatures.append(str((await solana.send_transaction(tx)).value))
    return signatures


async def set_account(http: httpx.AsyncClient, url: str, owner: Pubkey, data: bytes, lamports: int = 10**8) -> Pubkey:
    """A new account holding ``data``, put there with ``surfnet_setAccount``."""
    address = Keypair().pubkey()
    update = {"lamports": lamports, "data": data.hex(), "owner": str(owner)}
    await result(http, url, "surfnet_setAccount", [str(address), update])
    return address


async def lookup_table(http: httpx.AsyncClient, url: str, addresses: list[Pubkey], authority: Pubkey) -> Pubkey:
    """An active address lookup table holding ``addresses``: the program's bincode ``ProgramState::LookupTable``
    (u32 1; deactivation slot u64::MAX, last extended slot 0 and its start index; Some(authority); u16
    padding: 56 bytes) and the addresses, installed as the program would have left it."""
    meta = struct.pack("<IQQB", 1, U64_MAX, 0, len(addresses)) + b"\1" + bytes(authority) + b"\0\0"
    return await set_account(http, url, LOOKUP_TABLE_PROGRAM_ID, meta + b"".join(bytes(a) for a in addresses))


def v0_transfer(
    payer: Keypair, to: Pubkey, seen: Pubkey, table: Pubkey, entries: list[Pubkey], blockhash: Hash
) -> VersionedTransaction:
    """A v0 transfer to ``to`` that also passes ``seen`` read-only, both named only through ``table``."""
    payment = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=to, lamports=2_000_000))
    payment = Instruction(payment.program_id, payment.data, [*payment.accounts, AccountMeta(seen, False, False)])
    lookups = [AddressLookupTableAccount(table, entries)]
    return VersionedTransaction(MessageV0.try_compile(payer.pubkey(), [payment], lookups, blockhash), [payer])


def approve_instruction(source: Pubkey, delegate: Pubkey, owner: Pubkey, amount: int) -> Instruction:
    accounts = [AccountMeta(source, False, True), AccountMeta(delegate, False, False), AccountMeta(owner, True, False)]
    return Instruction(TOKEN_PROGRAM_ID, bytes([4]) + struct.pack("<Q", amount), accounts)


# -- signatures and blocks -----------------------------------------------------------------


async def test_signatures_for_address_newest_first_with_before_until_limit(
    solana: AsyncClient, http: httpx.AsyncClient, perps_rpc_url: str
) -> None:
    payer = await funded(solana)
    to = Keypair().pubkey()
    sent = await send_transfers(solana, payer, to, 4)
    found = await result(http, perps_rpc_url, "getSignaturesForAddress", [str(to)])
    assert [entry["signature"] for entry in found] == sent[::-1]
    first = found[0]
    assert set(first) == {"signature", "slot", "err", "memo", "blockTime", "confirmationStatus"}
    assert (first["err"], first["memo"], first["confirmationStatus"]) == (None, None, "finalized")
    assert found[0]["slot"] > found[1]["slot"]
    limited = await result(http, perps_rpc_url, "getSignaturesForAddress", [str(to), {"limit": 2}])
    assert [e["signature"] for e in limited] == sent[:1:-1]
    page = await result(
        http, perps_rpc_url, "getSignaturesForAddress", [str(to), {"before": sent[3], "until": sent[0]}]
    )
    assert [e["signature"] for e in page] == [sent[2], sent[1]]
    payer_sigs = await result(http, perps_rpc_url, "getSignaturesForAddress", [str(payer.pubkey()), {"limit": 10}])
    assert len(payer_sigs) == 5  # the airdrop and the four transfers
    too_many = await rpc(http, perps_rpc_url, "getSignaturesForAddress", [str(to), {"limit": 1001}])
    assert too_many["error"]["code"] == -32602
    # solana-py parses the same answer
    typed = (await solana.get_signatures_for_address(to, before=Signature.from_string(sent[3]), limit=2)).value
    assert [str(s.signature) for s in typed] == [sent[2], sent[1]]


async def test_blocks_one_transaction_each_and_block_height_agrees(
    solana: AsyncClient, http: httpx.AsyncClient, perps_rpc_url: str
) -> None:
    payer = await funded(solana)
    to = Keypair().pubkey()
    (signature,) = await send_transfers(solana, payer, to, 1)
    tx = await result(http, perps_rpc_url, "getTransaction", [signature, {"encoding": "json"}])
    slot = tx["slot"]
    block = await result(http, perps_rpc_url, "getBlock", [slot])
    assert set(block) == {"blockHeight", "blockTime", "blockhash", "parentSlot", "previousBlockhash", "transactions",
                          "rewards"}  # fmt: skip
    assert block["blockTime"] == tx["blockTime"] and block["rewards"] == []
    assert block["parentSlot"] < slot
    (entry,) = block["transactions"]
    assert entry["transaction"]["signatures"] == [signature] and "version" not in entry
    assert entry["meta"] == tx["meta"]
    # The block height of the newest block is getBlockHeight; the parent's blockhash chains.
    height = await result(http, perps_rpc_url, "getBlockHeight")
    latest_slot = (await result(http, perps_rpc_url, "getBlocks", [slot]))[-1]
    latest = await result(http, perps_rpc_url, "getBlock", [latest_slot, {"transactionDetails": "none"}])
    assert latest["blockHeight"] == height
    assert "transactions" not in latest and "signatures" not in latest
    parent = await result(http, perps_rpc_url, "getBlock", [block["parentSlot"], {"transactionDetails": "signatures"}])
    assert parent["blockhash"] == block["previousBlockhash"]
    assert parent["blockHeight"] == block["blockHeight"] - 1
    assert len(parent["signatures"]) == 1
    # Encodings
    b64 = await result(http, perps_rpc_url, "getBlock", [slot, {"encoding": "base64", "rewards": False}])
    assert b64["transactions"][0]["transaction"][1] == "base64" and "rewards" not in b64
    parsed = await result(
        http, perps_rpc_url, "getBlock", [slot, {"encoding": "jsonParsed", "maxSupportedTransactionVersion": 0}]
    )
    (parsed_entry,) = parsed["transactions"]
    assert parsed_entry["version"] == "legacy"
    assert parsed_entry["transaction"]["message"]["instructions"][0]["parsed"]["type"] == "transfer"
    # Times, ranges, the first block
    assert await result(http, perps_rpc_url, "getBlockTime", [slot]) == tx["blockTime"]
    blocks = await result(http, perps_rpc_url, "getBlocks", [block["parentSlot"], slot])
    assert blocks == [block["parentSlot"], slot]
    assert await result(http, perps_rpc_url, "getBlocksWithLimit", [block["parentSlot"], 1]) == [block["parentSlot"]]
    first = await result(http, perps_rpc_url, "getFirstAvailableBlock")
    assert 0 <= first <= block["parentSlot"]
    future = await rpc(http, perps_rpc_url, "getBlock", [slot + 10**9])
    assert future["error"]["code"] == -32004
    assert (await rpc(http, perps_rpc_url, "getBlockTime", [slot + 10**9]))["error"]["code"] == -32004
    # solana-py
    typed = (await solana.get_block(slot)).value
    assert (typed.block_height, str(typed.blockhash)) == (block["blockHeight"], block["blockhash"])
    assert (await solana.get_block_time(slot)).value == tx["blockTime"]
    assert list((await solana.get_blocks(block["parentSlot"], slot)).value) == blocks
    assert (await solana.get_first_available_block()).value == first


# -- tokens, supply, stake --------------------------------------------------------------------


async def test_token_accounts_by_owner_and_delegate_and_supply(
    solana: AsyncClient, http: httpx.AsyncClient, perps_rpc_url: str
) -> None:
    payer = await funded(solana)
    delegate = Keypair().pubkey()
    client = await Client.connect(perps_rpc_url, payer=payer)
    try:
        mint = await create_mint(client, decimals=6)
        other_mint = await create_mint(client, decimals=2)
        account = await create_token_account(client, mint, payer.pubkey())
        other = await create_token_account(client, other_mint, payer.pubkey())
        await mint_to(client, mint, account, 1_234_500)
        await mint_to(client, other_mint, other, 7)
        await client.send([approve_instruction(account, delegate, payer.pubkey(), 1_000)])
    finally:
        await client.close()
    owner = str(payer.pubkey())
    program_filter = {"programId": str(TOKEN_PROGRAM_ID)}
    by_program = await result(
        http, perps_rpc_url, "getTokenAccountsByOwner", [owner, program_filter, {"encoding": "base64"}]
    )
    assert sorted(a["pubkey"] for a in by_program["value"]) == sorted([str(account), str(other)])
    assert by_program["value"][0]["account"]["data"][1] == "base64"
    # The default encoding is binary (base 58), which agave refuses for 165 bytes.
    binary = await rpc(http, perps_rpc_url, "getTokenAccountsByOwner", [owner, program_filter])
    assert binary["error"]["code"] == -32600
    by_mint = await result(
        http,
        perps_rpc_url,
        "getTokenAccountsByOwner",
        [owner, {"mint": str(mint)}, {"encoding": "jsonParsed"}],
    )
    (keyed,) = by_mint["value"]
    assert keyed["pubkey"] == str(account)
    parsed = keyed["account"]["data"]
    assert (parsed["program"], parsed["space"], parsed["parsed"]["type"]) == ("spl-token", 165, "account")
    info = parsed["parsed"]["info"]
    assert info == {
        "mint": str(mint),
        "owner": owner,
        "tokenAmount": {"amount": "1234500", "decimals": 6, "uiAmount": 1.2345, "uiAmountString": "1.2345"},
        "delegate": str(delegate),
        "state": "initialized",
        "isNative": False,
        "delegatedAmount": {"amount": "1000", "decimals": 6, "uiAmount": 0.001, "uiAmountString": "0.001"},
    }
    assert keyed["account"]["rentEpoch"] == U64_MAX
    delegated = await result(
        http, perps_rpc_url, "getTokenAccountsByDelegate", [str(delegate), program_filter, {"encoding": "base64"}]
    )
    assert [a["pubkey"] for a in delegated["value"]] == [str(account)]
    none = await result(
        http,
        perps_rpc_url,
        "getTokenAccountsByDelegate",
        [str(delegate), {"mint": str(other_mint)}, {"encoding": "base64"}],
    )
    assert none["value"] == []
    bad_program = await rpc(http, perps_rpc_url, "getTokenAccountsByOwner", [owner, {"programId": owner}])
    assert bad_program["error"] == {"code": -32602, "message": "Invalid param: unrecognized Token program id"}
    no_mint = await rpc(http, perps_rpc_url, "getTokenAccountsByOwner", [owner, {"mint": str(Keypair().pubkey())}])
    assert no_mint["error"]["message"] == "Invalid param: could not find mint"
    no_filter = await rpc(http, perps_rpc_url, "getTokenAccountsByOwner", [owner, {}])
    assert no_filter["error"]["code"] == -32602
    # Supply of a mint
    supply = await result(http, perps_rpc_url, "getTokenSupply", [str(mint)])
    assert supply["value"] == {"amount": "1234500", "decimals": 6, "uiAmount": 1.2345, "uiAmountString": "1.2345"}
    not_mint = await rpc(http, perps_rpc_url, "getTokenSupply", [str(account)])
    assert not_mint["error"] == {"code": -32602, "message": "Invalid param: not a Token mint"}
    # solana-py
    typed = (await solana.get_token_accounts_by_owner_json_parsed(payer.pubkey(), TokenAccountOpts(mint=mint))).value
    assert [str(a.pubkey) for a in typed] == [str(account)]
    assert typed[0].account.data.parsed["info"]["tokenAmount"]["amount"] == "1234500"
    by_delegate = (await solana.get_token_accounts_by_delegate(delegate, TokenAccountOpts(mint=mint))).value
    assert [str(a.pubkey) for a in by_delegate] == [str(account)]
    token_supply = (await solana.get_token_supply(mint)).value
    assert (token_supply.amount, token_supply.decimals, token_supply.ui_amount_string) == ("1234500", 6, "1.2345")


async def test_supply_and_stake_minimum_delegation(
    solana: AsyncClient, http: httpx.AsyncClient, perps_rpc_url: str
) -> None:
    supply = await result(http, perps_rpc_url, "getSupply")
    value = supply["value"]
    assert set(value) == {"total", "circulating", "nonCirculating", "nonCirculatingAccounts"}
    assert value["total"] == value["circulating"] + value["nonCirculating"] > 0
    minimum = await result(http, perps_rpc_url, "getStakeMinimumDelegation")
    assert set(minimum) == {"context", "value"} and minimum["value"] == 1
    typed = (await solana.get_supply()).value
    assert typed.total == value["total"]


# -- jsonParsed -----------------------------------------------------------------------------


async def test_json_parsed_accounts(solana: AsyncClient, http: httpx.AsyncClient, perps_rpc_url: str) -> None:
    payer = await funded(solana)
    client = await Client.connect(perps_rpc_url, payer=payer)
    try:
        mint = await create_mint(client, decimals=9)
        account = await create_token_account(client, mint, payer.pubkey())
        await mint_to(client, mint, account, 5 * 10**9)
    finally:
        await client.close()
    config = {"encoding": "jsonParsed"}
    mint_info = (await result(http, perps_rpc_url, "getAccountInfo", [str(mint), config]))["value"]
    assert mint_info["data"] == {
        "program": "spl-token",
        "parsed": {
            "type": "mint",
            "info": {
                "mintAuthority": str(payer.pubkey()),
                "supply": "5000000000",
                "decimals": 9,
                "isInitialized": True,
                "freezeAuthority": None,
            },
        },
        "space": 82,
    }
    assert mint_info["rentEpoch"] == U64_MAX and mint_info["space"] == 82
    many = (await result(http, perps_rpc_url, "getMultipleAccounts", [[str(account), str(payer.pubkey())], config]))[
        "value"
    ]
    token_info = many[0]["data"]["parsed"]["info"]
    assert token_info["tokenAmount"]["uiAmountString"] == "5" and token_info["tokenAmount"]["uiAmount"] == 5.0
    assert "delegate" not in token_info and "closeAuthority" not in token_info
    # A plain system account: agave has no parser for it (its system parser reads nonce accounts): base64.
    assert many[1]["data"] == ["", "base64"]
    assert many[1]["rentEpoch"] == U64_MAX and many[1]["owner"] == str(SYSTEM_PROGRAM_ID)
    # Program accounts parse too.
    owned = await result(
        http,
        perps_rpc_url,
        "getProgramAccounts",
        [str(TOKEN_PROGRAM_ID), {"encoding": "jsonParsed", "filters": [{"memcmp": {"offset": 0, "bytes": str(mint)}}]}],
    )
    assert [a["pubkey"] for a in owned] == [str(account)]
    assert owned[0]["account"]["data"]["parsed"]["type"] == "account"
    # Other encodings are unchanged, rentEpoch included.
    raw = (await result(http, perps_rpc_url, "getAccountInfo", [str(account), {"encoding": "base64"}]))["value"]
    assert raw["data"][1] == "base64" and raw["rentEpoch"] == U64_MAX
    # solana-py
    typed = (await solana.get_account_info_json_parsed(account)).value
    assert typed is not None and typed.data.parsed["info"]["mint"] == str(mint)


async def test_json_parsed_transactions(solana: AsyncClient, http: httpx.AsyncClient, perps_rpc_url: str) -> None:
    payer = await funded(solana)
    to = Keypair().pubkey()
    (signature,) = await send_transfers(solana, payer, to, 1, budget=True)
    tx = await result(http, perps_rpc_url, "getTransaction", [signature, {"encoding": "jsonParsed"}])
    message = tx["transaction"]["message"]
    assert "header" not in message
    assert message["accountKeys"][0] == {
        "pubkey": str(payer.pubkey()),
        "writable": True,
        "signer": True,
        "source": "transaction",
    }
    keys = {k["pubkey"]: k for k in message["accountKeys"]}
    assert keys[str(to)]["writable"] and not keys[str(to)]["signer"]
    assert not keys[str(SYSTEM_PROGRAM_ID)]["writable"]
    limit, price, payment = message["instructions"]
    # agave has no Compute Budget parser: partially decoded, data in base 58.
    assert limit == {
        "programId": str(COMPUTE_BUDGET_PROGRAM_ID),
        "accounts": [],
        "data": b58encode(bytes(set_compute_unit_limit(10_000).data)),
        "stackHeight": None,
    }
    assert price["programId"] == str(COMPUTE_BUDGET_PROGRAM_ID) and "parsed" not in price
    assert payment == {
        "program": "system",
        "programId": str(SYSTEM_PROGRAM_ID),
        "parsed": {
            "type": "transfer",
            "info": {"source": str(payer.pubkey()), "destination": str(to), "lamports": 1_000_000},
        },
        "stackHeight": None,
    }
    assert "loadedAddresses" not in tx["meta"] and tx["meta"]["err"] is None
    # SPL Token and Associated Token Account instructions, top-level and inner
    client = await Client.connect(perps_rpc_url, payer=payer)
    try:
        mint = await create_mint(client, decimals=6)
        account = await create_token_account(client, mint, payer.pubkey())
        await mint_to(client, mint, account, 42)
    finally:
        await client.close()
    history = await result(http, perps_rpc_url, "getSignaturesForAddress", [str(mint), {"limit": 3}])
    mint_to_sig, create_ata_sig, create_mint_sig = (entry["signature"] for entry in history)
    minted = await result(http, perps_rpc_url, "getTransaction", [mint_to_sig, {"encoding": "jsonParsed"}])
    (token_ix,) = [i for i in minted["transaction"]["message"]["instructions"] if i.get("program") == "spl-token"]
    assert token_ix["parsed"] == {
        "type": "mintTo",
        "info": {"mint": str(mint), "account": str(account), "amount": "42", "mintAuthority": str(payer.pubkey())},
    }
    created = await result(http, perps_rpc_url, "getTransaction", [create_mint_sig, {"encoding": "jsonParsed"}])
    kinds = [i["parsed"]["type"] for i in created["transaction"]["message"]["instructions"] if "parsed" in i]
    assert kinds[-2:] == ["createAccount", "initializeMint"]
    ata = await result(http, perps_rpc_url, "getTransaction", [create_ata_sig, {"encoding": "jsonParsed"}])
    (create,) = [i for i in ata["transaction"]["message"]["instructions"] if "parsed" in i]
    assert create["program"] == "spl-associated-token-account" and create["parsed"]["type"] == "create"
    assert create["parsed"]["info"]["account"] == str(account)
    inner = [i for group in ata["meta"]["innerInstructions"] for i in group["instructions"]]
    inner_kinds = [i["parsed"]["type"] for i in inner if i.get("program") == "spl-token"]
    assert inner_kinds == ["getAccountDataSize", "initializeImmutableOwner", "initializeAccount3"]
    assert [i["stackHeight"] for i in inner] == [2] * len(inner)
    plain = await result(http, perps_rpc_url, "getTransaction", [create_ata_sig, {"encoding": "json"}])
    assert [i["stackHeight"] for g in plain["meta"]["innerInstructions"] for i in g["instructions"]] == [2] * len(inner)
    # solana-py parses the jsonParsed answer
    typed = (await solana.get_transaction(Signature.from_string(signature), encoding="jsonParsed")).value
    assert typed is not None and typed.slot == tx["slot"]


# -- address lookup tables, largest accounts, more jsonParsed ----------------------------------


async def test_v0_transaction_through_a_lookup_table(
    solana: AsyncClient, http: httpx.AsyncClient, perps_rpc_url: str
) -> None:
    payer = await funded(solana)
    to, seen = Keypair().pubkey(), Keypair().pubkey()
    entries = [Keypair().pubkey(), to, seen]
    table = await lookup_table(http, perps_rpc_url, entries, payer.pubkey())
    blockhash = (await solana.get_latest_blockhash()).value.blockhash
    tx = v0_transfer(payer, to, seen, table, entries, blockhash)
    assert list(tx.message.account_keys) == [payer.pubkey(), SYSTEM_PROGRAM_ID]  # to and seen: table only
    signature = str((await solana.send_raw_transaction(bytes(tx))).value)
    await solana.confirm_transaction(Signature.from_string(signature))
    assert (await solana.get_balance(to)).value == 2_000_000
    v0 = {"maxSupportedTransactionVersion": 0}
    plain = await result(http, perps_rpc_url, "getTransaction", [signature, v0])
    assert plain["version"] == 0 and plain["meta"]["err"] is None
    assert plain["meta"]["loadedAddresses"] == {"writable": [str(to)], "readonly": [str(seen)]}
    assert plain["transaction"]["message"]["addressTableLookups"] == [
        {"accountKey": str(table), "writableIndexes": [1], "readonlyIndexes": [2]}
    ]
    block = await result(http, perps_rpc_url, "getBlock", [plain["slot"], v0])
    assert block["transactions"][0]["meta"]["loadedAddresses"] == plain["meta"]["loadedAddresses"]
    # jsonParsed: the loaded keys follow the static ones, marked lookupTable; instructions see them.
    parsed = await result(http, perps_rpc_url, "getTransaction", [signature, {**v0, "encoding": "jsonParsed"}])
    keys = parsed["transaction"]["message"]["accountKeys"]
    assert keys[2:] == [
        {"pubkey": str(to), "writable": True, "signer": False, "source": "lookupTable"},
        {"pubkey": str(seen), "writable": False, "signer": False, "source": "lookupTable"},
    ]
    (payment,) = parsed["transaction"]["message"]["instructions"]
    assert payment["parsed"]["info"] == {"source": str(payer.pubkey()), "destination": str(to), "lamports": 2_000_000}
    assert "loadedAddresses" not in parsed["meta"]
    accounts = await result(http, perps_rpc_url, "getBlock", [plain["slot"], {**v0, "transactionDetails": "accounts"}])
    assert accounts["transactions"][0]["transaction"]["accountKeys"] == keys
    # The history of an address named only through the table has the transaction, as agave's does.
    history = await result(http, perps_rpc_url, "getSignaturesForAddress", [str(seen)])
    assert [entry["signature"] for entry in history] == [signature]
    # A legacy transaction loads nothing.
    (legacy,) = await send_transfers(solana, payer, to, 1)
    legacy_tx = await result(http, perps_rpc_url, "getTransaction", [legacy])
    assert legacy_tx["meta"]["loadedAddresses"] == {"writable": [], "readonly": []}
    # solana-py parses it
    typed = (await solana.get_transaction(Signature.from_string(signature), max_supported_transaction_version=0)).value
    assert typed is not None and typed.transaction.meta is not None
    loaded = typed.transaction.meta.loaded_addresses
    assert loaded is not None and list(loaded.writable) == [to] and list(loaded.readonly) == [seen]


async def test_largest_accounts(solana: AsyncClient, http: httpx.AsyncClient, perps_rpc_url: str) -> None:
    await funded(solana)
    answer = await result(http, perps_rpc_url, "getLargestAccounts")
    value = answer["value"]
    assert isinstance(answer["context"]["slot"], int) and 0 < len(value) <= 20
    assert all(set(entry) == {"address", "lamports"} for entry in value)
    lamports = [entry["lamports"] for entry in value]
    assert lamports == sorted(lamports, reverse=True)
    faucet = (await result(http, perps_rpc_url, "getIdentity"))["identity"]
    assert value[0]["address"] == faucet  # the faucet holds the genesis lamports
    circulating = await result(http, perps_rpc_url, "getLargestAccounts", [{"filter": "circulating"}])
    assert circulating["value"][0] == value[0]
    # Everything circulates here: nothing is non-circulating.
    none = await result(
        http, perps_rpc_url, "getLargestAccounts", [{"commitment": "finalized", "filter": "nonCirculating"}]
    )
    assert none["value"] == []
    bad = await rpc(http, perps_rpc_url, "getLargestAccounts", [{"filter": "everything"}])
    assert bad["error"]["code"] == -32602 and "nonCirculating" in bad["error"]["message"]
    typed = await solana.get_largest_accounts()
    assert str(typed.value[0].address) == faucet and typed.value[0].lamports == value[0]["lamports"]


async def test_json_parsed_upgradeable_loader_and_token_2022(http: httpx.AsyncClient, perps_rpc_url: str) -> None:
    url, config = perps_rpc_url, {"encoding": "jsonParsed"}
    authority, code = Keypair().pubkey(), bytes(range(40))

    async def parsed(address: Pubkey) -> Any:
        return (await result(http, url, "getAccountInfo", [str(address), config]))["value"]["data"]

    programdata = await set_account(http, url, LOADER_V3, struct.pack("<IQ", 3, 7) + b"\1" + bytes(authority) + code)
    program = await set_account(http, url, LOADER_V3, struct.pack("<I", 2) + bytes(programdata))
    assert await parsed(program) == {
        "program": "bpf-upgradeable-loader",
        "parsed": {"type": "program", "info": {"programData": str(programdata)}},
        "space": 36,
    }
    assert await parsed(programdata) == {
        "program": "bpf-upgradeable-loader",
        "parsed": {
            "type": "programData",
            "info": {"slot": 7, "authority": str(authority), "data": [base64.b64encode(code).decode(), "base64"]},
        },
        "space": 45 + len(code),
    }
    # No authority: as agave, the data starts right after the None byte (the unused key's 32 bytes included).
    frozen = await set_account(http, url, LOADER_V3, struct.pack("<IQ", 3, 0) + b"\0" + bytes(32) + code)
    info = (await parsed(frozen))["parsed"]["info"]
    assert info["authority"] is None and info["data"] == [base64.b64encode(bytes(32) + code).decode(), "base64"]
    buffer = await set_account(http, url, LOADER_V3, struct.pack("<I", 1) + b"\1" + bytes(authority) + code)
    assert (await parsed(buffer))["parsed"] == {
        "type": "buffer",
        "info": {"authority": str(authority), "data": [base64.b64encode(code).decode(), "base64"]},
    }
    # Token-2022 without extensions: the SPL Token shapes, program "spl-token-2022".
    mint_data = struct.pack("<I", 1) + bytes(authority) + struct.pack("<QB?", 1_500, 2, True) + bytes(36)
    mint = await set_account(http, url, TOKEN_2022_PROGRAM_ID, mint_data)
    assert await parsed(mint) == {
        "program": "spl-token-2022",
        "parsed": {
            "type": "mint",
            "info": {
                "mintAuthority": str(authority),
                "supply": "1500",
                "decimals": 2,
                "isInitialized": True,
                "freezeAuthority": None,
            },
        },
        "space": 82,
    }
    account_data = bytes(mint) + bytes(authority) + struct.pack("<Q", 1_500) + bytes(36) + b"\1" + bytes(56)
    account = await set_account(http, url, TOKEN_2022_PROGRAM_ID, account_data)
    token = await parsed(account)
    assert token["program"] == "spl-token-2022" and token["parsed"]["type"] == "account"
    assert token["parsed"]["info"]["tokenAmount"]["uiAmountString"] == "15" and token["space"] == 165
    # With extensions (longer than the base layout): base64, as documented.
    extended = await set_account(http, url, TOKEN_2022_PROGRAM_ID, mint_data + bytes(83) + b"\1")
    assert (await parsed(extended))[1] == "base64"
