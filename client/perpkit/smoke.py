"""``perpkit smoke``: a scripted end-to-end check of a cluster (devnet, a localnet) against a deployed program.

Each step is timed and records its transaction signatures, the fees paid and the rent it locked.  Fees are
not in :class:`perpkit.backends.base.TxResult`, so they are measured from balances: every lamport the run's
wallets (the payer and its traders) lose that is not held by an account the run created went to fees.
The run uses a fresh market (and oracle) id each time, so reruns on one cluster never collide.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perpkit.errors import SmokeCheckFailed
from perpkit.keyfile import DEFAULT_KEYPAIR

if TYPE_CHECKING:
    from solders.keypair import Keypair
    from solders.pubkey import Pubkey

    from perpkit.backends.base import Backend
    from perpkit.client import Client

# The SDK, solders and numpy are imported by the steps that use them: wiring this module into
# `perpkit`'s parser costs `perpkit --help` nothing.
PYTH_FEEDS = ("BTC/USD", "ETH/USD", "SOL/USD")
"""The symbols of ``perpkit.pyth.FEED_IDS`` (a test checks they agree)."""
UNIT = 1_000_000
"""One quote (or base) unit in atoms: 6 decimals."""
START_PRICE = 100 * UNIT
BOOK_CAPACITY = 256
POOL = 100_000 * UNIT
INSURANCE = 10 * UNIT
DEPOSIT = 1_000 * UNIT
TRADER_LAMPORTS = 50_000_000
"""SOL sent to each trader (0.05): the rent of its user account; what is left is returned at the end."""
AIRDROP_LAMPORTS = 1_000_000_000
RUN_LAMPORTS = 200_000_000
"""SOL a run needs besides the program's rent (0.2): fees, the accounts' rent, the traders' SOL."""
LONG = (10 * UNIT, 51 * UNIT)
"""The long that the crash liquidates: 10 units at 100 on 51 of collateral (about 20x)."""
SHORT = (5 * UNIT, 250 * UNIT)
"""The short that survives: 5 units at 100 on 250 of collateral (2x)."""


def _recording_client(backend: Backend, payer: Keypair, program_id: Pubkey, signatures: list[str]) -> Client:
    """A Client that appends the signature of every transaction it sends (landed or refused) to ``signatures``."""
    from perpkit.client import Client

    client = Client(backend, payer, program_id=program_id)
    client.on_sent.append(lambda result: signatures.append(result.signature))
    return client


@dataclass
class Step:
    name: str
    ok: bool = False
    ms: float = 0.0
    signatures: list[str] = field(default_factory=list)
    fees: int | None = None
    rent: int = 0
    detail: str = ""
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "ms": round(self.ms, 1), "signatures": self.signatures,
                "fees_lamports": self.fees, "rent_locked_lamports": self.rent, "detail": self.detail,
                "error": self.error}  # fmt: skip


@dataclass
class Run:
    """The state the steps share."""

    client: Client
    signatures: list[str]
    run_id: int
    pyth_feed: str | None
    wallets: list[Pubkey]
    deploy: Path | None = None
    """The program file to deploy first (None: use the program at the client's program id)."""
    keep_program: bool = False
    say: Callable[[str], None] = lambda _: None
    """Progress lines (stderr on a terminal, nowhere otherwise)."""
    deployed: Pubkey | None = None
    created: list[Pubkey] = field(default_factory=list)
    """Accounts this run created: the rent they hold is locked."""
    traders: list[Keypair] = field(default_factory=list)
    mint: Pubkey | None = None
    oracle: Pubkey | None = None
    market: Pubkey | None = None
    payer_token: Pubkey | None = None
    positions: dict[str, Any] = field(default_factory=dict)
    returned: int = 0
    """Lamports the traders sent back to the payer at the end."""
    reclaimed: int = 0
    """Rent the run got back by closing accounts it created (token accounts, the deployed program)."""

    def need(self, value: Pubkey | None) -> Pubkey:
        if value is None:
            raise SmokeCheckFailed("an earlier step did not run")
        return value

    async def lamports(self, keys: Sequence[Pubkey]) -> dict[Pubkey, int]:
        keys = list(dict.fromkeys(keys))
        accounts = await self.client.accounts(keys)
        return {key: (0 if acc is None else acc.lamports) for key, acc in zip(keys, accounts, strict=True)}


