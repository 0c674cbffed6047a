"""perpkit: SDK, cranker and pytest harness for the perpkit perpetual-futures program."""

from perpkit.accounts import BookHeader, Market, MarketParams, Oracle, book_account_size
from perpkit.backends import Backend, ChainClock, LiteSvmBackend, ReturnData, TxError, TxResult
from perpkit.client import Client
from perpkit.errors import (
    AccountDecodeError,
    AccountNotFound,
    ClockControlUnsupported,
    InvalidInput,
    InvalidProgramFile,
    PerpkitError,
    ProgramError,
    TransactionFailed,
)
from perpkit.idl import PROGRAM_ID
from perpkit.positions import Position, Side
from perpkit.risk import B as UNIT

__version__ = "0.1.0"

__all__ = [
    "PROGRAM_ID",
    "UNIT",
    "AccountDecodeError",
    "AccountNotFound",
    "Backend",
    "BookHeader",
    "ChainClock",
    "Client",
    "ClockControlUnsupported",
    "InvalidInput",
    "InvalidProgramFile",
    "LiteSvmBackend",
    "Market",
    "MarketParams",
    "Oracle",
    "PerpkitError",
    "Position",
    "ProgramError",
    "ReturnData",
    "Side",
    "TransactionFailed",
    "TxError",
    "TxResult",
    "book_account_size",
]
