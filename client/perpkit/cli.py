"""The ``perpkit`` command line."""

# ruff: noqa: E402 (the Ctrl-C handler is installed before the imports)
from __future__ import annotations

import os
import signal
import sys


def _interrupted_at_start(signum: int, frame: object) -> None:
    os.write(2, b"perpkit: error: interrupted\n")
    raise SystemExit(130)


def _started_as_command() -> bool:
    """Whether this process is the ``perpkit`` command (console script, ``python -m perpkit[.cli]``)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None:  # python -m: this module as __main__ (not a second import of it), or the package
        return (spec.name == "perpkit.cli" and __name__ == "__main__") or spec.name == "perpkit.__main__"
    name = os.path.basename(getattr(main, "__file__", None) or "")
    return name.removesuffix("-script.py").removesuffix(".exe") == "perpkit"


# Ctrl-C before main()'s try (the imports below and the commands' own take a tenth of a second) is the one
# line too, not a traceback: the first thing the command does.  main() hands SIGINT back to Python's handler.
if _started_as_command() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, _interrupted_at_start)

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from perpkit import __version__
from perpkit.cli_args import MARKET_PARAM_NAMES, amount, param_setting, position_ref, price, pubkey, side, size
from perpkit.keyfile import DEFAULT_KEYPAIR

if TYPE_CHECKING:
    pass

# The SDK, solders, aiohttp and the localnet are imported by the commands that use them: `perpkit --help`
# answers in a tenth of a second, `perpkit localnet` starts without numpy and the clients.
FEATURE_CHOICES = ("mainnet", "all")
"""``perpkit.runtime.FEATURE_CHOICES`` (a test checks they agree)."""
DEFAULT_URL = "http://127.0.0.1:8899"
FEATURES_HELP = (
    "feature set of the embedded runtime: mainnet (default; needs solders >= 0.28) or all "
    "(includes SIMD-0500, as solana-test-validator has it)"
)


def _program_for(engine: str) -> Path:
    """The perps build an engine runs: the one the installed LiteSVM takes, or SBPFv3 for agave's validator."""
    from perpkit.resources import program_path
    from perpkit.runtime import embedded_runtime

    return embedded_runtime().program_path() if engine == "litesvm" else program_path(3)


def _say(message: str) -> None:
    print(message, flush=True)


def _quote(atoms: int) -> str:
    from perpkit.accounts import PRICE_SCALE

    return f"{atoms / PRICE_SCALE:,.6f}"


async def crank(args: argparse.Namespace) -> None:
    """``perpkit crank --once``: simulate, liquidate if anything is past its liquidation price, collect, clear."""
    from perpkit.client import Client
    from perpkit.crank import crank_once
    from perpkit.idl import PROGRAM_ID
    from perpkit.keyfile import load_keypair
    from perpkit.operator import note, progress

    cranker = load_keypair(args.keypair)
    async with progress(note, f"connecting to {args.url}"):
        client = await Client.connect(args.url, payer=cranker, program_id=args.program_id or PROGRAM_ID)
    try:
        _say(f"perpkit crank: market {args.market} on {args.url}, cranker {cranker.pubkey()}")
        async with progress(note, "cranking"):
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


class Parser(argparse.ArgumentParser):
    """argparse's, with a usage mistake as one ``perpkit: error:`` line pointing to ``--help`` (exit 1)."""

    def error(self, message: str) -> NoReturn:
        _fail(f"{message} (see `{self.prog} --help`)")
        raise SystemExit(1)


def _connection(p: argparse.ArgumentParser, *, signs: bool = True) -> None:
    """``--url``, ``--keypair`` (commands that sign) and ``--program-id``."""
    p.add_argument("--url", default=DEFAULT_URL, help=f"JSON-RPC endpoint (default: {DEFAULT_URL}, perpkit localnet)")
    if signs:
        p.add_argument("--keypair", type=Path, default=DEFAULT_KEYPAIR,
                       help=f"keypair that signs and pays fees (default: {DEFAULT_KEYPAIR})")  # fmt: skip
    p.add_argument("--program-id", type=pubkey, default=None, help="perps program address (default: the IDL's)")