# -- the steps --------------------------------------------------------------------------------------------
async def _deploy(run: Run) -> str:
    from solders.keypair import Keypair

    from perpkit.deploy import deploy_program, programdata_address
    from perpkit.errors import TransactionFailed

    assert run.deploy is not None
    c = run.client
    files = [run.deploy]
    if run.deploy == _bundled(3):  # a cluster that predates SBPFv3 refuses it at deploy: then the v0 build
        files.append(_bundled(0))
    refusals: list[str] = []
    for path in files:
        program = Keypair()
        data = path.read_bytes()

        def progress(done: int, total: int, name: str = path.name) -> None:
            if done % 20 == 0 or done == total:
                run.say(f"  deploying {name}: {done}/{total} transactions")

        try:
            deployment = await deploy_program(c, data, program, max_data_len=len(data), progress=progress)
        except TransactionFailed as exc:
            refusals.append(f"{path.name}: {exc}")
            continue
        run.created.extend([deployment.buffer, program.pubkey(), programdata_address(program.pubkey())])
        run.deployed = program.pubkey()
        run.client = c.for_program(program.pubkey())
        tried = f" ({'; '.join(refusals)}; then {path.name})" if refusals else ""
        return (
            f"{path.name} ({len(data):,} bytes) at {program.pubkey()} in {deployment.transactions} transactions{tried}"
        )
    raise SmokeCheckFailed(f"the loader refused every build: {'; '.join(refusals)}")


async def _mint(run: Run) -> str:
    from perpkit.testing import create_mint

    run.mint = await create_mint(run.client)
    run.created.append(run.mint)
    return f"quote mint {run.mint}"


async def _oracle(run: Run) -> str:
    from perpkit.testing import create_oracle

    run.oracle = await create_oracle(run.client, price=START_PRICE, oracle_id=run.run_id)
    run.created.append(run.oracle)
    return f"test oracle {run.oracle} at {START_PRICE / UNIT:g}"


async def _create_market(run: Run, oracle: Pubkey, market_id: int, source: Any = None) -> Pubkey:
    from perpkit.accounts import MarketParams

    c = run.client
    params = MarketParams(initial_margin_bps=501, maintenance_margin_bps=500)
    market = await c.create_market(quote_mint=run.need(run.mint), oracle=oracle, market_id=market_id, params=params,
                                   book_capacity=BOOK_CAPACITY, oracle_source=source)  # fmt: skip
    m = await c.fetch_market(market)
    run.created.extend([market, m.book, m.vault])
    return market


async def _market(run: Run) -> str:
    run.market = await _create_market(run, run.need(run.oracle), run.run_id)
    return f"market {run.market} (id {run.run_id}, book of {BOOK_CAPACITY})"


async def _pyth(run: Run) -> str:
    from perpkit.oracles import OracleSource
    from perpkit.pyth import FEED_IDS, find_price_feed

    assert run.pyth_feed is not None
    feed_id = FEED_IDS[run.pyth_feed]
    found = await find_price_feed(run.client, feed_id)
    market = await _create_market(run, found.address, run.run_id + 1,
                                  OracleSource.pyth(feed_id, receiver=found.receiver))  # fmt: skip
    price = await run.client.oracle_price(market)
    return f"{run.pyth_feed} feed {found.address}: market {market} reads {price.price / UNIT:,.4f}"


