"""Packing instructions into as few transactions as fit.

A legacy transaction is at most 1,232 bytes (the packet size, IPv6 MTU
minus headers), counted over the whole wire format: signatures, the account
keys every instruction shares once, and each instruction's indices and data.
How many instructions fit therefore depends on how many accounts they share,
so :func:`pack` measures the real serialised message rather than estimating.
No library does this for arbitrary instructions: solders gives the
serialisation, and the greedy loop is ours.
"""

from __future__ import annotations

from collections.abc import Sequence

from solders.hash import Hash
from solders.instruction import Instruction
from solders.message import Message
from solders.pubkey import Pubkey

from perpkit.errors import InvalidInput

PACKET_BYTES = 1232
"""The largest transaction a Solana validator accepts."""
BUDGET_RESERVE = 64
"""Bytes kept for the compute-budget instructions ``Client.send`` may put first (unit limit and price)."""


def transaction_size(instructions: Sequence[Instruction], payer: Pubkey, signers: int = 1) -> int:
    """Bytes of a legacy transaction of ``instructions`` paid by ``payer``, with ``signers`` signatures."""
    message = Message.new_with_blockhash(list(instructions), payer, Hash.default())
    return 1 + 64 * signers + len(bytes(message))  # compact-u16 count (one byte below 128), signatures, message


def pack(
    instructions: Sequence[Instruction], payer: Pubkey, *, limit: int = PACKET_BYTES - BUDGET_RESERVE
) -> list[list[Instruction]]:
    """Split ``instructions`` in order into consecutive groups, each one transaction of at most ``limit`` bytes."""
    groups: list[list[Instruction]] = []
    current: list[Instruction] = []
    for instruction in instructions:
        if current and transaction_size([*current, instruction], payer) > limit:
            groups.append(current)
            current = []
        current.append(instruction)
        if len(current) == 1 and transaction_size(current, payer) > limit:
            raise InvalidInput(f"one instruction alone is over {limit} bytes in a transaction")
    if current:
        groups.append(current)
    return groups
