"""Preloaded and big state on ``perpkit localnet`` (issue 11, item 4).

Account fixtures at start (``--account ADDRESS FILE`` / ``--account-dir DIR``,
the files of ``solana account --output json``), ``surfnet_setAccount`` up to
the 10 MiB account limit, and the cheatcodes ``surfnet_setTokenAccount``,
``surfnet_resetAccount`` and ``surfnet_getSurfnetInfo``.
"""

from __future__ import annotations

import base64
import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from solders.account import Account
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID

from perpkit import Client
from perpkit.chain import Chain
from perpkit.idl import PROGRAM_ID
from perpkit.localnet.accounts import (
    MAX_ACCOUNT_DATA,
    AccountFileError,
    load_accounts,
    read_account_file,
    write_account_file,
)
from perpkit.localnet.cheatcodes import associated_token_address
from perpkit.localnet.process import LocalnetProcess
from perpkit.localnet.rpc import INVALID_PARAMS, RpcError, RpcMethods
from perpkit.localnet.server import MAX_BODY_BYTES
from perpkit.localnet.test_validator import validator_command
from perpkit.spl_token import TOKEN_PROGRAM_ID

ROOT = Path(__file__).resolve().parents[1]
OWNER = Pubkey.from_string("Stake11111111111111111111111111111111111111")


def post(url: str, method: str, params: Any = None, timeout: float = 60.0) -> Any:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}
    return httpx.post(url, json=body, timeout=timeout).json()


def read_back(url: str, address: Pubkey) -> Account | None:
    value = post(url, "getAccountInfo", [str(address), {"encoding": "base64"}])["result"]["value"]
    if value is None:
        return None
    data = base64.b64decode(value["data"][0])
    return Account(value["lamports"], data, Pubkey.from_string(value["owner"]), value["executable"], 0)


def same(a: Account | None, b: Account) -> bool:
    return a is not None and (a.lamports, bytes(a.data), a.owner, a.executable) == (
        b.lamports,
        bytes(b.data),
        b.owner,
        b.executable,
    )


def test_the_file_format_is_solana_account_output_json(tmp_path: Path) -> None:
    address = Keypair().pubkey()
    account = Account(1_234_567, bytes(range(200)), OWNER, False, 0)
    path = write_account_file(tmp_path / "a.json", address, account)
    obj = json.loads(path.read_text())
    assert obj == {
        "pubkey": str(address),
        "account": {
            "lamports": 1_234_567,
            "data": [base64.b64encode(bytes(range(200))).decode(), "base64"],
            "owner": str(OWNER),
            "executable": False,
            "rentEpoch": 0,
            "space": 200,
        },
    }
    assert read_account_file(path) == (address, account)
    # As agave's test validator: the ADDRESS given wins over the file's pubkey, "-" takes the file's.
    other = Keypair().pubkey()
    assert load_accounts([(str(other), path), ("-", path)]) == [(other, account), (address, account)]


def test_validator_command_passes_the_fixtures_through(tmp_path: Path) -> None:
    fixture, directory = tmp_path / "a.json", tmp_path / "dir"
    command = validator_command(
        binary="solana-test-validator",
        program_id=PROGRAM_ID,
        program=tmp_path / "perps.so",
        ledger=tmp_path / "ledger",
        rpc_port=8899,
        accounts=[("-", fixture)],
        account_dirs=[directory],
    )
    joined = " ".join(command)
    assert f"--account - {fixture}" in joined
    assert f"--account-dir {directory}" in joined


def test_localnet_loads_account_and_account_dir_fixtures(tmp_path: Path) -> None:
    one, two, three = (Keypair().pubkey() for _ in range(3))
    a = Account(10**9, b"\x01" * 100, OWNER, False, 0)
    b = Account(5_000_000, b"", SYSTEM_PROGRAM_ID, False, 0)
    c = Account(7_777_777, bytes(range(256)) * 40, PROGRAM_ID, False, 0)
    write_account_file(tmp_path / "one.json", Keypair().pubkey(), a)  # loaded at `one`: the address given wins
    directory = tmp_path / "fixtures"
    directory.mkdir()
    write_account_file(directory / "two.json", two, b)
    write_account_file(directory / "three.json", three, c)
    (directory / "notes.txt").write_text("not an account")  # only *.json files are read
    with LocalnetProcess("--account", str(one), str(tmp_path / "one.json"), "--account-dir", str(directory)) as net:
        assert same(read_back(net.url, one), a)
        assert same(read_back(net.url, two), b)
        assert same(read_back(net.url, three), c)
        owned = post(net.url, "getProgramAccounts", [str(PROGRAM_ID), {"encoding": "base64"}])["result"]
        assert str(three) in [entry["pubkey"] for entry in owned]
        # resetAccount puts a fixture back as it was loaded, and deletes what was not there at start.
        post(net.url, "surfnet_setAccount", [str(one), {"lamports": 1, "data": "ff"}])
        assert not same(read_back(net.url, one), a)
        assert post(net.url, "surfnet_resetAccount", [str(one)])["result"]["value"] is None
        assert same(read_back(net.url, one), a)
        stranger = Keypair().pubkey()
        post(net.url, "requestAirdrop", [str(stranger), 10**9])
        assert read_back(net.url, stranger) is not None
        post(net.url, "surfnet_resetAccount", [str(stranger)])
        assert read_back(net.url, stranger) is None


