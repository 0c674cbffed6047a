"""Starting and stopping ``perpkit localnet`` (either engine), with clean shutdown on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from solana.constants import LAMPORTS_PER_SOL
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from perpkit.errors import InvalidInput
from perpkit.localnet.accounts import load_accounts
from perpkit.localnet.chain import LocalChain
from perpkit.localnet.pubsub import PubSub
from perpkit.localnet.server import LocalnetServer
from perpkit.localnet.test_validator import TestValidator
from perpkit.runtime import Features, embedded_runtime, programdata_address

DEFAULT_CLI_KEYPAIR = Path.home() / ".config" / "solana" / "id.json"


@dataclass
class LocalnetOptions:
    program: Path
    program_id: Pubkey
    host: str = "127.0.0.1"
    port: int = 8899
    ws_port: int | None = None
    """PubSub (WebSocket) port; None: ``port`` + 1 (any free port when ``port`` is 0)."""
    frozen_clock: bool = False
    start_time: int | None = None
    payers: list[Path] = field(default_factory=list)
    payer_sol: int = 1_000
    features: Features = "mainnet"
    accounts: list[tuple[str, Path]] = field(default_factory=list)
    """``--account ADDRESS FILE`` pairs (ADDRESS ``-``: the file's pubkey)."""
    account_dirs: list[Path] = field(default_factory=list)
    """``--account-dir DIR``: every ``*.json`` account file of DIR."""


def read_keypair(path: Path) -> Keypair:
    """A Solana CLI keypair file (a JSON array of 64 bytes)."""
    try:
        raw = json.loads(path.read_text())
        return Keypair.from_bytes(bytes(raw))
    except (OSError, ValueError, TypeError) as exc:
        raise InvalidInput(f"{path}: not a Solana keypair file ({exc})") from None


def preload_accounts(chain: LocalChain, options: LocalnetOptions) -> int:
    """Load the ``--account``/``--account-dir`` fixtures; remember them and the program for
    ``surfnet_resetAccount``.  Returns how many accounts were loaded."""
    loaded = load_accounts(options.accounts, options.account_dirs)
    for address, account in loaded:
        chain.set_account(address, account)
    for address in (options.program_id, programdata_address(options.program_id)):
        program_account = chain.get_account(address)
        if program_account is not None:
            chain.loaded_at_start[address] = program_account
    chain.loaded_at_start.update(loaded)
    return len(loaded)


async def _until_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _ws_port(ws_port: int | None, port: int, bound_port: int) -> int:
    """The PubSub port: as asked, else the RPC port + 1 (solana-test-validator's), any free one for port 0."""
    if ws_port is not None:
        return ws_port
    return 0 if port == 0 else bound_port + 1


async def run_litesvm(options: LocalnetOptions, say: Callable[[str], None], started: float) -> None:
    """Serve a LiteSVM-backed chain until SIGINT/SIGTERM."""
    chain = LocalChain(start_time=options.start_time, frozen_clock=options.frozen_clock, features=options.features)
    chain.load_program(options.program_id, options.program)
    preloaded = preload_accounts(chain, options)
    funded = []
    for path in options.payers:
        payer = read_keypair(path)
        chain.airdrop(payer.pubkey(), options.payer_sol * LAMPORTS_PER_SOL)
        funded.append((payer.pubkey(), path))
    server = LocalnetServer(chain, options.host, options.port)
    url = await server.start()
    pubsub = PubSub(chain, options.host, _ws_port(options.ws_port, options.port, server.port))
    ws_url = await pubsub.start()
    say(f"perpkit localnet ready at {url} in {time.perf_counter() - started:.2f} s (engine litesvm)")
    say(f"  pubsub   {ws_url}")
    say(f"  runtime  {embedded_runtime().describe(options.features)}")
    say(f"  program  {options.program_id}  ({options.program}, upgradeable loader, no upgrade authority)")
    if preloaded:
        say(f"  accounts {preloaded:,} loaded from --account/--account-dir files")
    for key, path in funded:
        say(f"  payer    {key}  funded with {options.payer_sol:,} SOL  ({path})")
    clock = chain.svm.get_clock()
    mode = "frozen" if options.frozen_clock else "running with wall time"
    say(f"  clock    unix {clock.unix_timestamp}, slot {clock.slot}, {mode}; move it with surfnet_timeTravel")
    say("  airdrops from the faucet: requestAirdrop.  Ctrl-C to stop.")
    try:
        await _until_signal()
    finally:
        await pubsub.stop()
        await server.stop()
        say(f"perpkit localnet stopped after {server.requests:,} requests")


async def run_test_validator(options: LocalnetOptions, say: Callable[[str], None], started: float) -> None:
    """solana-test-validator with the program preloaded, until SIGINT/SIGTERM."""
    if options.frozen_clock or options.start_time is not None:
        raise InvalidInput("solana-test-validator cannot freeze or set its clock; drop --frozen-clock/--start-time")
    if options.ws_port is not None and options.ws_port != options.port + 1:
        raise InvalidInput("solana-test-validator serves PubSub on --port + 1 only; drop --ws-port")
    if options.features != "all":
        say("  note: solana-test-validator runs with all features (SIMD-0500 on); --features applies to litesvm")
    load_accounts(options.accounts, options.account_dirs)  # a bad file: the same one-line error as litesvm
    validator = TestValidator(
        program_id=options.program_id,
        program=options.program,
        rpc_port=options.port,
        accounts=options.accounts,
        account_dirs=options.account_dirs,
    )
    url = await asyncio.to_thread(validator.start)
    say(f"perpkit localnet ready at {url} in {time.perf_counter() - started:.2f} s (engine solana-test-validator)")
    say(f"  pubsub   ws://127.0.0.1:{validator.rpc_port + 1}")
    say(f"  program  {options.program_id}  ({options.program})")
    try:
        await _until_signal()
    finally:
        await asyncio.to_thread(validator.stop)
        say("solana-test-validator stopped")
