"""perpkit localnet's PubSub (WebSocket) endpoint, through solana-py's websocket client and raw frames.

The server is the session's ``perpkit localnet`` subprocess (frozen clock): every
transaction is a new slot, so the tests drive slots by sending transactions.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import httpx
import pytest
import pytest_asyncio
from solana.rpc.async_api import AsyncClient

try:  # solana-py >= 0.41 (the default lane)
    from solana.rpc.websocket_api import SolanaWsClient

    connect: Any = None
except ImportError:  # solana 0.36 (the anchorpy lane)
    from solana.rpc.websocket_api import connect

    SolanaWsClient = None  # type: ignore[assignment,misc,unused-ignore]
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.rpc.config import RpcTransactionLogsFilterMentions
from solders.rpc.responses import (
    AccountNotification,
    LogsNotification,
    SignatureNotification,
    SlotNotification,
    SubscriptionResult,
)
from solders.signature import Signature
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction
from test_localnet_ledger import lookup_table, v0_transfer

TIMEOUT = 5.0


@pytest_asyncio.fixture
async def solana(perps_rpc_url: str) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(perps_rpc_url) as client:
        yield client


async def _funded(solana: AsyncClient) -> Keypair:
    payer = Keypair()
    await solana.request_airdrop(payer.pubkey(), 10**9)
    return payer


async def _transfer(solana: AsyncClient, payer: Keypair, to: Pubkey, lamports: int = 1_000_000) -> Signature:
    blockhash = (await solana.get_latest_blockhash()).value.blockhash
    message = Message.new_with_blockhash(
        [transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=to, lamports=lamports))],
        payer.pubkey(),
        blockhash,
    )
    tx = Transaction([payer], message, blockhash)
    return (await solana.send_raw_transaction(bytes(tx))).value


class _Ws:
    """solana-py's websocket client on either lane: ``SolanaWsClient`` (solana 0.41) or ``connect()`` (0.36)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._stack = AsyncExitStack()
        self.ws: Any = None

    async def __aenter__(self) -> _Ws:
        client = connect(self.url) if SolanaWsClient is None else SolanaWsClient(self.url)
        self.ws = await self._stack.enter_async_context(client)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def subscribe(self, kind: str, **kwargs: Any) -> Any:
        """A subscription handle: the client's own (0.41) or (kind, id) (0.36)."""
        method = getattr(self.ws, f"{kind}_subscribe")
        if SolanaWsClient is not None:
            return await asyncio.wait_for(method(**kwargs), TIMEOUT)
        await method(**kwargs)
        (first,) = await asyncio.wait_for(self.ws.recv(), TIMEOUT)
        assert isinstance(first, SubscriptionResult)
        return kind, int(first.result)

    @staticmethod
    def id(handle: Any) -> int:
        return int(handle[1] if isinstance(handle, tuple) else handle.subscription_id)

    async def recv(self, timeout: float = TIMEOUT) -> Any:
        if SolanaWsClient is not None:
            return await asyncio.wait_for(self.ws.recv(), timeout)
        (message,) = await asyncio.wait_for(self.ws.recv(), timeout)
        return message

    async def unsubscribe(self, handle: Any) -> None:
        if SolanaWsClient is not None:
            await asyncio.wait_for(self.ws.unsubscribe(handle), TIMEOUT)
            return
        kind, sub_id = handle
        await getattr(self.ws, f"{kind}_unsubscribe")(sub_id)
        (answer,) = await asyncio.wait_for(self.ws.recv(), TIMEOUT)
        assert answer.result is True


async def _raw(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.receive_str(), TIMEOUT))
    return message


async def test_signature_subscribe_notified_after_send(solana: AsyncClient, perps_ws_url: str) -> None:
    payer = await _funded(solana)
    to = Keypair().pubkey()
    blockhash = (await solana.get_latest_blockhash()).value.blockhash
    tx = Transaction(
        [payer],
        Message.new_with_blockhash(
            [transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=to, lamports=5_000_000))],
            payer.pubkey(),
            blockhash,
        ),
        blockhash,
    )
    signature = tx.signatures[0]
    async with _Ws(perps_ws_url) as ws:
        handle = await ws.subscribe("signature", signature=signature)
        await solana.send_raw_transaction(bytes(tx))
        note = await ws.recv()
        assert isinstance(note, SignatureNotification)
        assert note.subscription == ws.id(handle)
        assert note.result.value.err is None
        assert note.result.context.slot >= 1
        # Already landed: notified at once, as agave does from its status cache.
        again = await ws.subscribe("signature", signature=signature)
        late = await ws.recv()
        assert isinstance(late, SignatureNotification) and late.subscription == ws.id(again)


