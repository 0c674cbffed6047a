"""Shared fixtures and helpers of the perpkit test suite."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

ROOT = Path(__file__).resolve().parents[1]
PROGRAM_DIR = ROOT / "program"
TOOLS_DIR = PROGRAM_DIR / "tools"
sys.path.insert(0, str(TOOLS_DIR))

pytest_plugins = ["pytester"]

STRICT = os.environ.get("PERPKIT_STRICT") == "1"
"""In CI every tool must be present: a missing one fails instead of skipping."""


def require_tool(name: str) -> str:
    """Path of a command-line tool, or skip (fail under PERPKIT_STRICT=1) when it is missing."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt-get install -y {name}); .ci/run installs it"
        if STRICT:
            pytest.fail(message)
        pytest.skip(message)
    return path


LANE = os.environ.get("PERPKIT_LANE", "default")
"""The dependency lane CI runs: "default" (latest solders) or "anchorpy" (solders 0.26)."""


def require_sbpf_v3_runtime() -> None:
    """Skip on a LiteSVM that predates SBPFv3 and the mainnet feature set (solders 0.26, the anchorpy lane).

    Under CI (PERPKIT_STRICT=1) outside the anchorpy lane, that is a failure.
    """
    from perpkit.runtime import embedded_runtime

    runtime = embedded_runtime()
    if runtime.sbpf_v3:
        return
    message = (
        f"solders {runtime.solders_version}'s LiteSVM predates SBPFv3 and the mainnet feature set "
        "(the anchorpy lane); the default lane runs this"
    )
    if STRICT and LANE != "anchorpy":
        pytest.fail(message)
    pytest.skip(message)


def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure, fail the test with its output."""
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result


async def rpc(http: httpx.AsyncClient, url: str, method: str, params: Any = None, request_id: Any = 1) -> Any:
    """The JSON answer of one JSON-RPC request POSTed to ``url`` (a ``perpkit localnet``); asserts HTTP 200."""
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        body["params"] = params
    response = await http.post(url, json=body)
    assert response.status_code == 200
    return response.json()


def section(data: bytes, name: str) -> tuple[int, int]:
    """(offset of the section's header, offset of its contents) in an ELF file."""
    from elftools.elf.elffile import ELFFile

    elf = ELFFile(io.BytesIO(data))
    for index, sec in enumerate(elf.iter_sections()):
        if sec.name == name:
            return elf["e_shoff"] + index * elf["e_shentsize"], sec["sh_offset"]
    raise KeyError(name)


class Driver:
    def __init__(self, path: str) -> None:
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=1", UBSAN_OPTIONS="print_stacktrace=1")
        self.proc = subprocess.Popen(
            [path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )

    def ask(self, *words: object) -> str:
        assert self.proc.stdin and self.proc.stdout
        try:
            self.proc.stdin.write(" ".join(str(w) for w in words) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            assert self.proc.stderr
            pytest.fail(f"native driver had died before {words[0]}: {self.proc.stderr.read()}")
        answer = self.proc.stdout.readline()
        if not answer:
            assert self.proc.stderr
            pytest.fail(f"native driver died on {words[0]}: {self.proc.stderr.read()}")
        return answer.strip()

    def close(self) -> None:
        assert self.proc.stdin
        self.proc.stdin.close()
        rc = self.proc.wait(timeout=30)
        assert self.proc.stderr
        assert rc == 0, self.proc.stderr.read()


@pytest.fixture(scope="session")
def native() -> Iterator[Driver]:
    """The host build of the program's pure C code (ASan + UBSan), one process for the session."""
    require_tool("gcc")
    run(["make", "-C", str(PROGRAM_DIR), "native"])
    driver = Driver(str(PROGRAM_DIR / "build" / "native" / "perps_native"))
    yield driver
    driver.close()  # leak check at exit


STAND_IN_TEST_VALIDATOR = """#!{python}
# Stand-in for solana-test-validator: accepts its flags, serves perpkit localnet instead.
import os, sys
args = sys.argv[1:]
assert args[0] == "--reset" and "--ledger" in args and os.path.isdir(args[args.index("--ledger") + 1]), args
i = args.index("--upgradeable-program")
assert args[i + 3] == "none", args
port = args[args.index("--rpc-port") + 1]
os.execv(sys.executable, [sys.executable, "-m", "perpkit.cli", "localnet", "--port", port,
         "--program-id", args[i + 1], "--program", args[i + 2], "--no-default-payer"])
"""


def stand_in_test_validator(directory: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put a ``solana-test-validator`` on PATH (in ``directory``) that checks the flags perpkit's launcher
    gives and serves ``perpkit localnet`` on the requested port: what CI can run in its place."""
    binary = directory / "solana-test-validator"
    binary.write_text(STAND_IN_TEST_VALIDATOR.format(python=sys.executable))
    binary.chmod(0o755)
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ['PATH']}")
    return binary


@pytest.fixture(scope="module")
def localnet() -> Iterator[Any]:
    """A ``perpkit localnet`` of the module's own, on wall-clock time (the bot tests: the session's
    ``perps_rpc_url`` localnet has a frozen clock)."""
    from perpkit.localnet.process import LocalnetProcess

    with LocalnetProcess() as net:
        yield net


@pytest_asyncio.fixture
async def client(localnet: Any) -> AsyncIterator[Any]:
    """A client of :func:`localnet` with a payer funded by 100 SOL."""
    from perpkit.client import Client

    async with await Client.connect(localnet.url, airdrop_lamports=100 * 10**9) as c:
        yield c
