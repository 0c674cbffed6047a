"""The chain behind ``perpkit localnet``: the in-process :class:`perpkit.chain.Chain`.

The localnet server and the embedded backend run on the same class, so a
scenario behaves the same over RPC and in process; here its clock follows wall
time unless ``frozen_clock`` is given.
"""

from __future__ import annotations

from perpkit.chain import (
    BLOCKHASH_VALIDITY,
    FAUCET_LAMPORTS,
    LAMPORTS_PER_SIGNATURE,
    Chain,
    ClockState,
    Simulation,
    TimeTravelError,
    TransactionRejected,
    TxRecord,
    writable_keys,
)

LocalChain = Chain
"""The localnet's chain (the name it had before the embedded backend shared it)."""

__all__ = [
    "BLOCKHASH_VALIDITY",
    "FAUCET_LAMPORTS",
    "LAMPORTS_PER_SIGNATURE",
    "Chain",
    "ClockState",
    "LocalChain",
    "Simulation",
    "TimeTravelError",
    "TransactionRejected",
    "TxRecord",
    "writable_keys",
]
