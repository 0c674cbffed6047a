"""The WebSocket side of ``perpkit localnet``: Solana PubSub, on the RPC port + 1 as agave serves it.

Subscriptions: ``accountSubscribe``, ``programSubscribe`` (``dataSize``/``memcmp``
filters), ``signatureSubscribe`` (``enableReceivedNotification``),
``logsSubscribe`` (``all``, ``allWithVotes``, ``{"mentions": [address]}``, an
address matching whether the transaction names it directly or through an
address lookup table, as agave matches), ``slotSubscribe`` and
``rootSubscribe``, each with its unsubscribe; notifications have agave's shapes.
The chain finalizes each transaction in its own block, so every commitment is
reached when it executes: a signature is notified then (at once when it has
already landed, as agave does from its status cache) and that subscription
ends.  With ``enableReceivedNotification`` a ``"receivedSignature"``
notification comes first, in the same slot; a signature that had already landed
gets only the final one, as agave only sends it on receipt.  Accounts are
notified when a transaction may write them (its writable keys, loaded ones
included, only the fee payer when it failed) or a cheatcode sets them.

The chain calls :meth:`PubSub.observe` synchronously; notifications go into a
per-client queue drained by that client's writer task, so a slow or vanished
client holds up no one else.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from solders.account import Account
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import ID as SYSTEM_PROGRAM_ID

from perpkit.chain import Chain, TxRecord, writable_keys
from perpkit.localnet.parsed import Lookup
from perpkit.localnet.rpc import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    Params,
    RpcError,
    account_keys,
    encode_account,
    error_json,
    loaded_addresses,
    parse_filters,
    parse_pubkey,
)
from perpkit.runtime import SLOT_MS

log = logging.getLogger("perpkit.localnet.pubsub")

QUEUE_LIMIT = 100_000
"""Notifications a client may leave unread before it is disconnected."""
COMMITMENTS = ("processed", "confirmed", "finalized", "recent", "single", "singleGossip", "root", "max")
KINDS = ("account", "program", "signature", "logs", "slot", "root")


def _invalid(message: str) -> RpcError:
    return RpcError(INVALID_PARAMS, message)


@dataclass(eq=False)
class _Client:
    ws: web.WebSocketResponse
    queue: asyncio.Queue[str | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    closed: bool = False

    def send(self, message: dict[str, Any]) -> None:
        if self.closed:
            return
        try:
            self.queue.put_nowait(json.dumps(message))
        except asyncio.QueueFull:  # it stopped reading: drop it rather than hold the memory
            self.closed = True
            self.queue = asyncio.Queue(1)
            self.queue.put_nowait(None)

    async def drain(self) -> None:
        try:
            while (text := await self.queue.get()) is not None:
                await self.ws.send_str(text)
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass
        finally:
            self.closed = True
            with contextlib.suppress(Exception):
                await self.ws.close()


@dataclass(eq=False)
class _Subscription:
    id: int
    kind: str
    client: _Client
    key: Any = None
    """The account, program or signature subscribed to; for logs, the mentioned address (or None: all)."""
    config: dict[str, Any] = field(default_factory=dict)
    checks: list[Callable[[bytes], bool]] = field(default_factory=list)


def _config(params: list[Any], i: int) -> dict[str, Any]:
    """The configuration object at ``i``, checked as the HTTP methods check theirs."""
    return Params(params).config(i)


def _signature(value: Any) -> Signature:
    if not isinstance(value, str) or len(value) > 88:
        raise _invalid("Invalid params: invalid signature")
    try:
        return Signature.from_string(value)
    except ValueError:
        raise _invalid("Invalid params: invalid signature") from None


class PubSub:
    """Solana PubSub over WebSocket for one :class:`Chain` (see the module docstring)."""

    def __init__(self, chain: Chain, host: str = "127.0.0.1", port: int = 8900) -> None:
        self.chain = chain
        self.host = host
        self.port = port
        self.subscriptions: dict[int, _Subscription] = {}
        self.clients: set[_Client] = set()
        self._ids = itertools.count()
        self._last_slot = chain.slot
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None

    # -- serving ------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        return app

    async def start(self) -> str:
        """Bind and serve; returns the ws:// URL (with the real port when ``port`` was 0)."""
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        for sock in self._runner.addresses:
            self.port = int(sock[1])
            break
        self.chain.observers.append(self.observe)
        self._last_slot = self.chain.slot
        self._ticker = asyncio.create_task(self._tick())
        return self.url

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    async def stop(self) -> None:
        if self.observe in self.chain.observers:
            self.chain.observers.remove(self.observe)
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        for client in list(self.clients):
            with contextlib.suppress(Exception):
                await client.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _tick(self) -> None:
        """Slots follow wall time on a running clock: notify them while someone listens."""
        while True:
            await asyncio.sleep(SLOT_MS / 1000)
            if not self.chain.clock.frozen and any(s.kind in ("slot", "root") for s in self.subscriptions.values()):
                try:
                    self.chain.sync_clock()
                except Exception:  # never let the ticker die
                    log.exception("slot tick failed")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        client = _Client(ws)
        self.clients.add(client)
        writer = asyncio.create_task(client.drain())
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    self.handle_text(client, msg.data)
                if client.closed:
                    break
        finally:
            self.clients.discard(client)
            for sub_id in [i for i, s in self.subscriptions.items() if s.client is client]:
                del self.subscriptions[sub_id]
            client.closed = True
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        return ws

    # -- requests -------------------------------------------------------------------
    def handle_text(self, client: _Client, text: str | bytes) -> None:
        try:
            payload = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            client.send(_error(None, RpcError(PARSE_ERROR, "Parse error")))
            return
        if isinstance(payload, list) and payload:
            for item in payload:
                self._handle_one(client, item)
        else:
            self._handle_one(client, payload)

    def _handle_one(self, client: _Client, item: Any) -> None:
        if not isinstance(item, dict):
            client.send(_error(None, RpcError(INVALID_REQUEST, "Invalid request")))
            return
        request_id = item.get("id")
        method = item.get("method")
        if item.get("jsonrpc") != "2.0" or not isinstance(method, str):
            client.send(_error(request_id, RpcError(INVALID_REQUEST, "Invalid request")))
            return
        params = item.get("params", [])
        followups: list[dict[str, Any]] = []
        try:
            if params is None:
                params = []
            if not isinstance(params, list):
                raise _invalid("Invalid params: expected an array")
            result = self._call(client, method, params, followups)
        except RpcError as error:
            client.send(_error(request_id, error))
            return
        except Exception as exc:
            log.exception("internal error in %s", method)
            client.send(_error(request_id, RpcError(-32603, "Internal error", str(exc))))
            return
        client.send({"jsonrpc": "2.0", "result": result, "id": request_id})
        for message in followups:
            client.send(message)

    def _call(self, client: _Client, method: str, params: list[Any], followups: list[dict[str, Any]]) -> Any:
        if method.endswith("Unsubscribe"):
            kind = method.removesuffix("Unsubscribe")
            if kind not in KINDS:
                raise RpcError(METHOD_NOT_FOUND, "Method not found")
            if len(params) != 1 or not isinstance(params[0], int) or isinstance(params[0], bool):
                raise _invalid("Invalid params: expected a subscription id")
            sub = self.subscriptions.get(params[0])
            if sub is None or sub.client is not client:
                raise _invalid("Invalid subscription id.")
            del self.subscriptions[params[0]]
            return True
        chain = self.chain
        if method == "accountSubscribe" or method == "programSubscribe":
            if not params:
                raise _invalid("Invalid params: expected a pubkey")
            key = parse_pubkey(params[0])
            config = _config(params, 1)
            encode_account(Account(0, b"", SYSTEM_PROGRAM_ID, False, 0), config, default="base64")  # validates
            checks: list[Callable[[bytes], bool]] = []
            if method == "programSubscribe":
                checks = parse_filters(config)
            kind = "account" if method == "accountSubscribe" else "program"
            return self._add(_Subscription(next(self._ids), kind, client, key, config, checks))
        if method == "signatureSubscribe":
            if not params:
                raise _invalid("Invalid params: expected a signature")
            signature = _signature(params[0])
            config = _config(params, 1)
            if not isinstance(config.get("enableReceivedNotification", False), bool):
                raise _invalid("Invalid params: enableReceivedNotification must be a boolean")
            sub = _Subscription(next(self._ids), "signature", client, signature, config)
            record = chain.history.get(signature)
            if record is None:
                return self._add(sub)
            followups.append(self._signature_message(sub, record))  # already landed: at once
            return sub.id
        if method == "logsSubscribe":
            if not params:
                raise _invalid("Invalid params: expected a filter")
            spec, mentions = params[0], None
            if isinstance(spec, dict) and "mentions" in spec:
                addresses = spec["mentions"]
                if not isinstance(addresses, list) or len(addresses) != 1:
                    raise _invalid("Invalid Request: Only 1 address supported")
                mentions = parse_pubkey(addresses[0], "mentions")
            elif spec not in ("all", "allWithVotes"):
                raise _invalid("Invalid params: the filter must be all, allWithVotes or {mentions: [address]}")
            return self._add(_Subscription(next(self._ids), "logs", client, mentions, _config(params, 1)))
        if method in ("slotSubscribe", "rootSubscribe"):
            return self._add(_Subscription(next(self._ids), method.removesuffix("Subscribe"), client))
        raise RpcError(METHOD_NOT_FOUND, "Method not found")

    def _add(self, sub: _Subscription) -> int:
        self.subscriptions[sub.id] = sub
        return sub.id

    # -- notifications ----------------------------------------------------------------
    def observe(self, kind: str, payload: object) -> None:
        """The chain's observer: an executed transaction, a written account or a new slot."""
        if not self.subscriptions:
            if isinstance(payload, int):
                self._last_slot = payload
            return
        try:
            if kind == "transaction":
                assert isinstance(payload, TxRecord)
                self._on_transaction(payload)
            elif kind == "account":
                assert isinstance(payload, Pubkey)
                self._on_accounts([payload], self.chain.slot)
            elif kind == "slot":
                assert isinstance(payload, int)
                self._on_slot(payload)
        except Exception:  # a notification bug must not fail the transaction
            log.exception("pubsub notification failed (%s)", kind)

    @staticmethod
    def _notify(sub: _Subscription, method: str, result: Any) -> None:
        sub.client.send({"jsonrpc": "2.0", "method": method, "params": {"result": result, "subscription": sub.id}})

    @staticmethod
    def _signature_message(sub: _Subscription, record: TxRecord, received: bool = False) -> dict[str, Any]:
        """The final ``{"err": ...}`` notification, or with ``received`` agave's ``"receivedSignature"``."""
        value: Any = "receivedSignature" if received else {"err": error_json(record.err)}
        result = {"context": {"slot": record.slot}, "value": value}
        return {
            "jsonrpc": "2.0",
            "method": "signatureNotification",
            "params": {"result": result, "subscription": sub.id},
        }

    def _on_transaction(self, record: TxRecord) -> None:
        message = Chain.message_of(record.transaction)
        keys = account_keys(message, self.chain.get_account)
        written = [keys[0]] if record.err is not None else self._written(message)
        logs_value = {"signature": str(record.signature), "err": error_json(record.err), "logs": record.logs}
        context = {"slot": record.slot}
        for sub in list(self.subscriptions.values()):
            if sub.kind == "signature" and sub.key == record.signature:
                if sub.config.get("enableReceivedNotification"):
                    sub.client.send(self._signature_message(sub, record, received=True))
                sub.client.send(self._signature_message(sub, record))
                self.subscriptions.pop(sub.id, None)  # a signature subscription ends with its notification
            elif sub.kind == "logs" and (sub.key is None or sub.key in keys):
                self._notify(sub, "logsNotification", {"context": context, "value": logs_value})
        self._on_accounts(written, record.slot)

    def _written(self, message: Message | MessageV0) -> list[Pubkey]:
        """The keys a message may write: its writable static keys, then its loaded writable ones."""
        static = writable_keys(message)
        return [k for k in message.account_keys if k in static] + loaded_addresses(message, self.chain.get_account)[0]

    def _on_accounts(self, addresses: list[Pubkey], slot: int) -> None:
        subs = [s for s in self.subscriptions.values() if s.kind in ("account", "program")]
        if not subs:
            return
        context = {"slot": slot}
        for address in addresses:
            account: Account | None = None
            for sub in subs:
                if sub.kind == "account" and sub.key != address:
                    continue
                if account is None:
                    account = self.chain.get_account(address) or Account(0, b"", SYSTEM_PROGRAM_ID, False, 0)
                if sub.kind == "program" and (
                    account.owner != sub.key or not all(check(bytes(account.data)) for check in sub.checks)
                ):
                    continue
                encoded = self._encode(account, sub.config, self.chain.get_account)
                if sub.kind == "account":
                    self._notify(sub, "accountNotification", {"context": context, "value": encoded})
                else:
                    value = {"pubkey": str(address), "account": encoded}
                    self._notify(sub, "programNotification", {"context": context, "value": value})

    @staticmethod
    def _encode(account: Account, config: dict[str, Any], lookup: Lookup) -> dict[str, Any]:
        try:
            return encode_account(account, config, default="base64", lookup=lookup)
        except RpcError:  # base58 above 128 bytes: send base64 rather than nothing
            return encode_account(account, {**config, "encoding": "base64"})

    def _on_slot(self, slot: int) -> None:
        parent, self._last_slot = self._last_slot, slot
        for sub in list(self.subscriptions.values()):
            if sub.kind == "slot":
                self._notify(sub, "slotNotification", {"parent": parent, "root": slot, "slot": slot})
            elif sub.kind == "root":
                self._notify(sub, "rootNotification", slot)


def _error(request_id: Any, error: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": error.to_json(), "id": request_id}
