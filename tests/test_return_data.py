"""Program return data (``sol_set_return_data``) on every backend, in the shapes a real validator serves.

Three tiny C programs, built with clang-19 and sbflink as in ``test_relinker``:
ECHO sets its instruction data as return data, FAIL sets it and then fails
with ``Custom(6001)``, SILENT logs a line and sets nothing.  On the embedded
runtime they are loaded with ``LiteSvmBackend.load_program``; over JSON-RPC
they are deployed through the upgradeable loader (``perpkit.deploy``), as
``solana program deploy`` would, into the session's ``perpkit localnet``.

The JSON shapes are agave's (``transaction-status-client-types``):
``meta.returnData`` is ``{"programId": base58, "data": [base64, "base64"]}``
and left out when there is none (``OptionSerializer::or_skip``);
``simulateTransaction`` and a preflight failure's error data always carry
``returnData``, ``null`` when there is none.  Agave records return data only
when it is not empty, and resets it to (program, empty) whenever a program is
invoked, so a later program that sets nothing clears it.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from solana.constants import LAMPORTS_PER_SOL
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.rpc.errors import SendTransactionPreflightFailureMessage
from solders.rpc.responses import GetTransactionResp, SendTransactionResp, SimulateTransactionResp
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction
from solders.transaction_status import TransactionReturnData
from test_relinker import link

from perpkit import Backend, Client, ReturnData, TxResult
from perpkit.backends.litesvm import LiteSvmBackend
from perpkit.backends.rpc import RpcBackend
from perpkit.deploy import deploy_program
from perpkit.pytest_plugin import START_TIME

CUSTOM_ERROR = 6001
MAX_RETURN_DATA = 1024
"""The runtime's limit on return data (``MAX_RETURN_DATA``)."""

# SBF input with no accounts: u64 account count (0), u64 instruction data length, the data, the program id.
HEADER = """
void sol_set_return_data(const unsigned char *data, u64 len);
static u64 data_len(const unsigned char *input) { return *(const u64 *)(input + 8); }
"""
SOURCES = {
    "echo": HEADER
    + """
        u64 entrypoint(const unsigned char *input) {
            if (*(const u64 *)input != 0) return 1;   /* no accounts expected */
            sol_set_return_data(input + 16, data_len(input));
            return 0;
        }""",
    "fail": HEADER
    + """
        u64 entrypoint(const unsigned char *input) {
            if (*(const u64 *)input != 0) return 1;
            sol_set_return_data(input + 16, data_len(input));
            return 6001;                               /* Custom(6001) */
        }""",
    "silent": HEADER
    + """
        u64 entrypoint(const unsigned char *input) {
            (void)input;
            sol_log_("silent", 6);
            return 0;
        }""",
}


