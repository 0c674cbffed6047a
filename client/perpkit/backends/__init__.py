"""Where transactions go: the in-process LiteSVM runtime or a JSON-RPC endpoint."""

from perpkit.backends.base import Backend, ChainClock, ReturnData, TxError, TxResult
from perpkit.backends.litesvm import LiteSvmBackend

__all__ = ["Backend", "ChainClock", "LiteSvmBackend", "ReturnData", "TxError", "TxResult"]