async def _fund_pool(run: Run) -> str:
    from perpkit.testing import create_token_account, mint_to

    c, market = run.client, run.need(run.market)
    run.payer_token = await create_token_account(c, run.need(run.mint), c.payer.pubkey())
    run.created.append(run.payer_token)
    await mint_to(c, run.need(run.mint), run.payer_token, POOL + INSURANCE)
    await c.fund_pool(market, POOL)
    await c.fund_insurance(market, INSURANCE)
    return f"pool {POOL // UNIT:,}, insurance {INSURANCE // UNIT:,}"


async def _traders(run: Run) -> str:
    from solders.keypair import Keypair
    from solders.system_program import TransferParams, transfer

    from perpkit.testing import create_token_account, mint_to

    c, market, mint = run.client, run.need(run.market), run.need(run.mint)
    for _ in range(2):
        trader = Keypair()
        run.traders.append(trader)
        run.wallets.append(trader.pubkey())
        payer = c.payer.pubkey()
        await c.send([transfer(TransferParams(from_pubkey=payer, to_pubkey=trader.pubkey(), lamports=TRADER_LAMPORTS))])
        token = await create_token_account(c, mint, trader.pubkey())
        run.created.append(token)
        await mint_to(c, mint, token, DEPOSIT)
        run.created.append(await c.create_user(market, owner=trader))
        await c.deposit(market, DEPOSIT, owner=trader)
    sol = TRADER_LAMPORTS / 1e9
    return f"{len(run.traders)} traders funded by transfer ({sol:g} SOL each), {DEPOSIT // UNIT:,} deposited each"


async def _open(run: Run) -> str:
    from perpkit.risk import Side

    c, market = run.client, run.need(run.market)
    long_ = await c.open_position(market, Side.LONG, *LONG, owner=run.traders[0])
    short = await c.open_position(market, Side.SHORT, *SHORT, owner=run.traders[1])
    run.positions = {"long": long_, "short": short}
    return (f"long {LONG[0] // UNIT} @ {long_.entry_price / UNIT:,.4f} on {LONG[1] // UNIT} (slot {long_.slot}, "
            f"liquidation {long_.liquidation_price() / UNIT:,.4f}); short {SHORT[0] // UNIT} on {SHORT[1] // UNIT} "
            f"(slot {short.slot})")  # fmt: skip


async def _move_price(run: Run) -> str:
    price = run.positions["long"].liquidation_price() - 1
    await run.client.set_oracle_price(run.need(run.oracle), price=price)
    run.positions["crash"] = price
    return f"oracle to {price / UNIT:,.6f}: one tick past the long's liquidation price"


async def _crank(run: Run) -> str:
    from perpkit.crank import Cranking, crank_round

    c, market = run.client, run.need(run.market)
    before = await c.token_balance(run.need(run.payer_token))
    done = await crank_round(c, Cranking(await c.fetch_market(market)))
    run.positions["round"] = done
    run.positions["reward"] = await c.token_balance(run.need(run.payer_token)) - before
    if done.liquidation is None:
        raise SmokeCheckFailed("the crank found nothing to liquidate")
    batch = done.liquidation.batch
    return (f"liquidated {batch.long_count} long, {batch.short_count} short; {len(done.garbage_collection)} gc tx, "
            f"{len(done.cleared)} reference(s) cleared")  # fmt: skip


