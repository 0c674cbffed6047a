"""``perpkit smoke`` (``python -m perpkit.smoke``) end to end against a ``perpkit localnet``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from perpkit.keyfile import write_keypair
from perpkit.localnet.process import LocalnetProcess

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


def smoke(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SMOKE, *args], capture_output=True, text=True, timeout=60)


def run_json(url: str, keypair: Path) -> dict[str, Any]:
    result = smoke("--url", url, "--keypair", str(keypair), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_a_run_passes_every_step_and_accounts_for_fees_and_rent(url: str, keypair: Path) -> None:
    report = run_json(url, keypair)
    assert report["ok"] is True
    assert [s["name"] for s in report["steps"]] == STEPS
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


def test_reruns_on_one_cluster_never_collide(url: str, keypair: Path) -> None:
    first, second = run_json(url, keypair), run_json(url, keypair)
    assert first["ok"] and second["ok"]
    assert first["market"] != second["market"] and first["run_id"] != second["run_id"]


def test_the_human_report_is_a_table_with_totals(url: str, keypair: Path) -> None:
    result = smoke("--url", url, "--keypair", str(keypair))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    out = result.stdout
    for name in STEPS:
        assert re.search(rf"^  {re.escape(name)}\s+ok\s+[\d,]+\s+\d+\s+[\d,]+\s+[\d,]+$", out, re.M), name
    assert "FAILED" not in out
    assert re.search(r"totals: \d+ transactions, fees [\d,]+ lamports, rent locked [\d,]+ lamports", out)
    assert out.rstrip().endswith("all checks held")


def test_a_failing_step_skips_the_rest_and_exits_1(url: str, keypair: Path) -> None:
    result = smoke("--url", url, "--keypair", str(keypair), "--pyth-feed", "SOL/USD", "--json")  # no feed on localnet
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


def test_help_says_it_does_not_deploy() -> None:
    result = smoke("--help")
    assert result.returncode == 0
    assert "deploying is out of scope" in " ".join(result.stdout.split())


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
    done = subprocess.run([sys.executable, "-m", "perpkit.cli", "smoke", "--url", url, "--keypair", str(keypair)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all checks held" in done.stdout
    print(done.stdout)
    failed = subprocess.run([sys.executable, "-m", "perpkit.cli", "smoke", "--url", url, "--keypair", str(keypair),
                             "--pyth-feed", "SOL/USD"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