def _operator_parsers(sub: Any) -> None:
    p = sub.add_parser("keygen", help="a new keypair file, as solana-keygen writes one; prints its public key")
    p.add_argument("--outfile", type=Path, default=DEFAULT_KEYPAIR, help=f"where (default: {DEFAULT_KEYPAIR})")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")

    p = sub.add_parser("airdrop", help="SOL from the endpoint's faucet (localnet, devnet)")
    p.add_argument("sol", type=amount, metavar="SOL", help="how much, in SOL (e.g. 1 or 0.5)")
    p.add_argument("--to", type=pubkey, default=None, help="recipient (default: the --keypair's public key)")
    _connection(p)

    oracle = sub.add_parser("oracle", help="the program's test oracle").add_subparsers(dest="action", required=True)
    p = oracle.add_parser("create", help="a test oracle with --keypair as its authority; prints its address")
    p.add_argument("price", type=price, metavar="PRICE", help="price in whole quote units (e.g. 64250.5)")
    p.add_argument("--conf", type=price, default=0, help="confidence, in whole quote units (default 0)")
    p.add_argument("--oracle-id", type=int, default=0, help="which of the authority's oracles (default 0)")
    _connection(p)
    p = oracle.add_parser("set", help="publish a price on a test oracle (its authority signs)")
    p.add_argument("oracle", type=pubkey, metavar="ORACLE")
    p.add_argument("price", type=price, metavar="PRICE", help="price in whole quote units (e.g. 64250.5)")
    p.add_argument("--conf", type=price, default=0, help="confidence, in whole quote units (default 0)")
    _connection(p)

    market = sub.add_parser("market", help="create, show, list markets; read or update their parameters")
    msub = market.add_subparsers(dest="action", required=True)
    p = msub.add_parser("create", help="a market (and its book) with --keypair as admin")
    p.add_argument("--quote-mint", type=pubkey, required=True, help="SPL mint of collateral and PnL")
    p.add_argument("--oracle", type=pubkey, required=True, help="test oracle, or Pyth PriceUpdateV2 account")
    p.add_argument("--market-id", type=int, default=0, help="admin's market number (default 0)")
    p.add_argument("--book-capacity", type=int, default=1024, help="position slots of the book (default 1024)")
    p.add_argument("--pyth-feed", default=None, help="read --oracle as Pyth: feed symbol (SOL/USD) or 64 hex digits")
    p.add_argument("--pyth-receiver", type=pubkey, default=None, help="program owning Pyth updates (default: Pyth's)")
    for name in MARKET_PARAM_NAMES:
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=int, default=None, metavar="N",
                       help="as the program stores it (bps, seconds, 6-decimal atoms)")  # fmt: skip
    _connection(p)
    p = msub.add_parser("show", help="a market: accounts, index price, open interest, balances")
    p.add_argument("market", type=pubkey, metavar="MARKET")
    _connection(p, signs=False)
    p = msub.add_parser("list", help="every market of the program")
    _connection(p, signs=False)
    p = msub.add_parser("params", help="a market's risk parameters; --set name=value updates them (admin)")
    p.add_argument("market", type=pubkey, metavar="MARKET")
    p.add_argument("--set", type=param_setting, action="append", default=[], metavar="NAME=VALUE",
                   help="new value of a parameter (repeatable)")  # fmt: skip
    _connection(p)

    for name, verb in (("deposit", "move quote tokens from your associated token account to free collateral "
                                   "(creates your user account the first time)"),
                       ("withdraw", "move free collateral back to your associated token account")):  # fmt: skip
        p = sub.add_parser(name, help=verb)
        p.add_argument("market", type=pubkey, metavar="MARKET")
        p.add_argument("amount", type=amount, metavar="AMOUNT", help="whole quote units (e.g. 1000 or 12.5)")
        _connection(p)

    p = sub.add_parser("open", help="open a position from free collateral; prints SLOT:GENERATION")
    p.add_argument("market", type=pubkey, metavar="MARKET")
    p.add_argument("side", type=side, metavar="long|short")
    p.add_argument("size", type=size, metavar="SIZE", help="base units (e.g. 0.5)")
    p.add_argument("--collateral", type=amount, required=True, help="whole quote units moved into the position")
    p.add_argument("--worst-price", type=price, default=None, help="refuse a fill beyond this price")
    _connection(p)
    p = sub.add_parser("close", help="close a position; PnL, fee and funding settle into free collateral")
    p.add_argument("market", type=pubkey, metavar="MARKET")
    p.add_argument("position", type=position_ref, metavar="SLOT:GENERATION")
    _connection(p)

    p = sub.add_parser("positions", help="positions with entry, liquidation price, margin ratio and health")
    p.add_argument("market", type=pubkey, metavar="MARKET")
    p.add_argument("--owner", type=pubkey, default=None, help="one owner's (default: every position of the market)")
    _connection(p, signs=False)
    p = sub.add_parser("book", help="a market's book: counts, open interest, nearest liquidation prices")
    p.add_argument("market", type=pubkey, metavar="MARKET")
    p.add_argument("--top", type=int, default=3, help="liquidation prices shown per side (default 3)")
    _connection(p, signs=False)


