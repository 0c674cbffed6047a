"""Compute-budget instructions: the compute-unit limit and price (priority fee) of a transaction."""

from __future__ import annotations

from solders import compute_budget
from solders.instruction import Instruction
from solders.message import Message, MessageV0

COMPUTE_BUDGET_PROGRAM_ID = compute_budget.ID
DEFAULT_UNITS_PER_INSTRUCTION = 200_000
MAX_COMPUTE_UNITS = 1_400_000
_SET_LIMIT, _SET_PRICE = 2, 3


def set_compute_unit_limit(units: int) -> Instruction:
    """Ask for up to ``units`` compute units for the whole transaction (max 1.4M)."""
    return compute_budget.set_compute_unit_limit(units)


def set_compute_unit_price(micro_lamports: int) -> Instruction:
    """Pay ``micro_lamports`` per requested compute unit as a priority fee."""
    return compute_budget.set_compute_unit_price(micro_lamports)


def compute_budget_of(message: Message | MessageV0) -> tuple[int, int]:
    """(compute-unit limit, compute-unit price) a compiled message asks for, with the runtime's defaults."""
    keys = list(message.account_keys)
    limit: int | None = None
    price = 0
    others = 0
    for ix in message.instructions:
        data = bytes(ix.data)
        if keys[ix.program_id_index] != COMPUTE_BUDGET_PROGRAM_ID:
            others += 1
        elif data[:1] == bytes([_SET_LIMIT]) and len(data) >= 5:
            limit = int.from_bytes(data[1:5], "little")
        elif data[:1] == bytes([_SET_PRICE]) and len(data) >= 9:
            price = int.from_bytes(data[1:9], "little")
    if limit is None:
        limit = DEFAULT_UNITS_PER_INSTRUCTION * others
    return min(limit, MAX_COMPUTE_UNITS), price


def prioritization_fee(message: Message | MessageV0) -> int:
    """Lamports of priority fee: ceil(limit x price / 1e6)."""
    limit, price = compute_budget_of(message)
    return -(-limit * price // 1_000_000)