def _localnet_error(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "perpkit.cli", "localnet", "--port", "0", "--no-default-payer", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "not JSON (Expecting property name"),
        ('{"pubkey": "x"}', "missing 'pubkey' or 'account'"),
        ('{"pubkey": "nope", "account": {}}', "pubkey is not a valid address"),
        (
            json.dumps(
                {"pubkey": str(OWNER), "account": {"lamports": 1, "owner": str(OWNER), "data": ["!!", "base64"]}}
            ),
            "account.data is not valid base64",
        ),
        (
            json.dumps(
                {"pubkey": str(OWNER), "account": {"lamports": -1, "owner": str(OWNER), "data": ["", "base64"]}}
            ),
            "account.lamports must be an unsigned 64-bit integer",
        ),
    ],
)
def test_a_bad_account_file_is_one_error_line(tmp_path: Path, content: str, reason: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    result = _localnet_error("--account", "-", str(bad))
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"perpkit: error: account file {bad}: {reason}")


def test_missing_files_and_directories_and_bad_addresses_are_one_error_line(tmp_path: Path) -> None:
    missing = _localnet_error("--account-dir", str(tmp_path / "nowhere"))
    assert missing.returncode == 1
    assert missing.stderr.startswith(f"perpkit: error: account directory {tmp_path / 'nowhere'}: cannot read it")
    assert len(missing.stderr.strip().splitlines()) == 1
    good = write_account_file(tmp_path / "a.json", OWNER, Account(1, b"", OWNER, False, 0))
    bad_address = _localnet_error("--account", "not-an-address", str(good))
    assert (
        bad_address.stderr.strip()
        == f"perpkit: error: --account not-an-address {good}: 'not-an-address' is not a valid address"
    )
    with pytest.raises(AccountFileError, match="cannot read it"):
        read_account_file(tmp_path / "absent.json")


def test_set_token_account_reset_account_and_surfnet_info() -> None:
    methods = RpcMethods(Chain())
    owner, mint, delegate = (Keypair().pubkey() for _ in range(3))
    ata = associated_token_address(owner, mint, TOKEN_PROGRAM_ID)
    from spl.token.instructions import get_associated_token_address

    assert ata == get_associated_token_address(owner, mint)
    methods.call(
        "surfnet_setTokenAccount",
        [
            str(owner),
            str(mint),
            {"amount": 1_000_000, "delegate": str(delegate), "delegatedAmount": 500, "state": "frozen"},
        ],
    )
    account = methods.chain.get_account(ata)
    assert account is not None and account.owner == TOKEN_PROGRAM_ID and len(account.data) == 165
    assert account.lamports == methods.chain.minimum_balance_for_rent_exemption(165)
    data = bytes(account.data)
    assert (data[:32], data[32:64]) == (bytes(mint), bytes(owner))
    assert struct.unpack_from("<Q", data, 64)[0] == 1_000_000
    assert data[72:76] == b"\x01\x00\x00\x00" and data[76:108] == bytes(delegate)
    assert data[108] == 2  # frozen
    assert struct.unpack_from("<Q", data, 121)[0] == 500
    # A second update keeps what it does not name; "null" clears the delegate.
    methods.call("surfnet_setTokenAccount", [str(owner), str(mint), {"amount": 7, "delegate": "null"}])
    data = bytes(methods.chain.get_account(ata).data)  # type: ignore[union-attr]
    assert struct.unpack_from("<Q", data, 64)[0] == 7 and data[72:76] == bytes(4) and data[108] == 2
    with pytest.raises(RpcError) as bad_state:
        methods.call("surfnet_setTokenAccount", [str(owner), str(mint), {"state": "melted"}])
    assert bad_state.value.code == INVALID_PARAMS
    with pytest.raises(RpcError):
        methods.call("surfnet_setTokenAccount", [str(owner), str(mint), {}, str(SYSTEM_PROGRAM_ID)])
    # Token-2022: the associated account is derived with that program.
    token22 = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")
    methods.call("surfnet_setTokenAccount", [str(owner), str(mint), {"amount": 3}, str(token22)])
    ata22 = associated_token_address(owner, mint, token22)
    assert methods.chain.get_account(ata22).owner == token22  # type: ignore[union-attr]
    # resetAccount with includeOwnedAccounts: the owner and what it owns go back to the start (here: gone).
    methods.call("surfnet_resetAccount", [str(TOKEN_PROGRAM_ID), {"includeOwnedAccounts": False}])
    methods.call("surfnet_resetAccount", [str(ata)])
    assert methods.chain.get_account(ata) is None
    info = methods.call("surfnet_getSurfnetInfo", [])
    assert info["value"] == {"runbookExecutions": []} and "slot" in info["context"]