async def test_account_subscribe_sees_a_change(solana: AsyncClient, perps_ws_url: str) -> None:
    payer = await _funded(solana)
    watched = Keypair().pubkey()
    async with _Ws(perps_ws_url) as ws:
        await ws.subscribe("account", pubkey=watched, encoding="base64")
        await _transfer(solana, payer, watched, 2_000_000)
        note = await ws.recv()
        assert isinstance(note, AccountNotification)
        assert note.result.value.lamports == 2_000_000
        assert note.result.value.owner == SYSTEM_PROGRAM_ID
        assert note.result.value.data == b""


async def test_logs_mentions(solana: AsyncClient, perps_ws_url: str) -> None:
    payer = await _funded(solana)
    mentioned, other = Keypair().pubkey(), Keypair().pubkey()
    async with _Ws(perps_ws_url) as ws:
        await ws.subscribe("logs", filter_=RpcTransactionLogsFilterMentions(mentioned))
        await _transfer(solana, payer, other)  # not mentioned: no notification
        signature = await _transfer(solana, payer, mentioned)
        note = await ws.recv()
        assert isinstance(note, LogsNotification)
        assert note.result.value.signature == signature
        assert note.result.value.err is None
        assert any("11111111111111111111111111111111 success" in line for line in note.result.value.logs)


async def test_slot_notifications_and_unsubscribe(solana: AsyncClient, perps_ws_url: str) -> None:
    payer = await _funded(solana)
    async with _Ws(perps_ws_url) as ws:
        handle = await ws.subscribe("slot")
        await _transfer(solana, payer, Keypair().pubkey())
        note = await ws.recv()
        assert isinstance(note, SlotNotification)
        assert note.result.slot == note.result.parent + 1
        await ws.unsubscribe(handle)
        await _transfer(solana, payer, Keypair().pubkey())
        with pytest.raises(asyncio.TimeoutError):
            await ws.recv(timeout=0.5)  # unsubscribed: nothing more


async def test_disconnect_mid_stream_leaves_the_others_served(solana: AsyncClient, perps_ws_url: str) -> None:
    payer = await _funded(solana)
    async with aiohttp.ClientSession() as session:
        keep = await session.ws_connect(perps_ws_url)
        drop = await session.ws_connect(perps_ws_url)
        for ws in (keep, drop):
            await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "logsSubscribe", "params": ["all"]}))
            assert isinstance((await _raw(ws))["result"], int)
        await _transfer(solana, payer, Keypair().pubkey())
        assert (await _raw(drop))["method"] == "logsNotification"
        drop._response.connection.transport.abort()  # type: ignore[union-attr]  # vanish without a close frame
        signatures = [str(await _transfer(solana, payer, Keypair().pubkey())) for _ in range(5)]
        seen = [(await _raw(keep))["params"]["result"]["value"]["signature"] for _ in range(6)]
        assert seen[1:] == signatures
        await keep.close()


async def test_bad_requests_get_jsonrpc_errors(perps_ws_url: str) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(perps_ws_url) as ws:
        await ws.send_str("{not json")
        assert (await _raw(ws))["error"]["code"] == -32700
        cases = [
            ({"jsonrpc": "2.0", "id": 2, "method": "accountSubscribe", "params": ["not-a-key"]}, -32602),
            ({"jsonrpc": "2.0", "id": 3, "method": "signatureSubscribe", "params": ["xyz"]}, -32602),
            ({"jsonrpc": "2.0", "id": 4, "method": "logsSubscribe", "params": [{"mentions": []}]}, -32602),
            ({"jsonrpc": "2.0", "id": 5, "method": "slotUnsubscribe", "params": [987654]}, -32602),
            ({"jsonrpc": "2.0", "id": 6, "method": "fooSubscribe", "params": []}, -32601),
            ({"id": 7, "method": "slotSubscribe"}, -32600),
        ]
        for request, code in cases:
            await ws.send_str(json.dumps(request))
            answer = await _raw(ws)
            assert answer["id"] == request["id"] and answer["error"]["code"] == code, answer
        # The connection still serves.
        await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 8, "method": "slotSubscribe"}))
        assert isinstance((await _raw(ws))["result"], int)


