"""The operator commands of ``perpkit`` (airdrop, market, oracle, deposit, withdraw, open, close, positions,
book): each connects to ``--url``, signs with ``--keypair`` where it sends, and prints what the chain holds.

Amounts on the command line are whole units (``64250.5``): prices and sizes at 6 decimals, quote amounts at
the quote mint's decimals.  Errors are :class:`perpkit.errors.PerpkitError` with one-line messages.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from perpkit.cli_args import DECIMALS, MARKET_PARAM_NAMES, to_atoms
from perpkit.cli_errors import unreachable
from perpkit.errors import InvalidInput, NoSolForFees, PerpkitError, ProgramError, RpcUnavailable, TransactionFailed
from perpkit.keyfile import load_keypair

if TYPE_CHECKING:
    from solders.keypair import Keypair
    from solders.pubkey import Pubkey

    from perpkit.accounts import Market
    from perpkit.client import Client

Say = Callable[[str], None]
LAMPORTS_PER_SOL = 1_000_000_000
CONNECT_ATTEMPTS = 3
"""Tries before an endpoint counts as unreachable (about 0.6 s of back-off; the SDK's default is 6, 9 s)."""


def units(atoms: int, decimals: int = DECIMALS) -> str:
    """Atoms as whole units with every decimal: ``64_250_500_000`` -> ``64,250.500000``."""
    return f"{Decimal(atoms).scaleb(-decimals):,.{decimals}f}"


def note(message: str) -> None:
    """A progress line: on stderr, so that stdout holds only the command's result."""
    print(message, file=sys.stderr, flush=True)


@contextlib.asynccontextmanager
async def progress(say: Say, label: str, after: float = 1.0) -> AsyncIterator[None]:
    """Say ``label...`` if the block is still running after ``after`` seconds, and how long it took."""
    started = time.perf_counter()
    shown = False

    async def later() -> None:
        nonlocal shown
        await asyncio.sleep(after)
        shown = True
        say(f"  {label}...")

    task = asyncio.create_task(later())
    try:
        yield
    finally:
        task.cancel()
        if shown:
            say(f"  {label}: {time.perf_counter() - started:.1f} s")


class Session:
    """A client on ``url``; ``keypair`` signs and pays (a throwaway key for read-only commands)."""

    def __init__(self, client: Client, url: str, say: Say, signer: bool) -> None:
        self.client = client
        self.url = url
        self.say = say
        self.signer = signer

    @classmethod
    async def open(cls, args: argparse.Namespace, say: Say, *, signer: bool) -> Session:
        from solders.keypair import Keypair

        from perpkit.backends.rpc import RetryPolicy, RpcBackend
        from perpkit.client import Client
        from perpkit.idl import PROGRAM_ID

        payer = load_keypair(args.keypair) if signer else Keypair()
        async with progress(note, f"connecting to {args.url}"):
            try:
                backend = await RpcBackend.connect(args.url, retry=RetryPolicy(attempts=CONNECT_ATTEMPTS))
            except RpcUnavailable as exc:
                raise PerpkitError(unreachable(args.url, exc)) from None
        client = Client(backend, payer, program_id=args.program_id or PROGRAM_ID)
        return cls(client, args.url, say, signer)

    @property
    def payer(self) -> Keypair:
        return self.client.payer

    async def close(self) -> None:
        await self.client.close()

    async def explain(self, exc: TransactionFailed) -> PerpkitError:
        """A refusal before the program ran, from a fee payer without lamports, as :class:`NoSolForFees`."""
        if isinstance(exc, ProgramError):
            return exc
        account = await self.client.account(self.payer.pubkey())
        if account is None or account.lamports == 0:
            return NoSolForFees(self.payer.pubkey(), self.url)
        return exc

    async def market(self, address: Pubkey) -> Market:
        return await self.client.fetch_market(address)

    async def quote_decimals(self, market: Market) -> int:
        """The quote mint's decimals (byte 44 of an SPL mint)."""
        data = await self.client.account_data(market.quote_mint, "quote mint")
        return data[44] if len(data) > 44 else DECIMALS

    async def quote_atoms(self, market: Market, value: Decimal) -> int:
        return to_atoms(str(value), await self.quote_decimals(market), "quote amount")


async def run(command: Callable[[Session, argparse.Namespace], Any], args: argparse.Namespace, say: Say,
              *, signer: bool) -> None:  # fmt: skip
    """Open a session, run ``command`` in it, and turn a fee payer without SOL into its one-line error."""
    session = await Session.open(args, say, signer=signer)
    try:
        async with progress(note, "waiting for the chain"):
            await command(session, args)
    except TransactionFailed as exc:
        raise await session.explain(exc) from None
    finally:
        await session.close()


# -- SOL ------------------------------------------------------------------------------------------------
async def airdrop(s: Session, args: argparse.Namespace) -> None:
    to = args.to or s.payer.pubkey()
    lamports = to_atoms(str(args.sol), 9, "SOL")
    if lamports == 0:
        raise InvalidInput("airdrop a positive amount of SOL")
    await s.client.airdrop(to, lamports)
    account = await s.client.account(to)
    s.say(f"airdropped {units(lamports, 9)} SOL to {to}; balance {units(account.lamports if account else 0, 9)} SOL")


# -- oracles ----------------------------------------------------------------------------------------------
async def oracle_create(s: Session, args: argparse.Namespace) -> None:
    from perpkit.testing import create_oracle

    oracle = await create_oracle(s.client, price=args.price, conf=args.conf, oracle_id=args.oracle_id)
    s.say(f"oracle {oracle}")
    s.say(f"  price {units(args.price)}  conf {units(args.conf)}  authority {s.payer.pubkey()}")


async def oracle_set(s: Session, args: argparse.Namespace) -> None:
    await s.client.set_oracle_price(args.oracle, price=args.price, conf=args.conf)
    oracle = await s.client.fetch_oracle(args.oracle)
    s.say(f"oracle {oracle.address}: price {units(oracle.price)}  conf {units(oracle.conf)}  "
          f"published {oracle.publish_time}")  # fmt: skip


# -- markets ----------------------------------------------------------------------------------------------
def params_from(args: argparse.Namespace, base: Any = None) -> Any:
    """``MarketParams`` with the ``--<param>`` overrides given on the command line."""
    from perpkit.accounts import MarketParams

    given = {name: getattr(args, name) for name in MARKET_PARAM_NAMES if getattr(args, name, None) is not None}
    return replace(base, **given) if base is not None else MarketParams(**given)


async def market_create(s: Session, args: argparse.Namespace) -> None:
    from perpkit.oracles import OracleSource
    from perpkit.pyth import RECEIVER_PROGRAM_ID

    if args.pyth_feed is None and args.pyth_receiver is not None:
        raise InvalidInput("--pyth-receiver goes with --pyth-feed")
    source = OracleSource.test()
    if args.pyth_feed is not None:
        source = OracleSource.pyth(args.pyth_feed, args.pyth_receiver or RECEIVER_PROGRAM_ID)
    market = await s.client.create_market(
        quote_mint=args.quote_mint,
        oracle=args.oracle,
        market_id=args.market_id,
        params=params_from(args),
        book_capacity=args.book_capacity,
        oracle_source=source,
        admin=s.payer,
    )
    s.say(f"market {market}")
    await show_market(s, await s.market(market), header=False)


async def show_market(s: Session, m: Market, *, header: bool = True) -> None:
    from perpkit.oracles import OracleKind

    decimals = await s.quote_decimals(m)
    if header:
        s.say(f"market {m.address}")
    s.say(f"  id {m.market_id}  admin {m.admin}{'  PAUSED' if m.paused else ''}")
    s.say(f"  quote mint {m.quote_mint} ({decimals} decimals)")
    s.say(f"  vault      {m.vault}  balance {units(await s.client.token_balance(m.vault), decimals)}")
    s.say(f"  book       {m.book}  capacity {m.book_capacity:,} positions")
    kind = "test oracle" if m.oracle_kind == OracleKind.TEST else f"Pyth feed {m.pyth_feed_id.hex()}"
    s.say(f"  oracle     {m.oracle} ({kind})")
    try:
        index = await s.client.oracle_price(m)
        s.say(f"  index      {units(index.price)}  conf {units(index.conf)}  published {index.publish_time}")
    except PerpkitError as exc:
        s.say(f"  index      unreadable: {exc}")
    s.say(f"  open interest  long {units(m.oi_long)}  short {units(m.oi_short)}")
    s.say(f"  pool {units(m.pool_balance, decimals)}  insurance {units(m.insurance_balance, decimals)}  "
          f"free collateral {units(m.total_free_collateral, decimals)}")  # fmt: skip
    p = m.params
    s.say(f"  margins    initial {p.initial_margin_bps} bps, maintenance {p.maintenance_margin_bps} bps; "
          f"taker fee {p.taker_fee_bps} bps; band {p.price_band_bps} bps")  # fmt: skip


async def market_show(s: Session, args: argparse.Namespace) -> None:
    await show_market(s, await s.market(args.market))


async def market_list(s: Session, args: argparse.Namespace) -> None:
    from perpkit.accounts import decode_market

    found = await s.client.program_accounts(account_type="Market")
    s.say(f"{len(found)} market(s) of program {s.client.program_id} on {s.url}")
    for address, account in sorted(found, key=lambda item: str(item[0])):
        m = decode_market(address, bytes(account.data))
        s.say(f"  {address}  id {m.market_id}  admin {m.admin}  OI long {units(m.oi_long)} "
              f"short {units(m.oi_short)}{'  PAUSED' if m.paused else ''}")  # fmt: skip


async def market_params(s: Session, args: argparse.Namespace) -> None:
    m = await s.market(args.market)
    params = m.params
    if args.set:
        params = replace(params, **dict(args.set))
        await s.client.update_market_params(args.market, params, admin=s.payer)
        params = (await s.market(args.market)).params
        s.say(f"market {args.market}: parameters updated")
    else:
        s.say(f"market {args.market}")
    for name in MARKET_PARAM_NAMES:
        s.say(f"  {name:<30} {getattr(params, name)}")


# -- collateral -------------------------------------------------------------------------------------------
async def deposit(s: Session, args: argparse.Namespace) -> None:
    m = await s.market(args.market)
    amount = await s.quote_atoms(m, args.amount)
    handle = await s.client.market(args.market)
    owner = s.payer.pubkey()
    instructions = [handle.deposit_ix(owner, amount)]
    if await s.client.account(handle.user_address(owner)) is None:
        instructions.insert(0, handle.create_user_ix(owner))
        s.say(f"creating the user account {handle.user_address(owner)}")
    await s.client.send(instructions, [s.payer])
    await say_collateral(s, m, "deposited", amount)


async def withdraw(s: Session, args: argparse.Namespace) -> None:
    m = await s.market(args.market)
    amount = await s.quote_atoms(m, args.amount)
    await s.client.withdraw(args.market, amount, owner=s.payer)
    await say_collateral(s, m, "withdrew", amount)


async def say_collateral(s: Session, m: Market, did: str, amount: int) -> None:
    decimals = await s.quote_decimals(m)
    user = await s.client.fetch_user(m.address, s.payer.pubkey())
    s.say(f"{did} {units(amount, decimals)}; free collateral {units(user.free_collateral, decimals)} "
          f"in market {m.address}")  # fmt: skip


# -- positions --------------------------------------------------------------------------------------------
async def open_position(s: Session, args: argparse.Namespace) -> None:
    from perpkit.risk import Side

    m = await s.market(args.market)
    collateral = await s.quote_atoms(m, args.collateral)
    side = Side.LONG if args.side == "long" else Side.SHORT
    position = await s.client.open_position(args.market, side, args.size, collateral, worst_price=args.worst_price,
                                            owner=s.payer)  # fmt: skip
    s.say(f"opened {args.side} {units(position.size)} as position {position.slot}:{position.generation}")
    s.say(f"  entry {units(position.entry_price)}  collateral {units(position.collateral, await s.quote_decimals(m))}"
          f"  liquidation price {units(position.liquidation_price())}")  # fmt: skip


async def close_position(s: Session, args: argparse.Namespace) -> None:
    from perpkit.accounts import PositionRef

    m = await s.market(args.market)
    slot, generation = args.position
    await s.client.close_position(args.market, PositionRef(slot, generation), owner=s.payer)
    decimals = await s.quote_decimals(m)
    user = await s.client.fetch_user(m.address, s.payer.pubkey())
    s.say(f"closed position {slot}:{generation}; free collateral {units(user.free_collateral, decimals)}")


async def positions(s: Session, args: argparse.Namespace) -> None:
    m = await s.market(args.market)
    decimals = await s.quote_decimals(m)
    index = (await s.client.oracle_price(m)).price
    found = await s.client.positions(args.market, args.owner)
    whose = f"of {args.owner}" if args.owner else "in the market"
    s.say(f"{len(found)} position(s) {whose} at index {units(index)}")
    if found:
        s.say(f"  {'slot:gen':<10} {'side':<5} {'size':>14} {'entry':>16} {'collateral':>14} "
              f"{'liquidation':>16} {'margin ratio':>12}  health")  # fmt: skip
    for p in found:
        side = "long" if p.side == 0 else "short"
        ratio = "-" if p.liquidated else f"{p.margin_ratio(index):.3f}"
        s.say(f"  {f'{p.slot}:{p.generation}':<10} {side:<5} {units(p.size):>14} {units(p.entry_price):>16} "
              f"{units(p.collateral, decimals):>14} {units(p.liquidation_price()):>16} {ratio:>12}  "
              f"{p.health(index).value}{' (cut, awaiting clearing)' if p.liquidated else ''}")  # fmt: skip


async def book(s: Session, args: argparse.Namespace) -> None:
    from perpkit.risk import Side

    m = await s.market(args.market)
    header = await s.client.fetch_book_header(m.book)
    long_count, short_count = header.counts[Side.LONG], header.counts[Side.SHORT]
    s.say(f"book {m.book} of market {m.address}")
    s.say(f"  positions  {long_count:,} long, {short_count:,} short; {header.slots_used:,} of "
          f"{header.capacity:,} slots used; {header.garbage_count:,} awaiting collection")  # fmt: skip
    s.say(f"  open interest  long {units(m.oi_long)}  short {units(m.oi_short)}")
    index = (await s.client.oracle_price(m)).price
    s.say(f"  index      {units(index)}")
    if long_count + short_count == 0:
        return
    from perpkit.positions import project_funding

    full = await s.client.fetch_book(args.market)
    m = project_funding(m, await s.client.now())
    for side, name in ((Side.LONG, "long"), (Side.SHORT, "short")):
        slots = full.live_slots(side)
        if len(slots) == 0:
            continue
        prices = full.liquidation_prices(side, slots, m.funding_index(side), m.params.maintenance_margin_bps)
        order = prices.argsort()[::-1] if side == Side.LONG else prices.argsort()
        nearest = ", ".join(f"{units(int(prices[i]))} (slot {int(slots[i])})" for i in order[: args.top])
        s.say(f"  nearest {name} liquidation prices: {nearest}")
