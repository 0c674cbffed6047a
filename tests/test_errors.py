"""One error family: every exception the SDK raises is in ``perpkit.errors``, the same on both backends.

The scenario tests run on each backend that ``--perps-backend`` selects (``all``:
the embedded runtime and JSON-RPC); each asserts the exact class, so a backend
that raised a subclass, a builtin or a solana-py exception would fail it.
"""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import pytest
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from perpkit import errors, program_errors
from perpkit import instructions as ix
from perpkit.client import Client
from perpkit.errors import AccountNotFound, AirdropFailed, InvalidInput, PerpkitError, ProgramError, TransactionFailed
from perpkit.pytest_plugin import perps_option

PACKAGE = Path(errors.__file__).resolve().parent

# Exception classes that may live outside errors.py / program_errors.py: the
# in-process chain's and the localnet server's own, which never reach an SDK
# user.  The chain raises TransactionRejected and TimeTravelError to the RPC
# layer, which turns them (and its own RpcError) into JSON-RPC error responses,
# and to the embedded backend, which turns them into a failed TxResult or a
# PerpkitError; the SDK raises perpkit.errors classes for them (RpcRequestFailed,
# AirdropFailed, TransactionFailed...).
SERVER_INTERNAL = {
    "chain.py": {"TransactionRejected", "TimeTravelError"},
    "localnet/rpc.py": {"RpcError"},
}


def raised(caught: pytest.ExceptionInfo[BaseException], cls: type[BaseException]) -> str:
    """The message, once the exception is exactly ``cls`` (not a subclass, not something else)."""
    assert type(caught.value) is cls, f"{type(caught.value).__module__}.{type(caught.value).__name__}: {caught.value}"
    return str(caught.value)


def any_instruction(client: Client) -> Instruction:
    return ix.update_funding(market=Pubkey.new_unique(), oracle=Pubkey.new_unique(), program_id=client.program_id)


# -- the same cause, the same class, on every backend --------------------------------------------------


async def test_a_transaction_without_a_signer_is_invalid_input(perps_client: Client) -> None:
    for call in (perps_client.backend.send_transaction, perps_client.backend.simulate_transaction):
        with pytest.raises(InvalidInput) as caught:
            await call([any_instruction(perps_client)], [])
        assert "needs at least one signer (the fee payer)" in raised(caught, InvalidInput)


async def test_a_missing_signer_is_invalid_input(perps_client: Client) -> None:
    mallory = Keypair()
    pause = ix.set_paused(admin=mallory.pubkey(), market=Pubkey.new_unique(), paused=True,
                          program_id=perps_client.program_id)  # fmt: skip
    for call in (perps_client.send, perps_client.simulate):
        with pytest.raises(InvalidInput) as caught:
            await call([pause])
        assert f"needs a signature from {mallory.pubkey()}" in raised(caught, InvalidInput)
    stranger = Keypair()  # a signer no instruction asks for would make solders panic while signing
    with pytest.raises(InvalidInput) as caught:
        await perps_client.send([any_instruction(perps_client)], [stranger])
    assert f"signer {stranger.pubkey()} signs for no account" in raised(caught, InvalidInput)


async def test_a_failed_airdrop_is_airdrop_failed(perps_client: Client, request: pytest.FixtureRequest) -> None:
    address, lamports = Keypair().pubkey(), 2**64 - 1  # more than the faucet holds
    with pytest.raises(AirdropFailed) as caught:
        await perps_client.backend.request_airdrop(address, lamports)
    message = raised(caught, AirdropFailed)
    assert message.startswith(f"airdrop of {lamports} lamports to {address} failed: ")
    assert isinstance(caught.value, TransactionFailed)  # what the RPC backend raised before
    assert caught.value.address == address and caught.value.lamports == lamports
    if not perps_option(request.config, "perps_rpc_url"):  # both run LiteSVM's system program: the same reason
        assert "custom program error" in message


