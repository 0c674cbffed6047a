"""``perpkit crank``: the liquidation bot, a long-running loop around the :mod:`perpkit.crank` library calls.

Per market, a round is: simulate ``liquidate`` and send it only when there is work (compute limit from the
simulation, priority fee from ``getRecentPrioritizationFees`` under a cap); collect garbage only when the
book's header says there is some; then clear liquidated references in the background, at the lowest
priority (a round never waits for clearing).  Rounds run on each change of a market's oracle or market
account (WebSocket ``accountSubscribe``) and every ``--poll-interval`` seconds as a fallback.

Races are normal: nothing to liquidate, or a reference cleared by another cranker, are not errors.  A
transaction whose outcome is unknown (the endpoint failed while it was in flight) is looked up by signature
before the market is touched again.  SIGINT/SIGTERM let the transaction in flight finish, then the bot exits 0
with a one-line summary.  ``--metrics-port`` serves Prometheus metrics at ``/metrics`` and ``/healthz``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import signal
import sys
import time
import tomllib
from collections import Counter as TallyCounter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from solders.pubkey import Pubkey

from perpkit import instructions as ix
from perpkit import program_errors
from perpkit.accounts import BookHeader
from perpkit.backends.base import TxResult
from perpkit.client import Client
from perpkit.crank import (
    DEFAULT_GC_BATCH,
    LIQUIDATE_COMPUTE_LIMIT,
    LiquidationBatch,
    clear_liquidated,
    collect_garbage_by_header,
    compute_limit,
    decode_batches,
)
from perpkit.errors import InvalidInput, PerpkitError, TransactionFailed
from perpkit.idl import PROGRAM_ID
from perpkit.localnet.launcher import DEFAULT_CLI_KEYPAIR, read_keypair
from perpkit.spl_token import associated_token_address

GC_MAX_TRANSACTIONS = 64
"""collect_garbage transactions per round at most (the rest waits for the next round)."""
SIMULATE_ATTEMPTS = 3
"""Simulations of a liquidate per round, when one fails for want of a known blockhash."""
RECONCILE_WINDOW = 90.0
"""Seconds after an unknown liquidate outcome during which rounds look for landed, uncounted liquidates."""
QUOTE_DECIMALS = 6
_SIGNATURE = re.compile(r"\b([1-9A-HJ-NP-Za-km-z]{64,88})\b")


def priority_fee(recent: Sequence[int], cap: int, percentile: int = 75) -> int:
    """The ``percentile`` of the recent non-zero prioritization fees (micro-lamports per CU), at most ``cap``."""
    fees = sorted(f for f in recent if f > 0)
    if not fees or cap <= 0:
        return 0
    return min(cap, fees[min(len(fees) - 1, len(fees) * percentile // 100)])


def _quote(atoms: int) -> str:
    return f"{atoms / 10**QUOTE_DECIMALS:.6f}"


# -- configuration -------------------------------------------------------------


@dataclass
class BotConfig:
    url: str = "http://127.0.0.1:8899"
    ws_url: str | None = None
    """PubSub endpoint (default: the RPC port + 1); "none" polls only."""
    keypair: Path = DEFAULT_CLI_KEYPAIR
    program_id: Pubkey = PROGRAM_ID
    markets: list[Pubkey] = field(default_factory=list)
    cranker_token: Pubkey | None = None
    once: bool = False
    dry_run: bool = False
    poll_interval: float = 2.0
    max_priority_fee: int = 100_000
    gc_batch: int = DEFAULT_GC_BATCH
    log_format: str = "text"
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    health_max_age: float = 30.0


_KEYS: dict[str, type[Any]] = {
    "url": str, "ws_url": str, "keypair": str, "program_id": str, "market": list, "cranker_token": str,
    "once": bool, "dry_run": bool, "poll_interval": float, "max_priority_fee": int, "gc_batch": int,
    "log_format": str, "metrics_port": int, "metrics_host": str, "health_max_age": float,
}  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``perpkit crank`` options (every one may also be given in the ``--config`` TOML file)."""
    s = argparse.SUPPRESS  # unset flags fall back to the config file, then to BotConfig's defaults
    parser.add_argument("--config", type=Path, default=None, help="TOML file with the same keys as the flags")
    parser.add_argument("--url", default=s, help="JSON-RPC endpoint (default: localnet)")
    parser.add_argument("--ws-url", default=s, help="PubSub endpoint (default: the RPC port + 1; 'none': poll only)")
    parser.add_argument("--market", action="append", default=s,
                        help="market address (repeatable; default: every market of the program)")  # fmt: skip
    parser.add_argument("--keypair", default=s, help=f"cranker keypair (pays fees; default {DEFAULT_CLI_KEYPAIR})")
    parser.add_argument("--cranker-token", default=s, help="token account for rewards (default: the cranker's ATA)")
    parser.add_argument("--program-id", default=s, help="the perps program's address")
    parser.add_argument("--once", action="store_true", default=s, help="run one round per market and exit")
    parser.add_argument("--dry-run", action="store_true", default=s, help="simulate and log, send nothing")
    parser.add_argument("--poll-interval", type=float, default=s, help="seconds between polls (default 2)")
    parser.add_argument("--max-priority-fee", type=int, default=s,
                        help="cap of the priority fee, micro-lamports per CU (default 100000; 0: none)")  # fmt: skip
    parser.add_argument(
        "--gc-batch", type=int, default=s, help=f"items per collect_garbage (default {DEFAULT_GC_BATCH})"
    )
    parser.add_argument("--log-format", choices=["text", "json"], default=s, help="one line per action (default text)")
    parser.add_argument("--metrics-port", type=int, default=s, help="serve /metrics and /healthz on this port")
    parser.add_argument("--metrics-host", default=s, help="address the metrics server binds (default 127.0.0.1)")
    parser.add_argument("--health-max-age", type=float, default=s,
                        help="/healthz is 503 when no round or slot was seen for this long (default 30 s)")  # fmt: skip