async def _check(run: Run) -> str:
    from perpkit.crank import CrankRound
    from perpkit.testing import conservation

    c, market = run.client, run.need(run.market)
    book = await c.fetch_book(market)
    live = book.live_mask()
    long_, short = run.positions["long"], run.positions["short"]
    done: CrankRound = run.positions["round"]
    assert done.liquidation is not None
    batch = done.liquidation.batch
    if bool(live[long_.slot]):
        raise SmokeCheckFailed(f"the long (slot {long_.slot}) is still live")
    if not bool(live[short.slot]) or int(book.slots["generation"][short.slot]) != short.generation:
        raise SmokeCheckFailed(f"the short (slot {short.slot}) is no longer live")
    if (batch.long_count, batch.short_count) != (1, 0):
        raise SmokeCheckFailed(f"the batch cut {batch.long_count} long(s), {batch.short_count} short(s), not 1 long")
    if run.positions["reward"] != batch.cranker_reward:
        raise SmokeCheckFailed(f"the cranker got {run.positions['reward']}, the event says {batch.cranker_reward}")
    user = await c.fetch_user(market, run.traders[0].pubkey())
    if user.open_refs:
        raise SmokeCheckFailed(f"the long's owner still holds {len(user.open_refs)} reference(s)")
    state = await conservation(c, market)  # ConservationError otherwise
    reward, vault = batch.cranker_reward / UNIT, state.vault / UNIT
    return f"reward {reward:,.6f} as the event says; SPEC 7 holds (vault {vault:,.6f})"


async def _close(run: Run) -> str:
    from perpkit.spl_token import associated_token_address
    from perpkit.testing import conservation

    c, market, mint = run.client, run.need(run.market), run.need(run.mint)
    await c.close_position(market, run.positions["short"], owner=run.traders[1])
    withdrawn = 0
    for trader in run.traders:
        free = (await c.fetch_user(market, trader.pubkey())).free_collateral
        if free:
            await c.withdraw(market, free, owner=trader)
            withdrawn += free
        if (await c.fetch_user(market, trader.pubkey())).free_collateral != 0:
            raise SmokeCheckFailed(f"trader {trader.pubkey()} still has free collateral after withdrawing")
    held = sum([await c.token_balance(associated_token_address(t.pubkey(), mint)) for t in run.traders])
    if held != withdrawn:
        raise SmokeCheckFailed(f"the traders' token accounts hold {held}, {withdrawn} was withdrawn")
    await conservation(c, market)
    return f"short closed; {withdrawn / UNIT:,.6f} withdrawn; SPEC 7 holds"


async def _reclaim(run: Run) -> str:
    from solders.system_program import TransferParams, transfer

    from perpkit import spl_token
    from perpkit.deploy import close_program

    c, mint = run.client, run.need(run.mint)
    payer = c.payer.pubkey()
    owned = [(t, spl_token.associated_token_address(t.pubkey(), mint)) for t in run.traders]
    if run.payer_token is not None:
        owned.append((c.payer, run.payer_token))
    closed = 0
    for owner, token in owned:  # burn the test tokens, then close the account: its rent comes back
        account = await c.account(token)
        if account is None:
            continue
        amount = spl_token.token_amount(bytes(account.data))
        steps = (
            [spl_token.burn_instruction(account=token, mint=mint, owner=owner.pubkey(), amount=amount)]
            if amount
            else []
        )
        steps.append(spl_token.close_account_instruction(account=token, destination=payer, owner=owner.pubkey()))
        await c.send(steps, [owner])
        run.reclaimed += account.lamports
        closed += 1
    balances = await run.lamports([t.pubkey() for t in run.traders])
    for trader in run.traders:
        lamports = balances[trader.pubkey()]
        if lamports:
            back = transfer(TransferParams(from_pubkey=trader.pubkey(), to_pubkey=payer, lamports=lamports))
            await c.send([back], [trader])
            run.returned += lamports
    said = [f"{closed} token accounts closed", f"{run.returned / 1e9:.6f} SOL returned from the traders"]
    if run.deployed is not None and not run.keep_program:
        run.reclaimed += await close_program(c, run.deployed)
        said.append(f"program {run.deployed} closed")
    said.append(f"{run.reclaimed / 1e9:.6f} SOL of rent reclaimed; the mint, the market's accounts and the users' "
                "stay (SPL Token cannot close a mint, the program has no close instruction)")  # fmt: skip
    return "; ".join(said)


