"""The ``perpkit`` command line."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from perpkit import __version__
from perpkit.errors import PerpkitError
from perpkit.idl import PROGRAM_ID
from perpkit.localnet.launcher import (
    DEFAULT_CLI_KEYPAIR,
    LocalnetOptions,
    read_keypair,
    run_litesvm,
    run_test_validator,
)
from perpkit.resources import program_path
from perpkit.runtime import FEATURE_CHOICES, Features, embedded_runtime

FEATURES_HELP = (
    "feature set of the embedded runtime: mainnet (default; needs solders >= 0.28) or all "
    "(includes SIMD-0500, as solana-test-validator has it)"
)


def _program_for(engine: str) -> Path:
    """The perps build an engine runs: the one the installed LiteSVM takes, or SBPFv3 for agave's validator."""
    return embedded_runtime().program_path() if engine == "litesvm" else program_path(3)


def _say(message: str) -> None:
    print(message, flush=True)


async def demo(program: Path | None, program_id: Pubkey, features: Features = "mainnet") -> None:
    """Market + oracle on the embedded runtime, printed as they are read back from the chain."""
    # The SDK is imported by the commands that use it: `perpkit localnet` starts without numpy and the clients.
    from perpkit import program_errors
    from perpkit.accounts import PRICE_SCALE
    from perpkit.client import Client
    from perpkit.testing import setup_market

    started = time.perf_counter()
    _say(f"perpkit {__version__}: embedded runtime")
    program = program or embedded_runtime().program_path()
    async with await Client.embedded(program=program, program_id=program_id, features=features) as client:
        _say(f"  runtime  {embedded_runtime().describe(features)}")
        _say(f"  program  {program_id} installed under the upgradeable loader from {program}")
        _say(f"  payer    {client.payer.pubkey()}")
        setup = await setup_market(client, price=64_250 * PRICE_SCALE, conf=12 * PRICE_SCALE, book_capacity=1024)
        oracle = await client.fetch_oracle(setup.oracle)
        _say(f"\noracle {oracle.address}")
        _say(f"  price {oracle.ui_price:,.6f}  conf {oracle.conf / PRICE_SCALE:,.6f}  published {oracle.publish_time}")
        market = await client.fetch_market(setup.market)
        p = market.params
        _say(f"\nmarket {market.address}  (id {market.market_id}, admin {market.admin})")
        _say(f"  quote mint {market.quote_mint}")
        _say(f"  vault      {market.vault}  balance {await client.token_balance(market.vault)}")
        _say(f"  book       {market.book}  capacity {market.book_capacity} positions")
        _say(
            f"  margins    initial {p.initial_margin_bps} bps, maintenance {p.maintenance_margin_bps} bps; "
            f"taker fee {p.taker_fee_bps} bps; band {p.price_band_bps} bps; "
            f"oracle max age {p.max_staleness_s} s, max conf {p.max_conf_bps} bps\n"
            f"  limits     open interest per side {_quote(p.open_interest_cap)} units; "
            f"smallest position {_quote(p.min_position_notional)} quote"
        )

        later = await client.advance_time(45)
        await client.set_oracle_price(setup.oracle, price=63_980 * PRICE_SCALE, conf=10 * PRICE_SCALE)
        oracle = await client.fetch_oracle(setup.oracle)
        _say(f"\nclock +45 s -> {later}; oracle now {oracle.ui_price:,.6f} published {oracle.publish_time}")

        stranger = Keypair()
        try:
            await client.set_oracle_price(setup.oracle, price=1, authority=stranger)
        except program_errors.Unauthorized as exc:
            _say(f"a stranger setting the price is refused: {exc}")
    _say(f"\ndone in {time.perf_counter() - started:.2f} s")


def _quote(atoms: int) -> str:
    from perpkit.accounts import PRICE_SCALE

    return f"{atoms / PRICE_SCALE:,.6f}"


