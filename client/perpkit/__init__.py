"""perpkit: SDK, cranker and pytest harness for the perpkit perpetual-futures program.

The names below load on first use (PEP 562), so ``perpkit localnet`` and
other entry points that need only part of the package do not pay for the
SDK's imports (numpy, the clients) at start-up.
"""

from __future__ import annotations

# Neither typing nor importlib at import (typing alone is 10 ms): `perpkit` runs before the command line's
# Ctrl-C handler is installed (perpkit.cli), so the less it does the better.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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
        PythAccountError,
        PythPriceError,
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
    from perpkit.oracles import OracleKind, OracleSource
    from perpkit.positions import Health, Position, Side
    from perpkit.pyth import PriceUpdateV2
    from perpkit.risk import B as UNIT

__version__ = "0.1.0"

_LAZY: dict[str, tuple[str, str]] = {
    "AccountDecodeError": ("perpkit.errors", "AccountDecodeError"),
    "AccountNotFound": ("perpkit.errors", "AccountNotFound"),
    "AirdropFailed": ("perpkit.errors", "AirdropFailed"),
    "ClockControlUnsupported": ("perpkit.errors", "ClockControlUnsupported"),
    "ConservationError": ("perpkit.errors", "ConservationError"),
    "DecodeError": ("perpkit.errors", "DecodeError"),
    "InvalidInput": ("perpkit.errors", "InvalidInput"),
    "InvalidProgramFile": ("perpkit.errors", "InvalidProgramFile"),
    "PerpkitError": ("perpkit.errors", "PerpkitError"),
    "ProgramError": ("perpkit.errors", "ProgramError"),
    "PythAccountError": ("perpkit.errors", "PythAccountError"),
    "PythPriceError": ("perpkit.errors", "PythPriceError"),
    "RiskError": ("perpkit.errors", "RiskError"),
    "RpcProtocolError": ("perpkit.errors", "RpcProtocolError"),
    "RpcRequestFailed": ("perpkit.errors", "RpcRequestFailed"),
    "RpcUnavailable": ("perpkit.errors", "RpcUnavailable"),
    "StateControlUnsupported": ("perpkit.errors", "StateControlUnsupported"),
    "ToolNotFound": ("perpkit.errors", "ToolNotFound"),
    "TransactionFailed": ("perpkit.errors", "TransactionFailed"),
    "UnknownIdlName": ("perpkit.errors", "UnknownIdlName"),
    "UnknownProgramError": ("perpkit.errors", "UnknownProgramError"),
    "UnsupportedIdlType": ("perpkit.errors", "UnsupportedIdlType"),
    "BookHeader": ("perpkit.accounts", "BookHeader"),
    "Market": ("perpkit.accounts", "Market"),
    "MarketParams": ("perpkit.accounts", "MarketParams"),
    "Oracle": ("perpkit.accounts", "Oracle"),
    "PositionRef": ("perpkit.accounts", "PositionRef"),
    "User": ("perpkit.accounts", "User"),
    "book_account_size": ("perpkit.accounts", "book_account_size"),
    "Backend": ("perpkit.backends", "Backend"),
    "ChainClock": ("perpkit.backends", "ChainClock"),
    "LiteSvmBackend": ("perpkit.backends", "LiteSvmBackend"),
    "ReturnData": ("perpkit.backends", "ReturnData"),
    "TxError": ("perpkit.backends", "TxError"),
    "TxResult": ("perpkit.backends", "TxResult"),
    "Book": ("perpkit.book", "Book"),
    "Client": ("perpkit.client", "Client"),
    "clear_liquidated": ("perpkit.crank", "clear_liquidated"),
    "collect_garbage": ("perpkit.crank", "collect_garbage"),
    "crank_once": ("perpkit.crank", "crank_once"),
    "find_liquidatable": ("perpkit.crank", "find_liquidatable"),
    "liquidate": ("perpkit.crank", "liquidate"),
    "PROGRAM_ID": ("perpkit.idl", "PROGRAM_ID"),
    "MarketHandle": ("perpkit.market_handle", "MarketHandle"),
    "OracleKind": ("perpkit.oracles", "OracleKind"),
    "OracleSource": ("perpkit.oracles", "OracleSource"),
    "Health": ("perpkit.positions", "Health"),
    "Position": ("perpkit.positions", "Position"),
    "Side": ("perpkit.positions", "Side"),
    "PriceUpdateV2": ("perpkit.pyth", "PriceUpdateV2"),
    "UNIT": ("perpkit.risk", "B"),
}
"""Exported name -> (module, attribute).  ``UNIT`` is base atoms per whole base unit (10**6), also one
token of a 6-decimal mint."""


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'perpkit' has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


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
    "OracleKind",
    "OracleSource",
    "PerpkitError",
    "Position",
    "PositionRef",
    "PriceUpdateV2",
    "ProgramError",
    "PythAccountError",
    "PythPriceError",
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
