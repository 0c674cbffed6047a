"""Preloaded and big state on ``perpkit localnet`` (issue 11, item 4).

Account fixtures at start (``--account ADDRESS FILE`` / ``--account-dir DIR``,
the files of ``solana account --output json``), ``surfnet_setAccount`` up to
the 10 MiB account limit, and the cheatcodes ``surfnet_setTokenAccount``,
``surfnet_resetAccount`` and ``surfnet_getSurfnetInfo``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from solders.account import Account
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID

from perpkit import Client, spl_token
from perpkit.book import SlotStatus
from perpkit.chain import Chain
from perpkit.crank import collect_garbage, expected_batch, liquidate
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
from perpkit.positions import project_funding
from perpkit.risk import Side
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


# Issue 11's Done-when: "A 65,536-slot book (8.5 MiB) is loaded by file at start and by surfnet_setAccount, then
# liquidated."  One 65,536-slot book is filled once for the module by real ``open_position`` transactions on the
# embedded runtime (bench/books.py: 32 positions a trader, 16 opens a transaction, longs and shorts in turn), its
# accounts (program- and token-owned) are dumped, and each test brings them up on a fresh ``perpkit localnet``,
# moves the oracle so that a known set of longs is past its liquidation price, and liquidates through the SDK.
#
# How full: with the 8.5 MiB book in the transaction an open costs about 1 ms on LiteSVM whatever the batch
# (0.9-1.0 ms an instruction, against 0.03 ms on a 1,024-slot book: the cost follows the account's size, as a
# copy of its data for each instruction would), so the fill is the whole cost.  Measured on the 2-core machine
# (seconds; "fill" includes making the traders):
#
#   positions in the book        fill    dump  start with files  setAccount  liquidate  pytest, both tests
#   65,536 (PERPKIT_BOOK_FILL)   99.7    1.00  0.57              0.36        0.02       108.1 (85.9: fill 77.4)
#   32,768                       46.0    1.02  0.45              0.29        0.03       53.1 (68.4 in another run)
#   24,576 (the default)         27.8    0.59  0.57              0.28        0.02       34.7 (37.1 in another run)
#   (the whole module with the default: 13 tests in 33.9 s)
#
# So the suite fills 24,576 of the 65,536 slots, the largest round fill that stays well under a minute here;
# PERPKIT_BOOK_FILL=65536 fills every slot (the same assertions pass; 86-108 s).  Timings print with pytest -s.
FULL_BOOK = 65_536
BOOK_FILL = int(os.environ.get("PERPKIT_BOOK_FILL", "24576"))
CUT = 1_000
"""About how many longs the oracle move takes: between CUT/2 and 2*CUT, at the widest gap between neighbouring
liquidation prices there."""


@dataclass
class DumpedBook:
    market: Pubkey
    oracle: Pubkey
    book: Pubkey
    quote_mint: Pubkey
    opened: int
    payer: Keypair
    keyfile: Path
    files: Path
    accounts: list[tuple[Pubkey, Account]]
    """Every account the program and the token program own: market, book, oracle, users; mint, vault, token
    accounts."""
    price: int
    """The index price that takes exactly ``expected`` (every other position stays)."""
    expected: set[int]
    timings: dict[str, float] = field(default_factory=dict)


async def _fill_and_dump(directory: Path) -> DumpedBook:
    sys.path.insert(0, str(ROOT / "bench"))
    from books import fill_book  # type: ignore[import-not-found]

    timings: dict[str, float] = {}
    started = time.perf_counter()
    async with await Client.embedded() as source:
        filled = await fill_book(source, BOOK_FILL, capacity=FULL_BOOK)
        timings["fill"] = time.perf_counter() - started
        market = await source.fetch_market(filled.setup.market)
        book = await source.fetch_book(filled.setup.market)
        assert (book.header.capacity, book.header.slots_used, filled.opened) == (FULL_BOOK, BOOK_FILL, BOOK_FILL)
        # The price: between two neighbouring long liquidation prices near the CUT-th highest (the widest such
        # gap), so that the longs above it go and nothing else, even after a little funding.
        longs = book.live_slots(Side.LONG)
        m = project_funding(market, await source.now())
        prices = book.liquidation_prices(Side.LONG, longs, m.funding_index(Side.LONG), m.params.maintenance_margin_bps)
        order = np.argsort(-prices, kind="stable")
        ranked = prices[order]
        gaps = ranked[CUT // 2 : 2 * CUT] - ranked[CUT // 2 + 1 : 2 * CUT + 1]
        k = CUT // 2 + int(np.argmax(gaps)) + 1  # the k highest go
        assert ranked[k - 1] - ranked[k] >= 2
        price = int(ranked[k] + ranked[k - 1]) // 2
        expected = {int(s) for s in longs[order[:k]]}
        assert expected_batch(book, market, price, await source.now()).slots == expected  # the model agrees here
        chain: Chain = source.backend.chain  # type: ignore[attr-defined]
        payer = source.payer
        started = time.perf_counter()
        files = directory / "state"
        files.mkdir()
        accounts = []
        for owner in (PROGRAM_ID, TOKEN_PROGRAM_ID):
            for address, account in chain.accounts_owned_by(owner):
                write_account_file(files / f"{address}.json", address, account)
                accounts.append((address, account))
        timings["dump"] = time.perf_counter() - started
    keyfile = directory / "payer.json"
    keyfile.write_text(json.dumps(list(bytes(payer))))
    return DumpedBook(filled.setup.market, filled.setup.oracle, filled.book, filled.setup.quote_mint, filled.opened,
                      payer, keyfile, files, accounts, price, expected, timings)  # fmt: skip


@pytest.fixture(scope="module")
def dumped_book(tmp_path_factory: pytest.TempPathFactory) -> DumpedBook:
    return asyncio.run(_fill_and_dump(tmp_path_factory.mktemp("full-book")))


def set_accounts(url: str, accounts: list[tuple[Pubkey, Account]], per_request: int = 256) -> None:
    """``surfnet_setAccount`` for each account, many to one JSON-RPC batch (the book, 8.5 MiB, in a body alone)."""
    calls = [
        {
            "jsonrpc": "2.0",
            "id": i,
            "method": "surfnet_setAccount",
            "params": [
                str(address),
                {
                    "lamports": a.lamports,
                    "data": bytes(a.data).hex(),
                    "owner": str(a.owner),
                    "executable": a.executable,
                },
            ],
        }
        for i, (address, a) in enumerate(accounts)
    ]
    big = [call for call, (_, a) in zip(calls, accounts, strict=True) if len(a.data) > 1024 * 1024]
    small = [call for call, (_, a) in zip(calls, accounts, strict=True) if len(a.data) <= 1024 * 1024]
    bodies: list[Any] = [*big, *(small[i : i + per_request] for i in range(0, len(small), per_request))]
    with httpx.Client(timeout=120) as http:
        for body in bodies:
            answer = http.post(url, json=body).json()
            for one in answer if isinstance(answer, list) else [answer]:
                assert "error" not in one, one


async def liquidate_as_predicted(client: Client, url: str, d: DumpedBook) -> dict[str, float]:
    """Move the oracle to ``d.price``, liquidate, and check the batch and the book against the model.

    The clock is paused first: funding moves the batch's equity with every second, so the model is evaluated
    at the time the liquidation runs at (without the pause a second boundary between the two fails it)."""
    await client.set_oracle_price(d.oracle, price=d.price)
    assert "error" not in post(url, "surfnet_pauseClock")
    market = await client.fetch_market(d.market)
    book = await client.fetch_book(d.market)
    assert (market.book_capacity, book.header.capacity, book.header.slots_used) == (FULL_BOOK, FULL_BOOK, d.opened)
    live = book.live_mask()
    assert int(live.sum()) == d.opened and book.header.garbage == 0
    now = await client.now()
    model = expected_batch(book, market, d.price, now)
    assert model.slots == d.expected and len(model.cut[Side.SHORT]) == 0
    cranker_token = spl_token.associated_token_address(client.payer.pubkey(), d.quote_mint)
    reward_before = await client.token_balance(cranker_token)
    started = time.perf_counter()
    done = await liquidate(client, d.market)
    took = {"liquidate": time.perf_counter() - started}
    assert done is not None and done.batch.unix_timestamp == now
    batch, payout = done.batch, model.payout
    assert (batch.long_count, batch.short_count) == (len(d.expected), 0)
    assert (batch.equity, batch.collateral, batch.index_price, batch.exit_price) == (
        model.equity,
        model.collateral,
        d.price,
        model.exit_price,
    )
    assert (batch.cranker_reward, batch.insurance_credit, batch.insurance_paid, batch.socialized_loss,
            batch.pool_credit) == (payout.reward, payout.insurance_credit, payout.insurance_paid,
                                   payout.socialized_loss, payout.pool_credit)  # fmt: skip
    after = await client.fetch_market(d.market)
    assert await client.token_balance(cranker_token) - reward_before == payout.reward
    assert after.insurance_balance == market.insurance_balance + payout.insurance_credit - payout.insurance_paid
    assert after.pool_balance == market.pool_balance + payout.pool_credit
    # On chain: exactly the predicted positions are cut (no longer live, awaiting collection); every other
    # position is live and its slot byte for byte as it was.
    cut = np.array(sorted(d.expected), dtype=np.uint32)
    book_after = await client.fetch_book(d.market)
    live_after = book_after.live_mask()
    assert not live_after[cut].any()
    assert set(book_after.cut_slots().tolist()) == d.expected
    kept = live.copy()
    kept[cut] = False
    assert (live_after == kept).all()
    assert book_after.slots[kept].tobytes() == book.slots[kept].tobytes()
    # and collecting the garbage frees their slots
    await collect_garbage(client, d.market, book=book_after)
    collected = await client.fetch_book(d.market)
    assert (collected.slots["status"][cut] == SlotStatus.FREE).all() and collected.garbage_items() == 0
    assert int(collected.live_mask().sum()) == d.opened - len(d.expected)
    return took


async def test_a_full_size_book_loaded_from_files_at_start_is_liquidated(dumped_book: DumpedBook) -> None:
    """The dumped accounts (``solana account --output json`` files, the book's 11.3 MiB) loaded by
    ``--account-dir`` at start, then the predicted batch liquidated through the SDK."""
    d = dumped_book
    book_file = d.files / f"{d.book}.json"
    assert book_file.stat().st_size > 11 * 1024 * 1024  # 8.5 MiB in base64
    with LocalnetProcess("--account-dir", str(d.files), "--payer", str(d.keyfile), timeout=120) as net:
        timings = {**d.timings, "start with files": net.ready_seconds}
        client = await Client.connect(net.url, payer=d.payer)
        try:
            timings |= await liquidate_as_predicted(client, net.url, d)
        finally:
            await client.close()
    print(f"\n{d.opened:,} positions, {len(d.expected):,} liquidated:", _seconds(timings))


async def test_a_full_size_book_sent_by_set_account_is_liquidated(dumped_book: DumpedBook) -> None:
    """The same accounts sent to a fresh localnet by ``surfnet_setAccount`` (the book as 17 MiB of hex in one
    body), read back intact, then the predicted batch liquidated through the SDK."""
    d = dumped_book
    book_account = dict(d.accounts)[d.book]
    assert len(book_account.data) > 8 * 1024 * 1024
    with LocalnetProcess("--payer", str(d.keyfile)) as net:
        started = time.perf_counter()
        set_accounts(net.url, d.accounts)
        timings = {**d.timings, "setAccount": time.perf_counter() - started}
        assert same(read_back(net.url, d.book), book_account)
        # over the limit: a JSON-RPC error, not an HTTP 413
        big = {"lamports": 1, "data": "00" * (MAX_ACCOUNT_DATA + 1)}
        refused = post(net.url, "surfnet_setAccount", [str(Keypair().pubkey()), big])
        assert refused["error"]["code"] == INVALID_PARAMS
        client = await Client.connect(net.url, payer=d.payer)
        try:
            timings |= await liquidate_as_predicted(client, net.url, d)
        finally:
            await client.close()
    print(f"\n{d.opened:,} positions, {len(d.expected):,} liquidated:", _seconds(timings))


def _seconds(timings: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.2f} s" for name, value in timings.items())