def _pubkey(value: object, what: str) -> Pubkey:
    if isinstance(value, Pubkey):
        return value
    try:
        return Pubkey.from_string(str(value))
    except ValueError:
        raise InvalidInput(f"{what}: not an address: {value!r}") from None


def config_from_args(args: argparse.Namespace) -> BotConfig:
    """Flags over the ``--config`` file over the defaults."""
    values: dict[str, Any] = {}
    path: Path | None = getattr(args, "config", None)
    if path is not None:
        try:
            loaded = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InvalidInput(f"{path}: {exc}") from None
        for key, value in loaded.items():
            name = key.replace("-", "_")
            if name == "markets":
                name = "market"
            if name not in _KEYS:
                raise InvalidInput(f"{path}: unknown key {key!r} (known: {', '.join(sorted(_KEYS))})")
            values[name] = value
    for name in _KEYS:
        if name in vars(args) and getattr(args, name) is not None:
            values[name] = getattr(args, name)
    config = BotConfig()
    for name, value in values.items():
        if name == "market":
            config.markets = [_pubkey(m, "market") for m in ([value] if isinstance(value, str) else value)]
        elif name in ("program_id", "cranker_token"):
            setattr(config, name, _pubkey(value, name))
        elif name == "keypair":
            config.keypair = Path(str(value)).expanduser()
        else:
            setattr(config, name, _KEYS[name](value))
    if config.log_format not in ("text", "json"):
        raise InvalidInput(f"log_format must be text or json, not {config.log_format!r}")
    if config.poll_interval <= 0 or not 1 <= config.gc_batch < 2**32:
        raise InvalidInput("poll_interval must be positive and gc_batch between 1 and 2**32 - 1")
    return config


def default_ws_url(url: str) -> str:
    """The PubSub endpoint next to a JSON-RPC one: ws(s)://, port + 1 when a port is given."""
    from urllib.parse import urlsplit

    parsed = urlsplit(url)
    scheme = "wss" if parsed.scheme == "https" else "ws"
    if parsed.port is None:
        return f"{scheme}://{parsed.netloc}{parsed.path}"
    return f"{scheme}://{parsed.hostname}:{parsed.port + 1}{parsed.path}"


# -- logging, metrics ----------------------------------------------------------