def test_set_account_is_refused_over_ten_mib() -> None:
    methods = RpcMethods(Chain())
    target = Keypair().pubkey()
    with pytest.raises(RpcError) as too_big:
        methods.call("surfnet_setAccount", [str(target), {"lamports": 1, "data": "00" * (MAX_ACCOUNT_DATA + 1)}])
    assert too_big.value.code == INVALID_PARAMS and "10,485,760" in too_big.value.message
    methods.call("surfnet_setAccount", [str(target), {"lamports": 1, "data": "00" * MAX_ACCOUNT_DATA}])
    assert len(methods.chain.get_account(target).data) == MAX_ACCOUNT_DATA  # type: ignore[union-attr]
    assert MAX_BODY_BYTES > 2 * MAX_ACCOUNT_DATA + 200


async def test_a_full_size_book_is_copied_with_set_account() -> None:
    """A 65,536-slot book (8.5 MiB) made on one chain, set on a localnet over HTTP, read back intact."""
    from perpkit.testing import setup_market

    async with await Client.embedded() as source:
        setup = await setup_market(source, book_capacity=65_536)
        market = await source.fetch_market(setup.market)
        book = source.backend.chain.get_account(market.book)  # type: ignore[attr-defined]
    assert book is not None and len(book.data) > 8 * 1024 * 1024
    with LocalnetProcess() as net:
        update = {"lamports": book.lamports, "data": bytes(book.data).hex(), "owner": str(book.owner)}
        answer = post(net.url, "surfnet_setAccount", [str(market.book), update])
        assert "error" not in answer, answer
        assert same(read_back(net.url, market.book), book)
        # over the limit: a JSON-RPC error, not an HTTP 413
        big = {"lamports": 1, "data": "00" * (MAX_ACCOUNT_DATA + 1)}
        refused = post(net.url, "surfnet_setAccount", [str(Keypair().pubkey()), big])
        assert refused["error"]["code"] == INVALID_PARAMS


async def test_a_book_loaded_from_files_at_start_is_liquidated(tmp_path: Path) -> None:
    """Issue 11's Done-when, smaller fill: a 65,536-capacity book with 2,000 long positions is dumped
    to account files, loaded by ``--account-dir`` at start, and liquidated there through the SDK."""
    sys.path.insert(0, str(ROOT / "bench"))
    from books import UNIT, fill_book  # type: ignore[import-not-found]

    from perpkit.crank import liquidate
    from perpkit.risk import Side

    async with await Client.embedded() as source:
        filled = await fill_book(source, 2_000, capacity=65_536, sides=(Side.LONG,))
        chain: Chain = source.backend.chain  # type: ignore[attr-defined]
        payer = source.payer
        fixtures = tmp_path / "state"
        fixtures.mkdir()
        for owner in (PROGRAM_ID, TOKEN_PROGRAM_ID):  # market, book, oracle, users; mint, vault, token accounts
            for address, account in chain.accounts_owned_by(owner):
                write_account_file(fixtures / f"{address}.json", address, account)
    assert (fixtures / f"{filled.book}.json").stat().st_size > 11 * 1024 * 1024  # 8.5 MiB in base64
    keyfile = tmp_path / "payer.json"
    keyfile.write_text(json.dumps(list(bytes(payer))))
    with LocalnetProcess("--account-dir", str(fixtures), "--payer", str(keyfile), timeout=60) as net:
        client = await Client.connect(net.url, payer=payer)
        try:
            market = await client.fetch_market(filled.setup.market)
            assert market.book_capacity == 65_536
            await client.set_oracle_price(filled.setup.oracle, price=60 * UNIT)
            done = await liquidate(client, filled.setup.market)
            assert done is not None and done.batch.count > 0 and done.batch.long_count == done.batch.count
        finally:
            await client.close()