@pytest.fixture(scope="session")
def programs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three programs, compiled and linked once for the session."""
    built = {}
    for name, code in SOURCES.items():
        folder = tmp_path_factory.mktemp(f"return-data-{name}")
        path = folder / f"{name}.so"
        path.write_bytes(link(folder, {name: code}))
        built[name] = path
    return built


_DEPLOYED: dict[str, dict[str, Pubkey]] = {}
"""Program ids deployed at each RPC endpoint this session (deployed once, used by every test)."""


async def deployed(client: Client, programs: dict[str, Path], url: str) -> dict[str, Pubkey]:
    if url not in _DEPLOYED:
        ids = {}
        for name, path in programs.items():
            program = Keypair()
            await deploy_program(client, path.read_bytes(), program)
            ids[name] = program.pubkey()
        _DEPLOYED[url] = ids
    return _DEPLOYED[url]


@dataclass
class Chain:
    """A backend with the three programs and a funded payer."""

    backend: Backend
    payer: Keypair
    echo: Pubkey
    fail: Pubkey
    silent: Pubkey

    async def send(self, *instructions: Instruction) -> TxResult:
        return await self.backend.send_transaction(list(instructions), [self.payer])

    async def simulate(self, *instructions: Instruction) -> TxResult:
        return await self.backend.simulate_transaction(list(instructions), [self.payer])


async def embedded_chain(programs: dict[str, Path]) -> Chain:
    """A fresh LiteSVM with the programs loaded at new addresses."""
    backend = LiteSvmBackend(start_time=START_TIME)
    ids = {name: Keypair().pubkey() for name in programs}
    for name, path in programs.items():
        backend.load_program(ids[name], path)
    payer = Keypair()
    await backend.request_airdrop(payer.pubkey(), 10 * LAMPORTS_PER_SOL)
    return Chain(backend, payer, ids["echo"], ids["fail"], ids["silent"])


async def rpc_chain_at(url: str, programs: dict[str, Path]) -> Chain:
    """The endpoint, with the programs deployed there (once a session) and a new funded payer."""
    client = await Client.connect(url, airdrop_lamports=10 * LAMPORTS_PER_SOL)
    try:
        ids = await deployed(client, programs, url)
    except BaseException:
        await client.close()
        raise
    return Chain(client.backend, client.payer, ids["echo"], ids["fail"], ids["silent"])


@pytest_asyncio.fixture
async def chain(perps_backend: str, programs: dict[str, Path], request: pytest.FixtureRequest) -> AsyncIterator[Chain]:
    """The programs on the backend under test (``--perps-backend``)."""
    if perps_backend == "litesvm":
        made = await embedded_chain(programs)
    else:
        made = await rpc_chain_at(request.getfixturevalue("perps_rpc_url"), programs)
    try:
        yield made
    finally:
        await made.backend.close()


def call(program: Pubkey, data: bytes = b"") -> Instruction:
    return Instruction(program, data, [])


# -- TxResult.return_data, on every backend ---------------------------------------------


async def test_send_and_simulate_carry_return_data(chain: Chain) -> None:
    expected = ReturnData(chain.echo, b"perpkit \x00\xff")
    simulated = await chain.simulate(call(chain.echo, b"perpkit \x00\xff"))
    assert simulated.ok and simulated.return_data == expected
    sent = await chain.send(call(chain.echo, b"perpkit \x00\xff"))
    assert sent.ok and sent.return_data == expected


async def test_return_data_up_to_the_runtime_limit(chain: Chain) -> None:
    data = bytes(range(256)) * (MAX_RETURN_DATA // 256)
    sent = await chain.send(call(chain.echo, data))
    assert sent.ok and sent.return_data == ReturnData(chain.echo, data)


async def test_failed_transaction_keeps_its_return_data(chain: Chain) -> None:
    """A program that sets return data and then fails: the runtime still reports it (preflight over RPC)."""
    expected = ReturnData(chain.fail, b"why it failed")
    for result in (
        await chain.simulate(call(chain.fail, b"why it failed")),
        await chain.send(call(chain.fail, b"why it failed")),
    ):
        assert result.error is not None and result.error.custom_code == CUSTOM_ERROR
        assert result.error.instruction_index == 0
        assert result.return_data == expected


async def test_no_return_data_is_none(chain: Chain) -> None:
    to = Keypair().pubkey()
    cases = [
        [call(chain.silent)],  # sets nothing
        [call(chain.echo, b"")],  # sets empty data: the runtime records none
        # no program of ours
        [transfer(TransferParams(from_pubkey=chain.payer.pubkey(), to_pubkey=to, lamports=LAMPORTS_PER_SOL))],
    ]
    for instructions in cases:
        simulated = await chain.simulate(*instructions)
        assert simulated.ok and simulated.return_data is None, instructions
        sent = await chain.send(*instructions)
        assert sent.ok and sent.return_data is None, instructions


async def test_the_last_invoked_program_decides(chain: Chain) -> None:
    """Agave resets return data whenever a program is invoked: what the last one left is what is reported."""
    echo, silent = chain.echo, chain.silent
    cases: list[tuple[list[Instruction], ReturnData | None]] = [
        ([call(echo, b"first"), call(echo, b"second")], ReturnData(echo, b"second")),
        ([call(silent), call(echo, b"last")], ReturnData(echo, b"last")),
        ([call(echo, b"cleared"), call(silent)], None),
    ]
    for instructions, expected in cases:
        assert (await chain.simulate(*instructions)).return_data == expected
        assert (await chain.send(*instructions)).return_data == expected
    failed = await chain.send(call(echo, b"first"), call(chain.fail, b"then failed"))
    assert failed.error is not None and failed.error.instruction_index == 1
    assert failed.return_data == ReturnData(chain.fail, b"then failed")


# -- over JSON-RPC: the raw shapes and solders' parsers --------------------------------------


@pytest_asyncio.fixture
async def rpc_chain(perps_rpc_url: str, programs: dict[str, Path]) -> AsyncIterator[tuple[Chain, str]]:
    """The session's endpoint (whatever ``--perps-backend`` says) with the programs, and its URL."""
    made = await rpc_chain_at(perps_rpc_url, programs)
    try:
        yield made, perps_rpc_url
    finally:
        await made.backend.close()


