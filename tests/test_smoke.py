"""``perpkit smoke`` (``python -m perpkit.smoke``) end to end against a ``perpkit localnet``, and against
the ``solana-test-validator`` stand-in (a binary on PATH taking its flags and serving perpkit localnet).

Most runs use the preloaded program (``--program-id``), to be quick; the default run deploys its own
program first and closes it at the end, as it does on devnet."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import stand_in_test_validator

from perpkit.deploy import programdata_address
from perpkit.idl import PROGRAM_ID
from perpkit.keyfile import write_keypair
from perpkit.localnet.process import LocalnetProcess
from perpkit.localnet.test_validator import TestValidator
from perpkit.runtime import embedded_runtime

SMOKE = [sys.executable, "-m", "perpkit.smoke"]
STEPS = [
    "create quote mint",
    "create oracle",
    "create market",
    "fund pool",
    "traders + deposits",
    "open positions",
    "move price",
    "crank (liquidate, gc, clear)",
    "check",
    "close + withdraw",
    "reclaim",
]


@pytest.fixture(scope="module")
def keypair(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("smoke") / "id.json"
    write_keypair(path)
    return path


@pytest.fixture(scope="module")
def url(keypair: Path) -> Iterator[str]:
    with LocalnetProcess("--payer", str(keypair)) as server:  # funds the keypair with 1,000 SOL
        yield server.url


PRELOADED = ("--program-id", str(PROGRAM_ID))
KEEP = () if embedded_runtime().sbpf_v3 else ("--keep-program",)
"""solders 0.26's LiteSVM (the anchorpy lane) panics when a used program is closed: keep it there."""


def smoke(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SMOKE, *args], capture_output=True, text=True, timeout=120)


def run_json(url: str, keypair: Path, *extra: str) -> dict[str, Any]:
    result = smoke("--url", url, "--keypair", str(keypair), "--json", *extra)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def check_report(report: dict[str, Any], steps: list[str]) -> None:
    assert report["ok"] is True
    assert [s["name"] for s in report["steps"]] == steps
    assert all(s["ok"] and s["error"] is None for s in report["steps"]), report["steps"]
    by_name = {s["name"]: s for s in report["steps"]}
    assert all(by_name[name]["signatures"] for name in STEPS if name != "check")
    assert by_name["check"]["signatures"] == []
    assert "as the event says" in by_name["check"]["detail"]
    totals = report["totals"]
    assert totals["signatures"] == sum(len(s["signatures"]) for s in report["steps"])
    # localnet charges 5,000 lamports a signature and no priority fee: at least one per transaction
    assert totals["fees_lamports"] >= 5_000 * totals["signatures"] and totals["fees_lamports"] % 5_000 == 0
    assert totals["rent_locked_lamports"] == sum(s["rent_locked_lamports"] for s in report["steps"]) > 0
    # everything the payer spent went to fees or sits as rent in the accounts the run created
    assert totals["payer_spent_lamports"] == totals["fees_lamports"] + totals["rent_locked_lamports"]
    assert totals["returned_lamports"] > 0
    assert totals["rent_reclaimed_lamports"] > 0  # the token accounts at least
    assert "3 token accounts closed" in by_name["reclaim"]["detail"]


def test_a_run_passes_every_step_and_accounts_for_fees_and_rent(url: str, keypair: Path) -> None:
    check_report(run_json(url, keypair, *PRELOADED), STEPS)


async def test_by_default_it_deploys_its_own_program_and_closes_it_at_the_end(url: str, keypair: Path) -> None:
    report = run_json(url, keypair, *KEEP)
    check_report(report, ["deploy program", *STEPS])
    program = report["program_id"]
    assert program != str(PROGRAM_ID)
    deploy = report["steps"][0]
    build = embedded_runtime().program_path()  # the build this localnet runs (v0 on the anchorpy lane: v3 first)
    assert deploy["detail"].startswith(f"{build.name} (") or f"then {build.name})" in deploy["detail"]
    assert len(deploy["signatures"]) >= len(range(0, build.stat().st_size, 900)) + 2
    assert deploy["rent_locked_lamports"] > 600_000_000  # the program-data account of a 90 KB program
    if KEEP:
        return
    assert f"program {program} closed" in report["steps"][-1]["detail"]
    assert report["totals"]["rent_reclaimed_lamports"] > deploy["rent_locked_lamports"]  # program + token accounts
    from solders.pubkey import Pubkey

    from perpkit import Client

    async with await Client.connect(url) as client:
        programdata = await client.account(programdata_address(Pubkey.from_string(program)))
        assert programdata is None or programdata.lamports == 0


def test_a_kept_program_serves_a_rerun_by_its_id(url: str, keypair: Path) -> None:
    first = run_json(url, keypair, "--keep-program")
    assert first["ok"] and "closed" not in first["steps"][-1]["detail"].split(";")[2]
    second = run_json(url, keypair, "--program-id", first["program_id"])
    check_report(second, STEPS)
    assert second["program_id"] == first["program_id"]