@pytest.mark.parametrize("lamports", [0, -1, 2**64, 1.5, True])
async def test_an_airdrop_amount_out_of_range_is_invalid_input(perps_client: Client, lamports: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        await perps_client.backend.request_airdrop(Keypair().pubkey(), lamports)  # type: ignore[arg-type]
    assert f"lamports must be a whole number from 1 to 2**64 - 1, got {lamports!r}" in raised(caught, InvalidInput)


async def test_reading_a_missing_account_is_account_not_found(perps_client: Client) -> None:
    missing = Pubkey.new_unique()
    reads = {
        "market": perps_client.fetch_market,
        "oracle": perps_client.fetch_oracle,
        "token account": perps_client.token_balance,
    }
    for what, read in reads.items():
        with pytest.raises(AccountNotFound) as caught:
            await read(missing)
        assert raised(caught, AccountNotFound) == f"{what} {missing} does not exist"
        assert caught.value.address == missing
    with pytest.raises(AccountNotFound) as caught:
        await perps_client.fetch_user(missing)
    assert raised(caught, AccountNotFound).startswith("user account ")


@pytest.mark.parametrize("address", ["not-a-key", str(Pubkey.new_unique()), bytes(32), None])
async def test_a_bad_address_is_invalid_input(perps_client: Client, address: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        await perps_client.fetch_market(address)  # type: ignore[arg-type]
    message = raised(caught, InvalidInput)
    assert message.startswith(f"market address must be a solders Pubkey, got {type(address).__name__} {address!r}")
    with pytest.raises(InvalidInput) as caught:
        await perps_client.backend.request_airdrop(address, 10**9)  # type: ignore[arg-type]
    assert raised(caught, InvalidInput).startswith("airdrop address must be a solders Pubkey")


async def test_sending_to_a_missing_program_is_transaction_failed(perps_client: Client) -> None:
    nowhere = Instruction(Pubkey.new_unique(), b"\x01", [])
    for call in (perps_client.send, perps_client.simulate):
        with pytest.raises(TransactionFailed) as caught:
            await call([nowhere])
        message = raised(caught, TransactionFailed)  # not a ProgramError: our program never ran
        assert message.startswith("transaction failed: ")
        assert "InvalidProgramForExecution" in message or "ProgramAccountNotFound" in message


# -- where the classes live ------------------------------------------------------------------------


def test_old_import_paths_give_the_same_classes() -> None:
    from perpkit import risk, testing
    from perpkit.backends import rpc
    from perpkit.localnet import test_validator

    assert rpc.RpcUnavailable is errors.RpcUnavailable
    assert rpc.RpcProtocolError is errors.RpcProtocolError
    assert test_validator.ToolNotFound is errors.ToolNotFound
    assert risk.RiskError is errors.RiskError
    assert testing.ConservationError is errors.ConservationError
    for cls in (errors.RpcUnavailable, errors.RpcProtocolError, errors.ToolNotFound, errors.RiskError,
                errors.ConservationError, errors.AirdropFailed, errors.RpcRequestFailed, errors.UnknownIdlName):  # fmt: skip
        assert issubclass(cls, PerpkitError), cls
    assert issubclass(errors.ConservationError, AssertionError)  # pytest still reports it as a failed check
    assert issubclass(errors.UnknownIdlName, KeyError)


def _imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add(node.module or "")
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_errors_and_program_errors_do_not_import_each_other_both_ways() -> None:
    assert not {m for m in _imported_modules(PACKAGE / "errors.py") if "program_errors" in m}
    assert "perpkit.errors" in _imported_modules(PACKAGE / "program_errors.py")  # one way only


def test_program_errors_owns_the_code_map() -> None:
    assert program_errors.BY_CODE is program_errors.ERRORS_BY_CODE
    assert not hasattr(errors, "program_error")
    for code, cls in program_errors.BY_CODE.items():
        assert issubclass(cls, ProgramError) and cls.code == code
        exc = program_errors.program_error(code, ["log"], "sig", 2)
        assert type(exc) is cls and exc.instruction_index == 2 and exc.signature == "sig"
    unknown = program_errors.program_error(99_999)
    assert type(unknown) is errors.UnknownProgramError and unknown.code == 99_999


def _exception_classes(path: Path, known: set[str]) -> list[str]:
    """Classes defined in ``path`` whose bases are exceptions (builtin, or named in ``known``)."""

    def is_exception(base: ast.expr) -> bool:
        name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")
        builtin = getattr(builtins, name, None)
        return name in known or (isinstance(builtin, type) and issubclass(builtin, BaseException))

    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ClassDef) and any(is_exception(b) for b in node.bases):
            found.append(node.name)
    return found


def test_no_module_defines_an_exception_outside_the_errors_modules() -> None:
    known = {name for name, value in vars(errors).items() if isinstance(value, type) and issubclass(value, Exception)}
    known |= {name for names in SERVER_INTERNAL.values() for name in names}
    stray = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative in ("errors.py", "program_errors.py"):
            continue
        classes = set(_exception_classes(path, known)) - SERVER_INTERNAL.get(relative, set())
        if classes:
            stray[relative] = sorted(classes)
    assert stray == {}, f"exception classes outside perpkit.errors: {stray}"
    for relative, names in SERVER_INTERNAL.items():  # the exemptions are still needed
        assert set(_exception_classes(PACKAGE / relative, known)) == names, relative
