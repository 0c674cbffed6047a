"""perpkit: SDK, cranker and pytest harness for the perpkit perpetual-futures program."""

from perpkit.accounts import BookHeader, Market, MarketParams, Oracle, PositionRef, User, book_account_size
from perpkit.backends import Backend, ChainClock, LiteSvmBackend, ReturnData, TxError, TxResult
from perpkit.book import Book
from perpkit.client import Client
from perpkit.crank import clear_liquidated, collect_garbage, crank_once, find_liquidatable, liquidate
from perpkit.errors import (
    AccountDecodeError,
    AccountNotFound,
    AirdropFailed,
    ClockControlUnsupported,
    ConservationError,
    DecodeError,
    InvalidInput,
    InvalidProgramFile,
    PerpkitError,
    ProgramError,
    RiskError,
    RpcProtocolError,
    RpcRequestFailed,
    RpcUnavailable,
    StateControlUnsupported,
    ToolNotFound,
    TransactionFailed,
    UnknownIdlName,
    UnknownProgramError,
    UnsupportedIdlType,
)
from perpkit.idl import PROGRAM_ID
from perpkit.market_handle import MarketHandle
from perpkit.positions import Health, Position, Side
from perpkit.risk import B as UNIT  # base atoms per whole base unit (10**6); also one token of a 6-decimal mint

__version__ = "0.1.0"

__all__ = [
    "PROGRAM_ID",
    "UNIT",
    "AccountDecodeError",
    "AccountNotFound",
    "AirdropFailed",
    "Backend",
    "Book",
    "BookHeader",
    "ChainClock",
    "Client",
    "ClockControlUnsupported",
    "ConservationError",
    "DecodeError",
    "Health",
    "InvalidInput",
    "InvalidProgramFile",
    "LiteSvmBackend",
    "Market",
    "MarketHandle",
    "MarketParams",
    "Oracle",
    "PerpkitError",
    "Position",
    "PositionRef",
    "ProgramError",
    "ReturnData",
    "RiskError",
    "RpcProtocolError",
    "RpcRequestFailed",
    "RpcUnavailable",
    "Side",
    "StateControlUnsupported",
    "ToolNotFound",
    "TransactionFailed",
    "TxError",
    "TxResult",
    "UnknownIdlName",
    "UnknownProgramError",
    "UnsupportedIdlType",
    "User",
    "book_account_size",
    "clear_liquidated",
    "collect_garbage",
    "crank_once",
    "find_liquidatable",
    "liquidate",
]