def test_not_enough_sol_to_deploy_is_one_error_line(url: str, tmp_path: Path) -> None:
    import httpx

    poor = tmp_path / "poor.json"
    key = write_keypair(poor)
    answer = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "requestAirdrop",
                                   "params": [str(key.pubkey()), 10_000_000]}).json()  # fmt: skip
    assert "result" in answer, answer
    result = smoke("--url", url, "--keypair", str(poor))
    assert result.returncode == 1 and result.stdout == "" and result.stderr.count("\n") == 1
    assert "has 0.0100 SOL" in result.stderr and "deploying and running needs about 0.8" in result.stderr
    assert "--airdrop" in result.stderr and "--program-id" in result.stderr


def test_program_file_and_program_id_are_one_or_the_other(url: str, keypair: Path) -> None:
    result = smoke("--url", url, "--keypair", str(keypair), *PRELOADED, "--program-file", "x.so")
    assert result.returncode == 1 and result.stderr.startswith("perpkit: error: --program-file deploys")


def test_against_the_test_validator_stand_in_with_an_airdrop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keypair: Path
) -> None:
    """What CI can do for solana-test-validator: its launcher, its flags, no funded payer, then the default
    run (deploying its own program, paid for by --airdrop) over its RPC port."""
    stand_in_test_validator(tmp_path, monkeypatch)
    fresh = tmp_path / "fresh.json"
    write_keypair(fresh)
    with TestValidator(program_id=PROGRAM_ID, program=embedded_runtime().program_path(), rpc_port=18_979) as node:
        report = run_json(node.url, fresh, "--airdrop", *KEEP)
    check_report(report, ["deploy program", *STEPS])


def test_reruns_on_one_cluster_never_collide(url: str, keypair: Path) -> None:
    first, second = run_json(url, keypair, *PRELOADED), run_json(url, keypair, *PRELOADED)
    assert first["ok"] and second["ok"]
    assert first["market"] != second["market"] and first["run_id"] != second["run_id"]


def test_the_human_report_is_a_table_with_totals(url: str, keypair: Path) -> None:
    result = smoke("--url", url, "--keypair", str(keypair), *PRELOADED)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    out = result.stdout
    for name in STEPS:
        assert re.search(rf"^  {re.escape(name)}\s+ok\s+[\d,]+\s+\d+\s+[\d,]+\s+-?[\d,]+$", out, re.M), name
    assert "FAILED" not in out
    assert re.search(r"totals: \d+ transactions, fees [\d,]+ lamports, rent locked [\d,]+ lamports", out)
    assert out.rstrip().endswith("all checks held")


def test_a_failing_step_skips_the_rest_and_exits_1(url: str, keypair: Path) -> None:
    result = smoke(
        "--url", url, "--keypair", str(keypair), *PRELOADED, "--pyth-feed", "SOL/USD", "--json"
    )  # no feed on localnet
    assert result.returncode == 1 and result.stderr == ""
    report = json.loads(result.stdout)
    results = [(s["name"], s["ok"], s["error"]) for s in report["steps"]]
    assert results[:3] == [(name, True, None) for name in STEPS[:3]]
    assert results[3][:2] == ("pyth market (SOL/USD)", False) and "AccountNotFound" in results[3][2]
    assert all(error == "skipped" for _, ok, error in results[4:])
    assert report["ok"] is False


def test_a_missing_keypair_is_one_error_line(tmp_path: Path) -> None:
    result = smoke("--url", "http://127.0.0.1:1", "--keypair", str(tmp_path / "none.json"))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("perpkit: error: no keypair at ") and "perpkit keygen" in result.stderr


def test_an_unreachable_endpoint_is_one_error_line(keypair: Path) -> None:
    result = smoke("--url", "http://127.0.0.1:1", "--keypair", str(keypair))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("perpkit: error: cannot reach ")


def test_help_says_it_deploys_unless_given_a_program_id() -> None:
    result = smoke("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "deploys the bundled program at a fresh address" in text and "--keep-program" in text


def test_the_module_imports_no_sdk_and_knows_the_pyth_feeds() -> None:
    from perpkit.pyth import FEED_IDS
    from perpkit.smoke import PYTH_FEEDS

    assert tuple(sorted(FEED_IDS)) == PYTH_FEEDS
    heavy = "('numpy', 'perpkit.client', 'solders')"
    code = f"import sys, perpkit.smoke; print(sorted(m for m in {heavy} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert result.stdout.strip() == "[]"


def test_perpkit_smoke_is_the_cli_command(url: str, keypair: Path) -> None:
    """What CI and a devnet user run: ``perpkit smoke --url URL``, its report and its exit status."""
    done = subprocess.run([sys.executable, "-m", "perpkit.cli", "smoke", "--url", url, "--keypair", str(keypair), *KEEP],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all checks held" in done.stdout
    print(done.stdout)
    failed = subprocess.run([sys.executable, "-m", "perpkit.cli", "smoke", "--url", url, "--keypair", str(keypair),
                             "--pyth-feed", "SOL/USD"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
