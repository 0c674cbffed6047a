"""Where transactions go: the in-process LiteSVM runtime or a JSON-RPC endpoint.

The names load on first use (PEP 562): ``perpkit.chain`` imports
``perpkit.backends.base``, and the embedded backend imports the chain, so an
eager import of the backend here would be circular.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from perpkit.backends.base import Backend, ChainClock, ReturnData, TxError, TxResult
    from perpkit.backends.litesvm import LiteSvmBackend

_LAZY: dict[str, str] = {
    "Backend": "perpkit.backends.base",
    "ChainClock": "perpkit.backends.base",
    "ReturnData": "perpkit.backends.base",
    "TxError": "perpkit.backends.base",
    "TxResult": "perpkit.backends.base",
    "LiteSvmBackend": "perpkit.backends.litesvm",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'perpkit.backends' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


__all__ = ["Backend", "ChainClock", "LiteSvmBackend", "ReturnData", "TxError", "TxResult"]
