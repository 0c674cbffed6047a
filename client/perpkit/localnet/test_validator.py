"""Running ``solana-test-validator`` with the perps program, for the RPC path against the real thing.

It is not installable on every machine (not on perpkit's CI): when the binary
is missing, :class:`ToolNotFound` says so plainly and how to get it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import httpx
from solders.pubkey import Pubkey

from perpkit.errors import PerpkitError
from perpkit.errors import ToolNotFound as ToolNotFound  # defined in perpkit.errors, re-exported here
from perpkit.localnet.process import stop_process

BINARY = "solana-test-validator"


def find_test_validator() -> str:
    path = shutil.which(BINARY)
    if path is None:
        raise ToolNotFound(
            f"{BINARY} is not on PATH. Install the Solana CLI (https://docs.anza.xyz/cli/install) "
            "or use perpkit's own engine: perpkit localnet --engine litesvm"
        )
    return path


def validator_command(
    *,
    binary: str,
    program_id: Pubkey,
    program: Path,
    ledger: Path,
    rpc_port: int,
    quiet: bool = True,
    accounts: Sequence[tuple[str, Path]] = (),
    account_dirs: Sequence[Path] = (),
) -> list[str]:
    """The command line: a fresh ledger (``--reset``) with the program preloaded at ``program_id``
    under the upgradeable loader, with no upgrade authority (as the embedded runtime installs it)."""
    command = [
        binary,
        "--reset",
        "--ledger",
        str(ledger),
        "--upgradeable-program",
        str(program_id),
        str(program),
        "none",
        "--rpc-port",
        str(rpc_port),
        "--bind-address",
        "127.0.0.1",
    ]
    for address, path in accounts:  # the same fixtures as `perpkit localnet --account/--account-dir`
        command += ["--account", address, str(path)]
    for directory in account_dirs:
        command += ["--account-dir", str(directory)]
    if quiet:
        command.append("--quiet")
    return command


class TestValidator:
    """Start ``solana-test-validator`` in a temporary ledger, wait for ``getHealth``, stop it on exit."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        *,
        program_id: Pubkey,
        program: Path,
        rpc_port: int = 8899,
        binary: str | None = None,
        accounts: Sequence[tuple[str, Path]] = (),
        account_dirs: Sequence[Path] = (),
    ) -> None:
        self.accounts = list(accounts)
        self.account_dirs = list(account_dirs)
        self.binary = binary or find_test_validator()
        self.program_id = program_id
        self.program = program
        self.rpc_port = rpc_port
        self.url = f"http://127.0.0.1:{rpc_port}"
        self._ledger: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> str:
        self._ledger = tempfile.TemporaryDirectory(prefix="perpkit-ledger-")
        command = validator_command(
            binary=self.binary,
            program_id=self.program_id,
            program=self.program,
            ledger=Path(self._ledger.name),
            rpc_port=self.rpc_port,
            accounts=self.accounts,
            account_dirs=self.account_dirs,
        )
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                self.stop()
                raise PerpkitError(f"{BINARY} exited with code {self._process.returncode}: {err.strip()[-500:]}")
            if wait_for_health(self.url, timeout=0.5):
                return self.url
            time.sleep(0.25)
        self.stop()
        raise PerpkitError(f"{BINARY} did not answer getHealth within {timeout:.0f} s")

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process)
        if self._ledger is not None:
            self._ledger.cleanup()
            self._ledger = None

    def __enter__(self) -> TestValidator:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def wait_for_health(url: str, timeout: float) -> bool:
    """True once ``getHealth`` answers "ok" (any JSON-RPC endpoint)."""
    try:
        response = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "getHealth"}, timeout=timeout)
        return bool(response.json().get("result") == "ok")
    except (httpx.HTTPError, ValueError):
        return False