DEPLOY_STEP: tuple[str, Callable[[Run], Awaitable[str]]] = ("deploy program", _deploy)
STEPS: list[tuple[str, Callable[[Run], Awaitable[str]]]] = [
    ("create quote mint", _mint),
    ("create oracle", _oracle),
    ("create market", _market),
    ("fund pool", _fund_pool),
    ("traders + deposits", _traders),
    ("open positions", _open),
    ("move price", _move_price),
    ("crank (liquidate, gc, clear)", _crank),
    ("check", _check),
    ("close + withdraw", _close),
    ("reclaim", _reclaim),
]


async def _run_steps(run: Run, steps: list[tuple[str, Callable[[Run], Awaitable[str]]]]) -> list[Step]:
    from perpkit.cli_errors import one_line

    done: list[Step] = []
    failed = False
    for name, action in steps:
        step = Step(name)
        done.append(step)
        if failed:
            step.error = "skipped"
            continue
        run.say(f"perpkit smoke: {name}...")
        known = [run.client.payer.pubkey(), *run.wallets, *run.created]
        before = await run.lamports(known)
        tracked_before = len(run.created)
        first_signature = len(run.signatures)
        started = time.perf_counter()
        try:
            step.detail = await action(run)
            step.ok = True
        except Exception as exc:
            reason = one_line(str(exc)) or type(exc).__name__
            step.error = reason if isinstance(exc, SmokeCheckFailed) else f"{type(exc).__name__}: {reason}"
            failed = True
        step.ms = (time.perf_counter() - started) * 1000
        step.signatures = run.signatures[first_signature:]
        try:
            after = await run.lamports([run.client.payer.pubkey(), *run.wallets, *run.created])
            step.fees = sum(before.values()) - sum(after.values())
            old = set(run.created[:tracked_before])
            step.rent = sum(v for k, v in after.items() if k in set(run.created)) - sum(
                v for k, v in before.items() if k in old
            )
        except Exception:  # the endpoint went away: the step's own failure says more
            step.fees = None
    return done


# -- the command ---------------------------------------------------------------------------------------------
def _bundled(sbpf_version: int) -> Path:
    from perpkit.resources import program_path

    return program_path(sbpf_version)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``perpkit smoke``'s options."""
    parser.description = (
        "A scripted end-to-end check of a cluster: mint, oracle, market, pool, two traders, a 20x long and a "
        "2x short, a price move, a crank round (liquidate, collect garbage, clear), the checks (the long cut, "
        "the short live, the cranker's reward, SPEC 7 conservation), closing and withdrawing, and reclaiming "
        "rent. It first deploys the bundled program at a fresh address (closed again at the end), or uses the "
        "one deployed at --program-id. Each run makes a fresh market, so reruns never collide. Exit 0 only "
        "when every check held."
    )
    parser.add_argument("--url", default="http://127.0.0.1:8899", help="JSON-RPC endpoint (default: %(default)s)")
    parser.add_argument("--keypair", type=Path, default=DEFAULT_KEYPAIR,
                        help=f"keypair that pays fees and rent (default: {DEFAULT_KEYPAIR})")  # fmt: skip
    parser.add_argument("--program-id", default=None,
                        help="use the perps program deployed there instead of deploying one")  # fmt: skip
    parser.add_argument("--program-file", type=Path, default=None,
                        help="the build to deploy (default: the bundled SBPFv3 perps.so, then perps-v0.so if the "
                             "cluster's loader refuses v3)")  # fmt: skip
    parser.add_argument("--keep-program", action="store_true",
                        help="leave the deployed program (default: close it and reclaim its rent)")  # fmt: skip
    parser.add_argument("--airdrop", action="store_true",
                        help="ask the faucet for SOL first: 2 when deploying, else 1 (devnet, localnet)")  # fmt: skip
    parser.add_argument("--pyth-feed", choices=PYTH_FEEDS, default=None,
                        help="also make a market on that sponsored Pyth feed and read it (devnet)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")


