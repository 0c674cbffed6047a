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
from perpkit.localnet.chain import LocalChain
from perpkit.localnet.server import LocalnetServer
from perpkit.localnet.test_validator import TestValidator
from perpkit.runtime import Features, embedded_runtime

DEFAULT_CLI_KEYPAIR = Path.home() / ".config" / "solana" / "id.json"


@dataclass
class LocalnetOptions:
    program: Path
    program_id: Pubkey
    host: str = "127.0.0.1"
    port: int = 8899
    frozen_clock: bool = False
    start_time: int | None = None
    payers: list[Path] = field(default_factory=list)
    payer_sol: int = 1_000
    features: Features = "mainnet"


def read_keypair(path: Path) -> Keypair:
    """A Solana CLI keypair file (a JSON array of 64 bytes)."""
    try:
        raw = json.loads(path.read_text())
        return Keypair.from_bytes(bytes(raw))
    except (OSError, ValueError, TypeError) as exc:
        raise InvalidInput(f"{path}: not a Solana keypair file ({exc})") from None


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


async def run_litesvm(options: LocalnetOptions, say: Callable[[str], None], started: float) -> None:
    """Serve a LiteSVM-backed chain until SIGINT/SIGTERM."""
    chain = LocalChain(start_time=options.start_time, frozen_clock=options.frozen_clock, features=options.features)
    chain.load_program(options.program_id, options.program)
    funded = []
    for path in options.payers:
        payer = read_keypair(path)
        chain.airdrop(payer.pubkey(), options.payer_sol * LAMPORTS_PER_SOL)
        funded.append((payer.pubkey(), path))
    server = LocalnetServer(chain, options.host, options.port)
    url = await server.start()
    say(f"perpkit localnet ready at {url} in {time.perf_counter() - started:.2f} s (engine litesvm)")
    say(f"  runtime  {embedded_runtime().describe(options.features)}")
    say(f"  program  {options.program_id}  ({options.program}, upgradeable loader, no upgrade authority)")
    for key, path in funded:
        say(f"  payer    {key}  funded with {options.payer_sol:,} SOL  ({path})")
    clock = chain.svm.get_clock()
    mode = "frozen" if options.frozen_clock else "running with wall time"
    say(f"  clock    unix {clock.unix_timestamp}, slot {clock.slot}, {mode}; move it with surfnet_timeTravel")
    say("  airdrops from the faucet: requestAirdrop.  Ctrl-C to stop.")
    try:
        await _until_signal()
    finally:
        await server.stop()
        say(f"perpkit localnet stopped after {server.requests:,} requests")


async def run_test_validator(options: LocalnetOptions, say: Callable[[str], None], started: float) -> None:
    """solana-test-validator with the program preloaded, until SIGINT/SIGTERM."""
    if options.frozen_clock or options.start_time is not None:
        raise InvalidInput("solana-test-validator cannot freeze or set its clock; drop --frozen-clock/--start-time")
    if options.features != "all":
        say("  note: solana-test-validator runs with all features (SIMD-0500 on); --features applies to litesvm")
    validator = TestValidator(program_id=options.program_id, program=options.program, rpc_port=options.port)
    url = await asyncio.to_thread(validator.start)
    say(f"perpkit localnet ready at {url} in {time.perf_counter() - started:.2f} s (engine solana-test-validator)")
    say(f"  program  {options.program_id}  ({options.program})")
    try:
        await _until_signal()
    finally:
        await asyncio.to_thread(validator.stop)
        say("solana-test-validator stopped")