async def crank(args: argparse.Namespace) -> None:
    """``perpkit crank --once``: simulate, liquidate if anything is past its liquidation price, collect, clear."""
    from perpkit.client import Client
    from perpkit.crank import crank_once

    cranker = read_keypair(args.keypair)
    client = await Client.connect(args.url, payer=cranker, program_id=args.program_id)
    try:
        _say(f"perpkit crank: market {args.market} on {args.url}, cranker {cranker.pubkey()}")
        done = await crank_once(client, args.market, cranker_token=args.cranker_token)
        if done.liquidation is None:
            _say("  nothing to liquidate (simulation said NothingToLiquidate); nothing sent")
        else:
            batch, cu = done.liquidation.batch, done.liquidation.result.compute_units
            sides = f"{batch.long_count} long, {batch.short_count} short"
            _say(f"  liquidated {batch.count} positions ({sides}) at index {_quote(batch.index_price)}, "
                 f"exit price {_quote(batch.exit_price)}")  # fmt: skip
            _say(f"  in one transaction: {cu:,} CU")
            _say(f"  equity {_quote(batch.equity)}: reward {_quote(batch.cranker_reward)}, "
                 f"insurance +{_quote(batch.insurance_credit)} -{_quote(batch.insurance_paid)}, "
                 f"socialised {_quote(batch.socialized_loss)}")  # fmt: skip
        _say(f"  garbage collection: {len(done.garbage_collection)} transaction(s)")
        _say(f"  cleared {len(done.cleared)} reference(s) to liquidated positions")
    finally:
        await client.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="perpkit", description=__doc__)
    parser.add_argument("--version", action="version", version=f"perpkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="create a market and an oracle on the embedded runtime and print them")
    p_demo.add_argument("--program", type=Path, default=None, help="program file (default: the built perps.so)")
    p_demo.add_argument("--program-id", type=Pubkey.from_string, default=PROGRAM_ID, help="address to load it at")
    p_demo.add_argument("--features", choices=FEATURE_CHOICES, default="mainnet", help=FEATURES_HELP)
    p_local = sub.add_parser("localnet", help="a local JSON-RPC validator with the perps program preloaded")
    p_local.add_argument("--engine", choices=["litesvm", "solana-test-validator"], default="litesvm")
    p_local.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    p_local.add_argument("--port", type=int, default=8899, help="RPC port (0: any free port)")
    p_local.add_argument(
        "--ws-port", type=int, default=None, help="PubSub (WebSocket) port (default: --port + 1; 0: any free port)"
    )
    p_local.add_argument("--program", type=Path, default=None, help="program file (default: the built perps.so)")
    p_local.add_argument("--program-id", type=Pubkey.from_string, default=PROGRAM_ID, help="address to load it at")
    p_local.add_argument("--features", choices=FEATURE_CHOICES, default="mainnet", help=FEATURES_HELP)
    p_local.add_argument("--frozen-clock", action="store_true", help="the clock moves only by surfnet_timeTravel")
    p_local.add_argument("--start-time", type=int, default=None, help="unix time the clock starts at (default: now)")
    p_local.add_argument(
        "--payer",
        type=Path,
        action="append",
        default=None,
        help=f"keypair file to fund with 1,000 SOL (repeatable; default: {DEFAULT_CLI_KEYPAIR} if it exists)",
    )
    p_local.add_argument(
        "--no-default-payer", action="store_true", help=f"do not fund {DEFAULT_CLI_KEYPAIR} (tests, CI)"
    )
    p_local.add_argument(
        "--account",
        nargs=2,
        action="append",
        default=[],
        metavar=("ADDRESS", "FILE"),
        help="load an account from a `solana account --output json` file at ADDRESS ('-': the file's pubkey); "
        "repeatable, as solana-test-validator's",
    )
    p_local.add_argument(
        "--account-dir",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="load every *.json account file of DIR at its pubkey (repeatable)",
    )
    p_crank = sub.add_parser("crank", help="one liquidation round on a market: liquidate, collect garbage, clear")
    p_crank.add_argument("--once", action="store_true", help="run one round and exit (the only mode so far)")
    p_crank.add_argument("--url", default="http://127.0.0.1:8899", help="JSON-RPC endpoint (default: localnet)")
    p_crank.add_argument("--market", type=Pubkey.from_string, required=True, help="market address")
    p_crank.add_argument("--keypair", type=Path, default=DEFAULT_CLI_KEYPAIR, help="cranker keypair (pays fees)")
    p_crank.add_argument(
        "--cranker-token",
        type=Pubkey.from_string,
        default=None,
        help="token account for the reward (default: the cranker's associated token account)",
    )
    p_crank.add_argument("--program-id", type=Pubkey.from_string, default=PROGRAM_ID)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        if args.command == "demo":
            asyncio.run(demo(args.program, args.program_id, args.features))
        elif args.command == "localnet":
            payers = list(args.payer or [])
            if args.payer is None and not args.no_default_payer and DEFAULT_CLI_KEYPAIR.exists():
                payers.append(DEFAULT_CLI_KEYPAIR)
            options = LocalnetOptions(
                program=args.program or _program_for(args.engine),
                features=args.features,
                program_id=args.program_id,
                host=args.host,
                port=args.port,
                ws_port=args.ws_port,
                frozen_clock=args.frozen_clock,
                start_time=args.start_time,
                payers=payers,
                accounts=[(address, Path(path)) for address, path in args.account],
                account_dirs=args.account_dir,
            )
            run = run_litesvm if args.engine == "litesvm" else run_test_validator
            asyncio.run(run(options, _say, started))
        elif args.command == "crank":
            if not args.once:
                parser.error("crank: only --once is implemented so far (the long-running bot comes later)")
            asyncio.run(crank(args))
    except PerpkitError as exc:
        print(f"perpkit: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into `head` and friends
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
