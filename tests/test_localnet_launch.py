"""Starting the local validators: perpkit localnet's process life, and the solana-test-validator launcher.

solana-test-validator cannot be installed here.  Its launcher is tested on
the command it builds, on the plain message when the binary is missing, and
end to end against a stand-in binary on PATH that accepts the same flags and
serves perpkit localnet (a real LiteSVM chain) on the requested port.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import require_tool, stand_in_test_validator
from solana.constants import LAMPORTS_PER_SOL
from solders.keypair import Keypair

from perpkit import Client
from perpkit.idl import PROGRAM_ID
from perpkit.localnet.process import LocalnetProcess
from perpkit.localnet.test_validator import TestValidator, ToolNotFound, find_test_validator, validator_command
from perpkit.runtime import embedded_runtime
from perpkit.testing import create_oracle


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_localnet_starts_fast_serves_and_stops_cleanly(sig: signal.Signals) -> None:
    server = LocalnetProcess()
    try:
        assert server.ready_seconds < 5, f"took {server.ready_seconds:.2f} s to be ready"
        answer = httpx.post(server.url, json={"jsonrpc": "2.0", "id": 1, "method": "getHealth"}).json()
        assert answer["result"] == "ok"
    finally:
        server.process.send_signal(sig)
        out, err = server.process.communicate(timeout=10)
    assert server.process.returncode == 0, err
    assert "perpkit localnet stopped after 1 requests" in out
    assert "Traceback" not in err


def test_localnet_funds_payers_and_reports_a_bad_keypair(tmp_path: Path) -> None:
    key = Keypair()
    keyfile = tmp_path / "id.json"
    keyfile.write_text(str(list(bytes(key))))
    with LocalnetProcess("--payer", str(keyfile)) as server:
        answer = httpx.post(
            server.url, json={"jsonrpc": "2.0", "id": 1, "method": "getBalance", "params": [str(key.pubkey())]}
        )
        assert answer.json()["result"]["value"] == 1_000 * LAMPORTS_PER_SOL
    (tmp_path / "bad.json").write_text("[1, 2, 3]")
    bad = subprocess.run(
        [sys.executable, "-m", "perpkit.cli", "localnet", "--port", "0", "--payer", str(tmp_path / "bad.json")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 1 and "bad.json: not a Solana keypair file" in bad.stderr


def test_test_validator_command() -> None:
    command = validator_command(
        binary="/opt/solana/bin/solana-test-validator",
        program_id=PROGRAM_ID,
        program=Path("fixtures/perps.so"),
        ledger=Path("/tmp/ledger"),
        rpc_port=8899,
    )
    assert command == [
        "/opt/solana/bin/solana-test-validator",
        "--reset",
        "--ledger",
        "/tmp/ledger",
        "--upgradeable-program",
        str(PROGRAM_ID),
        "fixtures/perps.so",
        "none",
        "--rpc-port",
        "8899",
        "--bind-address",
        "127.0.0.1",
        "--quiet",
    ]


def test_missing_test_validator_is_said_plainly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolNotFound, match=r"solana-test-validator is not on PATH\. Install the Solana CLI"):
        find_test_validator()
    result = subprocess.run(
        [sys.executable, "-m", "perpkit.cli", "localnet", "--engine", "solana-test-validator"],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": str(tmp_path)},
        timeout=30,
    )
    assert result.returncode == 1
    assert "perpkit: error: solana-test-validator is not on PATH" in result.stderr


async def test_launcher_runs_the_validator_it_finds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stand_in_test_validator(tmp_path, monkeypatch)
    # the stand-in serves perpkit localnet: the build its LiteSVM runs
    program = embedded_runtime().program_path()
    with TestValidator(program_id=PROGRAM_ID, program=program, rpc_port=18_977) as validator:
        assert validator.url == "http://127.0.0.1:18977"
        client = await Client.connect(validator.url, airdrop_lamports=10**10)
        try:
            oracle = await create_oracle(client, price=3)
            assert (await client.fetch_oracle(oracle)).price == 3
        finally:
            await client.close()
    with pytest.raises(httpx.HTTPError):
        httpx.post(validator.url, json={"jsonrpc": "2.0", "id": 1, "method": "getHealth"}, timeout=1)


def test_clock_tests_skip_on_endpoints_without_time_travel(pytester: pytest.Pytester) -> None:
    pytester.makeconftest('pytest_plugins = ["perpkit.pytest_plugin"]')
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        """
        from perpkit.errors import ClockControlUnsupported

        def test_needs_time():
            raise ClockControlUnsupported("https://api.devnet.solana.com cannot move the clock")
        """
    )
    result = pytester.runpytest("-p", "no:pytest_anchorpy", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*needs clock control: https://api.devnet.solana.com cannot move the clock*"])


def test_curl_requests_like_the_solana_docs(perps_rpc_url: str) -> None:
    curl = require_tool("curl")

    def call(body: str) -> dict[str, object]:
        out = subprocess.run(
            [curl, "-s", perps_rpc_url, "-X", "POST", "-H", "Content-Type: application/json", "-d", body],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
        answer: dict[str, object] = json.loads(out)
        return answer

    assert call('{"jsonrpc":"2.0","id":1,"method":"getHealth"}')["result"] == "ok"
    key = str(Keypair().pubkey())
    assert isinstance(
        call(f'{{"jsonrpc":"2.0","id":1,"method":"requestAirdrop","params":["{key}",{LAMPORTS_PER_SOL}]}}')["result"],
        str,
    )
    balance = call(f'{{"jsonrpc":"2.0","id":1,"method":"getBalance","params":["{key}"]}}')["result"]
    assert isinstance(balance, dict) and balance["value"] == LAMPORTS_PER_SOL
    program = call(
        f'{{"jsonrpc":"2.0","id":1,"method":"getAccountInfo","params":["{PROGRAM_ID}",{{"encoding":"base64"}}]}}'
    )["result"]
    assert isinstance(program, dict) and program["value"]["executable"] is True  # type: ignore[index]