class Log:
    """One line per action on stdout: text, or JSON lines."""

    def __init__(self, fmt: str = "text") -> None:
        self.fmt = fmt

    def __call__(self, event: str, market: Pubkey | None = None, **fields: Any) -> None:
        record: dict[str, Any] = {"ts": round(time.time(), 3), "event": event}
        if market is not None:
            record["market"] = str(market)
        record.update({k: (str(v) if isinstance(v, Pubkey) else v) for k, v in fields.items()})
        if self.fmt == "json":
            line = json.dumps(record, separators=(",", ":"))
        else:
            stamp = time.strftime("%H:%M:%S", time.localtime(record.pop("ts")))
            text = " ".join(f"{k}={v}" for k, v in record.items() if k != "event")
            line = f"{stamp} {event} {text}".rstrip()
        print(line, flush=True)


class Metrics:
    """The bot's Prometheus metrics (a registry of its own)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.rounds = Counter("perpkit_crank_rounds", "Rounds completed", ["market"], registry=r)
        self.liquidations = Counter("perpkit_crank_liquidations", "Liquidate transactions landed", ["market"],
                                    registry=r)  # fmt: skip
        self.positions = Counter("perpkit_crank_positions_liquidated", "Positions cut", ["market"], registry=r)
        self.rewards = Counter("perpkit_crank_rewards_atoms", "Cranker rewards, quote atoms", ["market"], registry=r)
        self.errors = Counter("perpkit_crank_errors", "Errors by kind", ["kind"], registry=r)
        self.rpc_latency = Histogram("perpkit_crank_rpc_seconds", "RPC latency", ["method"], registry=r,
                                     buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))  # fmt: skip
        self.price = Gauge("perpkit_crank_last_price", "Last oracle price seen (6 decimals)", ["market"], registry=r)
        self.slot = Gauge("perpkit_crank_last_slot", "Last slot seen", registry=r)
        self.liquidation_latency = Histogram("perpkit_crank_liquidation_seconds",
                                             "Oracle change seen to liquidation landed", registry=r)  # fmt: skip


# -- the bot ----------------------------------------------------------------


@dataclass
class MarketState:
    address: Pubkey
    oracle: Pubkey
    book: Pubkey
    vault: Pubkey
    cranker_token: Pubkey
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    woken_at: float | None = None
    """When the change that woke it was seen (for the latency histogram)."""
    needs_clear: bool = True
    clearing: asyncio.Task[None] | None = None
    unknown: str | None = None
    """Signature of a liquidate whose outcome is unknown ("" when not even that is known)."""


@dataclass
class Summary:
    rounds: int = 0
    liquidations: int = 0
    positions: int = 0
    rewards: int = 0
    errors: TallyCounter[str] = field(default_factory=TallyCounter)

    def line(self) -> str:
        errors = sum(self.errors.values())
        kinds = f" ({', '.join(f'{k} {n}' for k, n in sorted(self.errors.items()))})" if errors else ""
        return (f"perpkit crank: {self.rounds} rounds, {self.liquidations} liquidations, {self.positions} positions, "
                f"rewards {_quote(self.rewards)}, {errors} errors{kinds}")  # fmt: skip


class Bot:
    def __init__(self, client: Client, config: BotConfig, log: Log | None = None) -> None:
        self.client = client
        self.config = config
        self.log = log or Log(config.log_format)
        self.metrics = Metrics()
        self.summary = Summary()
        self.markets: dict[Pubkey, MarketState] = {}
        self.stop = asyncio.Event()
        self.last_round = 0.0
        self.last_slot = 0
        self.last_slot_at = 0.0
        self._watchers: dict[Pubkey, list[MarketState]] = {}
        self._counted: set[str] = set()
        """Signatures of the liquidates counted (each is counted once, however it was learnt of)."""
        self._examined: set[str] = set()
        """The cranker's signatures already looked at by :meth:`_reconcile`."""
        self._history_start: str | None = None
        """The cranker's newest signature when the bot started (older ones are not its own to count)."""
        self._reconcile_until = 0.0

    # -- plumbing --------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _rpc(self, method: str) -> AsyncIterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.metrics.rpc_latency.labels(method).observe(time.perf_counter() - started)

    def _error(self, kind: str, market: Pubkey | None, message: str) -> None:
        self.summary.errors[kind] += 1
        self.metrics.errors.labels(kind).inc()
        self.log("error", market, kind=kind, message=message.replace("\n", " ")[:300])

    def _saw_slot(self, slot: int) -> None:
        self.last_slot = max(self.last_slot, slot)
        self.last_slot_at = time.monotonic()
        self.metrics.slot.set(self.last_slot)

    def health(self) -> tuple[bool, str]:
        """(healthy, one-line reason) for /healthz."""
        now = time.monotonic()
        age = self.config.health_max_age
        if not self.last_round:
            return False, "no round completed yet"
        if now - self.last_round > age:
            return False, f"no round completed for {now - self.last_round:.1f} s (max {age:g} s)"
        if not self.last_slot_at or now - self.last_slot_at > age:
            return False, f"last slot {self.last_slot} seen {now - self.last_slot_at:.1f} s ago (max {age:g} s)"
        return True, f"ok: slot {self.last_slot}, last round {now - self.last_round:.1f} s ago"

    # -- setup -----------------------------------------------------------------
    async def _signatures(self, *, until: str | None = None, limit: int = 1000) -> list[tuple[str, bool]]:
        """(signature, failed) of the cranker's transactions, newest first."""
        async with self._rpc("getSignaturesForAddress"):
            return await self.client.signatures_for_address(self.client.payer.pubkey(), until=until, limit=limit)

    async def load_markets(self) -> None:
        newest = await self._signatures(limit=1)
        self._history_start = newest[0][0] if newest else None
        addresses = list(self.config.markets)
        if not addresses:
            async with self._rpc("getProgramAccounts"):
                found = await self.client.program_accounts(account_type="Market", data_slice=(0, 0))
            addresses = sorted((a for a, _ in found), key=str)
        for address in addresses:
            async with self._rpc("getAccountInfo"):
                m = await self.client.fetch_market(address)
            token = self.config.cranker_token or associated_token_address(self.client.payer.pubkey(), m.quote_mint)
            state = MarketState(address, m.oracle, m.book, m.vault, token)
            self.markets[address] = state
            self._watchers.setdefault(m.oracle, []).append(state)
            self._watchers.setdefault(address, []).append(state)
            self.log("market", address, oracle=m.oracle, book=m.book, reward_to=token)

    # -- one round -----------------------------------------------------------------
    async def _priority_fee(self, m: MarketState) -> int:
        if self.config.max_priority_fee <= 0:
            return 0
        try:
            async with self._rpc("getRecentPrioritizationFees"):
                fees = await self.client.recent_prioritization_fees([m.address, m.book])
        except (PerpkitError, aiohttp.ClientError, KeyError, TypeError, ValueError) as exc:
            self._error("priority_fee", m.address, str(exc))
            return 0
        return priority_fee(fees, self.config.max_priority_fee)

    async def _reconcile(self) -> None:
        """Count the cranker's landed liquidates that were not counted (a send whose answer was lost).

        The transport may fail after the cluster took the transaction, and the error does not always name
        the signature; so rather than look one signature up, read the cranker's recent signatures (since the
        bot started) and count every liquidate batch not counted yet.  Raises (and is retried next round)
        while the endpoint fails."""
        for signature, failed in reversed(await self._signatures(until=self._history_start)):
            if signature in self._examined or signature in self._counted:
                continue
            if failed:
                self._examined.add(signature)
                continue
            async with self._rpc("getTransaction"):
                outcome = await self.client.transaction_outcome(signature)
            if outcome is None:
                continue  # not visible yet: look again next time
            for batch in decode_batches(outcome.logs):
                m = self.markets.get(batch.market)
                if m is not None and batch.cranker == self.client.payer.pubkey():
                    self._count(m, batch, signature, resolved=True)
            self._examined.add(signature)

    async def _resolve_unknown(self, m: MarketState) -> None:
        """Before touching a market again after a liquidate whose outcome is unknown: count what landed."""
        if m.unknown:
            async with self._rpc("getSignatureStatuses"):
                outcome = await self.client.transaction_outcome(m.unknown)
            if outcome is None:
                # Not seen: it may still land while its blockhash is valid; the simulation will then see
                # its effect (a resend can never cut a position twice) and _reconcile will count it.
                self.log("unknown_outcome", m.address, signature=m.unknown, status="not found")
            elif outcome.ok:
                for batch in decode_batches(outcome.logs):
                    self._count(m, batch, m.unknown, resolved=True)
            else:
                self.log("unknown_outcome", m.address, signature=m.unknown, status="failed")
        await self._reconcile()
        m.unknown = None  # only once the lookups succeeded (they raise, and are retried, while the RPC fails)

    def _count(self, m: MarketState, batch: LiquidationBatch, signature: str, **extra: Any) -> None:
        key = f"{signature}:{batch.market}"
        if key in self._counted:
            return
        self._counted.add(key)
        self._counted.add(signature)
        s = self.summary
        s.liquidations += 1
        s.positions += batch.count
        s.rewards += batch.cranker_reward
        self.metrics.liquidations.labels(str(m.address)).inc()
        self.metrics.positions.labels(str(m.address)).inc(batch.count)
        self.metrics.rewards.labels(str(m.address)).inc(batch.cranker_reward)
        m.needs_clear = True
        self.log("liquidated", m.address, positions=batch.count, longs=batch.long_count, shorts=batch.short_count,
                 index_price=batch.index_price, exit_price=batch.exit_price, reward=_quote(batch.cranker_reward),
                 slot=batch.slot, signature=signature, **extra)  # fmt: skip

    async def liquidate(self, m: MarketState) -> None:
        """Simulate; send (compute limit from the simulation, capped priority fee) only when there is work."""
        if m.unknown is not None:
            await self._resolve_unknown(m)
        elif time.monotonic() < self._reconcile_until:
            await self._reconcile()  # a liquidate of another market's unknown outcome may land late
        client, signer = self.client, self.client.payer
        instruction = ix.liquidate(cranker=signer.pubkey(), market=m.address, book=m.book, oracle=m.oracle,
                                   vault=m.vault, cranker_token=m.cranker_token,
                                   program_id=client.program_id)  # fmt: skip
        for attempt in range(SIMULATE_ATTEMPTS):
            try:
                async with self._rpc("simulateTransaction"):
                    sim = await client.simulate([instruction], compute_unit_limit=LIQUIDATE_COMPUTE_LIMIT)
                break
            except program_errors.NothingToLiquidate:
                return
            except TransactionFailed as exc:
                # The simulation is signed with a blockhash fetched just before; a node that answers a stale one
                # (a lagging node behind a load balancer) makes it fail with BlockhashNotFound: ask again.
                if "BlockhashNotFound" not in str(exc) or attempt == SIMULATE_ATTEMPTS - 1:
                    raise
        self._saw_slot_of(sim.logs)
        limit, price = compute_limit(sim.compute_units), await self._priority_fee(m)
        if self.config.dry_run:
            for batch in decode_batches(sim.logs):
                self.log("would_liquidate", m.address, positions=batch.count, index_price=batch.index_price,
                         reward=_quote(batch.cranker_reward), compute_limit=limit, priority_fee=price)  # fmt: skip
            return
        try:
            async with self._rpc("sendTransaction"):
                result = await client.send([instruction], compute_unit_limit=limit, compute_unit_price=price or None)
        except program_errors.NothingToLiquidate:
            # Another cranker was first (normal), or this one was: the transport lost the answer to a send that
            # landed, and the retry's preflight found nothing left.  Count what landed before the next round.
            self.log("race_lost", m.address, action="liquidate")
            m.unknown = ""
            self._reconcile_until = time.monotonic() + RECONCILE_WINDOW
            return
        except Exception as exc:  # the endpoint failed (or answered nonsense): it may have landed all the same
            found = _SIGNATURE.search(str(exc))
            m.unknown = found.group(1) if found else ""
            self._reconcile_until = time.monotonic() + RECONCILE_WINDOW
            raise
        for batch in decode_batches(result.logs):
            if m.woken_at is not None:
                self.metrics.liquidation_latency.observe(time.monotonic() - m.woken_at)
            self._saw_slot(batch.slot)
            self._count(m, batch, result.signature, compute_units=result.compute_units, priority_fee=price)

    def _saw_slot_of(self, logs: list[str]) -> None:
        for batch in decode_batches(logs):
            self._saw_slot(batch.slot)

    async def collect_garbage(self, m: MarketState) -> None:
        """collect_garbage while the book's header (a dataSlice read) says there is garbage, at most
        GC_MAX_TRANSACTIONS a round (:func:`perpkit.crank.collect_garbage_by_header`)."""

        def found(header: BookHeader) -> bool:
            m.needs_clear = True  # somebody liquidated: references to clear
            if self.config.dry_run:
                self.log("would_collect_garbage", m.address, lists=header.garbage_count)
                return False
            return True

        def collected(result: TxResult) -> None:
            self.log("collected_garbage", m.address, signature=result.signature, compute_units=result.compute_units)

        await collect_garbage_by_header(self.client, m.address, book=m.book, max_nodes=self.config.gc_batch,
                                        max_transactions=GC_MAX_TRANSACTIONS, on_garbage=found, on_sent=collected,
                                        rpc_context=self._rpc)  # fmt: skip

    async def clear(self, m: MarketState) -> None:
        """Clear references to liquidated positions (the lowest priority: runs beside the rounds)."""
        m.needs_clear = False
        if self.config.dry_run:
            return
        try:
            async with self._rpc("clear_liquidated"):
                cleared = await clear_liquidated(self.client, m.address)
        except Exception as exc:
            m.needs_clear = True
            self._error(type(exc).__name__, m.address, f"clearing: {exc}")
            return
        if cleared:
            self.log("cleared", m.address, references=len(cleared), users=len({u for u, _ in cleared}))

    def _start_clear(self, m: MarketState) -> None:
        if m.needs_clear and (m.clearing is None or m.clearing.done()) and not self.stop.is_set():
            m.clearing = asyncio.create_task(self.clear(m))

    async def round(self, m: MarketState) -> None:
        try:
            await self.liquidate(m)
            await self.collect_garbage(m)
            async with self._rpc("getAccountInfo"):
                price = await self.client.oracle_price(m.address)
            self.metrics.price.labels(str(m.address)).set(price.price)
        except Exception as exc:
            self._error(type(exc).__name__, m.address, str(exc))
            return
        finally:
            m.woken_at = None
        self.summary.rounds += 1
        self.metrics.rounds.labels(str(m.address)).inc()
        self.last_round = time.monotonic()

    # -- loops -----------------------------------------------------------------
    async def worker(self, m: MarketState) -> None:
        while not self.stop.is_set():
            m.wake.clear()  # before the round: a change seen during the round wakes the next one at once
            await self.round(m)
            self._start_clear(m)
            waiter = asyncio.create_task(m.wake.wait())
            stopper = asyncio.create_task(self.stop.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stopper.cancel()

    def _wake(self, address: Pubkey | None = None) -> None:
        now = time.monotonic()
        for m in self._watchers.get(address, []) if address is not None else self.markets.values():
            if m.woken_at is None:
                m.woken_at = now
            m.wake.set()

    async def poller(self) -> None:
        """The fallback: every poll interval, read the slot and wake every market."""
        while not self.stop.is_set():
            try:
                async with self._rpc("getSlot"):
                    clock = await self.client.clock()
                self._saw_slot(clock.slot)
                self._wake()
            except Exception as exc:
                self._error(type(exc).__name__, None, f"poll: {exc}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.config.poll_interval)

    async def watcher(self, ws_url: str) -> None:
        """accountSubscribe to every oracle and market; reconnect with backoff (polling goes on meanwhile)."""
        delay = 0.5
        while not self.stop.is_set():
            try:
                async with aiohttp.ClientSession() as session, session.ws_connect(ws_url, heartbeat=20) as ws:
                    ids: dict[int, Pubkey] = {}
                    pending: dict[int, Pubkey] = {}
                    for n, address in enumerate(self._watchers, start=1):
                        pending[n] = address
                        params = [str(address), {"encoding": "base64", "commitment": "confirmed"}]
                        await ws.send_json({"jsonrpc": "2.0", "id": n, "method": "accountSubscribe", "params": params})
                    self.log("watching", None, url=ws_url, accounts=len(pending))
                    delay = 0.5
                    async for message in ws:
                        if message.type != aiohttp.WSMsgType.TEXT:
                            break
                        data = json.loads(message.data)
                        if "id" in data and data["id"] in pending:
                            ids[int(data["result"])] = pending.pop(data["id"])
                        elif data.get("method") == "accountNotification":
                            params = data["params"]
                            with contextlib.suppress(KeyError, TypeError):
                                self._saw_slot(int(params["result"]["context"]["slot"]))
                            self._wake(ids.get(int(params["subscription"])))
            except (aiohttp.ClientError, OSError, ValueError, KeyError) as exc:
                self._error("websocket", None, f"{ws_url}: {exc}; polling meanwhile")
            if self.stop.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), delay)
            delay = min(delay * 2, 30.0)

    async def _settle(self, timeout: float = 15.0) -> None:
        """Before the summary: count what landed of the liquidates whose outcome is still unknown."""
        deadline = time.monotonic() + timeout
        for m in self.markets.values():
            while m.unknown is not None and time.monotonic() < deadline:
                try:
                    await asyncio.wait_for(self._resolve_unknown(m), max(0.1, deadline - time.monotonic()))
                except Exception as exc:
                    self._error(type(exc).__name__, m.address, f"settling: {exc}")
                    await asyncio.sleep(0.2)

    async def serve_metrics(self) -> web.AppRunner:
        async def metrics(_: web.Request) -> web.Response:
            body = generate_latest(self.metrics.registry)
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

        async def healthz(_: web.Request) -> web.Response:
            ok, reason = self.health()
            return web.Response(status=200 if ok else 503, text=reason + "\n")

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/healthz", healthz)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        assert self.config.metrics_port is not None
        await web.TCPSite(runner, self.config.metrics_host, self.config.metrics_port).start()
        self.log("metrics", None, url=f"http://{self.config.metrics_host}:{self.config.metrics_port}/metrics")
        return runner

    async def run(self) -> int:
        """Run until SIGINT/SIGTERM (or one round per market with ``once``); 0 unless it could not start."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop.set)
        runner = await self.serve_metrics() if self.config.metrics_port is not None else None
        try:
            await self.load_markets()
            if not self.markets:
                self.log("idle", None, reason="the program has no market")
            if self.config.once:
                for m in self.markets.values():
                    await self.round(m)
                    if m.needs_clear:
                        await self.clear(m)
                return 0
            self.log("started", None, cranker=self.client.payer.pubkey(), markets=len(self.markets),
                     dry_run=self.config.dry_run)  # fmt: skip
            tasks = [asyncio.create_task(self.worker(m)) for m in self.markets.values()]
            background = [asyncio.create_task(self.poller())]
            ws_url = self.config.ws_url or default_ws_url(self.config.url)
            if ws_url.lower() != "none":
                background.append(asyncio.create_task(self.watcher(ws_url)))
            await self.stop.wait()
            await asyncio.gather(*tasks, return_exceptions=True)  # each finishes its round in flight
            await self._settle()
            clearing = [m.clearing for m in self.markets.values() if m.clearing is not None]
            if clearing:
                await asyncio.wait(clearing, timeout=15)
            for task in [*background, *clearing]:
                task.cancel()
            await asyncio.gather(*background, *clearing, return_exceptions=True)
            return 0
        finally:
            if runner is not None:
                await runner.cleanup()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
            self.log("summary", None, rounds=self.summary.rounds, liquidations=self.summary.liquidations,
                     positions=self.summary.positions, rewards=_quote(self.summary.rewards),
                     errors=sum(self.summary.errors.values()))  # fmt: skip
            print(self.summary.line(), file=sys.stderr, flush=True)


async def run_from_args(args: argparse.Namespace) -> int:
    """``perpkit crank``: the bot from parsed arguments (see :func:`add_arguments`); the exit code."""
    try:
        config = config_from_args(args)
        cranker = read_keypair(config.keypair)
        client = await Client.connect(config.url, payer=cranker, program_id=config.program_id)
    except PerpkitError as exc:
        print(f"perpkit: error: {exc}", file=sys.stderr)
        return 2
    async with client:
        try:
            return await Bot(client, config).run()
        except PerpkitError as exc:
            print(f"perpkit: error: {exc}", file=sys.stderr)
            return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="perpkit crank", description=__doc__.splitlines()[0] if __doc__ else None)
    add_arguments(parser)
    return asyncio.run(run_from_args(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