async def rpc(url: str, method: str, params: list[Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    assert response.status_code == 200
    answer: dict[str, Any] = response.json()
    return answer


def ui_return_data(program: Pubkey, data: bytes) -> dict[str, Any]:
    """Agave's ``UiTransactionReturnData``."""
    return {"programId": str(program), "data": [base64.b64encode(data).decode(), "base64"]}


async def signed(chain: Chain, url: str, *instructions: Instruction) -> Transaction:
    latest = await rpc(url, "getLatestBlockhash", [{"commitment": "confirmed"}])
    blockhash = Hash.from_string(latest["result"]["value"]["blockhash"])
    return Transaction([chain.payer], Message(list(instructions), chain.payer.pubkey()), blockhash)


async def get_transaction(url: str, signature: str) -> dict[str, Any]:
    """getTransaction's raw answer, once the transaction is there (at once on perpkit localnet)."""
    config = {"encoding": "json", "commitment": "confirmed", "maxSupportedTransactionVersion": 0}
    for _ in range(50):
        answer = await rpc(url, "getTransaction", [signature, config])
        if answer.get("result") is not None:
            return answer
        await asyncio.sleep(0.2)
    raise AssertionError(f"{signature}: getTransaction found nothing")


async def test_get_transaction_meta_return_data(rpc_chain: tuple[Chain, str]) -> None:
    chain, url = rpc_chain
    data = b"\x01\x02 meta"
    sent = await chain.send(call(chain.echo, data))
    answer = await get_transaction(url, sent.signature)
    meta = answer["result"]["meta"]
    assert meta["returnData"] == ui_return_data(chain.echo, data)
    parsed = GetTransactionResp.from_json(json.dumps(answer)).value
    assert parsed is not None and parsed.transaction.meta is not None
    assert parsed.transaction.meta.return_data == TransactionReturnData(chain.echo, data)

    for instructions in ([call(chain.silent)], [call(chain.echo, b"")], [call(chain.echo, b"x"), call(chain.silent)]):
        quiet = await chain.send(*instructions)
        answer = await get_transaction(url, quiet.signature)
        assert "returnData" not in answer["result"]["meta"]  # skipped, not null
        parsed = GetTransactionResp.from_json(json.dumps(answer)).value
        assert parsed is not None and parsed.transaction.meta is not None
        assert parsed.transaction.meta.return_data is None


async def test_landed_failure_has_return_data_in_meta(rpc_chain: tuple[Chain, str]) -> None:
    """Without preflight the failing transaction lands; its meta and RpcBackend's TxResult carry the data."""
    chain, url = rpc_chain
    tx = await signed(chain, url, call(chain.fail, b"landed"))
    encoded = base64.b64encode(bytes(tx)).decode()
    sent = await rpc(url, "sendTransaction", [encoded, {"encoding": "base64", "skipPreflight": True}])
    assert sent["result"] == str(tx.signatures[0])
    meta = (await get_transaction(url, sent["result"]))["result"]["meta"]
    assert meta["err"] == {"InstructionError": [0, {"Custom": CUSTOM_ERROR}]}
    assert meta["returnData"] == ui_return_data(chain.fail, b"landed")

    backend = RpcBackend(url, skip_preflight=True)
    try:
        result = await backend.send_transaction([call(chain.fail, b"via the backend")], [chain.payer])
    finally:
        await backend.close()
    assert result.error is not None and result.error.custom_code == CUSTOM_ERROR
    assert result.return_data == ReturnData(chain.fail, b"via the backend")


async def test_simulate_transaction_return_data(rpc_chain: tuple[Chain, str]) -> None:
    chain, url = rpc_chain
    cases: list[tuple[Instruction, ReturnData | None]] = [
        (call(chain.echo, b"simulated"), ReturnData(chain.echo, b"simulated")),
        (call(chain.fail, b"simulated failure"), ReturnData(chain.fail, b"simulated failure")),
        (call(chain.silent), None),
    ]
    for instruction, expected in cases:
        tx = await signed(chain, url, instruction)
        answer = await rpc(url, "simulateTransaction", [base64.b64encode(bytes(tx)).decode(), {"encoding": "base64"}])
        value = answer["result"]["value"]
        assert "returnData" in value  # null, not absent, when there is none
        if expected is None:
            assert value["returnData"] is None
        else:
            assert value["returnData"] == ui_return_data(expected.program_id, expected.data)
        parsed = SimulateTransactionResp.from_json(json.dumps(answer)).value
        assert parsed.return_data == (
            None if expected is None else TransactionReturnData(expected.program_id, expected.data)
        )


async def test_preflight_failure_carries_return_data(rpc_chain: tuple[Chain, str]) -> None:
    chain, url = rpc_chain
    tx = await signed(chain, url, call(chain.fail, b"preflight"))
    answer = await rpc(url, "sendTransaction", [base64.b64encode(bytes(tx)).decode(), {"encoding": "base64"}])
    error = answer["error"]
    assert error["code"] == -32002
    assert error["data"]["returnData"] == ui_return_data(chain.fail, b"preflight")
    parsed = SendTransactionResp.from_json(json.dumps(answer))
    assert isinstance(parsed, SendTransactionPreflightFailureMessage)
    assert parsed.data.return_data == TransactionReturnData(chain.fail, b"preflight")

    quiet = await signed(chain, url, call(chain.silent), call(chain.fail, b""))
    answer = await rpc(url, "sendTransaction", [base64.b64encode(bytes(quiet)).decode(), {"encoding": "base64"}])
    assert "returnData" in answer["error"]["data"] and answer["error"]["data"]["returnData"] is None
