"""Checks of what a caller hands the SDK, shared by both backends so that they refuse it alike.

Each raises :class:`~perpkit.errors.InvalidInput`, saying what was wrong,
before anything is sent: solders would otherwise raise a bare ``TypeError`` or
``OverflowError``, or panic (``PanicException``, not even an ``Exception``)
while signing.
"""

from __future__ import annotations

from collections.abc import Sequence

from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey

from perpkit.errors import InvalidInput
from perpkit.risk import U64_MAX


def require_pubkey(value: object, what: str = "address") -> Pubkey:
    """``value`` if it is a Pubkey; InvalidInput naming ``what`` otherwise."""
    if isinstance(value, Pubkey):
        return value
    hint = " (use Pubkey.from_string)" if isinstance(value, str) else ""
    raise InvalidInput(f"{what} must be a solders Pubkey, got {type(value).__name__} {value!r}{hint}")


def require_lamports(lamports: object, what: str = "lamports") -> int:
    """``lamports`` if it is a whole number from 1 to 2**64 - 1; InvalidInput otherwise."""
    if isinstance(lamports, bool) or not isinstance(lamports, int) or not 0 < lamports <= U64_MAX:
        raise InvalidInput(f"{what} must be a whole number from 1 to 2**64 - 1, got {lamports!r}")
    return lamports


def signed_message(instructions: Sequence[Instruction], signers: Sequence[Keypair]) -> Message:
    """The message of a transaction paid by ``signers[0]``, once ``signers`` are exactly the keys it needs.

    InvalidInput when there is no signer (no fee payer), when an instruction
    needs a signature from a key that is not among ``signers``, or when a
    signer is not needed by any instruction.
    """
    if not signers:
        raise InvalidInput("a transaction needs at least one signer (the fee payer)")
    message = Message(list(instructions), signers[0].pubkey())
    required = list(message.account_keys[: message.header.num_required_signatures])
    given = {signer.pubkey() for signer in signers}
    missing = [str(key) for key in required if key not in given]
    if missing:
        raise InvalidInput(f"the transaction needs a signature from {', '.join(missing)}: no such signer was given")
    unneeded = [str(key) for key in given if key not in set(required)]
    if unneeded:
        raise InvalidInput(f"signer {', '.join(unneeded)} signs for no account of the transaction")
    return message