def _fail(message: str) -> int:
    print(f"perpkit: error: {message}", file=sys.stderr, flush=True)
    return 1


async def run_from_args(args: argparse.Namespace) -> int:
    """Run the smoke test as ``args`` say; the exit code (setup problems: one ``perpkit: error:`` line, 1)."""
    from perpkit.cli_errors import one_line, unreachable
    from perpkit.errors import PerpkitError, RpcUnavailable

    try:
        return await _run(args)
    except RpcUnavailable as exc:
        return _fail(unreachable(args.url, exc))
    except PerpkitError as exc:
        return _fail(one_line(str(exc)))
    except OSError as exc:
        return _fail(f"cannot reach {args.url}: {one_line(str(exc)) or type(exc).__name__}")


async def _run(args: argparse.Namespace) -> int:
    from solders.pubkey import Pubkey

    from perpkit.backends.rpc import RpcBackend
    from perpkit.errors import InvalidInput
    from perpkit.idl import PROGRAM_ID
    from perpkit.keyfile import load_keypair

    deploy: Path | None = None
    if args.program_id is None:
        program_id = PROGRAM_ID
        deploy = Path(args.program_file).expanduser() if args.program_file else _bundled(3)
        if not deploy.is_file():
            raise InvalidInput(f"--program-file {deploy} is not a file")
    else:
        if args.program_file is not None:
            raise InvalidInput("--program-file deploys a program and --program-id uses a deployed one: pass one")
        try:
            program_id = Pubkey.from_string(str(args.program_id))
        except ValueError:
            raise InvalidInput(f"--program-id {args.program_id} is not a base58 public key") from None
    payer = load_keypair(Path(args.keypair).expanduser())
    say = (lambda line: print(line, file=sys.stderr, flush=True)) if sys.stderr.isatty() else (lambda _: None)
    started = time.perf_counter()
    backend = await RpcBackend.connect(args.url)
    signatures: list[str] = []
    client = _recording_client(backend, payer, program_id, signatures)
    try:
        if deploy is None:
            program = await client.account(program_id)
            if program is None or not program.executable:
                raise InvalidInput(f"no program deployed at {program_id} on {args.url}: drop --program-id to "
                                   "deploy one, or pass the right id")  # fmt: skip
        if args.airdrop:
            await client.airdrop(payer.pubkey(), 2 * AIRDROP_LAMPORTS if deploy else AIRDROP_LAMPORTS)
        start_lamports = await _lamports(client, payer.pubkey())
        if start_lamports == 0:
            raise InvalidInput(f"the keypair {payer.pubkey()} has no SOL on {args.url}: pass --airdrop, "
                               "or `perpkit airdrop 1`")  # fmt: skip
        if deploy is not None:
            from perpkit.deploy import PROGRAMDATA_METADATA_SIZE

            size = PROGRAMDATA_METADATA_SIZE + deploy.stat().st_size
            need = await client.rent_exempt_minimum(size) + RUN_LAMPORTS
            if start_lamports < need:
                raise InvalidInput(f"the keypair {payer.pubkey()} has {start_lamports / 1e9:.4f} SOL on {args.url}; "
                                   f"deploying and running needs about {need / 1e9:.2f}: pass --airdrop, or "
                                   "--program-id to use a deployed program")  # fmt: skip
        run = Run(client, signatures, await _fresh_id(client, payer.pubkey()), args.pyth_feed, [],
                  deploy=deploy, keep_program=args.keep_program, say=say)  # fmt: skip
        steps = list(STEPS)
        if args.pyth_feed:
            steps.insert(3, (f"pyth market ({args.pyth_feed})", _pyth))
        if deploy is not None:
            steps.insert(0, DEPLOY_STEP)
        done = await _run_steps(run, steps)
        end_lamports = await _lamports(client, payer.pubkey())
        locked = sum((await run.lamports(run.created)).values())
    finally:
        await client.close()
    report = _report(args, run, done, start_lamports, end_lamports, locked, time.perf_counter() - started)
    if args.json:
        print(json.dumps(report), flush=True)
    else:
        _print_table(report)
    return 0 if report["ok"] else 1


