"""Exceptions raised by perpkit: every exception the SDK raises to its users is defined here.

Every failure is a :class:`PerpkitError`, whichever backend ran it: the same
cause raises the same class on the embedded runtime and over JSON-RPC.  A
transaction the chain refused is a :class:`TransactionFailed`; when our
program refused it, the exception is the :class:`ProgramError` subclass named
after the IDL error (``perpkit.program_errors``, generated, which also holds
the code-to-class map and :func:`perpkit.program_errors.program_error`), so
callers can write ``except program_errors.Unauthorized``.  This module does not
import ``program_errors``; ``program_errors`` imports this one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path


class PerpkitError(Exception):
    """Base class of every perpkit exception."""


class InvalidInput(PerpkitError, ValueError):
    """An argument given to the SDK is out of range or malformed; nothing was sent."""


class AccountFileError(InvalidInput):
    """An account file (``--account``/``--account-dir``) cannot be loaded; the message names the file and why."""


class InvalidProgramFile(PerpkitError):
    """A program file (``.so``) cannot be loaded; the message names the file and why."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class AccountNotFound(PerpkitError):
    """An account the SDK needs does not exist on the chain."""

    def __init__(self, address: object, what: str = "account") -> None:
        self.address = address
        super().__init__(f"{what} {address} does not exist")


class UnknownIdlName(PerpkitError, KeyError):
    """The IDL has no instruction, account, type, event or constant of that name."""

    def __str__(self) -> str:  # KeyError's would quote the message
        return str(self.args[0]) if self.args else ""


class UnsupportedIdlType(PerpkitError, TypeError):
    """The IDL uses a type with no fixed borsh layout (Vec, Option, String, an enum...): the coder refuses it."""


class DecodeError(PerpkitError):
    """Bytes do not decode as the IDL type they should hold."""


class AccountDecodeError(DecodeError):
    """Account data does not decode as the expected type."""


class StateControlUnsupported(PerpkitError):
    """The endpoint cannot write accounts directly (it has no ``surfnet_setAccount``)."""


class ClockControlUnsupported(PerpkitError):
    """The backend cannot move the cluster clock (for example a public RPC endpoint)."""


class ToolNotFound(PerpkitError):
    """A command-line tool perpkit needs is not installed."""


class RpcUnavailable(PerpkitError):
    """The endpoint kept failing with transient errors past the retry budget."""


class RpcProtocolError(PerpkitError):
    """The endpoint answered something that is not a valid Solana JSON-RPC response."""


class RpcRequestFailed(PerpkitError):
    """The endpoint answered a request with a JSON-RPC error (not a transient one).

    ``response`` is the error as solana-py parsed it (a ``solders.rpc.errors`` message), when it did.
    """

    def __init__(self, message: str, response: object = None) -> None:
        self.response = response
        super().__init__(message)


class RiskError(PerpkitError):
    """An input the program refuses, found by the Python risk model; ``error_name`` is the IDL error it returns."""

    def __init__(self, error_name: str, detail: str = "") -> None:
        self.error_name = error_name
        super().__init__(f"{error_name}{': ' + detail if detail else ''}")


class PythAccountError(AccountDecodeError):
    """Bytes are not a Pyth ``PriceUpdateV2`` account: too short, another discriminator, or an
    unknown verification-level tag; the message says which."""


class PythPriceError(RiskError):
    """The program would refuse this Pyth price update (``perpkit.pyth.read_price``, ``rescale``);
    ``error_name`` is the IDL error its oracle read returns (``OracleNotFullyVerified``,
    ``OracleFeedMismatch``, ``OracleExponentUnsupported``, ``OraclePriceOutOfRange``, ...)."""


class ConservationError(PerpkitError, AssertionError):
    """SPEC 7 does not hold: the vault's tokens differ from the sum of what they back."""


class TransactionFailed(PerpkitError):
    """The chain refused a transaction for a reason other than one of our program's errors."""

    def __init__(self, error: str, logs: Sequence[str] = (), signature: str | None = None) -> None:
        self.error = error
        self.logs = list(logs)
        self.signature = signature
        super().__init__(self._describe())

    def _describe(self) -> str:
        tail = f"; last log: {self.logs[-1]}" if self.logs else ""
        return f"transaction failed: {self.error}{tail}"


class AirdropFailed(TransactionFailed):
    """The faucet (LiteSVM's, or the endpoint's ``requestAirdrop``) did not credit the lamports asked for."""

    def __init__(self, address: object, lamports: int, reason: str, signature: str | None = None) -> None:
        self.address = address
        self.lamports = lamports
        super().__init__(reason, (), signature)

    def _describe(self) -> str:
        return f"airdrop of {self.lamports} lamports to {self.address} failed: {self.error}"


_CAUSED_BY = re.compile(r"AnchorError caused by account: (\w+)\.")


class ProgramError(TransactionFailed):
    """The perps program refused an instruction with one of its IDL errors.

    Subclasses (one per IDL error, generated) set ``code``, ``error_name`` and
    ``error_msg``.  ``account`` is the IDL name of the account that failed
    validation, when the program reported one.
    """

    code: int = -1
    error_name: str = "Unknown"
    error_msg: str = "unknown program error"

    def __init__(
        self,
        logs: Sequence[str] = (),
        signature: str | None = None,
        instruction_index: int | None = None,
    ) -> None:
        self.instruction_index = instruction_index
        self.account: str | None = None
        for line in logs:
            match = _CAUSED_BY.search(line)
            if match:
                self.account = match.group(1)
        super().__init__(f"custom program error {self.code}", logs, signature)

    def _describe(self) -> str:
        where = f" (account: {self.account})" if self.account else ""
        return f"{self.error_name} ({self.code}): {self.error_msg}{where}"


class UnknownProgramError(ProgramError):
    """A custom error code that the IDL does not list."""

    def __init__(
        self,
        code: int,
        logs: Sequence[str] = (),
        signature: str | None = None,
        instruction_index: int | None = None,
    ) -> None:
        self.code = code
        super().__init__(logs, signature, instruction_index)


class NoSolForFees(PerpkitError):
    """The fee payer has no lamports: the chain says only ``AccountNotFound``."""

    def __init__(self, payer: object, url: str) -> None:
        super().__init__(f"the keypair {payer} has no SOL on {url}: `perpkit airdrop 1`")


class SmokeCheckFailed(PerpkitError):
    """A check of ``perpkit smoke`` that did not hold: the step's reason."""


class MissingDependency(PerpkitError, ImportError):
    """An optional dependency is not installed; the message says which extra to install."""


class InvalidScenario(InvalidInput):
    """A scenario file that cannot be run: the message names the file, the key and what is wrong."""


class ScenarioMismatch(PerpkitError, AssertionError):
    """A scenario step where the program did not do what the reference model predicted."""
