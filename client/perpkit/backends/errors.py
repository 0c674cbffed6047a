"""Turning the runtime's transaction errors into :class:`~perpkit.backends.base.TxError`."""

from __future__ import annotations

from typing import Any

from solders.transaction_status import InstructionErrorCustom, TransactionErrorInstructionError

from perpkit.backends.base import TxError


def _name(value: Any) -> str:
    text = str(value)
    # solders renders fieldless enums as "InstructionErrorFieldless.InvalidAccountData"
    return text.rsplit(".", 1)[-1] if "." in text and " " not in text else text


def tx_error_from_solders(err: Any) -> TxError:
    """A solders ``TransactionErrorType`` (LiteSVM) as a TxError."""
    if isinstance(err, TransactionErrorInstructionError):
        inner = err.err
        if isinstance(inner, InstructionErrorCustom):
            return TxError(f"instruction {err.index}: custom program error {inner.code}", err.index, inner.code)
        return TxError(f"instruction {err.index}: {_name(inner)}", err.index, None)
    return TxError(_name(err))
