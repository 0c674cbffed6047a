"""Exceptions raised by perpkit.

Every failure is a :class:`PerpkitError`.  A transaction the chain refused is a
:class:`TransactionFailed`; when our program refused it, the exception is the
:class:`ProgramError` subclass named after the IDL error (``perpkit.program_errors``),
so callers can write ``except program_errors.Unauthorized``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path


class PerpkitError(Exception):
    """Base class of every perpkit exception."""


class InvalidInput(PerpkitError, ValueError):
    """An argument given to the SDK is out of range or malformed; nothing was sent."""


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


class UnsupportedIdlType(PerpkitError, TypeError):
    """The IDL uses a type with no fixed borsh layout (Vec, Option, String, an enum...): the coder refuses it."""


class DecodeError(PerpkitError):
    """Bytes do not decode as the IDL type they should hold."""


class AccountDecodeError(DecodeError):
    """Account data does not decode as the expected type."""


class ClockControlUnsupported(PerpkitError):
    """The backend cannot move the cluster clock (for example a public RPC endpoint)."""


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


def program_error(
    code: int,
    logs: Sequence[str] = (),
    signature: str | None = None,
    instruction_index: int | None = None,
) -> ProgramError:
    """The exception for custom error ``code`` of the perps program."""
    from perpkit.program_errors import ERRORS_BY_CODE

    cls = ERRORS_BY_CODE.get(code)
    if cls is None:
        return UnknownProgramError(code, logs, signature, instruction_index)
    return cls(logs, signature, instruction_index)