OPERATOR_COMMANDS = {
    # command (and action): the coroutine of perpkit.operator, and whether --keypair signs
    ("airdrop", None): ("airdrop", True),  # for its public key; not with --to
    ("oracle", "create"): ("oracle_create", True),
    ("oracle", "set"): ("oracle_set", True),
    ("market", "create"): ("market_create", True),
    ("market", "show"): ("market_show", False),
    ("market", "list"): ("market_list", False),
    ("market", "params"): ("market_params", True),  # not without --set
    ("deposit", None): ("deposit", True),
    ("withdraw", None): ("withdraw", True),
    ("open", None): ("open_position", True),
    ("close", None): ("close_position", True),
    ("positions", None): ("positions", False),
    ("book", None): ("book", False),
}


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="perpkit", description=__doc__)
    parser.add_argument("--version", action="version", version=f"perpkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    # `perpkit demo` and `perpkit scenario` parse their own options (perpkit.scenario_cli): main() hands over
    sub.add_parser("demo", help="the main job: a 400-trader crash scenario on the embedded runtime, checked "
                   "against the model, with a report and plots (`perpkit demo --help`)")  # fmt: skip
    sub.add_parser("scenario", help="run a risk scenario file (TOML) and write its report, or redraw one "
                   "(`perpkit scenario run --help`)")  # fmt: skip
    p_local = sub.add_parser("localnet", help="a local JSON-RPC validator with the perps program preloaded")
    p_local.add_argument("--engine", choices=["litesvm", "solana-test-validator"], default="litesvm")
    p_local.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    p_local.add_argument("--port", type=int, default=8899, help="RPC port (0: any free port)")
    p_local.add_argument(
        "--ws-port", type=int, default=None, help="PubSub (WebSocket) port (default: --port + 1; 0: any free port)"
    )
    p_local.add_argument("--program", type=Path, default=None, help="program file (default: the built perps.so)")
    p_local.add_argument("--program-id", type=pubkey, default=None, help="address to load it at")
    p_local.add_argument("--features", choices=FEATURE_CHOICES, default="mainnet", help=FEATURES_HELP)
    p_local.add_argument("--frozen-clock", action="store_true", help="the clock moves only by surfnet_timeTravel")
    p_local.add_argument("--start-time", type=int, default=None, help="unix time the clock starts at (default: now)")
    p_local.add_argument(
        "--payer",
        type=Path,
        action="append",
        default=None,
        help=f"keypair file to fund with 1,000 SOL (repeatable; default: {DEFAULT_KEYPAIR} if it exists)",
    )
    p_local.add_argument("--no-default-payer", action="store_true", help=f"do not fund {DEFAULT_KEYPAIR} (tests, CI)")
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
    p_crank = sub.add_parser(
        "crank",
        help="the liquidation bot: runs until stopped (`perpkit crank --help` for its options); "
        "--once: one round on one market, with a report",
    )
    p_crank.add_argument("--once", action="store_true", required=True, help="one round and exit, with a report")
    p_crank.add_argument("--url", default=DEFAULT_URL, help="JSON-RPC endpoint (default: localnet)")
    p_crank.add_argument("--market", type=pubkey, required=True, help="market address")
    p_crank.add_argument("--keypair", type=Path, default=DEFAULT_KEYPAIR, help="cranker keypair (pays fees)")
    p_crank.add_argument(
        "--cranker-token",
        type=pubkey,
        default=None,
        help="token account for the reward (default: the cranker's associated token account)",
    )
    p_crank.add_argument("--program-id", type=pubkey, default=None)
    _operator_parsers(sub)
    # `perpkit smoke` parses its own options (perpkit.smoke, imported only for it): main() hands over
    sub.add_parser("smoke", help="an end-to-end check of a cluster (devnet): market, trades, crash, crank "
                   "(`perpkit smoke --help` for its options)")  # fmt: skip
    return parser


def _localnet(args: argparse.Namespace, started: float) -> None:
    import asyncio

    from perpkit.idl import PROGRAM_ID
    from perpkit.localnet.launcher import LocalnetOptions, run_litesvm, run_test_validator

    payers = list(args.payer or [])
    if args.payer is None and not args.no_default_payer and DEFAULT_KEYPAIR.exists():
        payers.append(DEFAULT_KEYPAIR)
    options = LocalnetOptions(
        program=args.program or _program_for(args.engine),
        features=args.features,
        program_id=args.program_id or PROGRAM_ID,
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


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace, started: float) -> None:
    import asyncio

    if args.command == "localnet":
        _localnet(args, started)
    elif args.command == "crank":  # --once (without it, main() hands over to perpkit.bot)
        asyncio.run(crank(args))

    elif args.command == "keygen":
        from perpkit.keyfile import write_keypair

        keypair = write_keypair(args.outfile.expanduser(), force=args.force)
        _say(f"wrote a new keypair to {args.outfile}")
        _say(f"pubkey: {keypair.pubkey()}")
    else:
        from perpkit import operator

        name, signs = OPERATOR_COMMANDS[(args.command, getattr(args, "action", None))]
        reads_only = (args.command == "airdrop" and args.to is not None) or (
            args.command == "market" and args.action == "params" and not args.set
        )
        signs = signs and not reads_only
        if signs:
            args.keypair = args.keypair.expanduser()
        asyncio.run(operator.run(getattr(operator, name), args, _say, signer=signs))


def main(argv: Sequence[str] | None = None) -> int:
    try:
        if signal.getsignal(signal.SIGINT) is _interrupted_at_start:
            signal.signal(signal.SIGINT, signal.default_int_handler)  # from here, KeyboardInterrupt is caught
        return _main(list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:
        return _fail("interrupted", 130)


def _main(arguments: list[str]) -> int:
    if arguments[:1] == ["crank"] and "--once" not in arguments:
        # the long-running bot parses its own options (perpkit.bot), imported only for it: --help stays fast
        from perpkit.bot import main as bot_main

        try:
            return bot_main(arguments[1:])
        except KeyboardInterrupt:
            return _fail("interrupted", 130)
    if arguments[:1] in (["demo"], ["scenario"]):
        from perpkit import scenario_cli

        return scenario_cli.main(arguments[1:], demo=arguments[0] == "demo")
    if arguments[:1] == ["smoke"]:
        from perpkit import smoke

        try:
            return smoke.main(arguments[1:])
        except KeyboardInterrupt:
            return _fail("interrupted", 130)
    parser = build_parser()
    args = parser.parse_args(arguments)
    started = time.perf_counter()
    try:
        _dispatch(parser, args, started)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except BrokenPipeError:  # output piped into `head` and friends
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        from perpkit.cli_errors import one_line, os_error, unreachable
        from perpkit.errors import PerpkitError, RpcUnavailable

        if isinstance(exc, RpcUnavailable) and hasattr(args, "url"):
            return _fail(unreachable(args.url, exc))
        if isinstance(exc, PerpkitError):
            return _fail(one_line(str(exc)))
        if isinstance(exc, OSError):
            return _fail(os_error(exc, getattr(args, "port", None)))
        return _fail(f"unexpected {type(exc).__name__}: {one_line(str(exc))} (a perpkit bug: please report it)")
    return 0


def _fail(message: str, code: int = 1) -> int:
    print(f"perpkit: error: {message}", file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