async def test_program_subscribe_with_filters(solana: AsyncClient, perps_ws_url: str) -> None:
    payer = await _funded(solana)
    target = Keypair().pubkey()
    async with aiohttp.ClientSession() as session, session.ws_connect(perps_ws_url) as ws:
        request = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "programSubscribe",
            "params": [str(SYSTEM_PROGRAM_ID), {"encoding": "base64", "filters": [{"dataSize": 0}]}],
        }
        await ws.send_str(json.dumps(request))
        sub_id = (await _raw(ws))["result"]
        await _transfer(solana, payer, target, 3_000_000)
        notes = [await _raw(ws) for _ in range(2)]  # the payer and the recipient
        values = {n["params"]["result"]["value"]["pubkey"]: n["params"]["result"]["value"]["account"] for n in notes}
        assert all(n["method"] == "programNotification" and n["params"]["subscription"] == sub_id for n in notes)
        assert values[str(target)]["lamports"] == 3_000_000
        assert values[str(target)]["data"] == ["", "base64"]


async def _subscribe(ws: aiohttp.ClientWebSocketResponse, method: str, params: list[Any]) -> int:
    await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
    sub_id = (await _raw(ws))["result"]
    assert isinstance(sub_id, int)
    return sub_id


async def test_signature_subscribe_received_notification(solana: AsyncClient, perps_ws_url: str) -> None:
    payer = await _funded(solana)
    blockhash = (await solana.get_latest_blockhash()).value.blockhash
    payment = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=Keypair().pubkey(), lamports=10**6))
    tx = Transaction([payer], Message.new_with_blockhash([payment], payer.pubkey(), blockhash), blockhash)
    config = {"commitment": "finalized", "enableReceivedNotification": True}
    async with aiohttp.ClientSession() as session, session.ws_connect(perps_ws_url) as ws:
        sub_id = await _subscribe(ws, "signatureSubscribe", [str(tx.signatures[0]), config])
        await solana.send_raw_transaction(bytes(tx))
        received, final = await _raw(ws), await _raw(ws)
        slot = received["params"]["result"]["context"]["slot"]
        assert received == {
            "jsonrpc": "2.0",
            "method": "signatureNotification",
            "params": {"result": {"context": {"slot": slot}, "value": "receivedSignature"}, "subscription": sub_id},
        }
        assert final["method"] == "signatureNotification" and final["params"]["subscription"] == sub_id
        assert final["params"]["result"]["value"] == {"err": None}
        assert final["params"]["result"]["context"]["slot"] >= slot >= 1
        # The final notification ended the subscription.
        await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "signatureUnsubscribe", "params": [sub_id]}))
        assert (await _raw(ws))["error"]["code"] == -32602
        # Already landed: the final notification only (agave sends "received" on receipt).
        late = await _subscribe(ws, "signatureSubscribe", [str(tx.signatures[0]), config])
        note = await _raw(ws)
        assert note["params"]["subscription"] == late and note["params"]["result"]["value"] == {"err": None}
        bad = [str(tx.signatures[0]), {"enableReceivedNotification": "yes"}]
        await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 3, "method": "signatureSubscribe", "params": bad}))
        assert (await _raw(ws))["error"]["code"] == -32602


async def test_lookup_table_addresses_in_logs_mentions_and_account_notifications(
    solana: AsyncClient, perps_rpc_url: str, perps_ws_url: str
) -> None:
    payer = await _funded(solana)
    to, seen = Keypair().pubkey(), Keypair().pubkey()
    entries = [to, seen]
    async with httpx.AsyncClient(timeout=10) as http:
        table = await lookup_table(http, perps_rpc_url, entries, payer.pubkey())
    blockhash = (await solana.get_latest_blockhash()).value.blockhash
    tx = v0_transfer(payer, to, seen, table, entries, blockhash)
    assert seen not in tx.message.account_keys and to not in tx.message.account_keys
    async with aiohttp.ClientSession() as session, session.ws_connect(perps_ws_url) as ws:
        logs = await _subscribe(ws, "logsSubscribe", [{"mentions": [str(seen)]}])
        account = await _subscribe(ws, "accountSubscribe", [str(to), {"encoding": "base64"}])
        await solana.send_raw_transaction(bytes(tx))
        notes = {n["params"]["subscription"]: n for n in [await _raw(ws), await _raw(ws)]}
        value = notes[logs]["params"]["result"]["value"]
        assert notes[logs]["method"] == "logsNotification"
        assert value["signature"] == str(tx.signatures[0]) and value["err"] is None
        # The loaded writable account is written, so its subscribers hear of it.
        assert notes[account]["method"] == "accountNotification"
        assert notes[account]["params"]["result"]["value"]["lamports"] == 2_000_000