async def _lamports(client: Client, key: Pubkey) -> int:
    account = await client.account(key)
    return 0 if account is None else account.lamports


async def _fresh_id(client: Client, payer: Pubkey) -> int:
    """A market/oracle id (u32) from the clock in milliseconds, moved on past any taken (with its Pyth twin)."""
    from perpkit import pda

    run_id = time.time_ns() // 1_000_000 % (2**32 - 2)
    while True:
        taken = await client.accounts([client.market_address(run_id), client.market_address(run_id + 1),
                                       pda.oracle_address(payer, run_id, client.program_id)])  # fmt: skip
        if all(account is None for account in taken):
            return run_id
        run_id = (run_id + 2) % (2**32 - 2)


def _report(
    args: argparse.Namespace, run: Run, steps: list[Step], start: int, end: int, locked: int, seconds: float
) -> dict[str, Any]:
    fees = [s.fees for s in steps if s.fees is not None]
    return {
        "ok": all(s.ok for s in steps),
        "url": args.url,
        "program_id": str(run.client.program_id),
        "payer": str(run.client.payer.pubkey()),
        "market": None if run.market is None else str(run.market),
        "run_id": run.run_id,
        "steps": [s.as_json() for s in steps],
        "totals": {
            "signatures": sum(len(s.signatures) for s in steps),
            "fees_lamports": sum(fees),
            "rent_locked_lamports": locked,
            "rent_reclaimed_lamports": run.reclaimed,
            "returned_lamports": run.returned,
            "accounts_created": len(run.created),
            "payer_spent_lamports": start - end,
            "seconds": round(seconds, 3),
        },
    }


def _print_table(report: dict[str, Any]) -> None:
    out: list[str] = [f"perpkit smoke: {report['url']}  program {report['program_id']}  payer {report['payer']}"]
    if report["market"]:
        out.append(f"  market {report['market']} (run id {report['run_id']})")
    width = max(len(s["name"]) for s in report["steps"])
    out.append(f"\n  {'step':<{width}}  {'result':<7} {'ms':>8} {'sigs':>5} {'fees':>9} {'rent locked':>12}")
    for s in report["steps"]:
        result = "ok" if s["ok"] else ("skipped" if s["error"] == "skipped" else "FAILED")
        fees = "-" if s["fees_lamports"] is None else f"{s['fees_lamports']:,}"
        ms = "-" if result == "skipped" else f"{s['ms']:,.0f}"
        out.append(f"  {s['name']:<{width}}  {result:<7} {ms:>8} {len(s['signatures']):>5} {fees:>9} "
                   f"{s['rent_locked_lamports']:>12,}")  # fmt: skip
        if result == "FAILED":
            out.append(f"  {'':<{width}}  reason: {s['error']}")
        elif s["ok"] and s["detail"]:
            out.append(f"  {'':<{width}}    {s['detail']}")
    t = report["totals"]
    out.append(
        f"\n  totals: {t['signatures']} transactions, fees {t['fees_lamports']:,} lamports, rent locked "
        f"{t['rent_locked_lamports']:,} lamports in {t['accounts_created']} accounts (reclaimed "
        f"{t['rent_reclaimed_lamports']:,}), {t['returned_lamports']:,} lamports returned by the traders; "
        f"payer spent {t['payer_spent_lamports']:,}; {t['seconds']:.2f} s"
    )
    out.append("  all checks held" if report["ok"] else "  FAILED: a check did not hold (see the reason above)")
    print("\n".join(out), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="perpkit smoke")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return asyncio.run(run_from_args(args))
    except KeyboardInterrupt:
        return _fail("interrupted")


if __name__ == "__main__":
    sys.exit(main())
